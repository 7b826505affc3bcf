from __future__ import annotations

from pathlib import Path

import typer

PolicyArg = typer.Argument(..., help="The sync policy (YAML).", show_default=False, metavar="POLICY")


def load(path: Path):
    from ..policy import load_policy

    return load_policy(str(path))
