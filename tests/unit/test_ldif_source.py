"""LdifSource on the example company (examples/quickstart, described in COMPANY.md) and on small snapshots."""
from __future__ import annotations

import base64
import importlib.util
import re
import sys
import uuid
from pathlib import Path

import pytest

from reconciler.directory.ldif.parser import read_ldif
from reconciler.directory.ldif.source import LdifSource
from reconciler.errors import DirectoryError
from reconciler.model import normalise_dn
from reconciler.policy.model import FLAVOUR_SCHEMAS, Directory, DisabledRule, GroupScope, AttributeMapping, Schema, Template, UserScope

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
CORP = "DC=corp,DC=example,DC=com"
EMEA = "DC=emea,DC=example,DC=com"
PEOPLE = f"OU=People,{CORP}"
GROUPS = f"OU=Groups,{CORP}"
KEY_OWNERS = f"CN=Security Key Owners,{GROUPS}"
AD_USERS = "(&(objectClass=user)(!(objectClass=computer)))"
NO_SERVICE_ACCOUNTS = "(&(objectClass=user)(!(objectClass=computer))(!(sAMAccountName=svc-*)))"
MAPPING = AttributeMapping(
    email=(Template("{mail}"), Template("{userPrincipalName}")),
    display_name=Template("{displayName}"),
    attributes=(("department", Template("{Department}")),),
)


def corp(bases=(PEOPLE,), user_filter=AD_USERS, member_of=(), scope="subtree", group_bases=(GROUPS,),
         path=QUICKSTART / "corp.ldif", name="corp") -> Directory:
    return Directory(
        name=name, kind="ldif", flavour="active-directory", schema=FLAVOUR_SCHEMAS["active-directory"],
        users=UserScope(search_bases=tuple(bases), filter=user_filter, scope=scope, member_of=tuple(member_of)),
        groups=GroupScope(search_bases=tuple(group_bases), filter="(objectClass=group)"),
        mapping=MAPPING, path=str(path),
    )


def read(**kwargs):
    return LdifSource(corp(**kwargs)).read()


def by_cn(result) -> dict[str, object]:
    """Users by their RDN value as written in the DN (escapes kept)."""
    return {re.split(r"(?<!\\),", entry.dn)[0][3:]: entry for entry in result.users}


# ── the example company ──

def test_people_ou_holds_203_people_and_the_user_filter_keeps_the_build_computer_out():
    result = read()
    assert len(result.users) == result.entries_read == 203
    assert result.out_of_scope == []
    assert not any("ENG-BUILD01" in e.dn for e in result.users)
    assert read(user_filter="(objectClass=user)").entries_read == 204


def test_domain_root_with_service_accounts_filtered_out_gives_every_person():
    everyone = read(bases=(CORP,), user_filter=NO_SERVICE_ACCOUNTS)
    assert len(everyone.users) == 228  # 203 in People + 25 contractors
    with_services = read(bases=(CORP,))
    assert {e.account_name for e in with_services.users} - {e.account_name for e in everyone.users} == {
        "svc-sync", "svc-backup", "svc-scanner", "svc-reporting"}


def test_users_are_sorted_by_normalised_dn():
    keys = [normalise_dn(e.dn) for e in read(bases=(CORP,)).users]
    assert keys == sorted(keys)


def test_nested_member_of_through_three_levels_and_a_cycle():
    result = read(member_of=(KEY_OWNERS,))
    assert sorted(by_cn(result)) == sorted([
        "Margaret Chen", "Ravi Patel", "Priya Raman", "Jürgen Weiß", "Zoë Adams", "Tom \\<Tommy\\> Baker",
        "Hannah Berg", "Samuel Osei", "Nora Lindqvist"])
    assert result.entries_read == 203
    assert len(result.out_of_scope) == 203 - 9
    assert {o.reason for o in result.out_of_scope} == {
        f"not a member of {KEY_OWNERS} (directly or through nested groups)"}


def test_contractor_key_owner_is_in_scope_only_when_the_base_covers_contractors():
    names = by_cn(read(bases=(PEOPLE, f"OU=Contractors,{CORP}"), member_of=(KEY_OWNERS,)))
    assert "Okafor\\, Chinedu" in names
    assert names["Okafor\\, Chinedu"].search_base == f"OU=Contractors,{CORP}"
    assert names["Okafor\\, Chinedu"].attributes["displayname"] == ("Chinedu Okafor",)


def test_several_member_of_groups_are_alternatives_and_the_reason_names_them_all():
    rnd = f"CN=R&D (Europe) \\2A,{GROUPS}"  # hex-escaped here, plain `*` in the snapshot
    result = read(member_of=(KEY_OWNERS, rnd))
    assert {"Amélie Laurent", "Ahmed Karim", "Sofia Rossi", "Henrik Larsen", "Jürgen Weiß"} <= set(by_cn(result))
    assert len(result.users) == 9 + 4
    assert result.out_of_scope[0].reason == f"not a member of {KEY_OWNERS} or {rnd} (directly or through nested groups)"


def test_disabled_accounts_are_included_and_flagged():
    result = read(bases=(CORP,), user_filter=NO_SERVICE_ACCOUNTS)
    assert sorted(e.account_name for e in result.users if e.disabled) == [
        "dvolkov", "gnovak", "hberg", "lromero", "oprice", "vhale"]


def test_entry_holds_anchor_account_groups_and_only_mapped_attributes():
    result = read(bases=(f"OU=Engineering,{PEOPLE}", PEOPLE))
    jurgen = by_cn(result)["Jürgen Weiß"]
    records = {normalise_dn(r.dn): r for r in read_ldif(str(QUICKSTART / "corp.ldif"))}
    guid = records[normalise_dn(jurgen.dn)].attributes["objectguid"][0]
    assert jurgen.anchor == str(uuid.UUID(bytes_le=guid))
    assert jurgen.account_name == "jweiss"
    assert jurgen.attributes == {
        "department": ("Security",), "displayname": ("Jürgen Weiß",),
        "mail": ("Jurgen.Weiss@corp.example.com",), "userprincipalname": ("jweiss@corp.example.com",)}
    assert jurgen.search_base == f"OU=Engineering,{PEOPLE}"  # the first listed base claims overlapping entries
    assert by_cn(result)["Margaret Chen"].search_base == PEOPLE
    assert jurgen.groups == {normalise_dn(f"CN=Engineering Leads,{GROUPS}"), normalise_dn(f"CN=R&D (Europe) *,{GROUPS}")}


def test_people_without_mail_keep_their_upn_when_they_have_one():
    names = by_cn(read(bases=(CORP,), user_filter=NO_SERVICE_ACCOUNTS))
    without_mail = {cn: e for cn, e in names.items() if "mail" not in e.attributes}
    assert len(without_mail) == 8
    assert sorted(cn for cn, e in without_mail.items() if "userprincipalname" not in e.attributes) == [
        "Ethan Brooks", "Isla Murray", "Mateo Garcia"]


def test_two_people_share_one_mail_in_corp():
    names = by_cn(read(bases=(CORP,), user_filter=NO_SERVICE_ACCOUNTS))
    mails = [e.first("mail").lower() for e in names.values() if e.first("mail")]
    assert [m for m in set(mails) if mails.count(m) > 1] == ["j.smith@corp.example.com"]


def test_one_person_is_in_both_domains_with_the_same_mail():
    corp_mails = {e.first("mail").lower(): e for e in read(bases=(CORP,)).users if e.first("mail")}
    emea = LdifSource(corp(bases=(EMEA,), group_bases=(), path=QUICKSTART / "emea.ldif", name="emea")).read()
    emea_mails = {e.first("mail").lower(): e for e in emea.users if e.first("mail")}
    shared = set(corp_mails) & set(emea_mails)
    assert shared == {"amelie.laurent@example.com"}
    assert corp_mails["amelie.laurent@example.com"].anchor != emea_mails["amelie.laurent@example.com"].anchor


def test_emea_is_the_smaller_domain():
    emea = LdifSource(corp(bases=(f"OU=Staff,{EMEA}",), group_bases=(f"OU=Groups,{EMEA}",),
                           path=QUICKSTART / "emea.ldif", name="emea")).read()
    assert len(emea.users) == 75
    assert sum(e.disabled for e in emea.users) == 2


def test_groups_carry_direct_members_only():
    groups = read().groups
    owners = groups[normalise_dn(KEY_OWNERS)]
    assert owners.name == "Security Key Owners"
    assert owners.members == {normalise_dn(dn) for dn in (
        f"CN=Engineering Leads,{GROUPS}", f"CN=IT Support,{GROUPS}",
        f"CN=Margaret Chen,{PEOPLE}", f"CN=Okafor\\, Chinedu,OU=Contractors,{CORP}")}
    assert groups[normalise_dn(f"CN=Empty Project,{GROUPS}")].members == frozenset()
    assert groups[normalise_dn(f"CN=R&D (Europe) \\2A,{GROUPS}")].name == "R&D (Europe) *"
    assert list(groups) == sorted(groups)


def test_one_level_scope_reads_only_the_base_level():
    result = read(scope="one")
    assert len(result.users) == 3
    assert "Margaret Chen" in by_cn(result)


def test_member_of_is_consistent_with_group_members_in_both_snapshots():
    for name in ("corp.ldif", "emea.ldif"):
        records = {normalise_dn(r.dn): r.attributes for r in read_ldif(str(QUICKSTART / name))}
        from_member = {(normalise_dn(m), g) for g, a in records.items() for m in a.get("member", [])}
        from_member_of = {(m, normalise_dn(g)) for m, a in records.items() for g in a.get("memberof", [])}
        assert from_member == from_member_of
        assert all(m in records for m, _ in from_member)


def test_generator_reproduces_the_committed_snapshots(tmp_path):
    spec = importlib.util.spec_from_file_location("generate_snapshot", QUICKSTART / "generate_snapshot.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    for path in module.generate(tmp_path):
        committed = QUICKSTART / path.name
        assert path.read_bytes() == committed.read_bytes(), f"{committed.name} is stale: run generate_snapshot.py"
        assert committed.stat().st_size < 1_000_000


# ── errors ──

def test_a_search_base_missing_from_the_snapshot_is_an_error_not_an_empty_read():
    with pytest.raises(DirectoryError, match=r"directory corp: search base OU=Peopel,DC=corp,DC=example,DC=com is not in the snapshot .*corp\.ldif; check its spelling"):
        read(bases=(f"OU=Peopel,{CORP}",))


def test_a_missing_group_base_is_an_error_too():
    with pytest.raises(DirectoryError, match="search base OU=Grups"):
        read(group_bases=(f"OU=Grups,{CORP}",))


def test_a_member_of_group_missing_from_the_snapshot_is_an_error():
    with pytest.raises(DirectoryError, match="member_of group CN=Security Key Owner,OU=Groups.* is not in the snapshot"):
        read(member_of=(f"CN=Security Key Owner,{GROUPS}",))


def test_an_unparsable_filter_is_one_line_naming_the_directory_and_filter():
    with pytest.raises(DirectoryError) as caught:
        read(user_filter="(&(objectClass=user)")
    assert str(caught.value).startswith("directory corp: users filter '(&(objectClass=user)' cannot be evaluated: ")
    assert "\n" not in str(caught.value)


def test_missing_path_is_an_error():
    directory = corp()
    directory = Directory(**{**directory.__dict__, "path": None})
    with pytest.raises(DirectoryError, match="kind ldif needs 'path'"):
        LdifSource(directory).read()


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "snap.ldif"
    path.write_text(text, encoding="utf-8")
    return path


def guid_line() -> str:
    return "objectGUID:: " + base64.b64encode(uuid.uuid4().bytes_le).decode()


def test_a_user_without_anchor_names_file_line_and_dn(tmp_path):
    path = write(tmp_path, f"dn: DC=x\nobjectClass: domain\n\ndn: OU=P,DC=x\nobjectClass: organizationalUnit\n\n"
                           f"dn: CN=Ann,OU=P,DC=x\nobjectClass: user\nsAMAccountName: ann\n")
    with pytest.raises(DirectoryError, match=r"snap\.ldif:7: directory corp: entry CN=Ann,OU=P,DC=x has no objectGUID"):
        read(bases=("OU=P,DC=x",), group_bases=(), path=path)


def test_a_dn_appearing_twice_is_an_error_naming_both_lines(tmp_path):
    path = write(tmp_path, f"dn: DC=x\nobjectClass: domain\n\ndn: CN=Ann,DC=x\n{guid_line()}\n\ndn: cn=ann, dc=X\n{guid_line()}\n")
    with pytest.raises(DirectoryError, match=r"snap\.ldif:7: entry cn=ann, dc=X appears twice \(first at line 4\)"):
        read(bases=("DC=x",), group_bases=(), path=path)


def test_openldap_flavour_snapshot(tmp_path):
    path = write(tmp_path, """dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: uid=ann,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: ann
cn: Ann Lee
sn: Lee
mail: ann@example.org
entryUUID: 6f1d7a3e-0000-1000-8000-000000000001

dn: uid=bob,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: bob
cn: Bob Ray
sn: Ray
entryUUID: 6f1d7a3e-0000-1000-8000-000000000002
pwdAccountLockedTime: 000001010000Z

dn: uid=cat,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: cat
cn: Cat Roe
sn: Roe
entryUUID: 6f1d7a3e-0000-1000-8000-000000000003

dn: cn=keys,dc=example,dc=org
objectClass: groupOfUniqueNames
cn: keys
entryUUID: 6f1d7a3e-0000-1000-8000-0000000000a1
uniqueMember: cn=inner,dc=example,dc=org
uniqueMember: uid=cat,ou=people,dc=example,dc=org#'0101'B

dn: cn=inner,dc=example,dc=org
objectClass: groupOfNames
cn: inner
entryUUID: 6f1d7a3e-0000-1000-8000-0000000000a2
member: uid=ann,ou=people,dc=example,dc=org
member: uid=bob,ou=people,dc=example,dc=org
""")
    schema = FLAVOUR_SCHEMAS["openldap"]
    directory = Directory(
        name="ldap", kind="ldif", flavour="openldap", schema=schema,
        users=UserScope(search_bases=("ou=people,dc=example,dc=org",), filter="(objectClass=person)",
                        member_of=("cn=keys,dc=example,dc=org",)),
        groups=GroupScope(search_bases=("dc=example,dc=org",),
                          filter="(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"),
        mapping=AttributeMapping(email=(Template("{mail}"),), display_name=Template("{cn}")), path=str(path),
    )
    result = LdifSource(directory).read()
    assert [(e.account_name, e.anchor, e.disabled) for e in result.users] == [
        ("ann", "6f1d7a3e-0000-1000-8000-000000000001", False),
        ("bob", "6f1d7a3e-0000-1000-8000-000000000002", True),
        ("cat", "6f1d7a3e-0000-1000-8000-000000000003", False)]
    assert result.groups["cn=keys,dc=example,dc=org"].members == {"cn=inner,dc=example,dc=org", "uid=cat,ou=people,dc=example,dc=org"}
    locked = Schema(anchor="entryUUID", account_name="uid", group_name="cn", member=("member", "uniqueMember"),
                    disabled=DisabledRule(attribute="nsAccountLock", equals="TRUE"))
    other = LdifSource(Directory(**{**directory.__dict__, "schema": locked})).read()
    assert not any(e.disabled for e in other.users)
