"""Plan for a terminal: coloured with rich on a TTY, plain text otherwise."""
from __future__ import annotations

import io

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..changes import CHANGE_KINDS
from ..model import Plan
from ..plan.document import plan_digest
from . import count_words, describe_fields, limit_reason, limit_rule

COLOURS = {"+": "green", "~": "yellow", "-": "red"}
SIGNS = {(c.kind, c.action): (c.sign, COLOURS[c.sign]) for c in CHANGE_KINDS}
IGNORED_SHOWN = 50


class TextRenderer:
    def __init__(self, color: bool = False, width: int = 120):
        self.color = color
        self.width = width

    def render(self, plan: Plan) -> str:
        buffer = io.StringIO()
        console = Console(file=buffer, force_terminal=self.color, no_color=not self.color,
                          width=self.width, highlight=False, soft_wrap=True)
        console.print(f"[bold]Plan[/] for {escape(plan.policy_path)} (store: {plan.store_kind}, "
                      f"{plan.managed_users} active managed users)")
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        for column in ("directory", "read", "in scope", "imported", "ignored", "disabled"):
            table.add_column(column, justify="left" if column == "directory" else "right")
        for name, c in plan.directories.items():
            table.add_row(escape(name), *(str(c[k]) for k in ("read", "in_scope", "imported", "ignored", "disabled")))
        console.print(table)
        console.print()
        if plan.empty:
            console.print("[green]No changes.[/] The store matches the directories.")
        for change in plan.changes:
            sign, colour = SIGNS[(change.kind, change.action)]
            detail = ""
            if change.action in ("update", "move"):
                detail = " (" + describe_fields(change.before, change.after) + ")"
            cause = f" [{change.cause}]" if change.cause else ""
            console.print(
                f"[{colour}]{sign} {change.action} {change.kind}[/] {escape(change.subject or change.key)}"
                f"{escape(detail)}{escape(cause)}  [dim]# {escape(change.reason)}[/]"
            )
        if plan.ignored:
            console.print(f"\n[bold]Not imported[/] ({len(plan.ignored)}):")
            for v in plan.ignored[:IGNORED_SHOWN]:
                who = v.email or v.account_name or v.dn
                console.print(f"  [dim]{escape(v.directory)}[/] {escape(who)}: {escape(v.reason)}")
            if len(plan.ignored) > IGNORED_SHOWN:
                console.print(f"  … and {len(plan.ignored) - IGNORED_SHOWN} more (all of them: --format json)")
        console.print()
        summary = ", ".join(f"{n} {name.replace('.', ' ')}" for name, n in plan.summary.items()) or "nothing to do"
        console.print(f"[bold]Summary:[/] {summary}.")
        if plan.review is not None:
            effect = ", ".join(f"{n} {k.replace('.', ' ')}" for k, n in plan.review.effect.items()) or "nothing"
            pending = count_words([c for c in plan.changes if c.cause != "policy"]) or "nothing"
            console.print(f"The edit causes: {effect}; pending regardless: {pending}.")
        for check in plan.safety:
            mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
            allowed = "no limit" if check.allowed is None else check.allowed
            console.print(f"Safety: {check.noun} {check.planned} / allowed {allowed} {mark} ({escape(limit_rule(check))})")
        if plan.refused:
            over = "; ".join(limit_reason(c) for c in plan.safety if not c.ok)
            console.print(f"[bold red]Apply will refuse this plan: {escape(over)}. "
                          "It goes ahead only if forced: apply --force --reason \"...\".[/]")
        console.print(f"[dim]plan digest: {plan_digest(plan)}[/]")
        return buffer.getvalue()
