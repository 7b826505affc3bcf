"""The SQLite store: the shared store contract (tests/store_contract.py) on a SQLite file,
plus what only a file store has: the folder it creates, WAL mode, a file that is not a
database, and a crashed run's lock that only its TTL can free.

Rows are checked with a separate sqlite3 connection, the way an application
reads the store.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from reconciler.errors import StoreError
from reconciler.model import Link
from reconciler.policy.model import StoreConfig
from reconciler.store import open_store
from reconciler.store.sql.sqlite import SqliteStore
from tests.store_contract import *  # noqa: F401,F403  the contract's tests run here against SQLite
from tests.store_contract import FakeClock, apply


class SqliteEngine:
    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / "state" / "store.db"

    def store_path(self, name: str) -> Path:
        return self.path if name == "main" else self.folder / f"{name}.db"

    def open(self, name: str = "main", **options) -> SqliteStore:
        return SqliteStore(StoreConfig(kind="sqlite", path=str(self.store_path(name))), **options)

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        return rows(self.path, sql, params)

    def execute(self, sql: str, params: tuple = ()) -> None:
        execute(self.path, sql, params)

    def insert(self, sql: str, params: tuple = ()) -> int:
        return execute(self.path, sql, params)

    def columns(self, table: str) -> list[str]:
        return [column[1] for column in rows(self.path, f"PRAGMA table_info({table})")]

    def created_nothing(self) -> bool:
        return not self.path.exists() and not self.path.parent.exists()

    def held_message(self, holder: str, since: str, expires: str, holding: SqliteStore) -> str:
        return f"store is locked by {holder} since {since}; another apply is running (the lock expires at {expires})"


@pytest.fixture
def engine(tmp_path: Path) -> SqliteEngine:
    return SqliteEngine(tmp_path)


@pytest.fixture
def path(engine: SqliteEngine) -> Path:
    return engine.path


def rows(path: Path, sql: str, params=()) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql, params).fetchall()


def execute(path: Path, sql: str, params=()) -> int:
    db = sqlite3.connect(path)
    try:
        with db:
            cursor = db.execute(sql, params)
        return cursor.lastrowid
    finally:
        db.close()


def test_first_write_creates_the_folder_and_wal_mode(store: SqliteStore, path: Path):
    apply(store)  # an empty plan against a store that does not exist yet
    assert path.exists()
    assert rows(path, "PRAGMA journal_mode") == [("wal",)]


def test_open_store_picks_sqlite_for_kind_sqlite(path: Path):
    store = open_store(StoreConfig(kind="sqlite", path=str(path)))
    assert isinstance(store, SqliteStore) and store.kind == "sqlite"


def test_a_file_that_is_not_a_database_gives_one_line_naming_the_file(path: Path):
    path.parent.mkdir(parents=True)
    path.write_text("not sqlite at all, just text that is long enough to look like a header " * 20)
    with pytest.raises(StoreError) as raised:
        SqliteStore(StoreConfig(kind="sqlite", path=str(path))).read()
    message = str(raised.value)
    assert message.startswith(f"{path}: not a SQLite database") and "\n" not in message


def test_an_expired_lock_is_taken_over_and_says_whose_it_was(path: Path):
    clock = FakeClock()
    crashed = SqliteStore(StoreConfig(kind="sqlite", path=str(path)), lock_ttl=60, clock=clock)
    successor = SqliteStore(StoreConfig(kind="sqlite", path=str(path)), clock=clock)
    lock = crashed.lock("ci@crashed")
    lock.__enter__()  # never exited: the run died holding it
    clock.advance(61)
    with successor.lock("ci@next") as info:
        assert info.expired_takeover is not None
        assert "ci@crashed" in info.expired_takeover and "2026-11-21T09:00:00Z" in info.expired_takeover
        assert rows(path, "SELECT holder FROM apply_lock") == [("ci@next",)]
        lock.__exit__(None, None, None)  # the crashed run's late release must not free its successor's lock
        assert rows(path, "SELECT holder FROM apply_lock") == [("ci@next",)]
        apply(successor)  # the holder may apply
    crashed.close()
    successor.close()


def test_a_read_that_knows_the_people_keeps_their_equal_values_once(engine: SqliteEngine):
    """At a million users the store and the directories agree on nearly everything: the SQL store's read
    takes the known person's equal values (key, email, name, attributes, links) rather than its own copies,
    and keeps its own where they differ."""
    from tests.store_contract import create_user, known_people, seeded

    store = engine.open()
    seeded(store)
    apply(store, create_user("corp:c3", "carol@example.com", "Org"))
    engine.execute("INSERT INTO user_links (user_id, directory, anchor) SELECT id, 'hr', 'c3' FROM users WHERE key = 'corp:c3'")
    known = known_people()
    users = store.read(known=known).users
    alice, bob, carol = users["corp:a1"], users["corp:b2"], users["corp:c3"]
    same = known["corp:a1"]
    assert (alice.key, alice.email, alice.display_name, alice.attributes, alice.links) == \
        (same.key, same.email, same.display_name, same.attributes, same.links)
    assert all(mine is theirs for mine, theirs in zip(
        (alice.key, alice.email, alice.display_name, alice.attributes, alice.links),
        (same.key, same.email, same.display_name, same.attributes, same.links)))
    assert bob.email == "bob@example.com" and bob.email is not known["corp:b2"].email
    assert bob.key is known["corp:b2"].key and bob.links is known["corp:b2"].links
    assert carol.links is known["corp:c3"].links and carol.links == (Link("corp", "c3"), Link("hr", "c3"))


@pytest.mark.parametrize("damage, expected", [
    ("UPDATE users SET attributes = '[1, 2]' WHERE key = 'corp:b2'",
     "users row id {b2}: attributes is not a JSON object; fix the row (attributes must be a JSON object)"),
    ("UPDATE users SET attributes = '{{not json' WHERE key = 'corp:b2'",
     "users row id {b2}: Expecting property name enclosed in double quotes"),
    ("UPDATE users SET key = 'local:{a1}' WHERE key = 'corp:b2'",
     "users row id {b2}: key local:{a1} is also another user's key; local:<id> keys belong to rows whose key is NULL"),
])
def test_a_hand_damaged_users_row_is_one_line_naming_the_row(engine: SqliteEngine, damage: str, expected: str):
    """The application owns the users table and may damage a row by hand: the read says which row and what
    is wrong with it in one line (a StoreError, no traceback), and nothing is read as if it were right."""
    from tests.store_contract import seeded

    store = engine.open()
    seeded(store)
    ids = dict(engine.rows("SELECT key, id FROM users"))
    a1, b2 = ids["corp:a1"], ids["corp:b2"]
    engine.execute("UPDATE users SET key = NULL WHERE id = ?", (a1,))  # alice made by hand: local:<id>
    engine.execute(damage.format(a1=a1, b2=b2))
    with pytest.raises(StoreError) as raised:
        store.read()
    assert expected.format(a1=a1, b2=b2) in str(raised.value) and str(engine.path) in str(raised.value)
    assert "\n" not in str(raised.value) and "Traceback" not in str(raised.value)
