"""The delta-read state: applying a delta to kept records, keeping the state as bytes, and when it may be trusted.

A delta read is only as safe as these: a delta applied wrongly, a state read back differently or trusted for
another server or other searches would plan from records that are not the directory's."""
from __future__ import annotations

import zlib
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from reconciler.directory.delta import (MAGIC, Delta, SearchState, SyncState, UnreadableState, decode, encode,
                                        reconciler_version, scope_digest, usable)
from reconciler.directory.ldap.paged import RawEntry
from reconciler.model import ReadNote

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def state(**overrides) -> SyncState:
    values = dict(directory="corp", method="syncrepl", server="db-1", scope="sha256:s", version=reconciler_version(),
                  full_read_at="2026-11-30T06:00:00Z",
                  searches={"users:ou=People": SearchState("cookie-1", {"u1": RawEntry("uid=a,ou=People", {"cn": [b"A"]})})})
    values.update(overrides)
    return SyncState(**values)


# ── applying a delta ──

def test_changed_records_replace_removed_ones_go_and_the_count_says_how_many_moved():
    kept = {"a": 1, "b": 2, "c": 3}
    delta = Delta(changed={"b": 20, "d": 4, "c": 3}, removed=frozenset({"a", "zz"}), present=None, token="t2")
    result, touched = delta.applied_to(kept)
    assert result == {"b": 20, "c": 3, "d": 4}
    assert touched == 3  # a removed, b changed, d added; c re-sent unchanged and zz never kept do not count
    assert kept == {"a": 1, "b": 2, "c": 3}  # the kept records are not changed in place


def test_a_present_set_removes_every_kept_record_in_neither_present_nor_changed():
    kept = {"a": 1, "b": 2, "c": 3}
    delta = Delta(changed={"d": 4}, removed=frozenset(), present=frozenset({"b", "d"}), token="t2")
    result, touched = delta.applied_to(kept)
    assert result == {"b": 2, "d": 4} and touched == 3


records = st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 3), max_size=8)


@settings(max_examples=300, deadline=None)
@given(before=records, after=records, with_present=st.booleans())
def test_a_delta_that_describes_the_change_gives_exactly_the_new_content(before, after, with_present):
    """Whatever the server sends (removals listed, or the present set), the result is the content now."""
    changed = {k: v for k, v in after.items() if before.get(k) != v}
    if with_present:
        delta = Delta(changed, frozenset(), frozenset(after), "t")
    else:
        delta = Delta(changed, frozenset(before) - frozenset(after), None, "t")
    result, touched = delta.applied_to(before)
    assert result == after
    assert touched == len(changed) + len(set(before) - set(after))


# ── kept as bytes ──

def test_a_state_survives_encoding_with_binary_values_and_many_records():
    many = {f"u{i}": RawEntry(f"uid=u{i},ou=People", {"cn": [f"User {i}".encode()], "photo": [b"\xff\x00\x01"]})
            for i in range(2_345)}
    original = state(searches={"users:ou=People": SearchState("c", many), "groups:ou=Groups": SearchState("g", {})},
                     changes_since_full=7)
    back, why = decode(encode(original))
    assert why == "" and back is not None
    assert (back.directory, back.method, back.server, back.scope, back.version, back.full_read_at, back.changes_since_full) == \
        ("corp", "syncrepl", "db-1", "sha256:s", reconciler_version(), "2026-11-30T06:00:00Z", 7)
    kept = back.searches["users:ou=People"]
    assert kept.token == "c" and len(kept.records) == 2_345
    assert RawEntry.from_record(kept.records["u7"]) == RawEntry("uid=u7,ou=People", {"cn": ["User 7"], "photo": [b"\xff\x00\x01"]})
    assert RawEntry.from_record(kept.records["u7"]) == many["u7"].kept()  # text as str, other values as bytes
    assert back.searches["groups:ou=Groups"].records == {}


def test_the_encoding_is_deterministic():
    assert encode(state()) == encode(state())


def test_kept_records_stay_compressed_until_used_and_are_written_back_as_they_came():
    """A delta that changes nothing neither decodes the records nor compresses them again."""
    blob = encode(state())
    back, _ = decode(blob)
    search = back.searches["users:ou=People"]
    assert search.packed is not None and search._records is None  # not decoded by decode()
    again = encode(back)
    assert again == blob and search._records is None  # nor by encode()
    assert RawEntry.from_record(search.records["u1"]) == RawEntry("uid=a,ou=People", {"cn": ["A"]})
    assert search.packed is None  # once used, it is written from the records


def test_records_that_do_not_decode_say_so_when_first_used():
    blob = encode(state())
    damaged = blob[:-6] + b"\x00" * 6  # the records' compressed stream, damaged at its end
    back, why = decode(damaged)
    assert why == "" and back is not None  # the header reads
    with pytest.raises(UnreadableState, match="the kept delta state's records do not read"):
        back.searches["users:ou=People"].records


@pytest.mark.parametrize("blob, reason", [
    (None, "no delta state is kept yet"),
    (b"", "no delta state is kept yet"),
    (b"not a state at all", "another format"),
    (zlib.compress(b'{"format": 1}'), "another format"),  # the first format: read in full once, then kept anew
    (MAGIC + (5).to_bytes(8, "big") + b"[1, 2", "does not read"),
    (MAGIC + (14).to_bytes(8, "big") + b'{"format": 99}', "another format"),
    (MAGIC + (35).to_bytes(8, "big") + b'{"format": 2, "directory": "corp"}', "does not read"),
    (MAGIC + (10**9).to_bytes(8, "big") + b'{"format": 2}', "does not read"),
    (encode(state())[:-3], "cut short"),
    (encode(state()) + b"more", "bytes after its last search"),
])
def test_a_state_that_does_not_read_is_a_reason_for_a_full_read_never_an_error(blob, reason):
    kept, why = decode(blob)
    assert kept is None and reason in why


# ── trusted or not ──

def decide(kept, **overrides):
    arguments = dict(directory="corp", method="syncrepl", scope="sha256:s", full_read_every=timedelta(days=1),
                     now=NOW, server="db-1")
    arguments.update(overrides)
    return usable(kept, "", **arguments)


def test_a_state_of_this_server_searches_and_version_within_the_full_read_interval_is_used():
    assert decide(state()) == (True, "")


@pytest.mark.parametrize("kept, overrides, reason", [
    (None, {}, "no delta state is kept yet"),
    (state(method="usn"), {}, "the kept state is for usn reads of corp"),
    (state(version="0.0.1"), {}, "written by reconciler 0.0.1"),
    (state(scope="sha256:other"), {}, "the searches changed since the last read"),
    (state(), {"server": "db-2"}, "the server is not the one the kept state is from (db-1 → db-2)"),
    (state(full_read_at="2026-11-29T11:00:00Z"), {}, "the last full read was 25h ago (full_read_every: 1d)"),
    (state(full_read_at="2026-11-30T11:00:00Z"), {"full_read_every": timedelta(minutes=30)},
     "the last full read was 1h ago (full_read_every: 30m)"),
    (state(full_read_at="2026-12-01T12:00:00Z"), {}, "in the future"),
    (state(full_read_at="yesterday"), {}, "no readable time"),
])
def test_a_doubtful_state_means_a_full_read_and_the_plan_says_why(kept, overrides, reason):
    trusted, why = decide(kept, **overrides)
    assert not trusted and reason in why


def test_the_scope_digest_changes_with_any_part_of_the_searches():
    base = scope_digest("openldap", "syncrepl", [("users:ou=People", "ou=People", "(objectClass=person)")])
    assert base == scope_digest("openldap", "syncrepl", [("users:ou=People", "ou=People", "(objectClass=person)")])
    assert base != scope_digest("openldap", "syncrepl", [("users:ou=People", "ou=People", "(objectClass=inetOrgPerson)")])
    assert base != scope_digest("389ds", "syncrepl", [("users:ou=People", "ou=People", "(objectClass=person)")])


def test_a_read_note_round_trips_through_the_plan_json():
    note = ReadNote("corp", "delta", "changes since the last apply", 12)
    assert ReadNote.from_json(note.to_json()) == note
    assert ReadNote.from_json(ReadNote("corp", "full", "no delta state is kept yet").to_json()).changed is None


def test_a_guid_is_kept_as_bytes_even_when_its_sixteen_bytes_are_utf8():
    """One objectGUID in 65,536 is all ASCII: kept as text, it would read back as 16 characters, not a GUID."""
    ascii_guid = bytes(range(0x30, 0x40))
    entry = RawEntry("CN=A,DC=corp", {"objectGUID": [ascii_guid], "cn": [b"A"]})
    record = entry.to_record()
    assert record == ["CN=A,DC=corp", {"cn": ["A"]}, {"objectGUID": ["MDEyMzQ1Njc4OTo7PD0+Pw=="]}]
    back = RawEntry.from_record(record)
    assert back.attributes["objectGUID"] == [ascii_guid] and back.attributes["cn"] == ["A"]
    assert back.to_record() is record  # written back as it was read


@pytest.mark.parametrize("record", [["only a dn"], "text", ["dn", ["not", "a", "mapping"]], ["dn", {}, {"x": ["%%%"]}]])
def test_a_kept_record_of_another_shape_does_not_read(record):
    import binascii

    with pytest.raises((ValueError, binascii.Error)):
        RawEntry.from_record(record)
