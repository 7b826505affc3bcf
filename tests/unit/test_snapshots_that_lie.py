"""Snapshots that lie: a cut-off file, addresses that are not addresses, two entries with one anchor,
entries that cannot be classified, base64 that is not text, a DN folded with two spaces."""
from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from reconciler.desired import build_desired_state
from reconciler.desired.templates import email_problem
from reconciler.directory.ldif.parser import parse_ldif
from reconciler.directory.ldif.source import LdifSource
from reconciler.dn import dn_parses, normalise_dn, ou_path
from reconciler.errors import DirectoryError
from tests.factories import person, policy, read
from tests.unit.test_ldif_source import corp

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
PEOPLE = "OU=People,DC=corp,DC=example,DC=com"


def records(data: bytes):
    return list(parse_ldif(data.splitlines(keepends=True), "snap.ldif"))


# 1. cut off mid-line

def test_a_file_cut_off_in_the_middle_of_a_value_is_refused_naming_file_and_last_line():
    with pytest.raises(DirectoryError) as caught:
        records(b"version: 1\n\ndn: CN=A,DC=x\ncn: A\nmail: Rache")
    assert str(caught.value).startswith("snap.ldif:5: the file ends in the middle of a line")
    assert "\n" not in caught.value.message


def test_a_file_ending_with_a_newline_is_read_whole():
    assert [r.attributes["mail"] for r in records(b"dn: CN=A,DC=x\ncn: A\nmail: rachel@x.com\n")] == [["rachel@x.com"]]


@pytest.mark.parametrize("name", ["corp.ldif", "emea.ldif"])
def test_the_quickstart_snapshots_end_with_a_newline(name):
    assert (QUICKSTART / name).read_bytes().endswith(b"\n")


# 2. addresses that are not addresses

@pytest.mark.parametrize("address", ["two words@x.com", "a@b@c.com", "@", "x@", "@y.com", "a..b@x.com", ".a@x.com",
                                     "a.@x.com", "a@x..com", "a@-x.com", "a@x-.com", "a\tb@x.com", "a@x.com\x00",
                                     "rache", "a" * 65 + "@x.com", "a@" + "b" * 64 + ".com", "a@" + "b." * 130 + "com",
                                     "a(b)@x.com", "a@[192.0.2.1]"])
def test_addresses_that_are_not_addresses_have_a_reason(address):
    assert email_problem(address)


@pytest.mark.parametrize("address", ["ann.lee@corp.example.com", "o'brien+tag@x.com", "a@b", "x_y-z@sub.b-c.de",
                                     "jurgen@bücher.de", "a" * 64 + "@x.com"])
def test_addresses_are_accepted(address):
    assert email_problem(address) is None


_LOCAL_CHARACTERS = st.sampled_from(list("aZ09.-_+'!#`~{}|ü") + [" ", "\x7f", "(", '"', "\\", "@"])
_LABEL_CHARACTERS = st.sampled_from(list("aZ09-ü_") + [" "])
_LOCAL_PARTS = st.text(_LOCAL_CHARACTERS, max_size=70) | st.integers(60, 66).map(lambda n: "a" * n)
_LABELS = st.text(_LABEL_CHARACTERS, max_size=8) | st.integers(60, 66).map(lambda n: "b" * n) | \
    st.sampled_from(["-x", "x-", "x-y", ""])
_ADDRESSES = st.builds(lambda local, labels: local + "@" + ".".join(labels), _LOCAL_PARTS,
                       st.lists(_LABELS, min_size=1, max_size=5)) | st.text(_LOCAL_CHARACTERS, max_size=30) | st.emails()


@settings(max_examples=3000, deadline=None)
@given(_ADDRESSES)
def test_the_fast_match_of_usual_addresses_judges_as_every_check_does(address):
    """email_problem first tries one regular expression for the usual address: it must accept nothing the
    checks refuse, and refuse nothing ASCII the checks accept (a refusal falls through to the checks)."""
    from reconciler.desired import templates

    fast = len(address) <= 254 and templates._USUAL_ADDRESS.fullmatch(address) is not None
    checks = _checks_only(address)
    assert email_problem(address) == checks
    if fast:
        assert checks is None
    elif checks is None and address.isascii():
        pytest.fail(f"the fast match refuses {address!r}, which every check accepts")


def _checks_only(address: str):
    from reconciler.desired import templates

    usual, templates._USUAL_ADDRESS = templates._USUAL_ADDRESS, re.compile(r"(?!)")  # matches nothing
    try:
        return templates.email_problem(address)
    finally:
        templates._USUAL_ADDRESS = usual


def test_an_invalid_email_is_ignored_with_the_reason_like_a_missing_one():
    state = build_desired_state(policy(), [read(person("Two Words", mail="two words@x.com"), person("Ann Lee"))])
    assert [u.account_name for u in state.users.values()] == ["ann.lee"]
    verdict = next(v for v in state.verdicts if v.account_name == "two.words")
    assert verdict.verdict == "ignored"
    assert verdict.reason == "email 'two words@x.com' is not a valid address: it contains a space (' ')"


# 3. two entries with one anchor

def test_two_entries_with_one_anchor_are_a_conflict_naming_the_other_dn():
    ann, bob = person("Ann Lee", anchor="same"), person("Bob Stone", anchor="same")
    state = build_desired_state(policy(), [read(ann, bob, person("Cy Doe"))])
    assert [u.account_name for u in state.users.values()] == ["cy.doe"]
    reasons = {v.account_name: v.reason for v in state.verdicts if v.verdict == "ignored"}
    assert reasons == {
        "ann.lee": f"conflict: the same objectGUID same as {bob.dn} in corp; neither is imported",
        "bob.stone": f"conflict: the same objectGUID same as {ann.dn} in corp; neither is imported",
    }


# 4. entries that cannot be classified; 5. base64 that is not text; 6. a DN folded with two spaces

def snapshot(tmp_path, extra: str) -> Path:
    text = (QUICKSTART / "corp.ldif").read_text(encoding="utf-8")
    path = tmp_path / "corp.ldif"
    path.write_text(text + "\n" + extra, encoding="utf-8")
    return path


GUID = base64.b64encode(bytes(range(16))).decode()


def test_an_entry_without_objectclass_under_a_users_base_refuses_the_read(tmp_path):
    path = snapshot(tmp_path, f"dn: CN=Nobody,OU=Sales,{PEOPLE}\ncn: Nobody\nobjectGUID:: {GUID}\n")
    with pytest.raises(DirectoryError, match=r"corp\.ldif:\d+: entry CN=Nobody,OU=Sales,.* has no objectClass.*not read"):
        LdifSource(corp(path=path)).read()


def test_an_entry_without_objectclass_outside_the_bases_is_reported_as_out_of_scope(tmp_path):
    path = snapshot(tmp_path, f"dn: CN=Elsewhere,DC=corp,DC=example,DC=com\ncn: Elsewhere\nobjectGUID:: {GUID}\n")
    found = LdifSource(corp(path=path)).read()
    gone = [o for o in found.out_of_scope if o.dn.startswith("CN=Elsewhere")]
    assert len(gone) == 1 and gone[0].reason.startswith("no objectClass") and gone[0].anchor


def test_a_dn_that_does_not_parse_refuses_the_read(tmp_path):
    path = snapshot(tmp_path, f"dn: CN=Broken,,=x,{PEOPLE}\nobjectClass: user\nobjectGUID:: {GUID}\n")
    with pytest.raises(DirectoryError, match=r"corp\.ldif:\d+: the DN .* does not parse"):
        LdifSource(corp(path=path)).read()


def test_a_base64_display_name_that_is_not_utf8_is_an_error_naming_entry_and_attribute(tmp_path):
    path = tmp_path / "corp.ldif"
    text = (QUICKSTART / "corp.ldif").read_text(encoding="utf-8")
    bad = base64.b64encode("Zoë".encode("latin-1")).decode()
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("displayName:") and i > 200)
    lines[at] = f"displayName:: {bad}\n"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(DirectoryError, match=r"corp\.ldif:\d+: entry .*: the value of displayname is not UTF-8 text"):
        LdifSource(corp(path=path)).read()


def test_a_dn_folded_with_two_spaces_parses_as_ldapv2_spaces_and_places_the_user():
    dn = "CN=x,OU=Sales,OU=People,DC=corp,DC=example,DC =com"
    assert dn_parses(dn)
    assert normalise_dn(dn) == normalise_dn(f"CN=x,OU=Sales,{PEOPLE}")
    assert ou_path(dn, PEOPLE) == ["Sales"]
    assert ou_path(f"CN=x, OU = Sales , {PEOPLE}", PEOPLE) == ["Sales"]


def test_ou_path_of_a_dn_that_does_not_parse_is_a_value_error_not_an_ldap3_traceback():
    assert not dn_parses("CN=a,,=b")
    with pytest.raises(ValueError, match="does not parse"):
        ou_path("CN=a,,=b,OU=x", "OU=x")
