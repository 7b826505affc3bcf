"""AD delta reads (`usn.UsnChanges`) against the real Samba AD DC.

Each test builds a small directory of its own under `OU=<tag>,DC=corp,...` (Staff: the users base,
Teams: the groups base, Elsewhere: outside both) and removes it afterwards, so the shared DC's
population is never touched. A test takes the watermark (`start`), reads in full with the same
searches a live read makes, changes the directory with ldap3 as an administrator would, asks for the
changes, and checks two things: the ids in `changed`/`removed` exactly, and that the kept records
with the delta applied equal a fresh full read (DNs and every value; multi-valued attributes in any
order).

The bind account is the domain's Administrator unless a test says otherwise: AD (and Samba) let only
administrators list CN=Deleted Objects by default, and without the tombstones a delta would miss
deletions, so `UsnChanges` refuses to delta for an account that cannot (tested below with the
fixture's ordinary service account, and with an ordinary account given List Contents and Read
Property there, the grant the refusal advises).

What cannot be tested here: a second domain controller of the same domain (the fixture serves LDAP
only, no DRS replication to join one) and a restored one (`samba-tool domain backup restore` needs the
DNS partitions the fixture does not provision); the identity is checked to be the DC's invocationId
as the NTDS Settings object holds it, the same for every bind account and connection, and another
value for searches in another naming context; the unit tests check that another invocationId is
another identity.
"""
from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE
from ldap3.utils.conv import escape_bytes

from reconciler.directory.delta import Delta, TokenRefused
from reconciler.directory.entries import guid_text
from reconciler.directory.ldap.connect import connect
from reconciler.directory.ldap.paged import RawEntry, Search, complete_ranges, paged_search
from reconciler.directory.ldap.source import LiveSource, in_chain_filter
from reconciler.directory.ldap.usn import SHOW_DELETED_OID, UsnChanges, format_token, parse_token
from reconciler.errors import DirectoryError
from tests.servers.samba import ADMIN_PASSWORD, BASE_DN

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")]  # inside ldap3

ADMIN_ENV = "RECONCILER_TEST_AD_ADMIN_PASSWORD"
LAB_PASSWORD = "Delta-Passw0rd-1!"
LAB_ENV = "RECONCILER_TEST_AD_DELTA_PASSWORD"
TREE_DELETE = ("1.2.840.113556.1.4.805", True, None)
SD_FLAGS = "1.2.840.113556.1.4.801"
NORMAL_ACCOUNT, ACCOUNT_DISABLED, PASSWORD_NOT_REQUIRED = 0x200, 0x2, 0x20

PEOPLE = {  # name -> department
    "Ann": "Engineering", "Ben": "Sales", "Cat": "Sales", "Dan": "Support", "Eve": "Research",
}
GROUPS = {  # name -> members (people or groups), in creation order
    "Pilots": ("Ben", "Cat"),
    "Owners": ("Ann", "Pilots"),
    "Others": ("Dan", "Eve"),
}


class Lab:
    """A small directory of its own on the shared DC: people in Staff, groups in Teams."""

    def __init__(self, dc):
        self.dc = dc
        self.tag = "Delta-" + uuid.uuid4().hex[:6]
        self.root = f"OU={self.tag},{BASE_DN}"
        self.staff = f"OU=Staff,{self.root}"
        self.teams = f"OU=Teams,{self.root}"
        self.elsewhere = f"OU=Elsewhere,{self.root}"
        self.dns: dict[str, str] = {}

    @property
    def admin(self):
        return self.dc.admin()

    def ok(self, done: bool, what: str) -> None:
        assert done, f"{what}: {self.admin.result}"

    def build(self) -> "Lab":
        for dn in (self.root, self.staff, self.teams, self.elsewhere):
            self.ok(self.admin.add(dn, ["top", "organizationalUnit"], {"ou": dn.split(",")[0][3:]}), f"adding {dn}")
        for name, department in PEOPLE.items():
            self.add_user(name, department)
        for name, members in GROUPS.items():
            self.add_group(name, members)
        return self

    def remove(self) -> None:
        self.admin.delete(self.root, controls=[TREE_DELETE])

    def account(self, name: str) -> str:
        return f"{self.tag}-{name}"[:20]

    def add_user(self, name: str, department: str, parent: str | None = None) -> str:
        dn = f"CN={name} Delta,{parent or self.staff}"
        self.ok(self.admin.add(dn, ["top", "person", "organizationalPerson", "user"], {
            "sAMAccountName": self.account(name), "givenName": name, "sn": "Delta", "displayName": f"{name} Delta",
            "mail": f"{self.account(name)}@corp.example.com", "department": department,
            "userAccountControl": str(NORMAL_ACCOUNT | PASSWORD_NOT_REQUIRED),
        }), f"adding {dn}")
        self.dns[name] = dn
        return dn

    def add_group(self, name: str, members: tuple[str, ...], parent: str | None = None) -> str:
        dn = f"CN={name},{parent or self.teams}"
        attributes = {"sAMAccountName": self.account(name)}
        if members:
            attributes["member"] = [self.dns[m] for m in members]
        self.ok(self.admin.add(dn, ["top", "group"], attributes), f"adding {dn}")
        self.dns[name] = dn
        return dn

    def modify(self, name: str, changes: dict) -> None:
        self.ok(self.admin.modify(self.dns[name], changes), f"changing {name}")

    def set(self, name: str, attribute: str, value: str) -> None:
        self.modify(name, {attribute: [(MODIFY_REPLACE, [value])]})

    def join(self, member: str, group: str) -> None:
        self.modify(group, {"member": [(MODIFY_ADD, [self.dns[member]])]})

    def leave(self, member: str, group: str) -> None:
        self.modify(group, {"member": [(MODIFY_DELETE, [self.dns[member]])]})

    def move(self, name: str, parent: str) -> None:
        rdn = self.dns[name].split(",")[0]
        self.ok(self.admin.modify_dn(self.dns[name], rdn, new_superior=parent), f"moving {name}")
        self.dns[name] = f"{rdn},{parent}"

    def rename(self, name: str, new_cn: str) -> None:
        old = self.dns[name]
        self.ok(self.admin.modify_dn(old, f"CN={new_cn}"), f"renaming {name}")
        self.dns[name] = f"CN={new_cn},{old.split(',', 1)[1]}"

    def delete(self, name: str) -> None:
        self.ok(self.admin.delete(self.dns.pop(name)), f"deleting {name}")

    def directory(self, users: dict | None = None, bind: str = "admin", **overrides):
        """A policy directory reading this lab: users in Staff, groups in Teams."""
        credentials = {"admin": (self.dc.connection.extra["admin_dn"], ADMIN_ENV),
                       "service": (self.dc.connection.bind_dn, self.dc.connection.password_env),
                       "lab": (self.dns.get("reader"), LAB_ENV)}[bind]
        return self.dc.directory(users={"search_bases": (self.staff,), **(users or {})},
                                 groups={"search_bases": (self.teams,)},
                                 bind_user=credentials[0], password_env=credentials[1], **overrides)


@pytest.fixture
def lab(samba_dc, bind_password, monkeypatch):
    bind_password(samba_dc)
    monkeypatch.setenv(ADMIN_ENV, ADMIN_PASSWORD)
    monkeypatch.setenv(LAB_ENV, LAB_PASSWORD)
    built = Lab(samba_dc)
    try:
        yield built.build()
    finally:
        built.remove()


# ── the searches a live read makes, and its full read ─────────────────────────────────────

METHOD = UsnChanges(page_size=3, batch=2)  # pages and OR-batches smaller than the lab, so both are exercised


def searches_for(directory) -> dict[str, Search]:
    """The searches LiveSource makes for `directory` (named as delta_read.py says), objectGUID added."""
    source = LiveSource(directory)
    users = directory.users
    users_filter = in_chain_filter(users.filter, users.member_of) if directory.member_of_on_server else users.filter

    def with_guid(names):
        return tuple(sorted({*names, "objectGUID"}, key=str.lower))

    searches = {f"users:{base}": Search(directory.name, base, users_filter, users.scope, with_guid(source.user_attributes()))
                for base in users.search_bases}
    searches.update({f"groups:{base}": Search(directory.name, base, directory.groups.filter, directory.groups.scope,
                                              with_guid(source.group_attributes()))
                     for base in directory.groups.search_bases})
    return searches


def full_read(connection, searches: dict[str, Search]) -> dict[str, dict[str, RawEntry]]:
    """What a full read of each search returns, keyed by objectGUID as the kept records are."""
    result = {}
    for name, search in searches.items():
        entries = [complete_ranges(connection, search, raw)
                   for raw in list(paged_search(connection, search, 7, ignore_ad_system_references=True))]
        result[name] = {METHOD.uuid_of(entry): entry for entry in entries}
    return result


def comparable(records: dict[str, RawEntry]) -> dict[str, tuple]:
    return {key: (entry.dn, {name.lower(): sorted(values or []) for name, values in entry.attributes.items()})
            for key, entry in records.items()}


@dataclass
class Outcome:
    deltas: dict[str, Delta]
    kept: dict[str, dict[str, RawEntry]]
    fresh: dict[str, dict[str, RawEntry]]
    identity: str

    def _names(self, kind: str, ids) -> set[str]:
        name = next(n for n in self.kept if n.startswith(kind + ":"))
        records = {**self.kept[name], **self.fresh[name], **self.deltas[name].changed}
        return {records[key].dn.split(",")[0][3:] for key in ids}

    def changed(self, kind: str) -> set[str]:
        return self._names(kind, self.deltas[next(n for n in self.deltas if n.startswith(kind + ":"))].changed)

    def removed(self, kind: str) -> set[str]:
        return self._names(kind, self.deltas[next(n for n in self.deltas if n.startswith(kind + ":"))].removed)


def delta_after(directory, change, method: UsnChanges = METHOD) -> Outcome:
    """start, full read, `change()`, changes, fresh full read; asserts that the kept records with each delta
    applied are the fresh full read."""
    searches = searches_for(directory)
    connection, _ = connect(directory)
    try:
        identity, tokens = method.start(connection, searches)
        kept = full_read(connection, searches)
        change()
        deltas = method.changes(connection, searches, kept, tokens)
        fresh = full_read(connection, searches)
    finally:
        connection.unbind()
    assert set(deltas) == set(searches)
    for name in searches:
        applied, _ = deltas[name].applied_to(kept[name])
        assert comparable(applied) == comparable(fresh[name]), name
        assert deltas[name].present is None
        assert parse_token(deltas[name].token)[0] >= parse_token(tokens[name])[0]
    return Outcome(deltas, kept, fresh, identity)


def names(*people: str) -> set[str]:
    return {f"{p} Delta" if p in PEOPLE or p in ("Hal", "Gus") else p for p in people}


# ── changes to people ───────────────────────────────────────────────────────────────────────

def test_an_unchanged_directory_gives_empty_deltas(lab):
    outcome = delta_after(lab.directory(), lambda: None)
    for delta in outcome.deltas.values():
        assert delta.changed == {} and delta.removed == frozenset()
    assert len(outcome.kept[f"users:{lab.staff}"]) == len(PEOPLE)


def test_a_modified_attribute(lab):
    outcome = delta_after(lab.directory(), lambda: lab.set("Ann", "department", "Platform"))
    assert outcome.changed("users") == names("Ann") and outcome.removed("users") == set()
    assert outcome.changed("groups") == set() and outcome.removed("groups") == set()
    ann = next(iter(outcome.deltas[f"users:{lab.staff}"].changed.values()))
    assert {k.lower(): v for k, v in ann.attributes.items()}["department"] == [b"Platform"]


def test_a_new_user(lab):
    outcome = delta_after(lab.directory(), lambda: lab.add_user("Hal", "Sales"))
    assert outcome.changed("users") == names("Hal") and outcome.removed("users") == set()
    assert outcome.changed("groups") == set()


def test_a_deleted_user_is_removed_and_its_groups_lose_it(lab):
    """The group's uSNChanged does not change when a member is deleted (Samba as Windows); the group is
    read again because its kept member values name the deleted user's DN."""
    outcome = delta_after(lab.directory(), lambda: lab.delete("Dan"))
    assert outcome.removed("users") == names("Dan") and outcome.changed("users") == set()
    assert outcome.changed("groups") == {"Others"} and outcome.removed("groups") == set()


def test_a_user_moved_out_of_the_base_is_removed(lab):
    outcome = delta_after(lab.directory(), lambda: lab.move("Eve", lab.elsewhere))
    assert outcome.removed("users") == names("Eve") and outcome.changed("users") == set()
    assert outcome.changed("groups") == {"Others"}  # its member value now names Eve's new DN


def test_a_user_moved_into_the_base_is_new(lab):
    outside = lab.add_user("Gus", "Sales", parent=lab.elsewhere)
    assert outside
    outcome = delta_after(lab.directory(), lambda: lab.move("Gus", lab.staff))
    assert outcome.changed("users") == names("Gus") and outcome.removed("users") == set()


def test_a_disabled_user_stays_with_its_new_user_account_control(lab):
    flags = NORMAL_ACCOUNT | PASSWORD_NOT_REQUIRED | ACCOUNT_DISABLED
    outcome = delta_after(lab.directory(), lambda: lab.set("Ben", "userAccountControl", str(flags)))
    assert outcome.changed("users") == names("Ben") and outcome.removed("users") == set()
    ben = next(iter(outcome.deltas[f"users:{lab.staff}"].changed.values()))
    assert {k.lower(): v for k, v in ben.attributes.items()}["useraccountcontrol"] == [str(flags).encode()]


def test_a_user_the_filter_no_longer_matches_is_removed(lab):
    directory = lab.directory(users={"filter": "(&(objectClass=user)(!(objectClass=computer))(!(department=Finance)))"})
    outcome = delta_after(directory, lambda: lab.set("Cat", "department", "Finance"))
    assert outcome.removed("users") == names("Cat") and outcome.changed("users") == set()


def test_a_user_the_filter_now_matches_is_new(lab):
    directory = lab.directory(users={"filter": "(&(objectClass=user)(department=Finance))"})
    outcome = delta_after(directory, lambda: lab.set("Cat", "department", "Finance"))
    assert outcome.changed("users") == names("Cat") and outcome.removed("users") == set()


def test_several_changes_at_once(lab):
    def change():
        lab.set("Ann", "department", "Platform")
        lab.add_user("Hal", "Sales")
        lab.delete("Dan")
        lab.move("Eve", lab.elsewhere)
        lab.join("Hal", "Pilots")
    outcome = delta_after(lab.directory(), change)
    assert outcome.changed("users") == names("Ann", "Hal")
    assert outcome.removed("users") == names("Dan", "Eve")
    assert outcome.changed("groups") == {"Pilots", "Others"}


# ── memberships: memberOf is a back-link ───────────────────────────────────────────────────

def test_joining_a_group_changes_the_users_member_of(lab):
    """The user's uSNChanged does not change (Samba as Windows); the group's member values say who joined."""
    outcome = delta_after(lab.directory(), lambda: lab.join("Eve", "Pilots"))
    assert outcome.changed("users") == names("Eve") and outcome.removed("users") == set()
    assert outcome.changed("groups") == {"Pilots"}


def test_leaving_a_group_changes_the_users_member_of(lab):
    outcome = delta_after(lab.directory(), lambda: lab.leave("Ben", "Pilots"))
    assert outcome.changed("users") == names("Ben") and outcome.changed("groups") == {"Pilots"}


def test_a_group_outside_the_groups_base_changes_its_members_member_of(lab):
    """No kept record says who was in it: its current members and the kept users naming it are read."""
    lab.add_group("Outsiders", ("Ann",), parent=lab.elsewhere)
    outcome = delta_after(lab.directory(), lambda: lab.join("Ben", "Outsiders"))
    assert outcome.changed("users") == names("Ann", "Ben") and outcome.changed("groups") == set()


def test_a_renamed_member_no_search_keeps_changes_its_groups_member_values(lab):
    """Gus is outside the users base: his groups are read again from his memberOf."""
    lab.add_user("Gus", "Support", parent=lab.elsewhere)
    lab.join("Gus", "Others")
    outcome = delta_after(lab.directory(), lambda: lab.rename("Gus", "Gus Renamed"))
    assert outcome.changed("groups") == {"Others"} and outcome.changed("users") == set()


def test_a_deleted_member_no_search_keeps_leaves_its_groups_member_values(lab):
    """Its old DN comes from the tombstone: the last known name and parent."""
    lab.add_user("Gus", "Support", parent=lab.elsewhere)
    lab.join("Gus", "Others")
    outcome = delta_after(lab.directory(), lambda: lab.delete("Gus"))
    assert outcome.changed("groups") == {"Others"} and outcome.changed("users") == set()
    assert outcome.removed("groups") == set() and outcome.removed("users") == set()


def test_a_renamed_group_changes_its_members_member_of_and_its_parents_member(lab):
    outcome = delta_after(lab.directory(), lambda: lab.rename("Pilots", "Pilots Renamed"))
    assert outcome.changed("users") == names("Ben", "Cat") and outcome.removed("users") == set()
    assert outcome.changed("groups") == {"Pilots Renamed", "Owners"} and outcome.removed("groups") == set()


def test_a_deleted_group_leaves_its_members_member_of(lab):
    outcome = delta_after(lab.directory(), lambda: lab.delete("Others"))
    assert outcome.changed("users") == names("Dan", "Eve")
    assert outcome.removed("groups") == {"Others"} and outcome.changed("groups") == set()


# ── memberships through nesting: users.member_of, the in-chain filter ──────────────────────

def in_owners(lab):
    return lab.directory(users={"member_of": (lab.dns["Owners"],)})


def test_the_in_chain_read_starts_with_the_nested_members(lab):
    outcome = delta_after(in_owners(lab), lambda: None)
    assert {e.dn.split(",")[0][3:] for e in outcome.kept[f"users:{lab.staff}"].values()} == names("Ann", "Ben", "Cat")
    assert all(not d.changed and not d.removed for d in outcome.deltas.values())


def test_joining_a_nested_group_brings_the_user_into_scope(lab):
    outcome = delta_after(in_owners(lab), lambda: lab.join("Dan", "Pilots"))
    assert outcome.changed("users") == names("Dan") and outcome.removed("users") == set()
    assert outcome.changed("groups") == {"Pilots"}


def test_leaving_a_nested_group_takes_the_user_out_of_scope(lab):
    outcome = delta_after(in_owners(lab), lambda: lab.leave("Cat", "Pilots"))
    assert outcome.removed("users") == names("Cat") and outcome.changed("users") == set()
    assert outcome.changed("groups") == {"Pilots"}


def test_a_nested_group_taken_out_takes_its_members_out_of_scope(lab):
    """Neither the users nor Pilots change: only Owners does. The ids the in-chain filter matches are
    enumerated again."""
    outcome = delta_after(in_owners(lab), lambda: lab.leave("Pilots", "Owners"))
    assert outcome.removed("users") == names("Ben", "Cat") and outcome.changed("users") == set()
    assert outcome.changed("groups") == {"Owners"}


def test_a_group_nested_in_brings_its_members_into_scope(lab):
    outcome = delta_after(in_owners(lab), lambda: lab.join("Others", "Pilots"))
    assert outcome.changed("users") == names("Dan", "Eve") and outcome.removed("users") == set()
    assert outcome.changed("groups") == {"Pilots"}


def test_a_renamed_nested_group_keeps_its_members_in_scope(lab):
    outcome = delta_after(in_owners(lab), lambda: lab.rename("Pilots", "Pilots Renamed"))
    assert outcome.changed("users") == names("Ben", "Cat") and outcome.removed("users") == set()
    assert outcome.changed("groups") == {"Pilots Renamed", "Owners"}


# ── what makes the caller read in full ─────────────────────────────────────────────────────

def test_an_ordinary_bind_account_cannot_see_tombstones_so_no_delta_is_made(lab):
    """Samba, like AD, answers an ordinary account's show-deleted search with success and no tombstones."""
    directory = lab.directory(bind="service")
    searches = searches_for(directory)
    connection, _ = connect(directory)
    try:
        _, tokens = METHOD.start(connection, searches)
        kept = full_read(connection, searches)
        lab.delete("Dan")
        with pytest.raises(TokenRefused, match="cannot read the Deleted Objects container.*LCRP"):
            METHOD.changes(connection, searches, kept, tokens)
    finally:
        connection.unbind()


def test_an_account_granted_list_and_read_on_deleted_objects_sees_deletions(lab, samba_dc):
    """The grant the refusal advises: take ownership of CN=Deleted Objects, then allow the account
    List Contents and Read Property. The account is the lab's, removed with it."""
    reader = lab.add_user("reader", "IT", parent=lab.elsewhere)
    admin = lab.admin
    lab.ok(admin.modify(reader, {"unicodePwd": [(MODIFY_REPLACE, [f'"{LAB_PASSWORD}"'.encode("utf-16-le")])]}),
           "setting the reader's password")
    admin.search(reader, "(objectClass=*)", BASE, attributes=["objectSid"])
    _grant_list_and_read_on_deleted_objects(admin, admin.response[0]["raw_attributes"]["objectSid"][0])
    try:
        outcome = delta_after(lab.directory(bind="lab"), lambda: lab.delete("Dan"))
        assert outcome.removed("users") == names("Dan") and outcome.changed("groups") == {"Others"}
    finally:
        _revoke_on_deleted_objects(admin)


def test_a_renamed_ou_with_entries_below_it_refuses(lab):
    """Renaming an OU changes the DNs below it and only the OU's uSNChanged."""
    lab.ok(lab.admin.add(f"OU=Night Shift,{lab.staff}", ["top", "organizationalUnit"], {"ou": "Night Shift"}), "adding")
    lab.add_user("Gus", "Support", parent=f"OU=Night Shift,{lab.staff}")
    with pytest.raises(TokenRefused, match="OU=Late Shift,.*renamed or moved"):
        delta_after(lab.directory(), lambda: lab.admin.modify_dn(f"OU=Night Shift,{lab.staff}", "OU=Late Shift"))


def test_a_renamed_group_no_search_keeps_refuses(lab):
    """Kept memberOf values name its old DN, which nothing kept says."""
    lab.add_group("Outsiders", ("Ann",), parent=lab.elsewhere)
    with pytest.raises(TokenRefused, match="group CN=Elsewhere Crew,.*no search keeps it"):
        delta_after(lab.directory(), lambda: lab.rename("Outsiders", "Elsewhere Crew"))


def test_a_watermark_older_than_the_tombstone_lifetime_is_refused(lab):
    directory = lab.directory()
    searches = searches_for(directory)
    connection, _ = connect(directory)
    try:
        _, tokens = METHOD.start(connection, searches)
        usn, when = parse_token(next(iter(tokens.values())))
        old = {name: format_token(usn, when - timedelta(days=180)) for name in searches}  # Samba: 180 days
        with pytest.raises(TokenRefused, match="180 days old and tombstones live 180 days"):
            METHOD.changes(connection, searches, full_read(connection, searches), old)
        recent = {name: format_token(usn, when - timedelta(days=178)) for name in searches}
        METHOD.changes(connection, searches, full_read(connection, searches), recent)
    finally:
        connection.unbind()


def test_a_watermark_above_the_servers_usn_is_refused(lab):
    directory = lab.directory()
    searches = searches_for(directory)
    connection, _ = connect(directory)
    try:
        _, tokens = METHOD.start(connection, searches)
        usn, when = parse_token(next(iter(tokens.values())))
        ahead = {name: format_token(usn + 1_000_000, when) for name in searches}
        with pytest.raises(TokenRefused, match="below the kept watermark"):
            METHOD.changes(connection, searches, full_read(connection, searches), ahead)
    finally:
        connection.unbind()


@pytest.mark.parametrize("attribute, why", [
    ("lastLogon", "not replicated"),
    ("msDS-User-Account-Control-Computed", "computed by the server"),
    ("manager", "link between entries"),
])
def test_an_attribute_uSNChanged_does_not_cover_refuses(lab, attribute, why):
    directory = lab.directory()
    searches = {name: Search(s.directory, s.base, s.filter, s.scope, (*s.attributes, attribute))
                for name, s in searches_for(directory).items()}
    connection, _ = connect(directory)
    try:
        _, tokens = METHOD.start(connection, searches)
        with pytest.raises(TokenRefused, match=why):
            METHOD.changes(connection, searches, full_read(connection, searches), tokens)
    finally:
        connection.unbind()


def test_a_search_that_fails_fails_the_delta(lab):
    """The users base deleted after the watermark: the delta fails closed, as a full read would."""
    directory = lab.directory()
    searches = searches_for(directory)
    connection, _ = connect(directory)
    try:
        _, tokens = METHOD.start(connection, searches)
        kept = full_read(connection, searches)
        lab.ok(lab.admin.delete(lab.staff, controls=[TREE_DELETE]), "deleting Staff")
        with pytest.raises(DirectoryError, match="incomplete read of base 'OU=Staff,.*noSuchObject"):
            METHOD.changes(connection, searches, kept, tokens)
    finally:
        connection.unbind()


# ── identity ────────────────────────────────────────────────────────────────────────────────

def test_the_identity_is_the_dcs_invocation_id_and_naming_context(lab, samba_dc):
    admin = lab.admin
    admin.search("", "(objectClass=*)", BASE, attributes=["dsServiceName"])
    service = admin.response[0]["raw_attributes"]["dsServiceName"][0].decode()
    admin.search(service, "(objectClass=*)", BASE, attributes=["invocationId"])
    invocation = guid_text(admin.response[0]["raw_attributes"]["invocationId"][0])

    identities = set()
    for bind in ("admin", "service"):
        directory = lab.directory(bind=bind)
        connection, _ = connect(directory)
        try:
            searches = searches_for(directory)
            identities.add(METHOD.identity(connection, searches))
            identities.add(METHOD.start(connection, searches)[0])
            configuration = {"config": Search(directory.name, f"CN=Sites,CN=Configuration,{BASE_DN}", "(objectClass=site)")}
            elsewhere = METHOD.identity(connection, configuration)
        finally:
            connection.unbind()
    assert identities == {f"{invocation}@{BASE_DN}"}
    assert elsewhere == f"{invocation}@CN=Configuration,{BASE_DN}"


# ── Samba's behaviour the method relies on, observed directly ───────────────────────────────

def _usn_changed(admin, dn: str, controls=None) -> int:
    admin.search(dn, "(objectClass=*)", BASE, attributes=["uSNChanged"], controls=controls)
    return int(admin.response[0]["raw_attributes"]["uSNChanged"][0])


def test_samba_marks_the_group_not_the_member_and_keeps_tombstones(lab):
    """What the module docstring says of AD, as this Samba does it."""
    admin = lab.admin
    ben, pilots, owners = lab.dns["Ben"], lab.dns["Pilots"], lab.dns["Owners"]
    before = {dn: _usn_changed(admin, dn) for dn in (ben, pilots, owners)}
    lab.join("Eve", "Pilots")
    lab.rename("Pilots", "Pilots Renamed")
    assert _usn_changed(admin, ben) == before[ben]  # its memberOf changed, its uSNChanged did not
    assert _usn_changed(admin, owners) == before[owners]  # its member value changed, its uSNChanged did not
    assert _usn_changed(admin, lab.dns["Pilots"]) > before[pilots]
    others = lab.dns["Others"]
    others_before = _usn_changed(admin, others)
    admin.search(lab.dns["Dan"], "(objectClass=*)", BASE, attributes=["objectGUID"])
    guid = admin.response[0]["raw_attributes"]["objectGUID"][0]
    lab.delete("Dan")
    assert _usn_changed(admin, others) == others_before  # Dan left its member values, its uSNChanged stayed
    admin.search(BASE_DN, f"(objectGUID={escape_bytes(guid)})", attributes=[
        "isDeleted", "lastKnownParent", "name", "objectGUID"], controls=[(SHOW_DELETED_OID, True, None)])
    (tombstone,) = [e for e in admin.response if e["type"] == "searchResEntry"]
    assert tombstone["dn"].startswith("CN=Dan Delta\\0ADEL:") and ",CN=Deleted Objects," in tombstone["dn"]
    assert tombstone["raw_attributes"]["isDeleted"] == [b"TRUE"]
    assert tombstone["raw_attributes"]["lastKnownParent"] == [lab.staff.encode()]


# ── the Deleted Objects grant (test helpers) ───────────────────────────────────────────────

_DELETED_OBJECTS = f"CN=Deleted Objects,{BASE_DN}"
_granted: list[bytes] = []


def _sd_control(flags: int) -> tuple:
    return (SD_FLAGS, True, bytes([0x30, 0x03, 0x02, 0x01, flags]))  # SEQUENCE { INTEGER flags }


def _grant_list_and_read_on_deleted_objects(admin, sid: bytes) -> None:
    """dsacls /takeownership, then /G account:LCRP, over LDAP: owner BUILTIN\\Administrators, then an
    allow ACE (RP|LC) for `sid` appended to the DACL."""
    show = (SHOW_DELETED_OID, True, None)
    administrators = bytes([1, 2, 0, 0, 0, 0, 0, 5]) + struct.pack("<II", 32, 544)  # S-1-5-32-544
    owner_only = struct.pack("<BBHIIII", 1, 0, 0x8000, 20, 0, 0, 0) + administrators
    assert admin.modify(_DELETED_OBJECTS, {"nTSecurityDescriptor": [(MODIFY_REPLACE, [owner_only])]},
                        controls=[show, _sd_control(0x1)]), admin.result
    admin.search(_DELETED_OBJECTS, "(objectClass=*)", BASE, attributes=["nTSecurityDescriptor"],
                 controls=[show, _sd_control(0x4)])
    descriptor = admin.response[0]["raw_attributes"]["nTSecurityDescriptor"][0]
    dacl_at = struct.unpack_from("<I", descriptor, 16)[0]
    revision, _, size, count, _ = struct.unpack_from("<BBHHH", descriptor, dacl_at)
    aces = descriptor[dacl_at + 8:dacl_at + size]
    ace = struct.pack("<BBHI", 0, 0, 8 + len(sid), 0x10 | 0x4) + sid  # ACCESS_ALLOWED: READ_PROP | LIST_CHILDREN
    dacl = struct.pack("<BBHHH", revision, 0, 8 + len(aces) + len(ace), count + 1, 0) + aces + ace
    new = struct.pack("<BBHIIII", 1, 0, 0x8004, 0, 0, 0, 20) + dacl  # self-relative, DACL present
    assert admin.modify(_DELETED_OBJECTS, {"nTSecurityDescriptor": [(MODIFY_REPLACE, [new])]},
                        controls=[show, _sd_control(0x4)]), admin.result
    _granted.append(descriptor)


def _revoke_on_deleted_objects(admin) -> None:
    """Puts the DACL back as it was before the grant (the owner stays BUILTIN\\Administrators)."""
    if not _granted:
        return
    descriptor = _granted.pop()
    dacl_at = struct.unpack_from("<I", descriptor, 16)[0]
    size = struct.unpack_from("<H", descriptor, dacl_at + 2)[0]
    original = struct.pack("<BBHIIII", 1, 0, 0x8004, 0, 0, 0, 20) + descriptor[dacl_at:dacl_at + size]
    admin.modify(_DELETED_OBJECTS, {"nTSecurityDescriptor": [(MODIFY_REPLACE, [original])]},
                 controls=[(SHOW_DELETED_OID, True, None), _sd_control(0x4)])
