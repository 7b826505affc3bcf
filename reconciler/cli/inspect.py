"""preview (the vendors' "Test" button) and explain (why one person is in or out)."""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from . import app
from .console import console as _console, start_progress
from .options import PolicyArg, QuietOption, load


class Only(str, Enum):
    imported = "imported"
    ignored = "ignored"
    disabled = "disabled"


@app.command()
def preview(
    policy: Path = PolicyArg,
    limit: int = typer.Option(15, "--limit", min=1, help="How many entries to show per directory."),
    only: Optional[Only] = typer.Option(None, "--only", help="Show only the entries imported, ignored or disabled."),
    quiet: bool = QuietOption,
) -> None:
    """Per directory: entries read, the first N, and whether each would be imported or ignored, and why,
    with their display name and team."""
    from ..desired import build_desired_state
    from ..desired.templates import render_template
    from ..directory import read_all
    from ..pipeline import require_secrets
    from ..progress import current

    start_progress(quiet)
    loaded = load(policy)
    require_secrets(loaded)
    reads = read_all(loaded.directories)
    current().stage("building the desired state")
    desired = build_desired_state(loaded, reads)
    current().clear()
    teams = _TeamPaths(desired.teams)
    console = _console()
    for directory, read in zip(loaded.directories, reads):
        counts = desired.directories[directory.name]
        rows = [v for v in desired.verdicts if v.directory == directory.name and (only is None or v.verdict == only.value)]
        shown = rows[:limit]
        which = f" {only.value}" if only is not None else ""
        console.print(
            f"[bold]{escape(directory.name)}[/]: {counts['read']} entries read, {counts['imported']} would be imported, "
            f"{counts['ignored']} ignored, {counts['disabled']} disabled; showing the first {len(shown)}{which}"
        )
        # the entries not imported are named as the mapping would name them; those out of scope were not read whole
        wanted = {v.dn for v in shown if v.user_key is None}
        entries = {e.dn: e for e in read.users if e.dn in wanted} if wanted else {}
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("account", "name", "email", "team", "verdict", "reason"):
            # on a narrow terminal an account or email folds onto a second line rather than losing its end
            table.add_column(column, overflow="fold" if column in ("account", "email") else "ellipsis")
        for v in shown:
            user = desired.users.get(v.user_key) if v.user_key is not None else None
            if user is not None:
                name, team = user.display_name, teams.path(user.team)
            else:
                entry = entries.get(v.dn)
                name = (render_template(directory.mapping.display_name, entry) or entry.account_name) if entry else None
                team = None
            colour = "green" if v.verdict == "imported" else "yellow"
            table.add_row(escape(v.account_name or v.dn), escape(name or "—"), escape(v.email or "—"),
                          escape(team or "—"), f"[{colour}]{v.verdict}[/]", escape(v.reason))
        console.print(table)
        console.print()


class _TeamPaths:
    """A team key as its path of names from the root, 'Example Corp / Sales' (as plans spell it)."""

    def __init__(self, teams):
        self.teams = teams
        self.known: dict[str, str] = {}

    def path(self, key: str | None) -> str | None:
        if key is None:
            return None
        if key not in self.known:
            names: list[str] = []
            seen: set[str] = set()
            at: str | None = key
            while at is not None and at not in seen:  # parents up to the root; `seen` stops a cycle
                seen.add(at)
                team = self.teams.get(at)
                if team is None:
                    names.append(at)
                    break
                names.append(team.name)
                at = team.parent
            self.known[key] = " / ".join(reversed(names))
        return self.known[key]


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
    planned = plan_policy(loaded, keep_states=False)  # explained, never applied
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
