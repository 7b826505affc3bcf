"""SIGTERM stops a test run as Ctrl-C does: fixtures tear down, servers stop.

pytest runs fixture teardown after a KeyboardInterrupt, but a SIGTERM (a timeout, a cancelled job,
`kill`) ends the process at once and left the Samba, slapd, PostgreSQL and SCIM servers the fixtures
had started running on loopback, holding their ports. tests/conftest.py uses this hook.
"""
from __future__ import annotations

import signal
import threading


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def pytest_configure(config) -> None:
    if threading.current_thread() is threading.main_thread():  # signal handlers belong to the main thread
        signal.signal(signal.SIGTERM, _interrupt)
