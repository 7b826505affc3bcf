"""Fast paths taken for big reads give exactly what the general code gives.

Each fast path applies to the common case only (DNs without escapes, ...);
these properties compare it with the general path on generated inputs.
"""
from __future__ import annotations

from hypothesis import given, settings, strategies as st
from ldap3.utils.dn import parse_dn

from reconciler.dn import ou_path, unescape_value as unescape_rdn_value

attribute_types = st.sampled_from(["ou", "OU", "Ou", "cn", "uid", "dc", "o"])
plain_values = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,12}[A-Za-z0-9]", fullmatch=True)
rdns = st.tuples(attribute_types, plain_values).map(lambda pair: f"{pair[0]}={pair[1]}")


def ou_path_by_parse_dn(dn: str, base: str) -> list[str]:
    rdn_list = parse_dn(dn)
    below = rdn_list[1 : len(rdn_list) - len(parse_dn(base))] if base else rdn_list[1:]
    return [unescape_rdn_value(value) for attribute, value, _ in reversed(below) if attribute.lower() == "ou"]


@settings(max_examples=300, deadline=None)
@given(st.lists(rdns, min_size=1, max_size=6), st.lists(rdns, min_size=0, max_size=3))
def test_ou_path_of_plain_dns_matches_parse_dn(entry_rdns, base_rdns):
    base = ",".join(base_rdns)
    dn = ",".join(entry_rdns + base_rdns)
    assert ou_path(dn, base) == ou_path_by_parse_dn(dn, base)


def test_ou_path_with_escapes_still_unescapes():
    assert ou_path(r"uid=a,ou=R\2CD,ou=Sales\, EMEA,dc=x", "dc=x") == ["Sales, EMEA", "R,D"]
