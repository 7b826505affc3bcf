"""What a SQLite store file (and the SCIM side file, which is one) is opened as, before anything is read from it:
a SQLite database of another application is refused, reading and writing, and left byte for byte as it was
(its journal mode included: SQLite's WAL mode would stay with the file).
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from reconciler.errors import StoreError
from reconciler.policy.model import StoreConfig
from reconciler.store.scim.state import NOTES_TABLE, SideFile
from reconciler.store.sql.sqlite import SqliteStore
from tests.store_contract import apply, create_user, record


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "store.db"


def open_store(path: Path) -> SqliteStore:
    return SqliteStore(StoreConfig(kind="sqlite", path=str(path)))


def rows(path: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def execute(path: Path, *statements: str) -> None:
    db = sqlite3.connect(path)
    try:
        with db:
            for statement in statements:
                db.execute(statement)
    finally:
        db.close()


def folder_and_bytes(path: Path) -> tuple[list[str], bytes]:
    return sorted(os.listdir(path.parent)), path.read_bytes()


# ───────────────────────────── another application's database ─────────────────────────────


def someone_elses(path: Path, journal: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    execute(path, f"PRAGMA journal_mode = {journal}", "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, login TEXT)", "INSERT INTO accounts VALUES (1, 'acme')")


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_a_database_of_another_application_is_refused_untouched(path: Path, journal: str):
    someone_elses(path, journal)
    before = folder_and_bytes(path)
    s = open_store(path)
    lock = s.lock("ci@runner")
    for attempt in (s.read, s.history, lambda: apply(s), lambda: s.record(record()), lock.__enter__):
        with pytest.raises(StoreError) as raised:
            attempt()
        assert str(raised.value) == (
            f"{path}: not a reconciler store: this SQLite database has tables of its own (accounts, users) and no "
            "reconciler schema_version table, so it was left as it is; point store.path at reconciler's store "
            "file, or at a path that does not exist yet")
    s.close()
    assert folder_and_bytes(path) == before  # the journal mode in the header included


@pytest.mark.parametrize("their_table", [
    "CREATE TABLE schema_version (version INTEGER, script TEXT)",  # a migration tool's, other columns
    "CREATE TABLE schema_version (version INTEGER, description TEXT, applied_at TEXT)",  # ours by name, not by row
])
def test_another_applications_schema_version_table_is_not_taken_for_reconcilers(path: Path, their_table: str):
    path.parent.mkdir(parents=True)
    execute(path, their_table, "INSERT INTO schema_version (version) VALUES (1)")
    s = open_store(path)
    with pytest.raises(StoreError, match=r"not a reconciler store: this SQLite database has tables of its own "
                                         r"\(schema_version\)"):
        s.read()
    s.close()


@pytest.mark.parametrize("made_by", ["touch", "sqlite3 without tables"])
def test_an_empty_database_file_is_a_new_store(path: Path, made_by: str):
    path.parent.mkdir(parents=True)
    if made_by == "touch":
        path.write_bytes(b"")
    else:
        execute(path, "PRAGMA user_version = 7")
    s = open_store(path)
    assert s.read().users == {}
    apply(s, create_user("corp:a1", "alice@example.com"))
    assert list(s.read().users) == ["corp:a1"]
    s.close()


# ───────────────────────────── the SCIM side file ─────────────────────────────


def test_the_scim_side_file_refuses_another_applications_file(tmp_path: Path):
    other = tmp_path / "other" / "scim-state.db"
    someone_elses(other, "wal")
    before = folder_and_bytes(other)
    foreign = SideFile(other)
    for attempt in (foreign.history, lambda: foreign.record(record())):
        with pytest.raises(StoreError) as raised:
            attempt()
        assert str(raised.value).startswith(f"{other}: not a reconciler store: ")
        assert str(raised.value).endswith("; point store.state_dir at reconciler's store file, or at a path that "
                                          "does not exist yet")
    foreign.close()
    assert folder_and_bytes(other) == before
    assert NOTES_TABLE not in {name for (name,) in rows(other, "SELECT name FROM sqlite_master")}
