"""RFC 4533's controls and Sync Info messages, as syncrepl.py encodes and decodes them, and what a
refresh makes of a server's answer.

The expected bytes are written by hand from RFC 4533 section 2's ASN.1 (implicit tags, BER as slapd
writes it), not produced by the code under test. A fake connection answers the refreshes with the
message sequences a server may send (RFC 4533 3.3): malformed ones must be a DirectoryError naming
the read, never a traceback or a quietly wrong delta.
"""
from __future__ import annotations

import uuid

import pytest
from ldap3 import DEREF_NEVER

from reconciler.directory.delta import TokenRefused
from reconciler.directory.ldap.paged import RawEntry, Search
from reconciler.directory.ldap.syncrepl import (
    SYNC_DONE_OID, SYNC_INFO_OID, SYNC_REQUEST_OID, SYNC_STATE_OID, MalformedSync, SyncDone, SyncInfo, SyncRepl,
    SyncState, compose_cookie, decode_done, decode_info, decode_state, parse_cookie, refresh, request_control,
    request_value,
)
from reconciler.errors import DirectoryError

CSN = "20240102030405.123456Z#000000#000#000000"
COOKIE = f"rid=000,csn={CSN}"
U1 = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
U2 = uuid.UUID("11111111-2222-3333-4444-555555555555")
U3 = uuid.UUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")


def octets(data: bytes) -> bytes:
    """OCTET STRING, short-form length."""
    assert len(data) < 128
    return b"\x04" + bytes([len(data)]) + data


def tlv(tag: int, content: bytes) -> bytes:
    assert len(content) < 128
    return bytes([tag, len(content)]) + content


def sequence(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


TRUE, FALSE = b"\x01\x01\xff", b"\x01\x01\x00"


def enumerated(n: int) -> bytes:
    return b"\x0a\x01" + bytes([n])


# ── the request ───────────────────────────────────────────────────────────────────────────

def test_the_sync_request_is_refresh_only_with_the_cookie_and_no_reload_hint():
    assert request_value(COOKIE) == sequence(enumerated(1), octets(COOKIE.encode()))
    assert request_value(None) == sequence(enumerated(1))
    assert request_value(COOKIE, reload_hint=True) == sequence(enumerated(1), octets(COOKIE.encode()), TRUE)
    assert request_value(None, mode=3) == sequence(enumerated(3))
    assert request_control(COOKIE) == (SYNC_REQUEST_OID, True, sequence(enumerated(1), octets(COOKIE.encode())))


# ── the Sync State control ────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("number, state", [(0, "present"), (1, "add"), (2, "modify"), (3, "delete")])
def test_the_sync_state_control(number, state):
    assert decode_state(sequence(enumerated(number), octets(U1.bytes))) == SyncState(state, str(U1))
    assert decode_state(sequence(enumerated(number), octets(U1.bytes), octets(COOKIE.encode()))) == \
        SyncState(state, str(U1), COOKIE)


def test_a_sync_uuid_is_the_entryuuid_text_lower_case():
    assert decode_state(sequence(enumerated(1), octets(U3.bytes))).uuid == "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def test_the_usual_sync_state_read_directly_agrees_with_pyasn1():
    from reconciler.directory.ldap import syncrepl

    long_cookie = COOKIE + ";" + ";".join([CSN] * 3)  # over 127 octets: long-form lengths, read by pyasn1
    content = enumerated(2) + octets(U1.bytes) + b"\x04\x81" + bytes([len(long_cookie)]) + long_cookie.encode()
    long_form = b"\x30\x81" + bytes([len(content)]) + content
    assert syncrepl._usual_state(long_form) is None
    assert decode_state(long_form) == SyncState("modify", str(U1), long_cookie)
    for value in (sequence(enumerated(1), octets(U2.bytes)), sequence(enumerated(3), octets(U2.bytes),
                                                                      octets(COOKIE.encode()))):
        assert syncrepl._usual_state(value) is not None
        assert syncrepl._usual_state(value) == decode_state(bytearray(value))  # bytearray: pyasn1's path


# ── the Sync Done control ─────────────────────────────────────────────────────────────────

def test_the_sync_done_control():
    assert decode_done(sequence(octets(COOKIE.encode()), TRUE)) == SyncDone(COOKIE, True)
    assert decode_done(sequence(octets(COOKIE.encode()))) == SyncDone(COOKIE, False)  # refreshDeletes DEFAULT FALSE
    assert decode_done(sequence(TRUE)) == SyncDone(None, True)  # slapd's "nothing changed"
    assert decode_done(sequence()) == SyncDone(None, False)
    assert decode_done(sequence(octets(b""), FALSE)) == SyncDone("", False)


# ── Sync Info messages ────────────────────────────────────────────────────────────────────

def test_sync_info_new_cookie():
    assert decode_info(tlv(0x80, COOKIE.encode())) == SyncInfo("newcookie", COOKIE)


@pytest.mark.parametrize("tag, kind", [(0xA1, "refreshDelete"), (0xA2, "refreshPresent")])
def test_sync_info_refresh_phases(tag, kind):
    assert decode_info(tlv(tag, octets(COOKIE.encode()) + FALSE)) == SyncInfo(kind, COOKIE, refresh_done=False)
    assert decode_info(tlv(tag, b"")) == SyncInfo(kind, None, refresh_done=True)  # refreshDone DEFAULT TRUE


def test_sync_info_sync_id_set():
    uuids = tlv(0x31, octets(U1.bytes) + octets(U2.bytes))
    assert decode_info(tlv(0xA3, octets(COOKIE.encode()) + TRUE + uuids)) == \
        SyncInfo("syncIdSet", COOKIE, refresh_deletes=True, uuids=(str(U1), str(U2)))
    assert decode_info(tlv(0xA3, uuids)) == SyncInfo("syncIdSet", None, refresh_deletes=False, uuids=(str(U1), str(U2)))
    assert decode_info(tlv(0xA3, tlv(0x31, b""))) == SyncInfo("syncIdSet")


def test_a_sync_id_set_of_many_uuids_with_long_form_lengths():
    many = [uuid.UUID(int=n) for n in range(256)]
    content = b"".join(octets(u.bytes) for u in many)  # 4608 octets: two-octet long-form lengths
    uuid_set = b"\x31\x82" + len(content).to_bytes(2, "big") + content
    inner = FALSE + uuid_set
    message = b"\xa3\x82" + len(inner).to_bytes(2, "big") + inner
    assert decode_info(message).uuids == tuple(str(u) for u in many)


# ── malformed values ──────────────────────────────────────────────────────────────────────

MALFORMED_STATES = {
    "no value": None,
    "empty": b"",
    "truncated": sequence(enumerated(1), octets(U1.bytes))[:-3],
    "not a sequence": octets(U1.bytes),
    "a uuid of 15 octets": sequence(enumerated(1), octets(U1.bytes[:15])),
    "an unknown state": sequence(enumerated(7), octets(U1.bytes)),
    "no uuid": sequence(enumerated(1)),
    "bytes after the value": sequence(enumerated(1), octets(U1.bytes)) + b"\x00",
    "a cookie that is not UTF-8": sequence(enumerated(1), octets(U1.bytes), octets(b"\xff\xfe")),
}


@pytest.mark.parametrize("value", MALFORMED_STATES.values(), ids=MALFORMED_STATES.keys())
def test_a_malformed_sync_state_is_malformed_sync(value):
    with pytest.raises(MalformedSync):
        decode_state(value)


@pytest.mark.parametrize("value", [
    b"\x30", b"\x04\x00", tlv(0xA4, b""), tlv(0xA3, octets(U1.bytes)), tlv(0xA3, tlv(0x31, octets(b"short"))),
    tlv(0x81, COOKIE.encode()), b"\xa3\x84\xff\xff\xff\xff", tlv(0xA3, tlv(0x30, octets(U1.bytes))),
    tlv(0xA3, tlv(0x31, tlv(0x05, U1.bytes))), tlv(0xA3, tlv(0x31, octets(U1.bytes) + b"\x04")),
    tlv(0xA3, b"\x31\x80" + octets(U1.bytes) + b"\x00\x00"),
], ids=["truncated", "not a choice", "unknown choice", "id set without a set", "short uuid", "wrong cookie tag",
        "length past the end", "a sequence for the set", "a member not an octet string", "a stray octet",
        "indefinite length"])
def test_a_malformed_sync_info_is_malformed_sync(value):
    with pytest.raises(MalformedSync):
        decode_info(value)


def test_a_malformed_sync_done_is_malformed_sync():
    with pytest.raises(MalformedSync):
        decode_done(sequence(enumerated(1)))


def test_mangled_values_are_decoded_or_malformed_sync_never_another_error():
    import random

    rng = random.Random(4533)
    valid = [sequence(enumerated(1), octets(U1.bytes), octets(COOKIE.encode())), sequence(octets(COOKIE.encode()), TRUE),
             tlv(0xA3, octets(COOKIE.encode()) + TRUE + tlv(0x31, octets(U1.bytes) + octets(U2.bytes))),
             tlv(0xA2, octets(COOKIE.encode()) + FALSE), tlv(0x80, COOKIE.encode())]
    for _ in range(3000):
        data = bytearray(rng.choice(valid))
        for _ in range(rng.randint(1, 4)):
            action = rng.randrange(3)
            if action == 0 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif action == 1 and data:
                at = rng.randrange(len(data))
                del data[at:at + rng.randint(1, 3)]
            else:
                data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
        for decode in (decode_state, decode_done, decode_info):
            try:
                decode(bytes(data))
            except MalformedSync:
                pass


# ── cookies ───────────────────────────────────────────────────────────────────────────────

def test_cookies_slapd_honours():
    assert parse_cookie(COOKIE).csns == {"000": CSN}
    two = "20240102030405.123456Z#000000#001#000000"
    assert parse_cookie(f"rid=001,sid=002,csn={CSN};{two}").csns == {"000": CSN, "001": two}
    assert parse_cookie(f"rid=000,csn={CSN},delcsn={CSN}").rid == 0
    assert compose_cookie([two, CSN]) == f"rid=000,csn={CSN};{two}"


@pytest.mark.parametrize("text", [
    "", "garbage", "rid=000", f"csn={CSN}", "rid=000,csn=garbage", f"rid=1000,csn={CSN}", f"rid=x,csn={CSN}",
    f"rid=000,csn={CSN};{CSN}", f"rid=000,csn={CSN}\n", f"rid=000,csn={CSN},extra=1", f"rid=000,csn={CSN},delcsn=x",
    f"rid=000,sid=xyz,csn={CSN}", "rid=000,csn=20240102030405Z#000000#000#000000",
], ids=["empty", "garbage", "no csn", "no rid", "bad csn", "rid too big", "rid not a number", "a server id twice",
        "a newline", "an unknown key", "bad delcsn", "bad sid", "csn without microseconds"])
def test_cookies_slapd_would_take_for_no_cookie_are_none(text):
    assert parse_cookie(text) is None


# ── a refresh against a fake server ───────────────────────────────────────────────────────

SEARCH = Search("corp", "ou=People,dc=example,dc=org", "(objectClass=inetOrgPerson)", "subtree", ("uid", "entryUUID"))
SUCCESS = {"result": 0, "description": "success", "message": "", "type": "searchResDone"}


def entry(u: uuid.UUID, state: int, uid: str | None = None, cookie: str | None = None) -> dict:
    value = sequence(enumerated(state), octets(u.bytes), *([octets(cookie.encode())] if cookie else []))
    attributes = {"uid": [uid.encode()], "entryUUID": [str(u).encode()]} if uid else {}
    return {"type": "searchResEntry", "dn": f"uid={uid or 'x'},ou=People,dc=example,dc=org",
            "raw_attributes": attributes, "controls": {SYNC_STATE_OID: {"value": value, "criticality": False}}}


def info(value: bytes) -> dict:
    return {"type": "intermediateResponse", "responseName": SYNC_INFO_OID, "responseValue": value}


def id_set(uuids, deletes: bool, cookie: str | None = None) -> dict:
    inner = (octets(cookie.encode()) if cookie else b"") + (TRUE if deletes else b"") + \
        tlv(0x31, b"".join(octets(u.bytes) for u in uuids))
    return info(tlv(0xA3, inner))


def done(cookie: str | None = None, deletes: bool | None = None, value: bytes | None = None) -> dict:
    if value is None:
        value = sequence(*([octets(cookie.encode())] if cookie else []), *([TRUE if deletes else FALSE]
                                                                            if deletes is not None else []))
    return dict(SUCCESS, controls={SYNC_DONE_OID: {"value": value, "criticality": False}})


class FakeServer:
    """Answers every search with the given messages and result, and records what was asked."""

    def __init__(self, response: list[dict], result: dict):
        self.answer = (response, result)
        self.asked: list[dict] = []
        self.response = None
        self.result = None

    def search(self, base, search_filter, search_scope=None, dereference_aliases=None, attributes=None,
               controls=None, **more):
        self.asked.append({"base": base, "filter": search_filter, "deref": dereference_aliases,
                           "attributes": attributes, "controls": controls})
        self.response, self.result = list(self.answer[0]), dict(self.answer[1])
        return self.result["result"] == 0


NEW = "rid=000,csn=20240102030406.000000Z#000000#000#000000"


def test_the_refresh_asks_as_slapd_requires():
    server = FakeServer([], done(deletes=True))
    refresh(server, SEARCH, COOKIE)
    asked = server.asked[0]
    assert (asked["base"], asked["filter"], asked["deref"]) == (SEARCH.base, SEARCH.filter, DEREF_NEVER)
    assert asked["controls"] == [request_control(COOKIE)]
    assert asked["attributes"] == ["uid", "entryUUID"]
    refresh(server, Search("corp", "dc=x", "(cn=*)", "one", ("cn",)), COOKIE)
    assert server.asked[1]["attributes"] == ["cn", "entryUUID"]


def test_nothing_changed_keeps_the_token():
    delta = refresh(FakeServer([], done(deletes=True)), SEARCH, COOKIE)
    assert (delta.changed, delta.removed, delta.present, delta.token) == ({}, frozenset(), None, COOKIE)


def test_a_delete_phase():
    kept = {str(U2): RawEntry("uid=b,ou=People,dc=example,dc=org", {}), str(U3): RawEntry("uid=c", {})}
    server = FakeServer([id_set([U2], deletes=True, cookie="rid=000,csn=x"), id_set([U1], deletes=True),
                         entry(U3, 1, "carol")], done(NEW, deletes=True))
    delta = refresh(server, SEARCH, COOKIE, kept)
    assert set(delta.changed) == {str(U3)}
    assert delta.changed[str(U3)] == RawEntry("uid=carol,ou=People,dc=example,dc=org",
                                              {"uid": [b"carol"], "entryUUID": [str(U3).encode()]})
    assert delta.removed == {str(U2)}  # U1 was never kept: another search's entry
    assert delta.present is None and delta.token == NEW


def test_a_present_phase():
    server = FakeServer([id_set([U1, U2], deletes=False), entry(U3, 1, "carol")], done(NEW, deletes=False))
    delta = refresh(server, SEARCH, COOKIE)
    assert set(delta.changed) == {str(U3)}
    assert delta.present == {str(U1), str(U2), str(U3)}
    assert delta.removed == frozenset()


def test_present_entries_and_a_present_phase_then_a_delete_phase():
    server = FakeServer([entry(U1, 0), entry(U2, 0), info(tlv(0xA2, FALSE)), id_set([U2], deletes=True),
                         entry(U3, 2, "carol")], done(NEW, deletes=True))
    delta = refresh(server, SEARCH, COOKIE, {str(U1): RawEntry("a", {}), str(U2): RawEntry("b", {})})
    assert delta.present == {str(U1), str(U3)}
    assert delta.removed == {str(U2)}
    assert set(delta.changed) == {str(U3)}
    records, touched = delta.applied_to({str(U1): RawEntry("a", {}), str(U2): RawEntry("b", {})})
    assert set(records) == {str(U1), str(U3)} and touched == 2


def test_the_later_message_about_an_entry_wins():
    server = FakeServer([entry(U1, 3), entry(U1, 1, "back"), entry(U2, 1, "gone"), id_set([U2], deletes=True)],
                        done(NEW, deletes=True))
    delta = refresh(server, SEARCH, COOKIE, {str(U1): RawEntry("a", {}), str(U2): RawEntry("b", {})})
    assert set(delta.changed) == {str(U1)} and delta.removed == {str(U2)}


def test_the_last_cookie_is_the_token():
    later = "rid=000,csn=20240102030407.000000Z#000000#000#000000"
    server = FakeServer([entry(U1, 1, "a", cookie=NEW), info(tlv(0x80, later.encode()))], done(deletes=True))
    assert refresh(server, SEARCH, COOKIE).token == later


# ── what a refresh must not take quietly ─────────────────────────────────────────────────

def test_e_sync_refresh_required_is_a_refused_token():
    result = {"result": 4096, "description": "e-syncRefreshRequired", "message": "sync cookie is stale",
              "type": "searchResDone"}
    with pytest.raises(TokenRefused, match="e-syncRefreshRequired: sync cookie is stale"):
        refresh(FakeServer([], result), SEARCH, COOKIE)


def test_slapds_newer_than_provider_is_a_refused_token():
    result = {"result": 53, "description": "unwillingToPerform", "message": "consumer state is newer than provider!",
              "type": "searchResDone"}
    with pytest.raises(TokenRefused, match="newer than provider"):
        refresh(FakeServer([], result), SEARCH, COOKIE)


@pytest.mark.parametrize("result, message", [
    ({"result": 53, "description": "unwillingToPerform", "message": "no"}, "unwillingToPerform"),
    ({"result": 32, "description": "noSuchObject", "message": ""}, "the search base does not exist"),
    ({"result": 12, "description": "unavailableCriticalExtension", "message": ""}, "configure the syncprov overlay"),
    ({"result": 4, "description": "sizeLimitExceeded", "message": ""}, "size limit"),
])
def test_other_failures_are_directory_errors(result, message):
    with pytest.raises(DirectoryError, match=message) as raised:
        refresh(FakeServer([], dict(result, type="searchResDone")), SEARCH, COOKIE)
    assert "incomplete read of base 'ou=People,dc=example,dc=org'" in str(raised.value)


BROKEN = {
    "a malformed sync state": [dict(entry(U1, 1, "a"), controls={SYNC_STATE_OID: {"value": b"\x30\x03\x0a\x01"}})],
    "an entry without a sync state": [dict(entry(U1, 1, "a"), controls=None)],
    "a malformed sync info": [info(b"\xa3\x05\x04\x03abc")],
    "another intermediate response": [{"type": "intermediateResponse", "responseName": "1.2.3", "responseValue": b""}],
    "a reference": [{"type": "searchResRef", "uri": ["ldap://elsewhere/ou=People,dc=example,dc=org"]}],
}


@pytest.mark.parametrize("response", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_answer_is_a_directory_error(response):
    with pytest.raises(DirectoryError, match="incomplete read of base"):
        refresh(FakeServer(response, done(NEW, deletes=True)), SEARCH, COOKIE)


@pytest.mark.parametrize("result", [SUCCESS, done(value=b"\x30\x02\x0a\x01"), done(value=b"\x04\x00")],
                         ids=["no sync done", "a malformed sync done", "not a sequence"])
def test_a_missing_or_malformed_sync_done_is_a_directory_error(result):
    with pytest.raises(DirectoryError, match="incomplete read of base"):
        refresh(FakeServer([entry(U1, 1, "a")], result), SEARCH, COOKIE)


# ── the method's own checks, before any refresh ──────────────────────────────────────────

class FakeSlapd(FakeServer):
    """The root DSE and a suffix entry with a contextCSN, then the refresh's answer."""

    def __init__(self, context_csn: str = CSN, response=None, result=None):
        super().__init__(response or [], result or done(deletes=True))
        self.context_csn = context_csn

    def search(self, base, search_filter, search_scope=None, dereference_aliases=None, attributes=None,
               controls=None, **more):
        if controls:
            return super().search(base, search_filter, search_scope, dereference_aliases, attributes, controls)
        self.result = dict(SUCCESS)
        if base == "":
            attributes = {"namingContexts": [b"dc=example,dc=org"]}
        else:
            attributes = {"entryUUID": [str(U1).upper().encode()], "contextCSN": [self.context_csn.encode()]}
        self.response = [{"type": "searchResEntry", "dn": base, "raw_attributes": attributes}]
        return True


SEARCHES = {"users:ou=People,dc=example,dc=org": SEARCH}


def test_start_and_identity_from_the_suffix_entry():
    identity, tokens = SyncRepl().start(FakeSlapd(), SEARCHES)
    assert identity == f"{U1}@dc=example,dc=org:sid=000"
    assert tokens == {"users:ou=People,dc=example,dc=org": COOKIE}
    assert SyncRepl().identity(FakeSlapd(), SEARCHES) == identity


@pytest.mark.parametrize("token, why", [
    ("garbage", "not a syncprov cookie"),
    ("rid=000,csn=20240102030405.123457Z#000000#000#000000", "newer than the server's state"),
    ("rid=000,csn=20240102030405.123456Z#000000#001#000000", "server id 001"),
])
def test_tokens_refused_before_the_server_sees_them(token, why):
    server = FakeSlapd()
    with pytest.raises(TokenRefused, match=why):
        SyncRepl().changes(server, SEARCHES, {}, {name: token for name in SEARCHES})
    assert not any(asked["controls"] for asked in server.asked)


def test_a_database_without_contextcsn_cannot_start():
    server = FakeSlapd()
    server.context_csn = "not a csn"
    with pytest.raises(DirectoryError, match="not a CSN"):
        SyncRepl().start(server, SEARCHES)


def test_uuid_of_is_the_entryuuid_text_lower_case():
    method = SyncRepl()
    assert method.uuid_of(RawEntry("a", {"entryuuid": [b"0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"]})) == str(U1)
    assert method.uuid_of(RawEntry("a", {"uid": [b"a"]})) is None
