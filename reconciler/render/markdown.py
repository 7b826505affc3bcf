"""Plan for a pull-request comment.

Every value from a directory is escaped (a `|` must not break a table, `<script>`
must not become HTML), long sections fold into <details>, and the whole stays
under GitHub's 65,536-character comment limit with a line saying what was cut.
"""
from __future__ import annotations

import html
import re
from collections import defaultdict

from ..model import Change, Plan
from ..plan.document import plan_digest
from . import describe_fields

GITHUB_COMMENT_LIMIT = 65_536
FOLD_AFTER = 10  # sections longer than this fold into <details>
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")

ACTION_TITLES = {
    ("team", "create"): "Teams to create", ("team", "update"): "Teams to update",
    ("user", "create"): "Users to create", ("user", "adopt"): "Users to adopt",
    ("user", "reactivate"): "Users to reactivate", ("user", "update"): "Users to update",
    ("user", "move"): "Users to move", ("membership", "add"): "Memberships to add",
    ("membership", "remove"): "Memberships to remove", ("user", "deactivate"): "Users to deactivate",
    ("user", "delete"): "Users to delete", ("team", "delete"): "Teams to delete",
}


def escape(value: object) -> str:
    """Text safe inside a Markdown table cell or list item: HTML-escaped, Markdown punctuation
    backslash-escaped, line breaks flattened (a newline would end a table row)."""
    text = html.escape(str(value), quote=False)
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return re.sub(r"[\r\n\t]+", " ", text)


class MarkdownRenderer:
    def __init__(self, limit: int = GITHUB_COMMENT_LIMIT, artifact_hint: str = "the JSON plan artifact of this run"):
        self.limit = limit
        self.artifact_hint = artifact_hint

    def render(self, plan: Plan) -> str:
        head = self.header(plan)
        sections = self.sections(plan)
        tail = self.ignored(plan)
        body = head + "".join(sections) + tail
        if len(body) <= self.limit:
            return body
        return self.truncate(head, sections, tail, plan)

    def header(self, plan: Plan) -> str:
        lines = [f"### reconciler plan for {escape(plan.policy_path)}", ""]
        if plan.empty:
            lines += ["**No changes.** The store matches the directories.", ""]
        else:
            summary = ", ".join(f"{n} {k.replace('.', ' ')}" for k, n in plan.summary.items())
            lines += [f"**{len(plan.changes)} changes:** {escape(summary)}", ""]
        causes = {c.cause for c in plan.changes if c.cause}
        if causes:
            mine = [c for c in plan.changes if c.cause == "policy"]
            pending = [c for c in plan.changes if c.cause != "policy"]
            lines += [f"- **this change:** {escape(self.count_words(mine)) or 'nothing'}",
                      f"- **pending regardless:** {escape(self.count_words(pending)) or 'nothing'}", ""]
        lines += ["| action | count |", "|---|---:|"]
        lines += [f"| {escape(k.replace('.', ' '))} | {n} |" for k, n in plan.summary.items()] or ["| (none) | 0 |"]
        lines += ["", "| directory | read | in scope | imported | ignored | disabled |", "|---|---:|---:|---:|---:|---:|"]
        for name, c in plan.directories.items():
            lines.append(f"| {escape(name)} | {c['read']} | {c['in_scope']} | {c['imported']} | {c['ignored']} | {c['disabled']} |")
        # the apply-after-merge workflow finds this line to refuse anything but the reviewed plan
        lines += ["", f"plan digest: {plan_digest(plan)}"]
        return "\n".join(lines) + "\n"

    @staticmethod
    def count_words(changes: list[Change]) -> str:
        counts: dict[str, int] = defaultdict(int)
        for c in changes:
            counts[f"{c.kind} {c.action}"] += 1
        return ", ".join(f"{n} {k}" for k, n in counts.items())

    def sections(self, plan: Plan) -> list[str]:
        grouped: dict[tuple[str, str], list[Change]] = defaultdict(list)
        for change in plan.changes:
            grouped[(change.kind, change.action)].append(change)
        out = []
        for group, changes in grouped.items():
            rows = ["| who | detail | why |", "|---|---|---|"] + [self.row(c) for c in changes]
            out.append(self.section(f"{ACTION_TITLES[group]} ({len(changes)})", rows))
        return out

    def row(self, change: Change) -> str:
        detail = describe_fields(change.before, change.after) if change.action in ("update", "move") else ""
        cause = " (this change)" if change.cause == "policy" else " (pending regardless)" if change.cause else ""
        return f"| {escape(change.subject or change.key)} | {escape(detail)} | {escape(change.reason + cause)} |"

    @staticmethod
    def section(title: str, rows: list[str]) -> str:
        body = "\n".join(rows)
        if len(rows) - 2 > FOLD_AFTER:
            return f"\n<details><summary>{title}</summary>\n\n{body}\n\n</details>\n"
        return f"\n#### {title}\n\n{body}\n"

    def ignored(self, plan: Plan) -> str:
        if not plan.ignored:
            return ""
        rows = ["| directory | who | reason |", "|---|---|---|"] + [
            f"| {escape(v.directory)} | {escape(v.email or v.account_name or v.dn)} | {escape(v.reason)} |"
            for v in plan.ignored
        ]
        return self.section(f"Not imported ({len(plan.ignored)})", rows)

    def truncate(self, head: str, sections: list[str], tail: str, plan: Plan) -> str:
        """Whole sections first, then whole rows, until the next would not fit; then say what was cut."""
        note_room = 400
        budget = self.limit - len(head) - note_room
        kept: list[str] = []
        shown = 0
        for section in sections + ([tail] if tail else []):
            if len(section) <= budget:
                kept.append(section)
                budget -= len(section)
                shown += section.count("\n| ") - 1
                continue
            lines = section.split("\n")
            partial: list[str] = []
            for line in lines:
                if len(line) + 1 + len("\n\n</details>\n") > budget:
                    break
                partial.append(line)
                budget -= len(line) + 1
            if any(line.startswith("| ") and not line.startswith("| who") for line in partial):
                closing = "\n\n</details>\n" if "<details>" in partial[0] or (len(partial) > 1 and "<details>" in partial[1]) else "\n"
                kept.append("\n".join(partial) + closing)
            break
        total = len(plan.changes) + len(plan.ignored)
        note = (f"\n> **Cut to fit a comment:** this shows the first rows of {total} changes and ignored entries; "
                f"every one of them is in {escape(self.artifact_hint)}.\n")
        return head + "".join(kept) + note
