"""OpenLDAP delta reads against a real slapd with the syncprov overlay, with a session log and without.

The property that matters, checked after every change below: the records of a full read made at
`start()`, with each search's `Delta` applied (`Delta.applied_to`), equal a fresh full read, DN and
attribute values, for the users search (with memberOf) and the groups search. Besides, each delta
is exactly what the change implies:

- `sessionlog` (syncprov-sessionlog 20, syncprov-reloadhint TRUE): a delete list; `present` stays None
  and `removed` names the entries that left (deleted, moved out of the base, no longer matching the
  filter); a cookie older than the database is refused (e-syncRefreshRequired);
- `present` (no session log, no reloadhint): a present phase; `present` is every uuid of the content,
  `removed` empty; a cookie older than the database is answered with the whole content.

Each test takes its own people (the servers are per module, the tests share them) and its own start.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from ldap3 import MODIFY_REPLACE

from reconciler.directory.delta import Delta, TokenRefused, raw_to_record
from reconciler.directory.ldap.connect import connect
from reconciler.directory.ldap.paged import RawEntry, Search, paged_search
from reconciler.directory.ldap.syncrepl import SyncRepl, parse_cookie, refresh
from reconciler.errors import DirectoryError
from tests.servers.population import Person
from tests.servers.slapd import Slapd

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")]  # inside ldap3

SESSION_LOG = 20  # operations: the overflow test makes more than this
USERS_FILTER = "(&(objectClass=inetOrgPerson)(!(employeeType=contractor)))"
GROUPS_FILTER = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"
USER_ATTRIBUTES = ("cn", "departmentNumber", "displayName", "employeeType", "entryUUID", "mail", "memberOf",
                   "pwdAccountLockedTime", "uid")
GROUP_ATTRIBUTES = ("cn", "entryUUID", "member", "uniqueMember")
ANCIENT = "rid=000,csn=19700101000000.000000Z#000000#000#000000"


@pytest.fixture(scope="module", params=["sessionlog", "present"])
def sync_slapd(request, tmp_path_factory, test_tls):
    mode = request.param
    server = Slapd(tmp_path_factory.mktemp(f"slapd-{mode}"), test_tls, suffix=f"dc={mode},dc=example",
                   syncprov=True, sessionlog=SESSION_LOG if mode == "sessionlog" else 0,
                   reloadhint=mode == "sessionlog")
    server.mode = mode
    try:
        server.start()
        yield server
    finally:
        server.stop()


@dataclass
class Kept:
    identity: str
    tokens: dict[str, str]
    records: dict[str, dict[str, RawEntry]]


class Reader:
    """The users and groups searches of a policy on this server, read in full and by deltas."""

    def __init__(self, server: Slapd):
        self.server = server
        self.method = SyncRepl()
        self.opened: list = []
        c = server.connection
        self.users = f"users:{c.people_base}"
        self.groups = f"groups:{c.groups_base}"
        self.searches = {
            self.users: Search("corp", c.people_base, USERS_FILTER, "subtree", USER_ATTRIBUTES),
            self.groups: Search("corp", c.groups_base, GROUPS_FILTER, "subtree", GROUP_ATTRIBUTES),
        }

    def connection(self, directory=None):
        connection = connect(directory or self.server.directory())[0]
        self.opened.append(connection)
        return connection

    def close(self) -> None:
        for connection in self.opened:
            connection.unbind()

    def full(self, connection=None) -> dict[str, dict[str, RawEntry]]:
        connection = connection or self.connection()
        return {name: {self.method.uuid_of(e): e for e in paged_search(connection, search, 7)}
                for name, search in self.searches.items()}

    def start(self) -> Kept:
        connection = self.connection()
        identity, tokens = self.method.start(connection, self.searches)
        assert identity == self.method.identity(connection, self.searches)
        return Kept(identity, tokens, self.full(connection))

    def changes(self, kept: Kept) -> dict[str, Delta]:
        return self.method.changes(self.connection(), self.searches, kept.records, kept.tokens)

    def applied(self, kept: Kept, deltas: dict[str, Delta]) -> Kept:
        """The kept records with the deltas applied, checked against a fresh full read."""
        records = {name: deltas[name].applied_to(kept.records[name])[0] for name in self.searches}
        fresh = self.full()
        assert comparable(records) == comparable(fresh)
        return Kept(kept.identity, {name: deltas[name].token for name in self.searches}, records)

    def uuid(self, name: str) -> str:
        """The entryUUID of a person (account name) or group (`group:<cn>`), read now."""
        dn = self.server.group_dn(name[6:]) if name.startswith("group:") else self.server.user_dn(name)
        connection = self.server.admin()
        assert connection.search(dn, "(objectClass=*)", search_scope="BASE", attributes=["entryUUID"])
        return connection.response[0]["raw_attributes"]["entryUUID"][0].decode()


def comparable(records: dict[str, dict[str, RawEntry]]) -> dict:
    return {name: {key: raw_to_record(entry.dn, entry.attributes) for key, entry in entries.items()}
            for name, entries in records.items()}


def expect(server: Slapd, delta: Delta, changed: set[str], removed: set[str], content: dict[str, RawEntry]) -> None:
    """The delta reports exactly these changes, the way the server's mode reports them."""
    assert set(delta.changed) == changed
    if server.mode == "sessionlog":
        assert delta.present is None
        assert delta.removed == removed
    else:
        assert delta.present == set(content)
        assert delta.removed == set()
        assert not removed & delta.present


@pytest.fixture
def reader(sync_slapd, bind_password):
    bind_password(sync_slapd)
    reader = Reader(sync_slapd)
    yield reader
    reader.close()


def person(account: str, **more) -> Person:
    return Person(account, "Sync", f"Person {account}", ("Sync",), department="Sync", **more)


def test_start_gives_a_cookie_slapd_takes_and_an_identity_of_the_database(reader):
    kept = reader.start()
    suffix_uuid = reader.server.admin()
    assert suffix_uuid.search(reader.server.suffix, "(objectClass=*)", search_scope="BASE", attributes=["entryUUID"])
    assert kept.identity == f"{suffix_uuid.response[0]['raw_attributes']['entryUUID'][0].decode()}@" \
                            f"{reader.server.suffix}:sid=000"
    for token in kept.tokens.values():
        assert parse_cookie(token) is not None and token.startswith("rid=000,csn=")
    deltas = reader.changes(kept)  # a cookie slapd did not write itself: accepted, nothing changed
    assert all(d.changed == {} and d.removed == frozenset() and d.present is None for d in deltas.values())


def test_an_unchanged_directory_gives_empty_deltas_and_the_token_again(reader):
    kept = reader.start()
    for _ in range(2):
        deltas = reader.changes(kept)
        for name, delta in deltas.items():
            assert (delta.changed, delta.removed, delta.present) == ({}, frozenset(), None)
            assert delta.token == kept.tokens[name]
        kept = reader.applied(kept, deltas)


def test_an_attribute_change(reader, sync_slapd):
    kept = reader.start()
    sync_slapd.set_attribute("erin", "displayName", "Erin E. Evans")
    deltas = reader.changes(kept)
    after = reader.applied(kept, deltas)
    expect(sync_slapd, deltas[reader.users], {reader.uuid("erin")}, set(), after.records[reader.users])
    expect(sync_slapd, deltas[reader.groups], set(), set(), after.records[reader.groups])
    assert deltas[reader.users].changed[reader.uuid("erin")].attributes["displayName"] == [b"Erin E. Evans"]
    # and the next delta starts where this one ended
    sync_slapd.set_attribute("erin", "displayName", "Erin Evans")
    again = reader.changes(after)
    reader.applied(after, again)
    assert set(again[reader.users].changed) == {reader.uuid("erin")}


def test_a_new_entry(reader, sync_slapd):
    kept = reader.start()
    sync_slapd.add_user(person("newhire"))
    deltas = reader.changes(kept)
    after = reader.applied(kept, deltas)
    expect(sync_slapd, deltas[reader.users], {reader.uuid("newhire")}, set(), after.records[reader.users])
    expect(sync_slapd, deltas[reader.groups], set(), set(), after.records[reader.groups])


def test_a_deleted_entry(reader, sync_slapd):
    kept = reader.start()
    gone = reader.uuid("user01")
    sync_slapd.delete_user("user01")
    deltas = reader.changes(kept)
    after = reader.applied(kept, deltas)
    expect(sync_slapd, deltas[reader.users], set(), {gone}, after.records[reader.users])
    expect(sync_slapd, deltas[reader.groups], set(), set(), after.records[reader.groups])
    assert gone in kept.records[reader.users] and gone not in after.records[reader.users]


def test_a_move_out_of_the_search_base(reader, sync_slapd):
    kept = reader.start()
    moved = reader.uuid("user02")
    connection = sync_slapd.admin()
    assert connection.modify_dn(sync_slapd.user_dn("user02"), "uid=user02",
                                new_superior=f"ou=Service,{sync_slapd.suffix}"), connection.result
    sync_slapd._dns["user02"] = f"uid=user02,ou=Service,{sync_slapd.suffix}"
    deltas = reader.changes(kept)
    after = reader.applied(kept, deltas)
    expect(sync_slapd, deltas[reader.users], set(), {moved}, after.records[reader.users])
    expect(sync_slapd, deltas[reader.groups], set(), set(), after.records[reader.groups])


def test_a_move_within_the_search_base_is_a_change(reader, sync_slapd):
    kept = reader.start()
    sync_slapd.move_user("user06", ("Research",))
    deltas = reader.changes(kept)
    after = reader.applied(kept, deltas)
    expect(sync_slapd, deltas[reader.users], {reader.uuid("user06")}, set(), after.records[reader.users])
    assert after.records[reader.users][reader.uuid("user06")].dn.startswith("uid=user06,ou=Research,")


def test_a_modify_that_leaves_the_filter(reader, sync_slapd):
    kept = reader.start()
    leaving = reader.uuid("user03")
    sync_slapd.set_attribute("user03", "employeeType", "contractor")
    deltas = reader.changes(kept)
    after = reader.applied(kept, deltas)
    expect(sync_slapd, deltas[reader.users], set(), {leaving}, after.records[reader.users])
    assert leaving not in after.records[reader.users]


def test_a_modify_that_comes_into_the_filter(reader, sync_slapd):
    sync_slapd.set_attribute("user04", "employeeType", "contractor")
    kept = reader.start()
    assert reader.uuid("user04") not in kept.records[reader.users]
    sync_slapd.set_attribute("user04", "employeeType", None)
    deltas = reader.changes(kept)
    after = reader.applied(kept, deltas)
    expect(sync_slapd, deltas[reader.users], {reader.uuid("user04")}, set(), after.records[reader.users])


def test_a_group_membership_change_and_the_members_memberof(reader, sync_slapd):
    """memberOf changes on the members without a CSN (slapd's memberof overlay does not replicate it):
    syncprov reports only the group; the users whose memberOf changed are read again."""
    kept = reader.start()
    sync_slapd.add_to_group("user05", "Key Pilots")
    sync_slapd.remove_from_group("grace", "Key Pilots")
    deltas = reader.changes(kept)
    after = reader.applied(kept, deltas)
    expect(sync_slapd, deltas[reader.groups], {reader.uuid("group:Key Pilots")}, set(), after.records[reader.groups])
    expect(sync_slapd, deltas[reader.users], {reader.uuid("user05"), reader.uuid("grace")}, set(),
           after.records[reader.users])
    assert after.records[reader.users][reader.uuid("user05")].attributes["memberOf"] == \
        [sync_slapd.group_dn("Key Pilots").encode()]
    assert "memberOf" not in after.records[reader.users][reader.uuid("grace")].attributes


def test_a_renamed_and_a_deleted_group_reach_their_members(reader, sync_slapd):
    from tests.servers.population import Group

    sync_slapd.add_group(Group("Sync Renamed", members=("user07", "user08")))
    sync_slapd.add_group(Group("Sync Deleted", members=("user09",)))
    kept = reader.start()
    renamed, deleted = reader.uuid("group:Sync Renamed"), reader.uuid("group:Sync Deleted")
    connection = sync_slapd.admin()
    assert connection.modify_dn(sync_slapd.group_dn("Sync Renamed"), "cn=Sync Was Renamed"), connection.result
    sync_slapd._dns["group:Sync Was Renamed"] = f"cn=Sync Was Renamed,{sync_slapd.connection.groups_base}"
    assert connection.delete(sync_slapd.group_dn("Sync Deleted")), connection.result
    deltas = reader.changes(kept)
    after = reader.applied(kept, deltas)
    expect(sync_slapd, deltas[reader.groups], {renamed}, {deleted}, after.records[reader.groups])
    expect(sync_slapd, deltas[reader.users], {reader.uuid("user07"), reader.uuid("user08"), reader.uuid("user09")},
           set(), after.records[reader.users])


def test_all_the_changes_at_once_twice_over(reader, sync_slapd):
    """Every kind of change in one delta, then more from the token it returned."""
    sync_slapd.add_user(person("comeback"))
    sync_slapd.set_attribute("comeback", "employeeType", "contractor")
    kept = reader.start()
    sync_slapd.set_attribute("user10", "displayName", "Ten")
    sync_slapd.add_user(person("another"))
    sync_slapd.delete_user("user11")
    sync_slapd.set_attribute("user12", "employeeType", "contractor")
    sync_slapd.set_attribute("comeback", "employeeType", None)
    sync_slapd.add_to_group("user13", "Engineering Team")
    kept = reader.applied(kept, reader.changes(kept))
    sync_slapd.set_attribute("user12", "employeeType", None)
    sync_slapd.remove_from_group("user13", "Engineering Team")
    sync_slapd.delete_user("another")
    reader.applied(kept, reader.changes(kept))


def test_more_changes_than_the_session_log_holds_still_come_complete(reader, sync_slapd):
    """Past the session log (or without one) slapd runs a present phase: syncIdSet messages of up to
    256 uuids each, here more than one of them."""
    kept = reader.start()
    for n in range(300):
        sync_slapd.add_user(person(f"bulk{n:03d}"))
    sync_slapd.delete_user("user14")
    deltas = reader.changes(kept)
    after = reader.applied(kept, deltas)
    users = deltas[reader.users]
    assert len(users.changed) == 300
    assert len(present_sets(reader, kept.tokens[reader.users])) >= 2
    assert users.present == set(after.records[reader.users])  # the log is too short: a present phase either way
    assert reader.uuid("bulk000") in users.changed and len(after.records[reader.users]) > 300


def present_sets(reader: Reader, token: str) -> list[int]:
    """The sizes of the syncIdSet messages (refreshDeletes FALSE) of the users search's refresh from `token`."""
    from ldap3 import DEREF_NEVER, SUBTREE

    from reconciler.directory.ldap.syncrepl import SYNC_INFO_OID, decode_info, request_control

    connection = reader.connection()
    search = reader.searches[reader.users]
    assert connection.search(search.base, search.filter, SUBTREE, dereference_aliases=DEREF_NEVER,
                             attributes=["1.1"], controls=[request_control(token)])
    infos = [decode_info(item["responseValue"]) for item in connection.response
             if item["type"] == "intermediateResponse" and item["responseName"] == SYNC_INFO_OID]
    return [len(info.uuids) for info in infos if info.kind == "syncIdSet" and not info.refresh_deletes]


# ── tokens the server cannot answer from ─────────────────────────────────────────────────

def test_a_garbage_token_is_refused_before_slapd_sees_it(reader):
    kept = reader.start()
    for garbage in ("garbage", "rid=000", "rid=000,csn=garbage", "csn=20240101000000.000000Z#000000#000#000000"):
        with pytest.raises(TokenRefused, match="not a syncprov cookie"):
            reader.method.changes(reader.connection(), reader.searches, kept.records,
                                  {name: garbage for name in reader.searches})


def test_why_garbage_must_be_refused_here(reader, sync_slapd):
    """slapd takes a cookie it cannot parse for no cookie: the whole content, as a delete phase with no
    deletes. Applied, that would keep every record deleted since; hence the check before asking."""
    kept = reader.start()
    gone = reader.uuid("user18")
    sync_slapd.delete_user("user18")
    delta = refresh(reader.connection(), reader.searches[reader.users], "garbage")
    assert delta.present is None and delta.removed == frozenset()
    assert set(delta.changed) == set(reader.full()[reader.users])
    assert gone in delta.applied_to(kept.records[reader.users])[0]  # a deleted entry kept: a silent wrong read


def test_a_cookie_older_than_every_entry(reader, sync_slapd):
    """No entry is as old as the cookie. With syncprov-reloadhint, slapd honours our reloadHint FALSE and
    refuses (e-syncRefreshRequired); without it (its default), it ignores the cookie and runs a present
    phase over the whole content, which applied is still exactly the content."""
    kept = reader.start()
    if sync_slapd.reloadhint:
        with pytest.raises(TokenRefused, match="e-syncRefreshRequired"):
            reader.method.changes(reader.connection(), reader.searches, kept.records,
                                  {name: ANCIENT for name in reader.searches})
        return
    sync_slapd.delete_user("user15")
    deltas = reader.method.changes(reader.connection(), reader.searches, kept.records,
                                   {name: ANCIENT for name in reader.searches})
    after = reader.applied(kept, deltas)
    for name, delta in deltas.items():
        assert set(delta.changed) == delta.present == set(after.records[name])


def test_a_cookie_newer_than_the_server_is_refused(reader):
    kept = reader.start()
    future = "rid=000,csn=29990101000000.000000Z#000000#000#000000"
    with pytest.raises(TokenRefused, match="newer than the server"):
        reader.method.changes(reader.connection(), reader.searches, kept.records,
                              {name: future for name in reader.searches})
    # and slapd itself, asked anyway, refuses it too (unwillingToPerform), which is a refusal as well
    with pytest.raises(TokenRefused, match="newer than provider"):
        refresh(reader.connection(), reader.searches[reader.users], future)


def test_a_cookie_of_another_server_id_is_refused(reader):
    kept = reader.start()
    other = kept.tokens[reader.users].replace("#000#", "#001#")
    with pytest.raises(TokenRefused, match="server id 001"):
        reader.method.changes(reader.connection(), reader.searches, kept.records,
                              {name: other for name in reader.searches})


def test_a_server_without_syncprov_fails_start_with_a_directory_error(slapd_server, bind_password):
    bind_password(slapd_server)
    plain = Reader(slapd_server)
    try:
        with pytest.raises(DirectoryError, match="no contextCSN: the syncprov overlay is not configured"):
            plain.method.start(plain.connection(), plain.searches)
        with pytest.raises(DirectoryError, match="incomplete read of base .* does not offer content synchronisation"):
            refresh(plain.connection(), plain.searches[plain.users], ANCIENT)
    finally:
        plain.close()


def test_entries_of_a_sync_search_keep_their_sync_state_control_past_the_lean_decoder(reader):
    """The connection decodes plain entries leanly; an entry with controls goes through ldap3's own
    decoder, which keeps them: what every delta above relies on."""
    from reconciler.directory.ldap.lean_decoder import LeanSyncStrategy
    from reconciler.directory.ldap.syncrepl import SYNC_STATE_OID, request_control

    connection = reader.connection()
    assert isinstance(connection.strategy, LeanSyncStrategy)
    from ldap3 import DEREF_NEVER, SUBTREE

    assert connection.search(reader.server.connection.people_base, USERS_FILTER, SUBTREE,
                             dereference_aliases=DEREF_NEVER, attributes=["uid"], controls=[request_control(None)])
    entries = [item for item in connection.response if item["type"] == "searchResEntry"]
    assert entries and all(SYNC_STATE_OID in item["controls"] for item in entries)


def test_the_bind_accounts_size_limit_fails_a_big_delta(reader, sync_slapd):
    """The limited account may read 5 entries: a delta with more is a DirectoryError, not a short delta."""
    kept = reader.start()
    for n, account in enumerate(("user16", "user17", "user19", "user20", "alice", "bob", "dave", "frank")):
        sync_slapd.set_attribute(account, "displayName", f"Limited {n}")
    limited = sync_slapd.directory(bind_user=sync_slapd.connection.extra["limited_dn"])
    with pytest.raises(DirectoryError, match="sizeLimitExceeded|adminLimitExceeded"):
        reader.method.changes(reader.connection(limited), reader.searches, kept.records, kept.tokens)
    reader.applied(kept, reader.changes(kept))


def test_modify_replace_of_member_on_a_unique_member_group(reader, sync_slapd):
    kept = reader.start()
    connection = sync_slapd.admin()
    assert connection.modify(sync_slapd.group_dn("Auditors"),
                             {"uniqueMember": [(MODIFY_REPLACE, [sync_slapd.user_dn("dave")])]}), connection.result
    deltas = reader.changes(kept)
    after = reader.applied(kept, deltas)
    expect(sync_slapd, deltas[reader.groups], {reader.uuid("group:Auditors")}, set(), after.records[reader.groups])


def test_the_live_source_reads_a_delta_that_builds_the_full_reads_directory_read(reader, sync_slapd):
    """Through LiveSource.read_with_state, with the state kept as bytes in between: the read a delta
    builds is the read a full read builds (users with their groups from memberOf, groups with members)."""
    from datetime import datetime, timedelta, timezone

    from reconciler.directory.delta import decode, encode
    from reconciler.directory.ldap.source import LiveSource

    directory = sync_slapd.directory()
    now = datetime.now(timezone.utc)
    _read, state, note = LiveSource(directory).read_with_state(None, "", timedelta(days=1), now)
    assert note.kind == "full"
    sync_slapd.add_to_group("user16", "Sales EMEA")
    sync_slapd.remove_from_group("frank", "Sales EMEA")
    sync_slapd.set_disabled("user17")
    sync_slapd.move_user("user19", ("Research",))
    sync_slapd.delete_user("user20")
    kept, why_not = decode(encode(state))
    read, _state, note = LiveSource(directory).read_with_state(kept, why_not, timedelta(days=1), now)
    assert note.kind == "delta", note.reason
    full = LiveSource(directory).read()
    assert sorted(read.users, key=lambda user: user.dn) == sorted(full.users, key=lambda user: user.dn)
    assert read.groups == full.groups
    by_account = {user.account_name: user for user in read.users}
    assert any("sales emea" in group for group in by_account["user16"].groups)
    assert not any("sales emea" in group for group in by_account["frank"].groups)  # a stale memberOf would keep it
