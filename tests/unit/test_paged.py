"""Paged reads and ranged retrieval fail closed.

A fake connection stands in for the server where the real ones cannot produce
the case: Samba returns every `member` value at once (no `;range=`), and
result codes like busy or a referral in the middle of a read are hard to
provoke on demand. The fake follows the protocol rules the reader relies on:
paged-results cookies, and AD's MaxValRange ranges.
"""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st
from ldap3.core.exceptions import LDAPSocketReceiveError

from reconciler.directory.ldap.source import LiveSource, in_chain_filter
from reconciler.directory.ldap.paged import PAGED_RESULTS_OID, RawEntry, Search, complete_ranges, paged_search
from reconciler.errors import DirectoryError
from reconciler.model import normalise_dn
from reconciler.policy.model import FLAVOUR_SCHEMAS, GroupScope, UserScope
from tests.factories import directory as make_directory

SUCCESS = {"result": 0, "description": "success", "message": ""}


class FakeAD:
    """An in-memory directory speaking just enough LDAP: paging by cookie and AD-style value ranges."""

    def __init__(self, entries: dict[str, dict[str, list[bytes]]], max_range: int = 1500):
        self.entries = entries
        self.max_range = max_range
        self.calls: list[dict] = []
        self.failures: dict[int, dict | Exception] = {}  # call number (1-based) -> result or exception
        self.references: list[str] = []  # continuation references returned with the first page
        self.result: dict = {}
        self.response: list | None = None

    def search(self, base, search_filter, search_scope=None, attributes=None, paged_size=None, paged_cookie=None,
               paged_criticality=False, time_limit=0, size_limit=0):
        self.calls.append({"base": base, "filter": search_filter, "attributes": attributes, "cookie": paged_cookie,
                           "paged_size": paged_size})
        failure = self.failures.get(len(self.calls))
        if isinstance(failure, Exception):
            raise failure
        if failure is not None:
            self.result, self.response = failure, []
            return False
        if paged_size is None:  # a base read, as ranged retrieval does
            return self._base(base, attributes or [])
        dns = sorted(dn for dn in self.entries if dn.lower().endswith(base.lower()))
        start = int(paged_cookie or b"0")
        page = dns[start:start + paged_size]
        self.response = [self._entry(dn, attributes or []) for dn in page]
        if start == 0:
            self.response += [{"type": "searchResRef", "uri": [uri]} for uri in self.references]
        cookie = str(start + paged_size).encode() if start + paged_size < len(dns) else b""
        self.result = dict(SUCCESS, controls={PAGED_RESULTS_OID: {"value": {"size": 0, "cookie": cookie}}})
        return True

    def _base(self, dn, attributes):
        self.result = dict(SUCCESS)
        self.response = [self._entry(dn, attributes)]
        return True

    def _entry(self, dn, attributes):
        raw = {}
        stored = {k.lower(): v for k, v in self.entries[dn].items()}
        for wanted in attributes:
            name, _, option = wanted.partition(";range=")
            values = stored.get(name.lower())
            if values is None:
                continue
            start = int(option.split("-")[0]) if option else 0
            if len(values) <= self.max_range and not option:
                raw[name] = values
                continue
            chunk = values[start:start + self.max_range]
            last = start + len(chunk) >= len(values)
            raw[f"{name};range={start}-{'*' if last else start + len(chunk) - 1}"] = chunk
        return {"type": "searchResEntry", "dn": dn, "raw_attributes": raw}

    def unbind(self):
        pass


def people(n: int) -> dict[str, dict[str, list[bytes]]]:
    return {f"CN=User {i:04d},OU=People,DC=corp,DC=example,DC=com": {
        "objectGUID": [i.to_bytes(16, "little")], "sAMAccountName": [f"user{i:04d}".encode()],
        "mail": [f"user{i:04d}@corp.example.com".encode()], "userAccountControl": [b"512"]} for i in range(n)}


SEARCH = Search("corp", "OU=People,DC=corp,DC=example,DC=com", "(objectClass=user)", "subtree", ("mail",))


def test_every_page_is_read_following_the_cookie():
    server = FakeAD(people(25))
    entries = list(paged_search(server, SEARCH, page_size=10))
    assert len(entries) == 25
    assert len({e.dn for e in entries}) == 25
    assert [c["cookie"] for c in server.calls] == [None, b"10", b"20"]


@pytest.mark.parametrize("code, description", [
    (3, "timeLimitExceeded"), (4, "sizeLimitExceeded"), (11, "adminLimitExceeded"), (51, "busy"), (52, "unavailable"),
    (10, "referral"),
])
def test_a_non_success_result_on_any_page_aborts_with_directory_base_filter_and_cause(code, description):
    server = FakeAD(people(25))
    server.failures[2] = {"result": code, "description": description, "message": "", "referrals": None}
    with pytest.raises(DirectoryError) as raised:
        list(paged_search(server, SEARCH, page_size=10))
    message = str(raised.value)
    assert "directory corp" in message
    assert "OU=People,DC=corp,DC=example,DC=com" in message
    assert "(objectClass=user)" in message
    assert description in message
    assert "\n" not in message


def test_a_connection_lost_between_pages_aborts():
    server = FakeAD(people(25))
    server.failures[3] = LDAPSocketReceiveError("error receiving data: [Errno 104] Connection reset by peer")
    with pytest.raises(DirectoryError, match="connection was lost after 2 page"):
        list(paged_search(server, SEARCH, page_size=10))


def test_a_filter_ldap3_cannot_send_is_reported_as_a_filter_problem_not_a_lost_connection():
    from ldap3.core.exceptions import LDAPInvalidFilterError

    server = FakeAD(people(3))
    server.failures[1] = LDAPInvalidFilterError("malformed filter")
    with pytest.raises(DirectoryError, match="not a valid LDAP filter"):
        list(paged_search(server, SEARCH, page_size=10))


def test_a_continuation_reference_is_not_silently_skipped():
    server = FakeAD(people(3))
    server.references = ["ldap://emea.corp.example.com/OU=EMEA,OU=People,DC=corp,DC=example,DC=com"]
    with pytest.raises(DirectoryError, match="referred part of the tree elsewhere .*emea.corp.example.com"):
        list(paged_search(server, SEARCH, page_size=10, ignore_ad_system_references=True))


def test_ad_references_to_its_configuration_and_dns_partitions_are_skipped():
    server = FakeAD(people(3))
    server.references = ["ldap://corp.example.com/CN=Configuration,DC=corp,DC=example,DC=com",
                         "ldap://DomainDnsZones.corp.example.com/DC=DomainDnsZones,DC=corp,DC=example,DC=com"]
    assert len(list(paged_search(server, SEARCH, page_size=10, ignore_ad_system_references=True))) == 3


GROUP_DN = "CN=Everyone Big,OU=Groups,DC=corp,DC=example,DC=com"


def big_group(members: int) -> dict[str, dict[str, list[bytes]]]:
    return {GROUP_DN: {"objectGUID": [b"\x01" * 16], "cn": [b"Everyone Big"],
                       "member": [f"CN=User {i:04d},OU=People,DC=corp,DC=example,DC=com".encode()
                                  for i in range(members)]}}


def test_ranges_are_followed_to_the_last_one():
    server = FakeAD(big_group(3200))
    first = server._entry(GROUP_DN, ["member"])
    assert set(first["raw_attributes"]) == {"member;range=0-1499"}  # what AD sends with the entry
    entry = complete_ranges(server, SEARCH, RawEntry(GROUP_DN, first["raw_attributes"]))
    assert len(entry.attributes["member"]) == 3200
    assert len(set(entry.attributes["member"])) == 3200
    assert [c["attributes"] for c in server.calls] == [["member;range=1500-*"], ["member;range=3000-*"]]


def test_a_range_the_server_does_not_return_aborts():
    server = FakeAD(big_group(3200))
    first = server._entry(GROUP_DN, ["member"])
    server._base = lambda dn, attributes: (setattr(server, "result", dict(SUCCESS)) or
                                           setattr(server, "response", [{"type": "searchResEntry", "dn": dn,
                                                                         "raw_attributes": {}}]) or True)
    with pytest.raises(DirectoryError, match=r"member;range=1500-\* of CN=Everyone Big.* was not returned"):
        complete_ranges(server, SEARCH, RawEntry(GROUP_DN, first["raw_attributes"]))


def _live_directory():
    return make_directory(kind="active-directory", urls=("ldaps://dc1.corp.example.com",),
                          users=UserScope(search_bases=("OU=People,DC=corp,DC=example,DC=com",), filter="(objectClass=user)"),
                          groups=GroupScope())


def test_a_large_group_keeps_all_its_members_through_the_live_source():
    server = FakeAD({**people(3200), **big_group(3200)})
    directory = replace(_live_directory(), groups=GroupScope(search_bases=("OU=Groups,DC=corp,DC=example,DC=com",)))
    read = LiveSource(directory, connection_factory=lambda d: (server, None)).read()
    (group,) = read.groups.values()
    assert len(group.members) == 3200
    assert group.members == {normalise_dn(u.dn) for u in read.users}


def test_the_live_source_reads_compact_entries_with_text_anchors_and_only_needed_attributes():
    entries = people(12)
    for attributes in entries.values():
        attributes["thumbnailPhoto"] = [b"\xff" * 5000]  # not named by the policy: must not be asked for or kept
    server = FakeAD(entries)
    read = LiveSource(_live_directory(), connection_factory=lambda d: (server, None)).read()
    assert read.entries_read == 12
    assert [u.account_name for u in read.users] == [f"user{i:04d}" for i in range(12)]
    first = read.users[0]
    assert first.anchor == "00000000-0000-0000-0000-000000000000"
    assert read.users[1].anchor == "00000001-0000-0000-0000-000000000000"  # little-endian first field, as AD shows it
    assert set(first.attributes) <= {"mail", "displayname", "samaccountname", "department"}
    assert all("thumbnailPhoto" not in (c["attributes"] or []) for c in server.calls)
    assert [c["paged_size"] for c in server.calls] == [1000]  # one page of the policy's size; no groups scope


def test_a_reader_without_ranged_retrieval_would_lose_every_member():
    """What the naive reading of the entry gives: no `member` at all, and only 1500 values under the ranged name."""
    server = FakeAD(big_group(3200))
    raw = server._entry(GROUP_DN, ["member"])["raw_attributes"]
    naive_members = raw.get("member", [])
    assert naive_members == []
    assert sum(len(v) for v in raw.values()) == 1500  # even counting the ranged key, 1700 are missing


def test_group_dns_in_the_in_chain_filter_are_escaped():
    special = "CN=R&D (Europe) *,OU=Groups,DC=corp,DC=example,DC=com"
    text = in_chain_filter("(objectClass=user)", (special,))
    assert text == ("(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:="
                    "CN=R&D \\28Europe\\29 \\2a,OU=Groups,DC=corp,DC=example,DC=com))")
    from ldap3.operation.search import parse_filter

    parse_filter(text, None, auto_escape=False, auto_encode=False, validator=None, check_names=False)  # well formed


def test_several_member_of_groups_are_alternatives():
    text = in_chain_filter("objectClass=user", ("CN=A,DC=x", "CN=B,DC=x"))
    assert text == ("(&(objectClass=user)(|(memberOf:1.2.840.113556.1.4.1941:=CN=A,DC=x)"
                    "(memberOf:1.2.840.113556.1.4.1941:=CN=B,DC=x)))")


def test_direct_groups_come_from_member_lists_when_the_server_keeps_no_member_of():
    """OpenLDAP without the memberof overlay: the group's `member` is the only record of membership."""
    entries = people(3)
    for attributes in entries.values():
        attributes["entryUUID"] = [attributes.pop("objectGUID")[0].hex().encode()]
    group_dn = "cn=Staff,OU=Groups,DC=corp,DC=example,DC=com"
    first_user = sorted(entries)[0]
    entries[group_dn] = {"entryUUID": [b"group-uuid"], "cn": [b"Staff"], "member": [first_user.encode()]}
    directory = replace(_live_directory(), kind="openldap", flavour="openldap",
                        schema=FLAVOUR_SCHEMAS["openldap"],
                        groups=GroupScope(search_bases=("OU=Groups,DC=corp,DC=example,DC=com",)))
    read = LiveSource(directory, connection_factory=lambda d: (FakeAD(entries), None)).read()
    groups = {u.dn: u.groups for u in read.users}
    assert groups[first_user] == {normalise_dn(group_dn)}
    assert all(not g for dn, g in groups.items() if dn != first_user)


def test_memberships_member_of_lacks_are_taken_from_the_member_lists_and_nothing_else_changes():
    """memberOf and member lists that disagree (an overlay added late, a stale back-link): a user named by a
    group's member list gets that group even where memberOf lacks it; what memberOf names stays; a nested
    group or a DN outside the users scope in a member list adds nothing to anyone."""
    entries = people(4)
    for attributes in entries.values():
        attributes["entryUUID"] = [attributes.pop("objectGUID")[0].hex().encode()]
    ann, bob, cy, di = sorted(entries)
    groups_base = "OU=Groups,DC=corp,DC=example,DC=com"
    staff, admins, inner = (f"cn={name},{groups_base}" for name in ("Staff", "Admins", "Inner"))
    entries[ann]["memberOf"] = [staff.encode()]  # and in Admins' member list without saying so
    entries[bob]["memberOf"] = [staff.encode(), admins.encode()]  # Admins does not list Bob: memberOf stands
    entries[cy]["memberOf"] = [staff.encode()]
    entries[staff] = {"entryUUID": [b"staff"], "cn": [b"Staff"], "member": [ann.encode(), cy.encode()]}
    entries[admins] = {"entryUUID": [b"admins"], "cn": [b"Admins"],
                       "member": [ann.encode(), inner.encode(), b"cn=Ghost,OU=Elsewhere,DC=corp,DC=example,DC=com"]}
    entries[inner] = {"entryUUID": [b"inner"], "cn": [b"Inner"], "member": [di.encode()]}
    directory = replace(_live_directory(), kind="openldap", flavour="openldap",
                        schema=FLAVOUR_SCHEMAS["openldap"], groups=GroupScope(search_bases=(groups_base,)))
    read = LiveSource(directory, connection_factory=lambda d: (FakeAD(entries), None)).read()
    groups = {u.dn: u.groups for u in read.users}
    assert groups == {ann: {normalise_dn(staff), normalise_dn(admins)},
                      bob: {normalise_dn(staff), normalise_dn(admins)},
                      cy: {normalise_dn(staff)},
                      di: {normalise_dn(inner)}}
    assert read.groups[normalise_dn(admins)].members == {normalise_dn(ann), normalise_dn(inner),
                                                         "cn=ghost,ou=elsewhere,dc=corp,dc=example,dc=com"}


class AnsweringInOrder(FakeAD):
    """A server answering a search's entries in an order of its own (AD's is its database's), not by DN."""

    def __init__(self, entries, order):
        super().__init__(entries)
        self.order = order

    def search(self, base, search_filter, search_scope=None, attributes=None, paged_size=None, **rest):
        answered = super().search(base, search_filter, search_scope, attributes, paged_size, **rest)
        if paged_size is not None and self.response:
            self.response.sort(key=lambda item: self.order(item["dn"]))
        return answered


@pytest.mark.parametrize("order", ["by DN", "reversed", "by account name, not by DN"])
def test_the_users_of_a_live_read_come_in_dn_order_whatever_order_the_server_answers_in(order):
    """A read's users are in normalised-DN order (`DirectoryRead`): sorted when the server answered otherwise,
    and left as they are when it answered in that order already (the read skips rebuilding its table then)."""
    entries = {f"CN=User {name},OU=People,DC=corp,DC=example,DC=com": {
        "objectGUID": [i.to_bytes(16, "little")], "sAMAccountName": [f"{account}".encode()],
        "mail": [f"{account}@corp.example.com".encode()], "userAccountControl": [b"512"]}
        for i, (name, account) in enumerate([("b", "zed"), ("A", "yan"), ("c", "abe"), ("D", "bea")])}
    keys = {dn: normalise_dn(dn) for dn in entries}
    orders = {"by DN": lambda dn: keys[dn], "reversed": lambda dn: [-ord(c) for c in keys[dn]],
              "by account name, not by DN": lambda dn: entries[dn]["sAMAccountName"][0]}
    server = AnsweringInOrder(entries, orders[order])
    read = LiveSource(_live_directory(), connection_factory=lambda d: (server, None)).read()
    assert [u.account_name for u in read.users] == ["yan", "zed", "abe", "bea"]  # A, b, c, D: case folded
    assert [normalise_dn(u.dn) for u in read.users] == sorted(keys.values())


@pytest.mark.parametrize("with_member_of", [True, False])
def test_a_few_or_every_member_missing_from_member_of_get_the_group(with_member_of):
    """Members memberOf does not account for are looked for among the users read: with the overlay only the
    nested groups and the odd stale user (a binary search each), without it every member (a table of all)."""
    entries = people(200)
    for attributes in entries.values():
        attributes["entryUUID"] = [attributes.pop("objectGUID")[0].hex().encode()]
    users = sorted(entries)
    groups_base = "OU=Groups,DC=corp,DC=example,DC=com"
    teams = [f"cn=Team {t},{groups_base}" for t in range(10)]
    outer = f"cn=Outer,{groups_base}"
    stale = users[117]  # in Team 3's member list, but its memberOf (overlay added late) does not say so
    for number, dn in enumerate(users):
        if with_member_of and dn != stale:
            entries[dn]["memberOf"] = [teams[number % 10].encode()]
    for t, team in enumerate(teams):
        entries[team] = {"entryUUID": [f"team-{t}".encode()], "cn": [f"Team {t}".encode()],
                         "member": [dn.encode() for number, dn in enumerate(users) if number % 10 == t]}
    entries[outer] = {"entryUUID": [b"outer"], "cn": [b"Outer"], "member": [teams[0].encode(), teams[1].encode()]}
    directory = replace(_live_directory(), kind="openldap", flavour="openldap",
                        schema=FLAVOUR_SCHEMAS["openldap"], groups=GroupScope(search_bases=(groups_base,)))
    read = LiveSource(directory, connection_factory=lambda d: (FakeAD(entries), None)).read()
    groups = {u.dn: u.groups for u in read.users}
    assert groups == {dn: {normalise_dn(teams[number % 10])} for number, dn in enumerate(users)}
    assert read.groups[normalise_dn(outer)].members == {normalise_dn(teams[0]), normalise_dn(teams[1])}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text("abc,=", min_size=1, max_size=4), unique=True, max_size=80),
       st.lists(st.text("abc,=", min_size=1, max_size=4), max_size=40))
def test_positions_answer_as_a_table_of_every_key_would(keys, probes):
    """The binary search used for a few lookups, and the table used once many were asked for, give the
    answers a table of every key gives: its index, or None for a key not among them."""
    from reconciler.directory.ldap.source import _Positions

    keys = sorted(keys)
    table = {key: index for index, key in enumerate(keys)}
    positions = _Positions(keys)
    assert [positions._search(key) for key in [*probes, *keys]] == [table.get(key) for key in [*probes, *keys]]
    assert [positions.finder(1)(key) for key in probes] == [table.get(key) for key in probes]


class SendingWithoutValues(FakeAD):
    """A server (or an ACL hiding the values) sending some attributes with no values at all, which ldap3 and the
    lean decoder hand on as None: LDAP allows it only for typesOnly searches, which we never make."""

    def _entry(self, dn, attributes):
        item = super()._entry(dn, attributes)
        for name in attributes:
            if name.lower() in ("mail", "memberof", "member", "displayname"):
                item["raw_attributes"][name] = None
        return item


def test_an_attribute_sent_without_values_reads_as_not_sent_not_as_a_traceback():
    from reconciler.directory.delta import raw_to_record

    entries = people(3)
    groups_base = "OU=Groups,DC=corp,DC=example,DC=com"
    staff = f"CN=Staff,{groups_base}"
    for dn in entries:
        entries[dn]["memberOf"] = [staff.encode()]
    entries[staff] = {"objectGUID": [b"s" * 16], "cn": [b"Staff"], "member": [dn.encode() for dn in people(3)]}
    directory = replace(_live_directory(), groups=GroupScope(search_bases=(groups_base,)))
    read = LiveSource(directory, connection_factory=lambda d: (SendingWithoutValues(entries), None)).read()
    assert [(u.account_name, dict(u.attributes), u.groups) for u in read.users] == [
        (f"user{i:04d}", {"samaccountname": (f"user{i:04d}",)}, set()) for i in range(3)]  # no mail, no groups
    assert read.groups[normalise_dn(staff)].members == set()
    assert raw_to_record("cn=x", {"mail": None, "cn": [b"x"]}) == ["cn=x", {"cn": ["x"]}]  # what a delta state keeps
