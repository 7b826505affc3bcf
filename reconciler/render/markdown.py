"""Plan for a pull-request comment.

Every value from a directory is escaped (a `|` must not break a table, `<script>`
must not become HTML, nothing can open or close an HTML comment, so no value can
forge the review marker or a part separator), long sections fold into <details>,
and the comment is laid out by risk (comment.py): low-risk sections are shortened
first, deactivations and deletions are never cut, and a plan too big for one
comment is split into parts, each under the limit.
"""
from __future__ import annotations

import html
import re
from collections import defaultdict

from ..changes import BY_KIND_ACTION, CHANGE_KINDS
from ..model import Plan
from ..plan.document import plan_digest
from ..plan.review import marker
from . import changes_words, counts_of, limit_reason, limit_rule, read_words, summary_words
from .comment import FOLD_AFTER, Section, fit
from .text import GROUPS_SHOWN, LARGE_PLAN, RISKY_ROWS
from .view import Group, Section as ViewSection, Who, sections as view_sections, team_counts

GITHUB_COMMENT_LIMIT = 65_536  # GitHub rejects a longer comment body
HEADROOM = 2_000  # for the line the workflow puts first (marker, commit, run, time)
DEFAULT_LIMIT = GITHUB_COMMENT_LIMIT - HEADROOM
PART_SEPARATOR = "<!-- reconciler-comment-part -->"  # a line of its own between the parts of render()
CELL_CHARS = 1_000  # a longer directory value is cut in the comment (never in the JSON plan)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")
_SPLIT = re.compile("^" + re.escape(PART_SEPARATOR) + "\n", re.MULTILINE)

# Shortened first to last when the comment is too long: the ignored entries, then the changes by their
# `shorten` rank. Never shortened: the kinds without one (they change who has access).
SHORTEN_ORDER = ["ignored", *((c.kind, c.action) for c in sorted(CHANGE_KINDS, key=lambda c: c.shorten or 0)
                              if c.shorten is not None)]
TABLE_HEAD = "| who | change | why |\n|---|---|---|\n"
IGNORED_HEAD = "| directory | who | reason |\n|---|---|---|\n"


def escape(value: object) -> str:
    """Text safe inside a Markdown table cell or list item: HTML-escaped (no `<`, so no tag and no
    `<!--`), Markdown punctuation backslash-escaped, line breaks flattened (a newline would end a row)."""
    text = html.escape(str(value), quote=False)
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return re.sub(r"[\r\n\t]+", " ", text)


_EMAIL = re.compile(r"[^\s@|`<>()\[\]{},;:'\"]+@[^\s@|`<>()\[\]{},;:'\"]+\.[^\s@|`<>()\[\]{},;:'\"]*[^\s@|`<>()\[\]{},;:'\".]")


def cell(value: object) -> str:
    """Free text in a table cell, escaped; the email addresses in it as code spans (GitHub would make
    each a mailto: link)."""
    text = str(value)
    text = text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…"
    out, at = [], 0
    for found in _EMAIL.finditer(text):
        out += [escape(text[at:found.start()]), who_cell(found.group())]
        at = found.end()
    return "".join(out) + escape(text[at:])


def split_parts(text: str) -> list[str]:
    """The parts of a rendered comment, as render_parts gave them."""
    return _SPLIT.split(text)


class MarkdownRenderer:
    def __init__(self, limit: int = DEFAULT_LIMIT, artifact_hint: str = "the plan artifact of this run",
                 full: bool = False, large: int = LARGE_PLAN, risky_rows: int | None = None):
        """`limit`: the most characters in one comment part. `artifact_hint`: Markdown naming where the
        JSON plan is, e.g. "the `reconciler-plan-42` artifact of this run" (one line, no HTML comment).
        `risky_rows`: None (the default) lists every change that takes access away even in a summarised
        plan: the comment is where they are approved, so they are split over comments, never cut."""
        if "\n" in artifact_hint or "\r" in artifact_hint or "<!--" in artifact_hint or "-->" in artifact_hint:
            raise ValueError("artifact_hint must be one line of Markdown without HTML comments")
        self.limit = limit
        self.artifact_hint = artifact_hint
        self.full, self.large, self.risky_rows = full, large, risky_rows

    def render(self, plan: Plan) -> str:
        """One document: the parts with a PART_SEPARATOR line between them (split_parts undoes it)."""
        return (PART_SEPARATOR + "\n").join(self.render_parts(plan))

    def render_parts(self, plan: Plan) -> list[str]:
        """The comment(s) for this plan, each at most `limit` characters; the first has the header."""
        caution, head = self.caution(plan), self.header(plan)
        return fit(lambda n: caution + head(n), self.continued, self.sections(plan), self.limit)

    @staticmethod
    def continued(part: int, parts: int) -> str:
        return f"### reconciler plan (continued, part {part} of {parts})\n"

    def caution(self, plan: Plan) -> str:
        """At the very top when apply would refuse the plan (GitHub alert syntax)."""
        if not plan.refused:
            return ""
        over = "; ".join(escape(limit_reason(c)) for c in plan.safety if not c.ok)
        return ("> [!CAUTION]\n"
                f"> **apply would refuse this plan**: {over}. The check fails; if these changes are intended, "
                "apply with `--force --reason \"...\"` (recorded in the history).\n\n")

    def header(self, plan: Plan):
        """The first part's header, given the number of parts."""
        lines = [f"### reconciler plan for {escape(plan.policy_path)}", ""]
        if plan.review is not None:
            lines += [marker(plan), ""]  # for the apply workflow: exactly once, in the first part
        top, lines = "\n".join(lines) + "\n", []
        if plan.warnings:
            lines += ["> [!WARNING]", *(f"> {cell(w)}  " for w in plan.warnings), ""]
        if plan.reads:
            lines += [*(f"{escape(read_words(note))}  " for note in plan.reads), ""]
        if plan.empty:
            lines += ["**No changes.** The store matches the directories.", ""]
        else:
            lines += [f"**{changes_words(len(plan.changes))}:** {escape(summary_words(plan.summary))}", ""]
            if self.summarised(plan):
                risky = "in full" if self.risky_rows is None else f"in full (up to {self.risky_rows:,})"
                lines += [f"This plan is large: below are the changes that take access away {risky}, and the rest "
                          f"as counts per kind of change and per team. Every change is in the JSON plan "
                          f"({self.artifact_hint}).", ""]
        lines += self.review(plan) + self.safety(plan)
        lines += ["| change | count |", "|---|---:|"]
        kinds = [(BY_KIND_ACTION[tuple(k.split(".", 1))], n) for k, n in plan.summary.items()]  # type: ignore[index]
        lines += [f"| {escape(kind.title)} | {n:,} |" for kind, n in sorted(kinds, key=lambda kn: kn[0].reading)] \
            or ["| (none) | 0 |"]
        lines += ["", "| directory | read | in scope | imported | ignored | disabled |", "|---|---:|---:|---:|---:|---:|"]
        for name, c in plan.directories.items():
            lines.append(f"| {escape(name)} | {c['read']:,} | {c['in_scope']:,} | {c['imported']:,} | {c['ignored']:,} "
                         f"| {c['disabled']:,} |")
        lines += ["", f"plan digest: {plan_digest(plan)}"]
        rest = "\n".join(lines) + "\n"

        def head(parts: int) -> str:
            said = "" if parts == 1 else (
                f"**This plan is in {parts} comments** (this is part 1 of {parts}): every change that "
                "takes access away is listed in full.\n\n")
            return top + said + rest

        return head

    def summarised(self, plan: Plan) -> bool:
        return not self.full and len(plan.changes) > self.large

    def review(self, plan: Plan) -> list[str]:
        lines: list[str] = []
        if plan.review is not None:
            digest = plan.review.policy_digest
            short = "sha256:" + re.sub(r"[^0-9a-f]", "", digest.removeprefix("sha256:"))[:12]
            effect = summary_words(plan.review.effect) or "no changes"
            first = "" if plan.review.base_policy_digest else " (the target branch has no policy yet: the edit causes every change)"
            lines += [f"Approving this pull request approves policy `{short}` and its effect: {escape(effect)}{escape(first)}.", ""]
        if plan.review is not None or any(c.cause for c in plan.changes):
            mine = counts_of(c for c in plan.changes if c.cause == "policy")
            pending = counts_of(c for c in plan.changes if c.cause != "policy")
            lines += [f"- **this change:** {escape(summary_words(mine)) or 'nothing'}",
                      f"- **pending regardless:** {escape(summary_words(pending)) or 'nothing'}", ""]
        return lines

    @staticmethod
    def safety(plan: Plan) -> list[str]:
        if not plan.safety:
            return []
        lines = ["**Safety limits**", "", "| limit | planned | allowed | |", "|---|---:|---:|---|"]
        for c in plan.safety:
            allowed = "no limit" if c.allowed is None else f"{c.allowed:,}"
            lines.append(f"| {escape(c.noun)} | {c.planned:,} | {allowed} | {'✓' if c.ok else '✗'} {escape(limit_rule(c))} |")
        return lines + [""]

    def sections(self, plan: Plan) -> list[Section]:
        summarised = self.summarised(plan)
        out: list[Section] = []
        for section in view_sections(plan, counted=summarised):
            out += self.risky(section, summarised) if section.kind.risky else [self.grouped(section, summarised)]
        if summarised and (teams := team_counts(plan)):
            rows = [f"| {cell(team)} | {escape(team_words(c))} |\n" for team, c in teams]
            out.append(Section(f"Users per team (the busiest {len(rows)})", "| team | changes |\n|---|---|\n", rows,
                               self.note("team", len(rows)), 0))
        if plan.ignored:
            rows = [f"| {cell(v.directory)} | {who_cell(v.email or v.account_name or v.dn)} | {cell(v.reason)} |\n"
                    for v in plan.ignored]
            out.append(Section(f"Not imported ({len(plan.ignored):,})", IGNORED_HEAD, rows,
                               self.note("ignored entry", len(rows)), self.rank("ignored")))
        return out

    def risky(self, section: ViewSection, summarised: bool) -> list[Section]:
        """One table per reason, a row per person with what the store knew of them; never shortened or
        folded. A summarised plan lists the first `risky_rows` people of the section."""
        kind, out, budget = section.kind, [], self.risky_rows if summarised and self.risky_rows is not None else None
        team = kind.kind == "team"
        columns = ["team"] if team else ["name", "email", "team", "title"]
        with_detail = any(w.detail for g in section.groups for w in g.people)
        columns += ["detail"] if with_detail else []
        head_table = "| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|\n"
        for group in section.groups:
            if budget is not None and budget <= 0:
                break
            people = group.people if budget is None else group.people[:budget]
            rows = [self.person_row(w, team, with_detail) for w in people]
            if budget is not None:
                budget -= len(people)
            count = f"{group.size:,}" if len(section.groups) == 1 else f"{group.size:,} of {section.count:,}"
            title = f"{kind.title} ({count})"
            why = f"**Why:** {escape(group.reason)}{_cause(group.cause)}\n\n"
            out.append(Section(title, why + head_table, rows, self.note("change", group.size), None, foldable=False))
            # (never shortened, so its note is never shown)
        if budget is not None and budget <= 0 and self.risky_rows is not None and section.count > self.risky_rows:
            left = section.count - self.risky_rows
            out[-1].rows.append(f"| … {left:,} more: every one is in the JSON plan ({escape(self.artifact_hint)}) |"
                                + " |" * (len(columns) - 1) + "\n")
        return out

    @staticmethod
    def person_row(who: Who, team: bool, with_detail: bool) -> str:
        if team:
            cells = [cell(who.name)]
        elif who.email and who.name == who.email:  # nothing known but the address: said once
            cells = [who_cell(who.email), "", cell(who.team or ""), cell(who.title or "")]
        else:
            cells = [cell(who.name), who_cell(who.email or ""), cell(who.team or ""), cell(who.title or "")]
        if with_detail:
            cells.append(cell(who.detail))
        return "| " + " | ".join(cells) + " |\n"

    def grouped(self, section: ViewSection, summarised: bool) -> Section:
        """One table: a row per group of identical changes (the count and who), then one per person."""
        rows, sizes = [], []  # sizes: the changes each row stands for, to say how many a shortening leaves out
        groups = section.groups[:GROUPS_SHOWN] if summarised else section.groups
        for group in groups:
            why = f"{cell(group.reason)}{_cause(group.cause)}"
            if not summarised and (group.size == 1 or any(w.detail for w in group.people)):
                # one row per person when each has something of their own to show (a hire's attributes)
                for who in group.people:
                    label = cell(who.name) + (f" ({who_cell(who.email)})" if who.email and who.email != who.name else "")
                    change = "; ".join(p for p in (group.headline, who.detail) if p)
                    rows.append(f"| {label} | {cell(change)} | {why} |\n")
                    sizes.append(1)
                continue
            noun = "teams" if section.kind.kind == "team" else "people"
            label = f"**{group.size:,} {noun}**" + ("" if summarised else self.names(group))
            rows.append(f"| {label} | {cell(group.headline)} | {why} |\n")
            sizes.append(group.size)
        if summarised and len(section.groups) > GROUPS_SHOWN:
            rest = sum(g.size for g in section.groups[GROUPS_SHOWN:])
            rows.append(f"| … {len(section.groups) - GROUPS_SHOWN:,} more groups, {changes_words(rest)} | | |\n")
            sizes.append(0)
        total = section.count

        def note(left_rows: int) -> str:
            left = sum(sizes[len(sizes) - left_rows:]) if left_rows else 0
            return (f"… {left:,} more of {changes_words(total)} left out here; every change is in the JSON plan "
                    f"({self.artifact_hint})")

        return Section(f"{section.kind.title} ({total:,})", TABLE_HEAD, rows, note,
                       self.rank((section.kind.kind, section.kind.action)))

    @staticmethod
    def names(group: Group) -> str:
        """The people of a group in its cell: listed when few, folded into <details> when many."""
        listed = ", ".join(cell(w.name) for w in group.people)
        if group.size <= FOLD_AFTER:
            return ": " + listed
        return f" <details><summary>who</summary>{listed}</details>"

    @staticmethod
    def rank(group) -> int | None:
        return SHORTEN_ORDER.index(group) if group in SHORTEN_ORDER else None

    def note(self, what: str, total: int):
        return lambda left: (f"… {left:,} more of {total:,} rows left out here; every {what} is in the JSON plan "
                             f"({self.artifact_hint})")


def team_words(counts: dict[str, int]) -> str:
    """"12 to create, 3 to move": what happens to one team's users, counted."""
    return ", ".join(f"{n:,} {title.split(' ', 1)[1]}" for title, n in counts.items())


def who_cell(value: str) -> str:
    """An email (or any name) as a code span: GitHub links a bare address as mailto:, which a reviewer
    did not ask for and which hides the value. Inside a code span nothing is parsed, so what could break
    out of it or the table is replaced instead of escaped: backticks, pipes (GFM splits cells even in
    code), angle brackets (so `<!--` can never appear), line breaks."""
    if not value:
        return ""
    text = value if len(value) <= CELL_CHARS else value[:CELL_CHARS] + "…"
    text = re.sub(r"[\r\n\t]+", " ", text).replace("`", "'").replace("<", "‹").replace(">", "›").replace("|", "\\|")
    return f"`{text}`"


def _cause(cause: str | None) -> str:
    return " (this change)" if cause == "policy" else " (pending regardless)" if cause else ""



__all__ = ["DEFAULT_LIMIT", "FOLD_AFTER", "GITHUB_COMMENT_LIMIT", "PART_SEPARATOR", "MarkdownRenderer",
           "escape", "split_parts"]
