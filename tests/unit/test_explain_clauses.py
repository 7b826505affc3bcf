"""explain's clause-by-clause filter evaluation (`SnapshotSearch.explain`, `split_filter`, `Clause`):
each clause named exactly as written, each evaluated by the same evaluator as a whole search, and
always agreeing with it."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.directory.filters import Clause, InvalidFilter, SnapshotSearch, filter_attributes, split_filter

DOMAIN = "DC=corp,DC=example,DC=com"
PEOPLE = f"OU=People,{DOMAIN}"
GROUPS = f"OU=Groups,{DOMAIN}"
JANE = f"CN=Jane Smith,OU=Finance,{PEOPLE}"
RAVI = f"CN=Ravi Patel,{PEOPLE}"
BUILD = f"CN=ENG-BUILD01,{PEOPLE}"
JOHN = f"CN=Smith\\, John,{PEOPLE}"
KEYS = f"CN=Security Key Owners,{GROUPS}"
LEADS = f"CN=Engineering Leads,{GROUPS}"
PLATFORM = f"CN=Platform Leads,{GROUPS}"
RND = f"CN=R&D (Europe) *,{GROUPS}"
USER = ["top", "person", "organizationalPerson", "user"]
AD_DEFAULT = "(&(objectClass=user)(!(objectClass=computer)))"


@pytest.fixture(scope="module")
def snapshot() -> SnapshotSearch:
    search = SnapshotSearch("active-directory")
    for dn, attributes in [
        (DOMAIN, {"objectClass": ["domain"]}),
        (PEOPLE, {"objectClass": ["organizationalUnit"]}),
        (f"OU=Finance,{PEOPLE}", {"objectClass": ["organizationalUnit"]}),
        (GROUPS, {"objectClass": ["organizationalUnit"]}),
        (JANE, {"objectClass": USER, "department": ["Finance"], "userAccountControl": ["512"], "title": ["CFO (acting)"]}),
        (RAVI, {"objectClass": USER, "department": ["Engineering"], "userAccountControl": ["66050"]}),
        (BUILD, {"objectClass": [*USER, "computer"], "userAccountControl": ["4096"]}),
        (JOHN, {"objectClass": USER, "department": ["Sales", "Finance"]}),
        (KEYS, {"objectClass": ["group"], "member": [LEADS]}),
        (LEADS, {"objectClass": ["group"], "member": [PLATFORM]}),
        (PLATFORM, {"objectClass": ["group"], "member": [RAVI]}),
        (RND, {"objectClass": ["group"], "member": [JOHN]}),
    ]:
        search.add(dn, attributes)
    return search


def texts(clauses) -> list[str]:
    return [c.text for c in clauses]


def test_an_and_answers_for_each_clause_and_names_the_one_that_fails(snapshot):
    clause = snapshot.explain(JANE, "(&(objectClass=user)(!(objectClass=computer))(!(department=Finance)))")
    assert not clause.matched and clause.operator == "&"
    assert [(c.text, c.matched) for c in clause.children] == [
        ("(objectClass=user)", True), ("(!(objectClass=computer))", True), ("(!(department=Finance))", False)]
    assert texts(clause.failing()) == ["(!(department=Finance))"]
    inner = clause.children[2].children[0]
    assert (inner.text, inner.matched, inner.attribute) == ("(department=Finance)", True, "department")


def test_a_matching_filter_has_no_failing_clause(snapshot):
    clause = snapshot.explain(RAVI, AD_DEFAULT)
    assert clause.matched and clause.failing() == []


def test_the_text_is_the_policy_s_own_spelling_spaces_and_escapes_kept(snapshot):
    written = "( & (objectClass=user)  (title=CFO \\28acting\\29) (!(department=Fin*)) )"
    clause = snapshot.explain(JANE, written)
    assert clause.text == written
    assert texts(clause.children) == ["(objectClass=user)", "(title=CFO \\28acting\\29)", "(!(department=Fin*))"]
    assert [c.matched for c in clause.children] == [True, True, False]
    assert texts(clause.failing()) == ["(!(department=Fin*))"]


def test_nested_ands_are_looked_into_and_an_or_is_named_whole(snapshot):
    written = "(&(objectClass=user)(&(department=Finance)(|(title=CEO)(title=CTO))))"
    clause = snapshot.explain(JANE, written)
    assert texts(clause.failing()) == ["(|(title=CEO)(title=CTO))"]
    alternatives = clause.children[1].children[1].children
    assert [(c.text, c.matched) for c in alternatives] == [("(title=CEO)", False), ("(title=CTO)", False)]


def test_several_failing_clauses_are_all_named(snapshot):
    clause = snapshot.explain(BUILD, "(&(objectClass=user)(!(objectClass=computer))(department=*))")
    assert texts(clause.failing()) == ["(!(objectClass=computer))", "(department=*)"]


def test_a_single_item_filter_is_its_own_failing_clause(snapshot):
    clause = snapshot.explain(RAVI, "(department=Finance)")
    assert (clause.operator, clause.attribute, clause.children) == ("", "department", ())
    assert texts(clause.failing()) == ["(department=Finance)"]


def test_ad_matching_rules_are_evaluated_per_clause(snapshot):
    disabled = "(!(userAccountControl:1.2.840.113556.1.4.803:=2))"
    clause = snapshot.explain(RAVI, f"(&(objectClass=user){disabled})")
    assert texts(clause.failing()) == [disabled]
    assert clause.children[1].children[0].attribute == "userAccountControl"


def test_nested_membership_through_the_in_chain_rule(snapshot):
    chain = f"(memberOf:1.2.840.113556.1.4.1941:={KEYS})"
    assert snapshot.explain(RAVI, f"(&(objectClass=user){chain})").matched
    clause = snapshot.explain(JANE, f"(&(objectClass=user){chain})")
    assert texts(clause.failing()) == [chain]


def test_a_group_dn_with_special_characters_escaped_per_rfc_4515(snapshot):
    member = "(memberOf:1.2.840.113556.1.4.1941:=CN=R&D \\28Europe\\29 \\2A,OU=Groups,DC=corp,DC=example,DC=com)"
    clause = snapshot.explain(JOHN, f"(&(objectClass=user){member})")
    assert clause.matched and [c.matched for c in clause.children] == [True, True]


def test_not_over_a_multi_valued_attribute(snapshot):
    clause = snapshot.explain(JOHN, "(&(objectClass=user)(!(department=Finance)))")
    assert texts(clause.failing()) == ["(!(department=Finance))"]  # one of two values is enough


def test_the_dn_is_found_in_any_spelling(snapshot):
    assert snapshot.explain("cn=smith\\2c john , ou=people,dc=corp,dc=example,dc=com", AD_DEFAULT).matched


def test_an_invalid_filter_is_the_evaluator_s_error(snapshot):
    with pytest.raises(InvalidFilter):
        snapshot.explain(JANE, "(&(objectClass=user)(department=R&D (Europe)))")


def test_split_filter_gives_up_on_what_is_not_a_filter_rather_than_guess():
    assert split_filter("objectClass=user") is None
    assert split_filter("(&(a=b)") is None
    assert split_filter("(a=b)(c=d)") is None
    assert split_filter("(!(a=b)(c=d))") is None


def test_filter_attributes_lists_what_the_filter_tests():
    assert filter_attributes("(&(objectClass=user)(!(department=x))(userAccountControl:1.2.840.113556.1.4.803:=2))") \
        == ["objectclass", "department", "useraccountcontrol"]
    assert filter_attributes("not a filter") == []


def test_clause_to_json_is_the_tree():
    clause = Clause("(!(a=b))", "!", False, (Clause("(a=b)", "", True, (), "a"),))
    assert clause.to_json() == {"text": "(!(a=b))", "operator": "!", "matched": False, "attribute": None,
                                "children": [{"text": "(a=b)", "operator": None, "matched": True, "attribute": "a",
                                              "children": []}]}


# Every clause's answer is the answer a search with that clause alone gives, and the whole
# tree's answer is the search's: the explanation can never disagree with the plan.
ITEMS = ["(objectClass=user)", "(objectClass=computer)", "(department=Finance)", "(department=*)",
         "(title=CFO*)", "(userAccountControl:1.2.840.113556.1.4.803:=2)", f"(memberOf:1.2.840.113556.1.4.1941:={KEYS})",
         "(cn>=M)", "(department=Sales)"]


def filters(depth: int = 3):
    leaf = st.sampled_from(ITEMS)
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            inner.map(lambda f: f"(!{f})"),
            st.lists(inner, min_size=1, max_size=3).map(lambda fs: "(&" + "".join(fs) + ")"),
            st.lists(inner, min_size=1, max_size=3).map(lambda fs: "(|" + "".join(fs) + ")"),
        ),
        max_leaves=8,
    )


@settings(max_examples=150, deadline=None)
@given(search_filter=filters(), who=st.sampled_from([JANE, RAVI, BUILD, JOHN]))
def test_each_clause_agrees_with_a_search_by_that_clause(snapshot, search_filter, who):
    clause = snapshot.explain(who, search_filter)

    def check(node: Clause) -> None:
        assert node.matched == bool(snapshot.search(who, node.text, "base")), node.text
        if node.operator == "&":
            assert node.matched == all(c.matched for c in node.children)
        elif node.operator == "|":
            assert node.matched == any(c.matched for c in node.children)
        elif node.operator == "!":
            assert node.matched != node.children[0].matched
        for child in node.children:
            check(child)

    check(clause)
    assert clause.matched == (who in snapshot.search(PEOPLE, search_filter))
    assert all(not f.matched for f in clause.failing())
