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
from datetime import datetime, timezone
from importlib import import_module
from types import ModuleType
from typing import Mapping, Protocol

from ..model import DirectoryRead
from ..policy.model import Directory
from ..progress import current
from .delta import ReadNote, decode, encode

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
    """Reads every directory in full; the first failure aborts before anything is planned.

    Each read is announced to the progress observer (`reconciler.progress`), and the sources
    report the entries they read to it, per page or chunk."""
    reads = []
    for d in directories:
        current().stage(f"reading {d.name}")
        reads.append(open_source(d).read())
    return reads


@dataclass
class Reads:
    """Every directory's read, how each was made, and the delta states to keep with the next apply.

    `unchanged`: every directory was read as a delta that changed nothing and, asked to stop there, no read
    was built (`reads` is empty): the caller has the plan this content led to (`plan.steady`)."""

    reads: list[DirectoryRead]
    notes: list[ReadNote]
    states: dict[str, bytes]  # directory name -> `delta.encode`d state (directories with `delta:` only; none without keep_states)
    unchanged: bool = False


def read_with_states(directories, kept: Mapping[str, bytes], now: datetime | None = None, *,
                     stop_if_unchanged: bool = False, keep_states: bool = True) -> Reads:
    """Like `read_all`, with delta reads where a directory asks for them (`delta:`) and its source can make
    them (a source with `read_with_state`; a snapshot is read in full). `kept`: the states the store keeps.

    With `stop_if_unchanged`, every directory is first asked only for its changes; if none has any, no read
    is built (`Reads.unchanged`); as soon as one has, every directory is read as usual (that one's read,
    built already, is kept, not made again).

    Without `keep_states` no new state is encoded, and `states` is empty: for a plan that is only shown or
    saved (the apply plans again and keeps what its own reads found), encoding every record again was
    1.3 s of a 100,000-user delta plan."""
    now = now or datetime.now(timezone.utc)
    made: dict[str, tuple[DirectoryRead | None, bytes, ReadNote]] = {}
    if stop_if_unchanged and all(d.delta is not None for d in directories):
        for d in directories:
            current().stage(f"asking {d.name} what changed")
            source = open_source(d)
            if not getattr(source, "stops_if_unchanged", False):
                break
            made[d.name] = _with_state(source, d, kept, now, stop_if_unchanged=True, keep_state=keep_states)
            if made[d.name][0] is not None:  # this one changed: the plan is made as always
                break
        else:
            return Reads([], [note for _, _, note in made.values()],
                         {name: state for name, (_, state, _) in made.items() if keep_states}, unchanged=True)
    reads, notes, states = [], [], {}
    for d in directories:
        read, state, note = made.pop(d.name, (None, b"", None))
        if read is None:  # not asked yet, or asked only whether it changed
            current().stage(f"reading {d.name}")
            source = open_source(d)
            if d.delta is None or not hasattr(source, "read_with_state"):
                reads.append(source.read())
                continue
            read, state, note = _with_state(source, d, kept, now, keep_state=keep_states)
        reads.append(read)
        notes.append(note)
        if keep_states:
            states[d.name] = state
    return Reads(reads, notes, states)


def _with_state(source, directory, kept: Mapping[str, bytes], now: datetime, *, stop_if_unchanged: bool = False,
                keep_state: bool = True) -> tuple[DirectoryRead | None, bytes, ReadNote]:
    """One directory read from (or, when it cannot be trusted, despite) the state the store keeps for it:
    the read (None if it changed nothing and `stop_if_unchanged`), the state to keep (b"" without
    `keep_state`), how it was read."""
    state, why_not = decode(kept.get(directory.name))
    # only sources that stop if unchanged are asked to (stops_if_unchanged); Entra's read_with_state takes no such option
    options = {"stop_if_unchanged": True} if stop_if_unchanged else {}
    read, new_state, note = source.read_with_state(state, why_not, directory.delta.full_read_every, now, **options)
    return read, encode(new_state) if keep_state else b"", note
