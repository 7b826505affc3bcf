"""The CI files users copy are valid for their CI systems and call reconciler with options that exist.

actionlint itself is not installable here (its wheel downloads a binary), so the
workflows are checked against SchemaStore's schemas vendored by check-jsonschema,
and every reconciler command line in them is parsed by our own CLI.
"""
import json
import re
import shlex
from importlib import resources
from pathlib import Path

import pytest
import typer
from jsonschema import Draft7Validator
from ruamel.yaml import YAML

from reconciler.cli import UsageError, app

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted([*ROOT.glob(".github/workflows/*.yml"), *ROOT.glob("examples/gitops/.github/workflows/*.yml")])
ACTIONS = sorted(ROOT.glob("examples/gitops/.github/actions/*/action.yml"))


def vendored_schema(name: str) -> dict:
    return json.loads(resources.files("check_jsonschema.builtin_schemas.vendor").joinpath(name).read_text())


def load(path: Path):
    return YAML(typ="safe").load(path.read_text())


def test_there_are_workflows_to_check():
    names = {p.name for p in WORKFLOWS}
    assert {"ci.yml", "plan.yml", "apply.yml", "drift.yml"} <= names and ACTIONS


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: str(p.relative_to(ROOT)))
def test_workflow_is_valid(path):
    errors = sorted(Draft7Validator(vendored_schema("github-workflows.json")).iter_errors(load(path)), key=str)
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_composite_action_is_valid(path):
    errors = list(Draft7Validator(vendored_schema("github-actions.json")).iter_errors(load(path)))
    assert not errors, "\n".join(e.message for e in errors)


def test_gitlab_example_is_valid():
    document = load(ROOT / "examples/scheduled/gitlab-ci.yml")
    errors = list(Draft7Validator(vendored_schema("gitlab-ci.json")).iter_errors(document))
    assert not errors, "\n".join(e.message for e in errors)


def reconciler_command_lines() -> list[tuple[str, str]]:
    found = []
    for path in [*WORKFLOWS, ROOT / "examples/scheduled/gitlab-ci.yml", ROOT / "examples/scheduled/reconciler-sync.service",
                 ROOT / "examples/scheduled/crontab"]:
        text = path.read_text()
        for args in re.findall(r"^\s*args: (.+)$", text, re.M):
            found.append((path.name, args))
        for line in re.findall(r"(?:^\s*(?:- )?|&& |then |bin/|\.lock )reconciler (\w[^\n>;&|]*)", text, re.M):
            if line.split()[0] in {c.name for c in typer.main.get_command(app).commands.values()}:
                found.append((path.name, line))
    return found


@pytest.mark.parametrize("where, line", reconciler_command_lines())
def test_every_reconciler_command_line_in_the_examples_parses(where, line):
    words = [w for w in shlex.split(line.replace("${{ steps.reviewed.outputs.result }}", "sha256:x"))]
    command = typer.main.get_command(app)
    try:
        parent = command.make_context("reconciler", list(words))
        name, sub, rest = command.resolve_command(parent, [*parent._protected_args, *parent.args])
        sub.make_context(name, rest, parent=parent)
    except UsageError as error:
        pytest.fail(f"{where}: reconciler {line}: {error.format_message()}")
