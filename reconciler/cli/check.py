"""`reconciler check`: one OK/FAIL line per step, per directory, then the store."""
from __future__ import annotations

import typer

from ..policy.model import Policy


def run_checks(policy: Policy) -> bool:
    from ..directory.check import check_directory
    from ..store import open_store

    from ..pipeline import require_secrets

    require_secrets(policy)
    ok = True
    for directory in policy.directories:
        for step in check_directory(directory):
            ok &= step.ok
            typer.echo(f"{'OK  ' if step.ok else 'FAIL'} {directory.name}: {step.name}: {step.detail}")
    try:
        store = open_store(policy.store)
        try:
            state = store.read()
        finally:
            store.close()
        typer.echo(f"OK   store: {policy.store.kind}: opened, {sum(u.managed for u in state.users.values())} managed users")
    except Exception as error:  # noqa: BLE001  any failure to open the store is what check reports
        ok = False
        typer.echo(f"FAIL store: {policy.store.kind}: {error}")
    return ok
