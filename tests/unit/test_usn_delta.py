"""AD delta reads (`usn.UsnChanges`): the pieces that need no server, and a fake DC for what Samba
cannot show (it never sends `member;range=` values) or should not be made to do (fail a search).

The behaviour against a real server is tests/integration/test_ad_delta.py.
"""
from __future__ import annotations

import struct
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from reconciler.directory.delta import Delta, TokenRefused
from reconciler.directory.entries import guid_text
from reconciler.directory.ldap.paged import RawEntry, Search
from reconciler.directory.ldap.source import in_chain_filter
from reconciler.directory.ldap.usn import (
    NAME_ATTID, SHOW_DELETED_OID, SHOW_RECYCLED_OID, UsnChanges, _contexts, _naming, and_filter, attribute_verdict,
    changed_object, check_age, filter_attributes, format_token, generalized_time, name_change_usn, or_filter,
    parse_token, tombstone_old_dn,
)
from reconciler.errors import DirectoryError

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


# ── tokens and their age ───────────────────────────────────────────────────────────────────

def test_a_token_is_the_usn_and_the_server_time():
    token = format_token(4047, NOW)
    assert token == "4047@2026-03-01T12:00:00Z"
    assert parse_token(token) == (4047, NOW)


@pytest.mark.parametrize("token", [None, "", "4047", "x@2026-03-01T12:00:00Z", "-1@2026-03-01T12:00:00Z",
                                   "4047@yesterday", "cookie-from-syncrepl"])
def test_a_token_that_does_not_read_is_refused_not_an_error(token):
    with pytest.raises(TokenRefused):
        parse_token(token)


def test_the_root_dse_current_time_reads():
    assert generalized_time(b"20260301120000.0Z") == NOW
    assert generalized_time("20260301120000Z") == NOW
    assert generalized_time(b"yesterday") is None and generalized_time(None) is None


def test_a_watermark_is_refused_a_day_before_tombstones_may_be_collected():
    check_age(NOW - timedelta(days=178, hours=23), NOW, 180)
    with pytest.raises(TokenRefused, match="179 days old and tombstones live 180 days"):
        check_age(NOW - timedelta(days=179), NOW, 180)
    with pytest.raises(TokenRefused, match="after the server's clock"):
        check_age(NOW + timedelta(hours=1), NOW, 180)
    check_age(NOW + timedelta(minutes=2), NOW, 180)  # clocks a little apart are not a reason


# ── replication metadata and tombstones ────────────────────────────────────────────────────

def metadata(*rows: tuple[int, int]) -> bytes:
    """A replPropertyMetaData value (PROPERTY_META_DATA_EXT_VECTOR v1): (attid, local USN) rows."""
    blob = struct.pack("<IIII", 1, 0, len(rows), 0)
    for attid, local in rows:
        blob += struct.pack("<IIQ16sqq", attid, 1, 13400000000, uuid.uuid4().bytes, local, local)
    return blob


def test_the_name_attributes_local_usn_says_when_an_object_was_renamed_or_moved():
    assert name_change_usn(metadata((0x0, 4019), (NAME_ATTID, 4060), (0x90008, 4019))) == 4060
    assert name_change_usn(metadata((0x0, 4019))) is None
    assert name_change_usn(b"") is None and name_change_usn(None) is None
    assert name_change_usn(struct.pack("<IIII", 2, 0, 0, 0)) is None  # a version not understood
    assert name_change_usn(metadata((NAME_ATTID, 4060))[:40]) is None  # cut short


def test_a_tombstone_says_the_dn_it_had():
    guid = "39abfdc3-c282-4e64-b7e0-a92b02989849"
    dn = f"CN=Lab One\\0ADEL:{guid},CN=Deleted Objects,DC=corp,DC=example,DC=com"
    assert tombstone_old_dn(dn, f"Lab One\nDEL:{guid}", None, "OU=People,DC=corp,DC=example,DC=com") == \
        "CN=Lab One,OU=People,DC=corp,DC=example,DC=com"
    # Windows 2008 R2 and later keep the RDN value in msDS-LastKnownRDN; escaping is redone
    assert tombstone_old_dn(dn, "whatever", "Smith, Ann + Co", "OU=People,DC=x") == "CN=Smith\\, Ann \\+ Co,OU=People,DC=x"
    assert tombstone_old_dn(f"OU=Old\\0ADEL:{guid},CN=Deleted Objects,DC=x", f"Old\nDEL:{guid}", None, "DC=x") == "OU=Old,DC=x"
    assert tombstone_old_dn(dn, f"Lab One\nDEL:{guid}", None, None) is None
    assert tombstone_old_dn("CN=Deleted Objects,DC=x", "Deleted Objects", None, None) is None


def test_a_changed_object_is_read_from_the_change_search():
    guid = uuid.uuid4()
    entry = RawEntry(f"CN=Dan\\0ADEL:{guid},CN=Deleted Objects,DC=x", {
        "objectGUID": [guid.bytes_le], "objectClass": [b"top", b"person", b"organizationalPerson", b"user"],
        "isDeleted": [b"TRUE"], "uSNCreated": [b"40"], "uSNChanged": [b"51"], "lastKnownParent": [b"OU=Staff,DC=x"],
        "name": [f"Dan\nDEL:{guid}".encode()], "msDS-LastKnownRDN": [], "replPropertyMetaData": [metadata((NAME_ATTID, 51))],
    })
    key, item = changed_object(entry)
    assert key == str(guid)
    assert (item.deleted, item.group, item.usn_created, item.usn_changed, item.name_usn) == (True, False, 40, 51, 51)
    assert item.old_dn == "CN=Dan,OU=Staff,DC=x"
    group = RawEntry("CN=G,DC=x", {"objectGUID": [guid.bytes_le], "objectClass": [b"top", b"group"], "isDeleted": []})
    assert changed_object(group)[1].group and not changed_object(group)[1].deleted
    assert changed_object(RawEntry("CN=G,DC=x", {"objectGUID": [b"short"]})) is None


# ── what a search asks ─────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("name, syntax, link, flags, verdict", [
    ("department", "2.5.5.12", None, 16, None),
    ("userAccountControl", "2.5.5.9", None, 18, None),
    ("objectGUID", "2.5.5.10", None, 19, None),  # not replicated as an attribute, but never changes
    ("memberOf", "2.5.5.1", 3, 17, None),  # handled: the groups' changes say whose memberOf changed
    ("member", "2.5.5.1", 2, 18, None),
    ("lastLogon", "2.5.5.16", None, 17, "not replicated"),
    ("msDS-User-Account-Control-Computed", "2.5.5.9", None, 20, "computed by the server"),
    ("manager", "2.5.5.1", 42, 16, "forward link"),
    ("directReports", "2.5.5.1", 43, 17, "back-link"),
    ("seeAlso", "2.5.5.1", None, 16, "holds DNs"),
])
def test_which_attributes_a_usn_watermark_covers(name, syntax, link, flags, verdict):
    why = attribute_verdict(name, syntax, link, flags)
    assert (why is None) if verdict is None else (verdict in why)


def test_the_attributes_a_filter_tests():
    in_chain = in_chain_filter("(&(objectClass=user)(!(department=Finance)))", ("CN=R&D (Europe) *,OU=Groups,DC=x",))
    assert filter_attributes(in_chain) == {"objectclass", "department", "memberof"}
    assert filter_attributes("objectClass=user") == {"objectclass"}  # the policy may leave the parentheses off
    assert filter_attributes("(&(userAccountControl:1.2.840.113556.1.4.803:=2)(cn>=m)(sn<=z)(mail~=x)(2.5.4.3=a))") == \
        {"useraccountcontrol", "cn", "sn", "mail", "2.5.4.3"}


def test_clauses_are_added_to_the_searchs_own_filter():
    assert and_filter("(objectClass=user)", "(uSNChanged>=42)") == "(&(objectClass=user)(uSNChanged>=42))"
    assert and_filter("objectClass=user", "(uSNChanged>=42)") == "(&(objectClass=user)(uSNChanged>=42))"
    assert or_filter(["(a=1)"]) == "(a=1)" and or_filter(["(a=1)", "(b=2)"]) == "(|(a=1)(b=2))"


def test_the_id_is_the_object_guid_in_text():
    raw = uuid.uuid4().bytes_le
    method = UsnChanges()
    assert method.uuid_of(RawEntry("CN=a", {"objectGUID": [raw]})) == guid_text(raw)
    assert method.uuid_of(RawEntry("CN=a", {"objectguid": [raw]})) == guid_text(raw)
    assert method.uuid_of(RawEntry("CN=a", {"objectGUID": [b"too short"]})) is None
    assert method.uuid_of(RawEntry("CN=a", {"cn": [b"a"]})) is None
    assert (method.name, method.uuid_attribute) == ("usn", "objectGUID")


def test_the_naming_context_of_each_base():
    root = {"namingcontexts": [b"DC=corp,DC=example,DC=com", b"CN=Configuration,DC=corp,DC=example,DC=com",
                               b"CN=Schema,CN=Configuration,DC=corp,DC=example,DC=com"],
            "defaultnamingcontext": [b"DC=corp,DC=example,DC=com"]}
    searches = {"users:a": Search("corp", "OU=People,dc=corp,dc=example,dc=com", "(x=1)"),
                "groups:b": Search("corp", "CN=Sites,CN=Configuration,DC=corp,DC=example,DC=com", "(x=1)"),
                "users:c": Search("corp", "DC=corp,DC=example,DC=com", "(x=1)")}
    assert _contexts(root, searches) == ["CN=Configuration,DC=corp,DC=example,DC=com", "DC=corp,DC=example,DC=com"]
    assert _contexts(root, {"x": Search("corp", "O=Elsewhere", "(x=1)")}) == ["DC=corp,DC=example,DC=com"]


def test_kept_records_naming_a_dn_whatever_its_spelling():
    kept = {
        "ann": RawEntry("CN=Ann,OU=S,DC=x", {"memberOf": [b"CN=Pilots,OU=T,DC=x", b"CN=Other,OU=T,DC=x"]}),
        "ben": RawEntry("CN=Ben,OU=S,DC=x", {"memberOf": [b"cn=R&D \\2A,ou=t,dc=x"]}),
        "owners": RawEntry("CN=Owners,OU=T,DC=x", {"member": [b"CN=Pilots,OU=T,DC=x"]}),
        "cat": RawEntry("CN=Cat,OU=S,DC=x", {"memberOf": []}),
    }
    assert set(_naming(kept, {"cn=pilots,ou=t,dc=x"})) == {"ann", "owners"}
    assert set(_naming(kept, {"cn=pilots,ou=t,dc=x"}, ("member",))) == {"owners"}
    assert set(_naming(kept, {"cn=r&d *,ou=t,dc=x"})) == {"ben"}
    assert set(_naming(kept, set())) == set()


# ── a fake domain controller ────────────────────────────────────────────────────────────────

NC = "DC=x"
SERVICE = "CN=NTDS Settings,CN=DC1,CN=Servers,CN=Site,CN=Sites,CN=Configuration,DC=x"
STAFF, TEAMS = "OU=Staff,DC=x", "OU=Teams,DC=x"


def guid(name: str) -> bytes:
    return uuid.uuid5(uuid.NAMESPACE_DNS, name).bytes_le


def gid(name: str) -> str:
    return guid_text(guid(name))


class FakeDC:
    """Answers the searches `UsnChanges` makes, from tables a test fills in; records every call."""

    def __init__(self, invocation: bytes = b"\x01" * 16, usn: int = 20, controls: tuple = ()):
        self.invocation = invocation
        self.usn = usn
        self.controls = list(controls)
        self.deleted_objects_readable = True
        self.changed: list[RawEntry] = []  # what the naming-context-wide change search returns
        self.answers: list[tuple] = []  # (base, text in the filter, entries)
        self.ranges: dict[tuple[str, str], dict] = {}  # (dn, "member;range=2-*") -> raw attributes
        self.failures: dict[str, dict] = {}  # text in the filter -> result
        self.calls: list[dict] = []
        self.result: dict = {}
        self.response: list | None = None

    def _answer(self, entries, result=None):
        self.result = result or {"result": 0, "description": "success", "message": ""}
        self.response = [{"type": "searchResEntry", "dn": e.dn, "raw_attributes": e.attributes} for e in entries]
        return self.result["result"] == 0

    def search(self, base, search_filter, search_scope=None, attributes=None, controls=None, paged_size=None,
               paged_cookie=None, paged_criticality=False, time_limit=0, size_limit=0):
        self.calls.append({"base": base, "filter": search_filter, "attributes": attributes, "controls": controls})
        for text, result in self.failures.items():
            if text in search_filter:
                return self._answer([], result)
        if base == "":
            return self._answer([RawEntry("", {
                "highestCommittedUSN": [str(self.usn).encode()], "currentTime": [NOW.strftime("%Y%m%d%H%M%S.0Z").encode()],
                "dsServiceName": [SERVICE.encode()], "namingContexts": [NC.encode(), b"CN=Configuration,DC=x"],
                "defaultNamingContext": [NC.encode()], "configurationNamingContext": [b"CN=Configuration,DC=x"],
                "schemaNamingContext": [b"CN=Schema,CN=Configuration,DC=x"],
                "supportedControl": [c.encode() for c in self.controls]})])
        if base == SERVICE:
            return self._answer([RawEntry(base, {"invocationId": [self.invocation]})])
        if base.startswith("CN=Directory Service,"):
            return self._answer([RawEntry(base, {"tombstoneLifetime": [b"180"]})])
        if base.startswith("<WKGUID="):
            return self._answer([RawEntry("CN=Deleted Objects,DC=x", {
                "isDeleted": [b"TRUE"] if self.deleted_objects_readable else []})])
        if base.startswith("CN=Schema,"):
            return self._answer([])
        for attribute in attributes or ():
            if (base, attribute) in self.ranges:
                return self._answer([RawEntry(base, self.ranges[(base, attribute)])])
        if base == NC and "(!(uSNChanged>=" in search_filter:
            return self._answer(self.changed)
        for where, text, entries in self.answers:
            if base == where and text in search_filter:
                return self._answer(entries)
        return self._answer([])


def user(name: str, *groups: str) -> RawEntry:
    return RawEntry(f"CN={name},{STAFF}", {"objectGUID": [guid(name)], "sAMAccountName": [name.encode()],
                                           "memberOf": [f"CN={g},{TEAMS}".encode() for g in groups]})


def group(name: str, *members: str, **ranged) -> RawEntry:
    values = {"member": [f"CN={m},{STAFF}".encode() for m in members]} if not ranged else ranged
    return RawEntry(f"CN={name},{TEAMS}", {"objectGUID": [guid(name)], "cn": [name.encode()], **values})


def change(name: str, dn: str, created: int, changed: int, *classes: str) -> RawEntry:
    return RawEntry(dn, {"objectGUID": [guid(name)], "objectClass": [c.encode() for c in ("top", *classes)],
                         "uSNCreated": [str(created).encode()], "uSNChanged": [str(changed).encode()], "isDeleted": []})


SEARCHES = {
    f"users:{STAFF}": Search("corp", STAFF, "(objectClass=user)", "subtree", ("memberOf", "objectGUID", "sAMAccountName")),
    f"groups:{TEAMS}": Search("corp", TEAMS, "(objectClass=group)", "subtree", ("cn", "member", "objectGUID")),
}
TOKENS = {name: format_token(10, NOW - timedelta(hours=1)) for name in SEARCHES}


def test_start_reads_the_watermark_and_the_dcs_invocation_id():
    invocation = uuid.uuid4().bytes_le
    identity, tokens = UsnChanges().start(FakeDC(invocation=invocation, usn=4047), SEARCHES)
    assert identity == f"{guid_text(invocation)}@{NC}"
    assert tokens == {name: "4047@2026-03-01T12:00:00Z" for name in SEARCHES}


def test_another_invocation_id_is_another_identity():
    """What a second DC or a restored one looks like to the caller: the kept state is not used."""
    method = UsnChanges()
    first = method.identity(FakeDC(invocation=b"\x01" * 16), SEARCHES)
    assert method.identity(FakeDC(invocation=b"\x01" * 16), SEARCHES) == first
    assert method.identity(FakeDC(invocation=b"\x02" * 16), SEARCHES) != first


def test_nothing_changed_in_the_window_is_empty_deltas_and_a_new_token():
    dc = FakeDC(usn=20)
    deltas = UsnChanges().changes(dc, SEARCHES, {name: {} for name in SEARCHES}, TOKENS)
    assert deltas == {name: Delta({}, frozenset(), None, "20@2026-03-01T12:00:00Z") for name in SEARCHES}
    (change_search,) = [c for c in dc.calls if c["base"] == NC]
    assert change_search["filter"] == "(&(uSNChanged>=11)(!(uSNChanged>=21)))"
    assert (SHOW_DELETED_OID, True, None) in change_search["controls"]


def test_deleted_objects_are_asked_for_with_show_recycled_where_the_server_offers_it():
    dc = FakeDC(controls=(SHOW_RECYCLED_OID, SHOW_DELETED_OID))
    UsnChanges().changes(dc, SEARCHES, {name: {} for name in SEARCHES}, TOKENS)
    (change_search,) = [c for c in dc.calls if c["base"] == NC]
    assert change_search["controls"][0] == (SHOW_RECYCLED_OID, True, None)


def test_an_account_that_cannot_see_tombstones_is_refused():
    dc = FakeDC()
    dc.deleted_objects_readable = False
    with pytest.raises(TokenRefused, match="cannot read the Deleted Objects container"):
        UsnChanges().changes(dc, SEARCHES, {name: {} for name in SEARCHES}, TOKENS)


def test_a_failed_search_fails_the_delta_closed():
    dc = FakeDC()
    dc.changed = [change("ann", f"CN=ann,{STAFF}", 5, 15, "person", "user")]
    dc.failures["(uSNChanged>=11))"] = {"result": 51, "description": "busy", "message": "try later"}
    with pytest.raises(DirectoryError, match="incomplete read of base 'OU=Staff,DC=x'.*busy"):
        UsnChanges().changes(dc, SEARCHES, {name: {} for name in SEARCHES}, TOKENS)


def test_ranged_member_values_are_followed_to_the_last_range():
    """A group with more values than AD's MaxValRange sends `member;range=0-1` first; the delta's record
    holds every value, and the member that joined beyond the first range has its memberOf read again."""
    dc = FakeDC()
    dc.changed = [change("Pilots", f"CN=Pilots,{TEAMS}", 5, 15, "group")]
    dc.answers.append((TEAMS, "(uSNChanged>=11)", [group("Pilots", **{"member;range=0-1": [
        f"CN=ann,{STAFF}".encode(), f"CN=ben,{STAFF}".encode()]})]))
    dc.ranges[(f"CN=Pilots,{TEAMS}", "member;range=2-*")] = {"member;range=2-*": [f"CN=cat,{STAFF}".encode()]}
    dc.answers.append((STAFF, "(objectGUID=", [user("cat", "Pilots")]))
    kept = {f"users:{STAFF}": {gid(n): user(n, *(["Pilots"] if n != "cat" else [])) for n in ("ann", "ben", "cat")},
            f"groups:{TEAMS}": {gid("Pilots"): group("Pilots", "ann", "ben")}}
    deltas = UsnChanges().changes(dc, SEARCHES, kept, TOKENS)
    pilots = deltas[f"groups:{TEAMS}"].changed[gid("Pilots")]
    assert sorted(pilots.attributes["member"]) == [f"CN={n},{STAFF}".encode() for n in ("ann", "ben", "cat")]
    assert set(deltas[f"users:{STAFF}"].changed) == {gid("cat")}
    assert deltas[f"users:{STAFF}"].removed == frozenset()
    (reread,) = [c for c in dc.calls if c["base"] == STAFF and "objectGUID=" in c["filter"]]
    assert reread["filter"].startswith("(&(objectClass=user)(objectGUID=\\")


def test_a_pre_existing_object_with_entries_below_it_renamed_is_refused():
    dc = FakeDC()
    item = change("ou", "OU=Late Shift,OU=Staff,DC=x", 5, 15, "organizationalUnit")
    item.attributes["replPropertyMetaData"] = [metadata((NAME_ATTID, 15))]
    dc.changed = [item]
    dc.answers.append(("OU=Late Shift,OU=Staff,DC=x", "(objectClass=*)", [user("gus")]))
    with pytest.raises(TokenRefused, match="OU=Late Shift,OU=Staff,DC=x was renamed or moved"):
        UsnChanges().changes(dc, SEARCHES, {name: {} for name in SEARCHES}, TOKENS)
    item.attributes["replPropertyMetaData"] = [metadata((NAME_ATTID, 5))]  # changed since, but not renamed
    UsnChanges().changes(dc, SEARCHES, {name: {} for name in SEARCHES}, TOKENS)
