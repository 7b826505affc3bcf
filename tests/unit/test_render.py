"""Plan output: deterministic JSON that validates against its schema, escaped Markdown, readable text."""
import json
import re
from pathlib import Path

import jsonschema
import pytest

from reconciler.errors import StalePlan
from reconciler.model import Change, EntryVerdict, Plan
from reconciler.plan.document import dumps, loads
from reconciler.render.markdown import DEFAULT_LIMIT, GITHUB_COMMENT_LIMIT, PART_SEPARATOR, MarkdownRenderer, escape
from reconciler.render.text import TextRenderer

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "plan.schema.json").read_text())


def make_plan(changes, ignored=(), generated_at="2026-01-01T00:00:00Z"):
    return Plan(policy_path="policy.yaml", policy_digest="sha256:" + "a" * 64, store_kind="sqlite",
                store_fingerprint="sha256:" + "b" * 64,
                directories={"corp": {"read": 3, "in_scope": 3, "imported": 2, "ignored": 1, "disabled": 0}},
                changes=list(changes), ignored=list(ignored), managed_users=10, generated_at=generated_at)


HOSTILE = "Eve | <script>alert(1)</script> `rm -rf` **bold**\n| injected | row |"
CHANGES = [
    Change("create", "user", "corp:1", "new in corp", None, {"email": "eve@x", "display_name": HOSTILE}, subject="eve@x"),
    Change("update", "user", "corp:2", "store differs from corp in display_name", {"display_name": "A"},
           {"display_name": HOSTILE}, subject="a@x"),
    Change("deactivate", "user", "corp:3", f"left scope: not a member of CN={HOSTILE}", {"status": "active"},
           {"status": "deactivated"}, subject=HOSTILE),
]
IGNORED = [EntryVerdict("corp", "CN=No Mail,DC=x", "g", "nomail", None, "ignored", "no email: none of {mail} yields a value")]


def test_json_plan_validates_against_the_schema_and_round_trips():
    plan = make_plan(CHANGES, IGNORED)
    document = json.loads(dumps(plan))
    jsonschema.validate(document, SCHEMA)
    again = loads(dumps(plan))
    assert again.changes == plan.changes and again.policy_digest == plan.policy_digest


def test_json_is_byte_identical_apart_from_the_timestamp():
    one = dumps(make_plan(CHANGES, IGNORED, "2026-01-01T00:00:00Z"))
    two = dumps(make_plan(CHANGES, IGNORED, "2027-02-02T00:00:00Z"))
    strip = lambda s: re.sub(r'"generated_at": "[^"]*"', "", s)  # noqa: E731
    assert one != two and strip(one) == strip(two)


def test_an_edited_plan_file_is_refused():
    text = dumps(make_plan(CHANGES))
    edited = text.replace('"deactivate"', '"delete"', 1)
    with pytest.raises(StalePlan, match="edited"):
        loads(edited, "plan.json")


def test_markdown_escapes_hostile_directory_values():
    out = MarkdownRenderer().render(make_plan(CHANGES, IGNORED))
    assert "<script>" not in out and "&lt;script&gt;" in out
    # backticks only as the delimiters of the code spans that hold emails (GitHub would link a bare one)
    spans = re.findall(r"`[^`\n]*`", out)
    assert spans and all("<" not in span and re.search(r"(?<!\\)\|", span) is None for span in spans)
    outside = re.sub(r"`[^`\n]*`", "", out)
    assert re.search(r"(?<!\\)`", outside) is None and "\\`rm" in out
    for line in out.splitlines():
        if line.startswith("| ") and ("eve@x" in line or "a@x" in line):
            unescaped_pipes = len(re.findall(r"(?<!\\)\|", line))
            assert unescaped_pipes == 4, line  # a three-column row: the value's | and newline cannot add cells
    assert "| injected | row |" not in out


@pytest.mark.parametrize("value", ["a|b", "<b>", "x\ny", "`", "[link](http://e)", "*", "_", "\\"])
def test_escape_leaves_no_active_markdown(value):
    escaped = escape(value)
    assert "\n" not in escaped and "<" not in escaped
    assert re.search(r"(?<!\\)[|`*_\[\]]", escaped) is None


def test_a_20000_change_plan_is_summarised_and_in_full_is_shortened_under_the_comment_limit():
    many = [Change("create", "user", f"corp:{i:05}", "new in corp", None,
                   {"email": f"user{i:05}@corp.example.com", "display_name": f"User {i:05}", "team": "Sales",
                    "attributes": {"title": "Rep"}}, subject=f"user{i:05}@corp.example.com") for i in range(20_000)]
    plan = make_plan(many)
    plan.teams = {"Sales": "Example Corp / Sales"}
    summary = MarkdownRenderer().render(plan)
    assert "This plan is large" in summary and "(the plan artifact of this run)" in summary
    assert "| **20,000 people** | Example Corp / Sales | new in corp |" in summary  # counted, nobody listed
    assert "user00000" not in summary and len(summary) < 10_000

    out = MarkdownRenderer(full=True).render(plan)
    assert len(out) <= DEFAULT_LIMIT < GITHUB_COMMENT_LIMIT
    assert PART_SEPARATOR not in out  # creates are low risk: shortened, never split
    shown = len(re.findall(r"^\| User \d{5} \(`user\d{5}@corp", out, re.MULTILINE))
    assert 0 < shown < 20_000
    assert (f"… {20_000 - shown:,} more of 20,000 changes left out here; every change is in the JSON plan "
            "(the plan artifact of this run)") in out
    assert out.count("<details>") == out.count("</details>")
    assert "user00000@corp" in out


def test_long_sections_fold_into_details():
    many = [Change("create", "user", f"corp:{i}", "new in corp", None, {"email": f"u{i}@x", "display_name": f"U {i}",
                   "attributes": {"title": "T"}}, subject=f"u{i}@x") for i in range(11)]
    out = MarkdownRenderer().render(make_plan(many))
    assert "<details><summary>Users to create (11)</summary>" in out


def test_text_output_is_plain_without_a_terminal_and_names_each_change():
    out = TextRenderer(color=False).render(make_plan(CHANGES, IGNORED))
    assert "\x1b[" not in out
    lines = out.splitlines()
    # what takes access away first, then what grants it, then the rest
    assert lines.index("Users to deactivate (1)") < lines.index("Users to create (1)") < lines.index("Users to update (1)")
    hostile = "Eve | <script>alert(1)</script> `rm -rf` **bold**\\n| injected | row |"  # the line break shown, not made
    assert f"  + {hostile} <eve@x>: (no team)  # new in corp" in lines
    assert f"  ~ a@x: display name: A → {hostile}  # store differs from corp in display_name" in lines
    assert "Summary: 1 user to deactivate, 1 user to create, 1 user to update." in out
    assert "nomail: no email" in out


def test_text_output_for_an_empty_plan_says_no_changes():
    out = TextRenderer().render(make_plan([]))
    assert "No changes." in out and "Summary: nothing to do." in out


def test_a_value_cannot_forge_a_line_or_drive_the_terminal():
    forged = "Mallory\n+ create user root@x  # new in corp\x1b[2J\x1b]0;pwned\x07"
    plan = make_plan([Change("create", "user", "corp:9", "new in corp", None,
                             {"email": "m@x", "display_name": forged}, subject="m@x")])
    out = TextRenderer(color=False).render(plan)
    assert "\x1b" not in out and "\x07" not in out
    assert not any(line.startswith("+ create user root@x") for line in out.splitlines())
    assert "Mallory\\n+ create user root@x  # new in corp\\x1b[2J\\x1b]0;pwned\\x07 <m@x>" in out
