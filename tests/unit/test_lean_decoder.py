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
