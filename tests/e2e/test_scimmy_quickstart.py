"""The quickstart converges on a second, independent SCIM server: SCIMMY (issue 12).

The installed `reconciler` command runs Example Corp (examples/quickstart)
with its store on a SCIMMY server (tests/servers/scimmy/): plan, apply, and
the next plan shows no change, with what the server holds checked through its
own API. SCIMMY answers a Bulk path naming a group by bulkId with 404, and a
GET list with the first 20 whatever startIndex asks: the store learns both on
the first refusal and goes on with real ids and POST /.search. The same
scenarios on scim2-server are tests/integration/test_store_scim.py.
"""
from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.servers.scim import ScimCompany, changes
from tests.servers.scimmy import scimmy_server  # noqa: F401  (a fixture)

pytestmark = pytest.mark.integration

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.fixture
def company(tmp_path, scimmy_server) -> ScimCompany:  # noqa: F811
    return ScimCompany(tmp_path / "company", scimmy_server.url, scimmy_server.token)


def test_the_quickstart_converges_on_scimmy(company, scimmy_server):  # noqa: F811
    first = company.plan_json()
    assert first["summary"] == {"team.create": 15, "user.create": 288}
    started = time.monotonic()
    applied = company.apply()
    seconds = time.monotonic() - started
    assert "Applied" in applied.out  # the words are the renderer's; what was applied is checked on the server

    users, groups = scimmy_server.users(), scimmy_server.groups()
    assert len(users) == 288 and len({u["externalId"] for u in users}) == 288
    assert all(u["externalId"].startswith(("corp:", "emea:")) for u in users)
    assert sorted(g["externalId"] for g in groups) == sorted(c["key"] for c in changes(first, "create", "team"))
    memberships = Counter(m["value"] for g in groups for m in g.get("members") or [])
    assert len(memberships) == 288 and set(memberships.values()) == {1}  # each user in its team, once
    assert set(memberships) == {u["id"] for u in users}
    assert scimmy_server.group("Example Corp/Engineering/Platform")["displayName"] == "Platform"
    tom = scimmy_server.user("tom.baker@corp.example.com")
    assert tom["displayName"] == "Tom <Tommy> Baker" and tom["active"] is True
    assert tom["emails"] == [{"value": "tom.baker@corp.example.com", "type": "work", "primary": True}]
    assert ENTERPRISE in tom["schemas"] and tom[ENTERPRISE]["department"]

    assert company.plan_is_empty()
    again = company.plan_json()
    assert again["summary"] == {} and again["changes"] == []

    # what the server was asked: Bulk requests, no request per user; lists by POST /.search after the first GETs
    asked = scimmy_server.requests()
    bulks = [line for line in asked if line.startswith("POST /scim/v2/Bulk ")]
    assert 2 <= len(bulks) <= 6, bulks
    assert not [line for line in asked if line.startswith("POST /scim/v2/Users ")]
    assert any(line.startswith("POST /scim/v2/Users/.search 200") for line in asked)
    print(f"\nquickstart over SCIMMY: apply (plan included) took {seconds:.1f} s, {len(bulks)} Bulk requests")


def test_edits_in_the_application_and_a_leaver_converge_on_scimmy(company, scimmy_server):  # noqa: F811
    company.apply()
    tom = scimmy_server.user("tom.baker@corp.example.com")
    department = tom[ENTERPRISE]["department"]
    scimmy_server.patch("Users", tom["id"], [
        {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Somewhere Else"},
        {"op": "replace", "path": "displayName", "value": "Edited By Hand"}])
    [update] = changes(company.plan_json(), "update")
    assert update["subject"] == "tom.baker@corp.example.com"

    from tests.ldif_edit import Snapshot

    snapshot = Snapshot(company.folder / "corp.ldif")
    snapshot.remove(snapshot.find(sAMAccountName="sosei"))
    snapshot.save()
    plan = company.plan_json()
    assert [c["subject"] for c in changes(plan, "deactivate")] == ["samuel.osei@corp.example.com"]
    company.apply()

    tom = scimmy_server.user("tom.baker@corp.example.com")
    assert tom[ENTERPRISE]["department"] == department and tom["displayName"] == "Tom <Tommy> Baker"
    assert scimmy_server.user("samuel.osei@corp.example.com")["active"] is False
    assert company.plan_is_empty()
