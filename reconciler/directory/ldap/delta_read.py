"""How a live LDAP read asks a server for changes: one `DeltaMethod` per kind of server.

`syncrepl.SyncRepl` (OpenLDAP: RFC 4533 refreshOnly against syncprov) and `usn.UsnChanges` (Active
Directory: uSNChanged watermarks with the server's invocationId) satisfy it. `LiveSource.read_with_state`
(source.py) decides between a full read and a delta; a method only talks to the server, and what is
done with its answer is here: `keyed_records` keeps a full read's entries, `delta_since` applies a
method's changes to the kept records (`KeptRecords`, decoded only if the method looks at them).

Searches are named `users:<base>` and `groups:<base>` (the base as the policy writes it); records are
`RawEntry` values keyed by the entry's unique id as text (entryUUID as the server prints it,
objectGUID in its canonical text form: `entries.guid_text`), the attributes as the full read asks
for them (the uuid attribute added).
"""
from __future__ import annotations

import binascii
from dataclasses import replace
from typing import Mapping, Protocol

from ...errors import DirectoryError
from ...policy.model import Directory
from ..delta import Delta, SearchState, SyncState, TokenRefused, UnreadableState
from .paged import RawEntry, Search


class DeltaMethod(Protocol):
    name: str  # "syncrepl", "usn": kept in the state, a state of another method is not used
    uuid_attribute: str  # asked for with every entry of a full read; its value keys the records

    def uuid_of(self, entry: RawEntry) -> str | None:
        """The entry's id as text (from `uuid_attribute`), None if it has none (then it cannot be kept)."""

    def start(self, connection, searches: Mapping[str, Search]) -> tuple[str, dict[str, str]]:
        """Before a full read: (server identity, token per search) such that a delta from these tokens
        reports every change made after this call. Changes made during the full read may be reported
        again; that is harmless (a delta sets records, it does not add to them)."""

    def identity(self, connection, searches: Mapping[str, Search]) -> str:
        """The identity of the server answering on `connection` (same value as `start` gives)."""

    def changes(self, connection, searches: Mapping[str, Search], cached: Mapping[str, Mapping[str, RawEntry]],
                tokens: Mapping[str, str]) -> dict[str, Delta]:
        """For each search, what changed since its token (`Delta.changed` values are `RawEntry`), or
        raises `delta.TokenRefused` (the caller then reads in full) or `DirectoryError` (the read fails,
        as a failed full read would: nothing is planned). `cached` is what each search returned at the
        last read, for methods that must work out which kept records a change affects."""


def delta_method_for(directory: Directory):
    """The change feed of the directory's kind: uSNChanged on Active Directory, RFC 4533 elsewhere."""
    if directory.flavour == "active-directory":
        from .usn import UsnChanges

        return UsnChanges(page_size=directory.page_size)
    from .syncrepl import SyncRepl

    return SyncRepl()


def keyed_records(entries, method: DeltaMethod, directory: Directory) -> dict[str, RawEntry]:
    """A full read's entries keyed by the method's uuid (a state is kept of them); an entry without one fails
    the read: it could not be matched with what a later delta says of it."""
    records: dict[str, RawEntry] = {}
    for raw in entries:
        uuid = method.uuid_of(raw)
        if uuid is None:
            raise DirectoryError(f"directory {directory.name}: entry {raw.dn} has no {method.uuid_attribute}, "
                                 f"which delta reads key entries by; remove delta: from this directory",
                                 directory.location)
        records[uuid] = raw
    return records


def delta_since(connection, method: DeltaMethod, searches: Mapping[str, Search], kept: SyncState
                ) -> tuple[dict[str, SearchState], int]:
    """Each search's state after the server's changes, and how many records they touched. A search the
    server reports no change for keeps its records as they were kept (still compressed if never used)."""
    if any(name not in kept.searches for name in searches):
        raise TokenRefused("a search has no kept token")
    cached = {name: KeptRecords(kept.searches[name]) for name in searches}
    deltas = method.changes(connection, searches, cached, {name: kept.searches[name].token for name in searches})
    result, touched = {}, 0
    for name in searches:
        delta, before = deltas[name], kept.searches[name]
        if not delta.changed and not delta.removed and delta.present is None:
            result[name] = SearchState(delta.token, packed=before.packed) if before.packed is not None \
                else SearchState(delta.token, cached[name].entries())
            continue
        # what the server sent, as a kept record reads back: unchanged entries it sends again compare equal
        delta = replace(delta, changed={key: entry.kept() for key, entry in delta.changed.items()})
        records, count = delta.applied_to(cached[name].entries())
        result[name] = SearchState(delta.token, records)
        touched += count
    return result, touched


class KeptRecords(Mapping):
    """A search's kept records as `RawEntry` values, decoded and converted the first time they are asked for:
    a delta method that finds nothing changed never makes them."""

    def __init__(self, state: SearchState):
        self._state = state
        self._entries: dict[str, RawEntry] | None = None

    def entries(self) -> dict[str, RawEntry]:
        if self._entries is None:
            from_record = RawEntry.from_record
            try:
                self._entries = {key: record if isinstance(record, RawEntry) else from_record(record)
                                 for key, record in self._state.records.items()}
            except (ValueError, TypeError, KeyError, IndexError, binascii.Error) as error:
                raise UnreadableState(f"the kept records do not read ({error.__class__.__name__})") from None
        return self._entries

    # the dict's own methods once made: the delta methods walk these records in loops
    def __getitem__(self, key: str) -> RawEntry:
        return self.entries()[key]

    def __iter__(self):
        return iter(self.entries())

    def __len__(self) -> int:
        return len(self.entries())

    def __contains__(self, key: object) -> bool:
        return key in self.entries()

    def get(self, key: str, default=None):
        return self.entries().get(key, default)

    def items(self):
        return self.entries().items()

    def keys(self):
        return self.entries().keys()

    def values(self):
        return self.entries().values()
