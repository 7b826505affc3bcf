"""posixGroups on a real slapd (with the nis schema), through the installed command.

A posixGroup names members by account name in memberUid, compared case-exactly by the server and
case-insensitively by reconciler; some directories write DNs there instead. The slapd of this
module holds the shared population plus posixGroups that name people in another case than
their uid (ALICE, Bob), by a DN with spaces after the commas, nobody (an empty group, a uid nobody
has), each other by DN (a cycle), and a groupOfNames holding a posixGroup.
"""
from __future__ import annotations

import json

import pytest

from tests.integration.live_cli_support import LiveCompany, changes, email
from tests.servers.population import DISABLED, PEOPLE, WITHOUT_MAIL
from tests.servers.slapd import Slapd

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")]  # inside ldap3

SUFFIX = "dc=posix,dc=example"
GROUPS = f"ou=Groups,{SUFFIX}"
IMPORTED = {p.account for p in PEOPLE if p.account not in DISABLED | WITHOUT_MAIL}


def group(cn: str) -> str:
    return f"cn={cn},{GROUPS}"


def spaced(dn: str) -> str:
    """The DN as some tools write it: a space after every comma."""
    return dn.replace(",", ", ")


def add_posix_group(server: Slapd, cn: str, gid: int, member_uids: list[str]) -> None:
    attributes: dict = {"cn": cn, "gidNumber": str(gid)}
    if member_uids:
        attributes["memberUid"] = member_uids
    server.check(server.admin().add(group(cn), ["posixGroup"], attributes), f"adding the posixGroup {cn}")


@pytest.fixture(scope="module")
def posix_slapd(tmp_path_factory, test_tls):
    server = Slapd(tmp_path_factory.mktemp("slapd-posix"), test_tls, suffix=SUFFIX, mail_domain="posix.example")
    try:
        server.start()
        add_posix_group(server, "devs", 5001, ["ALICE", "Bob"])  # alice and bob, in another case
        add_posix_group(server, "ops", 5002, [spaced(server.user_dn("erin"))])  # uid=erin, ou=Research, ...
        add_posix_group(server, "empty", 5003, [])
        add_posix_group(server, "ghosts", 5004, ["nobody-has-this-uid"])
        add_posix_group(server, "cycle-a", 5005, ["grace", spaced(group("cycle-b"))])
        add_posix_group(server, "cycle-b", 5006, [group("cycle-a").upper(), "Frank"])
        server.check(server.admin().add(group("outer"), ["groupOfNames"], {"cn": "outer", "member": [group("devs")]}),
                     "adding outer")
        yield server
    finally:
        server.stop()


@pytest.fixture
def company(tmp_path, posix_slapd, bind_password) -> LiveCompany:
    bind_password(posix_slapd)
    return LiveCompany(tmp_path, {"corp": posix_slapd})


def write(company: LiveCompany, server: Slapd, member_of: tuple[str, ...] = (), mode: str = "root") -> None:
    users = {"search_bases": [server.connection.people_base], "member_of": list(member_of)}
    company.write_policy({"corp": server.policy_directory(users=users)}, placement={"mode": mode, "root": "Org"})


def created(plan: dict) -> set[str]:
    return {c["subject"] for c in changes(plan, "create")}


def emails(server: Slapd, *accounts: str) -> set[str]:
    return {email(server, account) for account in accounts}


@pytest.mark.parametrize("cn, members", [
    ("devs", ("alice", "bob")),  # memberUid ALICE and Bob: the users' uid is lower case
    ("ops", ("erin",)),  # a DN with spaces after the commas
    ("outer", ("alice", "bob")),  # a groupOfNames holding the posixGroup devs
    ("cycle-a", ("grace", "frank")),  # grace directly, frank through cycle-b, which holds cycle-a again
])
def test_member_of_a_posix_group(company, posix_slapd, cn, members):
    write(company, posix_slapd, member_of=(group(cn),))
    plan = company.plan_json()
    assert created(plan) == emails(posix_slapd, *members)
    assert plan["directories"]["corp"]["in_scope"] == len(members)


@pytest.mark.parametrize("cn", ["empty", "ghosts"])
def test_member_of_a_group_naming_nobody_imports_nobody(company, posix_slapd, cn):
    write(company, posix_slapd, member_of=(group(cn),))
    plan = company.plan_json()
    assert created(plan) == set()
    assert plan["directories"]["corp"]["read"] == len(PEOPLE) and plan["directories"]["corp"]["in_scope"] == 0


def test_group_teams_from_posix_groups_and_none_for_the_empty_ones(company, posix_slapd):
    write(company, posix_slapd, mode="group-teams")
    plan = company.plan_json()
    teams = {c["after"]["name"] for c in changes(plan, "create", kind="team")}
    assert {"devs", "ops", "cycle-a", "cycle-b", "outer"} <= teams
    assert not {"empty", "ghosts"} & teams
    memberships = {c["subject"] for c in changes(plan, "add", kind="membership")}
    alice, grace = email(posix_slapd, "alice"), email(posix_slapd, "grace")
    assert {f"{alice} in devs", f"{alice} in outer", f"{grace} in cycle-a", f"{grace} in cycle-b"} <= memberships
    assert f"{email(posix_slapd, 'erin')} in ops" in memberships
    assert created(plan) == emails(posix_slapd, *IMPORTED)
    company.apply()
    again = company.run("plan", "policy.yaml", "--detailed-exitcode")
    assert again.code == 0 and "No changes." in again.out, again.output


def test_a_changed_memberuid_moves_the_membership(company, posix_slapd):
    from ldap3 import MODIFY_ADD, MODIFY_DELETE

    write(company, posix_slapd, mode="group-teams")
    company.apply()
    conn = posix_slapd.admin()
    posix_slapd.check(conn.modify(group("devs"), {"memberUid": [(MODIFY_ADD, ["IVAN"])]}), "adding IVAN to devs")
    try:
        plan = company.plan_json()
        assert {c["subject"] for c in changes(plan, "add", kind="membership")} == {f"{email(posix_slapd, 'ivan')} in devs",
                                                                                  f"{email(posix_slapd, 'ivan')} in outer"}
    finally:
        posix_slapd.check(conn.modify(group("devs"), {"memberUid": [(MODIFY_DELETE, ["IVAN"])]}), "taking IVAN out")


def test_explain_names_the_memberuid_value(company, posix_slapd):
    """On a live server too: the groups naming someone's uid in another case, or a group's DN spelled
    otherwise (upper case, spaces after the commas), are found and named."""
    write(company, posix_slapd, member_of=(group("devs"), group("cycle-b"), group("cycle-a")))
    alice = company.run("explain", "policy.yaml", "alice")
    assert alice.code == 0, alice.output
    assert f"✓ member_of: member of {group('devs')} (directly, by memberUid ALICE)" in alice.out
    grace = company.run("explain", "policy.yaml", "grace", "--format", "json")
    assert grace.code == 0, grace.output
    [entry] = json.loads(grace.out)["entries"]
    cycle_b = entry["checks"]["member_of"]["groups"][1]
    assert cycle_b["member"] and cycle_b["path"] == [group("cycle-a"), group("cycle-b")]
    assert cycle_b["via"] == ["memberUid grace", f"memberUid {group('cycle-a').upper()}"]
    frank = company.run("explain", "policy.yaml", "frank", "--format", "json")  # cycle-a holds cycle-b spaced
    [entry] = json.loads(frank.out)["entries"]
    cycle_a = entry["checks"]["member_of"]["groups"][2]
    assert cycle_a["via"] == ["memberUid Frank", f"memberUid {spaced(group('cycle-b'))}"]
