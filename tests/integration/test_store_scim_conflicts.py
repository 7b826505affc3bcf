"""One person the SCIM server cannot take never keeps a leaver's access: against a real scim2-server.

SCIM keeps userName unique across a server's Users (RFC 7643 §4.1.1). A user made by hand in the
application that holds a new hire's address as its userName (its own email elsewhere) used to make every
apply stop at HTTP 409, with a leaver in the same plan left active run after run. The plan now sees the
clash and lists the new hire as a conflict, naming the holder and what to do; the rest of the plan
applies. And should the server refuse a create the plan could not foresee, access removals have already
gone out: they are sent first.
"""
from __future__ import annotations

import uuid

import pytest

from tests.ldif_edit import Snapshot
from tests.servers.fault_proxy import FaultProxy
from tests.servers.scim import ScimCompany, changes, scim_server, service_provider_config, start_scim_server  # noqa: F401

pytestmark = pytest.mark.integration

HIRE_DN = "CN=Nina Hire,OU=Platform,OU=Engineering,OU=People,DC=corp,DC=example,DC=com"
HIRE = "nina.hire@corp.example.com"
LEAVER = "samuel.osei@corp.example.com"


def hire_and_leaver(company: ScimCompany) -> None:
    corp = Snapshot(company.folder / "corp.ldif")
    corp.add(HIRE_DN, {
        "objectClass": ["top", "person", "organizationalPerson", "user"], "cn": ["Nina Hire"],
        "sAMAccountName": ["nhire"], "mail": ["Nina.Hire@corp.example.com"], "displayName": ["Nina Hire"],
        "department": ["Engineering"], "userAccountControl": ["512"],
        "objectGUID": [uuid.UUID("12345678-1234-5678-1234-567812345678").bytes_le],
    })
    corp.remove(corp.find(sAMAccountName="sosei"))
    corp.save()


@pytest.fixture
def synced(tmp_path, scim_server) -> ScimCompany:  # noqa: F811
    company = ScimCompany(tmp_path / "company", scim_server.url, scim_server.token)
    company.apply()
    return company


def test_a_hand_made_user_holding_a_hires_username_is_a_conflict_and_the_leaver_still_goes(synced, scim_server):  # noqa: F811
    squatter = scim_server.create_user({"userName": "Nina.Hire@corp.example.com", "displayName": "Nina (test account)",
                                        "emails": [{"value": "qa-team@corp.example.com", "primary": True}]})
    hire_and_leaver(synced)

    plan = synced.plan_json()
    assert [c["subject"] for c in changes(plan, "deactivate")] == [LEAVER]
    assert changes(plan, "create") == []
    conflict, = [v for v in plan["ignored"] if v["dn"] == HIRE_DN]
    assert conflict["reason"] == (
        f"conflict: the store's user qa-team@corp.example.com (scim:{squatter['id']}), not managed by reconciler, "
        f"already has the sign-in name {HIRE}, which the store keeps unique; rename or remove that user in the "
        f"application, or give it the email {HIRE} so it can be adopted")
    text = synced.run("plan", "policy.yaml").out
    assert f"sign-in name {HIRE}" in text

    synced.apply()
    assert scim_server.user(LEAVER)["active"] is False
    kept = scim_server.user(HIRE)
    assert kept["id"] == squatter["id"] and kept["displayName"] == "Nina (test account)" and "externalId" not in kept
    assert synced.plan_is_empty()  # the conflict stays listed, and nothing is planned run after run

    # the application's admin renames the test account: the next plan creates the hire
    scim_server.patch("Users", squatter["id"], [{"op": "replace", "path": "userName", "value": "qa-nina@corp.example.com"}])
    [create] = changes(synced.plan_json(), "create")
    assert create["subject"] == HIRE
    synced.apply()
    assert scim_server.user(HIRE)["externalId"] == "corp:12345678-1234-5678-1234-567812345678"
    assert synced.plan_is_empty()


def test_explain_names_the_holder(synced, scim_server):  # noqa: F811
    squatter = scim_server.create_user({"userName": HIRE, "emails": [{"value": "qa@corp.example.com", "primary": True}]})
    hire_and_leaver(synced)
    result = synced.run("explain", "policy.yaml", HIRE)
    assert result.code == 0, result.err
    assert f"not applied: conflict: the store's user qa@corp.example.com (scim:{squatter['id']})" in result.out


def test_a_create_the_server_refuses_at_apply_does_not_hold_back_the_leaver(tmp_path):
    """A refusal the plan could not foresee (a server rule of its own; here the proxy answers every create
    with 409): the apply stops and says so, but the leaver's deactivation went out before it; the next
    run, once the server takes the create, converges."""
    server = start_scim_server(tmp_path / "scim2-server", service_provider_config(
        bulk={"supported": False, "maxOperations": 0, "maxPayloadSize": 0}))
    proxy = FaultProxy(server.url)
    try:
        company = ScimCompany(tmp_path / "company", proxy.url, server.token)
        company.apply()
        hire_and_leaver(company)
        proxy.inject("status", method="POST", path_prefix="/Users", status=409,
                     detail="uniqueness: another user has this email", times=None)
        failed = company.run("apply", "policy.yaml", "--auto-approve")
        assert failed.code == 1 and "Traceback" not in failed.err
        assert "409" in failed.err and "1 change(s) were applied" in failed.err
        assert server.user(LEAVER)["active"] is False
        assert server.user(HIRE) is None
        proxy.heal()
        company.apply()
        assert server.user(LEAVER)["active"] is False and server.user(HIRE)["active"] is True
        assert company.plan_is_empty()
    finally:
        proxy.stop()
        server.stop()
