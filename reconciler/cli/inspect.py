"""preview (the vendors' "Test" button) and explain (why one person is in or out)."""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from . import app
from .console import console as _console
from .options import PolicyArg, load


@app.command()
def preview(
    policy: Path = PolicyArg,
    limit: int = typer.Option(15, "--limit", min=1, help="How many entries to show per directory."),
) -> None:
    """Per directory: entries read, the first N, and whether each would be imported or ignored, and why."""
    from ..desired import build_desired_state
    from ..directory import read_all

    from ..pipeline import require_secrets

    loaded = load(policy)
    require_secrets(loaded)
    desired = build_desired_state(loaded, read_all(loaded.directories))
    console = _console()
    for directory in loaded.directories:
        counts = desired.directories[directory.name]
        rows = [v for v in desired.verdicts if v.directory == directory.name]
        console.print(
            f"[bold]{escape(directory.name)}[/]: {counts['read']} entries read, {counts['imported']} would be imported, "
            f"{counts['ignored']} ignored, {counts['disabled']} disabled; showing the first {min(limit, len(rows))}"
        )
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("account", "email", "verdict", "reason"):
            table.add_column(column)
        for v in rows[:limit]:
            colour = "green" if v.verdict == "imported" else "yellow"
            table.add_row(escape(v.account_name or v.dn), escape(v.email or "—"), f"[{colour}]{v.verdict}[/]", escape(v.reason))
        console.print(table)
        console.print()


class ExplainFormat(str, Enum):
    text = "text"
    json = "json"


_LABELS = {"search_base": "search base", "filter": "filter", "member_of": "member_of", "disabled": "disabled",
           "email": "email", "conflict": "conflict", "manual": "manual"}


@app.command()
def explain(
    policy: Path = PolicyArg,
    who: str = typer.Argument(..., show_default=False, help=(
        "An email (mail, proxyAddresses, userPrincipalName), DOMAIN\\account, an account name, a DN or a display name.")),
    format: ExplainFormat = typer.Option(ExplainFormat.text, "--format", help="text, or json: the same facts, stable keys."),
) -> None:
    """Why one person is in or out: each condition (search bases, each filter clause, member_of, disabled, email,
    conflicts), which rule placed them, what the store holds for them and what the plan does to them."""
    from ..explain import NotFound, explain as explain_who
    from ..pipeline import plan_policy

    if not who.strip():  # an empty needle would match everyone without an email
        raise typer.BadParameter("give an email, account name or DN, not an empty string", param_hint="WHO")
    loaded = load(policy)
    planned = plan_policy(loaded)
    try:
        result = explain_who(planned, who)
    except NotFound as missing:
        if format == ExplainFormat.json:
            typer.echo(json.dumps(missing.explanation.to_json(), indent=2, ensure_ascii=False))
        raise
    if format == ExplainFormat.json:
        typer.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
        return
    console = _console()
    for entry in result.entries:
        _print_entry(console, entry, brief=result.brief)
    if result.brief:
        console.print(f"{len(result.entries)} entries have this display name; ask by email, account name or DN "
                      f"for the full explanation of one")
    for directory in result.truncated:
        console.print(f"[yellow]{escape(directory)}: more entries answer to this name than the lookup reads; "
                      f"ask by DN or email[/]")
    if not result.entries:  # only the store knows them (a leaver whose entry is gone)
        console.print(f"[bold]directories[/]: {escape(result.searched)}")
    for u in result.store_users:
        console.print(f"[bold]store[/] {escape(u.key)} ({'managed' if u.managed else 'unmanaged'}, {u.status})")
        console.print(f"  email: {escape(u.email)}   name: {escape(u.display_name)}   team: {escape(u.team or '—')}")
    console.print("[bold]plan[/]: " + ("no change for them" if not result.pending else ""))
    for c in result.pending:
        console.print(f"  {c.action} {c.kind}: {escape(c.reason)}")


def _mark(ok: bool | None) -> str:
    return "[green]✓[/]" if ok else ("[red]✗[/]" if ok is False else "[dim]–[/]")


def _print_entry(console, entry, brief: bool) -> None:
    head = f"[bold]{escape(entry.directory)}[/] {escape(entry.dn)}"
    if brief:
        why = f": {escape('; '.join(entry.excluded_by))}" if entry.excluded_by and entry.verdict != "imported" else ""
        console.print(f"{head}  ({escape(entry.account_name or '—')}, {escape(entry.email or 'no email')}) "
                      f"{escape(entry.verdict)}{why}")
        return
    console.print(f"{head}  (found by {escape(', '.join(entry.matched_by))} in {escape(entry.source)})")
    console.print(f"  account: {escape(entry.account_name or '—')}   email: {escape(entry.email or '—')}   "
                  f"name: {escape(entry.display_name or '—')}")
    for check in entry.checks:
        console.print(f"  {_mark(check.ok)} {_LABELS[check.name]}: {escape(check.summary)}")
        if check.clause is not None and check.clause.children:
            _print_clauses(console, check.clause, check.facts.get("values", {}), depth=0)
    console.print(f"  {escape(entry.verdict)}: {escape(entry.reason)}")
    user = entry.user
    if user is not None:
        console.print(f"  placed by {escape(user.placed_by)} → team {escape(user.team or '—')}")
        if entry.membership_names:
            console.print(f"  member of: {escape(', '.join(entry.membership_names))}")
    for reason in entry.not_applied:
        console.print(f"  not applied: {escape(reason)}")  # the store cannot take them (a conflict)


def _print_clauses(console, clause, values: dict, depth: int) -> None:
    for child in clause.children:
        tested = child if child.operator != "!" else child.children[0]
        shown = ""
        if not tested.children and tested.attribute:
            seen = values.get(tested.attribute.lower()) or []
            listed = ", ".join(seen[:5]) + (f", … ({len(seen)} values)" if len(seen) > 5 else "")
            shown = f"   {tested.attribute}: {listed or '(none)'}"
        console.print(f"      {'  ' * depth}{_mark(child.matched)} {escape(child.text)}{escape(shown)}")
        if child.operator in ("&", "|"):
            _print_clauses(console, child, values, depth + 1)
