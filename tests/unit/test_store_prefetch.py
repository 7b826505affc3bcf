"""A plan's SQL store read in a helper process (reconciler/store/sql/prefetch.py): the state is the read's,
made from the helper's rows when it answers and read here whenever it does not, with the read's own errors;
the helper is always stopped and waited for, and is never handed a secret's value.

The helper is the real one (`python -m reconciler.store.sql.prefetch`) on a SQLite store in a temporary
folder; the store contract runs the same read on PostgreSQL (tests/store_contract.py,
test_a_read_begun_while_the_plan_works_is_the_read).
"""
from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import sys
import threading
from pathlib import Path

import pytest

from reconciler.errors import StoreError
from reconciler.policy.model import SecretRef, StoreConfig
from reconciler.store.sql.prefetch import Prefetch
from reconciler.store.sql.sqlite import SqliteStore
from reconciler.store.sql.store import SqlStore
from tests.store_contract import apply, create_user, known_people, seeded


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(StoreConfig(kind="sqlite", path=str(tmp_path / "store.db")))
    seeded(s)
    apply(s, create_user("corp:c3", "carol@example.com", "Org"))
    yield s
    s.close()


def gone(pid: int) -> bool:
    """Whether process `pid` is gone and reaped (no zombie left behind)."""
    return not Path(f"/proc/{pid}").exists()


def test_the_state_comes_from_the_helper_not_from_a_read_here(store: SqliteStore, monkeypatch):
    """With a helper that answers, this process does not read the store: the rows, the fingerprint and the
    values shared with the known people all come through the helper."""
    expected = store.read(known=known_people())
    later = Prefetch(store)
    pid = later._process.pid
    later.begin()

    def no_read_here(*args, **kwargs):
        raise AssertionError("the store was read here, not by the helper")

    monkeypatch.setattr(SqlStore, "read", no_read_here)
    known = known_people()
    state = later.state(known)
    assert state == expected and state.fingerprint == expected.fingerprint
    alice = state.users["corp:a1"]
    assert alice.email is known["corp:a1"].email and alice.links is known["corp:a1"].links  # one object, not two
    assert gone(pid)


def test_a_damaged_row_is_the_reads_own_error(store: SqliteStore, tmp_path: Path):
    """The helper fails on a row the read refuses; this process then reads the store itself and says what the
    read says, in one line, naming the row."""
    with sqlite3.connect(tmp_path / "store.db") as db:
        db.execute("UPDATE users SET attributes = '[1]' WHERE key = 'corp:b2'")
    with pytest.raises(StoreError) as direct:
        store.read()
    later = Prefetch(store)
    later.begin()
    with pytest.raises(StoreError) as through:
        later.state(known_people())
    assert str(through.value) == str(direct.value) and "attributes is not a JSON object" in str(through.value)


def test_a_helper_that_cannot_start_or_dies_costs_nothing_but_time(store: SqliteStore, monkeypatch):
    expected = store.read(known=known_people())
    later = Prefetch(store)
    pid = later._process.pid
    os.kill(pid, signal.SIGKILL)  # dies before it is told to read
    later.begin()
    assert later.state(known_people()) == expected
    assert gone(pid)

    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    later = Prefetch(store)  # no helper at all
    later.begin()
    assert later._process is None and later.state(known_people()) == expected


def test_taking_the_state_without_beginning_begins_the_read(store: SqliteStore):
    """`state` on a helper never told to read tells it then, rather than waiting for an answer that would
    never come."""
    later = Prefetch(store)
    taken: list = []
    worker = threading.Thread(target=lambda: taken.append(later.state(known_people())), daemon=True)
    worker.start()
    worker.join(timeout=30)
    waiting = worker.is_alive()
    if waiting:  # stop the helper, so that the waiting read ends and the test can say so
        later.close()
        worker.join()
    assert not waiting, "state() waited for an answer from a helper never told to read"
    assert taken == [store.read(known=known_people())]


def test_a_helper_whose_answer_is_not_taken_is_stopped_and_reaped(store: SqliteStore):
    """A plan that stops before it takes the state (a directory it cannot read) leaves no process behind."""
    waiting = Prefetch(store)  # never told to read: waits for its settings
    answered = Prefetch(store)
    answered.begin()  # reads, and may be blocked writing an answer nobody takes
    pids = [waiting._process.pid, answered._process.pid]
    waiting.close()
    answered.close()
    assert all(gone(pid) for pid in pids)
    waiting.close()  # again: nothing to do


def test_the_helper_gets_references_to_secrets_never_their_values(tmp_path: Path, monkeypatch):
    """The store's settings go to the helper pickled; a folder (or URL) from the environment stays a
    `${NAME}` reference there, which the helper resolves from its own environment."""
    monkeypatch.setenv("RECONCILER_TEST_STATE_DIR", str(tmp_path / "secret-folder"))
    config = StoreConfig(kind="sqlite", path="store.db", folder=str(tmp_path),
                         state_dir=SecretRef("RECONCILER_TEST_STATE_DIR", "store.state_dir"))
    store = SqliteStore(config)
    seeded(store)
    assert b"secret-folder" not in pickle.dumps(config)
    later = Prefetch(store)
    later.begin()
    assert later.state() == store.read()
    store.close()
