"""`reconciler check` for an LDIF snapshot: the one step that can fail before a read, the file's access."""
from __future__ import annotations

import os

from ...policy.model import Directory
from .. import CheckStep


def check_directory(directory: Directory) -> list[CheckStep]:
    path = directory.path or ""
    if os.access(path, os.R_OK) and os.path.isfile(path):
        return [CheckStep("snapshot", True, f"{path} is readable")]
    return [CheckStep("snapshot", False, f"{path} cannot be read; check directories.{directory.name}.path")]
