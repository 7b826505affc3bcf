"""The PostgreSQL store on a real server: the shared store contract (tests/store_contract.py),
plus what only PostgreSQL has: the advisory apply lock and crashed sessions, connection
errors without the password, fingerprint parity with SQLite, the minimal role, and one
run of the quickstart through the installed command.

The server is started once per session by `tests/servers/postgres.py`; each test gets
schemas of its own in the test database (a store per schema, as the docs suggest).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from reconciler.store.sql.schema import LATEST_VERSION

from reconciler.errors import LockHeld, StoreError
from reconciler.model import Change
from reconciler.policy.model import SecretRef
from reconciler.policy.model import StoreConfig
from reconciler.store import open_store
from reconciler.store.common import LockProcess
from reconciler.store.sql.postgres import APPLY_LOCK_CLASS, PostgresStore, describe, parse_conninfo, to_pyformat
from reconciler.store.sql.sqlite import SqliteStore
from tests.servers import wait_until
from tests.servers.postgres import DATABASE, ROLE, ROLE_PASSWORD, PostgresServer
from tests.store_contract import *  # noqa: F401,F403  the contract's tests run here against PostgreSQL
from tests.store_contract import (
    FakeClock, add_unmanaged_user, apply, create_team, create_user, record, seeded, user_fields,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


class PostgresEngine:
    """Stores in fresh schemas; the URL (with the password) reaches the store only as a ${NAME} reference."""

    def __init__(self, server: PostgresServer, monkeypatch: pytest.MonkeyPatch):
        self.server, self.monkeypatch = server, monkeypatch
        self.schemas: dict[str, str] = {}
        self._app: psycopg.Connection | None = None

    def schema(self, name: str = "main") -> str:
        if name not in self.schemas:
            self.schemas[name] = self.server.new_schema()
        return self.schemas[name]

    def url(self, name: str = "main") -> str:
        return self.server.url(schema=self.schema(name))

    def config(self, name: str = "main") -> StoreConfig:
        variable = f"TEST_DATABASE_URL_{name.upper()}"
        self.monkeypatch.setenv(variable, self.url(name))
        return StoreConfig(kind="sql", url=SecretRef(variable, "store.url"))

    def open(self, name: str = "main", **options) -> PostgresStore:
        return PostgresStore(self.config(name), **options)

    def app(self) -> psycopg.Connection:
        if self._app is None:
            self._app = psycopg.connect(self.url(), autocommit=True)
        return self._app

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self.app().execute(to_pyformat(sql), params).fetchall()

    def execute(self, sql: str, params: tuple = ()) -> None:
        self.app().execute(to_pyformat(sql), params)

    def insert(self, sql: str, params: tuple = ()) -> int:
        return self.app().execute(to_pyformat(sql + " RETURNING id"), params).fetchone()[0]

    def columns(self, table: str) -> list[str]:
        return [r[0] for r in self.rows(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            (self.schema(), table))]

    def created_nothing(self) -> bool:
        return self.rows("SELECT tablename FROM pg_tables WHERE schemaname = ?", (self.schema(),)) == []

    def held_message(self, holder: str, since: str, expires: str, holding: PostgresStore) -> str:
        pid = backend_pid(holding)
        return f"store is locked by {holder} since {since}; another apply is running (server process {pid} holds the lock until it ends)"

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


@pytest.fixture
def engine(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch):
    engine = PostgresEngine(postgres, monkeypatch)
    yield engine
    engine.close()


def backend_pid(store: PostgresStore) -> int:
    assert store._connection is not None
    return store._connection.info.backend_pid


def advisory_holders(engine: PostgresEngine) -> list[int]:
    """Server processes holding the apply lock of the engine's main store (locks of other tests' schemas aside)."""
    return [r[0] for r in engine.rows(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = ?::oid"
        " AND objid = hashtext(?)::oid", (APPLY_LOCK_CLASS, engine.schema()))]


# ───────────────────────────── the store on PostgreSQL ─────────────────────────────


def test_open_store_picks_postgresql_for_kind_sql(engine: PostgresEngine):
    store = open_store(engine.config())
    assert isinstance(store, PostgresStore) and store.kind == "sql"
    store.close()


def test_the_tables_are_the_ones_sqlite_has(engine: PostgresEngine, store: PostgresStore, tmp_path: Path):
    apply(store)
    on_postgres = {t: engine.columns(t) for t in sorted(r[0] for r in engine.rows(
        "SELECT tablename FROM pg_tables WHERE schemaname = ?", (engine.schema(),)))}
    sqlite = SqliteStore(StoreConfig(kind="sqlite", path=str(tmp_path / "s.db")))
    apply(sqlite)
    sqlite.close()
    with sqlite3.connect(tmp_path / "s.db") as db:
        tables = sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        on_sqlite = {t: [c[1] for c in db.execute(f"PRAGMA table_info({t})")] for t in tables}
    assert {t: sorted(c) for t, c in on_postgres.items()} == {t: sorted(c) for t, c in on_sqlite.items()}


def test_the_same_content_has_the_same_fingerprint_on_sqlite_and_postgresql(engine: PostgresEngine, tmp_path: Path):
    postgres_store = engine.open()
    sqlite_store = SqliteStore(StoreConfig(kind="sqlite", path=str(tmp_path / "twin.db")))
    changes = [
        create_team("Org"), create_team("Org/Ventes ünd Märkte", "Org"),
        create_user("corp:a1", "alice@example.com", "Org/Ventes ünd Märkte"),
        create_user("corp:b2", "bob@example.com", "Org"),
        Change("create", "user", "emea:c3", "new", None,
               user_fields("zoë@example.com", "Org", ["emea:c3", "corp:c9"], display_name="Zoë 'Q' 100%",
                           attributes={"title": "Straße?", "department": "R&D"})),
        Change("add", "membership", "corp:a1|Org", "m", None, {"user": "corp:a1", "team": "Org"}),
    ]
    assert postgres_store.fingerprint() == sqlite_store.fingerprint()  # both empty
    for store in (postgres_store, sqlite_store):
        apply(store, *changes)
        apply(store, Change("deactivate", "user", "corp:b2", "left", {"status": "active"}, {"status": "deactivated"}))
    add_unmanaged_user(engine, "hand@example.com", "Org")
    sqlite3_connection = sqlite3.connect(tmp_path / "twin.db")
    with sqlite3_connection:
        sqlite3_connection.execute(
            "INSERT INTO users (email, display_name, attributes, team_key, status, created_at, updated_at)"
            " VALUES ('hand@example.com', 'Hand Made', '{\"title\": \"boss\"}', 'Org', 'active', 'x', 'x')")
    sqlite3_connection.close()
    on_postgres, on_sqlite = postgres_store.read(), sqlite_store.read()
    assert on_postgres == on_sqlite
    assert on_postgres.fingerprint == on_sqlite.fingerprint
    assert len(on_postgres.users) == 4 and "local:4" in on_postgres.users
    postgres_store.close()
    sqlite_store.close()


def test_an_application_write_waits_for_the_apply_so_the_checked_fingerprint_stays_true(
    engine: PostgresEngine, store: PostgresStore
):
    seeded(store)
    fingerprint = store.fingerprint()
    app_done = threading.Event()
    inside = threading.Event()
    original = store._check_lock

    def slow_check(tx):  # the apply has checked nothing yet; the application tries to write now
        original(tx)
        inside.set()
        assert not app_done.wait(1.0), "the application's write was not held back by the apply"

    store._check_lock = slow_check
    writer = psycopg.connect(engine.url(), autocommit=True)

    def application_edit():
        inside.wait(10)
        writer.execute("UPDATE users SET display_name = 'App' WHERE key = 'corp:b2'")
        app_done.set()

    thread = threading.Thread(target=application_edit)
    thread.start()
    apply_fingerprint = store.apply(
        [Change("update", "user", "corp:a1", "drift", {"display_name": "Alice"}, {"display_name": "Alicia"})],
        fingerprint, record())
    thread.join(10)
    writer.close()
    assert apply_fingerprint.outcome == "applied" and app_done.is_set()
    assert engine.rows("SELECT key, display_name FROM users ORDER BY key") == [("corp:a1", "Alicia"), ("corp:b2", "App")]


def test_reads_do_not_wait_for_an_apply_in_progress(engine: PostgresEngine, store: PostgresStore):
    seeded(store)
    before = store.fingerprint()
    reader = engine.open()
    seen = []
    original = store._check_lock

    def read_meanwhile(tx):
        original(tx)
        started = time.monotonic()
        seen.append((reader.fingerprint(), time.monotonic() - started))

    store._check_lock = read_meanwhile
    apply(store, Change("update", "user", "corp:a1", "drift", {"display_name": "Alice"}, {"display_name": "Al"}))
    assert seen[0][0] == before and seen[0][1] < 2  # the committed state, without waiting
    reader.close()


def test_two_first_writes_at_once_create_the_tables_once(engine: PostgresEngine):
    stores = [engine.open(), engine.open()]
    start, errors = threading.Barrier(2), []

    def first_write(store: PostgresStore) -> None:
        start.wait(10)
        try:
            store.record(record(outcome="applied"))
        except Exception as error:  # noqa: BLE001  collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=first_write, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert errors == []
    assert engine.rows("SELECT version FROM schema_version ORDER BY version") == [(v,) for v in range(1, LATEST_VERSION + 1)]
    assert engine.rows("SELECT count(*) FROM apply_history") == [(2,)]
    for store in stores:
        store.close()


def test_an_application_transaction_holding_the_tables_too_long_makes_the_apply_say_busy(
    engine: PostgresEngine, store: PostgresStore, monkeypatch: pytest.MonkeyPatch
):
    from reconciler.store.sql import postgres as postgres_store

    seeded(store)
    store.close()
    monkeypatch.setattr(postgres_store, "LOCK_WAIT", 1)
    impatient = engine.open()
    fingerprint = impatient.fingerprint()
    with psycopg.connect(engine.url()) as application:  # not autocommit: the UPDATE's transaction stays open
        application.execute("UPDATE users SET updated_at = 'soon' WHERE key = 'corp:a1'")
        with pytest.raises(StoreError) as raised:
            impatient.apply([], fingerprint, record())
        application.rollback()
    assert str(raised.value).endswith(
        "the store is busy: another transaction held its tables for over 1 s (another apply, or the application "
        "writing); try again")
    impatient.close()


def test_a_schema_with_the_applications_own_users_table_is_refused_before_anything_is_created(
    engine: PostgresEngine, store: PostgresStore
):
    engine.execute("CREATE TABLE users (id serial PRIMARY KEY, login text)")
    engine.execute("INSERT INTO users (login) VALUES ('root')")
    refusal = (f"{describe_store(engine)}: not a reconciler store: schema {engine.schema()} has tables of another "
               "application named like the store's (users) and no reconciler schema_version table, so it was left "
               "as it is; point the store at a schema of its own (options=-csearch_path%3Dreconciler in the URL)")
    for attempt in (store.read, store.history, lambda: apply(store), lambda: store.record(record())):
        with pytest.raises(StoreError) as raised:  # plan and history too: not read as an empty store
            attempt()
        assert str(raised.value) == refusal
    with pytest.raises(StoreError, match="not a reconciler store: "):
        with store.lock("ci@runner"):
            pass
    assert engine.rows("SELECT tablename FROM pg_tables WHERE schemaname = ?", (engine.schema(),)) == [("users",)]
    assert engine.rows("SELECT login FROM users") == [("root",)]


def test_another_applications_schema_version_table_is_a_clash_too(engine: PostgresEngine, store: PostgresStore):
    engine.execute("CREATE TABLE schema_version (version text PRIMARY KEY, script text)")  # a migration tool's
    engine.execute("INSERT INTO schema_version VALUES ('1', 'V1__init.sql')")
    with pytest.raises(StoreError, match=r"has tables of another application named like the store's "
                                         r"\(schema_version\)"):
        apply(store)
    assert engine.rows("SELECT * FROM schema_version") == [("1", "V1__init.sql")]


def test_a_schema_with_other_tables_of_other_names_gets_the_store_beside_them(
    engine: PostgresEngine, store: PostgresStore
):
    """A schema is a shared namespace (public holds extensions' tables too): only a clash of names is refused."""
    engine.execute("CREATE TABLE orders (id serial PRIMARY KEY)")
    seeded(store)
    assert sorted(store.read().users) == ["corp:a1", "corp:b2"]
    assert ("orders",) in engine.rows("SELECT tablename FROM pg_tables WHERE schemaname = ?", (engine.schema(),))


def describe_store(engine: PostgresEngine) -> str:
    return describe(parse_conninfo(engine.url(), "store.url"))


# ───────────────────────────── the advisory lock ─────────────────────────────


def test_the_apply_lock_is_an_advisory_lock_of_the_holding_session(engine: PostgresEngine, store: PostgresStore):
    with store.lock("ci@runner") as info:
        assert info.holder == "ci@runner"
        assert advisory_holders(engine) == [backend_pid(store)]
        assert engine.rows("SELECT holder, ttl_seconds FROM apply_lock") == [("ci@runner", 900)]
    assert advisory_holders(engine) == [] and engine.rows("SELECT * FROM apply_lock") == []


def test_stores_in_two_schemas_of_one_database_do_not_share_the_lock(engine: PostgresEngine):
    first, other = engine.open(), engine.open("other")
    with first.lock("ci@first"):
        with other.lock("ci@other") as info:
            assert info.holder == "ci@other"
    first.close()
    other.close()


CRASHING_RUN = textwrap.dedent("""
    import sys, time
    from reconciler.policy.model import SecretRef, StoreConfig
    from reconciler.store.sql.postgres import PostgresStore
    store = PostgresStore(StoreConfig(kind="sql", url=SecretRef("TEST_DATABASE_URL_MAIN", "store.url")))
    held = store.lock("ci@crashed")  # kept: a collected generator would release the lock
    held.__enter__()
    print("locked", flush=True)
    time.sleep(60)
""")


def test_a_crashed_runs_lock_goes_with_its_session_and_is_taken_over_at_once(engine: PostgresEngine):
    engine.config()  # sets TEST_DATABASE_URL_MAIN for the child
    crashed = subprocess.Popen([sys.executable, "-c", CRASHING_RUN], stdout=subprocess.PIPE, text=True,
                               env=os.environ.copy(), start_new_session=True)
    try:
        assert crashed.stdout.readline().strip() == "locked"
        successor = engine.open()
        with pytest.raises(LockHeld, match="store is locked by ci@crashed since "):
            with successor.lock("ci@next"):
                pass
        os.kill(crashed.pid, signal.SIGKILL)  # the run dies: no release, no cleanup
        crashed.wait(10)
    finally:
        if crashed.poll() is None:
            os.kill(crashed.pid, signal.SIGKILL)
            crashed.wait(10)
    # the server ends the session when it sees the connection close; well before any TTL
    wait_until(lambda: advisory_holders(engine) == [], 10, "the crashed session's end")
    assert engine.rows("SELECT holder FROM apply_lock") == [("ci@crashed",)]  # the row still tells who it was
    with successor.lock("ci@next") as info:
        assert info.expired_takeover is not None
        assert info.expired_takeover.startswith("took over the lock of ci@crashed (held since ")
        assert "database session ended without releasing it" in info.expired_takeover
        assert engine.rows("SELECT holder FROM apply_lock") == [("ci@next",)]
        apply(successor)
    successor.close()


def test_the_advisory_lock_decides_not_the_rows_process(engine: PostgresEngine):
    """A file store proves a crashed holder gone by its pid on this host; PostgreSQL needs no such proof: the
    advisory lock ends with the holder's session, wherever it ran. A row whose process still runs (this very
    test process) but whose session is gone is taken over at once, within its TTL."""
    seed = engine.open()
    apply(seed)
    seed.close()
    engine.execute("INSERT INTO apply_lock (name, holder, token, since, ttl_seconds) VALUES ('apply', 'ci@gone', ?, "
                   "'2026-11-21T09:00:00Z', 900)", (f"0123abcd {LockProcess.current().encode()}",))
    successor = engine.open(clock=FakeClock())  # 09:00:00: the row is within its TTL
    with successor.lock("ci@next") as info:
        assert info.expired_takeover == (
            "took over the lock of ci@gone (held since 2026-11-21T09:00:00Z); its database session ended without "
            "releasing it, so that apply presumably crashed")
    successor.close()


def test_a_live_session_past_its_ttl_keeps_the_lock_and_the_refusal_says_how_to_end_it(engine: PostgresEngine):
    clock = FakeClock()
    slow = engine.open(lock_ttl=60, clock=clock)
    successor = engine.open(clock=clock)
    with slow.lock("ci@slow"):
        clock.advance(61)
        with pytest.raises(LockHeld) as raised:
            with successor.lock("ci@next"):
                pass
        pid = backend_pid(slow)
        assert str(raised.value) == "refused, nothing changed: " + raised.value.message
        assert raised.value.message == (
            "store is locked by ci@slow since 2026-11-21T09:00:00Z; that apply has run past its 60 s lock TTL but "
            f"its database session (server process {pid}) is still connected, so it may still be writing; "
            f"if it hangs, end it with SELECT pg_terminate_backend({pid})"
        )
    slow.close()
    successor.close()


# ───────────────────────────── connecting ─────────────────────────────


def connect_error(url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", url)
    store = PostgresStore(StoreConfig(kind="sql", url=SecretRef("DATABASE_URL", "store.url")))
    with pytest.raises(StoreError) as raised:
        store.read()
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_a_wrong_password_is_one_line_naming_server_and_cause_without_the_password(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
):
    wrong = "Wrong-" + uuid.uuid4().hex
    message = connect_error(postgres.url(password=wrong), monkeypatch)
    assert message == (
        f"postgresql://{ROLE}@127.0.0.1:{postgres.port}/{DATABASE}: cannot connect: authentication failed for "
        f"user {ROLE}: wrong password; fix it in the URL in ${{DATABASE_URL}}"
    )
    assert wrong not in message


@pytest.mark.parametrize("case, says", [
    ("database", "cannot connect: no such database nodb; create it"),
    ("refused", "cannot connect: connection refused: nothing listens there; check host and port"),
    ("silent", "cannot connect: no answer within 1 s (timeout); check host, port and firewalls"),
])
def test_connection_failures_name_server_and_cause(postgres: PostgresServer, monkeypatch, case: str, says: str):
    if case == "database":
        url, where = postgres.url(database="nodb"), f"127.0.0.1:{postgres.port}/nodb"
        message = connect_error(url, monkeypatch)
    else:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        if case == "silent":
            listener.listen()  # accepts the TCP connection, never answers
        else:
            listener.close()
        where = f"127.0.0.1:{port}/{DATABASE}"
        try:
            message = connect_error(
                f"postgresql://{ROLE}:{ROLE_PASSWORD}@127.0.0.1:{port}/{DATABASE}?connect_timeout=1&sslmode=disable",
                monkeypatch)
        finally:
            listener.close()
    assert message.startswith(f"postgresql://{ROLE}@{where}: ") and says in message
    assert ROLE_PASSWORD not in message


def test_a_url_that_is_not_postgresql_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://app:s3cret-pw@db.example.com/app")
    store = PostgresStore(StoreConfig(kind="sql", url=SecretRef("DATABASE_URL", "store.url")))
    with pytest.raises(StoreError) as raised:
        store.read()
    assert str(raised.value) == "${DATABASE_URL} is a mysql:// URL; a sql store needs postgresql://user@host:port/database"
    monkeypatch.setenv("DATABASE_URL", "host=db password=s3cret-pw = oops")
    with pytest.raises(StoreError) as raised:
        store.read()
    assert "s3cret-pw" not in str(raised.value) and "does not parse as a PostgreSQL URL" in str(raised.value)


def test_a_url_without_password_takes_it_from_pgpassword(engine: PostgresEngine, monkeypatch: pytest.MonkeyPatch):
    plain = engine.server.url(password=None, schema=engine.schema())
    monkeypatch.setenv("PGPASSWORD", ROLE_PASSWORD)
    store = PostgresStore(StoreConfig(kind="sql", url=plain))
    seeded(store)
    assert sorted(store.read().users) == ["corp:a1", "corp:b2"]
    store.close()
    monkeypatch.setenv("PGPASSWORD", "not-it")
    with pytest.raises(StoreError, match="authentication failed for user reconciler: wrong password; fix it in "
                                         "PGPASSWORD or PGPASSFILE"):
        PostgresStore(StoreConfig(kind="sql", url=plain)).read()


def test_a_url_without_password_takes_it_from_pgpassfile(
    engine: PostgresEngine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{engine.server.port}:{DATABASE}:{ROLE}:{ROLE_PASSWORD}\n")
    passfile.chmod(0o600)  # libpq ignores a password file others can read
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    store = PostgresStore(StoreConfig(kind="sql", url=engine.server.url(password=None, schema=engine.schema())))
    seeded(store)
    assert sorted(store.read().users) == ["corp:a1", "corp:b2"]
    store.close()


def test_the_documented_minimal_roles_run_the_store_and_let_the_application_read_it(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
):
    """The setup docs/store-postgres.md gives, statement for statement (names made unique)."""
    suffix = uuid.uuid4().hex[:6]
    sync, app, schema = f"sync_{suffix}", f"app_{suffix}", f"reconciler_{suffix}"
    sync_password, app_password = uuid.uuid4().hex, uuid.uuid4().hex
    postgres.sql(f"CREATE ROLE {sync} LOGIN PASSWORD '{sync_password}'",
                 f"CREATE ROLE {app} LOGIN PASSWORD '{app_password}'")
    postgres.sql(
        f"CREATE SCHEMA {schema}",
        f"REVOKE ALL ON DATABASE {DATABASE} FROM PUBLIC",  # nothing but the grants below
        f"GRANT CONNECT ON DATABASE {DATABASE} TO {sync}",
        f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {sync}",
        f"GRANT CONNECT ON DATABASE {DATABASE} TO {app}",
        f"GRANT USAGE ON SCHEMA {schema} TO {app}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {sync} IN SCHEMA {schema} GRANT SELECT ON TABLES TO {app}",
        database=DATABASE,
    )
    monkeypatch.setenv("DATABASE_URL", postgres.url(sync, sync_password, schema=schema))
    store = PostgresStore(StoreConfig(kind="sql", url=SecretRef("DATABASE_URL", "store.url")))
    with store.lock("ci@minimal"):
        seeded(store)
    with psycopg.connect(postgres.url(sync, sync_password, schema=schema), autocommit=True) as owner:
        owner.execute(f"GRANT INSERT, UPDATE, DELETE ON {schema}.users TO {app}")  # hand-made users, if wanted

    with psycopg.connect(postgres.url(app, app_password, schema=schema), autocommit=True) as application:
        assert application.execute("SELECT key, email FROM users ORDER BY key").fetchall() == [
            ("corp:a1", "alice@example.com"), ("corp:b2", "bob@example.com")]
        row_id = application.execute(
            "INSERT INTO users (email, created_at, updated_at) VALUES ('hand@example.com', 'now', 'now') RETURNING id"
        ).fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            application.execute("DELETE FROM apply_history")
    assert store.read().users[f"local:{row_id}"].email == "hand@example.com"
    store.close()


def test_a_schema_the_role_may_not_write_gives_a_line_that_says_what_it_needs(postgres: PostgresServer, monkeypatch):
    schema = postgres.new_schema(owner="postgres")
    monkeypatch.setenv("DATABASE_URL", postgres.url(schema=schema))
    store = PostgresStore(StoreConfig(kind="sql", url=SecretRef("DATABASE_URL", "store.url")))
    assert store.read().users == {}  # reading an absent store needs no rights
    with pytest.raises(StoreError) as raised:  # without USAGE the schema is not even on the search_path
        seeded(store)
    assert str(raised.value).endswith(
        "no schema to create the store's tables in: none on the search_path exists and grants this role USAGE; "
        "create one (CREATE SCHEMA reconciler AUTHORIZATION <role>) and name it in the URL with "
        "options=-csearch_path%3Dreconciler")
    postgres.sql(f"GRANT USAGE ON SCHEMA {schema} TO {ROLE}", database=DATABASE)
    with pytest.raises(StoreError) as raised:
        seeded(store)
    assert str(raised.value) == (
        f"postgresql://{ROLE}@127.0.0.1:{postgres.port}/{DATABASE}: permission denied for schema {schema}; the role "
        "needs to own the store's schema, or CONNECT on the database and USAGE, CREATE on the schema "
        "(see docs/store-postgres.md)")
    store.close()


def test_to_pyformat_turns_placeholders_outside_literals_and_escapes_percent():
    assert to_pyformat("SELECT ? , '?', 'it''s ?', x % 2 FROM t WHERE a = ?") == (
        "SELECT %s , '?', 'it''s ?', x %% 2 FROM t WHERE a = %s"
    )


# ───────────────────────────── the quickstart through the command ─────────────────────────────


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


@pytest.fixture
def quickstart_on_postgres(engine: PostgresEngine, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    source = REPO / "examples" / "quickstart"
    for name in ("corp.ldif", "emea.ldif"):
        shutil.copy(source / name, tmp_path / name)
    text = (source / "policy.yaml").read_text()
    assert "store:\n  kind: sqlite\n  path: .reconciler/store.db\n" in text
    text = text.replace("store:\n  kind: sqlite\n  path: .reconciler/store.db\n",
                        "store: {kind: sql, url: '${DATABASE_URL}'}\n")
    (tmp_path / "policy.yaml").write_text(text)
    env = {**os.environ, "DATABASE_URL": engine.url()}
    env.pop("PGPASSWORD", None)
    return tmp_path / "policy.yaml", env


def test_the_quickstart_applies_to_postgresql_and_then_plans_no_changes(
    engine: PostgresEngine, quickstart_on_postgres, capsys
):
    policy, env = quickstart_on_postgres
    started = time.monotonic()
    applied = run_cli("apply", str(policy), "--auto-approve", env=env, cwd=policy.parent)
    seconds = time.monotonic() - started
    assert applied.returncode == 0, applied.stderr
    assert "Applied: " in applied.stdout and "users to create" in applied.stdout
    users = engine.rows("SELECT count(*) FROM users WHERE managed = 1")[0][0]
    assert users > 200
    again = run_cli("plan", str(policy), "--detailed-exitcode", env=env, cwd=policy.parent)
    assert again.returncode == 0, again.stdout + again.stderr
    history = run_cli("history", str(policy), env=env, cwd=policy.parent)
    assert history.returncode == 0 and "applied" in history.stdout
    assert ROLE_PASSWORD not in applied.stdout + applied.stderr + again.stdout + again.stderr + history.stdout
    with capsys.disabled():
        print(f"\n  quickstart apply on PostgreSQL through the command: {seconds:.1f}s for {users} users")


def test_the_command_says_a_wrong_password_in_one_line_without_it(
    postgres: PostgresServer, engine: PostgresEngine, quickstart_on_postgres
):
    policy, env = quickstart_on_postgres
    wrong = "Wrong-" + uuid.uuid4().hex
    env["DATABASE_URL"] = postgres.url(password=wrong, schema=engine.schema())
    result = run_cli("plan", str(policy), env=env, cwd=policy.parent)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"postgresql://{ROLE}@127.0.0.1:{postgres.port}/{DATABASE}: cannot connect: authentication failed for "
        f"user {ROLE}: wrong password; fix it in the URL in ${{DATABASE_URL}}"
    ]
    assert wrong not in result.stdout + result.stderr
    checked = run_cli("check", str(policy), env=env, cwd=policy.parent)
    assert checked.returncode == 1
    assert checked.stdout.splitlines()[-1] == f"FAIL store: sql: {result.stderr.strip()}"
    assert wrong not in checked.stdout + checked.stderr
