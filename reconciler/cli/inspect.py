"""preview (the vendors' "Test" button) and explain (why one person is in or out)."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ..changes import membership_parts
from ..errors import ReconcilerError
from ..model import normalise_dn
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


@app.command()
def explain(
    policy: Path = PolicyArg,
    who: str = typer.Argument(..., help="An email, account name or DN.", show_default=False),
) -> None:
    """Why one person is in or out, which rule placed them, and what the store holds for them."""
    from ..pipeline import plan_policy

    if not who.strip():  # an empty needle would match everyone without an email
        raise typer.BadParameter("give an email, account name or DN, not an empty string", param_hint="WHO")
    loaded = load(policy)
    planned = plan_policy(loaded)
    needle = who.strip().lower()
    dn = normalise_dn(who) if "=" in who else None

    def matches(email, account, entry_dn) -> bool:
        return needle in {(email or "").lower(), (account or "").lower()} or (dn is not None and normalise_dn(entry_dn or "") == dn)

    verdicts = [v for v in planned.desired.verdicts if matches(v.email, v.account_name, v.dn)]
    store_users = [u for u in planned.store_state.users.values() if u.email.lower() == needle
                   or any(str(l) in {f"{v.directory}:{v.anchor}" for v in verdicts} for l in u.links)]
    if not verdicts and not store_users:
        raise ReconcilerError(
            f"{who}: not found in any directory's scope nor in the store; the search bases and filters of "
            f"{', '.join(d.name for d in loaded.directories)} do not reach them (check the spelling, or run preview)"
        )
    console = _console()
    for v in verdicts:
        console.print(f"[bold]{escape(v.directory)}[/] {escape(v.dn)}")
        console.print(f"  account: {escape(v.account_name or '—')}   email: {escape(v.email or '—')}")
        console.print(f"  {v.verdict}: {escape(v.reason)}")
        user = planned.desired.users.get(v.user_key or "")
        if user is not None:
            console.print(f"  placed by {escape(user.placed_by)} → team {escape(user.team or '—')}")
            if user.memberships:
                names = ", ".join(planned.desired.teams[k].name for k in sorted(user.memberships))
                console.print(f"  member of: {escape(names)}")
        for held in (i for i in planned.plan.ignored if v.verdict == "imported" and i.user_key == v.user_key):
            console.print(f"  not applied: {escape(held.reason)}")  # the store cannot take them (a conflict)
    for u in store_users:
        console.print(f"[bold]store[/] {escape(u.key)} ({'managed' if u.managed else 'unmanaged'}, {u.status})")
        console.print(f"  email: {escape(u.email)}   name: {escape(u.display_name)}   team: {escape(u.team or '—')}")
    keys = {v.user_key for v in verdicts} | {u.key for u in store_users}
    pending = [c for c in planned.plan.changes
               if c.key in keys or (c.kind == "membership" and membership_parts(c.key)[0] in keys)]
    console.print("[bold]plan[/]: " + ("no change for them" if not pending else ""))
    for c in pending:
        console.print(f"  {c.action} {c.kind}: {escape(c.reason)}")
