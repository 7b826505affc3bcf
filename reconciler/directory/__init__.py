"""Directory sources: each kind reads one directory into a `DirectoryRead`.

A new kind is a module with a class satisfying `DirectorySource` and one line
in `SOURCES`; nothing after the directory stage changes.
"""
from __future__ import annotations

from typing import Callable, Protocol

from ..model import DirectoryRead
from ..policy.model import Directory


class DirectorySource(Protocol):
    """Reads one directory completely or raises `DirectoryError`.

    Contract for implementers:
    - `users`: every user entry under the search bases that matches the filter and
      `member_of` (nested membership included), disabled ones included and flagged;
    - `groups`: the groups scope, with direct members;
    - never return a partial result: a truncated or failed read raises
      `reconciler.errors.DirectoryError` naming the directory, base, filter and cause.
    """

    def read(self) -> DirectoryRead: ...


def _ldif(directory: Directory) -> DirectorySource:
    from .ldif.source import LdifSource

    return LdifSource(directory)


def _live(directory: Directory) -> DirectorySource:
    from .ldap.source import LiveSource

    return LiveSource(directory)


SOURCES: dict[str, Callable[[Directory], DirectorySource]] = {
    "ldif": _ldif,
    "active-directory": _live,
    "openldap": _live,
}


def open_source(directory: Directory) -> DirectorySource:
    return SOURCES[directory.kind](directory)


def read_all(directories) -> list[DirectoryRead]:
    """Reads every directory; the first failure aborts before anything is planned."""
    return [open_source(d).read() for d in directories]
