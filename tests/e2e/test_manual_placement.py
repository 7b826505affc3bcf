"""Manual placement into a team (issue 11), through the console script on a copy of Example Corp:
ESET's "AD users can be selected then either imported to a team or quick imported straight to the root",
as `manual:` entries that are a person (the root) or {who, team}."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import Company, changes

OU_TEAMS = """\
placement:
  mode: ou-teams          # teams follow the OU path below each search base
  root: Example Corp
"""
MANUAL = """\
placement:
  mode: manual
  root: Example Corp

manual:
  - margaret.chen@corp.example.com                    # by email, straight to the root
  - {who: zadams, team: Sales/EMEA}                    # by account name, into a team two deep
  - who: 'CN=Samuel Osei,OU=Operations,OU=People,DC=corp,DC=example,DC=com'
    team: Operations                                   # by DN
  - {who: camille.fournier@emea.example.com, team: Sales/EMEA}   # from emea, into the same team
  - {who: priya.raman@corp.example.com}                # a mapping without team: the root
"""
PLACED = {
    "margaret.chen@corp.example.com": "Example Corp",
    "zoe.adams@corp.example.com": "Example Corp/Sales/EMEA",
    "samuel.osei@corp.example.com": "Example Corp/Operations",
    "camille.fournier@emea.example.com": "Example Corp/Sales/EMEA",
    "priya.raman@corp.example.com": "Example Corp",
}


@pytest.fixture
def manual(company: Company) -> Company:
    company.set_policy(OU_TEAMS, MANUAL)
    return company


def test_validate_accepts_both_forms(manual):
    result = manual.run("validate", "policy.yaml")
    assert (result.code, result.out.strip()) == (0, "policy.yaml: valid (2 directories: corp, emea; store: sqlite)")


def test_the_plan_creates_each_person_in_their_team_and_only_the_teams_someone_is_in(manual):
    plan = manual.plan_json()
    created = {c["subject"]: c["after"]["team"] for c in changes(plan, "create")}
    assert created == PLACED
    assert [(c["key"], c["after"]) for c in changes(plan, "create", kind="team")] == [
        ("Example Corp", {"name": "Example Corp", "parent": None}),
        ("Example Corp/Operations", {"name": "Operations", "parent": "Example Corp"}),
        ("Example Corp/Sales", {"name": "Sales", "parent": "Example Corp"}),
        ("Example Corp/Sales/EMEA", {"name": "EMEA", "parent": "Example Corp/Sales"}),
    ]
    assert {c["reason"] for c in changes(plan, "create")} == {"new in corp", "new in emea"}
    assert plan["summary"] == {"team.create": 4, "user.create": 5}
    assert {name: counts["imported"] for name, counts in plan["directories"].items()} == {"corp": 4, "emea": 1}
    reasons = {v["reason"] for v in plan["ignored"] if v["verdict"] == "ignored"}
    assert "not listed under manual:" in reasons

    text = manual.run("plan", "policy.yaml")
    assert text.code == 0, text.err
    for email in PLACED:
        assert email in text.out
    for team in ("Operations", "Sales", "EMEA"):
        assert team in text.out


def test_explain_shows_the_entry_that_placed_them(manual):
    result = manual.run("explain", "policy.yaml", "zadams")
    assert result.code == 0, result.err
    assert "placed by manual: zadams → Sales/EMEA" in result.out
    assert "Example Corp/Sales/EMEA" in result.out
    root = manual.run("explain", "policy.yaml", "margaret.chen@corp.example.com")
    assert "placed by manual: margaret.chen@corp.example.com → Example Corp" in root.out


def test_apply_writes_the_teams_and_a_second_plan_is_empty(manual):
    manual.apply()
    for email, team in PLACED.items():
        user = manual.user(email)
        assert (user["team"], user["status"], user["managed"]) == (team, "active", True), email
    assert manual.sql("SELECT key, name, parent_key, managed FROM teams ORDER BY key") == [
        ("Example Corp", "Example Corp", None, 1),
        ("Example Corp/Operations", "Operations", "Example Corp", 1),
        ("Example Corp/Sales", "Sales", "Example Corp", 1),
        ("Example Corp/Sales/EMEA", "EMEA", "Example Corp/Sales", 1),
    ]
    assert manual.sql("SELECT count(*) FROM users") == [(5,)]
    again = manual.run("plan", "policy.yaml", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    assert "No changes." in again.out


def test_a_new_team_moves_them_and_an_entry_taken_out_is_a_leaver(manual):
    manual.apply()
    manual.set_policy("{who: zadams, team: Sales/EMEA}", "{who: zadams, team: Support}")
    manual.set_policy("  - {who: priya.raman@corp.example.com}                # a mapping without team: the root\n", "")
    plan = manual.plan_json()
    [move] = changes(plan, "move")
    assert (move["subject"], move["before"], move["after"], move["reason"]) == (
        "zoe.adams@corp.example.com", {"team": "Example Corp/Sales/EMEA"}, {"team": "Example Corp/Support"},
        "placed by manual: zadams → Support")
    [leaver] = changes(plan, "deactivate")
    assert (leaver["subject"], leaver["reason"]) == ("priya.raman@corp.example.com", "left scope: not listed under manual:")
    # Sales/EMEA keeps Camille; Support is new
    assert [(c["action"], c["key"]) for c in changes(plan, kind="team")] == [("create", "Example Corp/Support")]
    text = manual.run("plan", "policy.yaml")
    assert "placed by manual: zadams → Support" in text.out

    manual.apply()
    assert manual.user("zoe.adams@corp.example.com")["team"] == "Example Corp/Support"
    assert manual.user("priya.raman@corp.example.com")["status"] == "deactivated"
    assert manual.run("plan", "policy.yaml", "--detailed-exitcode").code == 0


def test_validate_names_the_line_of_a_bad_team_and_of_a_person_listed_twice(manual):
    manual.set_policy("{who: zadams, team: Sales/EMEA}", "{who: zadams, team: Sales/EMEA/}")
    manual.set_policy("  - {who: priya.raman@corp.example.com}", "  - {who: ZADAMS, team: Support}")
    lines = manual.policy.read_text().splitlines()
    team_line = next(i for i, line in enumerate(lines, 1) if "Sales/EMEA/}" in line)
    twice_line = next(i for i, line in enumerate(lines, 1) if "ZADAMS" in line)
    result = manual.run("validate", "policy.yaml")
    assert result.code == 1
    assert result.out.splitlines() + result.err.splitlines() == [
        f"policy.yaml:{team_line}:25: team 'Sales/EMEA/' ends with '/'; a team path is team names below "
        "placement.root separated by '/', like Sales/EMEA (manual[1].team)",
        f"policy.yaml:{twice_line}:11: 'ZADAMS' is listed more than once, into different teams "
        f"(team Sales/EMEA/ on line {team_line}, team Support here); a person goes into one team: keep one "
        "(manual[4].who)",
    ]
    refused = manual.run("plan", "policy.yaml")
    assert refused.code == 1 and "manual[1].team" in refused.err + refused.out



def test_an_entry_that_names_nobody_is_a_warning_in_every_format(manual):
    manual.set_policy("  - {who: priya.raman@corp.example.com}", "  - {who: priya.raman@corp.example.com}\n"
                      "  - {who: nobody@corp.example.com, team: Sales}")
    plan = manual.plan_json()
    warning = ("manual: lists 'nobody@corp.example.com', whom no directory read has (an email, account name or DN, "
               "as the directory spells it); nobody is placed by it")
    assert plan["warnings"] == [warning]
    assert f"Warning: {warning}" in manual.run("plan", "policy.yaml").out
    markdown = manual.run("plan", "policy.yaml", "--format", "markdown").out
    assert "> [!WARNING]\n> manual: lists '`nobody@corp.example.com`', whom" in markdown
