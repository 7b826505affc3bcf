"""posixGroups name their members by account name (`memberUid: alice`), sometimes by DN; and the
389 Directory Server and FreeIPA flavours.

A memberUid value is matched to the account attribute (uid) case-insensitively; a value that is a DN
(spaces after the commas or not) is that DN, a user or a nested group; a name nobody has is no member;
an empty group has no members and so makes no team; nesting through memberUid DNs stays cycle-safe.
The snapshot reader and the live reader (a fake connection here, slapd in
tests/integration/test_live_posix.py) resolve them the same way.
"""
from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.desired import build_desired_state
from reconciler.directory.entries import make_entry
from reconciler.directory.ldap.source import LiveSource
from reconciler.directory.ldif.source import LdifSource
from reconciler.directory.membership import AccountNames, Membership, is_dn_value
from reconciler.explain.checks import member_of_check
from reconciler.explain.lookup import Found, SnapshotLookup
from reconciler.model import normalise_dn
from reconciler.policy import load_policy, validate_policy
from reconciler.policy.build import DEFAULT_FILTERS
from reconciler.policy.model import FLAVOUR_SCHEMAS, AttributeMapping, Directory, GroupScope, Placement, Template, UserScope
from tests.factories import policy
from tests.unit.test_paged import FakeAD

SUFFIX = "dc=example,dc=org"
PEOPLE = f"ou=People,{SUFFIX}"
GROUPS = f"ou=Groups,{SUFFIX}"
ANN, BOB, CAT, DAN = (f"uid={name},{PEOPLE}" for name in ("ann", "bob", "cat", "dan"))


def group_dn(cn: str) -> str:
    return f"cn={cn},{GROUPS}"


# Users: ann, bob, cat, dan (uid "Dan" as written), and eve outside the users filter.
# posixGroups: devs (ann and bob, in other cases), ops (cat, by a DN with spaces after the commas),
# empty (no memberUid), ghosts (a uid nobody has), aliases (bob by his second uid, robert),
# cycle-a and cycle-b (each naming the other by DN);
# all (a groupOfNames holding devs by DN).
ENTRIES: dict[str, dict[str, list[str]]] = {
    ANN: {"objectClass": ["inetOrgPerson"], "uid": ["ann"], "mail": ["ann@example.org"], "cn": ["Ann"]},
    BOB: {"objectClass": ["inetOrgPerson"], "uid": ["bob", "robert"], "mail": ["bob@example.org"], "cn": ["Bob"]},
    CAT: {"objectClass": ["inetOrgPerson"], "uid": ["cat"], "mail": ["cat@example.org"], "cn": ["Cat"]},
    DAN: {"objectClass": ["inetOrgPerson"], "uid": ["Dan"], "mail": ["dan@example.org"], "cn": ["Dan"]},
    f"uid=eve,{PEOPLE}": {"objectClass": ["account"], "uid": ["eve"], "cn": ["Eve"]},
    group_dn("devs"): {"objectClass": ["posixGroup"], "cn": ["devs"], "gidNumber": ["5001"], "memberUid": ["ANN", "Bob"]},
    group_dn("ops"): {"objectClass": ["posixGroup"], "cn": ["ops"], "gidNumber": ["5002"],
                      "memberUid": [f"uid=cat, ou=People, {SUFFIX.replace(',', ', ')}"]},
    group_dn("empty"): {"objectClass": ["posixGroup"], "cn": ["empty"], "gidNumber": ["5003"]},
    group_dn("aliases"): {"objectClass": ["posixGroup"], "cn": ["aliases"], "gidNumber": ["5007"], "memberUid": ["ROBERT"]},
    group_dn("ghosts"): {"objectClass": ["posixGroup"], "cn": ["ghosts"], "gidNumber": ["5004"], "memberUid": ["nobody"]},
    group_dn("cycle-a"): {"objectClass": ["posixGroup"], "cn": ["cycle-a"], "gidNumber": ["5005"],
                          "memberUid": ["dan", f"cn=cycle-b, ou=Groups, {SUFFIX}"]},
    group_dn("cycle-b"): {"objectClass": ["posixGroup"], "cn": ["cycle-b"], "gidNumber": ["5006"],
                          "memberUid": ["ann", f"CN=Cycle-A,OU=Groups,{SUFFIX.upper()}"]},
    group_dn("all"): {"objectClass": ["groupOfNames"], "cn": ["all"], "member": [group_dn("devs")]},
}


def _ldif(entries: dict[str, dict[str, list[str]]]) -> str:
    blocks = [f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: example",
              f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: People",
              f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: Groups"]
    for number, (dn, attributes) in enumerate(entries.items()):
        lines = [f"dn: {dn}", f"entryUUID: 00000000-0000-4000-8000-{number:012d}"]
        lines += [f"{name}: {value}" for name, values in attributes.items() for value in values]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def directory(path: Path | None = None, member_of: tuple[str, ...] = (), kind: str = "ldif") -> Directory:
    users_filter, groups_filter = DEFAULT_FILTERS["openldap"]
    return Directory(
        name="ldap", kind=kind, flavour="openldap", schema=FLAVOUR_SCHEMAS["openldap"],  # type: ignore[arg-type]
        users=UserScope(search_bases=(PEOPLE,), filter=users_filter, member_of=member_of),
        groups=GroupScope(search_bases=(GROUPS,), filter=groups_filter),
        mapping=AttributeMapping(email=(Template("{mail}"),), display_name=Template("{cn}")),
        path=str(path) if path else None,
    )


@pytest.fixture
def snapshot(tmp_path) -> Path:
    path = tmp_path / "posix.ldif"
    path.write_text(_ldif(ENTRIES))
    return path


def snapshot_read(path: Path, *member_of: str):
    return LdifSource(directory(path, member_of)).read()


def live_read(*member_of: str):
    """The live reader against a fake server holding the same entries (entryUUID as in the snapshot)."""
    entries = {}
    for number, (dn, attributes) in enumerate(ENTRIES.items()):
        if "inetOrgPerson" in attributes["objectClass"] or dn.startswith("cn="):
            entries[dn] = {name: [v.encode() for v in values] for name, values in attributes.items()}
            entries[dn]["entryUUID"] = [f"00000000-0000-4000-8000-{number:012d}".encode()]
    fake = FakePosix(entries)
    return LiveSource(directory(member_of=member_of, kind="openldap"), connection_factory=lambda d: (fake, None)).read()


class FakePosix(FakeAD):
    """FakeAD with what a posix read needs: a search returns only what the filter's object class asks for
    (people under People, groups under Groups), and a base read finds an entry by any spelling of its DN."""

    def search(self, base, search_filter, search_scope=None, attributes=None, paged_size=None, **kwargs):
        if paged_size is None:
            wanted = {normalise_dn(dn): dn for dn in self.entries}.get(normalise_dn(base))
            if wanted is None:
                self.calls.append({"base": base})
                self.result, self.response = {"result": 32, "description": "noSuchObject", "message": ""}, []
                return False
            base = wanted
        return super().search(base, search_filter, search_scope, attributes, paged_size, **kwargs)


def users_of(read) -> set[str]:
    return {u.account_name for u in read.users}


# ── resolving memberUid values ──

def test_account_names_match_in_any_case_and_every_uid_value_counts():
    names = AccountNames([(["ann"], "a"), (["bob", "robert"], "b"), (["Dan"], "d")])
    assert names.resolve("ANN") == ("a",)
    assert names.resolve(b"Robert") == ("b",)
    assert names.resolve(" dan ") == ("d",)
    assert names.resolve("nobody") == () and names.resolve("") == ()


def test_a_name_two_entries_carry_names_both():
    assert AccountNames([(["sam"], "x"), (["SAM"], "y")]).resolve("sam") == ("x", "y")


def test_a_dn_value_is_a_dn_whatever_its_spacing_and_case():
    names = AccountNames()
    assert names.resolve("uid=Cat, ou=People, dc=example, dc=org") == (normalise_dn(CAT),)
    assert names.resolve("UID=cat,OU=People,DC=example,DC=org") == (normalise_dn(CAT),)
    assert is_dn_value("cn=x, dc=y") and not is_dn_value("alice") and not is_dn_value("a=")


def test_membership_remembers_how_a_group_names_its_member():
    graph = Membership()
    accounts = AccountNames([(["ann"], "ann-key")])
    dns = graph.add_member_uids("devs", "memberUid", ["ANN", "cn=inner, dc=x"], accounts)
    assert dns == ["cn=inner, dc=x"]
    assert graph.direct_members("devs") == {"ann-key", "cn=inner,dc=x"}
    assert graph.via("devs", "ann-key") == "memberUid ANN"
    graph.add("both", "ann-key")
    graph.add_member_uids("both", "memberUid", ["ann"], accounts)  # named by DN too: the DN is how
    assert graph.via("both", "ann-key") is None


def test_memberuid_dns_that_form_a_cycle_end_the_walk():
    graph = Membership()
    accounts = AccountNames([(["dan"], "dan")])
    graph.add_member_uids("a", "memberUid", ["dan", "cn=b"], accounts)
    graph.add_member_uids("cn=b", "memberUid", ["cn=a"], accounts)
    graph.add("cn=a", "a")  # cn=a is the group "a"
    assert graph.all_members("a") >= {"dan", "cn=b"}
    assert "a" in graph.all_groups("dan")


# ── reading: snapshot and live alike ──

@pytest.mark.parametrize("reader", ["snapshot", "live"])
def test_member_of_a_posix_group_matches_uids_in_any_case(reader, snapshot):
    read = snapshot_read(snapshot, group_dn("devs")) if reader == "snapshot" else live_read(group_dn("devs"))
    assert users_of(read) == {"ann", "bob"}
    out = {o.dn: o.reason for o in read.out_of_scope}
    assert set(out) == {CAT, DAN} and all(f"not a member of {group_dn('devs')}" in r for r in out.values())


@pytest.mark.parametrize("reader", ["snapshot", "live"])
def test_a_dn_with_spaces_after_the_commas_names_the_user(reader, snapshot):
    read = snapshot_read(snapshot, group_dn("ops")) if reader == "snapshot" else live_read(group_dn("ops"))
    assert users_of(read) == {"cat"}


@pytest.mark.parametrize("reader", ["snapshot", "live"])
def test_a_posix_group_nested_in_a_group_of_names_counts(reader, snapshot):
    read = snapshot_read(snapshot, group_dn("all")) if reader == "snapshot" else live_read(group_dn("all"))
    assert users_of(read) == {"ann", "bob"}


@pytest.mark.parametrize("reader", ["snapshot", "live"])
def test_posix_groups_naming_each_other_by_dn_are_walked_once(reader, snapshot):
    read = snapshot_read(snapshot, group_dn("cycle-a")) if reader == "snapshot" else live_read(group_dn("cycle-a"))
    assert users_of(read) == {"Dan", "ann"}  # dan directly (uid "Dan"), ann through cycle-b


@pytest.mark.parametrize("reader", ["snapshot", "live"])
def test_an_empty_group_and_a_group_of_unknown_uids_have_no_members(reader, snapshot):
    for cn in ("empty", "ghosts"):
        read = snapshot_read(snapshot, group_dn(cn)) if reader == "snapshot" else live_read(group_dn(cn))
        assert read.users == [] and len(read.out_of_scope) == 4


def test_the_snapshot_and_the_live_read_give_the_same_groups_and_memberships(snapshot):
    from_file, from_server = snapshot_read(snapshot), live_read()
    assert {k: g.members for k, g in from_file.groups.items()} == {k: g.members for k, g in from_server.groups.items()}
    assert {u.dn: u.groups for u in from_file.users} == {u.dn: u.groups for u in from_server.users}
    groups = from_file.groups
    assert groups[normalise_dn(group_dn("devs"))].members == {normalise_dn(ANN), normalise_dn(BOB)}
    assert groups[normalise_dn(group_dn("ops"))].members == {normalise_dn(CAT)}
    assert groups[normalise_dn(group_dn("empty"))].members == frozenset()
    assert groups[normalise_dn(group_dn("ghosts"))].members == frozenset()
    assert groups[normalise_dn(group_dn("aliases"))].members == {normalise_dn(BOB)}  # every uid value counts


def test_group_teams_from_posix_groups_and_none_for_an_empty_group(snapshot):
    read = snapshot_read(snapshot)
    state = build_desired_state(policy(directory(snapshot), placement=Placement(mode="group-teams", root="Org")), [read])
    names = {team.name for team in state.teams.values()}
    assert names == {"Org", "devs", "ops", "cycle-a", "cycle-b", "all", "aliases"}  # no empty, no ghosts
    memberships = {u.email: sorted(state.teams[k].name for k in u.memberships) for u in state.users.values()}
    assert memberships == {
        "ann@example.org": ["all", "cycle-a", "cycle-b", "devs"],
        "bob@example.org": ["aliases", "all", "devs"],
        "cat@example.org": ["ops"],
        "dan@example.org": ["cycle-a", "cycle-b"],
    }


# ── explain ──

def test_explain_says_which_memberuid_value_names_the_person(snapshot):
    wanted = directory(snapshot, (group_dn("devs"), group_dn("all"), group_dn("cycle-b")))
    lookup = SnapshotLookup(wanted)
    bob = Found(wanted, BOB, {}, ["DN"])
    check = member_of_check(wanted, BOB, lambda g: lookup.path_to(bob, g), lambda g: lookup.how_to(bob, g))
    assert check.ok and check.summary == f"member of {group_dn('devs')} (directly, by memberUid Bob)"
    assert check.facts["groups"][1] == {"group": group_dn("all"), "member": True, "direct": False,
                                        "path": [group_dn("devs"), group_dn("all")], "via": ["memberUid Bob", None]}
    dan = Found(wanted, DAN, {}, ["DN"])
    nested = member_of_check(wanted, DAN, lambda g: lookup.path_to(dan, g), lambda g: lookup.how_to(dan, g))
    assert nested.summary == (f"member of {group_dn('cycle-b')} through nested groups: {group_dn('cycle-a')} "
                              f"(by memberUid dan) → {group_dn('cycle-b')} (by memberUid CN=Cycle-A,OU=Groups,DC=EXAMPLE,DC=ORG)")


def test_explain_of_a_member_by_dn_stays_as_it_was(snapshot):
    wanted = directory(snapshot, (group_dn("all"),))
    check = member_of_check(wanted, BOB, lambda g: [g], lambda g: [None])
    assert check.summary == f"member of {group_dn('all')} (directly)" and "via" not in check.facts["groups"][0]


# ── the 389 Directory Server and FreeIPA flavours ──

@pytest.mark.parametrize("kind, anchor, member, member_uid", [
    ("openldap", "entryUUID", ("member", "uniqueMember"), ("memberUid",)),
    ("389ds", "nsUniqueId", ("member", "uniqueMember"), ("memberUid",)),
    ("freeipa", "ipaUniqueID", ("member",), ()),
])
def test_each_flavour_has_its_defaults_and_a_policy_may_override_them(tmp_path, kind, anchor, member, member_uid):
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(f"""\
        version: 1
        directories:
          dir:
            kind: {kind}
            urls: [ldaps://ldap.example.org]
            users: {{search_bases: ['{PEOPLE}']}}
            groups: {{search_bases: ['{GROUPS}']}}
          renamed:
            kind: ldif
            flavour: {kind}
            path: snapshot.ldif
            schema: {{member_uid: [gidMembers], account_name: cn}}
            users: {{search_bases: ['{PEOPLE}']}}
        """))
    (tmp_path / "snapshot.ldif").write_text("")
    assert validate_policy(path) == []
    live, offline = load_policy(path).directories
    assert (live.flavour, live.schema.anchor, live.schema.member, live.schema.member_uid) == (kind, anchor, member, member_uid)
    assert (live.users.filter, live.groups.filter) == DEFAULT_FILTERS[kind]
    assert offline.flavour == kind and offline.schema.member_uid == ("gidMembers",) and offline.schema.account_name == "cn"
    if kind != "openldap":
        assert (live.schema.disabled.attribute, live.schema.disabled.equals) == ("nsAccountLock", "TRUE")


def test_an_unknown_kind_is_refused_naming_the_flavours(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(f"version: 1\ndirectories:\n  dir:\n    kind: 389-ds\n    urls: [ldaps://x]\n"
                    f"    users: {{search_bases: ['{PEOPLE}']}}\n")
    [problem] = validate_policy(path)
    assert "'389-ds' is not allowed" in str(problem) and "389ds, freeipa" in str(problem)


@pytest.mark.parametrize("value, disabled", [("TRUE", True), ("true", True), ("True", True), ("FALSE", False),
                                             ("false", False), (None, False)])
def test_ns_account_lock_true_in_any_case_is_disabled(value, disabled):
    for kind in ("389ds", "freeipa"):
        schema = FLAVOUR_SCHEMAS[kind]
        attributes = {schema.anchor: ["c4bd0b81-6d0c11ef-8a9bd0c4-1e2f3a4b"], "uid": ["ann"]}
        if value is not None:
            attributes["nsAccountLock"] = [value]
        entry = make_entry(replace(directory(), kind=kind, flavour=kind, schema=schema), ANN, attributes, PEOPLE)
        assert entry.disabled is disabled
        assert entry.anchor == "c4bd0b81-6d0c11ef-8a9bd0c4-1e2f3a4b"  # text, as the server writes it
