"""The lean search-entry decoder gives what ldap3's own decoder gives, value for value.

Messages are encoded by pyasn1 with ldap3's RFC 4511 classes (as a server would
send them) and decoded both ways; then the framing is checked by feeding a
stream of messages through the strategy's receiving() in arbitrary chunk sizes.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st
from ldap3.operation.search import search_result_entry_response_to_dict_fast
from ldap3.protocol.rfc4511 import (
    AttributeDescription, AttributeValue, LDAPDN, LDAPMessage, MessageID, PartialAttribute, PartialAttributeList,
    ProtocolOp, SearchResultEntry, Vals,
)
from ldap3.utils.asn1 import decode_message_fast
from pyasn1.codec.ber import encoder

from reconciler.directory.ldap.lean_decoder import LeanSyncStrategy, NotLean, decode_search_entry


def encode_entry(message_id: int, dn: str, attributes: list[tuple[str, list[bytes]]]) -> bytes:
    entry = SearchResultEntry()
    entry["object"] = LDAPDN(dn)
    partial_list = PartialAttributeList()
    for position, (name, values) in enumerate(attributes):
        partial = PartialAttribute()
        partial["type"] = AttributeDescription(name)
        vals = Vals()
        for index, value in enumerate(values):
            vals.setComponentByPosition(index, AttributeValue(value))
        partial["vals"] = vals
        partial_list.setComponentByPosition(position, partial)
    entry["attributes"] = partial_list
    operation = ProtocolOp()
    operation.setComponentByName("searchResEntry", entry)
    message = LDAPMessage()
    message["messageID"] = MessageID(message_id)
    message["protocolOp"] = operation
    return encoder.encode(message)


def ldap3_decoding(raw: bytes) -> tuple[int, dict]:
    decoded = decode_message_fast(raw)
    return decoded["messageID"], search_result_entry_response_to_dict_fast(decoded["payload"], None, None, False)


names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}(;range=[0-9]+-(\*|[0-9]+))?", fullmatch=True)
values = st.lists(st.binary(max_size=300) | st.text(max_size=80).map(str.encode), max_size=6)
dns = st.text(min_size=0, max_size=200).filter(lambda s: "\x00" not in s)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1), dns,
       st.lists(st.tuples(names, values), max_size=8, unique_by=lambda a: a[0].lower()))
def test_entries_decode_as_ldap3_decodes_them(message_id, dn, attributes):
    raw = encode_entry(message_id, dn, attributes)
    expected_id, expected = ldap3_decoding(raw)
    lean_id, lean = decode_search_entry(raw)
    assert lean_id == expected_id == message_id
    assert lean["dn"] == expected["dn"] and lean["raw_dn"] == expected["raw_dn"]
    assert list(lean["raw_attributes"].items()) == list(expected["raw_attributes"].items())
    assert lean["type"] == "searchResEntry"


def test_long_values_use_multi_octet_lengths():
    big = bytes(range(256)) * 300  # 76,800 bytes: a three-octet length
    raw = encode_entry(7, "cn=big,dc=example", [("jpegPhoto", [big, b"x" * 200]), ("cn", [b"big"])])
    assert decode_search_entry(raw)[1]["raw_attributes"] == dict(ldap3_decoding(raw)[1]["raw_attributes"])


def test_an_attribute_without_values_is_none_as_in_ldap3():
    raw = encode_entry(3, "cn=a", [("member", [])])
    assert decode_search_entry(raw)[1]["raw_attributes"] == {"member": None}
    assert ldap3_decoding(raw)[1]["raw_attributes"]["member"] is None


def test_other_messages_are_left_to_ldap3():
    search_done = bytes.fromhex("300c02010265070a010004000400")  # searchResDone, success
    assert decode_search_entry(search_done) is None


def test_a_dn_that_is_not_utf8_is_left_to_ldap3():
    raw = encode_entry(5, "cn=x", [("cn", [b"x"])]).replace(b"cn=x", b"cn=\xff")
    with pytest.raises(NotLean):
        decode_search_entry(raw)


class _Socket:
    def __init__(self, data: bytes, chunks: list[int]):
        self.data, self.chunks = data, chunks

    def recv(self, size: int) -> bytes:
        take = min(size, self.chunks.pop(0) if self.chunks else size)
        piece, self.data = self.data[:take], self.data[take:]
        return piece


class _Connection:
    sasl_mechanism = None

    def __init__(self, socket):
        self.socket = socket


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(dns, st.lists(st.tuples(names, values), max_size=4, unique_by=lambda a: a[0].lower())),
                min_size=1, max_size=20),
       st.lists(st.integers(min_value=1, max_value=5000), max_size=200))
def test_receiving_frames_every_message_whatever_the_chunking(entries, chunks):
    messages = [encode_entry(n + 1, dn, attributes) for n, (dn, attributes) in enumerate(entries)]
    strategy = LeanSyncStrategy.__new__(LeanSyncStrategy)
    strategy.connection = _Connection(_Socket(b"".join(messages), chunks))
    received: list[bytes] = []
    while len(received) < len(messages):
        received += strategy.receiving()
    assert received == messages


def test_ranged_attributes_do_not_share_value_lists_with_the_formatted_copy():
    """ldap3's auto-range appends each further range to raw_attributes and to attributes in turn;
    shared lists would receive every value twice."""
    raw = encode_entry(9, "cn=big,dc=example", [("member;range=0-1", [b"cn=a", b"cn=b"])])
    entry = decode_search_entry(raw)[1]
    assert entry["raw_attributes"]["member;range=0-1"] == entry["attributes"]["member;range=0-1"]
    assert entry["raw_attributes"]["member;range=0-1"] is not entry["attributes"]["member;range=0-1"]


# ── telling a page's entries from the rest by their first octets ──────────────

def _with_long_id(message: bytes) -> bytes:
    """`message` with its message ID re-encoded in one octet more (a leading zero), as BER allows and no
    server we know does: the prefix no longer matches, and the full parse must still say what it is."""
    header = 2 if message[1] < 0x80 else 2 + (message[1] & 0x7F)
    size = message[header + 1]
    body = b"\x02" + bytes([size + 1, 0]) + message[header + 2 : header + 2 + size] + message[header + 2 + size:]
    return b"\x30\x84" + len(body).to_bytes(4, "big") + body


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1), st.integers(min_value=0, max_value=2**31 - 1),
       st.integers(min_value=0, max_value=300), st.booleans())
def test_an_entry_is_told_by_its_first_octets_exactly_when_its_header_says_so(asked, answered, size, long_id):
    """The receive loop takes a message for one of the page's entries when it starts as `entry_prefix`
    says, and asks `is_search_entry` about every other: together they must agree with it on any message ID
    (one octet to four, with the sign octet at 128), either length form, and any other message."""
    from reconciler.directory.ldap.ber import entry_prefix, is_search_entry, starts_as_entry

    entry = encode_entry(answered, "uid=u,dc=example,dc=com", [("description", [b"x" * size])])
    identifier = answered.to_bytes((answered.bit_length() + 8) // 8, "big")
    body = b"\x02" + bytes([len(identifier)]) + identifier + b"\x65\x07\x0a\x01\x00\x04\x00\x04\x00"
    done = b"\x30" + bytes([len(body)]) + body  # the page's end: a searchResDone (success) for the same ID
    assert decode_message_fast(done)["protocolOp"] == 5 and decode_message_fast(done)["messageID"] == answered
    header = 2 if entry[1] < 0x80 else 2 + (entry[1] & 0x7F)
    indefinite = b"\x30\x80" + entry[header:] + b"\x00\x00"  # a length form LDAP forbids: not an entry here
    prefix = entry_prefix(asked)
    assert not starts_as_entry(indefinite, prefix) and not is_search_entry(indefinite, asked)
    for message in (entry, done):
        message = _with_long_id(message) if long_id else message
        slow = is_search_entry(message, asked)
        fast = starts_as_entry(message, prefix)
        assert (fast or slow) == slow  # a start that matches is never wrong
        if not long_id and message is entry:
            assert fast == slow == (asked == answered)  # and the usual entry is told by its start alone
