import sys
from pathlib import Path

# tests import their shared builders as `tests.factories`
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.interrupt import pytest_configure  # noqa: E402,F401  (SIGTERM tears fixtures down, as Ctrl-C does)
