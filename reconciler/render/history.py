"""The store's apply history (`reconciler history`): for a terminal, a pull request or step summary, a script.

Each line says which apply it was (id, plan digest, commit, run), when it finished and who ran it, and how
it ended, kept apart: applied (what changed, in the change table's words), refused or failed (why, and what
was planned and not applied, never under "changes"). A forced apply says why it was forced. Applies that
changed nothing are not lines of their own (the hourly job would fill the history): the next line says how
many came before it, and the newest state ("3 applies with no changes since the last row") is said first.

Every value a store holds may have been written by anyone who can write the store (an actor from the
environment, a reason typed on a command line), so each is escaped for where it goes: control characters
are shown as `\\n`, `\\x1b`... in both; in Markdown, HTML and Markdown are escaped, and addresses, web
addresses and names are code spans (GitHub would link an address as mailto:, a web address as a link).
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len

from . import summary_words

if TYPE_CHECKING:  # the render stage reads history records, it does not import the store stage
    from ..store.common import ApplyRecord, Unchanged

FORMATS = ("text", "markdown", "json")
SHORT_DIGEST = 12  # hex digits of a digest shown in text and Markdown ("sha256:3f9a1c2b4d5e"); JSON has them whole
SHORT_COMMIT = 12
NONE_YET = "No applies recorded yet."
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ANSI = {"applied": "\x1b[32m", "refused": "\x1b[33m", "failed": "\x1b[31m", "unknown": "\x1b[31m"}
TEXT_COLUMNS = ("id", "finished", "who", "outcome", "changes", "planned, not applied", "plan", "commit", "run")
MARKDOWN_COLUMNS = (*TEXT_COLUMNS, "applies with no changes")


class _NoUnchanged:
    """`store.common.Unchanged()`, without importing the store stage."""

    runs = 0
    latest = None


NO_UNCHANGED: Unchanged = _NoUnchanged()  # type: ignore[assignment]


def render_history(records: Sequence[ApplyRecord], unchanged: Unchanged | None, format: str, *,
                   color: bool = False) -> str:
    """The history lines (newest first) and the applies with no changes since the newest, in `format`
    (text, markdown or json); `unchanged` None: none known (a store that does not count them)."""
    unchanged = unchanged if unchanged is not None else NO_UNCHANGED
    if format == "json":
        return render_json(records, unchanged)
    if format == "markdown":
        return render_markdown(records, unchanged)
    return render_text(records, unchanged, color=color)


# ───────────────────────────── shared ─────────────────────────────


def short_digest(digest: str | None) -> str:
    """"sha256:" and the first hex digits, as the plan comment shows a digest; "" for none."""
    if not digest:
        return ""
    algorithm, sep, value = str(digest).partition(":")
    if not sep:
        algorithm, value = "sha256", algorithm
    return f"{algorithm}:{value[:SHORT_DIGEST]}"


def changed_words(counts: Any) -> str:
    """Counts per "kind.action" in the change table's words ("1 user to deactivate, 3 users to create");
    values that are not counts (a hand-edited row) are left out."""
    if not isinstance(counts, dict):
        return ""
    return summary_words({str(k): v for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)})


def unchanged_runs_words(runs: int) -> str:
    return f"+ {runs:,} {'apply' if runs == 1 else 'applies'} with no changes since the previous row"


def pending_words(unchanged: Unchanged, rows: bool) -> str:
    """"3 applies with no changes since the last row (latest at 2026-11-21T12:00:00Z)"."""
    said = f"{unchanged.runs:,} {'apply' if unchanged.runs == 1 else 'applies'} with no changes"
    said += " since the last row" if rows else ", and none that changed anything yet"
    return said + (f" (latest at {unchanged.latest})" if unchanged.latest else "")


def _changes(record: ApplyRecord) -> str:
    if record.result != "applied":
        return ""
    return changed_words(record.applied) or "no changes"


# ───────────────────────────── text ─────────────────────────────


def plain(value: object) -> str:
    """A value safe on a terminal: control characters (a line break that would forge a row, an ANSI
    sequence) shown as \\n, \\x1b..."""
    return _CONTROL.sub(lambda m: {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(m.group(), f"\\x{ord(m.group()):02x}"),
                        "" if value is None else str(value))


def render_text(records: Sequence[ApplyRecord], unchanged: Unchanged, *, color: bool = False) -> str:
    """A table, one row per line of history, and under a row what does not fit a column: why it was
    refused or failed, why it was forced, the applies with no changes before it."""
    lines: list[str] = []
    if unchanged.runs:
        lines += [pending_words(unchanged, bool(records)) + ".", ""]
    if not records:
        return "\n".join(lines + [NONE_YET]) + "\n"
    rows = [(
        str(r.id) if r.id is not None else "",
        plain(r.finished_at or r.started_at),
        plain(r.actor),
        r.result + (" (forced)" if r.force_reason and r.result == "applied" else ""),
        _changes(r),
        changed_words(r.planned_not_applied),
        plain(short_digest(r.plan_digest)),
        plain((r.commit or "")[:SHORT_COMMIT]),
        plain(r.run_id or ""),
    ) for r in records]
    widths = [max(cell_len(row[i]) for row in [TEXT_COLUMNS, *rows]) for i in range(len(TEXT_COLUMNS))]
    indent = " " * (widths[0] + 2)

    def line(cells: Sequence[str], outcome: str | None = None) -> str:
        out = []
        for i, value in enumerate(cells):
            padded = value.rjust(widths[0]) if i == 0 else value + " " * (widths[i] - cell_len(value))
            if i == 3 and color and outcome is not None:
                padded = f"{_ANSI[outcome]}{padded}\x1b[0m"
            out.append(padded)
        return "  ".join(out).rstrip()

    header = line(TEXT_COLUMNS)
    lines.append(f"\x1b[1m{header}\x1b[0m" if color else header)
    for record, row in zip(records, rows):
        lines.append(line(row, record.result))
        if record.result != "applied":
            lines.append(f"{indent}{record.result if record.result != 'unknown' else 'outcome'}: {plain(record.reason)}")
        if record.force_reason:
            lines.append(f"{indent}forced because: {plain(record.force_reason)}")
        if record.unchanged_runs:
            lines.append(f"{indent}{unchanged_runs_words(record.unchanged_runs)}")
    return "\n".join(lines) + "\n"


# ───────────────────────────── Markdown ─────────────────────────────


# what GitHub links by itself in text (GFM's extended autolinks), escaped or not: shown as code spans instead
_AUTOLINK = re.compile(r"(?i)\b(?:(?:https?|ftp)://|www\.)[^\s<>|`]+")


def free_cell(value: object) -> str:
    """A reason typed by anyone in a table cell: `markdown.cell` (escaped, addresses as code spans), and web
    addresses as code spans too: a history line is no place for a link nobody reviewed."""
    from .markdown import cell, who_cell

    text, out, at = plain(value), [], 0
    for found in _AUTOLINK.finditer(text):
        out += [cell(text[at:found.start()]), who_cell(found.group())]
        at = found.end()
    return "".join(out) + cell(text[at:])


def render_markdown(records: Sequence[ApplyRecord], unchanged: Unchanged) -> str:
    """A GFM table for a pull-request comment or a step summary; every value escaped (no HTML, no row or
    table broken by a `|` or a line break, no links: addresses and web addresses as code spans)."""
    from .markdown import escape, who_cell

    cell = free_cell

    lines = ["### Apply history", ""]
    if unchanged.runs:
        lines += [f"_{escape(plain(pending_words(unchanged, bool(records))))}._", ""]
    if not records:
        return "\n".join(lines + [NONE_YET]) + "\n"
    lines.append("| " + " | ".join(MARKDOWN_COLUMNS) + " |")
    lines.append("|---:|" + "---|" * (len(MARKDOWN_COLUMNS) - 1))
    for r in records:
        if r.result == "applied":
            outcome = "**applied**" + (f" (forced: {cell(r.force_reason)})" if r.force_reason else "")
        else:
            outcome = f"**{r.result if r.result != 'unknown' else 'outcome'}**: {cell(r.reason or '')}"
            if r.force_reason:
                outcome += f" (forced: {cell(r.force_reason)})"
        cells = [
            escape(r.id if r.id is not None else ""),
            escape(plain(r.finished_at or r.started_at)),
            who_cell(plain(r.actor)),
            outcome,
            escape(_changes(r)),
            escape(changed_words(r.planned_not_applied)),
            who_cell(plain(short_digest(r.plan_digest))),
            who_cell(plain((r.commit or "")[:SHORT_COMMIT])),
            who_cell(plain(r.run_id or "")),
            escape(unchanged_runs_words(r.unchanged_runs)) if r.unchanged_runs else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ───────────────────────────── JSON ─────────────────────────────


def render_json(records: Sequence[ApplyRecord], unchanged: Unchanged) -> str:
    """A list, newest first, of every line with every field (`ApplyRecord.to_json`: full digests), and
    `unchanged_since`: on the newest line, the applies with no changes after it ({"runs", "latest_at"}),
    null on the others. Keys sorted; documented in docs/store-schema.md."""
    out = []
    for index, record in enumerate(records):
        data = record.to_json()
        data["unchanged_since"] = {"runs": unchanged.runs, "latest_at": unchanged.latest} if index == 0 else None
        out.append(data)
    return json.dumps(out, indent=2, sort_keys=True) + "\n"
