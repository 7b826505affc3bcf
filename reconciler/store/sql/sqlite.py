"""The SQL store on SQLite, the default: one file at `store.path` (`store: {kind: sqlite, path: ...}`).

Everything but the connection, the write transaction's start and the driver's
errors is `SqlStore`'s (store.py), shared with PostgreSQL.

Reading needs only read access: a store this user cannot write (a read-only
file or folder, a copy on read-only media) is opened read-only, so plan,
history and explain work, and apply says it needs write access. A SQLite
database of another application is refused before anything in it changes.
"""
from __future__ import annotations

import os
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ...errors import Location, StoreError
from ...policy.model import StoreConfig
from ..common import DEFAULT_LOCK_TTL, Clock, utc_now
from .schema import SQLITE
from .store import SqlStore, Tx

WAL_HEADER = b"\x02\x02"  # bytes 18 and 19 of a SQLite file (its write and read versions) in WAL mode


class SqliteStore(SqlStore):
    """The default store: one SQLite file at `store.path`, created on the first apply or lock."""

    kind = "sqlite"
    dialect = SQLITE
    busy_timeout = 10.0  # seconds a write waits for another process's write transaction
    setting = "store.path"  # what names the file in the policy, for the advice in messages
    companion_tables: frozenset[str] = frozenset()  # tables of a file that is this store plus more (SCIM's notes)

    def __init__(self, config: StoreConfig, lock_ttl: int = DEFAULT_LOCK_TTL, clock: Clock = utc_now):
        super().__init__(config, lock_ttl=lock_ttl, clock=clock)
        file = config.file()
        if not file:
            raise StoreError("store.path is not set; a sqlite store needs the file it keeps users in")
        self.path = Path(file)
        self.where = str(self.path)
        self._connection: sqlite3.Connection | None = None
        self.read_only = False  # the open connection is read-only: this user cannot write the store
        self._unlocked: tuple[int, ...] | None = None  # the file as an immutable read found it (see _open_read_only)

    # ── connections: read-write, or read-only for a store this user cannot write ──

    def _connect(self, create: bool, write: bool) -> sqlite3.Connection | None:
        if self._connection is not None:
            if not (write and self.read_only):
                return self._connection
            self.close()  # a read-only connection cannot write: open again for writing, which needs write access
        if not create and not self.path.exists():
            return None  # plan must not create the store: reading a store that is not there reads as empty
        if not write and not self._may_write():
            return self._open_read_only()
        if write:
            self._require_write_access()
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(
                    f"cannot create the folder for the store: {error.strerror}; check store.path",
                    Location(self.where),
                ) from None
        # mode=rw never creates the file, even if it vanished since the check above
        return self._open(f"mode={'rwc' if create else 'rw'}")

    def _open(self, options: str) -> sqlite3.Connection:
        uri = f"file:{urllib.parse.quote(str(self.path))}?{options}"
        connection = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
        )
        self._connection = connection  # from here close() closes it, whatever fails next
        connection.execute("PRAGMA foreign_keys = ON")
        return connection

    def _folder(self) -> Path:
        return self.path.parent if str(self.path.parent) else Path(".")

    def _may_write(self) -> bool:
        # os.access: what this user may do (root without CAP_DAC_OVERRIDE included), a read-only mount too
        folder_writable = os.access(self._folder(), os.W_OK | os.X_OK)
        return folder_writable and (not self.path.exists() or os.access(self.path, os.W_OK))

    def _require_write_access(self) -> None:
        """Say up front, in one line, that writing needs write access (SQLite would say "attempt to write a
        readonly database", or fail later on its -wal file)."""
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise StoreError(
                "the store file is read-only for this user; apply needs write access to it and its folder "
                "(plan, history and explain only read it)",
                Location(self.where),
            )
        folder = self._folder()
        if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            raise StoreError(
                f"the store's folder {folder} is not writable by this user; apply needs write access to the store "
                "file and its folder, where SQLite keeps its -wal and -shm files (plan, history and explain only "
                "read)",
                Location(self.where),
            )

    def _open_read_only(self) -> sqlite3.Connection:
        """A connection that reads the store without writing anything, in the file or next to it.

        mode=ro is enough for a store in rollback-journal mode, and for one in WAL
        mode whose -wal file is there (a writer is connected, or one crashed):
        SQLite shares its locks with writers through the -shm file, read-only if it
        must. But a WAL store whose last connection closed has no -wal and no -shm,
        and SQLite cannot read it with mode=ro without creating the -shm file: in a
        read-only folder that fails ("attempt to write a readonly database"), in a
        writable one it would leave files this user owns next to another user's
        store, which can stop that user's next apply.

        Then the file is opened with immutable=1: without a -wal file every commit
        is in the file, so it holds the whole store. immutable=1 takes no locks and
        trusts the file not to change, which is wrong if a writer starts meanwhile
        (its checkpoint would write pages under the reader's feet, or into a page
        cache kept between transactions); so the file's size and times are noted at
        opening and checked after every transaction, and a read that overlapped a
        write fails asking for the command again (`_transaction`). A write that
        stays in the writer's new -wal file changes nothing here: the read then saw
        the store as it was, and a plan made from it is refused as stale at apply.
        """
        self.read_only = True
        wal = Path(f"{self.path}-wal")
        try:
            with open(self.path, "rb") as handle:
                header = handle.read(100)
        except OSError as error:
            raise StoreError(f"cannot read the store file: {error.strerror}; check its permissions",
                             Location(self.where)) from None
        if header[18:20] == WAL_HEADER and not wal.exists():
            self._unlocked = self._signature()
            return self._open("mode=ro&immutable=1")
        return self._open("mode=ro")

    def _signature(self) -> tuple[int, ...]:
        stat = self.path.stat()
        return stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns

    @contextmanager
    def _transaction(self, write: bool, create: bool = False) -> Iterator[Tx | None]:
        with super()._transaction(write, create) as tx:
            yield tx
        if self._unlocked is not None and self._changed_since_opened():
            self.close()
            raise StoreError(
                "the store file changed while it was read: another process wrote to it, and this user, without "
                "write access to the store's folder, cannot share SQLite's locks with it; run the command again",
                Location(self.where),
            )

    def _changed_since_opened(self) -> bool:
        try:
            return self._signature() != self._unlocked
        except OSError:
            return True

    def _prepare_connection(self, connection: Any) -> None:
        # WAL: plan's reads never wait for an apply's write, and a crash mid-apply leaves the file consistent
        connection.execute("PRAGMA journal_mode = WAL")

    def _begin_write(self) -> str:
        # IMMEDIATE takes the write lock at BEGIN, so the fingerprint read inside
        # the transaction cannot be overtaken by another writer before we write
        return "BEGIN IMMEDIATE"

    def read_table(self, table: str, columns: str) -> list[tuple] | None:
        """The rows of another table kept in this file (the SCIM side file's notes), read like the store itself:
        read-only where need be, never creating the file; None where the store or the table is not there."""
        with self._reading() as tx:
            if tx is None or not self._table_exists(tx, table):
                return None
            return [tuple(row) for row in tx.all(f"SELECT {columns} FROM {table}")]

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
        elif self.read_only and ("readonly" in text or "unable to open database file" in text):
            message = (f"cannot read the store without write access ({text}): SQLite must write next to it to read "
                       f"what its last writer left in the -wal file; run plan once as a user who may write to "
                       f"{self._folder()}")
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
        self.read_only = False
        self._unlocked = None
