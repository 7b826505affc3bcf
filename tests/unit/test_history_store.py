"""The history's count of applies with no changes where a store is older or hand-edited: a store of schema
version 2 (one line per apply, no unchanged_runs) is read as it is where it may not be written and
upgraded in place where it may; a count in `meta` that is not a number reads as none."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from reconciler.store.sql.schema import LATEST_VERSION
from reconciler.policy.model import StoreConfig
from reconciler.store.sql import sqlite as sqlite_module
from reconciler.store.sql.sqlite import SqliteStore
from tests.store_contract import apply, create_team, record


def open_store(path: Path) -> SqliteStore:
    return SqliteStore(StoreConfig(kind="sqlite", path=str(path)))


def rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def execute(path: Path, *statements: str) -> None:
    with sqlite3.connect(path) as db:
        for statement in statements:
            db.execute(statement)


@pytest.fixture
def version_2_store(tmp_path: Path) -> Path:
    """A store as reconciler wrote it at schema version 2: every apply a line, the empty ones too."""
    path = tmp_path / "store.db"
    s = open_store(path)
    apply(s, create_team("Org"))
    s.record(record(finished_at="2026-11-21T10:00:00Z", outcome="applied"))  # an empty apply, recorded then
    s.close()
    execute(path, "ALTER TABLE apply_history DROP COLUMN unchanged_runs", "DROP TABLE directory_sync",
            *(f"DROP TRIGGER {name}" for (name,) in rows(path, "SELECT name FROM sqlite_master WHERE type = 'trigger'")),
            "DROP TABLE store_generation", "DELETE FROM schema_version WHERE version >= 3")
    return path


def test_a_version_2_store_that_cannot_be_written_reads_its_lines_with_no_count(
    version_2_store: Path, monkeypatch: pytest.MonkeyPatch
):
    real = os.access
    monkeypatch.setattr(sqlite_module.os, "access",
                        lambda p, mode, *a, **k: False if mode & os.W_OK else real(p, mode, *a, **k))
    before = version_2_store.read_bytes()
    s = open_store(version_2_store)
    history = s.history()
    assert [h.unchanged_runs for h in history] == [0, 0] and history.unchanged.runs == 0
    s.close()
    assert version_2_store.read_bytes() == before  # read as it is, not upgraded


def test_a_version_2_store_is_upgraded_and_counts_from_then_on(version_2_store: Path):
    s = open_store(version_2_store)
    apply(s)  # the first write upgrades it; this apply changed nothing: counted, no line
    assert max(rows(version_2_store, "SELECT version FROM schema_version")) == (LATEST_VERSION,)
    assert rows(version_2_store, "SELECT id, unchanged_runs FROM apply_history ORDER BY id") == [(1, 0), (2, 0)]
    history = s.history()
    assert len(history) == 2 and history.unchanged.runs == 1
    line = apply(s, create_team("Sales"))
    assert line.unchanged_runs == 1 and [h.unchanged_runs for h in s.history()] == [1, 0, 0]
    s.close()


def test_a_hand_edited_count_reads_as_none(tmp_path: Path):
    path = tmp_path / "store.db"
    s = open_store(path)
    apply(s)
    execute(path, "UPDATE meta SET value = 'many' WHERE key = 'noop_applies'")
    assert s.history().unchanged.runs == 0 and s.history().unchanged.latest is None
    apply(s)  # counting starts again
    assert s.history().unchanged.runs == 1
    assert apply(s, create_team("Org")).unchanged_runs == 1
    assert rows(path, "SELECT key FROM meta WHERE key IN ('noop_applies', 'last_noop_at')") == []
    s.close()
