"""`reconciler check`: one OK/FAIL line per step, per directory, then the store."""
from __future__ import annotations

import os

import typer

from ..policy.model import Policy


def state_folder_problem(folder: str) -> str | None:
    """Why the store's local state (SQLite file, SCIM side file) could not be kept in `folder`, or None.
    The folder need not exist yet (the first apply makes it); its nearest existing parent must be writable."""
    existing = folder
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        return f"{existing} is not a folder; store.state_dir (or store.path) must name a folder for the store's state"
    if not os.access(existing, os.W_OK | os.X_OK):
        return (f"{existing} is not writable by this user; the store's state (database, lock, history) must be kept "
                "there: fix its permissions or point store.state_dir elsewhere")
    return None


def state_file_problem(file: str) -> str | None:
    """Why the store's existing state file could not be written, or None (a file not there yet is made by apply)."""
    if os.path.exists(file) and not os.access(file, os.W_OK):
        return f"{file} is read-only for this user; apply needs write access to it: fix its permissions"
    return None


def run_checks(policy: Policy) -> bool:
    from ..directory import check_directory
    from ..store import open_store

    from ..pipeline import require_secrets

    require_secrets(policy)
    ok = True
    for directory in policy.directories:
        for step in check_directory(directory):
            ok &= step.ok
            typer.echo(f"{'OK  ' if step.ok else 'FAIL'} {directory.name}: {step.name}: {step.detail}")
    where = policy.store.file()
    if where is not None:
        problem = state_folder_problem(os.path.dirname(where)) or state_file_problem(where)
        ok &= problem is None
        typer.echo(f"FAIL store: {policy.store.kind}: {problem}" if problem else
                   f"OK   store: {policy.store.kind}: {os.path.dirname(where)} is writable")
    try:
        store = open_store(policy.store)
        try:
            state = store.read()
            read_only = getattr(store, "read_only", False)  # a store opened read-only says so (SqliteStore)
        finally:
            store.close()
        how = "opened read-only (plan, history and explain can read it; apply cannot write it)" if read_only else "opened"
        typer.echo(f"OK   store: {policy.store.kind}: {how}, {sum(u.managed for u in state.users.values())} managed users")
    except Exception as error:  # noqa: BLE001  any failure to open the store is what check reports
        ok = False
        typer.echo(f"FAIL store: {policy.store.kind}: {error}")
    return ok
