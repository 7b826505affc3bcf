"""A big read's pages decoded in a helper process give exactly the entries decoded here, and the helper can
neither fail a read nor outlive it nor see this process's secrets.

The messages are encoded by pyasn1 with ldap3's RFC 4511 classes, as a server sends them (the encoder of
tests/unit/test_lean_decoder.py); the helper is the real one (`python -I -S ber.py`), started by
`EntryDecoder` on this machine. tests/integration/test_live_openldap.py runs it on a live slapd read.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from ldap3 import SYNC, Connection, Server

from reconciler.directory.ldap import ber
from reconciler.directory.ldap.entry_decoder import EntryDecoder
from reconciler.directory.ldap.lean_decoder import install
from reconciler.directory.ldap.paged import RawEntry
from tests.unit.test_lean_decoder import encode_entry, ldap3_decoding


@pytest.fixture
def strategy():
    connection = Connection(Server("ldap://127.0.0.1:9"), client_strategy=SYNC)  # never opened: decoding only
    install(connection)
    return connection.strategy


@pytest.fixture
def eager(strategy):
    """An EntryDecoder that hands every page to the helper, closed after the test whatever it did."""
    decoder = EntryDecoder(strategy)
    decoder.START_AFTER = 0
    yield decoder
    decoder.close()


def page(first: int, count: int, message_id: int = 7) -> list[bytes]:
    return [encode_entry(message_id, f"uid=u{n},ou=People,dc=example,dc=com",
                         [("uid", [f"u{n}".encode()]), ("mail", [f"u{n}@example.com".encode()]),
                          ("memberOf", [b"cn=a,ou=Groups,dc=example,dc=com", b"cn=b,ou=Groups,dc=example,dc=com"]),
                          ("jpegPhoto", [bytes(range(256)) * 2]), ("description", [])])
            for n in range(first, first + count)]


def expected(messages: list[bytes]) -> list[RawEntry]:
    entries = []
    for raw in messages:
        _, _, dn, attributes = ber.decode_entry(raw)
        entries.append(RawEntry(dn, attributes))
    return entries


def helper_alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def test_pages_decoded_by_the_helper_are_the_entries_decoded_here(eager):
    pages = [page(0, 300), page(300, 1), page(301, 250)]
    answers = []
    for messages in pages:
        answer = eager.submit(messages)
        assert eager.helper_pid is not None and not eager._failed
        answers.append(answer())  # one page with the helper at a time, as paged_search takes them
    assert answers == [expected(messages) for messages in pages]
    assert answers[0][5] == RawEntry("uid=u5,ou=People,dc=example,dc=com", {
        "uid": [b"u5"], "mail": [b"u5@example.com"],
        "memberOf": [b"cn=a,ou=Groups,dc=example,dc=com", b"cn=b,ou=Groups,dc=example,dc=com"],
        "jpegPhoto": [bytes(range(256)) * 2], "description": None})


def test_entries_the_lean_decoder_leaves_alone_are_decoded_by_ldap3_in_their_place(eager):
    not_utf8 = encode_entry(7, "uid=x", [("cn", [b"x"])]).replace(b"uid=x", b"uid=\xff")
    entries = eager.submit([*page(0, 3), not_utf8, *page(3, 2)])()
    assert [e.dn for e in entries] == [f"uid=u{n},ou=People,dc=example,dc=com" for n in range(3)] + \
        [ldap3_decoding(not_utf8)[1]["dn"]] + [f"uid=u{n},ou=People,dc=example,dc=com" for n in (3, 4)]
    assert entries[3].attributes == ldap3_decoding(not_utf8)[1]["raw_attributes"] == {"cn": [b"x"]}


def test_a_small_read_never_starts_the_helper(strategy):
    decoder = EntryDecoder(strategy)
    assert decoder.submit(page(0, 500))() == expected(page(0, 500))
    assert decoder.submit(page(500, 1000))() == expected(page(500, 1000))
    assert decoder.helper_pid is None
    decoder.close()


def test_the_first_pages_are_decoded_here_while_the_rest_go_to_the_helper(strategy):
    decoder = EntryDecoder(strategy)
    try:
        assert decoder.submit(page(0, 1500))() == expected(page(0, 1500))
        assert decoder.helper_pid is None
        assert decoder.submit(page(1500, 1000))() == expected(page(1500, 1000))  # past START_AFTER (2000)
        assert decoder.helper_pid is not None
    finally:
        decoder.close()


def test_a_helper_that_dies_with_a_page_costs_nothing_but_time(eager):
    assert eager.submit(page(0, 10))() == expected(page(0, 10))
    pid = eager.helper_pid
    answer = eager.submit(page(10, 200))
    os.kill(pid, signal.SIGKILL)
    assert answer() == expected(page(10, 200))  # decoded here instead
    assert eager.helper_pid is None and eager._failed and not helper_alive(pid)
    assert eager.submit(page(210, 5))() == expected(page(210, 5))  # and so is every page after
    assert eager.helper_pid is None


def test_a_helper_that_cannot_start_leaves_the_decoding_here(eager, monkeypatch):
    monkeypatch.setattr("reconciler.directory.ldap.entry_decoder.sys.executable", "/nonexistent/python")
    assert eager.submit(page(0, 20))() == expected(page(0, 20))
    assert eager.helper_pid is None and eager._failed


def test_the_helper_is_stopped_when_the_search_ends_even_with_a_page_still_unread(eager):
    eager.submit(page(0, 1000))  # abandoned: the caller failed before taking the page (an answer bigger than a pipe)
    process = eager._process
    assert helper_alive(process.pid)
    eager.close()
    assert not helper_alive(process.pid)
    assert process.returncode > 0  # it ended on its own, at the broken pipe of its answer: not killed (-9) after a wait


def test_the_helper_sees_none_of_this_processs_environment(eager, monkeypatch):
    monkeypatch.setenv("CORP_BIND_PASSWORD", "s3cret-never-shared")
    eager.submit(page(0, 5))()
    environment = Path(f"/proc/{eager.helper_pid}/environ").read_bytes()
    command = Path(f"/proc/{eager.helper_pid}/cmdline").read_bytes().split(b"\0")
    assert b"s3cret" not in environment and b"CORP_BIND_PASSWORD" not in environment
    assert command[1:4] == [b"-I", b"-S", ber.__file__.encode()]  # isolated: no PYTHON* variables, no site


def test_the_helper_answers_in_marshal_and_stops_at_the_end_of_its_input():
    """The protocol itself, in this process: what the helper writes for two requests, then end of input."""
    import io
    import marshal

    first, second = page(0, 3), page(3, 1)
    requests = io.BytesIO(b"".join(len(data).to_bytes(8, "big") + data
                                   for data in (b"".join(first), b"".join(second))))
    answers = io.BytesIO()
    ber.serve(requests, answers)
    stream = io.BytesIO(answers.getvalue())
    decoded = []
    while header := stream.read(8):
        decoded.append(marshal.loads(stream.read(int.from_bytes(header, "big"))))
    assert decoded == [[(e.dn, e.attributes) for e in expected(first)], [(e.dn, e.attributes) for e in expected(second)]]
