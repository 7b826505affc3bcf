"""Where RFC 7644 lets SCIM servers differ, the store asks for no more than the server gives (issue 12).

Each test runs the client or the executor against a scripted server that
differs the way a real one does (SCIMMY, tests/servers/scimmy/, differs in the
first three) and asserts the requests sent:
- listing: a page smaller than `count` (advance by what came back, stop at
  totalResults or an empty page); a GET that ignores startIndex (list by POST
  /.search instead, §3.4.3), and without /.search the listing is still
  refused rather than taken short;
- Bulk: a path that names a group by bulkId (§3.7.2 defines bulkIds in data):
  after the first refusal, real ids, and a request cut where the id is not
  known yet; a server that resolves such paths keeps getting one request;
- PATCH of an extension attribute's path refused as invalidPath (§3.5.2):
  PUT of the whole user, one by one and in Bulk, for the rest of the apply.
"""
from __future__ import annotations

import itertools
import json
import re
from typing import Any

import httpx
import pytest

from reconciler.model import Change
from reconciler.store.scim.apply import plan_operations
from reconciler.store.scim.client import ScimClient, ScimHttpError
from reconciler.store.scim.execute import ApplyStopped, Executor
from reconciler.store.scim.mapping import ENTERPRISE_USER
from reconciler.store.scim.state import Notes, UserNote
from reconciler.store.scim.view import build_snapshot

BASE = "https://scim.example.com/v2"
DEPARTMENT = f"{ENTERPRISE_USER}:department"


def scim(handler) -> ScimClient:
    return ScimClient(BASE, "t0ken", transport=httpx.MockTransport(handler), sleep=lambda s: None)


# ───────────────────────────── listing ─────────────────────────────


class Lister:
    """Lists `total` users (it may claim `claims` of them) in pages of at most `cap`, recording what was asked.

    `deaf_get`: a GET answers the first `cap` whatever its startIndex (saying startIndex 1), as SCIMMY on
    express 5 does; `search`: POST /Users/.search pages as asked (else 404).
    """

    def __init__(self, total: int, cap: int, claims: int | None = None, deaf_get: bool = False, search: bool = True):
        self.users = [{"id": f"u{i:03}", "userName": f"u{i}@corp.example.com"} for i in range(total)]
        self.groups = [{"id": "g1", "displayName": "Org"}]
        self.cap, self.claims, self.deaf_get, self.search = cap, claims, deaf_get, search
        self.asked: list[tuple[str, str, int, int]] = []  # (method, endpoint, startIndex, count)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v2/")
        if path == "ServiceProviderConfig":
            return httpx.Response(200, json={"filter": {"supported": True}})
        endpoint = path.removesuffix("/.search")
        if request.method == "POST":
            if not self.search:
                return httpx.Response(404, json={"status": "404", "detail": "Endpoint Not Found"})
            body = json.loads(request.content)
            assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]
            start, count = body["startIndex"], body["count"]
        else:
            start, count = int(request.url.params["startIndex"]), int(request.url.params["count"])
        self.asked.append((request.method, endpoint, start, count))
        every = self.users if endpoint == "Users" else self.groups
        if self.deaf_get and request.method == "GET":
            start = 1
        page = every[start - 1:start - 1 + min(count, self.cap)]
        claims = self.claims if self.claims is not None and endpoint == "Users" else len(every)
        return httpx.Response(200, json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                                         "totalResults": claims, "startIndex": start, "itemsPerPage": len(page),
                                         "Resources": page})


def test_a_page_smaller_than_count_advances_startindex_by_what_came_back():
    server = Lister(total=7, cap=3)
    listed = scim(server).list_all("Users", "listing users (GET /Users)")
    assert [u["id"] for u in listed] == [f"u{i:03}" for i in range(7)]
    # count 200 asked each time, 3 came back each time: the next page starts after them, none after the 7th
    assert server.asked == [("GET", "Users", 1, 200), ("GET", "Users", 4, 200), ("GET", "Users", 7, 200)]


def test_an_empty_page_ends_the_listing_and_a_short_listing_is_refused_not_taken():
    server = Lister(total=5, cap=3, claims=10)  # says 10, has 5
    with pytest.raises(ScimHttpError, match="reported 10 resources but 5 distinct ones came back page by page"):
        scim(server).list_all("Users", "listing users (GET /Users)")
    starts = [start for _, _, start, _ in server.asked]
    assert starts == [1, 4, 6, 1, 4, 6]  # read twice, each time ending at the empty page


def test_a_get_that_ignores_startindex_is_followed_by_post_search_for_the_rest_of_the_client():
    server = Lister(total=45, cap=20, deaf_get=True)
    client = scim(server)
    listed = client.list_all("Users", "listing users (GET /Users)")
    assert sorted(u["id"] for u in listed) == [f"u{i:03}" for i in range(45)]
    assert server.asked == [
        ("GET", "Users", 1, 200),
        ("GET", "Users", 21, 200),  # answered "startIndex 1" and the same 20: the URL's startIndex went unread
        ("POST", "Users", 1, 1),  # does /.search answer?
        ("POST", "Users", 1, 200), ("POST", "Users", 21, 200), ("POST", "Users", 41, 200),  # from the start
    ]
    server.asked.clear()
    assert [g["id"] for g in client.list_all("Groups", "listing groups (GET /Groups)")] == ["g1"]
    assert server.asked == [("POST", "Groups", 1, 200)]  # remembered: no GET tried again


def test_without_search_a_get_that_ignores_startindex_is_still_refused():
    server = Lister(total=45, cap=20, deaf_get=True, search=False)
    with pytest.raises(ScimHttpError, match="reported 45 resources but 20 distinct ones came back page by page"):
        scim(server).list_all("Users", "listing users (GET /Users)")
    assert ("GET", "Users", 21, 200) in server.asked and not [a for a in server.asked if a[0] == "POST"]


# ───────────────────────────── applying ─────────────────────────────

USERS = [
    {"id": f"u{i}", "externalId": f"corp:a{i}", "userName": f"a{i}@corp.example.com", "active": True,
     "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER],
     ENTERPRISE_USER: {"department": "Sales"}, "meta": {"lastModified": "2026-01-01T00:00:00Z"}}
    for i in (1, 2, 3)
]
GROUPS = [{"id": "g1", "externalId": "Org", "displayName": "Org", "members": [{"value": u["id"]} for u in USERS]}]
NOTES = Notes(users={u["externalId"]: UserNote("Org", (u["externalId"],)) for u in USERS}, teams={"Org": None})


class Server:
    """A SCIM server that carries out single requests and Bulk operations on ids it makes, recording requests.

    `bulk_id_paths`: resolves "bulkId:" in an operation's path (else 404, as SCIMMY); `extension_paths`: takes
    PATCH paths into the enterprise extension (else 400 invalidPath); `stops`: honours failOnErrors.
    """

    def __init__(self, bulk: bool = True, bulk_id_paths: bool = True, extension_paths: bool = True,
                 stops: bool = True):
        self.bulk_id_paths, self.extension_paths, self.stops = bulk_id_paths, extension_paths, stops
        self.config = {"patch": {"supported": True}, "filter": {"supported": True},
                       "bulk": {"supported": bulk, "maxOperations": 1000 if bulk else 0, "maxPayloadSize": 1048576}}
        self.requests: list[tuple[str, str, Any]] = []
        self.ids = (f"new{n}" for n in itertools.count(1))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v2/")
        if path == "ServiceProviderConfig":
            return httpx.Response(200, json=self.config)
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, path, body))
        if path == "Bulk":
            return httpx.Response(200, json={"Operations": self._bulk(body["Operations"])})
        status, answer = self._one(request.method, "/" + path, body)
        return httpx.Response(status, json=answer)

    def _one(self, method: str, path: str, data: Any) -> tuple[int, dict]:
        if "bulkId:" in path:
            return 404, {"status": "404", "detail": f"Resource {path.rsplit('/', 1)[1]} not found"}
        if method == "PATCH" and not self.extension_paths and any(
                o.get("path", "").startswith("urn:") for o in data["Operations"]):
            return 400, {"status": "400", "scimType": "invalidPath", "detail": "Invalid path"}
        if method == "POST":
            return 201, {**data, "id": next(self.ids)}
        return 200, {**(data or {}), "id": path.rsplit("/", 1)[1]}

    def _bulk(self, operations: list[dict]) -> list[dict]:
        created: dict[str, str] = {}
        results = []
        for operation in operations:
            text = json.dumps(operation)
            for bulk_id, new_id in created.items():
                text = text.replace(f'"bulkId:{bulk_id}"', f'"{new_id}"')  # in values, always
                if self.bulk_id_paths:
                    text = text.replace(f"/bulkId:{bulk_id}", f"/{new_id}")
            operation = json.loads(text)
            status, answer = self._one(operation["method"], operation["path"], operation.get("data"))
            result = {"method": operation["method"], "status": str(status)}
            if status == 201:
                created[operation["bulkId"]] = answer["id"]
                result.update(bulkId=operation["bulkId"], location=f"https://x/v2{operation['path']}/{answer['id']}")
            elif status >= 400:
                result["response"] = answer
            results.append(result)
            if status >= 400 and self.stops:
                break
        return results

    def bulk_operations(self) -> list[list[tuple[str, str]]]:
        return [[(o["method"], o["path"]) for o in body["Operations"]] for method, path, body in self.requests
                if path == "Bulk"]


def user_fields(email: str, team: str) -> dict:
    return {"email": email, "display_name": email.split("@")[0].title(), "attributes": {}, "team": team,
            "links": [], "status": "active"}


def new_team(key: str) -> Change:
    return Change("create", "team", key, "new", None, {"name": key.rsplit("/", 1)[-1], "parent": "Org"})


def new_user(key: str, email: str, team: str) -> Change:
    return Change("create", "user", key, "new", None, {**user_fields(email, team), "links": [key]})


def department(key: str, value: str) -> Change:
    return Change("update", "user", key, "", {"attributes": {"department": "Sales"}},
                  {"attributes": {"department": value}})


def run(server: Server, changes: list[Change]) -> Executor:
    snapshot = build_snapshot(USERS, GROUPS, NOTES)
    executor = Executor(scim(server), snapshot)
    executor.run(plan_operations(snapshot, changes))
    return executor


TWO_NEW_TEAMS = [new_team("Org/A"), new_user("corp:n1", "n1@corp.example.com", "Org/A"),
                 new_team("Org/B"), new_user("corp:n2", "n2@corp.example.com", "Org/B")]


def test_a_server_that_resolves_bulkids_in_paths_gets_one_request():
    server = Server(bulk_id_paths=True)
    run(server, TWO_NEW_TEAMS)
    [operations] = server.bulk_operations()
    assert operations == [("POST", "/Groups"), ("POST", "/Users"), ("PATCH", "/Groups/bulkId:group1"),
                          ("POST", "/Groups"), ("POST", "/Users"), ("PATCH", "/Groups/bulkId:group3")]


def test_after_a_bulkid_path_is_refused_real_ids_name_the_groups_and_requests_are_cut_where_none_is_known():
    server = Server(bulk_id_paths=False)
    executor = run(server, TWO_NEW_TEAMS)
    assert server.bulk_operations() == [
        # the first request as planned; the server stops at the PATCH whose path names group A by bulkId
        [("POST", "/Groups"), ("POST", "/Users"), ("PATCH", "/Groups/bulkId:group1"),
         ("POST", "/Groups"), ("POST", "/Users"), ("PATCH", "/Groups/bulkId:group3")],
        # sent again from there, group A by the id its POST's answer gave; cut before group B is PATCHed ...
        [("PATCH", "/Groups/new1"), ("POST", "/Groups"), ("POST", "/Users")],
        # ... for B's id comes with that request's answer
        [("PATCH", "/Groups/new3")],
    ]
    second, third = server.requests[1][2]["Operations"], server.requests[2][2]["Operations"]
    assert second[0]["data"]["Operations"][0]["value"] == [{"value": "new2", "type": "User"}]  # the user too
    assert third[0]["data"]["Operations"][0]["value"] == [{"value": "new4", "type": "User"}]
    assert executor.group_ids["Org/A"] == "new1" and executor.group_members["new1"] == {"new2"}
    assert executor.group_members["new3"] == {"new4"} and executor.user_ids["corp:n2"] == "new4"
    assert not executor.bulk_id_paths  # learnt for the rest of the apply


def test_a_refusal_the_server_did_not_stop_at_is_not_sent_again():
    """A server that went on after the refused operation (failOnErrors not honoured) may have done the rest:
    nothing is sent again, the apply stops and says where."""
    server = Server(bulk_id_paths=False, stops=False)
    with pytest.raises(ApplyStopped) as stopped:
        run(server, TWO_NEW_TEAMS)
    assert len(server.bulk_operations()) == 1
    assert (stopped.value.done, stopped.value.failed.key) == (1, "corp:n1")
    assert "HTTP 404" in stopped.value.error.message and "/Groups/bulkId:group1" in stopped.value.error.message


def test_an_extension_path_refused_as_invalidpath_is_written_by_put_for_the_rest_of_the_apply():
    server = Server(bulk=False, extension_paths=False)
    rename = Change("update", "user", "corp:a3", "", {"display_name": "A3"}, {"display_name": "Ada Three"})
    run(server, [department("corp:a1", "Ops"), department("corp:a2", "Legal"), rename])
    assert [(method, path) for method, path, _ in server.requests] == [
        ("PATCH", "Users/u1"),  # refused: 400 invalidPath
        ("PUT", "Users/u1"),
        ("PUT", "Users/u2"),  # learnt: no PATCH with an extension path tried again
        ("PATCH", "Users/u3"),  # a PATCH of core paths only is still a PATCH
    ]
    put = server.requests[1][2]
    assert put[ENTERPRISE_USER] == {"department": "Ops"} and put["userName"] == "a1@corp.example.com"
    assert "meta" not in put and ENTERPRISE_USER in put["schemas"]
    assert server.requests[2][2][ENTERPRISE_USER] == {"department": "Legal"}
    assert server.requests[3][2]["Operations"] == [
        {"op": "replace", "path": "displayName", "value": "Ada Three"},
        {"op": "replace", "path": "name.formatted", "value": "Ada Three"}]


def test_in_bulk_an_extension_path_refused_as_invalidpath_becomes_a_put_of_the_whole_user():
    server = Server(extension_paths=False)
    rename = Change("update", "user", "corp:a3", "", {"display_name": "A3"}, {"display_name": "Ada Three"})
    executor = run(server, [department("corp:a1", "Ops"), department("corp:a2", "Legal"), rename])
    assert server.bulk_operations() == [
        [("PATCH", "/Users/u1"), ("PATCH", "/Users/u2"), ("PATCH", "/Users/u3")],  # u1's refused; the server stops
        [("PUT", "/Users/u1"), ("PUT", "/Users/u2"), ("PATCH", "/Users/u3")],  # again from u1, extension by PUT
    ]
    first_put = server.requests[1][2]["Operations"][0]["data"]
    assert first_put[ENTERPRISE_USER] == {"department": "Ops"} and "meta" not in first_put
    assert executor.user_resources["u2"][ENTERPRISE_USER] == {"department": "Legal"}
    assert not executor.extension_paths


def test_an_invalidpath_on_a_core_path_is_not_papered_over_with_a_put():
    def refuses_everything(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("ServiceProviderConfig"):
            return httpx.Response(200, json={"patch": {"supported": True}})
        assert request.method == "PATCH", "no PUT after a refusal that names no extension path"
        return httpx.Response(400, json={"status": "400", "scimType": "invalidPath", "detail": "no displayName here"})

    snapshot = build_snapshot(USERS, GROUPS, NOTES)
    rename = Change("update", "user", "corp:a3", "", {"display_name": "A3"}, {"display_name": "Ada Three"})
    with pytest.raises(ApplyStopped, match=re.escape("HTTP 400 (invalidPath): no displayName here")):
        Executor(scim(refuses_everything), snapshot).run(plan_operations(snapshot, [rename]))
