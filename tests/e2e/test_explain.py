"""`reconciler explain` through the installed command on a copy of the quickstart company: the person is
found by any name (UPN, DOMAIN\\account, display name, a DN spelled oddly), a typo gets a suggestion,
and each condition is answered on its own: the filter clause that excludes, member_of (nested, with
the path), disabled, no email, a conflict and with whom. Text and --format json say the same."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.e2e.conftest import QUICKSTART, Company, remove_people

CORP = "DC=corp,DC=example,DC=com"
GROUPS = f"OU=Groups,{CORP}"
KEYS = f"CN=Security Key Owners,{GROUPS}"
MARGARET = f"CN=Margaret Chen,OU=People,{CORP}"
JANE = f"CN=Jane Smith,OU=Finance,OU=People,{CORP}"
JAN = f"CN=Jan Smith,OU=Operations,OU=People,{CORP}"
FILTER = "(&(objectClass=user)(!(objectClass=computer))(!(department=Finance)))"
SCOPE = """        - OU=Contractors,DC=corp,DC=example,DC=com
"""


@pytest.fixture(scope="module")
def corp(tmp_path_factory) -> Company:
    """One copy for the tests that only read: the quickstart policy, and two variants beside it."""
    folder = tmp_path_factory.mktemp("explain") / "company"
    shutil.copytree(QUICKSTART, folder, ignore=shutil.ignore_patterns(".reconciler", "*.py", "__pycache__"))
    company = Company(folder)
    text = company.policy.read_text()
    assert SCOPE in text
    (folder / "finance-excluded.yaml").write_text(text.replace(SCOPE, SCOPE + f"      filter: '{FILTER}'\n", 1))
    (folder / "key-owners.yaml").write_text(text.replace(SCOPE, SCOPE + f"      member_of: ['{KEYS}']\n", 1))
    return company


def explain(company: Company, who: str, policy: str = "policy.yaml", *extra: str):
    result = company.run("explain", policy, who, *extra)
    assert "Traceback" not in result.err, result.err
    return result


def ok(company: Company, who: str, policy: str = "policy.yaml") -> str:
    result = explain(company, who, policy)
    assert result.code == 0 and result.err == "", result.err
    return result.out


def as_json(company: Company, who: str, policy: str = "policy.yaml") -> dict:
    result = explain(company, who, policy, "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines()]


# ── finding the person ──

def test_by_upn(corp):
    out = ok(corp, "mchen@corp.example.com")
    assert lines(out)[0] == f"corp {MARGARET}  (found by userPrincipalName in the snapshot {corp.folder / 'corp.ldif'})"
    assert "account: mchen   email: margaret.chen@corp.example.com   name: Margaret Chen" in out
    assert "imported: in scope of corp; email from {mail}" in out
    assert "✓ search base: under OU=People,DC=corp,DC=example,DC=com (scope subtree)" in out
    assert "create user: new in corp" in out


def test_by_domain_and_account(corp):
    out = ok(corp, "CORP\\mchen")
    assert f"corp {MARGARET}  (found by sAMAccountName in domain CORP" in out
    emea = ok(corp, "emea\\ALAURENT")  # the same account name in both domains: only EMEA's
    assert "emea CN=Amélie Laurent,OU=Paris,OU=Staff,DC=emea,DC=example,DC=com" in emea
    assert "corp CN=" not in emea


def test_a_domain_that_names_no_directory_is_one_line(corp):
    result = explain(corp, "CROP\\mchen")
    assert result.code == 1 and result.out == ""
    assert result.err.strip() == ("CROP\\mchen: the domain CROP names no directory of this policy; the domains are "
                                  "corp (CORP), emea (EMEA) (the first DC label of the search bases, or the "
                                  "directory's name)")


def test_by_display_name(corp):
    out = ok(corp, "margaret chen")
    assert f"corp {MARGARET}  (found by displayName, cn in" in out
    assert "✓ filter: matches (&(objectClass=user)(!(objectClass=computer))) (the active-directory default)" in out


def test_a_display_name_several_people_have_lists_each_briefly(corp):
    out = ok(corp, "Anna Torres")
    assert lines(out)[:3] == [
        f"corp CN=Anna Torres,OU=Applications,OU=Engineering,OU=People,{CORP}  (atorres, "
        "anna.torres@corp.example.com) imported",
        "emea CN=Anna Torres,OU=Berlin,OU=Staff,DC=emea,DC=example,DC=com  (atorres, anna.torres@emea.example.com) "
        "imported",
        "2 entries have this display name; ask by email, account name or DN for the full explanation of one",
    ]
    assert "✓" not in out  # brief: no checks
    assert as_json(corp, "Anna Torres")["brief"] is True


def test_by_dn_with_odd_case_and_spacing(corp):
    out = ok(corp, "cn = okafor\\, chinedu ,  ou=contractors, dc=corp,dc=example,DC=COM")
    assert lines(out)[0].startswith("corp CN=Okafor\\, Chinedu,OU=Contractors,DC=corp,DC=example,DC=com  (found by DN")
    assert "✓ search base: under OU=Contractors,DC=corp,DC=example,DC=com (scope subtree)" in out


def test_a_typo_is_one_line_with_a_suggestion_and_exit_1(corp):
    result = explain(corp, "mchne")
    assert result.code == 1 and result.out == ""
    [line] = result.err.strip().splitlines()
    assert line.startswith("mchne: not found: no entry anywhere in corp or emea has it as mail, proxyAddresses (smtp:), "
                           "userPrincipalName, the mapped email, sAMAccountName, displayName or cn")
    assert line.endswith("did you mean mchen?")
    zoe = explain(corp, "Zoe Adams")
    assert zoe.code == 1 and "did you mean Zoë Adams" in zoe.err
    dn = explain(corp, f"CN=Margret Chen,OU=People,{CORP}")
    assert dn.code == 1 and dn.err.strip().endswith(f"did you mean {MARGARET}?")


def test_not_found_as_json_still_says_what_was_searched_and_suggests(corp):
    result = explain(corp, "CORP\\mchne", "policy.yaml", "--format", "json")
    assert result.code == 1 and "did you mean CORP\\mchen?" in result.err
    data = json.loads(result.out)
    assert (data["found"], data["entries"], data["suggestions"]) == (False, [], ["CORP\\mchen"])
    assert data["searched"] == "no entry anywhere in corp (domain CORP) has the sAMAccountName mchne"


def test_an_empty_name_is_still_a_usage_error(corp):
    result = explain(corp, "  ")
    assert result.code == 64 and result.out == "" and result.err.startswith("usage error: ")


# ── each condition, and the one that excludes ──

def test_outside_the_search_bases(corp):
    out = ok(corp, "svc-backup@corp.example.com")
    assert ("✗ search base: not under any search base (OU=People,DC=corp,DC=example,DC=com, "
            "OU=Contractors,DC=corp,DC=example,DC=com; scope subtree)") in out
    assert "out of scope: not read by the plan: outside the search bases" in out


def test_a_filter_clause_that_excludes_is_named_as_written(corp):
    out = ok(corp, "jsmith", "finance-excluded.yaml")
    assert "✗ filter: the filter clause (!(department=Finance)) fails" in out
    assert "✓ (objectClass=user)   objectClass: top, person, organizationalPerson, user" in lines(out)
    assert "✓ (!(objectClass=computer))   objectClass: top, person, organizationalPerson, user" in lines(out)
    assert "✗ (!(department=Finance))   department: Finance" in lines(out)
    assert "out of scope: not read by the plan: the filter clause (!(department=Finance))" in out
    data = as_json(corp, "jsmith", "finance-excluded.yaml")
    [entry] = data["entries"]
    assert (entry["dn"], entry["read_by_plan"], entry["verdict"]) == (JANE, False, "out of scope")
    assert entry["excluded_by"] == ["the filter clause (!(department=Finance))"]
    check = entry["checks"]["filter"]
    assert (check["ok"], check["filter"], check["failing"]) == (False, FILTER, ["(!(department=Finance))"])
    assert [(c["text"], c["matched"]) for c in check["clause"]["children"]] == [
        ("(objectClass=user)", True), ("(!(objectClass=computer))", True), ("(!(department=Finance))", False)]
    # the same person passes the quickstart's own filter
    assert "✓ filter: matches" in ok(corp, "jsmith")


def test_not_in_the_member_of_group(corp):
    out = ok(corp, "sofia.rossi@corp.example.com", "key-owners.yaml")
    assert f"✗ member_of: not a member of {KEYS}, directly or through nested groups" in out
    assert f"ignored: not a member of {KEYS} (directly or through nested groups)" in out
    [entry] = as_json(corp, "srossi", "key-owners.yaml")["entries"]
    assert entry["checks"]["member_of"]["groups"] == [{"group": KEYS, "member": False, "direct": False, "path": []}]


def test_nested_membership_is_found_with_its_path(corp):
    out = ok(corp, "rpatel", "key-owners.yaml")
    assert (f"✓ member_of: member of {KEYS} through nested groups: CN=Platform Leads,{GROUPS} → "
            f"CN=Engineering Leads,{GROUPS} → {KEYS}") in out
    assert "imported: in scope of corp" in out
    # Nora's groups nest in a cycle (Helpdesk <-> IT Support): the walk ends, and names the path
    [nora] = as_json(corp, "nlindqvist", "key-owners.yaml")["entries"]
    assert nora["checks"]["member_of"]["groups"] == [{"group": KEYS, "member": True, "direct": False, "path": [
        f"CN=Helpdesk,{GROUPS}", f"CN=IT Support,{GROUPS}", KEYS]}]
    assert f"✓ member_of: member of {KEYS} (directly)" in ok(corp, "mchen", "key-owners.yaml")


def test_disabled(corp):
    out = ok(corp, "hberg")
    assert ("✗ disabled: disabled (userAccountControl 514: flag 2 (ACCOUNTDISABLE) set); "
            "users.include_disabled is false") in out
    assert "disabled: disabled in corp" in lines(out)
    [entry] = as_json(corp, "hberg")["entries"]
    assert entry["checks"]["disabled"] | {"summary": None} == {
        "ok": False, "summary": None, "disabled": True, "attribute": "userAccountControl", "values": ["514"],
        "flag": 2, "equals": None, "include_disabled": False}


def test_no_email_names_the_templates_tried(corp):
    out = ok(corp, "ebrooks")
    assert ("✗ email: none of {mail}, {userPrincipalName} yields a value ({mail}: no mail; {userPrincipalName}: "
            "no userPrincipalName)") in out
    assert "ignored: no email: none of {mail}, {userPrincipalName} yields a value" in out
    nora = ok(corp, "nlindqvist")  # no mail, but a UPN: the second template gives her email
    assert "✓ email: nlindqvist@corp.example.com from {userPrincipalName} ({mail}: no mail)" in nora


def test_a_conflict_names_the_other_dn(corp):
    out = ok(corp, "j.smith@corp.example.com")
    assert f"✗ conflict: conflict with {JANE} (corp): the same email j.smith@corp.example.com; neither is imported" in out
    assert f"✗ conflict: conflict with {JAN} (corp): the same email j.smith@corp.example.com; neither is imported" in out
    data = as_json(corp, "Jane Smith")
    [jane] = data["entries"]
    assert jane["checks"]["conflict"]["with"] == [{"directory": "corp", "dn": JAN}]
    assert jane["excluded_by"] == [f"a conflict with {JAN} (corp)"]


def test_a_person_in_both_domains_is_one_merged_user(corp):
    out = ok(corp, "amelie.laurent@example.com")
    assert "✓ conflict: none; merged by email with CN=Amélie Laurent,OU=Paris,OU=Staff,DC=emea,DC=example,DC=com (emea)" in out
    assert out.count("placed by ou-teams") == 2


def test_json_has_the_same_facts_under_stable_keys(corp):
    data = as_json(corp, "mchen@corp.example.com")
    assert sorted(data) == ["brief", "entries", "form", "found", "plan", "query", "searched", "store", "suggestions",
                            "truncated"]
    [entry] = data["entries"]
    assert sorted(entry) == ["account_name", "checks", "directory", "display_name", "dn", "email", "excluded_by",
                             "matched_by", "not_applied", "read_by_plan", "reason", "source", "user", "verdict"]
    assert list(entry["checks"]) == ["search_base", "filter", "member_of", "disabled", "email", "conflict"]
    assert entry["matched_by"] == ["userPrincipalName"] and entry["verdict"] == "imported"
    assert entry["user"]["team"] == "Example Corp" and entry["user"]["placed_by"].startswith("ou-teams")
    assert data["plan"] == [{"action": "create", "kind": "user", "key": entry["user"]["key"],
                             "subject": "margaret.chen@corp.example.com", "reason": "new in corp"}]


# ── with a store ──

def test_a_leaver_gone_from_the_directory_is_found_in_the_store(company):
    company.apply()
    remove_people(company, ["sosei"])
    out = ok(company, "samuel.osei@corp.example.com")
    assert lines(out)[0].startswith("directories: no entry anywhere in corp or emea has it as mail")
    assert "store corp:" in out and "(managed, active)" in out
    assert "deactivate user:" in out
