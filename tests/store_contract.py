"""The SQL store contract: what each change does to the rows, and the guards around apply.

Every engine's test module defines an `engine` fixture (an `Engine`) and
imports these tests with `from tests.store_contract import *`, so the same
assertions run against SQLite and PostgreSQL. Rows are checked through the
engine's own separate connection, the way an application reads the store, so
the tests protect the documented tables and not only the store's own view.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import pytest

from reconciler.errors import LockHeld, StalePlan, StoreError
from reconciler.model import Change, Link
from reconciler.store import ApplyRecord
from reconciler.store.sql.store import SqlStore

T0 = datetime(2026, 11, 21, 9, 0, 0, tzinfo=timezone.utc)


class FakeClock:
    def __init__(self, moment: datetime = T0):
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: int) -> None:
        self.moment += timedelta(seconds=seconds)


class Engine(Protocol):
    """One SQL engine as the tests see it: stores on it, and an application's connection to their rows."""

    def open(self, name: str = "main", **options: Any) -> SqlStore:
        """A store object on the store `name` (each name is a separate, initially absent store)."""

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of the `main` store, read on a separate connection; `?` placeholders."""

    def execute(self, sql: str, params: tuple = ()) -> None:
        """A committed write to the `main` store by someone else (the application)."""

    def insert(self, sql: str, params: tuple = ()) -> int:
        """A committed INSERT INTO users by the application; the new row's id."""

    def columns(self, table: str) -> list[str]:
        ...

    def created_nothing(self) -> bool:
        """The `main` store is still absent: no file, no tables."""

    def held_message(self, holder: str, since: str, expires: str, holding: SqlStore) -> str:
        """The refusal a second lock gets while `holding` holds it."""


@pytest.fixture
def store(engine: Engine):
    s = engine.open()
    yield s
    s.close()


def record(**overrides) -> ApplyRecord:
    values = dict(
        started_at="2026-11-21T09:00:00Z", finished_at="", actor="ci@runner", commit="abc123", run_id="42",
        policy_digest="sha256:policy", plan_digest="sha256:plan", counts={}, outcome="",
    )
    values.update(overrides)
    return ApplyRecord(**values)


def user_fields(email: str, team: str | None = None, links: list[str] | None = None, **extra) -> dict:
    fields = {
        "email": email,
        "display_name": email.split("@")[0].title(),
        "attributes": {"department": "Sales"},
        "team": team,
        "links": links if links is not None else [],
        "status": "active",
    }
    fields.update(extra)
    return fields


def create_team(key: str, parent: str | None = None, name: str | None = None) -> Change:
    return Change("create", "team", key, "has synced members", None,
                  {"name": name or key.rsplit("/", 1)[-1], "parent": parent})


def create_user(key: str, email: str, team: str | None = None) -> Change:
    return Change("create", "user", key, "new in corp", None, user_fields(email, team, [key]))


def apply(store: SqlStore, *changes: Change, **record_fields) -> ApplyRecord:
    return store.apply(list(changes), store.fingerprint(), record(**record_fields))


def add_unmanaged_user(engine: Engine, email: str, team: str | None = None) -> int:
    """A user created by hand in the application: no key, not managed."""
    return engine.insert(
        "INSERT INTO users (email, display_name, attributes, team_key, status, created_at, updated_at)"
        " VALUES (?, 'Hand Made', '{\"title\": \"boss\"}', ?, 'active', 'then', 'then')",
        (email, team),
    )


def seeded(store: SqlStore) -> None:
    apply(
        store,
        create_team("Org"),
        create_team("Org/Sales", "Org"),
        create_user("corp:a1", "alice@example.com", "Org/Sales"),
        create_user("corp:b2", "bob@example.com", "Org"),
    )


def content(engine: Engine) -> list:
    return [engine.rows(f"SELECT * FROM {table} ORDER BY 1, 2") for table in ("users", "user_links", "teams", "memberships")]


# ───────────────────────────── creation and reading ─────────────────────────────


def test_read_and_history_of_a_missing_store_are_empty_and_create_nothing(engine: Engine, store: SqlStore):
    state = store.read()
    assert state.users == {} and state.teams == {}
    assert state.fingerprint.startswith("sha256:")
    assert store.history() == []
    assert engine.created_nothing()


def test_first_write_creates_the_schema_and_keeps_the_empty_fingerprint(engine: Engine, store: SqlStore):
    empty = store.fingerprint()
    apply(store)  # an empty plan against a store that does not exist yet
    assert engine.rows("SELECT version FROM schema_version") == [(1,)]
    assert {r[0] for r in engine.rows("SELECT key FROM meta")} == {"created_at", "created_by"}
    assert store.fingerprint() == empty  # the plan made before the store existed is still current


def test_a_store_from_a_newer_reconciler_is_refused_not_misread(engine: Engine, store: SqlStore):
    apply(store)
    engine.execute("INSERT INTO schema_version (version, description, applied_at) VALUES (99, 'future', 'later')")
    fresh = engine.open()
    with pytest.raises(StoreError, match="schema version 99 but this reconciler knows only up to 1; upgrade reconciler"):
        fresh.read()
    fresh.close()


def test_reading_an_older_store_upgrades_its_tables_and_keeps_its_fingerprint(
    engine: Engine, store: SqlStore, monkeypatch: pytest.MonkeyPatch
):
    from reconciler.store.sql import schema as sql_schema, store as sqlite_store

    seeded(store)
    before = store.fingerprint()
    store.close()
    upgraded = (*sql_schema.MIGRATIONS,
                sql_schema.Migration(2, "a note per team", ("ALTER TABLE teams ADD COLUMN note TEXT",)))
    monkeypatch.setattr(sql_schema, "MIGRATIONS", upgraded)
    monkeypatch.setattr(sqlite_store, "LATEST_VERSION", 2)
    newer = engine.open()
    assert newer.fingerprint() == before
    assert engine.rows("SELECT version FROM schema_version ORDER BY version") == [(1,), (2,)]
    assert "note" in engine.columns("teams")
    newer.close()


# ───────────────────────────── each change ─────────────────────────────


def test_create_writes_managed_user_links_and_team_rows(engine: Engine, store: SqlStore):
    seeded(store)
    assert engine.rows("SELECT key, name, parent_key, managed FROM teams ORDER BY key") == [
        ("Org", "Org", None, 1),
        ("Org/Sales", "Sales", "Org", 1),
    ]
    assert engine.rows(
        "SELECT key, email, display_name, attributes, team_key, status, managed FROM users ORDER BY key"
    ) == [
        ("corp:a1", "alice@example.com", "Alice", '{"department":"Sales"}', "Org/Sales", "active", 1),
        ("corp:b2", "bob@example.com", "Bob", '{"department":"Sales"}', "Org", "active", 1),
    ]
    assert engine.rows(
        "SELECT u.key, l.directory, l.anchor FROM user_links l JOIN users u ON u.id = l.user_id ORDER BY 1"
    ) == [
        ("corp:a1", "corp", "a1"),
        ("corp:b2", "corp", "b2"),
    ]
    alice = store.read().users["corp:a1"]
    assert alice.links == (Link("corp", "a1"),) and alice.attributes == (("department", "Sales"),)
    assert alice.managed and alice.team == "Org/Sales" and alice.status == "active"


def test_adopt_makes_the_hand_made_row_managed_with_the_directorys_data(engine: Engine, store: SqlStore):
    seeded(store)
    row_id = add_unmanaged_user(engine, "carol@example.com", "Org")
    local = store.read().users[f"local:{row_id}"]
    assert not local.managed and local.attributes == (("title", "boss"),)

    after = user_fields("carol@example.com", "Org/Sales", ["corp:c3", "emea:c3"], display_name="Carol C")
    apply(store, Change("adopt", "user", "corp:c3", "adopted",
                        {"key": f"local:{row_id}", "email": "carol@example.com"}, after))

    assert engine.rows(
        "SELECT id, key, display_name, attributes, team_key, managed FROM users WHERE email = 'carol@example.com'"
    ) == [(row_id, "corp:c3", "Carol C", '{"department":"Sales"}', "Org/Sales", 1)]
    state = store.read()
    assert f"local:{row_id}" not in state.users
    assert [str(link) for link in state.users["corp:c3"].links] == ["corp:c3", "emea:c3"]


def test_update_sets_only_the_fields_it_names(engine: Engine, store: SqlStore):
    seeded(store)
    apply(store, Change("update", "user", "corp:a1", "drift", {"display_name": "Alice"},
                        {"display_name": "Alice A", "attributes": {"department": "EMEA"},
                         "links": ["corp:a1", "emea:a9"]}))
    assert engine.rows("SELECT email, display_name, attributes, team_key FROM users WHERE key = 'corp:a1'") == [
        ("alice@example.com", "Alice A", '{"department":"EMEA"}', "Org/Sales")
    ]
    assert [str(link) for link in store.read().users["corp:a1"].links] == ["corp:a1", "emea:a9"]


def test_move_deactivate_and_reactivate_set_team_and_status(engine: Engine, store: SqlStore):
    seeded(store)
    apply(store, Change("move", "user", "corp:a1", "placed", {"team": "Org/Sales"}, {"team": None}),
          Change("deactivate", "user", "corp:b2", "left", {"status": "active"}, {"status": "deactivated"}))
    assert engine.rows("SELECT key, team_key, status FROM users ORDER BY key") == [
        ("corp:a1", None, "active"), ("corp:b2", "Org", "deactivated")
    ]
    apply(store, Change("reactivate", "user", "corp:b2", "back", {"status": "deactivated"}, {"status": "active"}))
    assert engine.rows("SELECT status FROM users WHERE key = 'corp:b2'") == [("active",)]


def test_delete_removes_the_user_its_links_and_memberships(engine: Engine, store: SqlStore):
    seeded(store)
    apply(store, Change("add", "membership", "corp:a1|Org", "member", None, {"user": "corp:a1", "team": "Org"}))
    apply(store, Change("delete", "user", "corp:a1", "left", {"email": "alice@example.com"}, None))
    assert engine.rows("SELECT key FROM users") == [("corp:b2",)]
    assert engine.rows("SELECT directory, anchor FROM user_links") == [("corp", "b2")]
    assert engine.rows("SELECT * FROM memberships") == []


def test_membership_add_and_remove(engine: Engine, store: SqlStore):
    seeded(store)
    apply(store, Change("add", "membership", "corp:a1|Org", "member", None, {"user": "corp:a1", "team": "Org"}),
          Change("add", "membership", "corp:b2|Org/Sales", "member", None, {"user": "corp:b2", "team": "Org/Sales"}))
    state = store.read()
    assert state.users["corp:a1"].memberships == {"Org"} and state.users["corp:b2"].memberships == {"Org/Sales"}
    apply(store, Change("remove", "membership", "corp:a1|Org", "left", {"user": "corp:a1", "team": "Org"}, None))
    assert engine.rows("SELECT u.key, m.team_key FROM memberships m JOIN users u ON u.id = m.user_id") == [
        ("corp:b2", "Org/Sales")
    ]


def test_team_update_and_children_first_delete(engine: Engine, store: SqlStore):
    seeded(store)
    apply(store, Change("update", "team", "Org/Sales", "renamed", {"name": "Sales"}, {"name": "Sales EMEA"}))
    assert engine.rows("SELECT name FROM teams WHERE key = 'Org/Sales'") == [("Sales EMEA",)]
    apply(store,
          Change("move", "user", "corp:a1", "placed", {"team": "Org/Sales"}, {"team": None}),
          Change("move", "user", "corp:b2", "placed", {"team": "Org"}, {"team": None}),
          Change("delete", "team", "Org/Sales", "empty", {"name": "Sales EMEA", "parent": "Org"}, None),
          Change("delete", "team", "Org", "empty", {"name": "Org", "parent": None}, None))
    assert engine.rows("SELECT * FROM teams") == []


def test_a_team_may_be_created_before_its_parent_in_one_plan(engine: Engine, store: SqlStore):
    apply(store, create_team("group:aa", "group:bb", "Child"), create_team("group:bb", None, "Parent"))
    assert engine.rows("SELECT key, parent_key FROM teams ORDER BY key") == [
        ("group:aa", "group:bb"), ("group:bb", None)
    ]


def test_a_link_may_move_between_users_within_one_plan(engine: Engine, store: SqlStore):
    seeded(store)
    # corp:a1 is alice's link; a new user takes it over in the same plan that removes it from alice
    apply(store,
          Change("create", "user", "emea:z", "new", None, user_fields("zed@example.com", None, ["corp:a1", "emea:z"])),
          Change("update", "user", "corp:a1", "relinked", {"links": ["corp:a1"]}, {"links": []}))
    assert engine.rows("SELECT u.key FROM user_links l JOIN users u ON u.id = l.user_id WHERE l.anchor = 'a1'") == [
        ("emea:z",)
    ]


# ───────────────────────────── refusals and rollback ─────────────────────────────


@pytest.mark.parametrize(
    "bad, says",
    [
        (create_user("corp:a1", "again@example.com"), "a user with key corp:a1 already exists"),
        (Change("update", "user", "corp:zz", "drift", {}, {"display_name": "X"}), "user corp:zz is not in the store"),
        (Change("update", "user", "corp:a1", "drift", {}, {"team": "Org"}), "update cannot set team"),
        (Change("move", "user", "corp:a1", "placed", {}, {"team": "Nowhere"}), "team Nowhere does not exist"),
        (Change("delete", "team", "Org", "empty", {}, None), "1 user(s) still have it as their team"),
        (Change("create", "user", "corp:n", "new", None, user_fields("n@example.com", None, ["corp:b2"])),
         "link corp:b2 already belongs to user corp:b2"),
        (Change("add", "membership", "corp:a1|Org/Sales", "m", None, {"user": "corp:a1", "team": "Org/Sales"}),
         "already a member"),
    ],
)
def test_a_change_that_cannot_apply_rolls_back_the_whole_plan(engine: Engine, store: SqlStore, bad: Change, says: str):
    seeded(store)
    apply(store, Change("add", "membership", "corp:a1|Org/Sales", "m", None, {"user": "corp:a1", "team": "Org/Sales"}))
    before, fingerprint = content(engine), store.fingerprint()
    good = Change("update", "user", "corp:b2", "drift", {"display_name": "Bob"}, {"display_name": "Robert"})
    with pytest.raises(StoreError) as raised:
        apply(store, good, bad)  # the good change runs first and must be undone
    message = str(raised.value)
    assert f"cannot apply {bad.kind} {bad.action} {bad.key}: " in message and says in message
    assert "\n" not in message
    assert content(engine) == before and store.fingerprint() == fingerprint
    assert store.history()[0].outcome == f"failed: {raised.value.message}"  # the attempt is on record


def test_stale_fingerprint_is_refused_and_nothing_changes(engine: Engine, store: SqlStore):
    seeded(store)
    planned_against = store.fingerprint()
    engine.execute("UPDATE users SET display_name = 'Edited' WHERE key = 'corp:b2'")  # someone changed the store
    before = content(engine)
    change = Change("update", "user", "corp:a1", "drift", {"display_name": "Alice"}, {"display_name": "Alicia"})
    with pytest.raises(StalePlan, match="plan is stale: the store changed since the plan was made; run plan again"):
        store.apply([change], planned_against, record())
    assert content(engine) == before
    assert store.history()[0].outcome.startswith("refused: plan is stale")


def test_fingerprint_is_stable_for_same_content_and_changes_on_any_manual_edit(engine: Engine, store: SqlStore):
    seeded(store)
    first = store.fingerprint()
    reopened = engine.open()
    assert reopened.fingerprint() == first
    reopened.close()
    twin = engine.open("twin")
    seeded(twin)
    assert twin.fingerprint() == first  # content, not row ids or timestamps
    twin.close()

    seen = {first}
    for edit in (
        "UPDATE users SET email = 'ALICE@example.com' WHERE key = 'corp:a1'",
        "UPDATE users SET attributes = '{\"department\":\"Ops\"}' WHERE key = 'corp:a1'",
        "UPDATE users SET status = 'deactivated' WHERE key = 'corp:b2'",
        "UPDATE teams SET name = 'Organisation' WHERE key = 'Org'",
        "DELETE FROM user_links WHERE anchor = 'b2'",
    ):
        engine.execute(edit)
        now = store.fingerprint()
        assert now not in seen, edit
        seen.add(now)
    engine.execute("UPDATE users SET updated_at = 'later'")  # bookkeeping only: not content
    assert store.fingerprint() in seen


def test_unmanaged_users_are_read_but_only_adopt_touches_them(engine: Engine, store: SqlStore):
    seeded(store)
    row_id = add_unmanaged_user(engine, "dave@example.com", "Org")
    key = f"local:{row_id}"
    dave = store.read().users[key]
    assert (dave.managed, dave.email, dave.team) == (False, "dave@example.com", "Org")
    untouched = engine.rows("SELECT * FROM users WHERE id = ?", (row_id,))

    apply(store, Change("update", "user", "corp:a1", "drift", {"display_name": "Alice"}, {"display_name": "Alicia"}))
    for attempt in (
        Change("update", "user", key, "drift", {}, {"display_name": "D"}),
        Change("deactivate", "user", key, "left", {"status": "active"}, {"status": "deactivated"}),
        Change("delete", "user", key, "left", {}, None),
        Change("add", "membership", f"{key}|Org", "m", None, {"user": key, "team": "Org"}),
    ):
        with pytest.raises(StoreError, match="is not managed; only adopt may change it"):
            apply(store, attempt)
    assert engine.rows("SELECT * FROM users WHERE id = ?", (row_id,)) == untouched


# ───────────────────────────── lock ─────────────────────────────


def test_a_second_lock_on_the_same_store_is_refused_naming_holder_and_time(engine: Engine):
    clock = FakeClock()
    first = engine.open(clock=clock)
    second = engine.open(clock=clock)
    holding, release = threading.Event(), threading.Event()
    infos = []

    def hold() -> None:
        with first.lock("ci@runner-1") as info:
            infos.append(info)
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        with pytest.raises(LockHeld) as raised:
            with second.lock("ci@runner-2"):
                pass
        assert str(raised.value) == engine.held_message(
            "ci@runner-1", "2026-11-21T09:00:00Z", "2026-11-21T09:15:00Z", first
        )
        with pytest.raises(LockHeld):  # an apply without the lock is refused too
            apply(second)
    finally:
        release.set()
        holder.join()
    assert infos[0].holder == "ci@runner-1" and infos[0].expired_takeover is None
    with second.lock("ci@runner-2") as info:  # released on exit
        assert info.holder == "ci@runner-2"
    first.close()
    second.close()


def test_the_lock_is_released_when_the_block_raises(engine: Engine, store: SqlStore):
    with pytest.raises(RuntimeError):
        with store.lock("me"):
            raise RuntimeError("apply crashed in Python")
    assert engine.rows("SELECT * FROM apply_lock") == []
    successor = engine.open()
    with successor.lock("next") as info:  # and another store object may take it at once
        assert info.holder == "next" and info.expired_takeover is None
    successor.close()


# ───────────────────────────── history ─────────────────────────────


def test_history_records_counts_actor_and_force_reason_newest_first(store: SqlStore):
    clock = FakeClock()
    store.clock = clock
    first = apply(store, create_team("Org"), create_user("corp:a1", "a@example.com", "Org"),
                  create_user("corp:b2", "b@example.com", "Org"), actor="alice@laptop")
    clock.advance(30)
    second = apply(store, actor="github-actions[bot]", force_reason="incident 123: approved by bob")
    assert first.id is not None and second.id is not None and second.id > first.id
    history = store.history()
    assert [h.id for h in history] == [second.id, first.id]
    newest, oldest = history
    assert oldest.counts == {"team.create": 1, "user.create": 2}
    assert (oldest.actor, oldest.commit, oldest.run_id, oldest.outcome) == ("alice@laptop", "abc123", "42", "applied")
    assert oldest.finished_at == "2026-11-21T09:00:00Z" and oldest.force_reason is None
    assert newest.counts == {} and newest.actor == "github-actions[bot]"  # an empty apply is recorded too
    assert newest.force_reason == "incident 123: approved by bob" and newest.finished_at == "2026-11-21T09:00:30Z"
    assert newest == second


def test_a_refusal_made_before_apply_can_be_recorded_on_its_own(store: SqlStore):
    empty = store.fingerprint()
    refused = store.record(record(finished_at="2026-11-21T09:00:01Z", counts={"user.deactivate": 40},
                                  outcome="refused: 40 deactivations exceed safety.max_deactivations (10)"))
    assert refused.id is not None and store.history() == [refused]
    assert store.fingerprint() == empty  # history is not content: a saved plan stays current
