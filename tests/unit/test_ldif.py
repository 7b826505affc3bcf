"""The RFC 2849 parser: what a snapshot export can contain, and bad LDIF pointing at its line."""
from __future__ import annotations

import base64
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.directory.ldif.parser import parse_ldif, read_ldif
from reconciler.errors import DirectoryError


def parse(text: str, **kwargs):
    return list(parse_ldif(text.encode("utf-8").splitlines(keepends=True), "snap.ldif", **kwargs))


def test_several_entries_separated_by_blank_lines_keep_their_dn_line():
    records = parse(
        "version: 1\n"
        "\n"
        "dn: CN=Ann,DC=x\n"
        "cn: Ann\n"
        "\n"
        "\n"
        "dn: CN=Bob,DC=x\n"
        "cn: Bob\n"
        "mail: bob@x\n"
    )
    assert [(r.dn, r.line) for r in records] == [("CN=Ann,DC=x", 3), ("CN=Bob,DC=x", 7)]
    assert records[1].attributes == {"cn": ["Bob"], "mail": ["bob@x"]}


def test_version_line_may_be_directly_followed_by_the_first_entry():
    records = parse("version: 1\ndn: CN=Ann,DC=x\ncn: Ann\n")
    assert [r.dn for r in records] == ["CN=Ann,DC=x"]


def test_folded_lines_continue_the_previous_line_without_the_leading_space():
    records = parse("dn: CN=Very Long Na\n me,DC=x\ndescription: one\n  two\n")
    assert records[0].dn == "CN=Very Long Name,DC=x"
    assert records[0].attributes["description"] == ["one two"]


def test_comments_and_their_folded_continuations_are_ignored():
    records = parse("# exported\n#  by ldapsearch\n continued comment: not an attribute\ndn: CN=Ann,DC=x\ncn: Ann\n")
    assert records[0].attributes == {"cn": ["Ann"]}


def test_base64_text_is_decoded_as_utf8_and_base64_dn_is_accepted():
    dn = base64.b64encode("CN=Jürgen Weiß,DC=x".encode()).decode()
    cn = base64.b64encode("Jürgen Weiß".encode()).decode()
    records = parse(f"dn:: {dn}\ncn:: {cn}\n")
    assert records[0].dn == "CN=Jürgen Weiß,DC=x"
    assert records[0].attributes["cn"] == ["Jürgen Weiß"]


def test_object_guid_stays_bytes_even_when_its_bytes_are_valid_utf8():
    ascii_guid = b"0123456789abcdef"  # valid UTF-8, still a binary GUID
    records = parse(f"dn: CN=Ann,DC=x\nobjectGUID:: {base64.b64encode(ascii_guid).decode()}\n")
    assert records[0].attributes["objectguid"] == [ascii_guid]


def test_binary_option_keeps_bytes_and_is_dropped_from_the_name():
    records = parse("dn: CN=Ann,DC=x\nuserCertificate;binary:: AAEC\nsomeBlob;binary: abc\ndescription;lang-de: Hallo\n")
    attributes = records[0].attributes
    assert attributes["usercertificate"] == [b"\x00\x01\x02"]
    assert attributes["someblob"] == [b"abc"]
    assert attributes["description;lang-de"] == ["Hallo"]


def test_undecodable_base64_values_are_kept_as_bytes():
    records = parse("dn: CN=Ann,DC=x\nphoto:: /9j/\n")
    assert records[0].attributes["photo"] == [b"\xff\xd8\xff"]


def test_extra_binary_attributes_can_be_named():
    records = parse("dn: CN=Ann,DC=x\nmyAnchor:: MDEyMw==\n", binary_attributes=["myanchor"])
    assert records[0].attributes["myanchor"] == [b"0123"]


def test_attribute_names_merge_case_insensitively_keeping_value_order():
    records = parse("dn: CN=G,DC=x\nmember: CN=A,DC=x\nMember: CN=B,DC=x\nMEMBER: CN=C,DC=x\n")
    assert records[0].attributes["member"] == ["CN=A,DC=x", "CN=B,DC=x", "CN=C,DC=x"]


def test_empty_value_and_crlf_line_endings():
    records = list(parse_ldif([b"dn: CN=Ann,DC=x\r\n", b"description:\r\n", b"cn: Ann\r\n"], "snap.ldif"))
    assert records[0].attributes == {"description": [""], "cn": ["Ann"]}


def test_a_utf8_byte_order_mark_is_ignored():
    records = list(parse_ldif(["\ufeffversion: 1\n".encode(), b"dn: CN=Ann,DC=x\n"], "snap.ldif"))
    assert [r.dn for r in records] == ["CN=Ann,DC=x"]


def test_changetype_add_is_content_but_modify_is_refused():
    assert parse("dn: CN=Ann,DC=x\nchangetype: add\ncn: Ann\n")[0].attributes == {"cn": ["Ann"]}
    with pytest.raises(DirectoryError, match=r"^snap\.ldif:2: change records"):
        parse("dn: CN=Ann,DC=x\nchangetype: modify\nreplace: cn\n")


@pytest.mark.parametrize(
    "text, line, what",
    [
        ("dn: CN=Ann,DC=x\ncn Ann\n", 2, "expected 'attribute: value'"),
        ("dn: CN=Ann,DC=x\ncn: Ann\n\ncn: Bob\n", 4, "entry must start with 'dn:'"),
        ("dn: CN=Ann,DC=x\nphoto:< file:///etc/passwd\n", 2, "URL values"),
        ("dn: CN=Ann,DC=x\ncn:: ***\n", 2, "invalid base64"),
        ("version: 2\ndn: CN=Ann,DC=x\n", 1, "unsupported LDIF version"),
        (" orphan\ndn: CN=Ann,DC=x\n", 1, "continuation line"),
        ("dn: CN=Ann,DC=x\nc_n: x\n", 2, "invalid attribute name"),
        ("dn:\ncn: x\n", 1, "empty DN"),
        ("dn: CN=A,DC=x\ncn: A\n\n# search result\nsearch: 2\nresult: 0 Success\n", 5, "ldapsearch -LLL"),
        ("dn: CN=A,DC=x\ncn: A\n\n# c\ndn: CN=B,DC=x\ndescription: a\n b\nbad line\n", 8, "expected"),
    ],
)
def test_bad_ldif_names_file_line_and_problem(text, line, what):
    with pytest.raises(DirectoryError) as caught:
        parse(text)
    message = str(caught.value)
    assert message.startswith(f"snap.ldif:{line}: ")
    assert what in message
    assert "\n" not in message


def test_non_utf8_line_is_reported_with_its_line():
    with pytest.raises(DirectoryError, match=r"^snap\.ldif:2: line is not UTF-8"):
        list(parse_ldif([b"dn: CN=A,DC=x\n", b"cn: \xe9\n"], "snap.ldif"))


def test_missing_file_is_one_clear_line(tmp_path):
    with pytest.raises(DirectoryError, match="cannot read LDIF snapshot .*nope.ldif"):
        list(read_ldif(str(tmp_path / "nope.ldif")))


def test_records_stream_before_the_rest_of_the_file_is_read():
    def lines():
        yield b"dn: CN=A,DC=x\n"
        yield b"\n"
        raise AssertionError("read past the first record")

    assert next(parse_ldif(lines(), "snap.ldif")).dn == "CN=A,DC=x"


def _fold(line: str, width: int) -> str:
    chunks = [line[:width]] + [" " + line[i : i + width - 1] for i in range(width, len(line), width - 1)]
    return "\n".join(chunks)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.text(min_size=1, max_size=60).filter(lambda s: "\x00" not in s), min_size=1, max_size=4),
    guid=st.uuids(),
    width=st.integers(min_value=4, max_value=80),
)
def test_any_value_round_trips_through_base64_and_folding(values, guid: uuid.UUID, width):
    """Whatever an exporter writes (base64 for unsafe text, folded at any width), the values come back."""
    body = ["dn: CN=Ann,DC=x", f"objectGUID:: {base64.b64encode(guid.bytes_le).decode()}"]
    body += [f"description:: {base64.b64encode(v.encode()).decode()}" for v in values]
    text = "\n".join(_fold(line, width) for line in body) + "\n"
    record = parse(text)[0]
    assert record.attributes["description"] == values
    assert record.attributes["objectguid"] == [guid.bytes_le]
