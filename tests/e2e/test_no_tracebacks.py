"""Every command, through the console script, on unwritable and malformed inputs: a one-line error (or a
warning) and a documented exit code, never a traceback.

Each case fails on "Traceback" in stderr, an exit code outside {0, 1, 2, 3, 64}, or more than a few lines
of stderr for an error. The policy cases run every command that reads a policy; the rest aim at one
command's own inputs and outputs (a saved plan, --out, GITHUB_STEP_SUMMARY, the store folder).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Company, Result, reconciler_executable
from tests.unit.test_policy_limits import alias_bomb

DOCUMENTED = {0, 1, 2, 3, 64}
FEW = 3  # lines of stderr an error may take: the message and, at most, a note or two


def assert_clean(result: Result, *, error: bool) -> None:
    said = f"exit {result.code}\nstderr:\n{result.err}\nstdout (start):\n{result.out[:2000]}"
    assert "Traceback" not in result.err, said
    assert result.code in DOCUMENTED, said
    if error:
        assert result.code != 0, said
        lines = result.err.strip().splitlines()
        assert 1 <= len(lines) <= FEW, said


# --- a policy that cannot be read or is not a policy: every command that reads one --------------------

def _missing(company: Company) -> str:
    return "absent.yaml"


def _folder(company: Company) -> str:
    (company.folder / "folder.yaml").mkdir()
    return "folder.yaml"


def _not_utf8(company: Company) -> str:
    # the quickstart with one Latin-1 byte in a team name, as an editor set to Latin-1 would save it
    (company.folder / "latin1.yaml").write_bytes(company.policy.read_bytes().replace(b"root: Example Corp", b"root: Ex\xe4mple Corp"))
    return "latin1.yaml"


def _empty(company: Company) -> str:
    (company.folder / "empty.yaml").write_bytes(b"")
    return "empty.yaml"


def _alias_bomb(company: Company) -> str:
    (company.folder / "bomb.yaml").write_text(alias_bomb(10))
    return "bomb.yaml"


POLICIES = {"missing": _missing, "folder": _folder, "non-UTF-8": _not_utf8, "empty": _empty, "alias bomb": _alias_bomb}

COMMANDS = {  # how each command is given the POLICY
    "validate": lambda policy: ["validate", policy],
    "plan": lambda policy: ["plan", policy],
    "apply": lambda policy: ["apply", policy, "--auto-approve"],
    "apply --plan": lambda policy: ["apply", policy, "--plan", "saved.json"],
    "preview": lambda policy: ["preview", policy],
    "explain": lambda policy: ["explain", policy, "samuel.osei@corp.example.com"],
    "check": lambda policy: ["check", policy],
    "history": lambda policy: ["history", policy],
}


@pytest.fixture(scope="module")
def bad_policy_runs(tmp_path_factory) -> dict[tuple[str, str], tuple[Result, str]]:
    """Every command on every bad policy, run side by side in one company copy (none of them gets as far
    as writing anything), so that the 40 runs take the time of a few."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.e2e.conftest import QUICKSTART

    folder = tmp_path_factory.mktemp("bad-policies") / "company"
    shutil.copytree(QUICKSTART, folder, ignore=shutil.ignore_patterns(".reconciler", "*.py", "__pycache__"))
    company = Company(folder)
    made = company.run("plan", "policy.yaml", "--out", "saved.json")  # a real saved plan, for apply --plan
    assert made.code == 0, made.err
    policies = {case: make(company) for case, make in POLICIES.items()}
    runs = {(case, command): COMMANDS[command](policy) for case, policy in policies.items() for command in COMMANDS}
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = dict(zip(runs, pool.map(lambda args: company.run(*args), runs.values())))
    assert not (folder / ".reconciler").exists()  # nothing was applied
    return {key: (result, policies[key[0]]) for key, result in results.items()}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", POLICIES)
def test_a_bad_policy_is_one_line(bad_policy_runs, case, command):
    result, policy = bad_policy_runs[case, command]
    assert_clean(result, error=True)
    assert result.code == 1
    said = result.err + result.out
    assert policy in said
    if case == "alias bomb":
        assert "when its aliases are expanded" in said


# --- a saved plan that cannot be read or is not a plan -------------------------------------------------

PLAN_FILES = {
    "missing": None,
    "folder": "folder",
    "non-UTF-8": b'{"format": "reconciler-plan", "note": "\xe9t\xe9"}\n',
    "malformed JSON": b'{"format": "reconciler-plan", "changes": [\n',
    "JSON but not a plan": b"[1, 2, 3]\n",
    "empty": b"",
}


@pytest.mark.parametrize("case", PLAN_FILES)
def test_a_bad_saved_plan_is_one_line(company, case):
    content = PLAN_FILES[case]
    if content == "folder":
        (company.folder / "plan.json").mkdir()
    elif content is not None:
        (company.folder / "plan.json").write_bytes(content)
    result = company.run("apply", "--plan", "plan.json", "policy.yaml")
    assert_clean(result, error=True)
    assert result.code in (1, 3)
    assert "plan.json" in result.err


# --- what plan writes: --out and the CI step summary -----------------------------------------------------

@pytest.mark.parametrize("out", ["folder", "/dev/full"])
def test_plan_out_that_cannot_be_written_is_one_line(company, out):
    if out == "folder":
        (company.folder / "folder").mkdir()
    result = company.run("plan", "policy.yaml", "--out", out)
    assert_clean(result, error=True)
    assert result.code == 1
    reason = "Is a directory" if out == "folder" else "No space left on device"
    assert result.err.strip() == f"cannot write the plan to {out}: {reason}"


@pytest.mark.parametrize("detailed", [False, True])
@pytest.mark.parametrize("summary", ["folder", "/dev/full"])
def test_a_step_summary_that_cannot_be_written_warns_and_keeps_the_exit_code(company, summary, detailed):
    if summary == "folder":
        (company.folder / "summary").mkdir()
        summary = str(company.folder / "summary")
    extra = ["--detailed-exitcode"] if detailed else []
    result = company.run("plan", "policy.yaml", *extra, env={"GITHUB_STEP_SUMMARY": summary})
    assert_clean(result, error=False)
    assert result.code == (2 if detailed else 0)  # the first plan of the quickstart has changes
    assert result.err.strip().startswith(f"warning: cannot write the step summary to {summary}")
    assert len(result.err.strip().splitlines()) == 1
    assert "Example Corp" in result.out  # the plan itself was shown


# --- explain's argument ---------------------------------------------------------------------------------

@pytest.mark.parametrize("who", ["", "   "])
def test_explain_an_empty_name_is_a_usage_error(company, who):
    result = company.run("explain", "policy.yaml", who)
    assert_clean(result, error=True)
    assert result.code == 64
    assert result.err.startswith("usage error: ")
    assert result.out == ""  # not everyone without an email


# --- apply into a store folder it cannot write ----------------------------------------------------------

def run_without_root_powers(company: Company, *args: str) -> Result:
    """Run the command so that file permissions hold even for root (which ignores them): without the
    capabilities that override them."""
    command = [reconciler_executable(), *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: a read-only folder cannot be made read-only")
        drop = "-dac_override,-dac_read_search,-fowner"
        command = [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}", *command]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    done = subprocess.run(command, cwd=company.folder, capture_output=True, text=True, env=environment, timeout=120)
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("store", ["existing", "not yet created"])
def test_apply_into_a_read_only_store_folder_is_one_line(request, store):
    company = request.getfixturevalue("synced" if store == "existing" else "company")
    folder = company.store.parent
    folder.mkdir(exist_ok=True)
    if store == "existing":
        (company.folder / "corp.ldif").write_text((company.folder / "corp.ldif").read_text()
                                                  .replace("title: ", "title: Acting ", 1))
    folder.chmod(0o555)
    try:
        result = run_without_root_powers(company, "apply", "policy.yaml", "--auto-approve")
    finally:
        folder.chmod(0o755)
    assert_clean(result, error=True)
    assert result.code == 1


# --- schema, which reads nothing -------------------------------------------------------------------------

def test_schema(company):
    result = company.run("schema")
    assert_clean(result, error=False)
    assert result.code == 0 and result.out.startswith("{")


@pytest.mark.parametrize("command", [["schema"], ["validate", "policy.yaml"]])
def test_stdout_that_cannot_be_written_is_one_line(company, command):
    with open("/dev/full", "w") as full:
        done = subprocess.run([reconciler_executable(), *command], cwd=company.folder, stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert_clean(Result(done.returncode, "", done.stderr), error=True)
