"""The distribution as users get it: `directory-reconciler` (the PyPI name `reconciler` is an
unrelated project), built from this checkout, installed into fresh venvs from a wheelhouse with
no index; the composite action's install step run for real in bash; and the version written in
every place that names it."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from ruamel.yaml import YAML

import reconciler
from tests.wheelhouse import DISTRIBUTION, Wheelhouse, wheelhouse  # noqa: F401  (the session fixture)

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "examples/gitops/.github/actions/reconciler/action.yml"
GITLAB = ROOT / "examples/scheduled/gitlab-ci.yml"
SCHEMAS = sorted(p.name for p in (ROOT / "reconciler/schemas").glob("*.json"))


def pyproject_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def expected_version_line(version: str) -> str:
    return f"reconciler {version} ({DISTRIBUTION})"


def run(command: list, env: dict[str, str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


# -- what is in the files -------------------------------------------------------------------------


def test_the_version_is_the_same_everywhere():
    version = pyproject_version()
    assert reconciler.__version__ == version
    changelog = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d[^\]]*)\]", changelog, re.M)
    assert releases and releases[0] == version, f"CHANGELOG.md's newest release is {releases[:1]}, not {version}"
    action = YAML(typ="safe").load(ACTION.read_text())
    assert action["inputs"]["version"]["default"] == version
    gitlab = GITLAB.read_text()
    assert re.findall(r"directory-reconciler==([\w.]+)", gitlab) == [version]
    assert expected_version_line(version) in gitlab  # the version check after the install


def test_the_pyproject_names_the_distribution_and_its_license():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert project["scripts"] == {"reconciler": "reconciler.cli:main"}
    assert "Apache License" in (ROOT / "LICENSE").read_text().splitlines()[1]


PIP_INSTALL = re.compile(r"\b(?:pip3?|pipx|uv(?:\s+pip)?)\s+(?:install|download|wheel)\b(.*)")
# a requirement specifier for the name `reconciler` anywhere (a requirements file, a constraint, a script)
WRONG_SPECIFIER = re.compile(r"(?<![\w.-])reconciler(?:===?|>=|<=|~=|!=|\[)")


def bad_installs(text: str) -> list[str]:
    """Lines that install the PyPI name `reconciler` (someone else's project), or directory-reconciler unpinned."""
    found = []
    for line in text.splitlines():
        words = [w.strip("\"'") for arguments in PIP_INSTALL.findall(line) for w in arguments.split()]
        if WRONG_SPECIFIER.search(line) or any(
                re.match(r"reconciler(?![\w.-])", w) or (re.match(r"directory[-_.]reconciler", w) and "==" not in w)
                for w in words):
            found.append(line.strip())
    return found


@pytest.mark.parametrize("line", [
    'pip install --disable-pip-version-check -q "reconciler==0.1.0"',
    'run: python -m pip install -q "reconciler==${{ inputs.version }}"',
    "pip install reconciler",
    "pipx install reconciler",
    "uv pip install 'reconciler>=0.1'",
    "reconciler~=0.1",
    "pip install directory-reconciler",
    'pip install "directory-reconciler>=0.2"',
])
def test_the_install_check_catches_the_wrong_name_and_unpinned_installs(line):
    assert bad_installs(line)


@pytest.mark.parametrize("line", [
    'pip install --disable-pip-version-check -q "directory-reconciler==0.2.0"',
    "description: Install reconciler (the directory-reconciler distribution, pinned and verified)",
    "reconciler apply policy.yaml --auto-approve >> /var/log/reconciler.log 2>&1",
    'installed="$(reconciler --version)"',
])
def test_the_install_check_lets_pinned_installs_and_commands_pass(line):
    assert not bad_installs(line)


def test_the_examples_never_install_the_wrong_name_or_an_unpinned_version():
    bad = {}
    for path in sorted(p for p in (ROOT / "examples").rglob("*") if p.is_file()):
        found = bad_installs(path.read_text(errors="replace"))
        if found:
            bad[str(path.relative_to(ROOT))] = found
    assert not bad, json.dumps(bad, indent=1)
    action = ACTION.read_text()
    assert "dist=directory-reconciler" in action and '"$dist==$VERSION"' in action  # what the action installs


def test_the_action_passes_inputs_through_env_and_every_run_step_is_bash():
    action = YAML(typ="safe").load(ACTION.read_text())
    steps = action["runs"]["steps"]
    assert steps[0]["uses"] == "actions/setup-python@v5"
    for step in steps:
        if "run" in step:
            assert step.get("shell") == "bash", step.get("name")
            assert "${{" not in step["run"], f"{step.get('name')}: an expression in the script text (script injection)"
    assert {"args", "version", "requirements", "allow-exit-codes"} <= set(action["inputs"])
    assert {"exit-code", "output-file", "error-file"} <= set(action["outputs"])


# -- the built distribution -----------------------------------------------------------------------


@pytest.mark.slow
def test_the_wheel_holds_the_license_the_schemas_and_the_metadata(wheelhouse: Wheelhouse):
    with zipfile.ZipFile(wheelhouse.wheel) as wheel:
        names = wheel.namelist()
        info = f"directory_reconciler-{wheelhouse.version}.dist-info"
        assert f"{info}/licenses/LICENSE" in names
        assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("reconciler/schemas/")) == SCHEMAS
        metadata = wheel.read(f"{info}/METADATA").decode()
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    assert re.search(r"^Name: directory-reconciler$", metadata, re.M)
    assert re.search(rf"^Version: {re.escape(pyproject_version())}$", metadata, re.M)
    assert re.search(r"^License-Expression: Apache-2.0$", metadata, re.M)
    assert re.search(r"^License-File: LICENSE$", metadata, re.M)
    assert "reconciler = reconciler.cli:main" in entry_points
    assert not any(n.startswith("tests/") for n in names)


@pytest.mark.slow
def test_the_sdist_holds_the_license_the_changelog_and_the_schemas_but_not_the_tests(wheelhouse: Wheelhouse):
    with tarfile.open(wheelhouse.sdist) as sdist:
        top = f"directory_reconciler-{wheelhouse.version}/"
        names = {m.name.removeprefix(top) for m in sdist.getmembers()}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "PKG-INFO"} <= names
    assert {f"reconciler/schemas/{s}" for s in SCHEMAS} <= names
    assert not any(n.startswith(("tests/", "bench/", "examples/")) for n in names)
    assert wheelhouse.sdist.stat().st_size < 1_000_000


@pytest.mark.slow
def test_the_wheel_installs_offline_into_a_fresh_venv_and_runs(wheelhouse: Wheelhouse, tmp_path):
    env = wheelhouse.offline_env()
    venv = tmp_path / "venv"
    done = run([sys.executable, "-m", "venv", venv], env, tmp_path)
    assert done.returncode == 0, done.stderr
    done = run([venv / "bin/python", "-m", "pip", "install", "-q", wheelhouse.wheel], env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    command = venv / "bin/reconciler"
    version = run([command, "--version"], env, tmp_path)
    assert (version.returncode, version.stdout, version.stderr) == (0, expected_version_line(pyproject_version()) + "\n", "")
    for args, usage in [(["-h"], "Usage: reconciler [OPTIONS] COMMAND"), (["plan", "-h"], "Usage: reconciler plan "),
                        (["apply", "-h"], "Usage: reconciler apply ")]:
        shown = run([command, *args], env, tmp_path)
        assert shown.returncode == 0 and shown.stdout.startswith(usage), (args, shown.stdout, shown.stderr)
        assert "-h, --help" in shown.stdout

    # the installed metadata, and the package imported from the venv rather than from this checkout
    probe = run([venv / "bin/python", "-c", """if True:
        import json, reconciler
        from importlib import metadata
        meta = metadata.metadata("directory-reconciler")
        try:
            metadata.distribution("reconciler"); other = True
        except metadata.PackageNotFoundError:
            other = False
        print(json.dumps({"name": meta["Name"], "version": meta["Version"], "license": meta["License-Expression"],
                          "file": reconciler.__file__, "other": other,
                          "license_file": any(str(f).endswith("licenses/LICENSE") for f in metadata.files("directory-reconciler"))}))
        """], env, tmp_path)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["name"] == DISTRIBUTION and found["version"] == pyproject_version() and found["license"] == "Apache-2.0"
    assert found["license_file"] and not found["other"]
    assert Path(found["file"]).is_relative_to(venv), found["file"]
    # and it works: the bundled schema is there
    schema = run([command, "schema"], env, tmp_path)
    assert schema.returncode == 0 and json.loads(schema.stdout)["type"] == "object"


# -- the composite action's install step, run in bash -------------------------------------------------


EXPRESSION = re.compile(r"^\$\{\{\s*(inputs|steps)\.([\w-]+)(?:\.outputs\.([\w-]+))?\s*\}\}$")


class ActionRunner:
    """Runs the composite action's bash steps the way the runner does (`bash --noprofile --norc -eo pipefail`),
    with each step's env: built from its `env:` mapping (inputs, earlier steps' outputs), RUNNER_TOOL_CACHE and
    RUNNER_TEMP under tmp_path and pip pointed at the wheelhouse. actions/setup-python is this Python."""

    def __init__(self, wheelhouse: Wheelhouse, tmp_path: Path):
        self.action = YAML(typ="safe").load(ACTION.read_text())
        self.steps = {step.get("id"): step for step in self.action["runs"]["steps"]}
        self.tmp = tmp_path
        self.tool_cache = tmp_path / "tool-cache"
        self.workspace = tmp_path / "workspace"
        self.workspace.mkdir()
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        self.base = wheelhouse.offline_env() | {"PATH": path, "RUNNER_TOOL_CACHE": str(self.tool_cache),
                                                 "RUNNER_TEMP": str(tmp_path / "runner-temp"),
                                                 "GITHUB_WORKSPACE": str(self.workspace), "RUNNER_OS": "Linux"}
        (tmp_path / "runner-temp").mkdir()
        self.outputs: dict[str, dict[str, str]] = {}
        self.runs = 0

    def inputs(self, given: dict[str, str]) -> dict[str, str]:
        values = {name: str(spec.get("default", "")) for name, spec in self.action["inputs"].items()}
        unknown = set(given) - set(values)
        assert not unknown, f"the action has no inputs {unknown}"
        return values | given

    def run(self, step_id: str, inputs: dict[str, str], **extra_env: str) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
        step = self.steps[step_id]
        values = self.inputs(inputs)
        env = dict(self.base)
        for name, expression in step.get("env", {}).items():
            match = EXPRESSION.match(str(expression))
            assert match, f"{step_id}: env {name} is not a single input or step output: {expression}"
            kind, key, output = match.groups()
            env[name] = values[key] if kind == "inputs" else self.outputs.get(key, {}).get(output, "")
        env.update(extra_env)
        self.runs += 1
        script = self.tmp / f"step-{self.runs}.sh"
        script.write_text(step["run"])
        env["GITHUB_OUTPUT"] = str(self.tmp / f"output-{self.runs}")
        env["GITHUB_PATH"] = str(self.tmp / f"path-{self.runs}")
        done = run(["bash", "--noprofile", "--norc", "-eo", "pipefail", script], env, self.workspace)
        written = Path(env["GITHUB_OUTPUT"])
        outputs = dict(line.split("=", 1) for line in written.read_text().splitlines()) if written.exists() else {}
        self.outputs[step_id] = outputs
        return done, outputs


def requirements_with_hashes(wheelhouse: Wheelhouse, path: Path, spoil: str | None = None) -> Path:
    """A hash-pinned requirements file for every wheel in the wheelhouse; `spoil` names one whose hash is wrong."""
    lines = []
    for wheel in wheelhouse.wheels():
        name, version = wheel.name.split("-")[:2]
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if name == spoil:
            digest = hashlib.sha256(b"not " + wheel.read_bytes()).hexdigest()
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{digest}")
    assert spoil is None or any(w.name.startswith(spoil + "-") for w in wheelhouse.wheels())
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_the_action_installs_verifies_reuses_and_rebuilds_a_venv_that_no_longer_verifies(wheelhouse: Wheelhouse, tmp_path):
    action = ActionRunner(wheelhouse, tmp_path)
    version = pyproject_version()
    venv = action.tool_cache / DISTRIBUTION / version

    first, outputs = action.run("install", {"args": "--version"})
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"Installed {venv}: {expected_version_line(version)}" in first.stdout
    assert outputs == {"bin": f"{venv}/bin", "version": version}
    assert Path(tmp_path / "path-1").read_text() == f"{venv}/bin\n"  # later steps of the job find `reconciler`

    again, outputs = action.run("install", {"args": "--version"})
    assert again.returncode == 0 and f"Reusing {venv}: {expected_version_line(version)}" in again.stdout, again.stderr
    # RUNNER_TOOL_CACHE unset: RUNNER_TEMP instead (here the same folder, so the venv is reused)
    fallback, _ = action.run("install", {"args": "--version"}, RUNNER_TOOL_CACHE="", RUNNER_TEMP=str(action.tool_cache))
    assert fallback.returncode == 0 and f"Reusing {venv}" in fallback.stdout, fallback.stderr

    # the run step: stdout to a file and the log, stderr to a file and the log, the exit code as an output
    ran, outputs = action.run("run", {"args": "validate missing-policy.yaml", "allow-exit-codes": "0"})
    assert ran.returncode == int(outputs["exit-code"]) != 0
    error_text = Path(outputs["error-file"]).read_text()
    assert "missing-policy.yaml" in error_text and error_text in ran.stderr
    assert Path(outputs["output-file"]).read_text() == ""
    allowed, outputs = action.run("run", {"args": "validate missing-policy.yaml", "allow-exit-codes": "0 1 64"})
    assert allowed.returncode == 0 and outputs["exit-code"] != "0"
    shown, outputs = action.run("run", {"args": "--version"})
    assert shown.returncode == 0 and outputs["exit-code"] == "0"
    assert Path(outputs["output-file"]).read_text() == expected_version_line(version) + "\n" and shown.stdout.endswith(
        expected_version_line(version) + "\n")

    # a venv whose `reconciler` no longer says the pinned version is rebuilt, not trusted
    (venv / "bin/reconciler").write_text("#!/bin/sh\necho 'reconciler 0.1.0 (reconciler)'\n")
    rebuilt, _ = action.run("install", {"args": "--version"})
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "Rebuilding" in rebuilt.stdout and "printed 'reconciler 0.1.0 (reconciler)'" in rebuilt.stdout
    assert run([venv / "bin/reconciler", "--version"], action.base, tmp_path).stdout == expected_version_line(version) + "\n"


@pytest.mark.parametrize("inputs, error", [
    ({"version": "0.*"}, "is not an exact version"),
    ({"version": ">=0.2"}, "is not an exact version"),
    ({"version": ""}, "is not an exact version"),
    ({"requirements": "missing.txt"}, "not found in the workspace"),
    ({"requirements": "unpinned.txt"}, "must pin directory-reconciler exactly once"),
])
def test_the_action_refuses_a_version_that_is_not_exact_and_a_requirements_file_without_the_pin(inputs, error, tmp_path):
    action = ActionRunner(Wheelhouse(wheel=tmp_path, sdist=tmp_path, dir=tmp_path, version="none"), tmp_path)
    (action.workspace / "unpinned.txt").write_text("directory-reconciler>=0.2 --hash=sha256:00\n")
    done, outputs = action.run("install", {"args": "--version", **inputs})
    assert done.returncode != 0 and "::error title=reconciler install::" in done.stdout and error in done.stdout
    assert outputs == {} and not action.tool_cache.exists()


@pytest.mark.slow
def test_the_action_refuses_a_requirements_file_with_a_wrong_hash(wheelhouse: Wheelhouse, tmp_path):
    action = ActionRunner(wheelhouse, tmp_path)
    requirements_with_hashes(wheelhouse, action.workspace / "requirements.txt", spoil="typer")
    done, outputs = action.run("install", {"args": "--version", "requirements": "requirements.txt"})
    assert done.returncode != 0
    assert "DO NOT MATCH THE HASHES" in done.stderr and "::error title=reconciler install::pip refused" in done.stdout
    assert outputs == {}
    # nothing usable is left behind: no venv for the next run to find
    assert not list(action.tool_cache.glob(f"{DISTRIBUTION}/*/bin/reconciler"))
    assert not list(action.tool_cache.glob(f"{DISTRIBUTION}/*"))


@pytest.mark.slow
def test_the_action_installs_from_a_requirements_file_with_the_right_hashes(wheelhouse: Wheelhouse, tmp_path):
    action = ActionRunner(wheelhouse, tmp_path)
    requirements = requirements_with_hashes(wheelhouse, action.workspace / "requirements.txt")
    done, outputs = action.run("install", {"args": "--version", "requirements": "requirements.txt", "version": "9.9.9"})
    assert done.returncode == 0, done.stdout + done.stderr
    version = pyproject_version()
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    venv = action.tool_cache / DISTRIBUTION / f"{version}-{digest}"
    assert outputs == {"bin": f"{venv}/bin", "version": version}  # the file's pin, not the `version` input
    assert run([venv / "bin/reconciler", "--version"], action.base, tmp_path).stdout == expected_version_line(version) + "\n"
