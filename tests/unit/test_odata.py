"""The OData $filter subset evaluated where no Graph answers (a snapshot, the fake Graph, validate).

Semantics follow Microsoft's documentation of $filter on directory objects
(https://learn.microsoft.com/en-us/graph/filter-query-parameter and
https://learn.microsoft.com/en-us/graph/aad-advanced-queries): eq/ne/in/startswith on
properties, any() on collections, string comparison without regard to case, and ne, not and
endsWith only as advanced queries.
"""
from __future__ import annotations

import pytest

from reconciler.odata import FilterError, Unsupported, needs_advanced_query, parse, syntax_problem

ALICE = {"id": "1", "accountEnabled": True, "userType": "Member", "department": "Engineering", "mail": "Alice@X.com",
         "proxyAddresses": ["SMTP:alice@x.com", "smtp:a@x.com"], "employeeId": None, "createdDateTime": "2024-03-01T00:00:00Z",
         "onPremisesExtensionAttributes": {"extensionAttribute1": "keys"}, "assignedLicenses": [{"skuId": "abc"}]}


@pytest.mark.parametrize("text, expected", [
    ("accountEnabled eq true", True),
    ("accountEnabled eq false", False),
    ("userType eq 'member'", True),  # strings compare without regard to case
    ("department eq 'Engineering' and userType eq 'Member'", True),
    ("department eq 'Sales' or mail eq 'alice@x.com'", True),
    ("not (department eq 'Sales')", True),
    ("department ne 'Engineering'", False),
    ("department in ('Sales', 'engineering')", True),
    ("startswith(department, 'eng')", True),
    ("endswith(mail, '@x.com')", True),
    ("employeeId eq null", True),
    ("jobTitle eq null", True),  # a property the object lacks is null
    ("proxyAddresses/any(p: p eq 'smtp:a@x.com')", True),
    ("proxyAddresses/any(p: startswith(p, 'x500:'))", False),
    ("assignedLicenses/any(l: l/skuId eq 'ABC')", True),
    ("onPremisesExtensionAttributes/extensionAttribute1 eq 'keys'", True),
    ("createdDateTime ge 2024-01-01T00:00:00Z", True),
    ("(department eq 'Sales' or department eq 'Engineering') and accountEnabled eq true", True),
    ("mail eq 'O''Brien@x.com'", False),
])
def test_filters_evaluate_as_graph_documents_them(text, expected):
    assert parse(text).matches(ALICE) is expected


def test_a_quote_inside_text_is_written_twice():
    assert parse("displayName eq 'O''Brien'").matches({"displayName": "O'Brien"})


@pytest.mark.parametrize("text, advanced", [
    ("userType eq 'Member'", False),
    ("startswith(mail, 'a')", False),
    ("department ne 'Sales'", True),
    ("not (userType eq 'Guest')", True),
    ("endswith(mail, '@x.com')", True),
    ("memberOf/$count eq 0", True),  # cannot be parsed here: asked the way Graph takes the most
])
def test_advanced_queries_are_recognised(text, advanced):
    assert needs_advanced_query(text) is advanced


def test_the_properties_a_filter_reads_are_known():
    assert parse("userType eq 'Member' and proxyAddresses/any(p: p eq 'x')").properties == {"userType", "proxyAddresses"}


@pytest.mark.parametrize("text, where, words", [
    ("(mail=*)", 0, "LDAP filter"),
    ("mail eq 'x", 8, "quote is never closed"),
    ("(mail eq 'x'", 0, "never closed"),
    ("mail eq 'x')", 11, "closes nothing"),
    ("mail equals 'x'", 5, "expected eq"),
    ("mail eq 'x' mail eq 'y'", 12, "combine conditions"),
    ("", 0, "empty"),
])
def test_syntax_problems_say_where(text, where, words):
    problem = syntax_problem(text)
    assert problem is not None and problem[0] == where and words in problem[1], problem


def test_what_only_graph_evaluates_is_no_syntax_problem_but_unsupported_here():
    assert syntax_problem("memberOf/$count eq 0") is None
    with pytest.raises(Unsupported):
        parse("memberOf/$count eq 0")


def test_an_unparsable_filter_raises_with_its_offset():
    with pytest.raises(FilterError) as raised:
        parse("mail eq")
    assert raised.value.offset == 7
