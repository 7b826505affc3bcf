"""Plan for a terminal: coloured with rich on a TTY, plain text otherwise.

Laid out by `view.sections`: what takes access away first, identical changes once with who,
field-level updates, people by name. A plan of more than `large` changes is summarised
(counts per action and per team, the risky sections in full up to `risky_rows`, the other
sections as their groups' counts) unless `full`; `--format json` always has everything.
"""
from __future__ import annotations

import io
import re

from rich.console import Console
from rich.markup import escape as escape_markup
from rich.table import Table

from ..model import Plan
from ..plan.document import plan_digest
from . import changes_words, counts_of, limit_reason, limit_rule, read_words, summary_words
from .view import Group, Section, Who, sections, team_counts

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def escape(value: object) -> str:
    """A value from a directory or a store, safe on a terminal: rich markup escaped, and control characters
    (a line break that would forge a line of the plan, an ANSI sequence) shown as \\n, \\x1b..."""
    text = _CONTROL.sub(lambda m: {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(m.group(), f"\\x{ord(m.group()):02x}"),
                        str(value))
    return escape_markup(text)


COLOURS = {"+": "green", "~": "yellow", "-": "red"}
IGNORED_SHOWN = 50
FOLD_AFTER = 10  # people listed per group outside risky sections, unless --full
LARGE_PLAN = 1_000  # changes above which a plan is summarised unless --full
RISKY_ROWS = 1_000  # people of a risky section listed in a summarised plan
GROUPS_SHOWN = 20  # groups of a low-risk section listed in a summarised plan


class TextRenderer:
    def __init__(self, color: bool = False, width: int = 120, full: bool = False,
                 large: int = LARGE_PLAN, risky_rows: int = RISKY_ROWS):
        self.color = color
        self.width = width
        self.full = full
        self.large = large
        self.risky_rows = risky_rows

    def render(self, plan: Plan) -> str:
        buffer = io.StringIO()
        console = Console(file=buffer, force_terminal=self.color, no_color=not self.color,
                          width=self.width, highlight=False, soft_wrap=True)
        self.header(console, plan)
        summarised = not self.full and len(plan.changes) > self.large
        if summarised:
            console.print(f"[bold]{changes_words(len(plan.changes))}: a summary[/] (every change: --full, or --format json)")
            console.print()
        for section in sections(plan, counted=summarised):
            self.section(console, section, summarised)
        if summarised:
            self.teams(console, plan)
        if plan.ignored:
            self.ignored(console, plan)
        self.footer(console, plan)
        return buffer.getvalue()

    # ── parts ──

    @staticmethod
    def header(console: Console, plan: Plan) -> None:
        console.print(f"[bold]Plan[/] for {escape(plan.policy_path)} (store: {plan.store_kind}, "
                      f"{plan.managed_users:,} active managed user{'' if plan.managed_users == 1 else 's'})")
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        for column in ("directory", "read", "in scope", "imported", "ignored", "disabled"):
            table.add_column(column, justify="left" if column == "directory" else "right")
        for name, c in plan.directories.items():
            table.add_row(escape(name), *(f"{c[k]:,}" for k in ("read", "in_scope", "imported", "ignored", "disabled")))
        console.print(table)
        for note in plan.reads:
            console.print(f"[dim]{escape(read_words(note))}[/]")
        console.print()
        for warning in plan.warnings:
            console.print(f"[bold yellow]Warning:[/] {escape(warning)}")
        if plan.warnings:
            console.print()
        if plan.empty:
            console.print("[green]No changes.[/] The store matches the directories.")

    def section(self, console: Console, section: Section, summarised: bool) -> None:
        kind = section.kind
        colour = COLOURS[kind.sign]
        console.print(f"[bold {colour}]{kind.title}[/] ({section.count:,})")
        if summarised and not kind.risky:
            for group in section.groups[:GROUPS_SHOWN]:
                what = group.headline or (group.people[0].name if len(group.people) == 1 else "")
                console.print(f"  [{colour}]{kind.sign}[/] {group.size:,} × {escape(what)}  [dim]# {escape(group.reason)}[/]")
            if len(section.groups) > GROUPS_SHOWN:
                rest = sum(g.size for g in section.groups[GROUPS_SHOWN:])
                console.print(f"  … {len(section.groups) - GROUPS_SHOWN:,} more groups, {changes_words(rest)} (--full)")
            console.print()
            return
        budget = self.risky_rows if summarised else None
        for group in section.groups:
            budget = self.group(console, section, group, budget)
            if budget is not None and budget <= 0:
                left = section.count - self.risky_rows
                if left > 0:
                    console.print(f"  … {left:,} more (all of them: --full, or --format json)")
                break
        console.print()

    def group(self, console: Console, section: Section, group: Group, budget: int | None) -> int | None:
        kind = section.kind
        sign = f"[{COLOURS[kind.sign]}]{kind.sign}[/]"
        why = f"  [dim]# {escape(group.reason)}[/]"
        show_team = kind.name not in ("user.create", "user.move", "membership.add", "membership.remove")
        if group.size == 1:
            who = group.people[0]
            said = ": ".join(p for p in (person(who, show_team), group.headline, who.detail) if p)
            console.print(f"  {sign} {escape(said)}{why}")
            return None if budget is None else budget - 1
        noun = "teams" if kind.kind == "team" else "people"
        said = f"{group.headline} ({group.size:,} {noun})" if group.headline else f"{group.size:,} {noun}"
        console.print(f"  {sign} {escape(said)}{why}")
        shown = group.people
        if budget is not None:
            shown = shown[:budget]
        elif not (kind.risky or self.full):
            shown = shown[:FOLD_AFTER]
        for who in shown:
            if not kind.risky:  # the headline says what changes; their old title would only repeat it
                who = Who(who.name, who.email, who.team, None, who.detail)
            console.print(f"      {escape(': '.join(p for p in (person(who, show_team), who.detail) if p))}")
        if len(shown) < group.size and budget is None:
            console.print(f"      … and {group.size - len(shown):,} more (--full)")
        return None if budget is None else budget - len(shown)

    @staticmethod
    def teams(console: Console, plan: Plan) -> None:
        rows = team_counts(plan)
        if not rows:
            return
        console.print("[bold]Users per team[/] (the busiest)")
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        table.add_column("team")
        table.add_column("changes", justify="right")
        for team, counts in rows:
            table.add_row(escape(team), escape(", ".join(f"{n:,} {title.split(' ', 1)[1]}" for title, n in counts.items())))
        console.print(table)
        console.print()

    @staticmethod
    def ignored(console: Console, plan: Plan) -> None:
        console.print(f"[bold]Not imported[/] ({len(plan.ignored):,}):")
        for v in plan.ignored[:IGNORED_SHOWN]:
            who = v.email or v.account_name or v.dn
            console.print(f"  [dim]{escape(v.directory)}[/] {escape(who)}: {escape(v.reason)}")
        if len(plan.ignored) > IGNORED_SHOWN:
            console.print(f"  … and {len(plan.ignored) - IGNORED_SHOWN:,} more (all of them: --format json)")
        console.print()

    @staticmethod
    def footer(console: Console, plan: Plan) -> None:
        console.print(f"[bold]Summary:[/] {summary_words(plan.summary) or 'nothing to do'}.")
        if plan.review is not None:
            effect = summary_words(plan.review.effect) or "nothing"
            pending = summary_words(counts_of(c for c in plan.changes if c.cause != "policy")) or "nothing"
            console.print(f"The edit causes: {effect}; pending regardless: {pending}.")
        for check in plan.safety:
            mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
            allowed = "no limit" if check.allowed is None else f"{check.allowed:,}"
            console.print(f"Safety: {check.noun} {check.planned:,} / allowed {allowed} {mark} ({escape(limit_rule(check))})")
        if plan.refused:
            over = "; ".join(limit_reason(c) for c in plan.safety if not c.ok)
            console.print(f"[bold red]Apply will refuse this plan: {escape(over)}. "
                          "It goes ahead only if forced: apply --force --reason \"...\".[/]")
        console.print(f"[dim]plan digest: {plan_digest(plan)}[/]")


def person(who: Who, show_team: bool = True) -> str:
    """"Samuel Osei <samuel.osei@corp.example.com> · Example Corp / Sales · Account Executive"."""
    parts = [who.name + (f" <{who.email}>" if who.email and who.email != who.name else "")]
    if show_team and who.team and who.email:
        parts.append(who.team)
    if who.title:
        parts.append(who.title)
    return " · ".join(parts)

