"""The SQLite store: what each change does to the rows, and the guards around apply.

Rows are checked with a separate sqlite3 connection, the way an application
reads the store, so the tests protect the documented tables and not only the
store's own view of them.
"""
from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from reconciler.errors import LockHeld, StalePlan, StoreError
from reconciler.model import Change, Link
from reconciler.policy.model import Store as StoreConfig
from reconciler.store import ApplyRecord, open_store
from reconciler.store.sqlite import SqliteStore

T0 = datetime(2026, 11, 21, 9, 0, 0, tzinfo=timezone.utc)


class FakeClock:
    def __init__(self, moment: datetime = T0):
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: int) -> None:
        self.moment += timedelta(seconds=seconds)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "store.db"


@pytest.fixture
def store(path: Path):
    s = SqliteStore(StoreConfig(kind="sqlite", path=str(path)))
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
    return Change("create", "team", key, "has synced members", None, {"name": name or key.rsplit("/", 1)[-1], "parent": parent})


def create_user(key: str, email: str, team: str | None = None) -> Change:
    return Change("create", "user", key, "new in corp", None, user_fields(email, team, [key]))


def apply(store: SqliteStore, *changes: Change, **record_fields) -> ApplyRecord:
    return store.apply(list(changes), store.fingerprint(), record(**record_fields))


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


def add_unmanaged_user(path: Path, email: str, team: str | None = None) -> int:
    """A user created by hand in the application: no key, not managed."""
    return execute(
        path,
        "INSERT INTO users (email, display_name, attributes, team_key, status, created_at, updated_at)"
        " VALUES (?, 'Hand Made', '{\"title\": \"boss\"}', ?, 'active', 'then', 'then')",
        (email, team),
    )


def seeded(store: SqliteStore) -> None:
    apply(
        store,
        create_team("Org"),
        create_team("Org/Sales", "Org"),
        create_user("corp:a1", "alice@example.com", "Org/Sales"),
        create_user("corp:b2", "bob@example.com", "Org"),
    )


# ───────────────────────────── creation and reading ─────────────────────────────


def test_read_and_history_of_a_missing_store_are_empty_and_create_nothing(tmp_path: Path, store: SqliteStore, path: Path):
    state = store.read()
    assert state.users == {} and state.teams == {}
    assert state.fingerprint.startswith("sha256:")
    assert store.history() == []
    assert not path.exists() and not path.parent.exists()


def test_first_write_creates_the_folder_the_schema_and_wal_mode(store: SqliteStore, path: Path):
    empty = store.fingerprint()
    apply(store)  # an empty plan against a store that does not exist yet
    assert path.exists()
    assert rows(path, "SELECT version FROM schema_version") == [(1,)]
    assert rows(path, "PRAGMA journal_mode") == [("wal",)]
    assert {r[0] for r in rows(path, "SELECT key FROM meta")} == {"created_at", "created_by"}
    assert store.fingerprint() == empty  # the plan made before the file existed is still current


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


def test_a_store_from_a_newer_reconciler_is_refused_not_misread(store: SqliteStore, path: Path):
    apply(store)
    execute(path, "INSERT INTO schema_version (version, description, applied_at) VALUES (99, 'future', 'later')")
    fresh = SqliteStore(StoreConfig(kind="sqlite", path=str(path)))
    with pytest.raises(StoreError, match="schema version 99 but this reconciler knows only up to 1; upgrade reconciler"):
        fresh.read()
    fresh.close()


def test_reading_an_older_store_upgrades_its_tables_and_keeps_its_fingerprint(
    store: SqliteStore, path: Path, monkeypatch: pytest.MonkeyPatch
):
    from reconciler.store import sql_schema, sqlite as sqlite_store

    seeded(store)
    before = store.fingerprint()
    store.close()
    upgraded = (*sql_schema.MIGRATIONS, sql_schema.Migration(2, "a note per team", ("ALTER TABLE teams ADD COLUMN note TEXT",)))
    monkeypatch.setattr(sql_schema, "MIGRATIONS", upgraded)
    monkeypatch.setattr(sqlite_store, "LATEST_VERSION", 2)
    newer = SqliteStore(StoreConfig(kind="sqlite", path=str(path)))
    assert newer.fingerprint() == before
    assert rows(path, "SELECT version FROM schema_version ORDER BY version") == [(1,), (2,)]
    assert "note" in [column[1] for column in rows(path, "PRAGMA table_info(teams)")]
    newer.close()


# ───────────────────────────── each change ─────────────────────────────


def test_create_writes_managed_user_links_and_team_rows(store: SqliteStore, path: Path):
    seeded(store)
    assert rows(path, "SELECT key, name, parent_key, managed FROM teams ORDER BY key") == [
        ("Org", "Org", None, 1),
        ("Org/Sales", "Sales", "Org", 1),
    ]
    assert rows(path, "SELECT key, email, display_name, attributes, team_key, status, managed FROM users ORDER BY key") == [
        ("corp:a1", "alice@example.com", "Alice", '{"department":"Sales"}', "Org/Sales", "active", 1),
        ("corp:b2", "bob@example.com", "Bob", '{"department":"Sales"}', "Org", "active", 1),
    ]
    assert rows(path, "SELECT u.key, l.directory, l.anchor FROM user_links l JOIN users u ON u.id = l.user_id ORDER BY 1") == [
        ("corp:a1", "corp", "a1"),
        ("corp:b2", "corp", "b2"),
    ]
    alice = store.read().users["corp:a1"]
    assert alice.links == (Link("corp", "a1"),) and alice.attributes == (("department", "Sales"),)
    assert alice.managed and alice.team == "Org/Sales" and alice.status == "active"


def test_adopt_makes_the_hand_made_row_managed_with_the_directorys_data(store: SqliteStore, path: Path):
    seeded(store)
    row_id = add_unmanaged_user(path, "carol@example.com", "Org")
    local = store.read().users[f"local:{row_id}"]
    assert not local.managed and local.attributes == (("title", "boss"),)

    after = user_fields("carol@example.com", "Org/Sales", ["corp:c3", "emea:c3"], display_name="Carol C")
    apply(store, Change("adopt", "user", "corp:c3", "adopted", {"key": f"local:{row_id}", "email": "carol@example.com"}, after))

    assert rows(path, "SELECT id, key, display_name, attributes, team_key, managed FROM users WHERE email = 'carol@example.com'") == [
        (row_id, "corp:c3", "Carol C", '{"department":"Sales"}', "Org/Sales", 1)
    ]
    state = store.read()
    assert f"local:{row_id}" not in state.users
    assert [str(link) for link in state.users["corp:c3"].links] == ["corp:c3", "emea:c3"]


def test_update_sets_only_the_fields_it_names(store: SqliteStore, path: Path):
    seeded(store)
    apply(store, Change("update", "user", "corp:a1", "drift", {"display_name": "Alice"},
                        {"display_name": "Alice A", "attributes": {"department": "EMEA"}, "links": ["corp:a1", "emea:a9"]}))
    assert rows(path, "SELECT email, display_name, attributes, team_key FROM users WHERE key = 'corp:a1'") == [
        ("alice@example.com", "Alice A", '{"department":"EMEA"}', "Org/Sales")
    ]
    assert [str(link) for link in store.read().users["corp:a1"].links] == ["corp:a1", "emea:a9"]


def test_move_deactivate_and_reactivate_set_team_and_status(store: SqliteStore, path: Path):
    seeded(store)
    apply(store, Change("move", "user", "corp:a1", "placed", {"team": "Org/Sales"}, {"team": None}),
          Change("deactivate", "user", "corp:b2", "left", {"status": "active"}, {"status": "deactivated"}))
    assert rows(path, "SELECT key, team_key, status FROM users ORDER BY key") == [
        ("corp:a1", None, "active"), ("corp:b2", "Org", "deactivated")
    ]
    apply(store, Change("reactivate", "user", "corp:b2", "back", {"status": "deactivated"}, {"status": "active"}))
    assert rows(path, "SELECT status FROM users WHERE key = 'corp:b2'") == [("active",)]


def test_delete_removes_the_user_its_links_and_memberships(store: SqliteStore, path: Path):
    seeded(store)
    apply(store, Change("add", "membership", "corp:a1|Org", "member", None, {"user": "corp:a1", "team": "Org"}))
    apply(store, Change("delete", "user", "corp:a1", "left", {"email": "alice@example.com"}, None))
    assert rows(path, "SELECT key FROM users") == [("corp:b2",)]
    assert rows(path, "SELECT directory, anchor FROM user_links") == [("corp", "b2")]
    assert rows(path, "SELECT * FROM memberships") == []


def test_membership_add_and_remove(store: SqliteStore, path: Path):
    seeded(store)
    apply(store, Change("add", "membership", "corp:a1|Org", "member", None, {"user": "corp:a1", "team": "Org"}),
          Change("add", "membership", "corp:b2|Org/Sales", "member", None, {"user": "corp:b2", "team": "Org/Sales"}))
    state = store.read()
    assert state.users["corp:a1"].memberships == {"Org"} and state.users["corp:b2"].memberships == {"Org/Sales"}
    apply(store, Change("remove", "membership", "corp:a1|Org", "left", {"user": "corp:a1", "team": "Org"}, None))
    assert rows(path, "SELECT u.key, m.team_key FROM memberships m JOIN users u ON u.id = m.user_id") == [("corp:b2", "Org/Sales")]


def test_team_update_and_children_first_delete(store: SqliteStore, path: Path):
    seeded(store)
    apply(store, Change("update", "team", "Org/Sales", "renamed", {"name": "Sales"}, {"name": "Sales EMEA"}))
    assert rows(path, "SELECT name FROM teams WHERE key = 'Org/Sales'") == [("Sales EMEA",)]
    apply(store,
          Change("move", "user", "corp:a1", "placed", {"team": "Org/Sales"}, {"team": None}),
          Change("move", "user", "corp:b2", "placed", {"team": "Org"}, {"team": None}),
          Change("delete", "team", "Org/Sales", "empty", {"name": "Sales EMEA", "parent": "Org"}, None),
          Change("delete", "team", "Org", "empty", {"name": "Org", "parent": None}, None))
    assert rows(path, "SELECT * FROM teams") == []


def test_a_team_may_be_created_before_its_parent_in_one_plan(store: SqliteStore, path: Path):
    apply(store, create_team("group:aa", "group:bb", "Child"), create_team("group:bb", None, "Parent"))
    assert rows(path, "SELECT key, parent_key FROM teams ORDER BY key") == [("group:aa", "group:bb"), ("group:bb", None)]


def test_a_link_may_move_between_users_within_one_plan(store: SqliteStore, path: Path):
    seeded(store)
    # corp:a1 is alice's link; a new user takes it over in the same plan that removes it from alice
    apply(store,
          Change("create", "user", "emea:z", "new", None, user_fields("zed@example.com", None, ["corp:a1", "emea:z"])),
          Change("update", "user", "corp:a1", "relinked", {"links": ["corp:a1"]}, {"links": []}))
    assert rows(path, "SELECT u.key FROM user_links l JOIN users u ON u.id = l.user_id WHERE l.anchor = 'a1'") == [("emea:z",)]


# ───────────────────────────── refusals and rollback ─────────────────────────────


def content(path: Path) -> list:
    return [rows(path, f"SELECT * FROM {table} ORDER BY 1, 2") for table in ("users", "user_links", "teams", "memberships")]


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
def test_a_change_that_cannot_apply_rolls_back_the_whole_plan(store: SqliteStore, path: Path, bad: Change, says: str):
    seeded(store)
    apply(store, Change("add", "membership", "corp:a1|Org/Sales", "m", None, {"user": "corp:a1", "team": "Org/Sales"}))
    before, fingerprint = content(path), store.fingerprint()
    good = Change("update", "user", "corp:b2", "drift", {"display_name": "Bob"}, {"display_name": "Robert"})
    with pytest.raises(StoreError) as raised:
        apply(store, good, bad)  # the good change runs first and must be undone
    message = str(raised.value)
    assert f"cannot apply {bad.kind} {bad.action} {bad.key}: " in message and says in message
    assert "\n" not in message
    assert content(path) == before and store.fingerprint() == fingerprint
    assert store.history()[0].outcome == f"failed: {raised.value.message}"  # the attempt is on record


def test_stale_fingerprint_is_refused_and_nothing_changes(store: SqliteStore, path: Path):
    seeded(store)
    planned_against = store.fingerprint()
    execute(path, "UPDATE users SET display_name = 'Edited' WHERE key = 'corp:b2'")  # someone changed the store
    before = content(path)
    change = Change("update", "user", "corp:a1", "drift", {"display_name": "Alice"}, {"display_name": "Alicia"})
    with pytest.raises(StalePlan, match="plan is stale: the store changed since the plan was made; run plan again"):
        store.apply([change], planned_against, record())
    assert content(path) == before
    assert store.history()[0].outcome.startswith("refused: plan is stale")


def test_fingerprint_is_stable_for_same_content_and_changes_on_any_manual_edit(tmp_path: Path, store: SqliteStore, path: Path):
    seeded(store)
    first = store.fingerprint()
    reopened = SqliteStore(StoreConfig(kind="sqlite", path=str(path)))
    assert reopened.fingerprint() == first
    reopened.close()
    twin = SqliteStore(StoreConfig(kind="sqlite", path=str(tmp_path / "twin.db")))
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
        execute(path, edit)
        now = store.fingerprint()
        assert now not in seen, edit
        seen.add(now)
    execute(path, "UPDATE users SET updated_at = 'later'")  # bookkeeping only: not content
    assert store.fingerprint() in seen


def test_unmanaged_users_are_read_but_only_adopt_touches_them(store: SqliteStore, path: Path):
    seeded(store)
    row_id = add_unmanaged_user(path, "dave@example.com", "Org")
    key = f"local:{row_id}"
    dave = store.read().users[key]
    assert (dave.managed, dave.email, dave.team) == (False, "dave@example.com", "Org")
    untouched = rows(path, "SELECT * FROM users WHERE id = ?", (row_id,))

    apply(store, Change("update", "user", "corp:a1", "drift", {"display_name": "Alice"}, {"display_name": "Alicia"}))
    for attempt in (
        Change("update", "user", key, "drift", {}, {"display_name": "D"}),
        Change("deactivate", "user", key, "left", {"status": "active"}, {"status": "deactivated"}),
        Change("delete", "user", key, "left", {}, None),
        Change("add", "membership", f"{key}|Org", "m", None, {"user": key, "team": "Org"}),
    ):
        with pytest.raises(StoreError, match="is not managed; only adopt may change it"):
            apply(store, attempt)
    assert rows(path, "SELECT * FROM users WHERE id = ?", (row_id,)) == untouched


# ───────────────────────────── lock ─────────────────────────────


def test_a_second_lock_on_the_same_file_is_refused_naming_holder_and_time(path: Path):
    clock = FakeClock()
    first = SqliteStore(StoreConfig(kind="sqlite", path=str(path)), clock=clock)
    second = SqliteStore(StoreConfig(kind="sqlite", path=str(path)), clock=clock)
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
        assert str(raised.value) == (
            "store is locked by ci@runner-1 since 2026-11-21T09:00:00Z; another apply is running "
            "(the lock expires at 2026-11-21T09:15:00Z)"
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


def test_the_lock_is_released_when_the_block_raises(store: SqliteStore, path: Path):
    with pytest.raises(RuntimeError):
        with store.lock("me"):
            raise RuntimeError("apply crashed in Python")
    assert rows(path, "SELECT * FROM apply_lock") == []


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


# ───────────────────────────── history ─────────────────────────────


def test_history_records_counts_actor_and_force_reason_newest_first(store: SqliteStore):
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


def test_a_refusal_made_before_apply_can_be_recorded_on_its_own(store: SqliteStore):
    empty = store.fingerprint()
    refused = store.record(record(finished_at="2026-11-21T09:00:01Z", counts={"user.deactivate": 40},
                                  outcome="refused: 40 deactivations exceed safety.max_deactivations (10)"))
    assert refused.id is not None and store.history() == [refused]
    assert store.fingerprint() == empty  # history is not content: a saved plan stays current
