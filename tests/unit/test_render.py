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
    assert re.search(r"(?<!\\)`", out) is None and "\\`rm" in out
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


def test_a_20000_change_plan_is_shortened_under_the_comment_limit_and_says_how_much():
    many = [Change("create", "user", f"corp:{i:05}", "new in corp", None, {"email": f"user{i:05}@corp.example.com"},
                   subject=f"user{i:05}@corp.example.com") for i in range(20_000)]
    out = MarkdownRenderer().render(make_plan(many))
    assert len(out) <= DEFAULT_LIMIT < GITHUB_COMMENT_LIMIT
    assert PART_SEPARATOR not in out  # creates are low risk: shortened, never split
    shown = len(re.findall(r"^\| user\d{5}@corp", out, re.MULTILINE))
    assert 0 < shown < 20_000
    assert (f"… {20_000 - shown} more of 20000 rows left out here; every change is in the JSON plan "
            "(the plan artifact of this run)") in out
    assert out.count("<details>") == out.count("</details>")
    assert "user00000@corp" in out


def test_long_sections_fold_into_details():
    many = [Change("create", "user", f"corp:{i}", "new in corp", None, {}, subject=f"u{i}") for i in range(11)]
    out = MarkdownRenderer().render(make_plan(many))
    assert "<details><summary>Users to create (11)</summary>" in out


def test_text_output_is_plain_without_a_terminal_and_names_each_change():
    out = TextRenderer(color=False).render(make_plan(CHANGES, IGNORED))
    assert "\x1b[" not in out
    assert "+ create user eve@x" in out
    assert "~ update user a@x (display_name: 'A' → " in out
    assert "Summary: 1 user create, 1 user update, 1 user deactivate." in out
    assert "nomail: no email" in out


def test_text_output_for_an_empty_plan_says_no_changes():
    out = TextRenderer().render(make_plan([]))
    assert "No changes." in out and "Summary: nothing to do." in out
