"""The SCIM store's side file: what a SCIM server has no place for.

SCIM has no apply lock, no history, no group hierarchy and no way to say which
of a user's groups is their team or which directory entries they came from. A
small SQLite file next to the policy (`.reconciler/scim-state.db`) keeps them:

- the apply lock and the history, by composition with the SQLite store (the
  same tables, the same lock rules: TTL, takeover of a crashed holder on this
  host at once, refusal message; the same count of applies with no changes
  instead of lines of their own; read-only access is enough to read it, and a
  SQLite file of another application is refused untouched);
- "notes": per managed user, their team and their links; per managed team,
  its parent. The server stays the truth for everything the application sees;
  notes only say how to read it. A lost side file costs nothing but one apply:
  the next plan shows moves and link updates that only rewrite the notes.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ...errors import Location, StoreError
from ...model import Written
from ...policy.model import StoreConfig
from ..common import DEFAULT_LOCK_TTL, ApplyRecord, History, LockInfo, utc_now
from ..sql.sqlite import SqliteStore

NOTES_TABLE = "scim_notes"


@dataclass(frozen=True)
class UserNote:
    team: str | None
    links: tuple[str, ...]  # "directory:anchor", sorted
    written: Written | None = None  # what reconciler last wrote of them (None: a side file from before)


@dataclass
class Notes:
    users: dict[str, UserNote] = field(default_factory=dict)  # user key -> note
    teams: dict[str, str | None] = field(default_factory=dict)  # team key -> parent key

    def copy(self) -> Notes:
        return Notes(dict(self.users), dict(self.teams))


class SideFile:
    """The side file at `path`: notes, lock and history. Reading never creates it."""

    def __init__(self, path: str | Path, lock_ttl: int = DEFAULT_LOCK_TTL, clock: Callable[[], datetime] = utc_now):
        self.path = Path(path)
        self.where = str(self.path)
        self._sqlite = SqliteStore(StoreConfig(kind="sqlite", path=str(self.path)), lock_ttl=lock_ttl, clock=clock)
        self._sqlite.setting = "store.state_dir"  # the side file's place in the policy
        self._sqlite.companion_tables = frozenset({NOTES_TABLE})  # the notes are ours too, not another application's

    # ── lock and history: the SQLite store's own ──

    def lock(self, holder: str) -> AbstractContextManager[LockInfo]:
        return self._sqlite.lock(holder)

    def record(self, record: ApplyRecord, sync: Mapping[str, bytes] | None = None) -> ApplyRecord:
        """A history line; `sync`, the delta-read states of an apply that went through, with it."""
        return self._sqlite.record(record, sync)

    def count_unchanged(self, finished_at: str, sync: Mapping[str, bytes] | None = None) -> None:
        """An apply with no changes: no history line, counted for the next one (as the SQL stores do)."""
        self._sqlite.count_unchanged(finished_at, sync)

    def read_sync(self) -> dict[str, bytes]:
        return self._sqlite.read_sync()

    def history(self) -> History:
        return self._sqlite.history()

    def close(self) -> None:
        self._sqlite.close()

    # ── notes ──

    def load(self) -> Notes:
        """The notes; empty when there is no side file (yet) or it has none."""
        # read like the lock and history: read-only where this user cannot write, someone else's file refused
        rows = self._sqlite.read_table(NOTES_TABLE, "kind, key, data")
        notes = Notes()
        for kind, key, data in rows or ():
            try:
                value = json.loads(data)
                if kind == "user":
                    notes.users[key] = UserNote(value.get("team"), tuple(sorted(value.get("links") or ())),
                                                _written(value.get("written")))
                elif kind == "team":
                    notes.teams[key] = value.get("parent")
            except (ValueError, AttributeError, TypeError):
                continue  # a hand-edited row reads as no note; the next apply writes it again
        return notes

    def save(self, notes: Notes) -> None:
        """Replace the notes in one transaction, creating the file and its folder when needed."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(str(self.path), timeout=10.0)) as db, db:
                db.execute(f"CREATE TABLE IF NOT EXISTS {NOTES_TABLE} ("
                           "kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, key))")
                db.execute(f"DELETE FROM {NOTES_TABLE}")
                db.executemany(
                    f"INSERT INTO {NOTES_TABLE} (kind, key, data) VALUES (?, ?, ?)",
                    [("user", key, json.dumps({"team": n.team, "links": list(n.links),
                                               **({"written": _written_json(n.written)} if n.written else {})},
                                              sort_keys=True))
                     for key, n in sorted(notes.users.items())]
                    + [("team", key, json.dumps({"parent": parent})) for key, parent in sorted(notes.teams.items())],
                )
        except (sqlite3.Error, OSError) as error:
            raise StoreError(f"cannot write the SCIM store's side file: {error}; check that its folder is writable",
                             Location(self.where)) from None


def _written(value: object) -> Written | None:
    if not isinstance(value, dict):
        return None
    attributes = value.get("attributes")
    if not isinstance(value.get("email"), str) or not isinstance(value.get("display_name"), str) \
            or not isinstance(attributes, dict):
        return None
    return Written(value["email"], value["display_name"], tuple(sorted((str(k), str(v)) for k, v in attributes.items())))


def _written_json(written: Written) -> dict:
    return {"email": written.email, "display_name": written.display_name, "attributes": dict(written.attributes)}
