"""kind entra-id read through Microsoft Graph's delta queries, against the loopback fake of Graph (tests/servers/
fake_graph.py) over HTTPS verified with the test CA. No Entra ID tenant can run here: Graph is faked, and the fake
follows the documented shapes of:

- https://learn.microsoft.com/en-us/graph/delta-query-overview: rounds of pages linked by @odata.nextLink to the
  page with @odata.deltaLink; `$deltatoken=latest` ("sync from now" for directory objects); `@removed` with
  reason changed (soft-deleted) or deleted; query parameters given once and kept in the tokens; replays;
  "Synchronization reset" (410 Gone with Location) and expired tokens (syncStateNotFound);
- https://learn.microsoft.com/en-us/graph/api/user-delta: `$select`, `$filter` of `id eq` only (50 ids),
  `Prefer: return=minimal` (changed properties only, a cleared one as null);
- https://learn.microsoft.com/en-us/graph/api/group-delta and .../graph/delta-query-groups: `members@delta`
  with removed members marked `@removed`, a large membership split over several items of the same group;
- https://learn.microsoft.com/en-us/graph/throttling (429 with Retry-After).

After every kind of change, the DirectoryRead of the delta read equals a fresh full read's (users, groups,
out_of_scope, entries read): that is the promise a delta read keeps. The fake evaluates filters with the same
evaluator (reconciler.odata) the delta read applies to changes, so these tests cannot show a filter Graph
evaluates differently.
"""
from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone

import pytest

from reconciler.directory.delta import SyncState, decode, encode
from reconciler.directory.entra.graph import GraphClient
from reconciler.directory.entra.readers import LiveGraph
from reconciler.directory.entra.source import GraphSource
from reconciler.errors import DirectoryError
from reconciler.policy import load_policy
from tests.servers.fake_graph import App, FakeEntra, Fault, make_tenant
from tests.servers.tls import make_tls

pytestmark = pytest.mark.integration

APP = "11111111-2222-3333-4444-555555555555"
SECRET = "Zp7~delta-not-a-real-secret.456"
PEOPLE = 240
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
TEAMS = "    groups: {filter: \"startswith(displayName, 'Team ')\"}\nplacement: {mode: group-teams}\n"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls(tmp_path_factory.mktemp("entra-delta-tls"))


@pytest.fixture
def fake(tls):
    server = FakeEntra(tls, make_tenant(PEOPLE)).start()
    server.register(App(APP, secret=SECRET))
    server.page_size = 100  # several pages everywhere
    server.delta_page_size = 7
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv("GRAPH_SECRET", SECRET)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)


def directory(tmp_path, fake: FakeEntra, tls, users: str = "{}", tail: str = "", mapping: str = ""):
    (tmp_path / "policy.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        directories:
          cloud:
            kind: entra-id
            tenant: {fake.tenant}
            client_id: {APP}
            client_secret: '${{GRAPH_SECRET}}'
            endpoints: {{login: '{fake.url}', graph: '{fake.url}'}}
            tls: {{ca_file: {tls.ca_file}}}
            users: {users}
        """) + tail + mapping)
    return load_policy(tmp_path / "policy.yaml").directories[0]


def source(d, sleeps: list | None = None) -> GraphSource:
    sleeps = [] if sleeps is None else sleeps
    return GraphSource(d, reader_factory=lambda x: LiveGraph(x, GraphClient(x, sleep=sleeps.append)))


def kept(state: SyncState) -> SyncState:
    """The state as the store keeps it: encoded, and read back."""
    decoded, why_not = decode(encode(state))
    assert decoded is not None, why_not
    return decoded


def first(d):
    read, state, note = source(d).read_with_state(None, "no delta state is kept yet", DAY, NOW)
    assert (note.kind, note.reason) == ("full", "no delta state is kept yet")
    return read, kept(state)


def delta(d, state: SyncState, now: datetime = NOW + timedelta(hours=1), sleeps: list | None = None):
    read, new_state, note = source(d, sleeps).read_with_state(state, "", DAY, now)
    return read, kept(new_state), note


def assert_as_full(d, read) -> None:
    fresh = source(d).read()
    assert read.users == fresh.users
    assert read.groups == fresh.groups
    assert read.out_of_scope == fresh.out_of_scope
    assert read.entries_read == fresh.entries_read
    assert read == fresh


def group_id(fake: FakeEntra, name: str) -> str:
    return next(g["id"] for g in fake.groups if g["displayName"] == name)


def user_id(fake: FakeEntra, n: int) -> str:
    return next(u["id"] for u in fake.users if u["userPrincipalName"].startswith(f"p{n:06d}@"))


def guest_id(fake: FakeEntra, n: int) -> str:
    return next(u["id"] for u in fake.users if u["displayName"] == f"Guest {n}")


# ── a full read, then a delta after each kind of change ─────────────────────────────────────────

CHANGES = {
    "nothing": (lambda f: None, 0),
    "a new member": (lambda f: f.add_user({
        "id": "0b0b0b0b-0000-4000-8000-000000000001", "accountEnabled": True, "displayName": "New Hire",
        "mail": "new.hire@contoso.com", "userType": "Member", "userPrincipalName": "new.hire@contoso.com",
        "department": "Sales"}), 1),
    "a new guest (outside users.filter)": (lambda f: f.add_user({
        "id": "0b0b0b0b-0000-4000-8000-000000000002", "accountEnabled": True, "displayName": "Guest New",
        "mail": "g@partner.example", "userType": "Guest", "userPrincipalName": "g_partner.example#EXT#@contoso.com"}), 0),
    "a changed display name": (lambda f: f.update_user(user_id(f, 3), displayName="Person Renamed"), 1),
    "a changed sign-in name": (lambda f: f.update_user(user_id(f, 4), userPrincipalName="renamed@contoso.com"), 1),
    "a cleared mail": (lambda f: f.update_user(user_id(f, 5), mail=None), 1),
    "a property the read does not select": (lambda f: f.update_user(user_id(f, 6), jobTitle="Manager"), 0),
    "a disabled account": (lambda f: f.disable_user(user_id(f, 8)), 1),
    "a soft-deleted user": (lambda f: f.delete_user(user_id(f, 9)), 1),
    "a hard-deleted user": (lambda f: f.delete_user(user_id(f, 10), hard=True), 1),
    "a member who became a guest": (lambda f: f.update_user(user_id(f, 11), userType="Guest"), 1),
    "a guest who became a member (read whole)": (lambda f: f.update_user(guest_id(f, 1), userType="Member"), 1),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_delta_after_each_change_reads_what_a_full_read_reads(tmp_path, fake, tls, change):
    d = directory(tmp_path, fake, tls)
    before, state = first(d)
    mutate, touched = CHANGES[change]
    mutate(fake)
    read, new_state, note = delta(d, state)
    assert (note.kind, note.changed) == ("delta", touched)
    assert note.reason == "changes since the last apply; last full read 2026-11-30T12:00:00Z"
    assert new_state.full_read_at == "2026-11-30T12:00:00Z" and new_state.changes_since_full == touched
    assert_as_full(d, read)
    if change == "nothing":
        assert read == before
    # and the state it returned reads the next change as well
    fake.disable_user(user_id(fake, 20))
    again, _, note = delta(d, new_state)
    assert (note.kind, note.changed) == ("delta", 1)
    assert_as_full(d, again)


def test_a_guest_who_becomes_a_member_is_read_whole_by_id(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls)
    _, state = first(d)
    fake.update_user(guest_id(fake, 0), userType="Member")  # the minimal delta says userType only
    fake.log.clear()
    read, _, note = delta(d, state)
    assert any(e.account_name == "guest0_partner.example#EXT#@contoso.com" for e in read.users)
    asked = [r.query for r in fake.graph_requests("/v1.0/users/delta") if "$filter" in r.query]
    assert [q["$filter"] for q in asked] == [f"id eq '{guest_id(fake, 0)}'"]
    assert "userType" in asked[0]["$select"].split(",")
    assert_as_full(d, read)


def test_the_delta_asks_graph_as_documented(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls)
    first(d)
    requests = fake.graph_requests("/v1.0/")
    latest = requests[0]  # the delta link is asked for before the full read, so it reports what changes during it
    assert latest.path == "/v1.0/users/delta" and latest.query["$deltatoken"] == "latest"
    assert latest.query["$select"].split(",") == ["accountEnabled", "displayName", "id", "mail", "onPremisesImmutableId",
                                                  "userPrincipalName", "userType"]  # userType: users.filter reads it
    assert all(r.path == "/v1.0/users" for r in requests[1:])
    assert requests[1].query["$filter"] == "userType eq 'Member'"  # the full read filters on the server as before


def test_changes_during_the_full_read_come_with_the_next_delta(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls)
    changed = []

    def change_once(request) -> bool:  # not a fault: disables a user already read when page 2 is asked for
        if "$skiptoken" in request.query and not changed:
            changed.append(True)
            fake.disable_user(user_id(fake, 0))
        return False

    fake.faults.append(Fault("/v1.0/users", when=change_once))
    read, state = first(d)
    assert not next(e for e in read.users if e.account_name.startswith("p000000@")).disabled
    again, _, note = delta(d, state)
    assert (note.kind, note.changed) == ("delta", 1)
    assert next(e for e in again.users if e.account_name.startswith("p000000@")).disabled
    assert_as_full(d, again)


def test_replays_and_repeated_items_change_nothing(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls, tail=TEAMS)
    _, state = first(d)
    fake.delta_replays = True
    fake.delta_members_per_item = 2
    fake.update_user(user_id(fake, 1), displayName="Once")
    for n in (2, 3, 4, 5, 6):
        fake.remove_member(group_id(fake, "Team Engineering"), user_id(fake, n * 5))
    read, state, note = delta(d, state)
    assert (note.kind, note.changed) == ("delta", 2)  # one user, one group
    assert_as_full(d, read)
    _, _, note = delta(d, state)
    assert note.changed == 0


# ── member_of and group-teams ───────────────────────────────────────────────────────────────────

MEMBERSHIP = {
    "added to member_of": lambda f: f.add_member(group_id(f, "Key Owners"), user_id(f, 1)),
    "removed from member_of": lambda f: f.remove_member(group_id(f, "Key Owners"), user_id(f, 0)),
    "a group nested into member_of": lambda f: f.add_member(group_id(f, "Key Owners"), group_id(f, "Team Sales"), "group"),
    "a nested group emptied": lambda f: [f.remove_member(group_id(f, "Key Owners - Field"), m["id"])
                                         for m in list(f.members[group_id(f, "Key Owners - Field")])],
}


@pytest.mark.parametrize("change", list(MEMBERSHIP))
def test_member_of_is_read_again_every_time(tmp_path, fake, tls, change):
    d = directory(tmp_path, fake, tls, users="{member_of: [Key Owners]}")
    before, state = first(d)
    MEMBERSHIP[change](fake)
    read, _, note = delta(d, state)
    assert note.kind == "delta" and note.changed == 0  # no user changed: who is in scope did
    assert_as_full(d, read)
    assert {e.dn for e in read.users} != {e.dn for e in before.users}


GROUPS = {
    "a member added": (lambda f: f.add_member(group_id(f, "Team Sales"), user_id(f, 2)), 1),
    "a member removed": (lambda f: f.remove_member(group_id(f, "Team Sales"), user_id(f, 1)), 1),
    "a group renamed": (lambda f: f.update_group(group_id(f, "Team Support"), displayName="Team Help Desk"), 1),
    "a group out of groups.filter": (lambda f: f.update_group(group_id(f, "Team Finance"), displayName="Finance"), 1),
    "a group into groups.filter (read whole)": (lambda f: f.update_group(group_id(f, "Key Owners"),
                                                                         displayName="Team Key Owners"), 1),
    "a new group": (lambda f: f.add_group({"id": "0c0c0c0c-0000-4000-8000-000000000001", "displayName": "Team New",
                                           "securityEnabled": True, "members": [
                                               {"@odata.type": "#microsoft.graph.user", "id": user_id(f, 3)}]}), 1),
    "a group deleted": (lambda f: f.delete_group(group_id(f, "Team Operations"), hard=True), 1),
    "a member of two groups soft-deleted": (lambda f: f.delete_user(user_id(f, 0)), 2),  # the user and Team Engineering
}


@pytest.mark.parametrize("change", list(GROUPS))
def test_group_teams_follow_groups_delta_with_members(tmp_path, fake, tls, change):
    d = directory(tmp_path, fake, tls, tail=TEAMS)
    _, state = first(d)
    assert fake.graph_requests("/v1.0/groups/delta")[0].query["$select"] == "displayName,id,members"
    mutate, touched = GROUPS[change]
    mutate(fake)
    read, _, note = delta(d, state)
    assert (note.kind, note.changed) == ("delta", touched)
    assert_as_full(d, read)


def test_a_restored_user_comes_back_whole(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls)
    _, state = first(d)
    gone = user_id(fake, 12)
    fake.delete_user(gone)
    read, state, note = delta(d, state)
    assert note.changed == 1 and len(read.users) == PEOPLE - 1
    fake.restore_user(gone)
    read, _, note = delta(d, state)
    assert note.changed == 1 and len(read.users) == PEOPLE
    assert_as_full(d, read)


# ── when the read is a full one, and why ─────────────────────────────────────────────────────────

def test_410_gone_means_a_full_read_that_says_why(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls)
    _, state = first(d)
    fake.disable_user(user_id(fake, 1))
    fake.expire_delta_links()
    read, new_state, note = delta(d, state, now=NOW + timedelta(hours=5))
    assert note.kind == "full" and note.changed is None
    assert note.reason == ("Graph refused the delta link (410 Gone, resyncRequired; Graph asks for a full "
                           "synchronization): read in full")
    assert new_state.full_read_at == "2026-11-30T17:00:00Z" and new_state.changes_since_full == 0
    assert_as_full(d, read)
    fake.disable_user(user_id(fake, 2))  # the new state's links work
    again, _, note = delta(d, new_state, now=NOW + timedelta(hours=6))
    assert (note.kind, note.changed) == ("delta", 1)
    assert_as_full(d, again)


def test_an_expired_token_means_a_full_read(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls, tail=TEAMS)
    _, state = first(d)
    fake.expire_delta_links(status=400)
    read, _, note = delta(d, state)
    assert note.kind == "full" and note.reason == ("Graph refused the delta link (400 Bad Request, syncStateNotFound): "
                                                   "read in full")
    assert_as_full(d, read)


def test_a_state_of_another_graph_endpoint_is_not_sent_there(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls)
    _, state = first(d)
    other = FakeEntra(tls, make_tenant(10)).start()  # the same tenant id, another endpoint
    other.register(App(APP, secret=SECRET))
    try:
        d2 = directory(tmp_path, other, tls)
        read, _, note = delta(d2, state)
        assert note.kind == "full" and "the kept delta link for users is not one of https://127.0.0.1:" in note.reason
        assert all("$deltatoken" not in r.query or r.query["$deltatoken"] == "latest"
                   for r in other.graph_requests("/v1.0/users/delta"))
        assert len(read.users) == 10
    finally:
        other.stop()


@pytest.mark.parametrize("edit, reason", [
    (lambda s: None, "the last full read was 1d ago (full_read_every: 1d)"),
    (lambda s: setattr(s, "server", "0d0d0d0d-0000-0000-0000-000000000000"),
     "the server is not the one the kept state is from (0d0d0d0d-0000-0000-0000-000000000000 → "
     "8f2e4a61-1c3b-4d5e-9f70-a1b2c3d4e5f6)"),
    (lambda s: setattr(s, "scope", "sha256:other"), "the searches changed since the last read (bases, filters or attributes)"),
])
def test_a_state_that_may_not_be_used_means_a_full_read(tmp_path, fake, tls, edit, reason):
    d = directory(tmp_path, fake, tls)
    _, state = first(d)
    edit(state)
    read, new_state, note = delta(d, state, now=NOW + DAY)
    assert (note.kind, note.reason) == ("full", reason)
    assert new_state.full_read_at == "2026-12-01T12:00:00Z"
    assert_as_full(d, read)


def test_a_changed_mapping_is_another_scope(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls)
    _, state = first(d)
    d2 = directory(tmp_path, fake, tls, mapping="mapping: {attributes: {dept: '{department}'}}\n")
    read, _, note = delta(d2, state)
    assert (note.kind, note.reason) == ("full", "the searches changed since the last read (bases, filters or attributes)")
    assert read.users[0].attributes["department"]


def test_a_filter_the_delta_cannot_evaluate_reads_in_full_every_time(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls, users="{filter: \"assignedLicenses/any(x: x/skuId eq 1) or userType eq 'Member'\"}")
    read, state, note = source(d).read_with_state(None, "no delta state is kept yet", DAY, NOW)
    expected = ("users.filter reads assignedLicenses, which a delta read does not follow; Graph's delta queries filter "
                "by object id only, so every read of this directory is a full one")
    assert (note.kind, note.reason) == ("full", expected)
    assert not fake.graph_requests("/v1.0/users/delta") and len(read.users) == PEOPLE
    _, _, note = delta(d, kept(state))
    assert (note.kind, note.reason) == ("full", expected)


# ── failures: nothing is returned ───────────────────────────────────────────────────────────────

def failure(d, state, sleeps: list | None = None) -> str:
    with pytest.raises(DirectoryError) as raised:
        source(d, sleeps).read_with_state(state, "", DAY, NOW + timedelta(hours=1))
    message = str(raised.value)
    assert "\n" not in message and SECRET not in message and "Bearer" not in message and "eyJ" not in message
    assert all(search.token.split("=")[-1] not in message for search in state.searches.values())
    return message


def test_a_page_that_keeps_failing_aborts_the_delta(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls)
    _, state = first(d)
    for n in range(30):
        fake.update_user(user_id(fake, n), displayName=f"Changed {n}")
    fake.faults.append(Fault("/v1.0/users/delta", status=500, times=None, when=lambda r: "$skiptoken" in r.query))
    message = failure(d, state)
    assert message.startswith("directory cloud: reading /users/delta (the changes since the last read), page 2: "
                              "500 InternalServerError")
    assert "still after 12 attempts; nothing was planned" in message


@pytest.mark.parametrize("mode, words", [
    ("other-host", "@odata.nextLink points to https://localhost:"),
    ("garbage", "@odata.nextLink is not a URL"),
    ("loop", "@odata.nextLink repeats an earlier page's"),
    ("missing-value", "the page has no value list"),
    ("no-link", "the page has neither @odata.nextLink nor @odata.deltaLink"),
])
def test_a_broken_chain_of_delta_pages_aborts_the_read(tmp_path, fake, tls, mode, words):
    d = directory(tmp_path, fake, tls)
    _, state = first(d)
    for n in range(30):
        fake.update_user(user_id(fake, n), displayName=f"Changed {n}")
    fake.next_link = mode
    message = failure(d, state)
    assert words in message and "incomplete" in message and "/users/delta" in message


def test_throttling_is_waited_out_as_in_a_full_read(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls)
    _, state = first(d)
    fake.disable_user(user_id(fake, 3))
    fake.faults.append(Fault("/v1.0/users/delta", status=429, retry_after="4", times=2))
    sleeps: list[float] = []
    read, _, note = delta(d, state, sleeps=sleeps)
    assert sleeps == [4.0, 4.0] and (note.kind, note.changed) == ("delta", 1)
    assert_as_full(d, read)


def test_throttling_beyond_the_budget_aborts(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls, tail="    throttle_budget: 5\n")
    _, state = first(d)
    fake.faults.append(Fault("/v1.0/users/delta", status=429, retry_after="10", times=None))
    message = failure(d, state, [])
    assert "429 TooManyRequests: Graph asks to wait 10 s" in message and "nothing was planned" in message


def test_a_failure_reading_a_changed_object_whole_aborts(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls)
    _, state = first(d)
    fake.update_user(guest_id(fake, 2), userType="Member")
    fake.faults.append(Fault("/v1.0/users/delta", status=403, times=None, when=lambda r: "$filter" in r.query))
    message = failure(d, state)
    assert "reading 1 changed users whole (/users/delta with $filter id eq), page 1: 403" in message
    assert "User.Read.All" in message


def test_notes_and_states_carry_no_secret(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls, tail=TEAMS)
    _, state = first(d)
    fake.expire_delta_links()
    _, new_state, note = delta(d, state)
    blob = encode(new_state)
    import zlib

    from reconciler.directory.delta import decode

    kept, _ = decode(blob)  # the header is stored as it is; every search's records compressed
    text = blob + b"".join(zlib.decompress(search.packed) for search in kept.searches.values())
    assert SECRET.encode() not in text and SECRET not in note.text
    assert all(token.encode() not in text for token in fake.tokens)  # no access token kept
