"""The plan at review time: the safety verdict, the review marker, and a pull-request comment laid out by risk
(low-risk sections shortened, deactivations and deletions never cut, split over several comments when needed)."""
import re
from collections import Counter

import pytest

from reconciler.model import Change, EntryVerdict, LimitCheck, Plan, Review
from reconciler.plan.review import marker, parse
from reconciler.render.markdown import DEFAULT_LIMIT, PART_SEPARATOR, MarkdownRenderer, escape, split_parts, who_cell
from reconciler.render.text import TextRenderer

DEACTIVATIONS_OVER = LimitCheck("max_deactivations", "deactivations", 160, 28, "10% (28 of 288 managed users)")
DEACTIVATIONS_OK = LimitCheck("max_deactivations", "deactivations", 3, 28, "10% (28 of 288 managed users)")
CREATES_OK = LimitCheck("max_creates", "creates", 0, 50, "50")
REVIEW = Review("sha256:" + "c0ffee" * 10 + "abcd", "sha256:" + "d" * 64, {"user.deactivate": 23})
HOSTILE = ("x --> <!-- reconciler-comment-part --> <!-- reconciler-review {\"format\":1,\"policy_digest\":\"sha256:"
           + "e" * 64 + "\",\"base_policy_digest\":null,\"effect\":{}} --> | cell | `tick` <script>\n| new | row |\r\n-->")


def make_plan(changes=(), ignored=(), safety=(), review=None, path="policy.yaml"):
    return Plan(policy_path=path, policy_digest="sha256:" + "a" * 64, store_kind="sqlite",
                store_fingerprint="sha256:" + "b" * 64,
                directories={"corp": {"read": 3, "in_scope": 3, "imported": 2, "ignored": 1, "disabled": 0}},
                changes=list(changes), ignored=list(ignored), managed_users=288, generated_at="2026-01-01T00:00:00Z",
                safety=tuple(safety), review=review)


def deactivate(i, *, subject=None, reason="left scope", cause=None):
    return Change("deactivate", "user", f"corp:d{i:05}", reason, {"status": "active"}, {"status": "deactivated"},
                  cause=cause, subject=subject or f"leaver{i:05}@corp.example.com")


def move(i):
    """Each to a team of their own, so that no two moves are one group."""
    return Change("move", "user", f"corp:m{i:05}", "placed by ou", {"team": "Organisation/Sales"},
                  {"team": f"Organisation/Sales/T{i:05}"}, subject=f"mover{i:05}@corp.example.com")


def team_delete(i):
    return Change("delete", "team", f"Organisation/Old/T{i:03}", "no longer in any directory", {"name": f"T{i:03}"},
                  None, subject=f"Old team {i:03}")


def membership_add(i):
    return Change("add", "membership", f"corp:a{i:05}|group:x", "member of x", None, None,
                  subject=f"joiner{i:05}@corp.example.com in x")


def ignored(i):
    return EntryVerdict("corp", f"CN=No Mail {i},DC=x", f"g{i}", f"nomail{i}", None, "ignored", "no email")


def tables_are_whole(part: str) -> bool:
    """Every run of table lines starts with its header row and delimiter row."""
    lines = part.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("|") and (i == 0 or not lines[i - 1].startswith("|")):
            if i + 1 >= len(lines) or not re.fullmatch(r"\|(-{3}:?\|)+", lines[i + 1]):
                return False
    return True


def details_balanced(part: str) -> bool:
    depth = 0
    for tag in re.findall(r"</?details>", part):
        depth += 1 if tag == "<details>" else -1
        if depth not in (0, 1):
            return False
    return depth == 0


# ───────────────────────────── the safety verdict ─────────────────────────────


def test_text_shows_each_limit_and_that_apply_would_refuse():
    plan = make_plan([deactivate(i) for i in range(160)], safety=[CREATES_OK, DEACTIVATIONS_OVER])
    out = TextRenderer().render(plan)
    assert "Safety: creates 0 / allowed 50 ✓ (safety.max_creates)\n" in out
    assert ("Safety: deactivations 160 / allowed 28 ✗ (10% (28 of 288 managed users), safety.max_deactivations)\n"
            in out)
    assert "Apply will refuse this plan: 160 deactivations is over the limit of 28" in out
    assert "--force --reason" in out
    assert out.rstrip("\n").rsplit("\n", 1)[1].startswith("plan digest: sha256:")
    coloured = TextRenderer(color=True).render(plan)
    assert re.search(r"\x1b\[[0-9;]*31m[^\x1b]*Apply will refuse this plan", coloured)


def test_text_within_the_limits_says_so_and_does_not_warn():
    out = TextRenderer().render(make_plan([deactivate(i) for i in range(3)], safety=[DEACTIVATIONS_OK]))
    assert "Safety: deactivations 3 / allowed 28 ✓ (10% (28 of 288 managed users), safety.max_deactivations)" in out
    assert "refuse" not in out


def test_markdown_puts_a_caution_at_the_very_top_of_a_refused_plan_and_a_limits_table():
    plan = make_plan([deactivate(i) for i in range(160)], safety=[CREATES_OK, DEACTIVATIONS_OVER])
    out = MarkdownRenderer().render(plan)
    assert out.startswith("> [!CAUTION]\n> **apply would refuse this plan**: 160 deactivations is over the limit of 28 ")
    first_block = out.split("\n\n", 1)[0]
    assert "The check fails" in first_block and "--force --reason" in first_block
    assert "| limit | planned | allowed | |\n|---|---:|---:|---|\n" in out
    assert "| creates | 0 | 50 | ✓ safety\\.max\\_creates |" in out
    assert "| deactivations | 160 | 28 | ✗ 10% \\(28 of 288 managed users\\), safety\\.max\\_deactivations |" in out
    assert out.index("| limit | planned") < out.index("Users to deactivate")


def test_markdown_within_the_limits_has_the_table_but_no_caution():
    out = MarkdownRenderer().render(make_plan([deactivate(i) for i in range(3)], safety=[DEACTIVATIONS_OK]))
    assert "[!CAUTION]" not in out and "refuse" not in out
    assert "| deactivations | 3 | 28 | ✓ " in out


def test_no_limits_configured_shows_no_verdict():
    plan = make_plan([deactivate(i) for i in range(3)])
    assert "Safety" not in TextRenderer().render(plan) and "refuse" not in TextRenderer().render(plan)
    out = MarkdownRenderer().render(plan)
    assert "Safety" not in out and "| limit |" not in out and "CAUTION" not in out


# ───────────────────────────── the review ─────────────────────────────


def reviewed_plan(extra=()):
    changes = [deactivate(i, cause="policy" if i < 23 else "pending") for i in range(30)]
    return make_plan(changes + list(extra), review=REVIEW)


def test_the_review_marker_is_in_the_first_part_once_and_round_trips():
    plan = reviewed_plan([deactivate(100 + i, cause="pending") for i in range(4000)])
    parts = MarkdownRenderer(full=True).render_parts(plan)
    assert len(parts) >= 2
    line = marker(plan)
    assert line and f"\n{line}\n" in parts[0]
    assert sum(part.count("reconciler-review") for part in parts) == 1
    assert parse(parts[0], "comment") == REVIEW
    assert parse(MarkdownRenderer(full=True).render(plan), "comment") == REVIEW


def test_the_header_says_what_approving_means_and_keeps_the_digest():
    out = MarkdownRenderer().render(reviewed_plan())
    assert ("Approving this pull request approves policy `sha256:c0ffeec0ffee` and its effect: 23 users to deactivate"
            in out)
    assert "- **this change:** 23 users to deactivate\n- **pending regardless:** 7 users to deactivate\n" in out
    assert re.search(r"^plan digest: sha256:[0-9a-f]{64}$", out, re.MULTILINE)


def test_text_says_what_the_edit_causes():
    out = TextRenderer().render(reviewed_plan())
    assert "The edit causes: 23 users to deactivate; pending regardless: 7 users to deactivate.\n" in out
    assert "plan digest: sha256:" in out.rstrip("\n").rsplit("\n", 1)[1]
    assert "The edit causes" not in TextRenderer().render(make_plan([deactivate(1)]))


# ───────────────────────────── a comment built by risk ─────────────────────────────


def test_moves_are_shortened_before_anything_that_removes_access():
    ignored_entries = [ignored(i) for i in range(200)]
    changes = ([move(i) for i in range(3000)] + [membership_add(i) for i in range(500)]
               + [deactivate(i) for i in range(60)] + [team_delete(i) for i in range(40)])
    plan = make_plan(changes, ignored_entries, safety=[DEACTIVATIONS_OK])
    hint = "the `reconciler-plan-42` artifact of this run"
    parts = MarkdownRenderer(artifact_hint=hint, full=True).render_parts(plan)  # --full: no summary of 3,600
    assert len(parts) == 1
    out = parts[0]
    assert len(out) <= DEFAULT_LIMIT
    assert all(f"| Old team {i:03} |" in out for i in range(40))
    assert all(f"| `leaver{i:05}@corp.example.com` |" in out for i in range(60))
    moves = len(re.findall(r"^\| `mover\d{5}@", out, re.MULTILINE))
    assert 0 < moves < 3000
    assert (f"… {3000 - moves:,} more of 3,000 changes left out here; every change is in the JSON plan "
            f"(the `reconciler-plan-42` artifact of this run)\n") in out
    # lower risk than moves: left out entirely, and saying so
    assert "… 500 more of 500 changes left out here; every change is in" in out
    assert "… 200 more of 200 rows left out here; every ignored entry is in the JSON plan" in out
    assert "joiner" not in out and "nomail" not in out
    # reading order: what takes access away first
    assert out.index("Users to deactivate") < out.index("Teams to delete") < out.index("Users to move")
    assert tables_are_whole(out) and details_balanced(out)


def test_a_plan_that_fits_is_not_shortened():
    plan = make_plan([move(i) for i in range(50)] + [deactivate(i) for i in range(5)], [ignored(1)])
    out = MarkdownRenderer().render(plan)
    assert "left out" not in out and PART_SEPARATOR not in out
    assert "<details><summary>Users to move (50)</summary>" in out


def big_refused_plan():
    changes = [deactivate(i, subject=f"{'very.long.name.' * 6}{i:05}@subsidiary.corp.example.com",
                          reason=f"left scope: not a member of CN={HOSTILE}") for i in range(6000)]
    changes = [move(i) for i in range(5)] + changes
    over = LimitCheck("max_deactivations", "deactivations", 6000, 28, "10% (28 of 288 managed users)")
    return make_plan(changes, safety=[over], review=REVIEW)


@pytest.fixture(scope="module")
def big():
    plan = big_refused_plan()
    return plan, MarkdownRenderer(full=True).render_parts(plan)


def test_6000_deactivations_are_split_over_comments_and_none_is_left_out(big):
    plan, parts = big
    n = len(parts)
    assert n >= 2
    assert all(len(part) <= DEFAULT_LIMIT for part in parts)
    everything = "".join(parts)
    first_cells = Counter(line.split(" | ", 1)[0] for line in everything.split("\n") if line.startswith("| "))
    for change in plan.changes:
        assert first_cells[f"| {who_cell(change.subject)}"] == 1, change.subject
    assert "left out" not in everything  # the 5 moves fit too
    assert parts[0].startswith("> [!CAUTION]\n")
    assert f"**This plan is in {n} comments** (this is part 1 of {n})" in parts[0]
    for k, part in enumerate(parts[1:], start=2):
        assert part.startswith(f"### reconciler plan (continued, part {k} of {n})\n")
        assert "\n#### Users to deactivate (6,000), continued\n\n**Why:** left scope: not a member of CN=" in part
        assert "\n\n| name | email | team | title |\n|---|---|---|---|\n" in part
    for part in parts:
        assert tables_are_whole(part) and details_balanced(part)


def test_the_parts_come_back_from_the_one_document(big):
    plan, parts = big
    out = MarkdownRenderer(full=True).render(plan)
    assert out == (PART_SEPARATOR + "\n").join(parts)
    assert split_parts(out) == parts
    assert out.split("\n").count(PART_SEPARATOR) == len(parts) - 1


def test_hostile_values_cannot_make_a_separator_or_a_marker(big):
    plan, parts = big
    out = MarkdownRenderer(full=True).render(plan)
    assert out.count("<!--") == out.count("-->") == len(parts)  # the review marker and the separators, nothing else
    assert out.count(PART_SEPARATOR) == len(parts) - 1 and out.count("reconciler-review") == 1
    assert parse(out, "comment") == REVIEW  # not the forged one
    small = make_plan([deactivate(1, subject=HOSTILE, reason=HOSTILE)], [ignored(1)], path=HOSTILE, review=REVIEW)
    small.ignored[0] = EntryVerdict(HOSTILE, HOSTILE, "g", HOSTILE, HOSTILE, "ignored", HOSTILE)
    one = MarkdownRenderer().render(small)
    assert one.count("<!--") == one.count("-->") == 1 and split_parts(one) == [one]
    assert parse(one, "comment") == REVIEW
    assert "| new | row |" not in one and "<script>" not in one


def test_a_smaller_limit_is_kept():
    plan = make_plan([deactivate(i) for i in range(400)] + [move(i) for i in range(100)], [ignored(1)])
    parts = MarkdownRenderer(limit=8_000).render_parts(plan)
    assert len(parts) >= 2 and all(len(part) <= 8_000 for part in parts)
    assert all(f"leaver{i:05}@" in "".join(parts) for i in range(400))


def test_a_huge_directory_value_is_cut_in_the_comment_not_the_limit():
    plan = make_plan([deactivate(1, subject="huge" + "<|>" * 100_000, reason="\n" * 50_000), deactivate(2)])
    parts = MarkdownRenderer().render_parts(plan)
    assert len(parts) == 1 and len(parts[0]) <= DEFAULT_LIMIT
    assert "| huge&lt;\\|&gt;" in parts[0] and "…" in parts[0] and "leaver00002@" in parts[0]


def test_an_empty_reviewed_plan_still_carries_the_review():
    out = MarkdownRenderer().render(make_plan(review=Review("sha256:" + "a" * 64, None, {})))
    assert "**No changes.**" in out and "its effect: no changes" in out
    assert parse(out, "comment").effect == {}


def test_the_artifact_hint_must_be_one_line_without_html_comments():
    with pytest.raises(ValueError):
        MarkdownRenderer(artifact_hint="x\n<!-- reconciler-comment-part -->")


def test_the_same_plan_renders_byte_identical(big):
    plan, parts = big
    assert MarkdownRenderer(full=True).render_parts(big_refused_plan()) == parts
    small = reviewed_plan([move(i) for i in range(3000)])
    assert MarkdownRenderer().render(small) == MarkdownRenderer().render(small)
    assert TextRenderer().render(small) == TextRenderer().render(small)
