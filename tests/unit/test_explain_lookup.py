"""explain's parts without a command: the forms of WHO, which entries answer to them, close matches,
the path of nested groups, each condition's check, and the live lookup against a fake server."""
from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.directory.ldap.paged import RawEntry
from reconciler.directory.membership import Membership
from reconciler.errors import ReconcilerError
from reconciler.explain.checks import (
    conflict_check, disabled_check, email_check, filter_check, manual_check, member_of_check, search_base_check,
)
from reconciler.explain.lookup import Found, LiveLookup, _reverse, name_filter, path_up
from reconciler.explain.query import by_display_name_only, matches, parse_query, suggestions
from reconciler.model import EntryVerdict
from reconciler.policy.model import FLAVOUR_SCHEMAS, DisabledRule, Lifecycle, Placement, Template, UserScope
from tests.factories import directory, policy

CORP = directory("corp")
EMEA = directory("emea", users=UserScope(search_bases=("OU=Staff,DC=emea,DC=example,DC=com",)))
TWO = policy(CORP, EMEA)
MEI = "CN=Mei Chen,OU=People,DC=corp,DC=example,DC=com"


def attrs(**values) -> dict[str, tuple[str, ...]]:
    return {k.lower(): tuple(v) if isinstance(v, (list, tuple)) else (v,) for k, v in values.items()}


PERSON = attrs(objectClass=["top", "person", "user"], mail="Mei.Chen@corp.example.com",
               userPrincipalName="mchen@corp.example.com", sAMAccountName="mchen", displayName="Mei Chen",
               cn="Mei Chen", proxyAddresses=["SMTP:mei@corp.example.com", "smtp:chen@old.example.com", "X500:/o=x"])


# ── the forms of WHO ──

def test_a_dn_in_any_case_and_spacing():
    query = parse_query("cn = mei chen , ou=people,DC=corp,dc=example,dc=com", TWO)
    assert query.form == "dn" and query.directories == ("corp", "emea")
    assert matches(query, CORP, MEI, PERSON) == ["DN"]


@pytest.mark.parametrize("who", ["CORP\\mchen", "corp\\MCHEN", "Corp\\mchen "])
def test_domain_backslash_user_is_the_account_in_that_directory_only(who):
    query = parse_query(who, TWO)
    assert (query.form, query.directories, query.account) == ("domain", ("corp",), who.strip().split("\\")[1])
    assert matches(query, CORP, MEI, PERSON) == ["sAMAccountName in domain " + who.split("\\")[0]]
    assert matches(query, EMEA, MEI, PERSON) == []


def test_the_domain_is_the_first_dc_label_or_the_directory_s_name():
    renamed = policy(directory("hq"), EMEA)
    assert parse_query("CORP\\mchen", renamed).directories == ("hq",)  # DC=corp of its search base
    assert parse_query("HQ\\mchen", renamed).directories == ("hq",)


def test_a_domain_that_names_no_directory_says_which_there_are():
    with pytest.raises(ReconcilerError) as raised:
        parse_query("CROP\\mchen", TWO)
    message = str(raised.value)
    assert message.startswith("CROP\\mchen: the domain CROP names no directory of this policy")
    assert "corp (CORP), emea (EMEA)" in message


@pytest.mark.parametrize("who, how", [
    ("mei.chen@CORP.example.com", ["mail"]),
    ("MCHEN@corp.example.com", ["userPrincipalName"]),
    ("mei@corp.example.com", ["proxyAddresses"]),
    ("chen@old.example.com", ["proxyAddresses"]),
    ("mchen", ["sAMAccountName"]),
    ("mei chen", ["displayName", "cn"]),
])
def test_a_name_is_any_address_the_account_or_the_display_name(who, how):
    assert matches(parse_query(who, TWO), CORP, MEI, PERSON) == how


def test_what_is_not_a_name_of_the_entry_does_not_match():
    for who in ("/o=x", "X500:/o=x", "Mei", "chen", "mei.chen", "smtp:mei@corp.example.com"):
        assert matches(parse_query(who, TWO), CORP, MEI, PERSON) == [], who


def test_the_mapped_email_matches_when_no_attribute_holds_it():
    query = parse_query("mchen@corp.example.com", TWO)
    without_upn = {k: v for k, v in PERSON.items() if k != "userprincipalname"}
    assert matches(query, CORP, MEI, without_upn, ["mchen@corp.example.com"]) == ["email"]


def test_groups_and_containers_are_not_people():
    group = attrs(objectClass=["top", "group"], cn="Mei Chen", sAMAccountName="Mei Chen")
    assert matches(parse_query("Mei Chen", TWO), CORP, MEI, group) == []
    assert matches(parse_query(MEI, TWO), CORP, MEI, group) == ["DN"]  # asked by DN, it is what was asked


def test_display_name_only():
    assert by_display_name_only(["displayName", "cn"]) and not by_display_name_only(["mail", "cn"])
    assert not by_display_name_only([])


# ── close matches ──

def test_suggestions_are_close_names_best_first():
    names = ["mchen", "mcohen", "Margaret.Chen@corp.example.com", "Zoë Adams", "zadams", "someone"]
    assert suggestions(parse_query("mchne", TWO), names)[0] == "mchen"
    assert suggestions(parse_query("zoe adams", TWO), names)[0] == "Zoë Adams"
    assert suggestions(parse_query("nobody-like-this", TWO), names) == []


def test_suggestions_keep_the_domain_and_compare_dns_by_their_first_rdn():
    assert suggestions(parse_query("CORP\\mchne", TWO), ["mchen", "xyz"]) == ["CORP\\mchen"]
    dns = [MEI, "CN=Mel Cohen,OU=People,DC=corp,DC=example,DC=com", "OU=People,DC=corp,DC=example,DC=com"]
    assert suggestions(parse_query("CN=Mei Chne,OU=Peeple,DC=corp,DC=example,DC=com", TWO), dns) == [MEI]


# ── nested groups ──

def graph(*edges: tuple[str, str]) -> Membership:
    membership = Membership()
    for group, member in edges:
        membership.add(group, member)
    return membership


def test_the_path_of_nesting_is_the_shortest_from_the_entry_up():
    g = graph(("keys", "leads"), ("leads", "platform"), ("platform", "ravi"), ("keys", "ravi2"),
              ("other", "ravi"), ("keys", "other2"))
    assert path_up(g, "ravi", "keys") == ["platform", "leads", "keys"]
    assert path_up(g, "ravi2", "keys") == ["keys"]
    assert path_up(g, "ravi", "nowhere") is None


def test_the_path_walk_ends_on_a_cycle():
    g = graph(("helpdesk", "nora"), ("it", "helpdesk"), ("helpdesk", "it"))
    assert path_up(g, "nora", "it") == ["helpdesk", "it"]
    assert path_up(g, "nora", "keys") is None


# ── each condition ──

def test_search_base_names_the_base_and_one_level_scope():
    assert search_base_check(CORP, MEI).summary == "under OU=People,DC=corp,DC=example,DC=com (scope subtree)"
    deep = "CN=X,OU=Sales,OU=People,DC=corp,DC=example,DC=com"
    one = replace(CORP, users=replace(CORP.users, scope="one"))
    check = search_base_check(one, deep)
    assert check.ok is False and check.summary.startswith("below OU=People,DC=corp,DC=example,DC=com but not directly")
    outside = search_base_check(CORP, "CN=svc,OU=Service Accounts,DC=corp,DC=example,DC=com")
    assert (outside.ok, outside.excludes) == (False, "outside the search bases")
    assert [b["under"] for b in outside.facts["bases"]] == [False]


def test_filter_check_names_the_failing_clause():
    from reconciler.directory.filters import SnapshotSearch

    search = SnapshotSearch("active-directory")
    search.add(MEI, {"objectClass": ["user"], "department": ["Finance"]})
    finance = replace(CORP, users=replace(CORP.users, filter="(&(objectClass=user)(!(department=Finance)))"))
    check = filter_check(finance, search.explain(MEI, finance.users.filter), None, lambda name: ["Finance"])
    assert (check.ok, check.excludes) == (False, "the filter clause (!(department=Finance))")
    assert check.facts["failing"] == ["(!(department=Finance))"] and check.facts["flavour_default"] is False


def test_member_of_says_how_and_through_which_groups():
    keys = "CN=Keys,OU=Groups,DC=corp,DC=example,DC=com"
    wanted = replace(CORP, users=replace(CORP.users, member_of=(keys,)))
    nested = member_of_check(wanted, MEI, lambda group: ["CN=Leads", keys])
    assert nested.ok and nested.summary == f"member of {keys} through nested groups: CN=Leads → {keys}"
    assert member_of_check(wanted, MEI, lambda group: [keys]).summary == f"member of {keys} (directly)"
    missing = member_of_check(wanted, MEI, lambda group: None)
    assert missing.ok is False and "directly or through nested groups" in missing.summary
    assert member_of_check(CORP, MEI, lambda group: None).ok is None  # no member_of: nothing required


@pytest.mark.parametrize("rule, values, disabled, seen", [
    (DisabledRule("userAccountControl", flag=2), ["514"], True, "userAccountControl 514: flag 2 (ACCOUNTDISABLE) set"),
    (DisabledRule("userAccountControl", flag=2), ["66048"], False, "userAccountControl 66048: flag 2 (ACCOUNTDISABLE) not set"),
    (DisabledRule("pwdAccountLockedTime"), ["000001010000Z"], True, "pwdAccountLockedTime present (000001010000Z)"),
    (DisabledRule("pwdAccountLockedTime"), [], False, "pwdAccountLockedTime not present"),
    (DisabledRule("nsAccountLock", equals="TRUE"), ["true"], True, "nsAccountLock true (equals TRUE)"),
])
def test_disabled_names_the_attribute_and_the_rule(rule, values, disabled, seen):
    d = replace(CORP, schema=replace(FLAVOUR_SCHEMAS["active-directory"], disabled=rule))
    check = disabled_check(policy(d), d, {rule.attribute.lower(): tuple(values)})
    assert check.ok is (not disabled) and seen in check.summary and check.facts["disabled"] is disabled


def test_disabled_with_include_disabled_passes_unless_lifecycle_deletes():
    d = replace(CORP, users=replace(CORP.users, include_disabled=True))
    values = {"useraccountcontrol": ("514",)}
    assert disabled_check(policy(d), d, values).ok is True
    deleting = policy(d, lifecycle=Lifecycle(when_disabled="delete"))
    assert disabled_check(deleting, d, values).ok is False


def test_email_lists_the_templates_tried_and_what_each_yielded():
    check, email = email_check(CORP, attrs(sAMAccountName="nora"))  # templates {mail}, {sAMAccountName}@corp...
    assert email == "nora@corp.example.com" and check.ok
    assert check.facts["tried"] == [{"template": "{mail}", "value": None, "missing": ["mail"]},
                                    {"template": "{sAMAccountName}@corp.example.com", "value": "nora@corp.example.com",
                                     "missing": []}]
    assert check.summary == "nora@corp.example.com from {sAMAccountName}@corp.example.com ({mail}: no mail)"
    none, email = email_check(CORP, attrs(cn="x"))
    assert email is None and none.ok is False and none.excludes.startswith("no email")
    bad, email = email_check(CORP, attrs(mail="not an address"))
    assert bad.ok is False and "is not a valid address" in bad.summary and bad.facts["valid"] is False


def verdict(dn, email, verdict="imported", reason="in scope of corp", key=None, directory="corp", anchor=None):
    return EntryVerdict(directory, dn, anchor or dn, None, email, verdict, reason, key)


def test_conflict_names_the_other_dn():
    jane, jan = "CN=Jane Smith,OU=People,DC=corp", "CN=Jan Smith,OU=People,DC=corp"
    why = f"conflict: j.smith@corp.example.com is also the email of {jan} in corp; neither is imported"
    mine = verdict(jane, "j.smith@corp.example.com", "ignored", why)
    other = verdict(jan, "j.smith@corp.example.com", "ignored", why.replace(jan, jane))
    check = conflict_check(TWO, CORP, jane, jane, "j.smith@corp.example.com", mine, [mine, other], [])
    assert check.ok is False and check.facts["with"] == [{"directory": "corp", "dn": jan}]
    assert check.summary.startswith(f"conflict with {jan} (corp): the same email j.smith@corp.example.com")


def test_conflict_for_a_merge_names_the_partner_and_passes():
    corp, emea = verdict(MEI, "mei@x.com", key="corp:1"), verdict("CN=Mei,DC=emea", "mei@x.com", key="corp:1", directory="emea")
    check = conflict_check(TWO, CORP, MEI, "1", "mei@x.com", corp, [corp, emea], [])
    assert check.ok and check.summary == "none; merged by email with CN=Mei,DC=emea (emea)"


def test_conflict_with_the_store_excludes():
    mine = verdict(MEI, "mei@x.com", key="corp:1")
    check = conflict_check(TWO, CORP, MEI, "1", "mei@x.com", mine, [mine], ["conflict: the store's user ..."])
    assert check.ok is False and check.summary == "conflict: the store's user ..."


def test_manual_applies_in_manual_mode_only():
    assert manual_check(TWO, MEI, "mchen", "mei@x.com") is None
    manual = policy(CORP, placement=Placement(mode="manual"), manual=("MCHEN",))
    assert manual_check(manual, MEI, "mchen", "mei@x.com").ok is True
    assert manual_check(manual, MEI, "other", "mei@x.com").ok is False


# ── the live lookup, against a fake server ──

class FakeServer:
    """EntryLookup's face: naming contexts, bounded searches, base reads; records what was asked."""

    def __init__(self, entries: dict[str, dict[str, list[bytes]]]):
        self.entries = entries
        self.searches: list[tuple[str, str]] = []
        self.url = "ldaps://dc.example"

    def naming_contexts(self):
        return ["DC=corp,DC=example,DC=com"]

    def close(self):
        pass

    def read(self, dn, attributes):
        from reconciler.dn import normalise_dn

        for known, values in self.entries.items():
            if normalise_dn(known) == normalise_dn(dn):
                return RawEntry(known, values)
        return None

    def search(self, base, ldap_filter, attributes, scope="subtree", limit=20):
        from reconciler.directory.filters import SnapshotSearch

        self.searches.append((base, ldap_filter))
        search = SnapshotSearch("active-directory")
        search.add(base, {"objectClass": ["domain"]})
        for dn, values in self.entries.items():
            search.add(dn, {name: v for name, v in values.items() if v is not None})
        hits = search.search(base, ldap_filter)
        return [RawEntry(dn, self.entries[dn]) for dn in hits if dn in self.entries][:limit], False


GROUPS = "OU=Groups,DC=corp,DC=example,DC=com"
KEYS, LEADS, LOOP = (f"CN={name},{GROUPS}" for name in ("Keys", "Leads", "Loop"))
RAVI = "CN=Ravi Patel,OU=People,DC=corp,DC=example,DC=com"


def live(server: FakeServer, **users) -> LiveLookup:
    lookup = LiveLookup.__new__(LiveLookup)
    lookup.directory = replace(CORP, kind="active-directory", users=replace(CORP.users, **users))
    lookup.lookup = server
    lookup.source = server.url
    lookup.truncated = False
    lookup._graphs, lookup._spelled = {}, {}
    return lookup


def server() -> FakeServer:
    b = lambda *values: [v.encode() for v in values]  # noqa: E731
    return FakeServer({
        RAVI: {"objectClass": b("top", "person", "user"), "sAMAccountName": b("rpatel"), "department": b("Finance"),
               "displayName": b("Ravi Patel"), "mail": b("Ravi.Patel@corp.example.com")},
        LEADS: {"objectClass": b("group"), "member": b(RAVI, LOOP)},  # no memberOf on the groups: found by member
        LOOP: {"objectClass": b("group"), "member": b(LEADS)},  # a cycle Leads <-> Loop
        KEYS: {"objectClass": b("group"), "member": b(LOOP)},
    })


def test_live_find_by_name_reads_the_entry_and_says_how_it_matched():
    fake = server()
    lookup = live(fake)
    [found] = lookup.find(parse_query("ravi.patel@corp.example.com", TWO), {})
    assert (found.dn, found.matched_by) == (RAVI, ["mail"])
    assert fake.searches[0][1].startswith("(|(mail=ravi.patel@corp.example.com)(sAMAccountName=")


def test_live_membership_walks_up_through_a_cycle_to_the_group():
    lookup = live(server(), member_of=(KEYS,))
    [found] = lookup.find(parse_query("CORP\\rpatel", TWO), {})
    assert lookup.path_to(found, KEYS) == [LEADS, LOOP, KEYS]
    assert lookup.path_to(found, "CN=Nobody,OU=Groups,DC=corp,DC=example,DC=com") is None


def test_live_filter_is_evaluated_on_the_client_in_chain_included():
    chain = f"(memberOf:1.2.840.113556.1.4.1941:={KEYS})"
    lookup = live(server(), filter=f"(&(objectClass=user)(!(department=Finance)){chain})")
    [found] = lookup.find(parse_query(RAVI, TWO), {})
    clause = lookup.clause(found)
    assert [c.text for c in clause.failing()] == ["(!(department=Finance))"]
    assert clause.children[2].matched  # nested through Leads and Loop


def test_name_filter_escapes_and_reads_single_attribute_templates_backwards():
    text = name_filter(CORP, "a*b(c)@corp.example.com")
    assert "(mail=a\\2ab\\28c\\29@corp.example.com)" in text
    assert "(sAMAccountName=a\\2ab\\28c\\29)" in text  # from {sAMAccountName}@corp.example.com
    assert _reverse(Template("{mail}"), "x@y") == ("mail", "x@y")
    assert _reverse(Template("{givenName}.{sn}@x"), "a.b@x") is None
    assert _reverse(Template("{uid}@corp.example.com"), "@corp.example.com") is None


def test_found_first_value():
    found = Found(CORP, MEI, attrs(mail=["a", "b"]), ["mail"])
    assert found.first("MAIL") == "a" and found.first("cn") is None and found.key == MEI.lower()


def test_a_filter_only_the_server_can_evaluate_is_said_so_not_a_traceback():
    from types import SimpleNamespace

    from reconciler.explain import _explain_entry

    fake = server()
    fake.entries[RAVI]["description"] = None  # an attribute sent without values
    lookup = live(fake, filter="(&(objectClass=user)(cn:caseExactMatch:=Ravi Patel))")
    [found] = lookup.find(parse_query("rpatel", TWO), {})
    assert found.raw["description"] == [] and "description" in found.attributes
    planned = SimpleNamespace(policy=policy(lookup.directory),
                              plan=SimpleNamespace(ignored=[]),
                              desired=SimpleNamespace(verdicts=[], users={}, teams={}))
    explained = _explain_entry(planned, lookup.directory, lookup, found, None)
    check = explained.check("filter")
    assert check.ok is None and "cannot be evaluated here" in check.summary and "caseExactMatch" in check.summary
    assert explained.verdict == "out of scope" and explained.read_by_plan is False
