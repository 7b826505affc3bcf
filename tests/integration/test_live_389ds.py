"""The 389ds flavour against a real 389 Directory Server, and the freeipa flavour against slapd
holding FreeIPA's layout and attributes.

389 DS (Debian's 389-ds-base) runs here without systemd: tests/servers/ds389.py builds an instance
under a temp dir and runs ns-slapd in the foreground (about 11 s from nothing to a seeded server).
Its people are keyed by nsUniqueId, locked with nsAccountLock: TRUE; groups are groupOfNames,
groupOfUniqueNames (the memberOf plugin on for both) and posixGroups.

FreeIPA itself cannot run here (it needs a whole host: Kerberos, DNS, Dogtag, systemd). Its tree
is 389 DS with FreeIPA's schema on top, so its tests read slapd loaded with the attributes the
freeipa flavour uses (tests/servers/freeipa.schema: ipaUniqueID, nsAccountLock, nsContainer) and
FreeIPA's layout: people under cn=users,cn=accounts, groupOfNames under cn=groups,cn=accounts
(nested, and in a cycle), memberOf kept by slapd's memberof overlay as 389 DS's plugin keeps it.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from ldap3 import BASE, MODIFY_REPLACE

from reconciler.directory.ldap.source import LiveSource
from reconciler.model import normalise_dn
from tests.integration.live_cli_support import LiveCompany, changes, email
from tests.servers.ds389 import Ds389
from tests.servers.population import DISABLED, PEOPLE, SECURITY_KEY_OWNERS, SECURITY_KEY_OWNERS_MEMBERS, WITHOUT_MAIL
from tests.servers.slapd import Slapd

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")]  # inside ldap3

IMPORTED = {p.account for p in PEOPLE if p.account not in DISABLED | WITHOUT_MAIL}
FREEIPA_SCHEMA = str(Path(__file__).resolve().parents[1] / "servers" / "freeipa.schema")


# ── 389 Directory Server ─────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def ds389(tmp_path_factory, test_tls):
    server = Ds389(tmp_path_factory.mktemp("ds389"), test_tls)
    try:
        server.start()
        server.add_posix_group("devs", 5001, ["ALICE", "Bob"])
        server.add_posix_group("ops", 5002, [server.user_dn("erin").replace(",", ", ")])
        server.add_posix_group("empty", 5003, [])
        yield server
    finally:
        server.stop()


@pytest.fixture
def company(tmp_path, ds389, bind_password) -> LiveCompany:
    bind_password(ds389)
    return LiveCompany(tmp_path, {"corp": ds389})


def ns_unique_id(server: Ds389, account: str) -> str:
    """The entry's nsUniqueId as the server reports it to its administrator."""
    conn = server.admin()
    server.check(conn.search(server.user_dn(account), "(objectClass=*)", search_scope=BASE,
                             attributes=["nsUniqueId"]), f"reading the nsUniqueId of {account}")
    return conn.entries[0]["nsUniqueId"].value


def test_the_389ds_flavour_reads_anchors_locks_and_groups(ds389, bind_password):
    bind_password(ds389)
    read = LiveSource(ds389.directory(users={"filter": "(|(objectClass=inetOrgPerson)(objectClass=nsPerson))"},
                                      groups={"filter": "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)"
                                                        "(objectClass=posixGroup))"})).read()
    users = {u.account_name: u for u in read.users}
    assert set(users) == {p.account for p in PEOPLE}
    assert users["alice"].anchor == ns_unique_id(ds389, "alice")  # 8-8-8-8 hex, as the server writes it
    assert {a for a, u in users.items() if u.disabled} == DISABLED  # nsAccountLock: TRUE
    auditors = normalise_dn(ds389.group_dn("Auditors"))  # groupOfUniqueNames: the memberOf plugin records it too
    assert auditors in users["judy"].groups and auditors in users["dave"].groups
    devs = read.groups[normalise_dn(ds389.group_dn("devs"))]
    assert devs.members == {normalise_dn(ds389.user_dn("alice")), normalise_dn(ds389.user_dn("bob"))}
    assert read.groups[normalise_dn(ds389.group_dn("empty"))].members == frozenset()


def test_plan_and_apply_against_389ds_then_nothing_to_do(company, ds389):
    company.write_policy({"corp": ds389.policy_directory()})  # kind 389ds: the flavour's defaults
    plan = company.plan_json()
    assert {c["subject"] for c in changes(plan, "create")} == {email(ds389, a) for a in IMPORTED}
    assert plan["directories"]["corp"]["disabled"] == len(DISABLED)
    company.apply()
    assert company.user(email(ds389, "alice"))["key"] == f"corp:{ns_unique_id(ds389, 'alice')}"
    again = company.run("plan", "policy.yaml", "--detailed-exitcode")
    assert again.code == 0 and "No changes." in again.out, again.output


def test_a_lock_deactivates_and_an_unlock_reactivates(company, ds389):
    company.write_policy({"corp": ds389.policy_directory()}, safety={"max_deactivations": 5})
    company.apply()
    ds389.set_disabled("ivan")  # nsAccountLock: TRUE
    try:
        plan = company.plan_json()
        [deactivation] = changes(plan, "deactivate")
        assert deactivation["subject"] == email(ds389, "ivan") and "disabled" in deactivation["reason"]
        company.apply()
    finally:
        ds389.set_disabled("ivan", False)
    [reactivation] = changes(company.plan_json(), "reactivate")
    assert reactivation["subject"] == email(ds389, "ivan")


def test_nsaccountlock_in_lower_case_is_a_lock_too(company, ds389):
    company.write_policy({"corp": ds389.policy_directory()})
    conn = ds389.admin()
    ds389.check(conn.modify(ds389.user_dn("grace"), {"nsAccountLock": [(MODIFY_REPLACE, ["true"])]}), "locking grace")
    try:
        plan = company.plan_json()
        assert email(ds389, "grace") not in {c["subject"] for c in changes(plan, "create")}
    finally:
        ds389.set_disabled("grace", False)


def test_member_of_nested_and_through_memberuid_on_389ds(company, ds389):
    users = {"search_bases": [ds389.connection.people_base], "member_of": [ds389.group_dn(SECURITY_KEY_OWNERS)]}
    company.write_policy({"corp": ds389.policy_directory(users=users)})
    created = {c["subject"] for c in changes(company.plan_json(), "create")}
    assert created == {email(ds389, a) for a in SECURITY_KEY_OWNERS_MEMBERS - DISABLED}
    users["member_of"] = [ds389.group_dn("ops")]  # a DN with spaces after the commas in memberUid
    company.write_policy({"corp": ds389.policy_directory(users=users)})
    assert {c["subject"] for c in changes(company.plan_json(), "create")} == {email(ds389, "erin")}


def test_group_teams_on_389ds_posix_groups_included_empty_ones_not(company, ds389):
    company.write_policy({"corp": ds389.policy_directory()}, placement={"mode": "group-teams", "root": "Org"})
    plan = company.plan_json()
    teams = {c["after"]["name"] for c in changes(plan, "create", kind="team")}
    assert {"devs", "ops", "Engineering Team", "Auditors", SECURITY_KEY_OWNERS} <= teams and "empty" not in teams
    memberships = {c["subject"] for c in changes(plan, "add", kind="membership")}
    assert {f"{email(ds389, 'alice')} in devs", f"{email(ds389, 'bob')} in devs"} <= memberships
    explained = company.run("explain", "policy.yaml", "bob")
    assert explained.code == 0, explained.output
    users = {"search_bases": [ds389.connection.people_base], "member_of": [ds389.group_dn("devs")]}
    company.write_policy({"corp": ds389.policy_directory(users=users)})
    explained = company.run("explain", "policy.yaml", "bob")
    assert f"✓ member_of: member of {ds389.group_dn('devs')} (directly, by memberUid Bob)" in explained.out, \
        explained.output


# ── FreeIPA's layout and attributes, on slapd ────────────────────────────────

IPA_SUFFIX = "dc=ipa,dc=example"
ACCOUNTS = f"cn=accounts,{IPA_SUFFIX}"
IPA_USERS = f"cn=users,{ACCOUNTS}"
IPA_GROUPS = f"cn=groups,{ACCOUNTS}"
# account -> nsAccountLock (None: unlocked); FreeIPA writes TRUE, and "True" must read the same
IPA_PEOPLE = {"amy": None, "ben": None, "cid": "TRUE", "dee": "True", "eve": None, "fay": "FALSE"}
IPA_IDS = {account: str(uuid.uuid5(uuid.NAMESPACE_URL, f"ipa:{account}")) for account in IPA_PEOPLE}


def ipa_user(account: str) -> str:
    return f"uid={account},{IPA_USERS}"


def ipa_group(cn: str) -> str:
    return f"cn={cn},{IPA_GROUPS}"


@pytest.fixture(scope="module")
def freeipa(tmp_path_factory, test_tls):
    server = Slapd(tmp_path_factory.mktemp("slapd-freeipa"), test_tls, suffix=IPA_SUFFIX, mail_domain="ipa.example",
                   schemas=(FREEIPA_SCHEMA,))
    try:
        server.start(people=(), groups=())
        conn = server.admin()
        for dn in (ACCOUNTS, IPA_USERS, IPA_GROUPS):
            server.check(conn.add(dn, ["nsContainer"], {"cn": dn.split(",")[0][3:]}), f"adding {dn}")
        for account, lock in IPA_PEOPLE.items():
            attributes = {"uid": account, "cn": account.title(), "sn": "Ipa", "displayName": f"{account.title()} Ipa",
                          "mail": f"{account}@ipa.example", "ipaUniqueID": IPA_IDS[account]}
            if lock is not None:
                attributes["nsAccountLock"] = lock
            server.check(conn.add(ipa_user(account), ["inetOrgPerson", "ipaObject"], attributes), f"adding {account}")
        groups = {  # cn -> members; admins inside engineers; loop-a and loop-b hold each other
            "admins": [ipa_user("amy")],
            "engineers": [ipa_user("ben"), ipa_group("admins")],
            "loop-a": [ipa_user("eve"), ipa_group("loop-b")],
            "loop-b": [ipa_group("loop-a"), ipa_user("fay")],
            "nobody": [""],  # slapd's groupOfNames needs a member: the empty DN, the usual idiom
        }
        for cn in ("admins", "engineers", "loop-a", "loop-b", "nobody"):  # loop-b is named before it exists
            server.check(conn.add(ipa_group(cn), ["groupOfNames", "ipaObject"],
                                  {"cn": cn, "member": groups[cn], "ipaUniqueID": str(uuid.uuid5(uuid.NAMESPACE_URL, cn))}),
                         f"adding the group {cn}")
        yield server
    finally:
        server.stop()


def ipa_directory(server: Slapd, **users) -> dict:
    return server.policy_directory(kind="freeipa", users={"search_bases": [IPA_USERS], **users},
                                   groups={"search_bases": [IPA_GROUPS]})


@pytest.fixture
def ipa_company(tmp_path, freeipa, bind_password) -> LiveCompany:
    bind_password(freeipa)
    return LiveCompany(tmp_path, {"ipa": freeipa})


def test_the_freeipa_flavour_anchors_on_ipauniqueid_and_reads_nsaccountlock(ipa_company):
    ipa_company.write_policy({"ipa": ipa_directory(ipa_company.servers["ipa"])})
    plan = ipa_company.plan_json()
    created = {c["subject"]: c["key"] for c in changes(plan, "create")}
    assert created == {f"{a}@ipa.example": f"ipa:{IPA_IDS[a]}" for a in ("amy", "ben", "eve", "fay")}
    assert plan["directories"]["ipa"]["disabled"] == 2  # cid (TRUE) and dee (True); fay's FALSE is no lock
    ipa_company.apply()
    again = ipa_company.run("plan", "policy.yaml", "--detailed-exitcode")
    assert again.code == 0, again.output


def test_freeipa_nested_groups_cycles_and_group_teams(ipa_company):
    server = ipa_company.servers["ipa"]
    ipa_company.write_policy({"ipa": ipa_directory(server, member_of=[ipa_group("engineers")])})
    assert {c["subject"] for c in changes(ipa_company.plan_json(), "create")} == {"amy@ipa.example", "ben@ipa.example"}
    ipa_company.write_policy({"ipa": ipa_directory(server, member_of=[ipa_group("loop-b")])})
    assert {c["subject"] for c in changes(ipa_company.plan_json(), "create")} == {"eve@ipa.example", "fay@ipa.example"}
    ipa_company.write_policy({"ipa": ipa_directory(server)}, placement={"mode": "group-teams", "root": "IPA"})
    plan = ipa_company.plan_json()
    assert {c["after"]["name"] for c in changes(plan, "create", kind="team")} == {
        "IPA", "admins", "engineers", "loop-a", "loop-b"}  # no team for the group without members
    memberships = {c["subject"] for c in changes(plan, "add", kind="membership")}
    assert {"amy@ipa.example in admins", "amy@ipa.example in engineers", "eve@ipa.example in loop-b"} <= memberships
    explained = ipa_company.run("explain", "policy.yaml", "amy", "--format", "json")
    assert explained.code == 0, explained.output
    assert json.loads(explained.out)["entries"][0]["verdict"] == "imported"
