"""The SQL store: the application's users in SQL tables, on SQLite (`sqlite.py`) or PostgreSQL (`postgres.py`).

`SqlStore` holds everything that is the same on every SQL engine (reading the
state, applying changes, the apply lock, history), written in portable SQL
with `?` placeholders. An engine subclass supplies the connection, how a write
transaction starts, and how its driver's errors read. The tables are in
`schema.py` and docs/store-schema.md; the changes are written by `apply.py`.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ... import __version__
from ...errors import Location, LockHeld, ReconcilerError, StalePlan, StoreError
from ...model import Change, KnownUser, StoreState, StoreUser, Written, by_key_in_order
from ...policy.model import StoreConfig
from ..common import (
    DEFAULT_LOCK_TTL, STALE_MESSAGE, ApplyRecord, Clock, History, LockInfo, LockProcess, Unchanged, failures_recorded,
    is_unchanged, iso, summarise, utc_now,
)
from ..common import fingerprint as content_fingerprint
from .apply import ChangeWriter
from .rows import (
    HISTORY_COLUMNS, HISTORY_COLUMNS_BEFORE_UNCHANGED, UNCHANGED_LATEST_KEY, UNCHANGED_RUNS_KEY, attributes_from_json,
    UserRows, history_record, history_values, row_key, store_team, unchanged_from_meta,
)
from .schema import (
    FIRST_DESCRIPTION, LATEST_VERSION, OLDEST_READABLE, SCHEMA_VERSION_COLUMNS, Dialect, apply_migrations,
)

if TYPE_CHECKING:
    from .prefetch import Prefetch

USER_COLUMNS = "id, key, email, display_name, attributes, team_key, status, managed"
# a users row, then one of its links (rows.UserRows reads the first eight columns)
JOINED_USER_COLUMNS = ", ".join(f"u.{column}" for column in USER_COLUMNS.split(", ")) + ", l.directory, l.anchor"
# what a read of the state asks, in this order (SqlStore.state_of_rows)
MEMBERSHIPS_SQL = "SELECT user_id, team_key FROM memberships"
USERS_SQL = f"SELECT {JOINED_USER_COLUMNS} FROM users u LEFT JOIN user_links l ON l.user_id = u.id ORDER BY u.id"
TEAMS_SQL = "SELECT key, name, parent_key, managed FROM teams"
EDITED_SQL = ("SELECT u.id, u.key, w.email, w.display_name, w.attributes FROM users u JOIN user_written w ON "
              "w.user_id = u.id WHERE u.managed = 1 AND (w.email <> u.email OR w.display_name <> u.display_name "
              "OR w.attributes <> u.attributes)")


def empty_state() -> StoreState:
    """What a read of a store that is not there yet gives: no users, no teams (a plan must not create it)."""
    return StoreState(users={}, teams={}, fingerprint=content_fingerprint([], []))


def memberships_by_user(rows: Iterable[tuple[int, str]]) -> dict[int, list[str]]:
    """(user id, team key) rows as each user's team keys."""
    by_user: dict[int, list[str]] = defaultdict(list)
    for user_id, team_key in rows:
        by_user[user_id].append(team_key)
    return by_user


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

    def __init__(self, config: StoreConfig, lock_ttl: int = DEFAULT_LOCK_TTL, clock: Clock = utc_now):
        self.config = config  # what it was opened with: a helper process opens it again (prefetch.py)
        self.lock_ttl = lock_ttl
        self.clock = clock
        self._lock_token: str | None = None
        self._schema_ready = False

    # ── hooks ──

    def _connect(self, create: bool, write: bool) -> Any | None:
        """An open connection in autocommit mode, or None when the store does not exist and create is False.
        Without `write`, the connection is for reading only; an engine may then open it read-only."""
        raise NotImplementedError

    def _may_write(self) -> bool:
        """False when it is known beforehand that this store cannot be written (a read-only file): a read
        then does not even try to upgrade an older schema."""
        return True

    def _begin_write(self) -> str:
        """The statement that starts a transaction holding the write lock from its start."""
        raise NotImplementedError

    def _table_exists(self, tx: Tx, name: str) -> bool:
        raise NotImplementedError

    def _columns(self, tx: Tx, table: str) -> set[str]:
        raise NotImplementedError

    def _foreign_tables(self, tx: Tx) -> list[str]:
        """The tables (sorted) that make this database or schema, without reconciler's schema_version, someone
        else's rather than an empty place for a new store; [] when the store may be created here."""
        raise NotImplementedError

    def _not_a_store(self, tx: Tx, tables: list[str]) -> str:
        """The one-line refusal of a database that is not a reconciler store (see `_foreign_tables`)."""
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
            connection = self._connect(create, write)
            if connection is None:
                yield None
                return
            cursor = connection.cursor()
            if write and not self._schema_ready:
                # Someone else's database is refused before anything changes in it, the journal mode included
                # (SQLite's WAL mode stays with the file): _ensure_schema checks again inside the write.
                cursor.execute("BEGIN")
                try:
                    self._check_version(Tx(cursor, self._param))
                finally:
                    self._rollback(cursor)
                self._prepare_connection(connection)
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

    def _is_store(self, tx: Tx) -> bool:
        """Whether reconciler's schema_version table is here (not merely a table of that name)."""
        if not self._table_exists(tx, "schema_version"):
            return False
        if not SCHEMA_VERSION_COLUMNS <= self._columns(tx, "schema_version"):
            return False
        # CASTs: another application's columns of these names may have other types
        row = tx.one("SELECT CAST(description AS TEXT) FROM schema_version WHERE CAST(version AS TEXT) = '1'")
        return row is not None and row[0] == FIRST_DESCRIPTION

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
        """The store's schema version, 0 where there is no store yet; refuses someone else's database and a
        store made by a newer reconciler."""
        if not self._is_store(tx):
            foreign = self._foreign_tables(tx)
            if foreign:
                raise StoreError(self._not_a_store(tx, foreign), Location(self.where))
            return 0
        version = int(tx.one("SELECT max(version) FROM schema_version")[0] or 0)
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
        A store that cannot be written is read as it is, if its schema is not older
        than OLDEST_READABLE.
        """
        version = LATEST_VERSION
        if not self._schema_ready:
            with self._transaction(write=False) as tx:
                version = self._check_version(tx) if tx is not None else 0
            if 0 < version < LATEST_VERSION:
                self._upgrade_to_read(version)
        with self._transaction(write=False) as tx:
            yield tx if version > 0 else None

    def _upgrade_to_read(self, version: int) -> None:
        try:
            if not self._may_write():
                raise StoreError("the store cannot be written", Location(self.where))
            with self._transaction(write=True):
                pass
        except StoreError as error:
            if version < OLDEST_READABLE:
                raise StoreError(
                    f"the store has schema version {version}, which this reconciler reads only after upgrading it "
                    f"to {LATEST_VERSION}, and the upgrade failed: {error.message}",
                    Location(self.where),
                ) from None
            # readable as it is: the first write (an apply, with write access) upgrades it

    # ── read ──

    def read(self, known: Mapping[str, KnownUser] | None = None) -> StoreState:
        """All users (managed and not) and teams, and their fingerprint. Never creates the store.

        `known`: the people the plan will compare with, by key; a user's values equal to theirs are taken
        from them rather than kept twice (see `KnownUser`)."""
        with self._reading() as tx:
            if tx is None:
                return empty_state()
            return self._read_state(tx, known)

    def fingerprint(self) -> str:
        return self.read().fingerprint

    def read_later(self) -> "Prefetch":
        """`read`, started now in a helper process (prefetch.py) and finished by `.state(known)`."""
        from .prefetch import Prefetch

        return Prefetch(self)

    def _read_state(self, tx: Tx, known: Mapping[str, KnownUser] | None = None) -> StoreState:
        # each user with its links in one pass over a join, rather than every link first and then every user:
        # a million links held at once were 250 MB (rows streamed from the cursor; bench/README.md: "store read")
        memberships = memberships_by_user(tx.execute(MEMBERSHIPS_SQL))
        return self.state_of_rows(memberships, tx.execute(USERS_SQL), lambda: self.rest_of_read(tx), known)

    def rest_of_read(self, tx: Tx) -> tuple[list[Any], bool, list[Any]]:
        """What a read takes after the users rows: the teams rows, whether the store remembers its writes, and
        the rows of the managed users whose row differs from what reconciler last wrote."""
        teams = tx.all(TEAMS_SQL)
        remembers = self._table_exists(tx, "user_written")  # not in a version-1 store read as it is (read-only)
        return teams, remembers, tx.all(EDITED_SQL) if remembers else []

    def state_of_rows(self, memberships: dict[int, list[str]], rows: Iterable[Sequence[Any]],
                      rest: Callable[[], tuple[list[Any], bool, list[Any]]],
                      known: Mapping[str, KnownUser] | None = None, fingerprint: str | None = None) -> StoreState:
        """The state from the rows of a read: the memberships (`memberships_by_user`, emptied here), the users
        joined with their links (ORDER BY users.id, consumed once, in order), then `rest()` (`rest_of_read`).
        `fingerprint`: the content's, when the caller has it from these same rows (prefetch.py)."""
        users: dict[str, StoreUser] = {}
        store_user = UserRows(known)
        names: dict[str, str] = {}  # directory names: one string each
        row, links = None, []
        for joined in rows:  # a user's rows are adjacent (ORDER BY u.id); most users have one link
            if row is not None and joined[0] == row[0]:
                links.append((names.setdefault(joined[8], joined[8]), joined[9]))
                continue
            if row is not None:
                self._add_user(users, store_user, row, links, memberships)
            row = joined
            links = [] if joined[8] is None else [(names.setdefault(joined[8], joined[8]), joined[9])]
        if row is not None:
            self._add_user(users, store_user, row, links, memberships)
        team_rows, remembers, edited = rest()
        teams = {row[0]: store_team(row) for row in team_rows}
        users = by_key_in_order(users)
        teams = dict(sorted(teams.items()))
        if fingerprint is None:
            fingerprint = content_fingerprint(users.values(), teams.values())
        return StoreState(users=users, teams=teams, fingerprint=fingerprint,
                          edited=self._edited(edited) if remembers else {}, remembers_writes=remembers)

    def _add_user(self, users: dict[str, StoreUser], store_user: UserRows, row: Sequence[Any],
                  links: list[tuple[str, str]], memberships: dict[int, list[str]]) -> None:
        user_id = row[0]
        try:
            user = store_user(row, links, memberships.pop(user_id, ()))
        except ValueError as error:
            raise StoreError(
                f"users row id {user_id}: {error}; fix the row (attributes must be a JSON object)",
                Location(self.where),
            ) from None
        if users.setdefault(user.key, user) is not user:
            raise StoreError(
                f"users row id {user_id}: key {user.key} is also another user's key; "
                "local:<id> keys belong to rows whose key is NULL",
                Location(self.where),
            )

    @staticmethod
    def _edited(rows: Iterable[Sequence[Any]]) -> dict[str, Written]:
        """What reconciler last wrote, for the managed users whose row differs from it now (EDITED_SQL: the
        database compares, so only those few rows come back)."""
        edited: dict[str, Written] = {}
        for user_id, key, email, display_name, attributes in rows:
            try:
                edited[row_key(key, user_id)] = Written(email, display_name, attributes_from_json(attributes))
            except ValueError:
                continue  # a hand-damaged memory is no memory: the plan says the store differs, as before
        return edited

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
        # the token tells this lock from a successor's, and says which process holds it (see `_holder_gone`)
        token = f"{uuid.uuid4().hex} {LockProcess.current().encode()}"
        now = self.clock()
        with self._transaction(write=True, create=True) as tx:
            assert tx is not None
            takeover = None
            current = tx.one("SELECT holder, token, since, ttl_seconds FROM apply_lock WHERE name = 'apply'")
            if current is not None:
                old_holder, old_token, since, ttl = current
                expires = self._expiry(since, ttl)
                gone = self._holder_gone(old_token)
                if gone is not None:
                    takeover = (f"took over the lock of {old_holder} ({gone}; it held the lock since {since}); "
                                "that apply crashed")
                elif now < expires:
                    raise LockHeld(self._held_message(old_holder, since, expires))
                else:
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
    def _holder_gone(token: Any) -> str | None:
        """Why the lock's holder provably no longer runs, or None: then the TTL decides.

        The token is "<hex> host=... pid=..." (`LockProcess.encode`). Only a holder on this host, in this
        boot and pid namespace, can be proven gone, by its pid and start time; a token of a reconciler that
        did not record its process, or of another host, leaves the lock to its TTL.
        """
        if not isinstance(token, str) or " " not in token:
            return None
        process = LockProcess.decode(token.split(" ", 1)[1])
        return process.gone() if process is not None else None

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
        if token != self._lock_token and self.clock() < expires and self._holder_gone(token) is None:
            raise LockHeld(self._held_message(holder, since, expires))

    # ── apply ──

    def apply(self, changes: Sequence[Change], expected_fingerprint: str, record: ApplyRecord,
              sync: Mapping[str, bytes] | None = None) -> ApplyRecord:
        """Apply every change or none, and record the attempt in the history either way; an apply with no
        changes (`is_unchanged`) is counted for the next history line instead of getting its own. `sync`: the
        delta-read states of the read the plan was made from, kept in the same transaction."""
        record = replace(record, counts=record.counts or summarise(changes))
        with failures_recorded(self.record, lambda outcome: self._finished(record, outcome)):
            with self._transaction(write=True, create=True) as tx:
                assert tx is not None
                self._check_lock(tx)
                if self._read_state(tx).fingerprint != expected_fingerprint:
                    raise StalePlan(STALE_MESSAGE)
                self._write_sync(tx, sync or {})
                if is_unchanged(changes, record):
                    unchanged = self._finished(record, "applied")
                    self._count_unchanged(tx, unchanged.finished_at)
                    return unchanged
                ChangeWriter(tx, iso(self.clock()), self.where).run(changes)
                return self._insert_history(tx, self._finished(record, "applied"))

    def _write_sync(self, tx: Tx, sync: Mapping[str, bytes]) -> None:
        """Each state in `sync` replaces the one kept; an empty one removes it."""
        now = iso(self.clock())
        for directory, state in sorted(sync.items()):
            tx.execute("DELETE FROM directory_sync WHERE directory = ?", (directory,))
            if state:
                tx.execute("INSERT INTO directory_sync (directory, state, written_at) VALUES (?, ?, ?)",
                           (directory, state, now))

    def generation(self) -> str | None:
        """The store's generation: moved by every write to the content a plan depends on, whoever makes it
        (triggers, schema version 5), so an unchanged generation is an unchanged store. None where there is no
        store or its schema has none yet."""
        with self._reading() as tx:
            if tx is None or not self._table_exists(tx, "store_generation"):
                return None
            row = tx.one("SELECT generation FROM store_generation WHERE id = 1")
            return None if row is None else f"{self.where}#{int(row[0])}"

    def read_sync(self) -> dict[str, bytes]:
        """Each directory's kept delta-read state; none where there is no store yet, or where a store too old
        to have them is read as it is. Never creates the store."""
        with self._reading() as tx:
            if tx is None or not self._table_exists(tx, "directory_sync"):
                return {}
            return {str(directory): bytes(state) for directory, state in tx.execute(
                "SELECT directory, state FROM directory_sync ORDER BY directory")}

    def record(self, record: ApplyRecord, sync: Mapping[str, bytes] | None = None) -> ApplyRecord:
        """Add one history line on its own, e.g. an apply refused before it reached the store; `sync` (the SCIM
        store's side file, recording an apply made on the server) is kept with it in the same transaction."""
        with self._transaction(write=True, create=True) as tx:
            assert tx is not None
            self._write_sync(tx, sync or {})
            return self._insert_history(tx, record)

    def count_unchanged(self, finished_at: str, sync: Mapping[str, bytes] | None = None) -> None:
        """Count an apply with no changes, on its own (the SCIM store's, whose apply is not a transaction here)."""
        with self._transaction(write=True, create=True) as tx:
            assert tx is not None
            self._write_sync(tx, sync or {})
            self._count_unchanged(tx, finished_at)

    def _finished(self, record: ApplyRecord, outcome: str) -> ApplyRecord:
        return replace(record, finished_at=iso(self.clock()), outcome=outcome)

    @staticmethod
    def _pending_unchanged(tx: Tx) -> Unchanged:
        rows = tx.all("SELECT key, value FROM meta WHERE key IN (?, ?)", (UNCHANGED_RUNS_KEY, UNCHANGED_LATEST_KEY))
        return unchanged_from_meta(dict(rows))

    @classmethod
    def _count_unchanged(cls, tx: Tx, finished_at: str) -> None:
        """One more apply with no changes since the newest history line, kept in `meta` (no schema change:
        an older reconciler sharing the store ignores the keys) until the next line takes the count over."""
        runs = cls._pending_unchanged(tx).runs + 1
        tx.execute("DELETE FROM meta WHERE key IN (?, ?)", (UNCHANGED_RUNS_KEY, UNCHANGED_LATEST_KEY))
        tx.execute("INSERT INTO meta (key, value) VALUES (?, ?), (?, ?)",
                   (UNCHANGED_RUNS_KEY, str(runs), UNCHANGED_LATEST_KEY, finished_at))

    @classmethod
    def _insert_history(cls, tx: Tx, record: ApplyRecord) -> ApplyRecord:
        """The line, carrying the applies with no changes counted since the previous one, whose count is reset."""
        record = replace(record, unchanged_runs=cls._pending_unchanged(tx).runs)
        row = tx.one(
            f"INSERT INTO apply_history ({HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            history_values(record),
        )
        if record.unchanged_runs:
            tx.execute("DELETE FROM meta WHERE key IN (?, ?)", (UNCHANGED_RUNS_KEY, UNCHANGED_LATEST_KEY))
        return replace(record, id=int(row[0]))

    def history(self) -> History:
        """Every recorded apply, newest first, and the applies with no changes since the newest, read in one
        transaction. Never creates the store."""
        with self._reading() as tx:
            if tx is None:
                return History()
            # a store of schema version 2, read as it is where it cannot be upgraded, has no unchanged_runs yet
            columns = (HISTORY_COLUMNS if "unchanged_runs" in self._columns(tx, "apply_history")
                       else HISTORY_COLUMNS_BEFORE_UNCHANGED)
            rows = tx.all(f"SELECT id, {columns} FROM apply_history ORDER BY id DESC")
            unchanged = self._pending_unchanged(tx)
        return History((history_record(row) for row in rows), unchanged)
