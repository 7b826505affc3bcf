"""Nested group membership (shared by the LDIF and live OpenLDAP sources) and DN normalisation."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.directory.membership import Membership, member_dn
from reconciler.model import normalise_dn

ENG = "CN=Engineering Leads,OU=Groups,DC=x"
KEYS = "CN=Security Key Owners,OU=Groups,DC=x"
LOOP_A = "CN=Loop A,OU=Groups,DC=x"
LOOP_B = "CN=Loop B,OU=Groups,DC=x"
ANN = "CN=Ann,OU=People,DC=x"
BOB = "CN=Bob,OU=People,DC=x"
CAT = "CN=Cat,OU=People,DC=x"


def graph() -> Membership:
    return Membership.from_entries(
        [
            (KEYS, {"member": [ENG, CAT]}),
            (ENG, {"member": [ANN]}),
            (LOOP_A, {"member": [LOOP_B, KEYS]}),
            (LOOP_B, {"member": [LOOP_A]}),
            (BOB, {"memberof": [ENG]}),  # only recorded on the member's side
        ],
        member_attributes=["member"],
    )


def n(dn: str) -> str:
    return normalise_dn(dn)


def test_direct_membership_merges_member_and_member_of():
    g = graph()
    assert g.direct_members(n(ENG)) == {n(ANN), n(BOB)}
    assert g.direct_groups(n(BOB)) == {n(ENG)}
    assert g.direct_groups(n(ANN)) == {n(ENG)}


def test_nested_membership_is_followed_to_any_depth():
    g = graph()
    assert g.is_member(n(ANN), n(KEYS))
    assert g.is_member(n(BOB), n(KEYS))
    assert not g.is_member(n(CAT), n(ENG))
    assert g.all_groups(n(ANN)) == {n(ENG), n(KEYS), n(LOOP_A), n(LOOP_B)}


def test_a_nesting_cycle_terminates_and_reaches_everyone_inside():
    g = graph()
    assert g.all_members(n(LOOP_B)) == {n(LOOP_A), n(LOOP_B), n(KEYS), n(ENG), n(CAT), n(ANN), n(BOB)}
    assert g.is_member(n(LOOP_A), n(LOOP_A))  # in a cycle a group is (transitively) its own member
    assert not g.is_member(n(KEYS), n(KEYS))  # ...but not outside one


def test_member_values_are_matched_whatever_their_case_spacing_or_escaping():
    g = Membership.from_entries([(KEYS, {"member": ["cn=ann, ou=people, dc=X"]})], member_attributes=["member"])
    assert g.is_member(n(ANN), n(KEYS))


def test_unique_member_uid_suffix_is_ignored():
    assert member_dn("CN=Ann,OU=People,DC=x#'0101'B") == n(ANN)
    assert member_dn(b"CN=Ann,OU=People,DC=x") == n(ANN)


def test_unknown_dns_have_no_groups_or_members():
    g = graph()
    assert g.all_groups("cn=nobody") == frozenset()
    assert g.all_members("cn=nobody") == frozenset()


@pytest.mark.parametrize(
    "spellings",
    [
        ["CN=R&D (Europe) \\2A,OU=Groups,DC=x", "cn=r&d (europe) *,ou=groups,dc=x", "CN=R&D (Europe) \\2a, OU=Groups, DC=x"],
        ["CN=Smith\\, John,OU=People,DC=x", "CN=Smith\\2C John,OU=People,DC=x", "cn=SMITH\\, JOHN , ou=people,dc=x"],
        ["CN=J\\C3\\BCrgen,DC=x", "CN=Jürgen,DC=x"],
        ["CN=a+UID=b,DC=x", "UID=b+CN=a,DC=x"],
        ["CN=x\\3Cy,DC=x", "CN=x\\<y,DC=x"],
    ],
)
def test_spellings_of_one_dn_normalise_to_one_key(spellings):
    assert len({normalise_dn(s) for s in spellings}) == 1


def test_normalised_dn_keeps_escapes_that_are_needed():
    assert normalise_dn("CN=Smith\\, John,DC=x") == "cn=smith\\, john,dc=x"
    assert normalise_dn("CN=\\ lead and trail\\ ,DC=x") == "cn=\\ lead and trail\\ ,dc=x"
    assert normalise_dn("CN=Smith\\, John,DC=x") != normalise_dn("CN=Smith,CN=John,DC=x")


_VALUE = st.text(alphabet=st.sampled_from("abcXYZ019 äß-_.&*()'|"), min_size=1, max_size=12).map(str.strip).filter(bool)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(_VALUE, min_size=1, max_size=4))
def test_plain_dns_normalise_like_their_escaped_spellings(values):
    """The fast path for DNs without escapes agrees with the full RFC 4514 path."""
    plain = ",".join(f"OU={v}" for v in values)
    escaped = ",".join("ou=" + "".join(f"\\{b:02X}" for b in v[0].encode()) + v[1:] for v in values)
    assert normalise_dn(plain) == normalise_dn(escaped) == plain.lower()
