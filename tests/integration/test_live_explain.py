"""`reconciler explain` against a real Samba AD DC and OpenLDAP slapd, through the installed command:
a person the policy's filter leaves out is never read by the plan, so explain finds them on the
server (by account name, email, DOMAIN\\account or DN), reads the entry and evaluates the filter on
the client with the evaluator the LDIF source uses, naming the clause that excludes them; member_of
is walked upwards on the server, naming the path of nesting."""
from __future__ import annotations

import json

import pytest

from tests.integration.live_cli_support import LiveCompany, email
from tests.servers.population import SECURITY_KEY_OWNERS

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")]  # inside ldap3


@pytest.fixture
def company(tmp_path, live_server) -> LiveCompany:
    return LiveCompany(tmp_path, {"corp": live_server})


def names(server) -> tuple[str, str, str]:
    """(account attribute, department attribute, the flavour's default users filter)"""
    if server.kind == "active-directory":
        return "sAMAccountName", "department", "(&(objectClass=user)(!(objectClass=computer)))"
    return "uid", "departmentNumber", "(objectClass=inetOrgPerson)"


def explain(company: LiveCompany, *args: str):
    result = company.run("explain", "policy.yaml", *args)
    assert "Traceback" not in result.err, result.output
    return result


def test_a_person_excluded_by_a_filter_clause_is_read_from_the_server_and_the_clause_named(live_server, company):
    account, department, default = names(live_server)
    clause = f"(!({department}=Sales))"
    ldap_filter = f"(&{default}{clause})"
    company.write_policy({"corp": live_server.policy_directory(users={
        "search_bases": [live_server.connection.people_base], "filter": ldap_filter})})
    url = live_server.connection.ldaps_url

    result = explain(company, "bob")  # Sales: the plan never reads him
    assert result.code == 0, result.output
    out = result.out
    bob_dn = live_server.user_dn("bob")
    assert out.splitlines()[0] == f"corp {bob_dn}  (found by {account} in {url})"
    assert f"✗ filter: the filter clause {clause} fails" in out
    assert f"✗ {clause}   {department}: Sales" in [line.strip() for line in out.splitlines()]
    assert f"✓ search base: under {live_server.connection.people_base} (scope subtree)" in out
    assert f"✓ email: {email(live_server, 'bob')} from {{mail}}" in out
    assert f"out of scope: not read by the plan: the filter clause {clause}" in out

    data = json.loads(explain(company, email(live_server, "bob"), "--format", "json").out)
    [entry] = data["entries"]
    assert (entry["dn"], entry["source"], entry["read_by_plan"]) == (bob_dn, url, False)
    assert entry["matched_by"][0] == "mail"  # Samba's UPN is the same address
    assert entry["checks"]["filter"]["failing"] == [clause]
    assert entry["excluded_by"] == [f"the filter clause {clause}"]

    # someone the filter lets through, asked by DOMAIN\account and by a DN spelled differently
    alice = explain(company, "CORP\\alice")
    assert alice.code == 0 and f"corp {live_server.user_dn('alice')}  (found by {account} in domain CORP" in alice.out
    assert f"✓ filter: matches {ldap_filter}" in alice.out and "imported: in scope of corp" in alice.out
    spaced = live_server.user_dn("alice").upper().replace(",", " , ")
    assert explain(company, spaced).out.splitlines()[0].startswith(f"corp {live_server.user_dn('alice')}  (found by DN")


def test_member_of_is_walked_on_the_server_with_the_path_of_nesting(live_server, company):
    owners = live_server.group_dn(SECURITY_KEY_OWNERS)
    company.write_policy({"corp": live_server.policy_directory(users={
        "search_bases": [live_server.connection.people_base], "member_of": [owners]})})

    bob = explain(company, "bob")  # in Sales EMEA, which is in Security Key Owners
    assert bob.code == 0, bob.output
    assert (f"✓ member_of: member of {owners} through nested groups: {live_server.group_dn('Sales EMEA')} → {owners}"
            in bob.out)
    erin = explain(company, "erin")  # in no group of it: AD's in-chain read never returns her
    assert erin.code == 0, erin.output
    assert f"✗ member_of: not a member of {owners}, directly or through nested groups" in erin.out

    typo = explain(company, "bobb")
    assert typo.code == 1 and typo.out == ""
    assert typo.err.strip().endswith("did you mean bob?")
