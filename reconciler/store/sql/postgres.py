"""The SQL store on PostgreSQL (`store: {kind: sql, url: '${DATABASE_URL}'}`), with psycopg 3.

The tables, migrations, reading, fingerprint, apply and history are `SqlStore`'s,
shared with SQLite. What differs is here:

- the connection: from `store.url`, a `${NAME}` reference resolved only when
  connecting, or a URL without a password (libpq then reads PGPASSWORD or
  PGPASSFILE). Messages name the server as postgresql://user@host:port/database,
  never with the password;
- transactions: reads see one snapshot (REPEATABLE READ), writes are serialised
  among reconcilers by a transaction-level advisory lock and hold the content
  tables in SHARE ROW EXCLUSIVE mode, so nobody (the application included) can
  change what the fingerprint was computed from before the apply commits, while
  readers never wait (the counterpart of SQLite's BEGIN IMMEDIATE under WAL);
- the apply lock: a session-level advisory lock, held by the store's
  connection for the whole apply, plus the `apply_lock` row that says who holds
  it and since when. A run that crashes loses its connection and with it the
  lock, so the next apply takes over at once instead of waiting for the TTL; a
  live session keeps the lock even past the TTL (it may still be writing), and
  the refusal then says which server process to end if it hangs.

Advisory lock keys are per schema, so several stores can share one database.
A schema may hold other tables too, but not one named like the store's (users,
teams...) without reconciler's schema_version: that is another application's,
and the store is refused there, before anything is created (see `_foreign_tables`).
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from ...errors import Location, LockHeld, StoreError
from ...policy.model import SecretRef
from ...policy.model import StoreConfig
from ..common import DEFAULT_LOCK_TTL, Clock, LockInfo, iso, utc_now
from .schema import POSTGRESQL, store_relations
from .store import SqlStore, Tx

CONNECT_TIMEOUT = 10  # seconds, unless the URL sets connect_timeout
LOCK_WAIT = 10  # seconds a write waits for another writer, like SQLite's busy timeout
# Advisory lock keys: (class, hashtext(schema)). The class numbers are arbitrary but fixed; any two
# reconciler versions must agree on them.
APPLY_LOCK_CLASS = 0x5245_4301  # the apply lock, held by a session for a whole apply
WRITE_LOCK_CLASS = 0x5245_4302  # one write transaction at a time, released at COMMIT/ROLLBACK
SCHEMA_KEY = "hashtext(current_schema())"
CONTENT_TABLES = "users, user_links, teams, memberships"
SCHEMES = ("postgresql", "postgres")


class PostgresStore(SqlStore):
    kind = "sql"
    dialect = POSTGRESQL

    def __init__(self, config: StoreConfig, lock_ttl: int = DEFAULT_LOCK_TTL, clock: Clock = utc_now):
        super().__init__(config, lock_ttl=lock_ttl, clock=clock)
        if config.url is None:
            raise StoreError("store.url is not set; a sql store needs the PostgreSQL URL, e.g. '${DATABASE_URL}'")
        self.url = config.url  # a SecretRef stays unresolved until connecting
        self.where = f"store.url ${{{config.url.variable}}}" if isinstance(config.url, SecretRef) else "store.url"
        self._connection: psycopg.Connection | None = None
        self._holding = False  # this store's session holds the apply lock

    # ── connection ──

    def _connect(self, create: bool, write: bool = True) -> psycopg.Connection:
        """The store's one connection, for reads and writes alike (a PostgreSQL database always exists; its
        tables may not)."""
        if self._connection is not None and not self._connection.closed:
            return self._connection
        if self._holding:  # the session that held the apply lock is gone, and the lock with it
            raise StoreError("lost the connection to the server while holding the apply lock, and the lock with it; "
                             "what was not committed was rolled back: run plan again", Location(self.where))
        conninfo = self.url.resolve() if isinstance(self.url, SecretRef) else self.url
        params = parse_conninfo(conninfo, self._url_source())
        self.where = describe(params)  # parse_conninfo refused a URL whose host part may hold password text
        extra: dict[str, Any] = {"fallback_application_name": "reconciler"}
        if "connect_timeout" not in params:
            extra["connect_timeout"] = CONNECT_TIMEOUT
        try:
            connection = psycopg.connect(conninfo, autocommit=True, **extra)
        except psycopg.Error as error:
            cause = connect_failure(error, params, self._url_source(), extra.get("connect_timeout"))
            raise StoreError(f"cannot connect: {cause}", Location(self.where)) from None
        self._connection = connection  # from here close() closes it, whatever fails next
        # Reads (the plain BEGIN of SqlStore) get one snapshot for all their SELECTs;
        # writes say READ COMMITTED themselves, see _begin_write.
        connection.execute("SET default_transaction_isolation = 'repeatable read'")
        connection.execute(f"SET lock_timeout = '{LOCK_WAIT}s'")
        return connection

    def _url_source(self) -> str:
        return f"${{{self.url.variable}}}" if isinstance(self.url, SecretRef) else "store.url"

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()  # ends the session: any advisory lock it still held goes with it
            self._connection = None
        self._schema_ready = False
        self._holding = False

    # ── transactions ──

    def _begin_write(self) -> str:
        # READ COMMITTED so that, once the advisory lock is granted, the reads see
        # what the writer before us committed (a REPEATABLE READ snapshot would be older).
        return f"BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({WRITE_LOCK_CLASS}, {SCHEMA_KEY})"

    @contextmanager
    def _transaction(self, write: bool, create: bool = False) -> Iterator[Tx | None]:
        with super()._transaction(write, create) as tx:
            if write and tx is not None:
                # the tables exist now (the migrations ran in this transaction if needed)
                tx.execute(f"LOCK TABLE {CONTENT_TABLES} IN SHARE ROW EXCLUSIVE MODE")
            yield tx

    def _param(self, sql: str) -> str:
        return to_pyformat(sql)

    def _table_exists(self, tx: Tx, name: str) -> bool:
        row = tx.one("SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = ?",
                     (name,))
        return row is not None

    def _columns(self, tx: Tx, table: str) -> set[str]:
        # the catalog, not information_schema, which hides the columns of tables the role has no rights on
        return {row[0] for row in tx.all(
            "SELECT a.attname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
            "AND c.relname = ? AND a.attnum > 0 AND NOT a.attisdropped", (table,))}

    def _foreign_tables(self, tx: Tx) -> list[str]:
        # A schema is a shared namespace (public holds extensions' tables too): other tables are left alone
        # beside the store's. One named like the store's is another application's, and creating the store
        # there would fail halfway, or, for a name created IF NOT EXISTS, mix its rows with ours.
        rows = tx.all(
            "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = ANY(?) ORDER BY c.relname", (store_relations(),))
        return [row[0] for row in rows]

    def _not_a_store(self, tx: Tx, tables: list[str]) -> str:
        schema = tx.one("SELECT current_schema()")[0]
        return (f"not a reconciler store: schema {schema} has tables of another application named like the "
                f"store's ({', '.join(tables)}) and no reconciler schema_version table, so it was left as it is; "
                "point the store at a schema of its own (options=-csearch_path%3Dreconciler in the URL)")

    # ── the apply lock ──

    def _acquire(self, holder: str) -> tuple[LockInfo, str]:
        if self._holding:
            raise LockHeld(self._refusal_now())
        with self._driver_errors():
            connection = self._connect(create=True)
            got = connection.execute(f"SELECT pg_try_advisory_lock({APPLY_LOCK_CLASS}, {SCHEMA_KEY})").fetchone()
        if not got or not got[0]:
            raise LockHeld(self._refusal_now())
        self._holding = True
        try:
            return self._write_lock_row(holder)
        except BaseException:
            try:
                self._unlock()
            except StoreError:
                pass  # the row's failure says more; the lock goes with the session at close
            raise

    def _write_lock_row(self, holder: str) -> tuple[LockInfo, str]:
        token = uuid.uuid4().hex
        since = iso(self.clock())
        takeover = None
        with self._transaction(write=True, create=True) as tx:
            assert tx is not None
            previous = tx.one("SELECT holder, since FROM apply_lock WHERE name = 'apply'")
            if previous is not None:
                # we hold the advisory lock, so whoever wrote this row has no session any more
                takeover = (
                    f"took over the lock of {previous[0]} (held since {previous[1]}); its database session ended "
                    "without releasing it, so that apply presumably crashed"
                )
                tx.execute("DELETE FROM apply_lock WHERE name = 'apply'")
            tx.execute(
                "INSERT INTO apply_lock (name, holder, token, since, ttl_seconds) VALUES ('apply', ?, ?, ?, ?)",
                (holder, token, since, self.lock_ttl),
            )
        return LockInfo(holder=holder, since=since, expired_takeover=takeover), token

    def _release(self, token: str) -> None:
        self._lock_token = None
        try:
            with self._transaction(write=True) as tx:
                assert tx is not None
                tx.execute("DELETE FROM apply_lock WHERE name = 'apply' AND token = ?", (token,))
        finally:
            self._unlock()

    def _unlock(self) -> None:
        self._holding = False
        connection = self._connection
        if connection is None or connection.closed:
            return  # the session is gone, and its advisory lock with it
        with self._driver_errors():
            connection.execute(f"SELECT pg_advisory_unlock({APPLY_LOCK_CLASS}, {SCHEMA_KEY})")

    def _check_lock(self, tx: Tx) -> None:
        """Refuse to write while another session holds the apply lock; an apply without any lock is allowed."""
        if self._holding:
            return
        # a transaction-level try on the same key fails exactly while a session holds it; freed at COMMIT
        if not tx.one(f"SELECT pg_try_advisory_xact_lock({APPLY_LOCK_CLASS}, {SCHEMA_KEY})")[0]:
            raise LockHeld(self._refusal(tx))

    def _refusal_now(self) -> str:
        with self._transaction(write=False) as tx:
            assert tx is not None
            return self._refusal(tx)

    def _refusal(self, tx: Tx) -> str:
        """Who holds the apply lock: the row's holder and since, and the server process of the holding session."""
        pid_row = tx.one(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
            f" AND classid = ({APPLY_LOCK_CLASS})::oid AND objid = ({SCHEMA_KEY})::oid ORDER BY pid LIMIT 1"
        )
        pid = pid_row[0] if pid_row else "?"
        row = None
        if self._table_exists(tx, "apply_lock"):
            row = tx.one("SELECT holder, since, ttl_seconds FROM apply_lock WHERE name = 'apply'")
        if row is None:
            return f"store is locked by another session (server process {pid}) that has not said who it is yet; try again"
        holder, since, ttl = row
        if self.clock() < self._expiry(since, ttl):
            return (f"store is locked by {holder} since {since}; another apply is running "
                    f"(server process {pid} holds the lock until it ends)")
        return (f"store is locked by {holder} since {since}; that apply has run past its {ttl} s lock TTL but its "
                f"database session (server process {pid}) is still connected, so it may still be writing; "
                f"if it hangs, end it with SELECT pg_terminate_backend({pid})")

    # ── errors ──

    def _driver_error(self, error: Exception) -> StoreError | None:
        if not isinstance(error, psycopg.Error):
            return None
        primary = first_line(error.diag.message_primary or str(error))
        if isinstance(error, pg_errors.LockNotAvailable):
            message = (f"the store is busy: another transaction held its tables for over {LOCK_WAIT} s "
                       "(another apply, or the application writing); try again")
        elif isinstance(error, pg_errors.InvalidSchemaName):
            message = ("no schema to create the store's tables in: none on the search_path exists and grants this "
                       "role USAGE; create one (CREATE SCHEMA reconciler AUTHORIZATION <role>) and name it in the URL "
                       "with options=-csearch_path%3Dreconciler")
        elif isinstance(error, pg_errors.DuplicateTable):
            message = (f"{primary}, but not as part of a reconciler store; point the store at a schema of its own "
                       "(options=-csearch_path%3Dreconciler in the URL)")
        elif isinstance(error, pg_errors.InsufficientPrivilege):
            message = (f"{primary}; the role needs to own the store's schema, or CONNECT on the database and "
                       "USAGE, CREATE on the schema (see docs/store-postgres.md)")
        elif isinstance(error, pg_errors.IntegrityError):
            message = f"the store's constraints refused the changes: {primary}; nothing was changed"
        elif isinstance(error, psycopg.OperationalError) and (self._connection is None or self._connection.closed):
            message = f"lost the connection to the server: {primary}; nothing uncommitted was written, run plan again"
        else:
            message = f"PostgreSQL error: {primary}"
        return StoreError(message, Location(self.where))


# ───────────────────────────── helpers without a connection ─────────────────────────────


def to_pyformat(sql: str) -> str:
    """`?` placeholders as psycopg's `%s`, leaving quoted literals alone; a literal `%` becomes `%%`."""
    parts = re.split(r"('(?:[^']|'')*')", sql)
    return "".join(
        part.replace("%", "%%") if index % 2 else part.replace("%", "%%").replace("?", "%s")
        for index, part in enumerate(parts)
    )


def parse_conninfo(conninfo: str, source: str) -> dict[str, str]:
    """The URL's parameters; a URL that does not parse, or not unambiguously, is refused without echoing any of it
    (it may hold a password)."""
    scheme = conninfo.split("://", 1)[0].lower() if "://" in conninfo else None
    if scheme is not None and scheme not in SCHEMES:
        raise StoreError(f"{source} is a {scheme}:// URL; a sql store needs postgresql://user@host:port/database")
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error:
        raise StoreError(
            f"{source} does not parse as a PostgreSQL URL; write postgresql://user@host:port/database "
            f"(with special characters in the password percent-encoded)"
        ) from None
    if scheme is not None and is_ambiguous(conninfo, params):
        raise StoreError(
            f"{source} does not parse unambiguously as a PostgreSQL URL: part of it would be read as the host, port "
            f"or database; the URL must percent-encode special characters in the password (@ as %40, / as %2F, "
            f": as %3A, ? as %3F, % as %25)"
        )
    return params


def is_ambiguous(url: str, params: dict[str, str]) -> bool:
    """Whether libpq's reading of a postgresql:// URL may have moved password text into the host, port or
    database: an unencoded `@` after the one that ends the user part, or a port that is not a number (an
    unencoded `/` in the password ends the user part early, so `user:pass` reads as host and port)."""
    rest = url.split("://", 1)[1]
    stop = re.search(r"[@/]", rest)  # libpq's own look-ahead for the user part
    if stop is not None and stop.group() == "@":
        rest = rest[stop.end():]
    if "@" in rest.split("?", 1)[0]:
        return True
    return any(port and not port.isdigit() for port in (params.get("port") or "").split(","))


def describe(params: dict[str, str]) -> str:
    """postgresql://user@host:port/database with libpq's defaults filled in, never the password; several hosts
    as postgresql://user@h1:5432, h2:5433/database."""
    defaults = {o.keyword.decode(): (o.val or b"").decode() for o in pq.Conninfo.get_defaults()}
    pick = lambda key: str(params.get(key) or defaults.get(key) or "")  # noqa: E731
    user = pick("user")
    hosts = (pick("host") or pick("hostaddr") or "localhost").split(",")
    ports = (pick("port") or "5432").split(",")
    if len(ports) == 1:  # libpq: one port for every host
        ports = ports * len(hosts)
    where = ", ".join(
        f"{f'[{host}]' if ':' in host else host or 'localhost'}:{ports[index] if index < len(ports) and ports[index] else '5432'}"
        for index, host in enumerate(hosts)
    )
    return f"postgresql://{user}@{where}/{pick('dbname') or user}"


def connect_failure(error: psycopg.Error, params: dict[str, str], source: str, timeout: Any) -> str:
    """Why a connection failed, as a cause and a fix, with the password masked even if libpq quoted it."""
    text = str(error)
    password = params.get("password")
    if password:
        text = text.replace(password, "***")
    user, database = params.get("user", "(default user)"), params.get("dbname", "(default database)")
    if "password authentication failed" in text:
        where = f"the URL in {source}" if source.startswith("$") else "PGPASSWORD or PGPASSFILE"
        return f"authentication failed for user {user}: wrong password; fix it in {where}"
    if "no password supplied" in text:
        return (f"the server wants a password for user {user} and none was given; put the URL with it in an "
                "environment variable and write store.url: '${DATABASE_URL}', or set PGPASSWORD/PGPASSFILE")
    match = re.search(r'database "([^"]*)" does not exist', text)
    if match:
        return f"no such database {match.group(1)}; create it (CREATE DATABASE ... OWNER {user}) or fix the URL"
    match = re.search(r'role "([^"]*)" does not exist', text)
    if match:
        return f"no such role {match.group(1)}; create it or fix the user in the URL"
    if "Connection refused" in text:
        return "connection refused: nothing listens there; check host and port and that PostgreSQL is running"
    if "timeout expired" in text or "timed out" in text:
        seconds = params.get("connect_timeout", timeout)
        return f"no answer within {seconds} s (timeout); check host, port and firewalls"
    if "resolve host" in text or "translate host name" in text:
        return "unknown host; check the host name in the URL"
    if "no pg_hba.conf entry" in text:
        return f"the server's pg_hba.conf has no entry for this client, user {user}, database {database}"
    return first_line(text.rsplit(" failed: ", 1)[-1].replace("FATAL:", "").strip())


def first_line(text: str) -> str:
    return " ".join(text.strip().splitlines()[0].split()) if text.strip() else "unknown error"
