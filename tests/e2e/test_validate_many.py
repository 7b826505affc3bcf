"""`reconciler validate` on several files at once, as pre-commit and CI call it:
every problem of every file as FILE:LINE:COL, GitHub annotations in Actions, one
line for a file that cannot be read, and the pre-commit hook's own entry."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.policy import validate_policy
from tests.e2e.conftest import ROOT, Result, reconciler_executable

BAD = ROOT / "tests/unit/policies/bad"
# An unknown key whose name holds ',' ':' '%' and a line break: the message quotes it.
AWKWARD_KEY_POLICY = """version: 1
directories:
  corp:
    kind: ldif
    path: corp.ldif
    "a,b:%c\\nd": 1
"""


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    environment.update(env or {})
    done = subprocess.run([reconciler_executable(), *args], cwd=cwd, capture_output=True, text=True,
                          env=environment, timeout=120)
    return Result(done.returncode, done.stdout, done.stderr)


def expected_lines(path: str) -> list[str]:
    """What validate must print for one file: its problems as the policy package finds them."""
    problems = validate_policy(path)
    assert problems, path
    return [str(p).replace("\n", "\\n") for p in problems]


@pytest.fixture
def folder(company, monkeypatch) -> Path:
    """The quickstart company (two good policies) plus two bad ones, addressed by relative paths."""
    shutil.copy(company.policy, company.folder / "team.policy.yaml")
    (company.folder / "policies").mkdir()
    for name in ("several.yaml", "bad_filter.yaml"):
        shutil.copy(BAD / name, company.folder / "policies" / name)
    monkeypatch.chdir(company.folder)  # so validate_policy sees the same relative paths as the CLI
    return company.folder


def test_two_good_and_two_bad_files_report_everything_and_exit_1(folder):
    bad = ["policies/several.yaml", "policies/bad_filter.yaml"]
    result = run("validate", "policy.yaml", bad[0], "team.policy.yaml", bad[1], cwd=folder)
    assert result.code == 1
    assert result.out.splitlines() == [
        "policy.yaml: valid (2 directories: corp, emea; store: sqlite)",
        "team.policy.yaml: valid (2 directories: corp, emea; store: sqlite)",
    ]
    lines = result.err.splitlines()
    assert lines == expected_lines(bad[0]) + expected_lines(bad[1])  # the second bad file is not skipped
    assert len(expected_lines(bad[0])) == 8 and len(expected_lines(bad[1])) == 2
    assert all(re.match(r"^policies/[a-z_]+\.yaml:\d+:\d+: .+ \([a-z_.\[\]0-9]+\)$", line) for line in lines), lines
    assert "Traceback" not in result.err and "::error" not in result.out  # annotations only in GitHub Actions


def test_all_good_files_exit_0(folder):
    result = run("validate", "policy.yaml", "team.policy.yaml", cwd=folder)
    assert result.code == 0 and result.err == ""
    assert len(result.out.splitlines()) == 2


def test_github_actions_annotations_are_escaped_and_relative_to_the_workspace(folder, tmp_path):
    awkward = folder / "policies" / "bad,name:1.yaml"
    awkward.write_text(AWKWARD_KEY_POLICY)
    outside = tmp_path / "outside.yaml"
    shutil.copy(BAD / "bad_filter.yaml", outside)
    result = run("validate", str(awkward), "policy.yaml", str(outside), "missing.yaml", cwd=folder,
                 env={"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(folder)})
    assert result.code == 1 and "Traceback" not in result.err
    commands = [line for line in result.out.splitlines() if line.startswith("::")]
    assert [line for line in result.out.splitlines() if line not in commands] == [
        "policy.yaml: valid (2 directories: corp, emea; store: sqlite)"]

    # One workflow command per problem, and the stderr lines stay, one per problem.
    problems = [*validate_policy(str(awkward)), *validate_policy(str(outside))]
    assert len(commands) == len(problems) + 1  # + the missing file
    assert len(result.err.splitlines()) == len(problems) + 1
    assert "missing.yaml: policy file not found; check the path" in result.err.splitlines()

    # The unknown key's message holds ',' ':' '%' and a line break: escaped as @actions/core does.
    key = next(c for c in commands if "unknown key" in c)
    assert key.startswith("::error file=policies/bad%2Cname%3A1.yaml,line=6,col=5,title=reconciler validate::"
                          "unknown key 'a,b:%25c%0Ad'; allowed here: ")
    assert key.endswith(" (directories.corp.a,b:%25c%0Ad)")
    message = key.split("::", 2)[2]
    unescaped = message.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")
    assert unescaped.startswith("unknown key 'a,b:%c\nd'; allowed here: ")
    # and on stderr the same problem is still one line
    assert any(line.startswith(f"{awkward}:6:5: unknown key 'a,b:%c\\nd'") for line in result.err.splitlines())

    # Every problem with a position has line= and col=; a file outside the workspace keeps its path.
    pattern = re.compile(r"^::error file=([^,:]+),line=(\d+),col=(\d+),title=reconciler validate::(.+)$")
    positioned = [pattern.match(c) for c in commands if "missing.yaml" not in c]
    assert all(positioned), commands
    escaped_outside = str(outside).replace("%", "%25").replace(":", "%3A").replace(",", "%2C")
    assert {m.group(1) for m in positioned} == {"policies/bad%2Cname%3A1.yaml", escaped_outside}
    assert sorted((int(m.group(2)), int(m.group(3))) for m in positioned) == sorted(
        (p.location.line, p.location.column) for p in problems)

    # A problem without a line number: file= only.
    assert "::error file=missing.yaml,title=reconciler validate::policy file not found; check the path" in commands


def test_a_missing_file_and_a_binary_file_are_one_line_each(folder):
    (folder / "binary.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00binary")
    result = run("validate", "missing.yaml", "binary.yaml", "policy.yaml", cwd=folder)
    assert result.code == 1
    assert result.err.splitlines() == [
        "missing.yaml: policy file not found; check the path",
        "binary.yaml:1:1: the file is not UTF-8 text",
    ]
    assert result.out.splitlines() == ["policy.yaml: valid (2 directories: corp, emea; store: sqlite)"]


def test_a_folder_is_one_line(folder):
    result = run("validate", "policies", cwd=folder)
    assert result.code == 1 and result.err.splitlines() == ["policies: is a folder, not a policy file"]


def test_no_file_is_a_usage_error(folder):
    result = run("validate", cwd=folder)
    assert result.code == 64
    assert "usage error" in result.err and "Traceback" not in result.err


# ── the pre-commit hook ──

def hook() -> dict:
    hooks = YAML(typ="safe").load((ROOT / ".pre-commit-hooks.yaml").read_text())
    return next(h for h in hooks if h["id"] == "reconciler-validate")


def test_the_hook_takes_several_files_and_matches_the_policy_names():
    found = hook()
    assert found["pass_filenames"] is True
    assert "several" in found["description"]
    files = re.compile(found["files"])  # pre-commit uses re.search on the repository-relative path
    for path in ("policy.yaml", "policy.yml", "corp.policy.yaml", "sites/emea/policy.yaml", "policies/corp.yaml",
                 "policies/emea.yml", "infra/policies/corp.yaml"):
        assert files.search(path), path
    for path in ("policy.yaml.bak", "other.yaml", "mypolicy.yaml", "policies/sub/corp.yaml", "policies/README.md",
                 ".github/workflows/plan.yml"):
        assert not files.search(path), path


def test_the_hook_entry_validates_several_files_as_pre_commit_calls_it(folder):
    found = hook()
    entry = shlex.split(found["entry"])
    assert entry[0] == "reconciler"
    names = ["policy.yaml", "team.policy.yaml", "policies/several.yaml", "policies/bad_filter.yaml"]
    files = re.compile(found["files"])
    assert all(files.search(name) for name in names)
    # pre-commit runs `entry [args] file...` from the repository root
    done = subprocess.run([reconciler_executable(), *entry[1:], *found.get("args", []), *names], cwd=folder,
                          capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")})
    assert done.returncode == 1
    assert done.stderr.splitlines() == expected_lines("policies/several.yaml") + expected_lines("policies/bad_filter.yaml")
    assert done.stdout.count(": valid (") == 2 and "Traceback" not in done.stderr
    good = subprocess.run([reconciler_executable(), *entry[1:], *found.get("args", []), "policy.yaml", "team.policy.yaml"],
                          cwd=folder, capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr
