"""`reconciler history` as it is read: a terminal table, a GFM table (rendered by GitHub's own engine,
cmark-gfm) and JSON. Each line says which apply it was (id, plan digest, commit, run), and how it ended,
kept apart: what changed for an applied one, why and what was planned (never under "changes") for a
refused or failed one; applies with no changes are a count, not lines; hostile values stay inert."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from html.parser import HTMLParser

import pytest

from reconciler.plan.safety import recent_counts
from reconciler.render.history import MARKDOWN_COLUMNS, TEXT_COLUMNS, render_history
from reconciler.store.common import ApplyRecord, Unchanged

cmarkgfm = pytest.importorskip("cmarkgfm", reason="cmarkgfm is in the test extra (pip install -e '.[test]')")

PLAN = "sha256:" + "3f9a1c2b4d5e" + "0" * 52
OTHER_PLAN = "sha256:" + "aa11bb22cc33" + "1" * 52
HOSTILE_ACTOR = "evil|<script>alert(1)</script>\n| forged | row |\x1b[31m mallory@corp.example.com"
HOSTILE_REASON = "see admin@corp.example.com <!-- hidden --> **bold** [link](https://evil.example) | pipe\nnext"


def line(**overrides) -> ApplyRecord:
    values = dict(started_at="2026-11-21T09:00:00Z", finished_at="2026-11-21T09:00:05Z", actor="octocat",
                  commit="abc123def4567890", run_id="99", policy_digest="sha256:" + "p" * 64, plan_digest=PLAN,
                  counts={"user.create": 3, "user.deactivate": 1}, outcome="applied")
    values.update(overrides)
    return ApplyRecord(**values)


def a_history() -> list[ApplyRecord]:
    """Newest first: a forced apply, a refusal at a safety limit (after 3 no-op applies), a failed apply,
    the first apply."""
    return [
        line(id=4, finished_at="2026-11-21T12:05:00Z", counts={"user.deactivate": 29},
             force_reason="contractor programme ended (CHG-42)"),
        line(id=3, finished_at="2026-11-21T12:01:00Z", counts={"user.deactivate": 29}, plan_digest=OTHER_PLAN,
             outcome="refused: 29 deactivations is over the limit of 28", unchanged_runs=3, commit=None, run_id=None,
             actor="ci@runner"),
        line(id=2, finished_at="2026-11-21T10:00:00Z", counts={"team.create": 1},
             outcome="failed: cannot apply team create Org: exists"),
        line(id=1),
    ]


# ───────────────────────────── text ─────────────────────────────


def text_rows(text: str) -> tuple[list[dict[str, str]], dict[str, list[str]]]:
    """The table's rows as {column: value}, cut where the header's columns start, and each row's lines
    below it (by id)."""
    lines = text.splitlines()
    at = next(i for i, l in enumerate(lines) if l.split()[:2] == ["id", "finished"])
    header = lines[at]
    starts, pos = [0], 0
    for name in TEXT_COLUMNS[1:]:
        pos = header.index(name, pos)
        starts.append(pos)
        pos += len(name)
    rows, below = [], {}
    for text_line in lines[at + 1:]:
        if text_line[:starts[1]].strip():
            cells = [text_line[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
            rows.append(dict(zip(TEXT_COLUMNS, cells)))
            below[rows[-1]["id"]] = []
        else:
            below[rows[-1]["id"]].append(text_line.strip())
    return rows, below


def test_text_is_a_table_with_the_outcome_split_and_what_was_planned_apart():
    text = render_history(a_history(), Unchanged(2, "2026-11-21T13:00:00Z"), "text")
    assert text.splitlines()[0] == "2 applies with no changes since the last row (latest at 2026-11-21T13:00:00Z)."
    rows, below = text_rows(text)
    assert [r["id"] for r in rows] == ["4", "3", "2", "1"]
    forced, refused, failed, first = rows
    assert (forced["outcome"], forced["changes"], forced["planned, not applied"]) == (
        "applied (forced)", "29 users to deactivate", "")
    assert below["4"] == ["forced because: contractor programme ended (CHG-42)"]
    assert (refused["outcome"], refused["changes"], refused["planned, not applied"]) == (
        "refused", "", "29 users to deactivate")
    assert below["3"] == ["refused: 29 deactivations is over the limit of 28",
                          "+ 3 applies with no changes since the previous row"]
    assert (failed["outcome"], failed["changes"], failed["planned, not applied"]) == ("failed", "", "1 team to create")
    assert below["2"] == ["failed: cannot apply team create Org: exists"]
    assert first["changes"] == "1 user to deactivate, 3 users to create"  # the change table's words, risky first
    assert (first["plan"], first["commit"], first["run"], first["who"], first["finished"]) == (
        "sha256:3f9a1c2b4d5e", "abc123def456", "99", "octocat", "2026-11-21T09:00:05Z")
    assert (refused["plan"], refused["commit"], refused["run"]) == ("sha256:aa11bb22cc33", "", "")


def test_text_keeps_a_hostile_value_on_its_line_and_sends_no_terminal_sequence():
    text = render_history([line(id=7, actor=HOSTILE_ACTOR, outcome=f"refused: {HOSTILE_REASON}",
                                force_reason="why\x1b]0;title\x07")], None, "text")
    assert "\x1b" not in text and "\x07" not in text
    rows, below = text_rows(text)
    assert [r["id"] for r in rows] == ["7"]  # no forged row
    assert rows[0]["who"].startswith("evil|<script>alert(1)</script>\\n| forged | row |\\x1b[31m")
    assert below["7"] == [f"refused: {HOSTILE_REASON.replace(chr(10), chr(92) + 'n')}", "forced because: why\\x1b]0;title\\x07"]


def test_text_in_colour_colours_the_outcome_only():
    text = render_history(a_history(), None, "text", color=True)
    assert "\x1b[33mrefused" in text and "\x1b[31mfailed" in text and "\x1b[32mapplied" in text


def test_no_history_yet_and_only_applies_with_no_changes():
    assert render_history([], None, "text") == "No applies recorded yet.\n"
    said = render_history([], Unchanged(1, "2026-11-21T09:00:00Z"), "text")
    assert said.splitlines() == [
        "1 apply with no changes, and none that changed anything yet (latest at 2026-11-21T09:00:00Z).", "",
        "No applies recorded yet."]
    assert render_history([], None, "json") == "[]\n"
    assert "No applies recorded yet." in render_history([], None, "markdown")


# ───────────────────────────── Markdown ─────────────────────────────


class Tables(HTMLParser):
    """The tables of an HTML page: rows of cells, each cell's text and its HTML."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[dict]]] = []
        self.cell: dict | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = {"text": "", "tags": []}
            self.tables[-1][-1].append(self.cell)
        elif self.cell is not None:
            self.cell["tags"].append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell["text"] += data


def to_html(markdown: str) -> str:
    from cmarkgfm.cmark import Options

    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


def test_markdown_is_one_gfm_table_with_a_row_per_line_and_the_outcome_split():
    markdown = render_history(a_history(), Unchanged(2, "2026-11-21T13:00:00Z"), "markdown")
    html = to_html(markdown)
    assert "2 applies with no changes since the last row (latest at 2026-11-21T13:00:00Z)." in html
    [table] = Tables(html).tables
    header, *rows = table
    assert [c["text"] for c in header] == list(MARKDOWN_COLUMNS)
    assert all(len(r) == len(MARKDOWN_COLUMNS) for r in rows) and len(rows) == 4
    cells = [dict(zip(MARKDOWN_COLUMNS, (c["text"] for c in r))) for r in rows]
    forced, refused, failed, first = cells
    assert [c["id"] for c in cells] == ["4", "3", "2", "1"]
    assert forced["outcome"] == "applied (forced: contractor programme ended (CHG-42))"
    assert (forced["changes"], forced["planned, not applied"]) == ("29 users to deactivate", "")
    assert refused["outcome"] == "refused: 29 deactivations is over the limit of 28"
    assert (refused["changes"], refused["planned, not applied"]) == ("", "29 users to deactivate")
    assert refused["applies with no changes"] == "+ 3 applies with no changes since the previous row"
    assert failed["outcome"] == "failed: cannot apply team create Org: exists" and failed["changes"] == ""
    assert (first["plan"], first["commit"], first["run"], first["who"]) == (
        "sha256:3f9a1c2b4d5e", "abc123def456", "99", "octocat")
    assert [tag for tag, _ in rows[0][3]["tags"]] == ["strong"]  # the outcome word stands out


def test_markdown_escapes_hostile_actors_and_reasons_and_links_no_address():
    records = [line(id=7, actor=HOSTILE_ACTOR, outcome=f"refused: {HOSTILE_REASON}", force_reason=HOSTILE_REASON,
                    commit="`|<b>", run_id="1 | 2"), line(id=6)]
    markdown = render_history(records, Unchanged(1, "<img src=x onerror=alert(1)>"), "markdown")
    assert "<!--" not in markdown and "<script" not in markdown and "<img" not in markdown and "\x1b" not in markdown
    html = to_html(markdown)
    assert "<script" not in html and "<img" not in html and "<b>" not in html and "mailto:" not in html
    assert "<a " not in html and "<strong>bold" not in html  # no link, not even to https://evil.example
    [table] = Tables(html).tables
    header, *rows = table
    assert len(rows) == 2 and all(len(r) == len(MARKDOWN_COLUMNS) for r in rows)  # no row forged, no cell split
    who, outcome = rows[0][2], rows[0][3]
    assert [tag for tag, _ in who["tags"]] == ["code"]  # the actor as a code span, whole
    assert who["text"].startswith("evil|‹script›alert(1)‹/script›\\n| forged | row |\\x1b[31m")
    assert "mallory@corp.example.com" in who["text"]
    assert {tag for tag, _ in outcome["tags"]} == {"strong", "code"}  # the outcome word; addresses as code spans
    assert "admin@corp.example.com" in outcome["text"] and "**bold** [link](https://evil.example) | pipe\\nnext" in outcome["text"]
    assert rows[0][7]["text"] == "'|‹b›" and rows[0][8]["text"] == "1 | 2"
    assert rows[1][0]["text"] == "6"


# ───────────────────────────── JSON ─────────────────────────────


def test_json_has_every_field_with_whole_digests_and_stable_keys():
    data = json.loads(render_history(a_history(), Unchanged(2, "2026-11-21T13:00:00Z"), "json"))
    keys = {"id", "started_at", "finished_at", "actor", "commit", "run_id", "policy_digest", "plan_digest", "counts",
            "outcome", "result", "reason", "applied", "planned_not_applied", "force_reason", "unchanged_runs",
            "unchanged_since"}
    assert all(set(row) == keys for row in data)
    forced, refused, failed, first = data
    assert forced["plan_digest"] == PLAN and refused["plan_digest"] == OTHER_PLAN
    assert forced["unchanged_since"] == {"runs": 2, "latest_at": "2026-11-21T13:00:00Z"}
    assert refused["unchanged_since"] is None and refused["unchanged_runs"] == 3
    assert (refused["result"], refused["reason"], refused["applied"], refused["planned_not_applied"]) == (
        "refused", "29 deactivations is over the limit of 28", {}, {"user.deactivate": 29})
    assert refused["outcome"] == "refused: 29 deactivations is over the limit of 28"  # as stored, as before
    assert (failed["result"], failed["planned_not_applied"], failed["applied"]) == ("failed", {"team.create": 1}, {})
    assert (first["result"], first["reason"], first["applied"], first["planned_not_applied"]) == (
        "applied", None, {"user.create": 3, "user.deactivate": 1}, {})
    assert forced["force_reason"] == "contractor programme ended (CHG-42)" and forced["commit"] == "abc123def4567890"


def test_a_hand_edited_outcome_or_count_still_renders():
    odd = [line(id=1, outcome="rolled back by hand", counts={"user.create": "three", "user.move": 2})]
    text = render_history(odd, None, "text")
    rows, below = text_rows(text)
    assert rows[0]["outcome"] == "unknown" and rows[0]["planned, not applied"] == "2 users to move"
    assert below["1"] == ["outcome: rolled back by hand"]
    assert json.loads(render_history(odd, None, "json"))[0]["result"] == "unknown"


# ───────────────────────────── the safety window ─────────────────────────────


def test_refused_and_failed_lines_are_not_counted_as_applied_in_the_safety_window():
    now = datetime(2026, 11, 21, 13, 0, tzinfo=timezone.utc)
    history = [line(counts={"user.deactivate": 29}, outcome="refused: over the limit", unchanged_runs=3),
               line(counts={"user.deactivate": 5}, outcome="failed: rolled back"),
               line(counts={"user.deactivate": 2})]
    assert recent_counts(history, 24, now) == {"user.deactivate": 2}
