"""The SQL store on SQLite, the default: one file at `store.path` (`store: {kind: sqlite, path: ...}`).

Everything but the connection, the write transaction's start and the driver's
errors is `SqlStore`'s (store.py), shared with PostgreSQL.

A SQLite database of another application is refused before anything in it changes.
"""
from __future__ import annotations

import sqlite3
import urllib.parse
from pathlib import Path
from typing import Any

from ...errors import Location, StoreError
from ...policy.model import StoreConfig
from ..common import DEFAULT_LOCK_TTL, Clock, utc_now
from .schema import SQLITE
from .store import SqlStore, Tx


class SqliteStore(SqlStore):
    """The default store: one SQLite file at `store.path`, created on the first apply or lock."""

    kind = "sqlite"
    dialect = SQLITE
    busy_timeout = 10.0  # seconds a write waits for another process's write transaction
    setting = "store.path"  # what names the file in the policy, for the advice in messages
    companion_tables: frozenset[str] = frozenset()  # tables of a file that is this store plus more (SCIM's notes)

    def __init__(self, config: StoreConfig, lock_ttl: int = DEFAULT_LOCK_TTL, clock: Clock = utc_now):
        super().__init__(lock_ttl=lock_ttl, clock=clock)
        file = config.file()
        if not file:
            raise StoreError("store.path is not set; a sqlite store needs the file it keeps users in")
        self.path = Path(file)
        self.where = str(self.path)
        self._connection: sqlite3.Connection | None = None

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._connection is not None:
            return self._connection
        if not create and not self.path.exists():
            return None  # plan must not create the store: reading a store that is not there reads as empty
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(
                    f"cannot create the folder for the store: {error.strerror}; check store.path",
                    Location(self.where),
                ) from None
        # mode=rw never creates the file, even if it vanished since the check above
        uri = f"file:{urllib.parse.quote(str(self.path))}?mode={'rwc' if create else 'rw'}"
        connection = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
        )
        connection.execute("PRAGMA foreign_keys = ON")
        self._connection = connection
        return connection

    def _prepare_connection(self, connection: Any) -> None:
        # WAL: plan's reads never wait for an apply's write, and a crash mid-apply leaves the file consistent
        connection.execute("PRAGMA journal_mode = WAL")

    def _begin_write(self) -> str:
        # IMMEDIATE takes the write lock at BEGIN, so the fingerprint read inside
        # the transaction cannot be overtaken by another writer before we write
        return "BEGIN IMMEDIATE"

    def _table_exists(self, tx: Tx, name: str) -> bool:
        return tx.one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)) is not None

    def _columns(self, tx: Tx, table: str) -> set[str]:
        return {row[1] for row in tx.all(f"PRAGMA table_info({table})")}

    def _foreign_tables(self, tx: Tx) -> list[str]:
        # a SQLite file is one application's: any table of its own (not SQLite's sqlite_*) makes it that one's
        names = tx.all("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite!_%' "
                       "ESCAPE '!' ORDER BY name")
        return [name for (name,) in names if name not in self.companion_tables]

    def _not_a_store(self, tx: Tx, tables: list[str]) -> str:
        shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
        return (f"not a reconciler store: this SQLite database has tables of its own ({shown}) and no reconciler "
                f"schema_version table, so it was left as it is; point {self.setting} at reconciler's store file, "
                "or at a path that does not exist yet")


    def _driver_error(self, error: Exception) -> StoreError | None:
        if not isinstance(error, sqlite3.Error):
            return None
        text = str(error)
        if "database is locked" in text or "database is busy" in text:
            message = (
                f"the store is busy: another process held a write transaction for over {self.busy_timeout:g} s; "
                "try again"
            )
        elif "file is not a database" in text:
            message = (
                f"not a SQLite database; point {self.setting} at reconciler's store file (or a path that does not "
                "exist yet)"
            )
        elif "unable to open database file" in text:
            message = "cannot open the store file; check that store.path is a writable file in a writable folder"
        elif "readonly" in text:
            message = "the store file is read-only; apply needs write access to it and its folder"
        else:
            message = f"SQLite error: {text}"
        return StoreError(message, Location(self.where))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
            self._schema_ready = False
