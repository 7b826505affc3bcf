"""validate: schema and semantic checks of one or more policy files.

pre-commit hands a hook every matching file at once, so `validate` takes several
and checks them all: a bad file does not hide the problems of the next one. Each
problem is one line on stderr, FILE:LINE:COL: message (dotted.path); in GitHub
Actions each is also a workflow command on stdout, so it shows as an annotation
on the line of the pull request's diff.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from ..errors import ExitCode, Location, PolicyError, Problem, ReconcilerError
from . import app

ANNOTATION_TITLE = "reconciler validate"


@app.command()
def validate(
    policies: list[Path] = typer.Argument(..., help="One or more sync policies (YAML).", show_default=False,
                                          metavar="POLICY..."),
) -> None:
    """Schema and semantic checks; every problem as FILE:LINE:COL: message. Several files at once (pre-commit)."""
    annotate = os.environ.get("GITHUB_ACTIONS") == "true"
    workspace = os.environ.get("GITHUB_WORKSPACE") or None
    failed = False
    for policy in policies:
        problems = _check(policy)
        if not problems:
            continue
        failed = True
        for problem in problems:
            # One line per problem, even when a message quotes a key with a line break in it.
            print(_one_line(str(problem)), file=sys.stderr)
            if annotate:
                typer.echo(workflow_command(problem, workspace))
    if failed:
        raise typer.Exit(ExitCode.ERROR)


def _check(policy: Path) -> list[Problem]:
    """The problems of one policy file; prints the valid line when there are none."""
    from ..policy import load_policy

    try:
        loaded = load_policy(str(policy))
    except PolicyError as error:
        return error.problems
    except ReconcilerError as error:  # cannot be read: missing, a folder, no permission
        # The message already names the file; keep it as one problem without a position.
        prefix = f"{policy}: "
        message = error.message[len(prefix):] if error.location is None and error.message.startswith(prefix) else error.message
        return [Problem(error.location or Location(str(policy)), "", message)]
    names = ", ".join(d.name for d in loaded.directories)
    count = len(loaded.directories)
    typer.echo(f"{policy}: valid ({count} director{'y' if count == 1 else 'ies'}: {names}; store: {loaded.store.kind})")
    return []


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


# GitHub's workflow commands, escaped as @actions/core does (toolkit packages/core/src/command.ts).
def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(problem: Problem, workspace: str | None) -> str:
    """`::error file=F,line=L,col=C,title=...::message (path)`; file= alone when the problem has no line."""
    properties = {"file": _annotation_path(problem.location.file, workspace)}
    if problem.location.line:
        properties["line"] = str(problem.location.line)
        properties["col"] = str(problem.location.column or 1)
    properties["title"] = ANNOTATION_TITLE
    message = problem.message + (f" ({problem.path})" if problem.path else "")
    joined = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    return f"::error {joined}::{escape_data(message)}"


def _annotation_path(file: str, workspace: str | None) -> str:
    """Annotations attach to files by their path in the repository: relative to
    GITHUB_WORKSPACE when the file is inside it, else as given."""
    if not workspace:
        return file
    for resolve in (os.path.abspath, os.path.realpath):
        root, full = resolve(workspace), resolve(file)
        try:
            if os.path.commonpath([root, full]) == root:
                return Path(os.path.relpath(full, root)).as_posix()
        except ValueError:  # different drives on Windows
            continue
    return file
