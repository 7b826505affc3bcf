"""How a live LDAP read asks a server for changes: one `DeltaMethod` per kind of server.

`syncrepl.SyncRepl` (OpenLDAP, 389 DS: RFC 4533 refreshOnly against syncprov / the content sync
plug-in) and `usn.UsnChanges` (Active Directory: uSNChanged watermarks with the server's
invocationId) satisfy it. `LiveSource.read_with_state` (source.py) keeps the records and decides
between a full read and a delta; a method only talks to the server.

Searches are named `users:<base>` and `groups:<base>` (the base as the policy writes it); records are
`RawEntry` values keyed by the entry's unique id as text (entryUUID as the server prints it,
objectGUID in its canonical text form: `entries.guid_text`), the attributes as the full read asks
for them (the uuid attribute added).
"""
from __future__ import annotations

from typing import Mapping, Protocol

from ..delta import Delta
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
