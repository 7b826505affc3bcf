"""kind entra-id delta reads, without a network: what a delta read selects and refuses, how Graph's delta items
are applied to the kept records, and how a round of delta pages is followed and refused. Graph is faked here by
canned pages (a stub client) and by httpx's MockTransport answering in the documented shapes of
https://learn.microsoft.com/en-us/graph/delta-query-overview (nextLink/deltaLink rounds, `@removed` with reason
changed or deleted, 410 Gone with Location, syncStateNotFound), .../graph/api/user-delta (changed properties
only with `Prefer: return=minimal`, a cleared one as null, `$filter` of `id eq` only, 50 ids) and
.../graph/api/group-delta and .../graph/delta-query-groups (`members@delta`, removed members with `@removed`,
one group over several items). The integration tests (tests/integration/test_entra_delta.py) run the whole read
against the loopback fake of Graph.
"""
from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from reconciler.directory.delta import SearchState, SyncState, TokenRefused
from reconciler.directory.entra.delta import (
    FromRecords, _kept_link, delta_refusal, group_changes, merged, record_of, spec_of, user_changes)
from reconciler.directory.entra.graph import GraphClient
from reconciler.directory.entra.source import GraphSource
from reconciler.errors import DirectoryError
from reconciler.policy import load_policy

APP = "11111111-2222-3333-4444-555555555555"
SECRET = "Kq3~unit-not-a-real-secret.789"
GRAPH = "https://graph.example.test"
USER, GROUP, DEVICE = "#microsoft.graph.user", "#microsoft.graph.group", "#microsoft.graph.device"


def directory(tmp_path, users: str = "{}", tail: str = "", mapping: str = ""):
    (tmp_path / "policy.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        directories:
          cloud:
            kind: entra-id
            tenant: contoso.onmicrosoft.com
            client_id: {APP}
            client_secret: '${{GRAPH_SECRET}}'
            endpoints: {{graph: '{GRAPH}'}}
            users: {users}
        """) + tail + mapping)
    return load_policy(tmp_path / "policy.yaml").directories[0]


def uid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def user(n: int, **properties) -> dict:
    return {"id": uid(n), "accountEnabled": True, "displayName": f"Person {n}", "mail": f"p{n}@contoso.com",
            "userPrincipalName": f"p{n}@contoso.com", "userType": "Member", **properties}


# ── what a delta read asks, and when it cannot be one ───────────────────────────────────────────

def test_the_delta_selects_what_the_full_read_selects_and_what_the_filter_reads(tmp_path):
    spec = spec_of(directory(tmp_path, users="{filter: \"department eq 'Sales' and usertype eq 'Member'\"}"))
    assert spec.user_select == ["accountEnabled", "department", "displayName", "id", "mail", "onPremisesImmutableId",
                                "userPrincipalName", "userType"]  # Graph's spelling, whatever the filter's
    assert spec.refusal is None and spec.users_match(user(1, department="sales"))  # case-insensitive, as Graph
    assert not spec.users_match(user(1, department="Sales", userType="Guest"))
    assert spec.groups_match is None


def test_the_scope_changes_with_what_the_read_asks(tmp_path):
    plain = spec_of(directory(tmp_path)).scope
    assert spec_of(directory(tmp_path)).scope == plain
    assert spec_of(directory(tmp_path, mapping="mapping: {attributes: {dept: '{department}'}}\n")).scope != plain
    assert spec_of(directory(tmp_path, users="{member_of: [Key Owners]}")).scope != plain
    assert spec_of(directory(tmp_path, users="{filter: \"userType eq 'Guest'\"}")).scope != plain
    teams = spec_of(directory(tmp_path, tail="    groups: {}\n"))
    assert teams.scope != plain and teams.group_select == ["displayName", "id", "securityEnabled"]


@pytest.mark.parametrize("users, tail, words", [
    ("{filter: 'memberOf/$count eq 0'}", "", "users.filter 'memberOf/$count eq 0' cannot be evaluated on the changes "
                                             "Graph reports (a $count segment is evaluated by Graph only)"),
    ("{filter: \"assignedLicenses/any(x: x/skuId eq 1)\"}", "", "users.filter reads assignedLicenses, which a delta "
                                                                 "read does not follow"),
    ("{}", "    groups: {filter: \"resourceProvisioningOptions/any(x: x eq 'Team')\"}\n",
     "groups.filter reads resourceProvisioningOptions, which a delta read does not follow"),
])
def test_a_filter_the_delta_cannot_evaluate_is_named(tmp_path, users, tail, words):
    refusal = delta_refusal(directory(tmp_path, users=users, tail=tail))
    assert refusal is not None and refusal.startswith(words)
    assert refusal.endswith("Graph's delta queries filter by object id only, so every read of this directory is a "
                            "full one")


def test_the_default_filters_can_be_followed(tmp_path):
    assert delta_refusal(directory(tmp_path, tail="    groups: {}\n")) is None
    assert delta_refusal(directory(tmp_path, users="{filter: \"onPremisesExtensionAttributes/extensionAttribute1 eq "
                                                   "'x' and proxyAddresses/any(p: startswith(p, 'smtp:'))\"}")) is None


# ── records ─────────────────────────────────────────────────────────────────────────────────────

def test_a_record_keeps_properties_and_a_null_in_a_change_clears_one():
    kept = record_of({"id": "a", "mail": None, "displayName": "A", "@odata.type": USER, "members@delta": []})
    assert kept == {"id": "a", "displayName": "A"}
    assert merged({**kept, "mail": "a@x"}, {"id": "a", "mail": None, "jobTitle": "Boss", "@odata.etag": "1"}) == \
        {"id": "a", "displayName": "A", "jobTitle": "Boss"}


# ── applying a delta round (a stub client with canned pages) ────────────────────────────────────

class Round:
    def __init__(self, pages: list[list[dict]], link: str):
        self.pages, self.link_after, self.link = pages, link, None

    def __iter__(self):
        yield from self.pages
        self.link = self.link_after


class Client:
    """Answers delta rounds with canned pages: `rounds` for kept links, `whole` for `$filter=id eq` rounds."""

    def __init__(self, rounds: dict[str, list[list[dict]]], whole: dict[str, dict] | None = None):
        self.rounds, self.whole = rounds, whole or {}
        self.asked: list[tuple[str, dict | None, bool, bool]] = []
        self.root = GRAPH

        class D:
            name = "cloud"
        self.directory = D()

    def delta_round(self, url, what, permission, params=None, *, minimal=False, kept=False):
        self.asked.append((url, params, minimal, kept))
        if params and "$filter" in params:
            ids = [part.split("'")[1] for part in params["$filter"].split(" or ")]
            items = []
            for i in ids:
                if i in self.whole:
                    found = self.whole[i]
                    items += found if isinstance(found, list) else [found]
            return Round([items], f"{url}?$deltatoken=whole")
        return Round(self.rounds[url], url + "-next")

    def _error(self, where, cause):
        return DirectoryError(f"directory cloud: {where}: {cause}")


def records(*users: dict) -> dict[str, dict]:
    return {u["id"].lower(): record_of(u) for u in users}


def test_removed_changed_and_partial_items_are_applied_to_the_kept_records(tmp_path):
    spec = spec_of(directory(tmp_path))
    kept = records(user(1), user(2), user(3), user(4))
    client = Client({"L": [
        [{"id": uid(1), "@removed": {"reason": "changed"}},  # soft-deleted
         {"id": uid(2), "displayName": "Renamed", "mail": None},  # changed properties only
         {"id": uid(3), "accountEnabled": False}],
        [{"id": uid(4), "userType": "Guest"},  # out of users.filter
         user(5, onPremisesImmutableId=None),  # new, whole: every selected property, unset ones as null
         {"id": uid(6), "userType": "Member"},  # not kept, partial: read whole
         {"id": uid(7), "displayName": "A guest renamed"},  # not kept, partial, still a guest
         {"id": uid(2), "displayName": "Renamed"}],  # a replay
    ]}, whole={uid(6): user(6), uid(7): user(7, userType="Guest")})
    delta = user_changes(client, "L", kept, spec)
    assert client.asked[0] == ("L", None, True, True)  # the kept link as is, minimal, refusable
    assert client.asked[1][1]["$filter"] == f"id eq '{uid(6)}' or id eq '{uid(7)}'"
    assert client.asked[1][1]["$select"] == ",".join(spec.user_select)
    assert delta.token == "L-next"
    result, touched = delta.applied_to(kept)
    assert sorted(result) == [uid(2), uid(3), uid(5), uid(6)]
    assert result[uid(2)]["displayName"] == "Renamed" and "mail" not in result[uid(2)]
    assert result[uid(3)]["accountEnabled"] is False
    assert touched == 6  # 1 and 4 left, 2 and 3 changed, 5 and 6 came


def test_objects_not_kept_are_read_whole_fifty_at_a_time(tmp_path):
    spec = spec_of(directory(tmp_path))
    changed = [{"id": uid(n), "displayName": "x"} for n in range(120)]
    client = Client({"L": [changed]}, whole={uid(n): user(n) for n in range(0, 120, 2)})
    delta = user_changes(client, "L", {}, spec)
    filters = [params["$filter"] for _, params, _, _ in client.asked[1:]]
    assert [f.count("id eq") for f in filters] == [50, 50, 20]
    assert sorted(delta.changed) == sorted(uid(n) for n in range(0, 120, 2))  # the others are gone
    assert len(delta.removed) == 60


def test_an_item_without_id_aborts(tmp_path):
    with pytest.raises(DirectoryError, match="Graph returned an object without id in a delta"):
        user_changes(Client({"L": [[{"displayName": "who?"}]]}), "L", {}, spec_of(directory(tmp_path)))


def group(n: int, *members: tuple[str, str], **properties) -> dict:
    return {"id": uid(900 + n), "displayName": f"Team {n}", "securityEnabled": True,
            "members": [{"@odata.type": kind, "id": object_id} for kind, object_id in members], **properties}


def test_members_delta_adds_and_removes_members_of_kept_groups(tmp_path):
    spec = spec_of(directory(tmp_path, tail="    groups: {}\n"))
    kept = {uid(901): group(1, (USER, uid(1)), (USER, uid(2)), (GROUP, uid(902)))}  # as a full read keeps it
    client = Client({"G": [[
        {"id": uid(901), "members@delta": [{"@odata.type": USER, "id": uid(1), "@removed": {"reason": "deleted"}},
                                           {"@odata.type": USER, "id": uid(3)}]},
        {"id": uid(901), "displayName": "Team One", "members@delta": [{"@odata.type": DEVICE, "id": uid(77)},
                                                                      {"@odata.type": USER, "id": uid(4)}]},
    ]]})
    delta = group_changes(client, "G", kept, spec)
    result, touched = delta.applied_to(kept)
    assert touched == 1 and result[uid(901)]["displayName"] == "Team One"
    assert [m["id"] for m in result[uid(901)]["members"]] == [uid(2), uid(3), uid(4), uid(902)]  # no device


def test_a_group_not_kept_is_read_whole_with_its_members_over_several_items(tmp_path):
    spec = spec_of(directory(tmp_path, tail="    groups: {}\n"))
    client = Client({"G": [[{"id": uid(905), "securityEnabled": True},  # was a mail list: not kept
                            {"id": uid(906), "displayName": "renamed"},  # not kept, and still not a security group
                            {"id": uid(907), "@removed": {"reason": "deleted"}}]]},
                    whole={uid(905): [{"id": uid(905), "displayName": "Team 5", "securityEnabled": True,
                                       "members@delta": [{"@odata.type": USER, "id": uid(1)}]},
                                      {"id": uid(905), "displayName": "Team 5", "securityEnabled": True,
                                       "members@delta": [{"@odata.type": USER, "id": uid(2)}]}],
                           uid(906): {"id": uid(906), "displayName": "renamed", "securityEnabled": False}})
    delta = group_changes(client, "G", {}, spec)
    assert client.asked[1][1]["$select"] == "displayName,id,securityEnabled,members"
    assert list(delta.changed) == [uid(905)]
    assert [m["id"] for m in delta.changed[uid(905)]["members"]] == [uid(1), uid(2)]
    assert delta.removed == {uid(906), uid(907)}


def test_a_kept_link_of_another_endpoint_or_none_is_refused(tmp_path):
    client = GraphClient(directory(tmp_path), tokens=Tokens())
    state = SyncState("cloud", "graph-delta", "t", "s", "v", "2026-11-30T12:00:00Z",
                      {"users": SearchState("https://elsewhere.example/v1.0/users/delta?$deltatoken=x")})
    with pytest.raises(TokenRefused, match="the kept delta link for users is not one of https://graph.example.test's"):
        _kept_link(client, state, "users")
    with pytest.raises(TokenRefused, match="the kept state has no delta link for groups"):
        _kept_link(client, state, "groups")
    state.searches["users"] = SearchState(f"{GRAPH}/v1.0/groups/delta?$deltatoken=x")
    with pytest.raises(TokenRefused):
        _kept_link(client, state, "users")


def test_the_read_from_records_answers_as_graph_would(tmp_path):
    class Live:
        source = GRAPH

        def group(self, ref):
            return {"id": uid(900), "displayName": ref}

        def transitive_user_ids(self, group):
            return {uid(1)}

    d = directory(tmp_path, users="{member_of: [Key Owners]}", tail="    groups: {}\n")
    reader = FromRecords(Live(), records(user(2), user(1, department="Sales")),
                         {uid(901): {**record_of(group(1)), "members": [{"@odata.type": USER, "id": uid(1)}]}})
    read = GraphSource(d)._read(reader)
    assert [e.dn for e in read.users] == ["p1@contoso.com"] and read.entries_read == 2
    assert [o.dn for o in read.out_of_scope] == ["p2@contoso.com"]
    assert read.users[0].groups == {f"groups/{uid(901)}"}
    assert list(read.groups.values())[0].members == {"p1@contoso.com"}


# ── a round of delta pages over HTTP (httpx's MockTransport) ────────────────────────────────────

class Tokens:
    secrets = [SECRET]

    def token(self):
        return "eyJhbGciOiJub25lIn0.eyJ0aWQiOiJ0In0.sig"

    def renew(self):
        return self.token()

    def close(self):
        pass


def client_for(tmp_path, answers: list) -> tuple[GraphClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, body, *headers = answers.pop(0)
        return httpx.Response(status, json=body, headers=headers[0] if headers else None)

    d = directory(tmp_path)
    return GraphClient(d, tokens=Tokens(), transport=httpx.MockTransport(answer), sleep=lambda s: None), seen


def error(code: str, message: str = "no") -> dict:
    return {"error": {"code": code, "message": message, "innerError": {"request-id": "r1"}}}


def pages(client, url, kept=True, minimal=True) -> tuple[list, str | None]:
    rnd = client.delta_round(url, "reading /users/delta (the changes since the last read)", "User.Read.All",
                             minimal=minimal, kept=kept)
    return list(rnd), rnd.link


def test_a_round_follows_next_links_to_the_delta_link_asking_for_changed_properties_only(tmp_path):
    client, seen = client_for(tmp_path, [
        (200, {"value": [{"id": "a"}], "@odata.nextLink": f"{GRAPH}/v1.0/users/delta?$skiptoken=1"}),
        (200, {"value": [], "@odata.nextLink": f"{GRAPH}/v1.0/users/delta?$skiptoken=2"}),  # empty, still more
        (200, {"value": [{"id": "b"}], "@odata.deltaLink": f"{GRAPH}/v1.0/users/delta?$deltatoken=next"}),
    ])
    found, link = pages(client, f"{GRAPH}/v1.0/users/delta?$deltatoken=kept")
    assert found == [[{"id": "a"}], [], [{"id": "b"}]] and link == f"{GRAPH}/v1.0/users/delta?$deltatoken=next"
    assert all(r.headers["prefer"] == "return=minimal" for r in seen)
    assert str(seen[0].url) == f"{GRAPH}/v1.0/users/delta?$deltatoken=kept"


@pytest.mark.parametrize("answers, words", [
    ([(410, error("resyncRequired"), {"Location": f"{GRAPH}/v1.0/users/delta?$deltatoken="})],
     "410 Gone, resyncRequired; Graph asks for a full synchronization"),
    ([(400, error("syncStateNotFound"))], "400 Bad Request, syncStateNotFound"),
    ([(400, error("Request_BadRequest"))], "400 Bad Request, Request_BadRequest"),  # a token Graph cannot read
    ([(404, error("ResourceNotFound"))], "404 Not Found"),
    ([(200, {"value": [], "@odata.nextLink": f"{GRAPH}/v1.0/users/delta?$skiptoken=1"}),
      (410, error("syncStateNotFound"))], "410 Gone"),  # a reset in the middle of the round
])
def test_a_refused_link_is_token_refused(tmp_path, answers, words):
    client, _ = client_for(tmp_path, answers)
    with pytest.raises(TokenRefused) as refused:
        pages(client, f"{GRAPH}/v1.0/users/delta?$deltatoken=kept")
    assert str(refused.value).startswith(words)


@pytest.mark.parametrize("answers, kept, words", [
    ([(200, {"value": [], "@odata.nextLink": f"{GRAPH}/v1.0/users/delta?$skiptoken=1"}),
      (400, error("Request_BadRequest", f"bad token {SECRET} Bearer eyJabcdefghijk.eyJabcdefghijk.sig"))], True,
     "page 2: 400 Request_BadRequest: bad token *** Bearer ***"),
    ([(400, error("Request_BadRequest"))], False, "page 1: 400 Request_BadRequest"),  # not a kept link
    ([(200, {"value": []})], True, "page 1: the page has neither @odata.nextLink nor @odata.deltaLink"),
    ([(200, {"value": [], "@odata.deltaLink": "https://elsewhere.example/v1.0/users/delta?$deltatoken=x"})], True,
     "@odata.deltaLink points to https://elsewhere.example, not to https://graph.example.test"),
    ([(200, {"value": [], "@odata.deltaLink": 7})], True, "@odata.deltaLink is not a URL"),
    ([(200, {"@odata.deltaLink": f"{GRAPH}/v1.0/users/delta?$deltatoken=x"})], True, "the page has no value list"),
])
def test_a_failed_or_broken_round_is_a_directory_error(tmp_path, answers, kept, words):
    client, _ = client_for(tmp_path, answers)
    with pytest.raises(DirectoryError) as failed:
        pages(client, f"{GRAPH}/v1.0/users/delta?$deltatoken=kept", kept=kept)
    message = str(failed.value)
    assert message.startswith("directory cloud: reading /users/delta (the changes since the last read), ")
    assert words in message and SECRET not in message and "eyJabcdefghijk" not in message


def test_the_latest_link_is_asked_with_the_select(tmp_path):
    from reconciler.directory.entra.delta import latest_link

    client, seen = client_for(tmp_path, [
        (200, {"value": [], "@odata.deltaLink": f"{GRAPH}/v1.0/users/delta?$deltatoken=now"})])
    assert latest_link(client, "users", ["id", "mail"], "User.Read.All") == f"{GRAPH}/v1.0/users/delta?$deltatoken=now"
    assert dict(seen[0].url.params) == {"$select": "id,mail", "$deltatoken": "latest"} and "prefer" not in seen[0].headers
    client, _ = client_for(tmp_path, [(410, error("resyncRequired"))])
    with pytest.raises(DirectoryError, match="asking /users/delta for the latest delta link: Graph refused it"):
        latest_link(client, "users", ["id"], "User.Read.All")


# ── a snapshot ──────────────────────────────────────────────────────────────────────────────────

def test_a_snapshot_is_always_read_in_full(tmp_path):
    (tmp_path / "cloud.json").write_text(json.dumps({"users": [user(1), user(2, userType="Guest")]}))
    (tmp_path / "policy.yaml").write_text(textwrap.dedent("""\
        version: 1
        directories:
          cloud: {kind: entra-id, snapshot: cloud.json, users: {}}
        """))
    d = load_policy(tmp_path / "policy.yaml").directories[0]
    now = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
    read, state, note = GraphSource(d).read_with_state(None, "no delta state is kept yet", timedelta(days=1), now)
    assert (note.kind, note.reason, note.changed) == ("full", "a snapshot is always read in full", None)
    assert [e.dn for e in read.users] == ["p1@contoso.com"] and read == GraphSource(d).read()
    assert state.searches == {} and state.full_read_at == "2026-11-30T12:00:00Z" and state.method == "snapshot"
    again, _, note = GraphSource(d).read_with_state(state, "", timedelta(days=1), now)
    assert note.kind == "full" and again == read
