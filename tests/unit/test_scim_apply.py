"""Applying plan changes to SCIM: the rules checked on a model before any request, the operations each change
becomes, and how the executor falls back (PATCH → PUT) and reports a partial apply (Bulk results)."""
from __future__ import annotations

import json

import httpx
import pytest

from reconciler.model import Written, Change
from reconciler.store.scim.apply import ChangeRefused, plan_operations
from reconciler.store.scim.client import ScimClient
from reconciler.store.scim.execute import ApplyStopped, Executor
from reconciler.store.scim.state import Notes, UserNote
from reconciler.store.scim.view import build_snapshot

USERS = [
    {"id": "u1", "externalId": "corp:a1", "userName": "ada@corp.example.com", "active": True},
    {"id": "u2", "externalId": "corp:a2", "userName": "bob@corp.example.com", "active": True},
    {"id": "u3", "userName": "hand@corp.example.com"},
]
GROUPS = [
    {"id": "g1", "externalId": "Org", "displayName": "Org", "members": [{"value": "u1"}, {"value": "u2"}]},
    {"id": "g2", "externalId": "Org/Sales", "displayName": "Sales", "members": [{"value": "u1"}]},
]
NOTES = Notes(users={"corp:a1": UserNote("Org", ("corp:a1",)), "corp:a2": UserNote("Org", ("corp:a2",))},
              teams={"Org": None, "Org/Sales": "Org"})


def snapshot():
    return build_snapshot(USERS, GROUPS, NOTES)


def user_fields(email: str, team: str | None = "Org", **extra) -> dict:
    return {"email": email, "display_name": email.split("@")[0].title(), "attributes": {}, "team": team,
            "links": [], "status": "active", **extra}


def create(key: str, email: str, team: str | None = "Org", **extra) -> Change:
    return Change("create", "user", key, "new", None, user_fields(email, team, links=[key], **extra))


def ops(steps) -> list[tuple]:
    return [(op.action, op.key, op.team) for step in steps for op in step.ops if not op.action.startswith(("note_", "forget_"))]


# ── the model's rules: refused before the first request ──

@pytest.mark.parametrize("change, reason", [
    (Change("update", "user", "corp:zz", "", {}, {"display_name": "X"}), "user corp:zz is not in the store"),
    (Change("update", "user", "scim:u3", "", {}, {"display_name": "X"}), "created in the application and is not managed"),
    (create("corp:a1", "ada@corp.example.com"), "a user with key corp:a1 already exists"),
    (create("corp:n1", "new@corp.example.com", team="Nowhere"), "team Nowhere does not exist"),
    (Change("adopt", "user", "corp:n1", "", {"key": "corp:a2"}, user_fields("bob@corp.example.com")),
     "the user to adopt, corp:a2, is already managed"),
    (Change("delete", "team", "Org", "", {}, None), "3 user(s) still have it as their team"),
    (Change("delete", "team", "Org/Sales", "", {}, None), None),
    (Change("add", "membership", "corp:a2|Org/Nope", "", None, {"user": "corp:a2", "team": "Org/Nope"}),
     "team Org/Nope does not exist"),
    (Change("remove", "membership", "corp:a2|Org/Sales", "", {"user": "corp:a2", "team": "Org/Sales"}, None),
     "user corp:a2 is not a member of team Org/Sales"),
    (create("corp:n1", "new@corp.example.com", attributes={"phone": "1"}), "phone has no place in a SCIM User"),
    (create("corp:n1", "new@corp.example.com", attributes={"manager": "nobody@corp.example.com"}),
     "map manager to the manager's email address"),
])
def test_a_change_the_store_cannot_take_is_refused_before_anything_is_sent(change, reason):
    fine = create("corp:n0", "fine@corp.example.com")
    if reason is None:
        plan_operations(snapshot(), [fine, change])
        return
    with pytest.raises(ChangeRefused) as refused:
        plan_operations(snapshot(), [fine, change])  # the first change is fine; the second stops the whole plan
    assert refused.value.change is change and reason in refused.value.reason


def test_a_deleted_team_that_still_has_children_is_refused():
    change = Change("update", "team", "Org/Sales", "", {"parent": "Org"}, {"parent": None})
    delete = Change("delete", "team", "Org", "", {}, None)
    move_away = [Change("move", "user", k, "", {"team": "Org"}, {"team": "Org/Sales"}) for k in ("corp:a1", "corp:a2")]
    plan_operations(snapshot(), [change, *move_away, delete])  # the child moved to the top first: fine
    with pytest.raises(ChangeRefused, match="team Org/Sales still has it as its parent"):
        plan_operations(snapshot(), [*move_away, delete])


def test_a_manager_created_later_in_the_same_plan_is_accepted():
    plan_operations(snapshot(), [create("corp:a0", "emp@corp.example.com", attributes={"manager": "boss@corp.example.com"}),
                                 create("corp:b9", "boss@corp.example.com")])


# ── what each change becomes ──

def test_a_new_user_is_created_then_put_in_their_teams_group():
    steps = plan_operations(snapshot(), [create("corp:n1", "new@corp.example.com")])
    assert [op.action for op in steps[0].ops] == ["create_user", "note_user", "add_member"]
    assert steps[0].ops[1].team == "Org" and steps[0].ops[1].links == ("corp:n1",)


def test_groups_hold_the_team_and_the_memberships_so_overlaps_send_nothing():
    add = Change("add", "membership", "corp:a2|Org", "", None, {"user": "corp:a2", "team": "Org"})
    move = Change("move", "user", "corp:a2", "", {"team": "Org"}, {"team": "Org/Sales"})
    remove = Change("remove", "membership", "corp:a2|Org", "", {"user": "corp:a2", "team": "Org"}, None)
    steps = plan_operations(snapshot(), [add, move, remove])
    # add: already in Org as its team; move: into Sales, stays in Org (a membership now); remove: out of Org
    assert [ops([s]) for s in steps] == [[], [("add_member", "corp:a2", "Org/Sales")], [("remove_member", "corp:a2", "Org")]]


def test_a_deleted_user_leaves_its_groups_first():
    steps = plan_operations(snapshot(), [Change("delete", "user", "corp:a1", "", {}, None)])
    assert ops(steps) == [("remove_member", "corp:a1", "Org"), ("remove_member", "corp:a1", "Org/Sales"),
                          ("delete_user", "corp:a1", None)]


def test_an_adoption_keeps_the_scim_user_and_takes_its_key():
    adopt = Change("adopt", "user", "corp:h1", "", {"key": "scim:u3"}, user_fields("hand@corp.example.com", links=["corp:h1"]))
    [step] = plan_operations(snapshot(), [adopt])
    assert step.ops[0].action == "update_user" and step.ops[0].adopt_from == "scim:u3"
    assert ops([step])[-1] == ("add_member", "corp:h1", "Org")


# ── carrying it out ──

class FakeServer:
    """Answers as a SCIM server would, recording requests; PATCH may be announced and then refused with 501."""

    def __init__(self, patch: bool = True, patch_works: bool = True, bulk: bool = False, bulk_fails_at: int | None = None,
                 bulk_max: int = 1000):
        self.requests: list[tuple[str, str, dict | None]] = []
        self.config = {"patch": {"supported": patch}, "filter": {"supported": True},
                       "bulk": {"supported": bulk, "maxOperations": bulk_max if bulk else 0, "maxPayloadSize": 1048576}}
        self.patch_works, self.bulk_fails_at = patch_works, bulk_fails_at

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v2/")
        body = json.loads(request.content) if request.content else None
        if path == "ServiceProviderConfig":
            return httpx.Response(200, json=self.config)
        self.requests.append((request.method, path, body))
        if request.method == "PATCH" and not self.patch_works:
            return httpx.Response(501, json={"status": "501", "detail": "PATCH is not supported"})
        if request.method == "POST" and path == "Bulk":
            return httpx.Response(200, json={"Operations": self._bulk(body["Operations"])})
        if request.method == "POST":
            return httpx.Response(201, json={**body, "id": f"new-{body['externalId']}"})
        return httpx.Response(200, json={**(body or {}), "id": path.rsplit("/", 1)[-1]})

    def _bulk(self, operations: list[dict]) -> list[dict]:
        results = []
        for index, operation in enumerate(operations):
            if index == self.bulk_fails_at:
                results.append({"method": operation["method"], "status": "409",
                                "response": {"status": "409", "scimType": "uniqueness", "detail": "userName is taken"}})
                break
            created = f"https://x/v2{operation['path']}/new-{index}" if operation["method"] == "POST" else None
            results.append({"method": operation["method"], "bulkId": operation.get("bulkId"), "status": "201" if created else "200",
                            **({"location": created} if created else {})})
        return results


def run(server: FakeServer, changes: list[Change]) -> Executor:
    client = ScimClient("https://scim.example.com/v2", "t", transport=httpx.MockTransport(server), sleep=lambda s: None)
    state = snapshot()
    executor = Executor(client, state)
    executor.run(plan_operations(state, changes))
    return executor


def test_patch_announced_but_not_implemented_falls_back_to_put():
    server = FakeServer(patch=True, patch_works=False)
    rename = Change("update", "user", "corp:a1", "", {"display_name": "Ada"}, {"display_name": "Ada Lovelace"})
    move = Change("move", "user", "corp:a2", "", {"team": "Org"}, {"team": "Org/Sales"})
    run(server, [rename, move])
    assert [(m, p) for m, p, _ in server.requests] == [
        ("PATCH", "Users/u1"), ("PUT", "Users/u1"), ("PUT", "Groups/g2"), ("PUT", "Groups/g1")]
    put_sales = server.requests[2][2]
    assert {m["value"] for m in put_sales["members"]} == {"u1", "u2"} and put_sales["externalId"] == "Org/Sales"


def test_without_patch_a_user_put_keeps_what_the_application_set():
    server = FakeServer(patch=False)
    users = [{**USERS[0], "phoneNumbers": [{"value": "+1 555"}], "meta": {"version": "1"}}, *USERS[1:]]
    client = ScimClient("https://scim.example.com/v2", "t", transport=httpx.MockTransport(server), sleep=lambda s: None)
    state = build_snapshot(users, GROUPS, NOTES)
    Executor(client, state).run(plan_operations(state, [
        Change("deactivate", "user", "corp:a1", "", {"status": "active"}, {"status": "deactivated"})]))
    [(method, path, body)] = server.requests
    assert (method, path, body["active"], body["phoneNumbers"]) == ("PUT", "Users/u1", False, [{"value": "+1 555"}])
    assert "meta" not in body


def test_bulk_sends_one_request_and_references_new_resources_by_bulk_id():
    server = FakeServer(bulk=True)
    team = Change("create", "team", "Org/New", "", None, {"name": "New", "parent": "Org"})
    executor = run(server, [team, create("corp:n1", "new@corp.example.com", team="Org/New")])
    [(method, path, body)] = server.requests
    assert (method, path, body["failOnErrors"]) == ("POST", "Bulk", 1)
    member_add = body["Operations"][2]
    assert member_add["path"] == f"/Groups/bulkId:{body['Operations'][0]['bulkId']}"
    assert member_add["data"]["Operations"][0]["value"] == [{"value": f"bulkId:{body['Operations'][1]['bulkId']}", "type": "User"}]
    assert executor.user_ids["corp:n1"] == "new-1" and executor.group_ids["Org/New"] == "new-0"
    assert executor.group_members["new-0"] == {"new-1"}
    # the note remembers what was written, for the three-way comparison of the next plan
    assert executor.notes.users["corp:n1"] == UserNote("Org/New", ("corp:n1",), Written("new@corp.example.com", "New", ()))


def test_a_failed_bulk_operation_reports_the_changes_done_before_it():
    server = FakeServer(bulk=True, bulk_fails_at=2)  # operations: n1 create, n1 add to Org, n2 create (fails)
    with pytest.raises(ApplyStopped) as stopped:
        run(server, [create("corp:n1", "n1@corp.example.com"), create("corp:n2", "n2@corp.example.com"),
                     create("corp:n3", "n3@corp.example.com")])
    assert (stopped.value.done, stopped.value.total, stopped.value.failed.key) == (1, 3, "corp:n2")
    assert "HTTP 409 (uniqueness): userName is taken" in stopped.value.error.message
    assert "creating user corp:n2" in stopped.value.error.message


def test_bulk_requests_stay_within_max_operations_and_an_adoption_survives_the_split():
    server = FakeServer(bulk=True, bulk_max=3)
    adopt = Change("adopt", "user", "corp:h1", "", {"key": "scim:u3"}, user_fields("hand@corp.example.com", links=["corp:h1"]))
    executor = run(server, [create("corp:n1", "n1@corp.example.com"), adopt, create("corp:n2", "n2@corp.example.com")])
    sizes = [len(body["Operations"]) for method, path, body in server.requests if path == "Bulk"]
    assert sizes == [2, 2, 2] and all(size <= 3 for size in sizes)
    adoption = server.requests[1][2]["Operations"]
    assert adoption[0]["path"] == "/Users/u3" and adoption[1]["data"]["Operations"][0]["value"][0]["value"] == "u3"
    assert executor.user_ids["corp:h1"] == "u3" and "scim:u3" not in executor.user_ids
