"""Directory kinds: each reads one directory into a `DirectoryRead`.

One package per plug-in, all with the same face:

- `ldap/`: `kind: active-directory`, `openldap`, `389ds` and `freeipa`, a live read over LDAP
  (the kind is the flavour: the policy's attribute and filter defaults);
- `ldif/`: `kind: ldif`, a read of an LDIF snapshot;
- `entra/`: `kind: entra-id`, Microsoft Entra ID through Microsoft Graph (or a snapshot of it).

A plug-in package provides two functions, named like the ones here that dispatch to it:

- `open_source(directory) -> DirectorySource`. It gets the policy's `policy.model.Directory`
  (kind, connection or path, schema, users and groups scopes, mapping); the source's
  `read()` returns a complete `model.DirectoryRead` or raises
  `reconciler.errors.DirectoryError` (contract below). Nothing after the directory
  stage knows which kind produced the read.
- `check_directory(directory) -> list[CheckStep]`. What `reconciler check` prints for that
  directory: each step that can fail, in order, with `ok` and a one-line `detail`
  that names the cause and the fix; never a secret, never an exception for a
  failure the user can fix.

What the plug-ins share lives here, next to this registry: `entries` (raw values ->
`DirectoryEntry`/`DirectoryGroup`, identical for every kind), `membership` (the
group graph, nested and cycle-safe), `filters` (RFC 4515 filters evaluated offline,
with AD's matching rules).

A new kind is one new package with that face and one line in
`KINDS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from types import ModuleType
from typing import Protocol

from ..model import DirectoryRead
from ..policy.model import Directory
from ..progress import current

# `kind:` in the policy -> the plug-in package below this one that reads it
KINDS: dict[str, str] = {
    "ldif": "ldif",
    "active-directory": "ldap",
    "openldap": "ldap",
    "389ds": "ldap",
    "freeipa": "ldap",
    "entra-id": "entra",
}


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


@dataclass(frozen=True)
class CheckStep:
    """One line of `reconciler check`: a step (`dns ldaps://dc1`, `bind ...`, `snapshot`), whether it passed, why."""

    name: str
    ok: bool
    detail: str


def plugin(kind: str) -> ModuleType:
    """The plug-in package for a policy's `kind:`, imported on first use."""
    return import_module(f"{__name__}.{KINDS[kind]}")


def open_source(directory: Directory) -> DirectorySource:
    return plugin(directory.kind).open_source(directory)


def check_directory(directory: Directory) -> list[CheckStep]:
    return plugin(directory.kind).check_directory(directory)


def read_all(directories) -> list[DirectoryRead]:
    """Reads every directory; the first failure aborts before anything is planned.

    Each read is announced to the progress observer (`reconciler.progress`), and the sources
    report the entries they read to it, per page or chunk."""
    reads = []
    for d in directories:
        current().stage(f"reading {d.name}")
        reads.append(open_source(d).read())
    return reads
