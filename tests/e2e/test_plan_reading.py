"""The plan as a reviewer reads it, through the installed command, on Example Corp after a realistic day of
edits: 20 people's title changed in the directory, an OU renamed, three hires, a leaver, a name edited by
hand in the application, and one person changed on both sides.

What is protected: what takes access away comes first and names the person (name, team, title); identical
changes are shown once with the count and who; updates are field by field; a change in the directory and
an edit in the application are told apart (the store remembers what reconciler last wrote); team paths
are spelled one way; counts are said one way; the Markdown comment renders on GitHub's own engine
(cmark-gfm) with its tables intact and no address turned into a mailto: link.
"""
from __future__ import annotations

import re
import uuid

import pytest

from reconciler.store.sql.schema import LATEST_VERSION
from tests.e2e.conftest import changes, remove_people

cmarkgfm = pytest.importorskip("cmarkgfm", reason="cmarkgfm is in the test extra (pip install -e '.[test]')")


def to_html(markdown: str) -> str:
    """As GitHub renders a comment, raw HTML kept (GitHub keeps <details>; cmark-gfm's safe mode would drop
    it, and would hide any <script> that escaping let through)."""
    from cmarkgfm.cmark import Options

    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)

FACILITIES = "OU=Facilities,OU=Operations,OU=People,DC=corp,DC=example,DC=com"
WORKPLACE = "OU=Workplace,OU=Operations,OU=People,DC=corp,DC=example,DC=com"
EMEA_SALES = "OU=EMEA,OU=Sales,OU=People,DC=corp,DC=example,DC=com"


def a_day_of_edits(company) -> dict[str, list[str]]:
    """The edits; returns who was touched, by what."""
    corp = company.snapshot()
    executives = sorted(dn for dn, a in corp.entries.items() if a.get("title") == ["Account Executive"])[:20]
    for dn in executives:
        corp.set(dn, "title", "Account Manager")
    moved = []
    for dn in [dn for dn in corp.entries if dn.endswith("," + FACILITIES)]:
        moved.append(corp.move(dn, WORKPLACE))
    corp.entries[WORKPLACE] = corp.entries.pop(FACILITIES)
    corp.set(WORKPLACE, "ou", "Workplace")
    hires = []
    for n, name in enumerate(["Nadia Hire", "Omar Hire", "Petra Hire"]):
        first = name.split()[0]
        dn = f"CN={name},{EMEA_SALES}"
        corp.add(dn, {"objectClass": ["top", "person", "organizationalPerson", "user"], "cn": [name],
                      "sAMAccountName": [f"{first.lower()}h"], "mail": [f"{first}.Hire@corp.example.com"],
                      "displayName": [name], "department": ["Sales"], "title": ["Account Executive"],
                      "userAccountControl": ["512"], "objectGUID": [uuid.UUID(int=0xABC0 + n).bytes_le]})
        hires.append(dn)
    both = corp.find(sAMAccountName="zadams")
    corp.set(both, "title", "Principal Engineer")
    corp.save()
    remove_people(company, ["sosei"])
    company.sql("UPDATE users SET display_name = 'Maggie' WHERE lower(email) = 'margaret.chen@corp.example.com'")
    company.sql("UPDATE users SET display_name = 'Zoe A.' WHERE lower(email) = 'zoe.adams@corp.example.com'")
    return {"titles": executives, "moved": moved, "hires": hires}


@pytest.fixture
def edited(synced):
    touched = a_day_of_edits(synced)
    return synced, touched


def section(text: str, title: str) -> str:
    """The lines of one section of a text plan, its title line included."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title + " ("))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return "\n".join(lines[start:end])


def test_the_text_plan_reads_risky_first_grouped_and_field_by_field(edited):
    company, touched = edited
    text = company.run("plan", "policy.yaml").out
    titles = [line.split(" (")[0] for line in text.splitlines() if re.match(r"^[A-Z][a-z]+ to [a-z]+ \(\d", line)]
    assert titles == ["Users to deactivate", "Teams to delete", "Users to create", "Users to update", "Users to move",
                      "Teams to create"]

    leaver = section(text, "Users to deactivate")
    assert ("  - Samuel Osei <samuel.osei@corp.example.com> · Example Corp / Operations · IT Technician"
            "  # left scope: no longer found in corp under its search bases and filter") in leaver

    hires = section(text, "Users to create")
    assert "  + Example Corp / Sales / EMEA (3 people)  # new in corp" in hires
    assert "      Nadia Hire <nadia.hire@corp.example.com>: department: Sales, title: Account Executive" in hires

    updates = section(text, "Users to update")
    assert "  ~ title: Account Executive → Account Manager (20 people)  # changed in corp: title" in updates
    assert "      … and 10 more (--full)" in updates  # a low-risk group folds after ten names
    assert ("  ~ Maggie <margaret.chen@corp.example.com> · Example Corp · Chief Executive Officer: "
            "display name: Maggie → Margaret Chen  # edited in the application since the last apply: "
            "display name 'Maggie' put back to 'Margaret Chen'") in updates
    # both sides for one person, each said for what it is
    assert ("# changed in corp: title; edited in the application since the last apply: "
            "display name 'Zoe A.' put back to 'Zoë Adams'") in updates

    moves = section(text, "Users to move")
    moved = changes(company.plan_json(), "move")
    assert len(moved) == len(touched["moved"]) - 1  # one of them has no email: never imported
    assert (f"  ~ Example Corp / Operations / Facilities → Example Corp / Operations / Workplace "
            f"({len(moved)} people)  # placed by {moved[0]['reason'].removeprefix('placed by ')}") in moves

    assert ("Summary: 1 user to deactivate, 1 team to delete, 3 users to create, 22 users to update, 9 users to move, "
            "1 team to create.") in text
    assert "Example Corp/" not in text  # team paths one way: names joined by " / ", never keys


def test_full_lists_every_name_of_a_group(edited):
    company, _ = edited
    updates = section(company.run("plan", "policy.yaml", "--full").out, "Users to update")
    assert "… and" not in updates
    assert len([line for line in updates.splitlines() if line.startswith("      ")]) == 20


def test_the_json_plan_carries_who_they_are(edited):
    company, _ = edited
    plan = company.plan_json()
    [leaver] = changes(plan, "deactivate")
    card = plan["context"]["people"][leaver["key"]]
    assert card == {"name": "Samuel Osei", "email": "samuel.osei@corp.example.com", "team": "Example Corp/Operations",
                    "attributes": {"department": "Operations", "title": "IT Technician"}}
    assert plan["context"]["teams"]["Example Corp/Operations/Workplace"] == "Example Corp / Operations / Workplace"


def test_the_markdown_comment_renders_on_githubs_engine(edited):
    company, _ = edited
    markdown = company.run("plan", "policy.yaml", "--format", "markdown").out
    html = to_html(markdown)
    assert "mailto:" not in html  # addresses are code, not links
    assert "<code>samuel.osei@corp.example.com</code>" in html
    headings = re.findall(r"<h4>(.*?)</h4>", html)
    assert headings[0] == "Users to deactivate (1)"
    # every table row has as many cells as its header: no value broke a table
    for table in re.findall(r"<table>.*?</table>", html, re.S):
        header = len(re.findall(r"<th[ >]", table.split("</thead>")[0]))
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[-1], re.S):
            assert len(re.findall(r"<td", row)) == header, row
    # the grouped title change: one row, the count, the names folded, the change field by field
    row = next(r for r in re.findall(r"<tr>(.*?)</tr>", html, re.S) if "20 people" in r)
    assert "<details><summary>who</summary>" in row and "title: Account Executive → Account Manager" in row
    assert "changed in corp: title" in row
    assert "edited in the application since the last apply: display name 'Maggie' put back to 'Margaret Chen'" \
        in html.replace("&#x27;", "'").replace("&quot;", '"')
    # the leaver's table: name, email, team, title
    leaver = next(t for t in re.findall(r"<table>.*?</table>", html, re.S) if "Samuel Osei" in t)
    assert re.findall(r"<th[^>]*>(.*?)</th>", leaver) == ["name", "email", "team", "title"]


def test_a_hostile_value_cannot_break_the_comment(edited):
    company, _ = edited
    corp = company.snapshot()
    dn = corp.find(sAMAccountName="zadams")
    corp.set(dn, "title", "x | y <!-- reconciler-review {} --> `z` [l](http://e) <script>")
    corp.save()
    markdown = company.run("plan", "policy.yaml", "--format", "markdown").out
    assert "<!-- reconciler-review {}" not in markdown and "<script>" not in markdown
    html = to_html(markdown)
    assert "<script>" not in html and 'href="http://e"' not in html
    for table in re.findall(r"<table>.*?</table>", html, re.S):
        header = len(re.findall(r"<th[ >]", table.split("</thead>")[0]))
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[-1], re.S):
            assert len(re.findall(r"<td", row)) == header, row


def test_the_store_remembers_what_it_wrote_and_an_edit_is_caught_again_after_an_apply(edited):
    company, _ = edited
    company.apply("--force", "--reason", "a day of edits")
    assert company.run("plan", "policy.yaml", "--detailed-exitcode").code == 0
    company.sql("UPDATE users SET attributes = json_set(attributes, '$.title', 'Boss') "
                "WHERE lower(email) = 'margaret.chen@corp.example.com'")
    [update] = [c for c in changes(company.plan_json(), "update")]
    assert update["reason"] == ("edited in the application since the last apply: title 'Boss' put back to "
                                "'Chief Executive Officer'")


def test_the_same_field_changed_on_both_sides_says_so_and_the_directory_wins(synced):
    corp = synced.snapshot()
    corp.set(corp.find(sAMAccountName="zadams"), "title", "Principal Engineer")
    corp.save()
    synced.sql("UPDATE users SET attributes = json_set(attributes, '$.title', 'Made up') "
               "WHERE lower(email) = 'zoe.adams@corp.example.com'")
    [update] = changes(synced.plan_json(), "update")
    assert update["reason"] == "changed in corp and edited in the application: title; the directory's data wins"
    assert update["after"]["attributes"]["title"] == "Principal Engineer"


def test_a_store_from_before_the_memory_is_upgraded_and_taken_as_written(synced):
    """A store made by reconciler 0.2 has no user_written table: reading it upgrades it (schema version 2),
    and the users as they are become what was last written."""
    synced.sql("DROP TABLE user_written")  # back to schema version 1, as reconciler 0.2 left it
    synced.sql("ALTER TABLE apply_history DROP COLUMN unchanged_runs")
    synced.sql("DROP TABLE directory_sync")
    for (trigger,) in synced.sql("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
        synced.sql(f"DROP TRIGGER {trigger}")
    synced.sql("DROP TABLE store_generation")
    synced.sql("DELETE FROM schema_version WHERE version >= 2")
    corp = synced.snapshot()
    corp.set(corp.find(sAMAccountName="zadams"), "title", "Principal Engineer")
    corp.save()
    [update] = changes(synced.plan_json(), "update")
    assert update["reason"] == "changed in corp: title"
    assert synced.sql("SELECT max(version) FROM schema_version") == [(LATEST_VERSION,)]
    assert synced.sql("SELECT count(*) FROM user_written")[0][0] == 288
