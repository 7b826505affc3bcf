"""The store contract: what every store does with each change, and the guards around apply.

Every store's test module defines an `engine` fixture (an `Engine`: stores of
its kind) and imports these tests with `from tests.store_contract import *`,
so the same assertions run against SQLite (tests/unit/test_store_sqlite.py),
PostgreSQL (tests/integration/test_store_postgres.py) and SCIM
(tests/integration/test_store_contract_scim.py).

The tests speak through the `Store` protocol (read, apply, lock, history,
record, fingerprint) and check it against the application's side of the store
(`app`, an `Application`: what the application sees, and the edits and hand-made
users it makes), which each store kind supplies; for the SQL engines it is
their documented tables, read and written on a separate connection
(`SqlApplication`). Where a store legitimately differs, the `Application` says
how, and the test says why.

The tests of the documented SQL tables themselves (schema versions,
migrations, the rows each change writes) need an engine with SQL tables
(`sql_tables`); against a store without them they are skipped, each saying why.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import pytest

from reconciler.store.sql.schema import LATEST_VERSION as LATEST

from reconciler.errors import LockHeld, StalePlan, StoreError
from reconciler.model import Change, Link
from reconciler.store import ApplyRecord, Store, read_later

T0 = datetime(2026, 11, 21, 9, 0, 0, tzinfo=timezone.utc)


class FakeClock:
    def __init__(self, moment: datetime = T0):
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: int) -> None:
        self.moment += timedelta(seconds=seconds)


class Engine(Protocol):
    """One kind of store as the tests see it."""

    def open(self, name: str = "main", **options: Any) -> Store:
        """A store object on the store `name` (each name is a separate, initially empty store); options are
        the store class's own (lock_ttl, clock)."""

    def created_nothing(self) -> bool:
        """The `main` store is still as it was before the first store object touched it."""

    def held_message(self, holder: str, since: str, expires: str, holding: Store) -> str:
        """The refusal a second lock gets while `holding` holds it."""


class SqlEngine(Engine, Protocol):
    """An SQL engine: also an application's connection to the `main` store's tables."""

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of the `main` store, read on a separate connection; `?` placeholders."""

    def execute(self, sql: str, params: tuple = ()) -> None:
        """A committed write to the `main` store by someone else (the application)."""

    def insert(self, sql: str, params: tuple = ()) -> int:
        """A committed INSERT INTO users by the application; the new row's id."""

    def columns(self, table: str) -> list[str]:
        ...


class Application(Protocol):
    """The application's side of the `main` store: what it sees there, and what it does there by hand."""

    # True where the fingerprint is the content's alone, so two stores with the same content have the same one
    fingerprint_is_content_only: bool

    def content(self) -> Any:
        """Everything the application sees in the store, to tell whether anything changed."""

    def user_record(self, key: str) -> Any:
        """The application's own record of one user."""

    def add_unmanaged_user(self, email: str, team: str | None = None) -> str:
        """A user created by hand in the application, display name "Hand Made", title "boss"; the key it reads as."""

    def unmanaged_placement(self, team: str) -> tuple[str | None, frozenset[str]]:
        """(team, memberships) a user added by hand to `team` reads with."""

    def rename_user(self, key: str, display_name: str) -> None:
        """The application changes a user's display name."""

    def content_edits(self) -> list[tuple[str, Callable[[], None]]]:
        """Edits of a seeded store by the application, each a change of content; described for the failure."""

    def bookkeeping_edit(self) -> Callable[[], None] | None:
        """A write by the application that is no change of content, or None where every write is one."""

    def lock_records(self) -> list:
        """The store's own record of who holds the apply lock."""


def sql_tables(engine: Engine, why_not_here: str) -> SqlEngine:
    """The engine, if its store is SQL tables; else the test is skipped, saying why it does not apply there."""
    if not hasattr(engine, "rows"):
        pytest.skip(f"SQL tables only: {why_not_here}")
    return engine  # type: ignore[return-value]


class SqlApplication:
    """The application of an SQL store: its rows, read and written on the engine's separate connection."""

    fingerprint_is_content_only = True

    def __init__(self, engine: SqlEngine):
        self.engine = engine

    def content(self) -> list:
        return [self.engine.rows(f"SELECT * FROM {table} ORDER BY 1, 2")
                for table in ("users", "user_links", "teams", "memberships")]

    def user_record(self, key: str) -> list:
        if key.startswith("local:"):
            return self.engine.rows("SELECT * FROM users WHERE id = ?", (int(key.removeprefix("local:")),))
        return self.engine.rows("SELECT * FROM users WHERE key = ?", (key,))

    def add_unmanaged_user(self, email: str, team: str | None = None) -> str:
        return f"local:{add_unmanaged_user(self.engine, email, team)}"

    def unmanaged_placement(self, team: str) -> tuple[str | None, frozenset[str]]:
        return team, frozenset()  # the row's team_key

    def rename_user(self, key: str, display_name: str) -> None:
        self.engine.execute("UPDATE users SET display_name = ? WHERE key = ?", (display_name, key))

    def content_edits(self) -> list[tuple[str, Callable[[], None]]]:
        return [(sql, lambda sql=sql: self.engine.execute(sql)) for sql in (
            "UPDATE users SET email = 'ALICE@example.com' WHERE key = 'corp:a1'",
            "UPDATE users SET attributes = '{\"department\":\"Ops\"}' WHERE key = 'corp:a1'",
            "UPDATE users SET status = 'deactivated' WHERE key = 'corp:b2'",
            "UPDATE teams SET name = 'Organisation' WHERE key = 'Org'",
            "DELETE FROM user_links WHERE anchor = 'b2'",
        )]

    def bookkeeping_edit(self) -> Callable[[], None]:
        return lambda: self.engine.execute("UPDATE users SET updated_at = 'later'")

    def lock_records(self) -> list:
        return self.engine.rows("SELECT * FROM apply_lock")


@pytest.fixture
def app(engine: SqlEngine) -> Application:
    """The SQL engines' application; a store kind without SQL tables defines its own `app` fixture."""
    return SqlApplication(engine)


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


def apply(store: Store, *changes: Change, **record_fields) -> ApplyRecord:
    return store.apply(list(changes), store.fingerprint(), record(**record_fields))


def add_unmanaged_user(engine: SqlEngine, email: str, team: str | None = None) -> int:
    """A user created by hand in an SQL store's application: no key, not managed; its row id."""
    return engine.insert(
        "INSERT INTO users (email, display_name, attributes, team_key, status, created_at, updated_at)"
        " VALUES (?, 'Hand Made', '{\"title\": \"boss\"}', ?, 'active', 'then', 'then')",
        (email, team),
    )


def seeded(store: Store) -> None:
    apply(
        store,
        create_team("Org"),
        create_team("Org/Sales", "Org"),
        create_user("corp:a1", "alice@example.com", "Org/Sales"),
        create_user("corp:b2", "bob@example.com", "Org"),
    )


def content(engine: SqlEngine) -> list:
    """The SQL store's content tables (kept for the engines' own tests; the contract uses `app.content()`)."""
    return SqlApplication(engine).content()


def links(store: Store) -> dict[str, list[str]]:
    """Each user's links as the store reads them."""
    return {key: [str(link) for link in user.links] for key, user in store.read().users.items()}


# ───────────────────────────── the SCIM differences, said once ─────────────────────────────

NO_SCHEMA = ("a SCIM server's schema is the server's (RFC 7643), not the reconciler's: no schema version or "
             "migration of ours there; the side file's are the SQLite store's (test_store_contract_scim.py checks "
             "what a first write creates and that a newer side file is refused)")
NO_ROWS = ("a SCIM store keeps users and teams as the server's resources, not rows: "
           "tests/integration/test_store_scim.py checks what the server holds after each kind of change")


# ───────────────────────────── creation and reading ─────────────────────────────


def test_read_and_history_of_a_missing_store_are_empty_and_create_nothing(engine: Engine, store: Store):
    state = store.read()
    assert state.users == {} and state.teams == {}
    assert state.fingerprint.startswith("sha256:")
    assert store.history() == []
    assert engine.created_nothing()


def test_a_first_empty_apply_keeps_the_empty_fingerprint(store: Store):
    empty = store.fingerprint()
    apply(store)  # an empty plan against a store that does not exist yet
    assert store.fingerprint() == empty  # the plan made before the store existed is still current
    history = store.history()
    assert history == [] and history.unchanged.runs == 1  # no line: counted for the next one


def test_first_write_creates_the_schema_and_keeps_the_empty_fingerprint(engine: Engine, store: Store):
    tables = sql_tables(engine, NO_SCHEMA)
    empty = store.fingerprint()
    apply(store)  # an empty plan against a store that does not exist yet
    assert tables.rows("SELECT version FROM schema_version") == [(v,) for v in range(1, LATEST + 1)]
    # and the empty plan is counted there, until the next history line takes the count over
    assert {r[0] for r in tables.rows("SELECT key FROM meta")} == {"created_at", "created_by", "noop_applies", "last_noop_at"}
    assert store.fingerprint() == empty  # the plan made before the store existed is still current


def test_a_store_from_a_newer_reconciler_is_refused_not_misread(engine: Engine, store: Store):
    tables = sql_tables(engine, NO_SCHEMA)
    apply(store)
    tables.execute("INSERT INTO schema_version (version, description, applied_at) VALUES (99, 'future', 'later')")
    fresh = engine.open()
    with pytest.raises(StoreError, match=f"schema version 99 but this reconciler knows only up to {LATEST}; upgrade reconciler"):
        fresh.read()
    fresh.close()


def test_reading_an_older_store_upgrades_its_tables_and_keeps_its_fingerprint(
    engine: Engine, store: Store, monkeypatch: pytest.MonkeyPatch
):
    from reconciler.store.sql import schema as sql_schema, store as sql_store

    tables = sql_tables(engine, NO_SCHEMA)
    seeded(store)
    before = store.fingerprint()
    store.close()
    nxt = sql_schema.LATEST_VERSION + 1
    upgraded = (*sql_schema.MIGRATIONS,
                sql_schema.Migration(nxt, "a note per team", ("ALTER TABLE teams ADD COLUMN note TEXT",)))
    monkeypatch.setattr(sql_schema, "MIGRATIONS", upgraded)
    monkeypatch.setattr(sql_store, "LATEST_VERSION", nxt)
    newer = engine.open()
    assert newer.fingerprint() == before
    assert tables.rows("SELECT version FROM schema_version ORDER BY version") == [(v,) for v in range(1, nxt + 1)]
    assert "note" in tables.columns("teams")
    newer.close()


# ───────────────────────────── each change ─────────────────────────────


def test_create_makes_managed_users_with_their_links_and_teams(store: Store):
    seeded(store)
    state = store.read()
    assert [(t.key, t.name, t.parent, t.managed) for t in state.teams.values()] == [
        ("Org", "Org", None, True),
        ("Org/Sales", "Sales", "Org", True),
    ]
    assert [(u.key, u.email, u.display_name, u.attributes, u.team, u.status, u.managed, u.memberships)
            for u in state.users.values()] == [
        ("corp:a1", "alice@example.com", "Alice", (("department", "Sales"),), "Org/Sales", "active", True, set()),
        ("corp:b2", "bob@example.com", "Bob", (("department", "Sales"),), "Org", "active", True, set()),
    ]
    assert state.users["corp:a1"].links == (Link("corp", "a1"),) and state.users["corp:b2"].links == (Link("corp", "b2"),)


@dataclass(frozen=True)
class Known:
    """A person the plan compares the store with (model.KnownUser): what `read(known=...)` may share values with."""

    key: str
    email: str
    display_name: str
    attributes: tuple
    links: tuple


def known_people() -> dict[str, Known]:
    """Alice as the store has her; Bob with another email and name; Carol with her two links in the other
    order; someone the store has never seen."""
    return {k.key: k for k in (
        Known("corp:a1", "alice@example.com", "Alice", (("department", "Sales"),), (Link("corp", "a1"),)),
        Known("corp:b2", "robert@example.com", "Robert", (("department", "Sales"),), (Link("corp", "b2"),)),
        Known("corp:c3", "carol@example.com", "Carol", (("department", "Sales"),), (Link("corp", "c3"), Link("hr", "c3"))),
        Known("corp:z9", "zed@example.com", "Zed", (), (Link("corp", "z9"),)),
    )}


def test_a_read_that_knows_the_people_is_the_same_state(store: Store):
    """The plan reads the store knowing the desired people, so that equal values are kept once
    (model.KnownUser): that must never change what is read: same users, values, links and fingerprint."""
    seeded(store)
    apply(store, Change("create", "user", "corp:c3", "new in corp", None,
                        user_fields("carol@example.com", "Org", ["hr:c3", "corp:c3"])))
    plain, knowing = store.read(), store.read(known=known_people())
    assert knowing == plain and list(knowing.users) == list(plain.users) == ["corp:a1", "corp:b2", "corp:c3"]
    assert knowing.fingerprint == plain.fingerprint
    assert knowing.users["corp:b2"].email == "bob@example.com"  # not the known person's


def test_a_read_begun_while_the_plan_works_is_the_read(store: Store):
    """A plan begins the store's read before it builds the desired state and takes it after (`read_later`: a
    SQL store reads in a helper process meanwhile, store/sql/prefetch.py). It must be the state `read(known=)`
    gives: a store not there yet reads as empty, then the same users, values shared with the known people,
    teams and fingerprint."""
    later = read_later(store)
    later.begin()
    assert later.state() == store.read() and not store.read().users
    seeded(store)
    apply(store, Change("create", "user", "corp:c3", "new in corp", None,
                        user_fields("carol@example.com", "Org", ["hr:c3", "corp:c3"])))
    known = known_people()
    later = read_later(store)
    later.begin()
    state = later.state(known)
    later.close()  # taken: closing again does nothing
    plain = store.read(known=known)
    assert state == plain and list(state.users) == list(plain.users) == ["corp:a1", "corp:b2", "corp:c3"]
    assert state.fingerprint == plain.fingerprint == store.fingerprint() and state.teams == plain.teams
    alice, read_alice, same = state.users["corp:a1"], plain.users["corp:a1"], known["corp:a1"]
    for name in ("key", "email", "display_name", "attributes", "links"):  # shared as read(known=) shares them
        assert (getattr(alice, name) is getattr(same, name)) == (getattr(read_alice, name) is getattr(same, name))
    assert state.users["corp:b2"].email == "bob@example.com"


def test_create_writes_managed_user_links_and_team_rows(engine: Engine, store: Store):
    tables = sql_tables(engine, NO_ROWS)
    seeded(store)
    assert tables.rows("SELECT key, name, parent_key, managed FROM teams ORDER BY key") == [
        ("Org", "Org", None, 1),
        ("Org/Sales", "Sales", "Org", 1),
    ]
    assert tables.rows(
        "SELECT key, email, display_name, attributes, team_key, status, managed FROM users ORDER BY key"
    ) == [
        ("corp:a1", "alice@example.com", "Alice", '{"department":"Sales"}', "Org/Sales", "active", 1),
        ("corp:b2", "bob@example.com", "Bob", '{"department":"Sales"}', "Org", "active", 1),
    ]
    assert tables.rows(
        "SELECT u.key, l.directory, l.anchor FROM user_links l JOIN users u ON u.id = l.user_id ORDER BY 1"
    ) == [
        ("corp:a1", "corp", "a1"),
        ("corp:b2", "corp", "b2"),
    ]


def adopt_carol(store: Store, app: Application) -> str:
    """Seeds the store, adds Carol by hand to team Org and adopts her as corp:c3; her hand-made key."""
    seeded(store)
    hand_made = app.add_unmanaged_user("carol@example.com", "Org")
    local = store.read().users[hand_made]
    assert not local.managed and local.attributes == (("title", "boss"),)
    after = user_fields("carol@example.com", "Org/Sales", ["corp:c3", "emea:c3"], display_name="Carol C")
    apply(store, Change("adopt", "user", "corp:c3", "adopted", {"key": hand_made, "email": "carol@example.com"}, after))
    return hand_made


def test_adopt_makes_the_hand_made_user_managed_with_the_directorys_data(store: Store, app: Application):
    hand_made = adopt_carol(store, app)
    state = store.read()
    assert hand_made not in state.users
    carol = state.users["corp:c3"]
    assert (carol.email, carol.display_name, carol.attributes, carol.team, carol.managed) == (
        "carol@example.com", "Carol C", (("department", "Sales"),), "Org/Sales", True)
    assert [str(link) for link in carol.links] == ["corp:c3", "emea:c3"]
    assert [u.key for u in state.users.values() if u.email == "carol@example.com"] == ["corp:c3"]  # not duplicated


def test_adopt_makes_the_hand_made_row_managed_with_the_directorys_data(engine: Engine, store: Store, app: Application):
    tables = sql_tables(engine, NO_ROWS)
    row_id = int(adopt_carol(store, app).removeprefix("local:"))
    assert tables.rows(
        "SELECT id, key, display_name, attributes, team_key, managed FROM users WHERE email = 'carol@example.com'"
    ) == [(row_id, "corp:c3", "Carol C", '{"department":"Sales"}', "Org/Sales", 1)]


def update_alice(store: Store) -> None:
    seeded(store)
    apply(store, Change("update", "user", "corp:a1", "drift", {"display_name": "Alice"},
                        {"display_name": "Alice A", "attributes": {"department": "EMEA"},
                         "links": ["corp:a1", "emea:a9"]}))


def test_update_sets_only_the_fields_it_names(store: Store):
    update_alice(store)
    alice = store.read().users["corp:a1"]
    assert (alice.email, alice.display_name, alice.attributes, alice.team, alice.status) == (
        "alice@example.com", "Alice A", (("department", "EMEA"),), "Org/Sales", "active")
    assert [str(link) for link in alice.links] == ["corp:a1", "emea:a9"]


def test_update_writes_only_the_columns_it_names(engine: Engine, store: Store):
    tables = sql_tables(engine, NO_ROWS)
    update_alice(store)
    assert tables.rows("SELECT email, display_name, attributes, team_key FROM users WHERE key = 'corp:a1'") == [
        ("alice@example.com", "Alice A", '{"department":"EMEA"}', "Org/Sales")
    ]


MOVE_AND_DEACTIVATE = (Change("move", "user", "corp:a1", "placed", {"team": "Org/Sales"}, {"team": None}),
                       Change("deactivate", "user", "corp:b2", "left", {"status": "active"}, {"status": "deactivated"}))
REACTIVATE = Change("reactivate", "user", "corp:b2", "back", {"status": "deactivated"}, {"status": "active"})


def test_move_deactivate_and_reactivate_set_team_and_status(store: Store):
    seeded(store)
    apply(store, *MOVE_AND_DEACTIVATE)
    assert [(u.key, u.team, u.status) for u in store.read().users.values()] == [
        ("corp:a1", None, "active"), ("corp:b2", "Org", "deactivated")
    ]
    apply(store, REACTIVATE)
    assert store.read().users["corp:b2"].status == "active"


def test_move_deactivate_and_reactivate_write_team_key_and_status(engine: Engine, store: Store):
    tables = sql_tables(engine, NO_ROWS)
    seeded(store)
    apply(store, *MOVE_AND_DEACTIVATE)
    assert tables.rows("SELECT key, team_key, status FROM users ORDER BY key") == [
        ("corp:a1", None, "active"), ("corp:b2", "Org", "deactivated")
    ]
    apply(store, REACTIVATE)
    assert tables.rows("SELECT status FROM users WHERE key = 'corp:b2'") == [("active",)]


def test_delete_removes_the_user_its_links_and_memberships(store: Store):
    seeded(store)
    apply(store, Change("add", "membership", "corp:a1|Org", "member", None, {"user": "corp:a1", "team": "Org"}))
    apply(store, Change("delete", "user", "corp:a1", "left", {"email": "alice@example.com"}, None))
    state = store.read()
    assert list(state.users) == ["corp:b2"]
    assert links(store) == {"corp:b2": ["corp:b2"]}
    assert state.users["corp:b2"].memberships == set()


def test_delete_removes_the_users_rows(engine: Engine, store: Store):
    tables = sql_tables(engine, NO_ROWS)
    seeded(store)
    apply(store, Change("add", "membership", "corp:a1|Org", "member", None, {"user": "corp:a1", "team": "Org"}))
    apply(store, Change("delete", "user", "corp:a1", "left", {"email": "alice@example.com"}, None))
    assert tables.rows("SELECT key FROM users") == [("corp:b2",)]
    assert tables.rows("SELECT directory, anchor FROM user_links") == [("corp", "b2")]
    assert tables.rows("SELECT * FROM memberships") == []


def test_membership_add_and_remove(store: Store):
    seeded(store)
    apply(store, Change("add", "membership", "corp:a1|Org", "member", None, {"user": "corp:a1", "team": "Org"}),
          Change("add", "membership", "corp:b2|Org/Sales", "member", None, {"user": "corp:b2", "team": "Org/Sales"}))
    state = store.read()
    assert state.users["corp:a1"].memberships == {"Org"} and state.users["corp:b2"].memberships == {"Org/Sales"}
    apply(store, Change("remove", "membership", "corp:a1|Org", "left", {"user": "corp:a1", "team": "Org"}, None))
    state = store.read()
    assert state.users["corp:a1"].memberships == set() and state.users["corp:b2"].memberships == {"Org/Sales"}


def test_membership_rows(engine: Engine, store: Store):
    tables = sql_tables(engine, NO_ROWS)
    seeded(store)
    apply(store, Change("add", "membership", "corp:a1|Org", "member", None, {"user": "corp:a1", "team": "Org"}),
          Change("add", "membership", "corp:b2|Org/Sales", "member", None, {"user": "corp:b2", "team": "Org/Sales"}))
    apply(store, Change("remove", "membership", "corp:a1|Org", "left", {"user": "corp:a1", "team": "Org"}, None))
    assert tables.rows("SELECT u.key, m.team_key FROM memberships m JOIN users u ON u.id = m.user_id") == [
        ("corp:b2", "Org/Sales")
    ]


RENAME_TEAM = Change("update", "team", "Org/Sales", "renamed", {"name": "Sales"}, {"name": "Sales EMEA"})
EMPTY_AND_DELETE_TEAMS = (
    Change("move", "user", "corp:a1", "placed", {"team": "Org/Sales"}, {"team": None}),
    Change("move", "user", "corp:b2", "placed", {"team": "Org"}, {"team": None}),
    Change("delete", "team", "Org/Sales", "empty", {"name": "Sales EMEA", "parent": "Org"}, None),
    Change("delete", "team", "Org", "empty", {"name": "Org", "parent": None}, None),
)


def test_team_update_and_children_first_delete(store: Store):
    seeded(store)
    apply(store, RENAME_TEAM)
    assert store.read().teams["Org/Sales"].name == "Sales EMEA"
    apply(store, *EMPTY_AND_DELETE_TEAMS)
    assert store.read().teams == {}


def test_team_update_and_delete_rows(engine: Engine, store: Store):
    tables = sql_tables(engine, NO_ROWS)
    seeded(store)
    apply(store, RENAME_TEAM)
    assert tables.rows("SELECT name FROM teams WHERE key = 'Org/Sales'") == [("Sales EMEA",)]
    apply(store, *EMPTY_AND_DELETE_TEAMS)
    assert tables.rows("SELECT * FROM teams") == []


CHILD_BEFORE_PARENT = (create_team("group:aa", "group:bb", "Child"), create_team("group:bb", None, "Parent"))


def test_a_team_may_be_created_before_its_parent_in_one_plan(store: Store):
    apply(store, *CHILD_BEFORE_PARENT)
    assert [(t.key, t.parent) for t in store.read().teams.values()] == [("group:aa", "group:bb"), ("group:bb", None)]


def test_a_team_created_before_its_parent_has_its_parent_key_row(engine: Engine, store: Store):
    tables = sql_tables(engine, NO_ROWS)
    apply(store, *CHILD_BEFORE_PARENT)
    assert tables.rows("SELECT key, parent_key FROM teams ORDER BY key") == [
        ("group:aa", "group:bb"), ("group:bb", None)
    ]


# corp:a1 is alice's link; a new user takes it over in the same plan that removes it from alice
LINK_MOVES = (
    Change("create", "user", "emea:z", "new", None, user_fields("zed@example.com", None, ["corp:a1", "emea:z"])),
    Change("update", "user", "corp:a1", "relinked", {"links": ["corp:a1"]}, {"links": []}),
)


def test_a_link_may_move_between_users_within_one_plan(store: Store):
    seeded(store)
    apply(store, *LINK_MOVES)
    assert links(store) == {"corp:a1": [], "corp:b2": ["corp:b2"], "emea:z": ["corp:a1", "emea:z"]}


def test_a_link_that_moves_within_one_plan_has_one_row(engine: Engine, store: Store):
    tables = sql_tables(engine, NO_ROWS)
    seeded(store)
    apply(store, *LINK_MOVES)
    assert tables.rows("SELECT u.key FROM user_links l JOIN users u ON u.id = l.user_id WHERE l.anchor = 'a1'") == [
        ("emea:z",)
    ]


# ───────────────────────────── refusals ─────────────────────────────


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
        (Change("add", "membership", "corp:a1|Org", "m", None, {"user": "corp:a1", "team": "Org"}),
         "already a member"),
    ],
)
def test_a_change_that_cannot_apply_refuses_the_whole_plan(app: Application, store: Store, bad: Change, says: str):
    """SQL rolls the whole apply back; SCIM, which has no transactions, checks the whole plan first."""
    seeded(store)
    # a membership of another team than the user's own: on SCIM a user's groups are their team plus their
    # memberships, so a membership of one's own team is the team and cannot be added twice
    apply(store, Change("add", "membership", "corp:a1|Org", "m", None, {"user": "corp:a1", "team": "Org"}))
    before, fingerprint = app.content(), store.fingerprint()
    good = Change("update", "user", "corp:b2", "drift", {"display_name": "Bob"}, {"display_name": "Robert"})
    with pytest.raises(StoreError) as raised:
        apply(store, good, bad)  # the good change comes first and must not stay
    message = str(raised.value)
    assert f"cannot apply {bad.kind} {bad.action} {bad.key}: " in message and says in message
    assert "\n" not in message
    assert app.content() == before and store.fingerprint() == fingerprint
    assert store.history()[0].outcome == f"failed: {raised.value.message}"  # the attempt is on record


def test_stale_fingerprint_is_refused_and_nothing_changes(app: Application, store: Store):
    seeded(store)
    planned_against = store.fingerprint()
    app.rename_user("corp:b2", "Edited")  # someone changed the store
    before = app.content()
    change = Change("update", "user", "corp:a1", "drift", {"display_name": "Alice"}, {"display_name": "Alicia"})
    with pytest.raises(StalePlan, match="plan is stale: the store changed since the plan was made; run plan again"):
        store.apply([change], planned_against, record())
    assert app.content() == before
    assert store.history()[0].outcome.startswith("refused: plan is stale")


def test_fingerprint_is_stable_for_same_content_and_changes_on_any_manual_edit(
    engine: Engine, app: Application, store: Store
):
    seeded(store)
    first = store.fingerprint()
    reopened = engine.open()
    assert reopened.fingerprint() == first
    reopened.close()
    twin = engine.open("twin")
    seeded(twin)
    assert (twin.read().users, twin.read().teams) == (store.read().users, store.read().teams)
    if app.fingerprint_is_content_only:
        assert twin.fingerprint() == first  # content, not row ids or timestamps
    else:  # SCIM: also each managed resource's id and version on its server, which a twin server does not share
        assert twin.fingerprint() != first
    twin.close()

    seen = {first}
    for edit, make in app.content_edits():
        make()
        now = store.fingerprint()
        assert now not in seen, edit
        seen.add(now)
    bookkeeping = app.bookkeeping_edit()
    if bookkeeping is not None:  # None on SCIM, where the application's every write bumps a version the fingerprint covers
        bookkeeping()  # bookkeeping only: not content
        assert store.fingerprint() in seen


def test_unmanaged_users_are_read_but_only_adopt_touches_them(app: Application, store: Store):
    seeded(store)
    key = app.add_unmanaged_user("dave@example.com", "Org")
    dave = store.read().users[key]
    assert (dave.managed, dave.email, dave.display_name, dave.attributes) == (
        False, "dave@example.com", "Hand Made", (("title", "boss"),))
    # SQL: Org is the row's team; SCIM: only the reconciler's notes say which of a user's groups is the team
    assert (dave.team, dave.memberships) == app.unmanaged_placement("Org")
    untouched = app.user_record(key)

    apply(store, Change("update", "user", "corp:a1", "drift", {"display_name": "Alice"}, {"display_name": "Alicia"}))
    for attempt in (
        Change("update", "user", key, "drift", {}, {"display_name": "D"}),
        Change("deactivate", "user", key, "left", {"status": "active"}, {"status": "deactivated"}),
        Change("delete", "user", key, "left", {}, None),
        Change("add", "membership", f"{key}|Org", "m", None, {"user": key, "team": "Org"}),
    ):
        with pytest.raises(StoreError, match="is not managed; only adopt may change it"):
            apply(store, attempt)
    assert app.user_record(key) == untouched


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
        assert raised.value.message == engine.held_message(  # the message, as the history records it
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


def test_the_lock_is_released_when_the_block_raises(engine: Engine, app: Application, store: Store):
    with pytest.raises(RuntimeError):
        with store.lock("me"):
            raise RuntimeError("apply crashed in Python")
    assert app.lock_records() == []
    successor = engine.open()
    with successor.lock("next") as info:  # and another store object may take it at once
        assert info.holder == "next" and info.expired_takeover is None
    successor.close()


# ───────────────────────────── history ─────────────────────────────


def test_history_records_counts_actor_and_force_reason_newest_first(store: Store):
    clock = FakeClock()
    store.clock = clock  # type: ignore[attr-defined]  every store keeps its clock there
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
    assert newest.counts == {} and newest.actor == "github-actions[bot]"  # an empty apply, forced: recorded, with its reason
    assert newest.force_reason == "incident 123: approved by bob" and newest.finished_at == "2026-11-21T09:00:30Z"
    assert newest == second


def test_an_apply_with_no_changes_writes_no_line_and_the_next_line_counts_it(store: Store):
    clock = FakeClock()
    store.clock = clock  # type: ignore[attr-defined]
    first = apply(store, create_team("Org"), create_user("corp:a1", "a@example.com", "Org"), actor="alice@laptop")
    assert first.unchanged_runs == 0
    for _ in range(3):  # the hourly job on a store in sync
        clock.advance(3600)
        unchanged = apply(store, actor="ci@runner")
        assert (unchanged.id, unchanged.outcome, unchanged.counts) == (None, "applied", {})
    history = store.history()
    assert history == [first]  # no line for them
    assert (history.unchanged.runs, history.unchanged.latest) == (3, "2026-11-21T12:00:00Z")

    clock.advance(60)
    second = apply(store, create_user("corp:b2", "b@example.com", "Org"))
    assert second.unchanged_runs == 3  # the next line carries them
    clock.advance(60)
    apply(store)
    clock.advance(60)
    refused = store.record(record(finished_at="2026-11-21T12:03:00Z", counts={"user.deactivate": 40},
                                  outcome="refused: 40 deactivations is over the limit"))
    assert refused.unchanged_runs == 1  # a refused line takes the count over as well
    history = store.history()
    assert [(h.id, h.unchanged_runs) for h in history] == [(refused.id, 1), (second.id, 3), (first.id, 0)]
    assert history.unchanged.runs == 0 and history.unchanged.latest is None  # counted once, in one line


def test_an_apply_with_no_changes_on_a_changed_store_is_refused_and_recorded(app: Application, store: Store):
    seeded(store)
    planned_against = store.fingerprint()
    app.rename_user("corp:b2", "Edited")  # the plan said "nothing to do" about a store that is no longer there
    with pytest.raises(StalePlan):
        store.apply([], planned_against, record())
    [stale, _seeded] = store.history()
    assert stale.result == "refused" and stale.reason.startswith("plan is stale")


def test_refused_and_failed_lines_carry_what_was_planned_and_not_applied(store: Store):
    seeded(store)
    apply(store)  # counted, then taken over by the failed line below
    bad = Change("deactivate", "user", "corp:nobody", "left", {"status": "active"}, {"status": "deactivated"})
    with pytest.raises(StoreError) as raised:
        apply(store, create_user("corp:c3", "c@example.com", "Org"), bad)
    refused = store.record(record(finished_at="2026-11-21T09:00:01Z", counts={"user.deactivate": 40},
                                  outcome="refused: 40 deactivations is over the limit"))
    newest, failed, seeded_line = store.history()
    assert newest == refused
    assert (newest.result, newest.reason, newest.applied, newest.planned_not_applied) == (
        "refused", "40 deactivations is over the limit", {}, {"user.deactivate": 40})
    assert (failed.result, failed.reason) == ("failed", raised.value.message)
    assert failed.applied == {} and failed.planned_not_applied == {"user.create": 1, "user.deactivate": 1}
    assert failed.unchanged_runs == 1
    assert seeded_line.result == "applied" and seeded_line.planned_not_applied == {}
    assert seeded_line.applied == {"team.create": 2, "user.create": 2}
    assert failed.to_json()["planned_not_applied"] == {"user.create": 1, "user.deactivate": 1}
    assert failed.to_json()["applied"] == {} and failed.to_json()["counts"] == failed.counts  # as before: the plan's


def test_a_refusal_made_before_apply_can_be_recorded_on_its_own(store: Store):
    empty = store.fingerprint()
    refused = store.record(record(finished_at="2026-11-21T09:00:01Z", counts={"user.deactivate": 40},
                                  outcome="refused: 40 deactivations exceed safety.max_deactivations (10)"))
    assert refused.id is not None and store.history() == [refused]
    assert store.fingerprint() == empty  # history is not content: a saved plan stays current


# ── delta-read states: kept with the apply they came with, never without one ──

def test_delta_states_are_kept_with_an_apply_and_read_back_as_written(store: Store):
    """What a delta read starts from is what the last apply kept, byte for byte, per directory."""
    assert store.read_sync() == {}  # nothing kept yet (and no store is created by asking)
    apply_with = store.apply([create_team("Org")], store.fingerprint(), record(), sync={"corp": b"\x00state-1", "emea": b"e1"})
    assert apply_with.outcome == "applied"
    assert store.read_sync() == {"corp": b"\x00state-1", "emea": b"e1"}
    store.apply([], store.fingerprint(), record(), sync={"corp": b"state-2"})  # an apply with no changes keeps one too
    assert store.read_sync() == {"corp": b"state-2", "emea": b"e1"}  # a directory not read this time keeps its own


def test_a_refused_apply_keeps_no_delta_state(app: Application, store: Store):
    """A plan refused inside the apply (stale) leaves the kept state as it was: the next read starts from the
    state of the last apply that went through."""
    store.apply([create_team("Org")], store.fingerprint(), record(), sync={"corp": b"before"})
    planned_against = store.fingerprint()
    store.apply([create_team("Other")], store.fingerprint(), record())  # the store changes after the plan
    with pytest.raises(StalePlan):
        store.apply([create_team("Third")], planned_against, record(), sync={"corp": b"after"})
    assert store.read_sync() == {"corp": b"before"}


def test_the_generation_moves_with_every_write_to_the_content_and_only_then(app: Application, store: Store):
    """What lets a plan be reused without reading the store (plan.steady): any write to the content, by
    reconciler or by the application behind its back, moves the generation; reads and applies that change
    nothing do not. A store that cannot tell cheaply (SCIM) says None, and no plan is ever reused on it."""
    seeded(store)
    before = store.generation()
    if store.kind == "scim":
        assert before is None
        return
    assert before is not None
    store.read(), store.history(), store.read_sync()
    apply(store)  # an apply with no changes (counted in meta, no content written)
    assert store.generation() == before
    app.rename_user("corp:b2", "Edited by hand")
    edited = store.generation()
    assert edited != before
    apply(store, create_team("Extra"))
    assert store.generation() not in (before, edited)
