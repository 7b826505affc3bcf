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

from ..changes import CHANGE_KINDS
from ..model import Change, Plan
from ..plan.document import plan_digest
from ..plan.review import marker
from . import count_words, describe_fields, limit_reason, limit_rule
from .comment import FOLD_AFTER, Section, fit

GITHUB_COMMENT_LIMIT = 65_536  # GitHub rejects a longer comment body
HEADROOM = 2_000  # for the line the workflow puts first (marker, commit, run, time)
DEFAULT_LIMIT = GITHUB_COMMENT_LIMIT - HEADROOM
PART_SEPARATOR = "<!-- reconciler-comment-part -->"  # a line of its own between the parts of render()
CELL_CHARS = 1_000  # a longer directory value is cut in the comment (never in the JSON plan)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")
_SPLIT = re.compile("^" + re.escape(PART_SEPARATOR) + "\n", re.MULTILINE)

ACTION_TITLES = {(c.kind, c.action): c.title for c in CHANGE_KINDS}
# Shortened first to last when the comment is too long: the ignored entries, then the changes by their
# `shorten` rank. Never shortened: the kinds without one (they change who has access).
SHORTEN_ORDER = ["ignored", *((c.kind, c.action) for c in sorted(CHANGE_KINDS, key=lambda c: c.shorten or 0)
                              if c.shorten is not None)]
TABLE_HEAD = "| who | detail | why |\n|---|---|---|\n"
IGNORED_HEAD = "| directory | who | reason |\n|---|---|---|\n"


def escape(value: object) -> str:
    """Text safe inside a Markdown table cell or list item: HTML-escaped (no `<`, so no tag and no
    `<!--`), Markdown punctuation backslash-escaped, line breaks flattened (a newline would end a row)."""
    text = html.escape(str(value), quote=False)
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return re.sub(r"[\r\n\t]+", " ", text)


def cell(value: object) -> str:
    text = str(value)
    return escape(text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…")


def split_parts(text: str) -> list[str]:
    """The parts of a rendered comment, as render_parts gave them."""
    return _SPLIT.split(text)


class MarkdownRenderer:
    def __init__(self, limit: int = DEFAULT_LIMIT, artifact_hint: str = "the plan artifact of this run"):
        """`limit`: the most characters in one comment part. `artifact_hint`: Markdown naming where the
        JSON plan is, e.g. "the `reconciler-plan-42` artifact of this run" (one line, no HTML comment)."""
        if "\n" in artifact_hint or "\r" in artifact_hint or "<!--" in artifact_hint or "-->" in artifact_hint:
            raise ValueError("artifact_hint must be one line of Markdown without HTML comments")
        self.limit = limit
        self.artifact_hint = artifact_hint

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
        if plan.empty:
            lines += ["**No changes.** The store matches the directories.", ""]
        else:
            summary = ", ".join(f"{n} {k.replace('.', ' ')}" for k, n in plan.summary.items())
            lines += [f"**{len(plan.changes)} changes:** {escape(summary)}", ""]
        lines += self.review(plan) + self.safety(plan)
        lines += ["| action | count |", "|---|---:|"]
        lines += [f"| {escape(k.replace('.', ' '))} | {n} |" for k, n in plan.summary.items()] or ["| (none) | 0 |"]
        lines += ["", "| directory | read | in scope | imported | ignored | disabled |", "|---|---:|---:|---:|---:|---:|"]
        for name, c in plan.directories.items():
            lines.append(f"| {escape(name)} | {c['read']} | {c['in_scope']} | {c['imported']} | {c['ignored']} | {c['disabled']} |")
        lines += ["", f"plan digest: {plan_digest(plan)}"]
        rest = "\n".join(lines) + "\n"

        def head(parts: int) -> str:
            said = "" if parts == 1 else (
                f"**This plan is in {parts} comments** (this is part 1 of {parts}): every change that "
                "grants or takes away access is listed in full.\n\n")
            return top + said + rest

        return head

    def review(self, plan: Plan) -> list[str]:
        lines: list[str] = []
        if plan.review is not None:
            digest = plan.review.policy_digest
            short = "sha256:" + re.sub(r"[^0-9a-f]", "", digest.removeprefix("sha256:"))[:12]
            effect = ", ".join(f"{n} {k.replace('.', ' ')}" for k, n in plan.review.effect.items()) or "no changes"
            first = "" if plan.review.base_policy_digest else " (the target branch has no policy yet: the edit causes every change)"
            lines += [f"Approving this pull request approves policy `{short}` and its effect: {escape(effect)}{escape(first)}.", ""]
        if plan.review is not None or any(c.cause for c in plan.changes):
            mine = [c for c in plan.changes if c.cause == "policy"]
            pending = [c for c in plan.changes if c.cause != "policy"]
            lines += [f"- **this change:** {escape(count_words(mine)) or 'nothing'}",
                      f"- **pending regardless:** {escape(count_words(pending)) or 'nothing'}", ""]
        return lines

    @staticmethod
    def safety(plan: Plan) -> list[str]:
        if not plan.safety:
            return []
        lines = ["**Safety limits**", "", "| limit | planned | allowed | |", "|---|---:|---:|---|"]
        for c in plan.safety:
            allowed = "no limit" if c.allowed is None else str(c.allowed)
            lines.append(f"| {escape(c.noun)} | {c.planned} | {allowed} | {'✓' if c.ok else '✗'} {escape(limit_rule(c))} |")
        return lines + [""]

    def sections(self, plan: Plan) -> list[Section]:
        grouped: dict[tuple[str, str], list[Change]] = defaultdict(list)
        for change in plan.changes:
            grouped[(change.kind, change.action)].append(change)
        out = [Section(f"{ACTION_TITLES[group]} ({len(changes)})", TABLE_HEAD, [self.row(c) for c in changes],
                       self.note("change", len(changes)), self.rank(group))
               for group, changes in grouped.items()]
        if plan.ignored:
            rows = [f"| {cell(v.directory)} | {cell(v.email or v.account_name or v.dn)} | {cell(v.reason)} |\n"
                    for v in plan.ignored]
            out.append(Section(f"Not imported ({len(plan.ignored)})", IGNORED_HEAD, rows,
                               self.note("ignored entry", len(rows)), self.rank("ignored")))
        return out

    @staticmethod
    def rank(group) -> int | None:
        return SHORTEN_ORDER.index(group) if group in SHORTEN_ORDER else None

    def note(self, what: str, total: int):
        return lambda left: (f"… {left} more of {total} rows left out here; every {what} is in the JSON plan "
                             f"({self.artifact_hint})")

    @staticmethod
    def row(change: Change) -> str:
        detail = describe_fields(change.before, change.after) if change.action in ("update", "move") else ""
        cause = " (this change)" if change.cause == "policy" else " (pending regardless)" if change.cause else ""
        return f"| {cell(change.subject or change.key)} | {cell(detail)} | {cell(change.reason + cause)} |\n"


__all__ = ["DEFAULT_LIMIT", "FOLD_AFTER", "GITHUB_COMMENT_LIMIT", "PART_SEPARATOR", "MarkdownRenderer",
           "escape", "split_parts"]
