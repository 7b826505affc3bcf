"""What a SQLite store file (and the SCIM side file, which is one) is opened as, before anything is read from it:

- a file this user may not write is opened read-only: reads work and write nothing, in the file or next to it
  (no -wal, no -shm), writes say they need write access;
- a SQLite database of another application is refused, reading and writing, and left byte for byte as it was
  (its journal mode included: SQLite's WAL mode would stay with the file).

Write access is taken away by making `os.access` say no (these tests also run as root, which SQLite's own
checks would let through); tests/e2e/test_store_files.py does the same through the command, for real.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from reconciler.errors import StoreError
from reconciler.policy.model import StoreConfig
from reconciler.store.scim.state import NOTES_TABLE, Notes, SideFile, UserNote
from reconciler.store.sql import schema as sql_schema
from reconciler.store.sql import sqlite as sqlite_module
from reconciler.store.sql import store as sql_store
from reconciler.store.sql.sqlite import SqliteStore
from tests.store_contract import apply, create_team, create_user, record, seeded


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


def no_write_access(monkeypatch: pytest.MonkeyPatch, *paths: Path) -> None:
    """This user may not write `paths` (a file, a folder); everything else as it is."""
    real = os.access
    denied = {os.path.abspath(p) for p in paths}

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and os.path.abspath(path) in denied:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(sqlite_module.os, "access", access)


def folder_and_bytes(path: Path) -> tuple[list[str], bytes]:
    return sorted(os.listdir(path.parent)), path.read_bytes()


@pytest.fixture
def seeded_store(path: Path) -> Path:
    s = open_store(path)
    seeded(s)
    s.close()
    assert os.listdir(path.parent) == ["store.db"]  # WAL mode, every commit checkpointed: no -wal, no -shm
    return path


# ───────────────────────────── read-only ─────────────────────────────


@pytest.mark.parametrize("denied", ["file", "folder", "both"])
def test_a_store_this_user_cannot_write_is_read_read_only_writing_nothing(
    seeded_store: Path, monkeypatch: pytest.MonkeyPatch, denied: str
):
    path = seeded_store
    before = folder_and_bytes(path)
    no_write_access(monkeypatch, *{"file": [path], "folder": [path.parent], "both": [path, path.parent]}[denied])
    s = open_store(path)
    state = s.read()
    assert s.read_only and sorted(state.users) == ["corp:a1", "corp:b2"]
    assert [h.outcome for h in s.history()] == ["applied"]
    assert folder_and_bytes(path) == before  # not even SQLite's -wal and -shm files
    with pytest.raises(StoreError) as raised:
        apply(s)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and "apply needs write access to" in message and "\n" not in message
    assert "plan, history and explain only read" in message
    s.close()
    assert folder_and_bytes(path) == before


def test_write_access_back_and_the_next_write_reopens_the_file_for_writing(seeded_store: Path, monkeypatch):
    no_write_access(monkeypatch, seeded_store)
    s = open_store(seeded_store)
    fingerprint = s.fingerprint()
    assert s.read_only
    monkeypatch.undo()
    s.apply([create_team("Org/Ops", "Org")], fingerprint, record())
    assert not s.read_only and "Org/Ops" in s.read().teams
    s.close()


def test_a_read_that_overlaps_a_write_it_cannot_lock_against_says_run_again(seeded_store: Path, monkeypatch):
    """Without -wal and -shm, and without write access to create them, the read takes no lock (immutable=1):
    a writer that comes along meanwhile is noticed by the file's change, not silently half-read."""
    no_write_access(monkeypatch, seeded_store.parent)
    reader = open_store(seeded_store)
    assert sorted(reader.read().users) == ["corp:a1", "corp:b2"]
    execute(seeded_store, "UPDATE users SET display_name = 'Changed' WHERE key = 'corp:a1'")  # then checkpointed
    with pytest.raises(StoreError) as raised:
        reader.read()
    assert str(raised.value) == (
        f"{seeded_store}: the store file changed while it was read: another process wrote to it, and this user, "
        "without write access to the store's folder, cannot share SQLite's locks with it; run the command again")
    assert reader.read().users["corp:a1"].display_name == "Changed"  # the next command reads it afresh
    reader.close()


def test_what_a_crashed_writer_left_in_the_wal_file_is_read_read_only(seeded_store: Path, monkeypatch):
    """With a -wal file there, the file alone is not the store: read with SQLite's locks (mode=ro), the -wal's
    commits included. A writer killed before closing leaves its -wal and -shm behind."""
    writer = sqlite3.connect(seeded_store, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")  # the commit stays in the -wal file
    writer.execute("UPDATE users SET display_name = 'In the WAL' WHERE key = 'corp:a1'")
    assert (seeded_store.parent / "store.db-wal").exists()
    no_write_access(monkeypatch, seeded_store, seeded_store.parent)
    reader = open_store(seeded_store)
    assert reader.read().users["corp:a1"].display_name == "In the WAL"
    assert reader.read_only
    reader.close()
    writer.close()


def test_an_older_schema_is_read_as_it_is_when_it_cannot_be_upgraded(seeded_store: Path, monkeypatch):
    now, nxt = sql_schema.LATEST_VERSION, sql_schema.LATEST_VERSION + 1
    upgraded = (*sql_schema.MIGRATIONS, sql_schema.Migration(nxt, "a note per team", ("ALTER TABLE teams ADD COLUMN note TEXT",)))
    monkeypatch.setattr(sql_schema, "MIGRATIONS", upgraded)
    monkeypatch.setattr(sql_store, "LATEST_VERSION", nxt)
    no_write_access(monkeypatch, seeded_store.parent)
    s = open_store(seeded_store)
    assert sorted(s.read().users) == ["corp:a1", "corp:b2"]  # the current version is readable (OLDEST_READABLE)
    assert max(rows(seeded_store, "SELECT version FROM schema_version")) == (now,)  # and was left at it
    s.close()
    monkeypatch.setattr(sql_store, "OLDEST_READABLE", nxt)  # had the next migration changed what read() reads
    s = open_store(seeded_store)
    with pytest.raises(StoreError) as raised:
        s.read()
    assert str(raised.value).startswith(
        f"{seeded_store}: the store has schema version {now}, which this reconciler reads only after upgrading it to "
        f"{nxt}, and the upgrade failed: ")
    s.close()


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


def test_the_scim_side_file_reads_its_notes_read_only_and_refuses_another_applications_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    side_path = tmp_path / ".reconciler" / "scim-state.db"
    side = SideFile(side_path)
    side.record(record(outcome="applied"))
    side.save(Notes(users={"corp:a1": UserNote("Org", ("corp:a1",))}))
    side.close()
    assert sorted(os.listdir(side_path.parent)) == ["scim-state.db"]
    before = folder_and_bytes(side_path)
    no_write_access(monkeypatch, side_path.parent)
    reader = SideFile(side_path)
    assert reader.load().users == {"corp:a1": UserNote("Org", ("corp:a1",))}  # its notes table is its own
    assert [h.outcome for h in reader.history()] == ["applied"]
    reader.close()
    assert folder_and_bytes(side_path) == before
    monkeypatch.undo()

    other = tmp_path / "other" / "scim-state.db"
    someone_elses(other, "wal")
    before = folder_and_bytes(other)
    foreign = SideFile(other)
    for attempt in (foreign.load, foreign.history, lambda: foreign.record(record())):
        with pytest.raises(StoreError) as raised:
            attempt()
        assert str(raised.value).startswith(f"{other}: not a reconciler store: ")
        assert str(raised.value).endswith("; point store.state_dir at reconciler's store file, or at a path that "
                                          "does not exist yet")
    foreign.close()
    assert folder_and_bytes(other) == before
    assert NOTES_TABLE not in {name for (name,) in rows(other, "SELECT name FROM sqlite_master")}
