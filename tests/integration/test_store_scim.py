"""The SCIM store end to end: the installed `reconciler` command against a real scim2-server on loopback.

The same scenarios as the SQLite store's end-to-end tests (tests/e2e), on
Example Corp from the quickstart: apply then an empty plan, a leaver, an
adoption, a manual edit put back, group-teams memberships. What the server
holds is checked through its own API, as the application would see it.
"""
from __future__ import annotations

import json
import time
import uuid
from collections import Counter

import pytest

from tests.servers.scim import ScimCompany, changes, scim_server  # noqa: F401  (scim_server is a fixture)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.fixture
def company(tmp_path, scim_server) -> ScimCompany:  # noqa: F811
    return ScimCompany(tmp_path / "company", scim_server.url, scim_server.token)


@pytest.fixture
def synced(company) -> ScimCompany:
    company.apply()
    return company


def managed_users(server) -> list[dict]:
    return [u for u in server.users() if u.get("externalId")]


def test_quickstart_applies_over_scim_and_the_next_plan_is_empty(company, scim_server):  # noqa: F811
    first = company.plan_json()
    assert first["summary"] == {"team.create": 15, "user.create": 288}
    started = time.monotonic()
    applied = company.apply()
    seconds = time.monotonic() - started
    assert "Applied: 288 users to create, 15 teams to create." in applied.out
    users, groups = scim_server.users(), scim_server.groups()
    assert len(users) == 288 and all(":" in u["externalId"] for u in users)
    assert len({u["externalId"] for u in users}) == 288
    assert sorted(g["externalId"] for g in groups) == sorted(c["key"] for c in changes(first, "create", "team"))
    # every user is in exactly one group: its team (ou-teams), with the team's name as displayName
    memberships = Counter(m["value"] for g in groups for m in g.get("members") or [])
    assert set(memberships.values()) == {1} and len(memberships) == 288
    platform = scim_server.group("Example Corp/Engineering/Platform")
    assert platform["displayName"] == "Platform"
    assert company.plan_is_empty()
    print(f"\nquickstart over SCIM: apply (plan included) took {seconds:.1f} s")


def test_a_user_carries_the_scim_attributes(synced, scim_server):  # noqa: F811
    tom = scim_server.user("tom.baker@corp.example.com")
    assert tom["displayName"] == "Tom <Tommy> Baker" and tom["name"]["formatted"] == "Tom <Tommy> Baker"
    assert tom["emails"] == [{"value": "tom.baker@corp.example.com", "type": "work", "primary": True}]
    assert tom["active"] is True and tom["externalId"].startswith("corp:")
    assert ENTERPRISE in tom["schemas"] and tom[ENTERPRISE]["department"]
    assert scim_server.user("jurgen.weiss@corp.example.com")["displayName"] == "Jürgen Weiß"


def test_a_leaver_is_deactivated_not_deleted(synced, scim_server):  # noqa: F811
    corp = synced.folder / "corp.ldif"
    from tests.ldif_edit import Snapshot

    snapshot = Snapshot(corp)
    snapshot.remove(snapshot.find(sAMAccountName="sosei"))
    snapshot.save()
    [leaver] = changes(synced.plan_json(), "deactivate")
    assert leaver["subject"] == "samuel.osei@corp.example.com"
    synced.apply()
    samuel = scim_server.user("samuel.osei@corp.example.com")
    assert samuel is not None and samuel["active"] is False
    assert synced.plan_is_empty()


def test_a_hand_made_scim_user_is_adopted_and_the_directory_wins(synced, scim_server):  # noqa: F811
    zoe = scim_server.user("zoe.adams@corp.example.com")
    scim_server.delete("Users", zoe["id"])
    hand_made = scim_server.create_user({"userName": "ZOE.ADAMS@corp.example.com", "displayName": "zoe (added by hand)",
                                         "emails": [{"value": "zoe@home.example.org", "type": "home"}]})
    [adopt] = changes(synced.plan_json(), "adopt")
    assert adopt["before"]["key"] == f"scim:{hand_made['id']}" and adopt["key"] == zoe["externalId"]
    synced.apply()
    adopted = scim_server.user("zoe.adams@corp.example.com")
    assert adopted["id"] == hand_made["id"]  # taken over, not duplicated
    assert adopted["externalId"] == zoe["externalId"] and adopted["displayName"] == "Zoë Adams"
    assert adopted["emails"][0] == {"value": "zoe.adams@corp.example.com", "type": "work", "primary": True}
    assert {"value": "zoe@home.example.org", "type": "home"} in adopted["emails"]  # the application's own kept
    team = scim_server.group(zoe_team := next(g["externalId"] for g in scim_server.groups()
                                              if any(m["value"] == adopted["id"] for m in g.get("members") or [])))
    assert team is not None and zoe_team.startswith("Example Corp")
    assert synced.plan_is_empty()


def test_an_unmanaged_user_is_left_alone(synced, scim_server):  # noqa: F811
    guest = scim_server.create_user({"userName": "guest@partner.example.net", "displayName": "A guest", "active": True})
    assert synced.plan_is_empty()
    synced.apply()
    assert scim_server.user("guest@partner.example.net")["id"] == guest["id"]


def test_a_manual_edit_to_a_managed_user_is_reverted(synced, scim_server):  # noqa: F811
    margaret = scim_server.user("margaret.chen@corp.example.com")
    scim_server.patch("Users", margaret["id"], [
        {"op": "replace", "path": "displayName", "value": "Margaret (edited in the app)"},
        {"op": "replace", "path": "active", "value": False},
    ])
    team = next(g for g in scim_server.groups() if any(m["value"] == margaret["id"] for m in g.get("members") or []))
    scim_server.patch("Groups", team["id"], [{"op": "remove", "path": f'members[value eq "{margaret["id"]}"]'}])
    plan = synced.plan_json()
    [update] = changes(plan, "update")
    assert update["before"] == {"display_name": "Margaret (edited in the app)"}
    assert update["after"] == {"display_name": "Margaret Chen"}
    assert [c["key"] for c in changes(plan, "reactivate")] == [margaret["externalId"]]
    [move] = changes(plan, "move")
    assert move["before"] == {"team": None} and move["after"] == {"team": team["externalId"]}
    synced.apply()
    back = scim_server.user("margaret.chen@corp.example.com")
    assert back["displayName"] == "Margaret Chen" and back["active"] is True
    assert any(m["value"] == margaret["id"] for m in scim_server.group(team["externalId"])["members"])
    assert synced.plan_is_empty()


def test_a_plan_made_before_a_server_edit_is_refused_as_stale(synced, scim_server):  # noqa: F811
    corp = synced.folder / "corp.ldif"
    from tests.ldif_edit import Snapshot

    snapshot = Snapshot(corp)
    snapshot.set(snapshot.find(sAMAccountName="praman"), "mail", "priya.r@corp.example.com")
    snapshot.save()
    saved = synced.run("plan", "policy.yaml", "--out", "plan.json")
    assert saved.code == 0, saved.err
    margaret = scim_server.user("margaret.chen@corp.example.com")
    scim_server.patch("Users", margaret["id"], [{"op": "replace", "path": "title", "value": "Edited meanwhile"}])
    refused = synced.run("apply", "--plan", "plan.json", "--auto-approve")
    assert refused.code == 3 and "plan is stale" in refused.err
    assert scim_server.user("priya.raman@corp.example.com") is not None  # nothing was applied
    history = json.loads(synced.run("history", "policy.yaml", "--format", "json").out)
    assert history[0]["outcome"].startswith("refused: plan is stale")


def test_an_email_change_updates_the_same_scim_user(synced, scim_server):  # noqa: F811
    from tests.ldif_edit import Snapshot

    snapshot = Snapshot(synced.folder / "corp.ldif")
    snapshot.set(snapshot.find(sAMAccountName="praman"), "mail", "priya.r@corp.example.com")
    snapshot.save()
    before = scim_server.user("priya.raman@corp.example.com")
    synced.apply()
    after = scim_server.user("priya.r@corp.example.com")
    assert after["id"] == before["id"] and after["emails"][0]["value"] == "priya.r@corp.example.com"
    assert scim_server.user("priya.raman@corp.example.com") is None


def test_group_teams_memberships_follow_the_directory(company, scim_server):  # noqa: F811
    company.set_policy("mode: ou-teams", "mode: group-teams")
    plan = company.plan_json()
    adds = changes(plan, "add", "membership")
    assert adds and plan["summary"]["membership.add"] == len(adds)
    company.apply()
    vpn_key = next(c["key"] for c in changes(plan, "create", "team") if c["after"]["name"] == "VPN Users")
    vpn = scim_server.group(vpn_key)
    members = {m["value"] for m in vpn["members"]}
    expected = {c["after"]["user"] for c in adds if c["after"]["team"] == vpn_key}
    ids = {u["externalId"]: u["id"] for u in scim_server.users()}
    assert members == {ids[k] for k in expected} and len(members) > 10
    # the root team holds everyone: it is every user's team
    assert len(scim_server.group("Example Corp")["members"]) == 288
    assert company.plan_is_empty()

    from tests.ldif_edit import Snapshot

    snapshot = Snapshot(company.folder / "corp.ldif")
    group_dn = snapshot.find(cn="VPN Users", objectClass="group")
    synced_emails = {u["userName"] for u in scim_server.users()}
    leaving = next(str(m) for m in snapshot.entries[group_dn]["member"]  # the first member that is a synced user
                   if str(snapshot.entries.get(str(m), {}).get("mail", [""])[0]).lower() in synced_emails)
    snapshot.entries[group_dn]["member"] = [m for m in snapshot.entries[group_dn]["member"] if str(m) != leaving]
    user = next(attrs for dn, attrs in snapshot.entries.items() if dn.lower() == leaving.lower())
    user["memberof"] = [g for g in user.get("memberof", []) if str(g).lower() != group_dn.lower()]
    snapshot.save()
    [remove] = changes(company.plan_json(), "remove", "membership")
    assert remove["before"]["team"] == vpn_key
    company.apply()
    left = ids[remove["before"]["user"]]
    assert left not in {m["value"] for m in scim_server.group(vpn_key)["members"]}
    assert left in {m["value"] for m in scim_server.group("Example Corp")["members"]}  # still in their team
    assert company.plan_is_empty()


def test_a_new_hire_gets_their_team(synced, scim_server):  # noqa: F811
    from tests.ldif_edit import Snapshot

    corp = Snapshot(synced.folder / "corp.ldif")
    corp.add("CN=Nina Hire,OU=Platform,OU=Engineering,OU=People,DC=corp,DC=example,DC=com", {
        "objectClass": ["top", "person", "organizationalPerson", "user"], "cn": ["Nina Hire"],
        "sAMAccountName": ["nhire"], "mail": ["Nina.Hire@corp.example.com"], "displayName": ["Nina Hire"],
        "department": ["Engineering"], "userAccountControl": ["512"],
        "objectGUID": [uuid.UUID("12345678-1234-5678-1234-567812345678").bytes_le],
    })
    corp.save()
    synced.apply()
    nina = scim_server.user("nina.hire@corp.example.com")
    assert nina["externalId"] == "corp:12345678-1234-5678-1234-567812345678"
    platform = scim_server.group("Example Corp/Engineering/Platform")
    assert nina["id"] in {m["value"] for m in platform["members"]}


def test_a_wrong_token_is_one_line_without_the_token(company, scim_server):  # noqa: F811
    result = company.run("plan", "policy.yaml", env={"SCIM_TOKEN": "not-the-token-4242"})
    assert result.code == 1
    assert "HTTP 401" in result.err and "${SCIM_TOKEN}" in result.err and "GET /Users" in result.err
    assert "not-the-token-4242" not in result.err + result.out and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_check_opens_the_scim_store(company):
    result = company.run("check", "policy.yaml")
    assert "OK   store: scim: opened, 0 managed users" in result.out, result.out + result.err


def test_with_lifecycle_delete_a_leaver_is_removed_from_its_group_and_deleted(synced, scim_server):  # noqa: F811
    from tests.ldif_edit import Snapshot

    synced.set_policy("when_out_of_scope: deactivate", "when_out_of_scope: delete")
    samuel = scim_server.user("samuel.osei@corp.example.com")
    corp = Snapshot(synced.folder / "corp.ldif")
    corp.remove(corp.find(sAMAccountName="sosei"))
    corp.save()
    [delete] = changes(synced.plan_json(), "delete")
    assert delete["key"] == samuel["externalId"]
    synced.apply()
    assert scim_server.user("samuel.osei@corp.example.com") is None
    assert all(m["value"] != samuel["id"] for g in scim_server.groups() for m in g.get("members") or [])
    assert synced.plan_is_empty()


def test_switching_placement_moves_everyone_and_deletes_the_teams_no_longer_needed(synced, scim_server):  # noqa: F811
    synced.set_policy("mode: ou-teams", "mode: group-teams")
    plan = synced.plan_json()
    gone = {c["key"] for c in changes(plan, "delete", "team")}
    assert "Example Corp/Sales/EMEA" in gone and "Example Corp" not in gone
    synced.apply()
    remaining = {g["externalId"] for g in scim_server.groups()}
    assert not gone & remaining and "Example Corp" in remaining
    assert synced.plan_is_empty()
    assert len(scim_server.users()) == 288
