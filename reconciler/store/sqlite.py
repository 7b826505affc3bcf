"""The SQL store: the application's users in SQL tables, SQLite by default.

`SqlStore` holds everything that is the same on every SQL engine (reading the
state, applying changes, the apply lock, history), written in portable SQL
with `?` placeholders. An engine subclass supplies the connection, how a write
transaction starts, and how its driver's errors read; `SqliteStore` is the
first. The tables are in `sql_schema.py` and docs/store-schema.md.
"""
from __future__ import annotations

import sqlite3
import urllib.parse
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import Location, LockHeld, ReconcilerError, StalePlan, StoreError
from ..model import Change, Link, StoreState, StoreUser
from ..policy.model import StoreConfig
from . import ApplyRecord, LockInfo, failures_recorded
from .records import fingerprint as content_fingerprint
from .records import (
    HISTORY_COLUMNS,
    ChangeRejected,
    history_record,
    history_values,
    local_id,
    membership_parts,
    store_team,
    store_user,
    summarise,
    team_columns,
    user_columns,
)
from .sql_schema import LATEST_VERSION, SQLITE, Dialect, apply_migrations

DEFAULT_LOCK_TTL = 900  # seconds; an apply that takes longer than this is presumed crashed
STALE_MESSAGE = "plan is stale: the store changed since the plan was made; run plan again"
USER_COLUMNS = "id, key, email, display_name, attributes, team_key, status, managed"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Tx:
    """A cursor inside one transaction, taking `?` placeholders whatever the driver."""

    def __init__(self, cursor: Any, param: Callable[[str], str]):
        self.cursor, self.param = cursor, param

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.cursor.execute(self.param(sql), tuple(params))
        return self.cursor

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.execute(sql, params).fetchall())


class SqlStore:
    """The engine-independent part of a SQL store. Subclasses fill in the hooks below."""

    kind = "sql"
    dialect: Dialect
    where = "store"  # names the store in messages: a path or a URL without credentials

    def __init__(self, lock_ttl: int = DEFAULT_LOCK_TTL, clock: Clock = utc_now):
        self.lock_ttl = lock_ttl
        self.clock = clock
        self._lock_token: str | None = None
        self._schema_ready = False

    # ── hooks ──

    def _connect(self, create: bool) -> Any | None:
        """An open connection in autocommit mode, or None when the store does not exist and create is False."""
        raise NotImplementedError

    def _begin_write(self) -> str:
        """The statement that starts a transaction holding the write lock from its start."""
        raise NotImplementedError

    def _table_exists(self, tx: Tx, name: str) -> bool:
        raise NotImplementedError

    def _param(self, sql: str) -> str:
        return sql

    def _driver_error(self, error: Exception) -> StoreError | None:
        """The driver's error as one clear line, or None if `error` is not the driver's."""
        raise NotImplementedError

    def _prepare_connection(self, connection: Any) -> None:
        """Engine settings applied once before the first write (e.g. SQLite's WAL mode)."""

    def close(self) -> None:
        raise NotImplementedError

    # ── transactions ──

    @contextmanager
    def _transaction(self, write: bool, create: bool = False) -> Iterator[Tx | None]:
        """One transaction; yields None when the store does not exist and create is False.

        Driver errors leave as StoreError; whatever happens, the transaction is
        either committed or rolled back before this returns.
        """
        with self._driver_errors():
            connection = self._connect(create)
            if connection is None:
                yield None
                return
            if write and not self._schema_ready:
                self._prepare_connection(connection)
            cursor = connection.cursor()
            tx = Tx(cursor, self._param)
            cursor.execute(self._begin_write() if write else "BEGIN")
            try:
                if write and not self._schema_ready:
                    self._ensure_schema(tx)
                yield tx
                cursor.execute("COMMIT")
            except BaseException:
                self._rollback(cursor)
                raise
            # only now: a rolled-back transaction takes the tables it created with it
            self._schema_ready = self._schema_ready or write

    @staticmethod
    def _rollback(cursor: Any) -> None:
        try:
            cursor.execute("ROLLBACK")
        except Exception:  # a failed COMMIT may already have ended the transaction
            pass

    @contextmanager
    def _driver_errors(self) -> Iterator[None]:
        try:
            yield
        except ReconcilerError:
            raise
        except Exception as error:
            translated = self._driver_error(error)
            if translated is None:
                raise
            raise translated from None

    def _schema_version(self, tx: Tx) -> int:
        if not self._table_exists(tx, "schema_version"):
            return 0
        row = tx.one("SELECT max(version) FROM schema_version")
        return int(row[0] or 0)

    def _ensure_schema(self, tx: Tx) -> None:
        """Create or upgrade the tables, inside the caller's write transaction."""
        version = self._check_version(tx)
        if version < LATEST_VERSION:
            now = iso(self.clock())
            apply_migrations(tx.cursor, self.dialect, version, now, self._param)
            if version == 0:
                tx.execute("INSERT INTO meta (key, value) VALUES (?, ?)", ("created_at", now))
                tx.execute("INSERT INTO meta (key, value) VALUES (?, ?)", ("created_by", f"reconciler {__version__}"))

    def _check_version(self, tx: Tx) -> int:
        version = self._schema_version(tx)
        if version > LATEST_VERSION:
            raise StoreError(
                f"the store has schema version {version} but this reconciler knows only up to {LATEST_VERSION}; "
                "upgrade reconciler",
                Location(self.where),
            )
        return version

    @contextmanager
    def _reading(self) -> Iterator[Tx | None]:
        """A read transaction on the current tables; None when there is no store yet.

        Never creates a store. An existing store with an older schema is upgraded
        first: that is not a content change, so plans made against it stay valid.
        """
        version = LATEST_VERSION
        if not self._schema_ready:
            with self._transaction(write=False) as tx:
                version = self._check_version(tx) if tx is not None else 0
            if 0 < version < LATEST_VERSION:
                with self._transaction(write=True):
                    pass
        with self._transaction(write=False) as tx:
            yield tx if version > 0 else None

    # ── read ──

    def read(self) -> StoreState:
        """All users (managed and not) and teams, and their fingerprint. Never creates the store."""
        with self._reading() as tx:
            if tx is None:
                return StoreState(users={}, teams={}, fingerprint=content_fingerprint([], []))
            return self._read_state(tx)

    def fingerprint(self) -> str:
        return self.read().fingerprint

    def _read_state(self, tx: Tx) -> StoreState:
        links: dict[int, list[Link]] = defaultdict(list)
        # rows streamed from the cursor, not fetched whole: at 100,000 users each list is tens of megabytes
        for user_id, directory, anchor in tx.execute("SELECT user_id, directory, anchor FROM user_links"):
            links[user_id].append(Link(directory, anchor))
        memberships: dict[int, list[str]] = defaultdict(list)
        for user_id, team_key in tx.execute("SELECT user_id, team_key FROM memberships"):
            memberships[user_id].append(team_key)
        users: dict[str, StoreUser] = {}
        parsed: dict[str, tuple[tuple[str, str], ...]] = {}
        for row in tx.execute(f"SELECT {USER_COLUMNS} FROM users"):
            try:
                user = store_user(row, links[row[0]], memberships[row[0]], parsed)
            except ValueError as error:
                raise StoreError(
                    f"users row id {row[0]}: {error}; fix the row (attributes must be a JSON object)",
                    Location(self.where),
                ) from None
            if user.key in users:
                raise StoreError(
                    f"users row id {row[0]}: key {user.key} is also another user's key; "
                    "local:<id> keys belong to rows whose key is NULL",
                    Location(self.where),
                )
            users[user.key] = user
        teams = {row[0]: store_team(row) for row in tx.all("SELECT key, name, parent_key, managed FROM teams")}
        users = dict(sorted(users.items()))
        teams = dict(sorted(teams.items()))
        return StoreState(users=users, teams=teams, fingerprint=content_fingerprint(users.values(), teams.values()))

    # ── lock ──

    @contextmanager
    def lock(self, holder: str) -> Iterator[LockInfo]:
        """Hold the apply lock for the duration of the block; released even on exceptions."""
        info, token = self._acquire(holder)
        self._lock_token = token
        try:
            yield info
        except BaseException:
            try:
                self._release(token)
            except ReconcilerError:
                pass  # the block's own error says more; the lock expires after its TTL
            raise
        else:
            self._release(token)

    def _release(self, token: str) -> None:
        self._lock_token = None
        with self._transaction(write=True) as tx:
            assert tx is not None
            # by token: if this lock expired and was taken over, the successor's stays
            tx.execute("DELETE FROM apply_lock WHERE name = 'apply' AND token = ?", (token,))

    def _acquire(self, holder: str) -> tuple[LockInfo, str]:
        token = uuid.uuid4().hex
        now = self.clock()
        with self._transaction(write=True, create=True) as tx:
            assert tx is not None
            takeover = None
            current = tx.one("SELECT holder, token, since, ttl_seconds FROM apply_lock WHERE name = 'apply'")
            if current is not None:
                old_holder, _, since, ttl = current
                expires = self._expiry(since, ttl)
                if now < expires:
                    raise LockHeld(self._held_message(old_holder, since, expires))
                takeover = (
                    f"took over the lock of {old_holder} (held since {since}, expired at {iso(expires)}); "
                    "that apply presumably crashed"
                )
                tx.execute("DELETE FROM apply_lock WHERE name = 'apply'")
            since_text = iso(now)
            tx.execute(
                "INSERT INTO apply_lock (name, holder, token, since, ttl_seconds) VALUES ('apply', ?, ?, ?, ?)",
                (holder, token, since_text, self.lock_ttl),
            )
        return LockInfo(holder=holder, since=since_text, expired_takeover=takeover), token

    @staticmethod
    def _expiry(since: str, ttl: int) -> datetime:
        try:
            return datetime.fromisoformat(since.replace("Z", "+00:00")) + timedelta(seconds=int(ttl))
        except (ValueError, TypeError):  # a hand-edited row: treat as expired rather than lock everyone out
            return datetime.min.replace(tzinfo=timezone.utc)

    @staticmethod
    def _held_message(holder: str, since: str, expires: datetime) -> str:
        return (
            f"store is locked by {holder} since {since}; another apply is running "
            f"(the lock expires at {iso(expires)})"
        )

    def _check_lock(self, tx: Tx) -> None:
        """Refuse to write while another live lock is held; an apply without any lock is allowed."""
        current = tx.one("SELECT holder, token, since, ttl_seconds FROM apply_lock WHERE name = 'apply'")
        if current is None:
            return
        holder, token, since, ttl = current
        expires = self._expiry(since, ttl)
        if token != self._lock_token and self.clock() < expires:
            raise LockHeld(self._held_message(holder, since, expires))

    # ── apply ──

    def apply(self, changes: Sequence[Change], expected_fingerprint: str, record: ApplyRecord) -> ApplyRecord:
        """Apply every change or none, and record the attempt in the history either way."""
        record = replace(record, counts=record.counts or summarise(changes))
        with failures_recorded(self.record, lambda outcome: self._finished(record, outcome)):
            with self._transaction(write=True, create=True) as tx:
                assert tx is not None
                self._check_lock(tx)
                if self._read_state(tx).fingerprint != expected_fingerprint:
                    raise StalePlan(STALE_MESSAGE)
                _ChangeWriter(tx, iso(self.clock()), self.where).apply_all(changes)
                return self._insert_history(tx, self._finished(record, "applied"))

    def record(self, record: ApplyRecord) -> ApplyRecord:
        """Add one history line on its own, e.g. an apply refused before it reached the store."""
        with self._transaction(write=True, create=True) as tx:
            assert tx is not None
            return self._insert_history(tx, record)

    def _finished(self, record: ApplyRecord, outcome: str) -> ApplyRecord:
        return replace(record, finished_at=iso(self.clock()), outcome=outcome)

    @staticmethod
    def _insert_history(tx: Tx, record: ApplyRecord) -> ApplyRecord:
        row = tx.one(
            f"INSERT INTO apply_history ({HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            history_values(record),
        )
        return replace(record, id=int(row[0]))

    def history(self) -> list[ApplyRecord]:
        """Every recorded apply, newest first. Never creates the store."""
        with self._reading() as tx:
            if tx is None:
                return []
            rows = tx.all(f"SELECT id, {HISTORY_COLUMNS} FROM apply_history ORDER BY id DESC")
        return [history_record(row) for row in rows]


class _ChangeWriter:
    """Applies plan changes to the tables inside one transaction.

    Links are written last: within one plan a link may move from one user to
    another (a merge, a re-hire), and the UNIQUE (directory, anchor) constraint
    would otherwise depend on which of the two changes sorts first.
    """

    def __init__(self, tx: Tx, now: str, where: str):
        self.tx, self.now, self.where = tx, now, where
        self.pending_links: list[tuple[Change, int, tuple[Link, ...]]] = []
        self.written_teams: list[tuple[Change, str | None]] = []  # team creates/updates and their parent
        self.deleted_teams: list[Change] = []

    def apply_all(self, changes: Sequence[Change]) -> None:
        for change in changes:
            self._guarded(change, lambda: self._apply(change))
        for change, user_id, links in self.pending_links:
            self._guarded(change, lambda: self._write_links(user_id, links))
        for change, parent in self.written_teams:
            if parent is not None:
                self._guarded(change, lambda: self._require_team(parent, "parent team"))
        for change in self.deleted_teams:
            self._guarded(change, lambda: self._require_no_children(change.key))

    def _guarded(self, change: Change, step: Callable[[], None]) -> None:
        try:
            step()
        except ChangeRejected as rejected:
            raise StoreError(
                f"cannot apply {change.kind} {change.action} {change.key}: {rejected.reason}; "
                "nothing was changed (the whole apply was rolled back)",
                Location(self.where),
            ) from None

    def _apply(self, change: Change) -> None:
        handler = self.HANDLERS.get((change.kind, change.action))
        if handler is None:
            raise ChangeRejected("this store does not know that kind of change")
        handler(self, change)

    # ── lookups ──

    def _find_user(self, key: str) -> tuple[int, bool] | None:
        user_id = local_id(key)
        if user_id is None:
            row = self.tx.one("SELECT id, managed FROM users WHERE key = ?", (key,))
        else:
            row = self.tx.one("SELECT id, managed FROM users WHERE key = ? OR (key IS NULL AND id = ?)", (key, user_id))
        return (int(row[0]), bool(row[1])) if row else None

    def _managed_user(self, key: str) -> int:
        found = self._find_user(key)
        if found is None:
            raise ChangeRejected(f"user {key} is not in the store")
        user_id, managed = found
        if not managed:
            raise ChangeRejected(
                f"user {key} was created in the application and is not managed; only adopt may change it"
            )
        return user_id

    def _team(self, key: str) -> bool | None:
        """Whether the team is managed, or None when there is no such team."""
        row = self.tx.one("SELECT managed FROM teams WHERE key = ?", (key,))
        return bool(row[0]) if row else None

    def _require_team(self, key: str | None, what: str = "team") -> None:
        if key is not None and self._team(key) is None:
            raise ChangeRejected(f"{what} {key} does not exist")

    def _managed_team(self, key: str) -> None:
        managed = self._team(key)
        if managed is None:
            raise ChangeRejected(f"team {key} is not in the store")
        if not managed:
            raise ChangeRejected(f"team {key} was created in the application and is not managed")

    # ── users ──

    def _create_user(self, change: Change) -> None:
        columns, links = user_columns(change.after or {}, "create")
        if self._find_user(change.key) is not None:
            raise ChangeRejected(f"a user with key {change.key} already exists")
        self._require_team(columns["team_key"])
        row = self.tx.one(
            "INSERT INTO users"
            " (key, email, display_name, attributes, team_key, status, managed, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?) RETURNING id",
            (change.key, columns["email"], columns["display_name"], columns["attributes"], columns["team_key"],
             columns["status"], self.now, self.now),
        )
        self._replace_links(change, int(row[0]), links or ())

    def _adopt_user(self, change: Change) -> None:
        old_key = (change.before or {}).get("key")
        if not isinstance(old_key, str):
            raise ChangeRejected('before must name the user to adopt as {"key": "local:<id>", ...}')
        columns, links = user_columns(change.after or {}, "adopt")
        found = self._find_user(old_key)
        if found is None:
            raise ChangeRejected(f"the user to adopt, {old_key}, is not in the store")
        user_id, managed = found
        if managed:
            raise ChangeRejected(f"the user to adopt, {old_key}, is already managed")
        if change.key != old_key and self._find_user(change.key) is not None:
            raise ChangeRejected(f"a user with key {change.key} already exists")
        self._require_team(columns["team_key"])
        self._update_row(user_id, {"key": change.key, "managed": 1, **columns})
        self._replace_links(change, user_id, links or ())

    def _change_user(self, change: Change) -> None:
        """update, move, reactivate, deactivate: set the fields `after` names."""
        user_id = self._managed_user(change.key)
        columns, links = user_columns(change.after or {}, change.action)
        if not columns and links is None:
            raise ChangeRejected("after names no field to change")
        if "team_key" in columns:
            self._require_team(columns["team_key"])
        self._update_row(user_id, columns)
        if links is not None:
            self._replace_links(change, user_id, links)

    def _delete_user(self, change: Change) -> None:
        user_id = self._managed_user(change.key)
        # explicit rather than trusting ON DELETE CASCADE: foreign keys may be off on another connection's engine
        self.tx.execute("DELETE FROM memberships WHERE user_id = ?", (user_id,))
        self.tx.execute("DELETE FROM user_links WHERE user_id = ?", (user_id,))
        self.tx.execute("DELETE FROM users WHERE id = ?", (user_id,))
        self.pending_links = [p for p in self.pending_links if p[1] != user_id]

    def _update_row(self, user_id: int, columns: dict[str, Any]) -> None:
        names = [*sorted(columns), "updated_at"]  # a links-only change still marks the user updated
        values = {**columns, "updated_at": self.now}
        assignments = ", ".join(f"{name} = ?" for name in names)
        self.tx.execute(f"UPDATE users SET {assignments} WHERE id = ?", (*(values[n] for n in names), user_id))

    def _replace_links(self, change: Change, user_id: int, links: tuple[Link, ...]) -> None:
        self.tx.execute("DELETE FROM user_links WHERE user_id = ?", (user_id,))
        self.pending_links.append((change, user_id, links))

    def _write_links(self, user_id: int, links: tuple[Link, ...]) -> None:
        for link in links:
            owner = self.tx.one(
                "SELECT u.id, u.key FROM user_links l JOIN users u ON u.id = l.user_id"
                " WHERE l.directory = ? AND l.anchor = ?",
                (link.directory, link.anchor),
            )
            if owner is not None:
                owner_key = owner[1] if owner[1] is not None else f"local:{owner[0]}"
                raise ChangeRejected(f"link {link} already belongs to user {owner_key}")
            self.tx.execute(
                "INSERT INTO user_links (user_id, directory, anchor) VALUES (?, ?, ?)",
                (user_id, link.directory, link.anchor),
            )

    # ── memberships ──

    def _add_membership(self, change: Change) -> None:
        user_key, team_key = membership_parts(change)
        user_id = self._managed_user(user_key)
        self._require_team(team_key)
        if self.tx.one("SELECT 1 FROM memberships WHERE user_id = ? AND team_key = ?", (user_id, team_key)):
            raise ChangeRejected(f"user {user_key} is already a member of team {team_key}")
        self.tx.execute("INSERT INTO memberships (user_id, team_key) VALUES (?, ?)", (user_id, team_key))

    def _remove_membership(self, change: Change) -> None:
        user_key, team_key = membership_parts(change)
        user_id = self._managed_user(user_key)
        cursor = self.tx.execute("DELETE FROM memberships WHERE user_id = ? AND team_key = ?", (user_id, team_key))
        if cursor.rowcount == 0:
            raise ChangeRejected(f"user {user_key} is not a member of team {team_key}")

    # ── teams ──

    def _create_team(self, change: Change) -> None:
        columns = team_columns(change.after, "create")
        if self._team(change.key) is not None:
            raise ChangeRejected(f"a team with key {change.key} already exists")
        parent = columns.get("parent_key")
        self.tx.execute(
            "INSERT INTO teams (key, name, parent_key, managed, created_at) VALUES (?, ?, ?, 1, ?)",
            (change.key, columns["name"], parent, self.now),
        )
        self.written_teams.append((change, parent))  # the parent may be created later in this plan

    def _update_team(self, change: Change) -> None:
        columns = team_columns(change.after, "update")
        if not columns:
            raise ChangeRejected("after names no field to change")
        self._managed_team(change.key)
        names = sorted(columns)
        self.tx.execute(
            f"UPDATE teams SET {', '.join(f'{n} = ?' for n in names)} WHERE key = ?",
            (*(columns[n] for n in names), change.key),
        )
        if "parent_key" in columns:
            self.written_teams.append((change, columns["parent_key"]))

    def _delete_team(self, change: Change) -> None:
        self._managed_team(change.key)
        row = self.tx.one("SELECT count(*) FROM users WHERE team_key = ?", (change.key,))
        if row[0]:
            raise ChangeRejected(f"{row[0]} user(s) still have it as their team; move them first")
        self.tx.execute("DELETE FROM memberships WHERE team_key = ?", (change.key,))
        self.tx.execute("DELETE FROM teams WHERE key = ?", (change.key,))
        self.deleted_teams.append(change)

    def _require_no_children(self, key: str) -> None:
        row = self.tx.one("SELECT key FROM teams WHERE parent_key = ? ORDER BY key", (key,))
        if row is not None:
            raise ChangeRejected(f"team {row[0]} still has it as its parent")

    HANDLERS: dict[tuple[str, str], Callable[[_ChangeWriter, Change], None]] = {
        ("team", "create"): _create_team,
        ("team", "update"): _update_team,
        ("user", "create"): _create_user,
        ("user", "adopt"): _adopt_user,
        ("user", "reactivate"): _change_user,
        ("user", "update"): _change_user,
        ("user", "move"): _change_user,
        ("membership", "add"): _add_membership,
        ("membership", "remove"): _remove_membership,
        ("user", "deactivate"): _change_user,
        ("user", "delete"): _delete_user,
        ("team", "delete"): _delete_team,
    }


class SqliteStore(SqlStore):
    """The default store: one SQLite file at `store.path`, created on the first apply or lock."""

    kind = "sqlite"
    dialect = SQLITE
    busy_timeout = 10.0  # seconds a write waits for another process's write transaction

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
                "not a SQLite database; point store.path at reconciler's store file (or a path that does not exist yet)"
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
