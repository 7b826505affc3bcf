from __future__ import annotations

from pathlib import Path

import typer

PolicyArg = typer.Argument(..., help="The sync policy (YAML).", show_default=False, metavar="POLICY")
# The commands that read the directories show progress on a terminal (stderr), and take --quiet alike.
QuietOption = typer.Option(False, "--quiet", "-q", help="No progress on stderr (it shows only on a terminal anyway).")
NoPagerOption = typer.Option(False, "--no-pager", help="Print a long plan straight to the terminal, not through $RECONCILER_PAGER, $PAGER or less.")


def load(path: Path):
    from ..policy import load_policy

    return load_policy(str(path))
