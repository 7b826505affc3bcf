"""`kind: ldif`: a directory read from an LDIF snapshot instead of a server.

The plug-in face (see `reconciler.directory`): `open_source(directory)` -> an
`LdifSource`, whose `read()` returns the complete `DirectoryRead` or raises
`DirectoryError`; `check_directory(directory)` -> one step, whether the snapshot
file can be read.

Modules: `parser` (RFC 2849 content records, errors as FILE:LINE), `source` (the
snapshot searched with the policy's own bases, scopes and filters through the
shared offline evaluator, `reconciler.directory.filters`), `check`.
"""
from __future__ import annotations

from ...policy.model import Directory
from .check import check_directory
from .source import LdifSource

__all__ = ["open_source", "check_directory"]


def open_source(directory: Directory) -> LdifSource:
    return LdifSource(directory)
