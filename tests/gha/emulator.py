"""Runs one job of a GitHub Actions workflow here, step by step, as GitHub's runner would.

The real runner cannot run in this test suite (it needs github.com), so this emulates its
documented behaviour, from these GitHub docs pages:
- "Workflow syntax for GitHub Actions": `on`, `env`, `defaults.run`, `permissions`,
  `jobs.<id>.if/env/steps`, `steps[*].id/if/name/uses/run/shell/with/env/
  continue-on-error/timeout-minutes/working-directory`, and the shells' command lines
  (unspecified: `bash -e {0}`; `shell: bash`: `bash --noprofile --norc -eo pipefail {0}`;
  `sh -e {0}`; `python {0}`);
- "Evaluate expressions in workflows and actions" and "Contexts reference" (which contexts
  each key may use): see expressions.py;
- "Store information in variables" (default variables: GITHUB_*, RUNNER_*, CI) and
  "Workflow commands" (GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH, GITHUB_STEP_SUMMARY,
  `::add-mask::`);
- "Metadata syntax for GitHub Actions" and "Creating a composite action" (`runs.using:
  composite`, `inputs`, `outputs.<id>.value`, `shell` required on `run` steps,
  `github.action_path`);
- "Controlling permissions for GITHUB_TOKEN" (what `permissions:` grants; writes with a
  token lacking them get 403 "Resource not accessible by integration").
Where a page is vague the runner's source (github.com/actions/runner) decided: env
precedence, GITHUB_* set last so a workflow cannot override them, the GITHUB_OUTPUT parser,
`failure()` inside a composite action meaning the action's own steps failed, composite
outputs evaluated even when a step failed.

Remote actions are replaced by faithful stand-ins: actions/checkout (cleans the workspace,
then calls the test's `checkout` callback), actions/setup-python (records only),
actions/upload-artifact and download-artifact (a directory per artifact), and
actions/github-script (the script runs in node against `FakeGitHub`, see
github_script_host.js). Any other remote action fails its step: "emulator does not know ...".

Not emulated: `strategy.matrix`, `services`, `container`, reusable workflows (`jobs.<id>.uses`,
`workflow_call`), `needs` across jobs (a job runs on its own; `needs` is empty), `concurrency`,
job `timeout-minutes`, path and branch filters of `on:` (only the event name is checked),
Docker and JavaScript actions other than the stand-ins, `pre`/`post` steps, the deprecated
`::set-output`/`::set-env` commands, fork pull requests' read-only token, cancellation, and the
emptying of RUNNER_TEMP between jobs (pass a fresh `runner_temp` per job).
One deliberate difference: a composite action's missing `required` input fails the step
(the runner only leaves it empty).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Any, Callable

from ruamel.yaml import YAML

from .expressions import CaseSensitiveDict, Context, ExpressionError, evaluate_if, evaluate_value, interpolate, truthy
from .fake_github import FakeGitHub

__all__ = ["run_job", "JobResult", "StepResult", "EmulatorError", "load_yaml"]

HOST_JS = Path(__file__).with_name("github_script_host.js")
SHELLS = {None: "bash -e {0}", "bash": "bash --noprofile --norc -eo pipefail {0}", "sh": "sh -e {0}",
          "python": "python {0}"}
STEP_KEYS = {"id", "if", "name", "uses", "run", "shell", "with", "env", "continue-on-error", "timeout-minutes",
             "working-directory"}
SCOPES = ("actions", "attestations", "checks", "contents", "deployments", "discussions", "id-token", "issues",
          "models", "packages", "pages", "pull-requests", "repository-projects", "security-events", "statuses")
# Where each kind of value may look ("Contexts reference", context availability table).
STEP_CONTEXTS = ("github", "needs", "strategy", "matrix", "job", "runner", "env", "vars", "secrets", "steps", "inputs")
STEP_IF_CONTEXTS = tuple(c for c in STEP_CONTEXTS if c != "secrets")
COMPOSITE_CONTEXTS = STEP_IF_CONTEXTS  # an action's metadata never sees `secrets`
GITHUB_SCRIPT_INPUTS = {"github-token": "${{ github.token }}", "debug": "${{ runner.debug == '1' }}",
                        "user-agent": "actions/github-script", "previews": "", "result-encoding": "json",
                        "retries": "0", "retry-exempt-status-codes": "400,401,403,404,422", "base-url": ""}


class EmulatorError(Exception):
    """The workflow is invalid, or uses something this emulator does not emulate."""


class StepFailed(Exception):
    """Fails the current step with this message (printed as `##[error]...` like the runner)."""


@dataclass
class StepResult:
    """One step as it ran. `stdout`/`stderr` are the raw output (secrets unmasked, so a test
    can check what a program printed); a composite action's step also holds its own
    `steps` and their output. Emulator and runner errors are `##[error]...` lines in stderr."""
    id: str | None
    name: str
    outcome: str  # success | failure | skipped (before continue-on-error)
    conclusion: str  # the same after continue-on-error
    outputs: dict[str, str] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    uses: str | None = None
    summary: str = ""
    steps: list[StepResult] = field(default_factory=list)  # a composite action's own steps

    @property
    def skipped(self) -> bool:
        return self.outcome == "skipped"


@dataclass
class JobResult:
    """The job as it ran. `ok` means no step failed without continue-on-error; `log` is
    the combined log with secrets masked as `***`, like the one GitHub shows; `summaries`
    are the non-empty GITHUB_STEP_SUMMARY contents; `artifacts` maps uploaded names to
    their folders."""
    job: str
    status: str  # success | failure | skipped
    steps: list[StepResult]
    log: str
    summaries: list[str]
    artifacts: dict[str, Path]
    env: dict[str, str]  # the job's env at the end: workflow + job `env:` and what steps added through GITHUB_ENV

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def step(self, key: str) -> StepResult:
        """The step with this `id`, or else the first one with this name."""
        for step in self.steps:
            if step.id == key:
                return step
        for step in self.steps:
            if step.name == key:
                return step
        raise KeyError(f"no step {key!r}; steps are {[s.id or s.name for s in self.steps]}")


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(Path(path).read_text(encoding="utf-8"))


def _str_map(mapping: Any, what: str) -> dict:
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise EmulatorError(f"{what} must be a mapping")
    return mapping


# ── the job ──

@dataclass
class _Job:
    """What all steps of the job share."""
    workspace: Path
    runner_temp: Path
    artifacts_root: Path
    github: FakeGitHub
    checkout: Callable[[Path], None]
    github_ctx: dict
    runner_ctx: dict
    secrets: dict
    vars: dict
    base_env: dict  # the machine's environment, and the test's `env=`
    env: CaseSensitiveDict  # workflow + job env, then GITHUB_ENV additions
    path_prepend: list[str]
    permissions: dict[str, str]
    step_timeout: float
    status: str = "success"
    log: list[str] = field(default_factory=list)
    masks: set[str] = field(default_factory=set)
    summaries: list[str] = field(default_factory=list)
    artifacts: dict[str, Path] = field(default_factory=dict)
    action_counter: int = 0

    def write_log(self, text: str) -> None:
        for secret in sorted(self.masks, key=len, reverse=True):
            text = text.replace(secret, "***")  # the runner masks secrets in what it shows
        self.log.append(text)


@dataclass
class _Scope:
    """A list of steps sharing one `steps` context: the job's, or one composite action's."""
    composite: bool
    inputs: dict  # the `inputs` context: workflow_dispatch inputs, or the composite action's
    status: str = "success"  # what success()/failure() see: the job's, or the action's own
    steps_ctx: dict = field(default_factory=dict)
    action_path: str = ""
    caller_env: dict = field(default_factory=dict)  # the `env:` of the steps that called this composite
    defaults: dict = field(default_factory=dict)  # defaults.run of the workflow/job (not for composites)


def run_job(workflow: Path, job: str, *, event_name: str, payload: dict, github: FakeGitHub, workspace: Path,
            checkout: Callable[[Path], None], runner_temp: Path, tool_cache: Path, sha: str, ref: str,
            secrets: dict | None = None, vars: dict | None = None, env: dict | None = None,
            actor: str = "octocat", run_id: int = 1000, run_number: int = 1, run_attempt: int = 1,
            repository: str = "acme/policies", artifacts: Path | None = None,
            default_permissions: str = "restricted", step_timeout: float = 600) -> JobResult:
    """Run job `job` of `workflow` for an `event_name` event with this `payload`.

    `checkout(path)` puts the repository's files into `path` (actions/checkout's part);
    `artifacts` is this run's artifact store (default: `runner_temp/../artifacts`);
    `default_permissions` is the repository's GITHUB_TOKEN default when the workflow sets
    no `permissions:` ('restricted' = contents and packages read, GitHub's default for new
    repositories, or 'permissive'); `step_timeout` (seconds) bounds every step.
    """
    workflow = Path(workflow)
    document = load_yaml(workflow)
    if not isinstance(document, dict) or not isinstance(document.get("jobs"), dict) or job not in document["jobs"]:
        raise EmulatorError(f"{workflow}: no job {job!r}")
    _check_trigger(document, event_name, workflow)
    spec = document["jobs"][job]
    for unsupported in ("strategy", "services", "container", "uses"):
        if unsupported in spec:
            raise EmulatorError(f"{workflow}: jobs.{job}.{unsupported} is not emulated")
    workspace, runner_temp, tool_cache = (Path(p).resolve() for p in (workspace, runner_temp, tool_cache))
    for directory in (workspace, runner_temp, tool_cache):
        directory.mkdir(parents=True, exist_ok=True)
    artifacts_root = Path(artifacts).resolve() if artifacts else runner_temp.parent / "artifacts"
    event_path = runner_temp / "_github_workflow" / "event.json"
    event_path.parent.mkdir(parents=True, exist_ok=True)
    event_path.write_text(json.dumps(payload), encoding="utf-8")

    if github.repository != repository:
        raise EmulatorError(f"the FakeGitHub is {github.repository!r}, the run is in {repository!r}")
    token = f"ghs_emulated{uuid.uuid4().hex}"
    secrets = {"GITHUB_TOKEN": token, **(secrets or {})}
    github_ctx = _github_context(document, workflow, job, event_name, payload, sha, ref, actor, run_id, run_number,
                                 run_attempt, repository, workspace, event_path, token)
    runner_ctx = {"os": "Linux", "arch": "X64", "name": "emulator", "environment": "self-hosted",
                  "temp": str(runner_temp), "tool_cache": str(tool_cache)}
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("GITHUB_", "RUNNER_", "ACTIONS_", "INPUT_", "STATE_")) and k != "CI"}
    base_env.update({k: str(v) for k, v in (env or {}).items()})
    base_env.update(CI="true", GITHUB_ACTIONS="true")
    state = _Job(workspace=workspace, runner_temp=runner_temp, artifacts_root=artifacts_root, github=github,
                 checkout=checkout, github_ctx=github_ctx, runner_ctx=runner_ctx, secrets=secrets,
                 vars=dict(vars or {}),
                 base_env=base_env, env=CaseSensitiveDict(), path_prepend=[],
                 permissions=_permissions(spec.get("permissions", document.get("permissions")), default_permissions),
                 step_timeout=step_timeout, masks={v for v in secrets.values() if v})

    inputs = _dispatch_inputs(document, event_name, payload)
    plain = {"github": github_ctx, "vars": state.vars, "inputs": inputs, "secrets": secrets}
    for name, value in _str_map(document.get("env"), "env").items():
        state.env[name] = interpolate(value, Context(dict(plain)))
    job_values = {**plain, "needs": {}, "strategy": {}, "matrix": {}}
    condition = spec.get("if")
    if condition is not None and not evaluate_if(condition, Context({k: job_values[k] for k in
                                                                     ("github", "needs", "vars", "inputs")})):
        return JobResult(job, "skipped", [], f"job {job} skipped: if: {condition}\n", [], {}, dict(state.env))
    for name, value in _str_map(spec.get("env"), f"jobs.{job}.env").items():
        state.env[name] = interpolate(value, Context(dict(job_values)))
    defaults = {**_str_map(document.get("defaults"), "defaults").get("run", {}),
                **_str_map(spec.get("defaults"), "defaults").get("run", {})}
    steps = spec.get("steps") or []
    _validate_steps(steps, f"{workflow}: jobs.{job}.steps")
    scope = _Scope(composite=False, inputs=inputs, defaults=defaults)
    results = _run_steps(state, scope, steps)
    return JobResult(job, state.status, results, "".join(state.log), state.summaries, state.artifacts, dict(state.env))


def _check_trigger(document: dict, event_name: str, workflow: Path) -> None:
    on = document.get("on", document.get(True))  # YAML 1.1 reads the key `on` as true
    events = [on] if isinstance(on, str) else list(on or [])
    if event_name not in events:
        raise EmulatorError(f"{workflow} does not run on {event_name!r} events (on: {events})")


def _dispatch_inputs(document: dict, event_name: str, payload: dict) -> dict:
    on = document.get("on", document.get(True))
    declared = (on.get(event_name) or {}).get("inputs") if isinstance(on, dict) and event_name in (
        "workflow_dispatch", "workflow_call") else None
    given = dict(payload.get("inputs") or {})
    values = {}
    for name, spec in (declared or {}).items():
        spec = spec or {}
        value = given.get(name, spec.get("default", ""))
        if spec.get("type") == "boolean" and isinstance(value, str):
            value = value.lower() == "true"
        values[name] = value
    return {**given, **values}


def _permissions(spec: Any, default: str) -> dict[str, str]:
    if spec is None:
        spec = "write-all" if default == "permissive" else {"contents": "read", "packages": "read"}
    if spec in ("read-all", "write-all"):
        return {scope: spec.split("-")[0] for scope in SCOPES}
    if not isinstance(spec, dict):
        raise EmulatorError(f"permissions: {spec!r} is not valid")
    return {scope: str(spec.get(scope, "none")) for scope in SCOPES}


def _github_context(document, workflow, job, event_name, payload, sha, ref, actor, run_id, run_number, run_attempt,
                    repository, workspace, event_path, token) -> dict:
    pull = payload.get("pull_request") if event_name.startswith("pull_request") else None
    ref_type = "tag" if ref.startswith("refs/tags/") else "branch"
    workflow_file = f".github/workflows/{workflow.name}"
    return {
        "action": "", "action_path": "", "action_ref": "", "action_repository": "", "action_status": "",
        "actor": actor, "triggering_actor": actor, "api_url": "https://api.github.com",
        "base_ref": pull["base"]["ref"] if pull else "", "head_ref": pull["head"]["ref"] if pull else "",
        "env": "", "path": "", "output": "", "state": "", "step_summary": "",
        "event": payload, "event_name": event_name, "event_path": str(event_path),
        "graphql_url": "https://api.github.com/graphql", "job": job, "ref": ref,
        "ref_name": re.sub(r"^refs/(heads|tags|pull)/", "", ref), "ref_protected": "false", "ref_type": ref_type,
        "repository": repository, "repository_owner": repository.split("/")[0],
        "repositoryUrl": f"git://github.com/{repository}.git", "retention_days": "90",
        "run_attempt": str(run_attempt), "run_id": str(run_id), "run_number": str(run_number),
        "secret_source": "Actions", "server_url": "https://github.com", "sha": sha, "token": token,
        "workflow": document.get("name") or workflow_file, "workflow_ref": f"{repository}/{workflow_file}@{ref}",
        "workflow_sha": sha, "workspace": str(workspace),
    }


def _validate_steps(steps: Any, where: str) -> None:
    if not isinstance(steps, list) or not steps:
        raise EmulatorError(f"{where}: needs a list of steps")
    ids = set()
    for index, step in enumerate(steps):
        if not isinstance(step, dict) or ("run" in step) == ("uses" in step):
            raise EmulatorError(f"{where}[{index}]: a step has exactly one of run: or uses:")
        unknown = set(step) - STEP_KEYS
        if unknown:
            raise EmulatorError(f"{where}[{index}]: unknown keys {sorted(unknown)}")
        if "id" in step:
            if step["id"] in ids:
                raise EmulatorError(f"{where}[{index}]: the identifier {step['id']!r} may not be used more than once")
            ids.add(step["id"])


# ── steps ──

def _contexts(job: _Job, scope: _Scope, env_ctx: dict, names: tuple[str, ...]) -> Context:
    github_ctx = dict(job.github_ctx, action_path=scope.action_path,
                      action_status=scope.status if scope.composite else "")
    values = {"github": github_ctx, "env": env_ctx, "vars": job.vars, "secrets": job.secrets,
              "steps": scope.steps_ctx, "runner": job.runner_ctx, "job": {"status": job.status},
              "inputs": scope.inputs,
              "needs": {}, "strategy": {}, "matrix": {}}
    return Context({name: values[name] for name in names}, status=scope.status, workspace=job.workspace)


def _run_steps(job: _Job, scope: _Scope, steps: list[dict]) -> list[StepResult]:
    results = []
    for step in steps:
        result = _run_step(job, scope, step)
        results.append(result)
        if result.id:
            scope.steps_ctx[result.id] = {"outputs": dict(result.outputs), "outcome": result.outcome,
                                          "conclusion": result.conclusion}
        if result.conclusion == "failure":
            scope.status = "failure"
            if not scope.composite:
                job.status = "failure"
    return results


def _run_step(job: _Job, scope: _Scope, step: dict) -> StepResult:
    names = COMPOSITE_CONTEXTS if scope.composite else STEP_CONTEXTS
    uses = step.get("uses")
    env_ctx = CaseSensitiveDict({**job.env, **scope.caller_env})
    result = StepResult(step.get("id"), _default_name(step), "success", "success", uses=uses)
    step_env: dict[str, str] = {}
    try:
        for name, value in _str_map(step.get("env"), "env").items():
            step_env[name] = interpolate(value, _contexts(job, scope, env_ctx, names))
        env_ctx.update(step_env)
        if "name" in step:
            try:
                result.name = interpolate(step["name"], _contexts(job, scope, env_ctx, names))
            except ExpressionError:  # the runner keeps the raw name when it cannot evaluate it
                result.name = str(step["name"])
        if_names = COMPOSITE_CONTEXTS if scope.composite else STEP_IF_CONTEXTS
        if not evaluate_if(step.get("if"), _contexts(job, scope, env_ctx, if_names)):
            result.outcome = result.conclusion = "skipped"
            job.write_log(f"=== {result.name} (skipped)\n")
            return result
    except ExpressionError as exc:
        return _fail_before_start(job, result, f"{exc}")
    ctx = _contexts(job, scope, env_ctx, names)
    try:
        continue_on_error = truthy(evaluate_value(step.get("continue-on-error", False), ctx))
    except ExpressionError as exc:
        return _fail_before_start(job, result, f"{exc}")
    job.write_log(f"=== {result.name}\n")
    commands = _FileCommands(job.runner_temp)
    errors = []
    try:
        if "run" in step:
            _run_script(job, scope, step, ctx, step_env, commands, result)
        else:
            _run_uses(job, scope, step, ctx, step_env, commands, result)
    except (StepFailed, ExpressionError) as exc:
        errors.append(str(exc))
    try:
        commands.apply(job, result)
    except StepFailed as exc:
        errors.append(str(exc))
    if not result.steps:  # a composite action's steps have logged their own output
        job.write_log(result.stdout + result.stderr)
    for message in errors:
        result.stderr += f"##[error]{message}\n"
        job.write_log(f"##[error]{message}\n")
    result.outcome = "failure" if errors else "success"
    result.conclusion = "success" if errors and continue_on_error else result.outcome
    job.write_log(f"=== {result.name}: {result.outcome}"
                  f"{' (continue-on-error)' if result.conclusion != result.outcome else ''}\n")
    return result


def _fail_before_start(job: _Job, result: StepResult, message: str) -> StepResult:
    result.stderr = f"##[error]{message}\n"
    result.outcome = result.conclusion = "failure"
    job.write_log(f"=== {result.name}\n{result.stderr}=== {result.name}: failure\n")
    return result


def _default_name(step: dict) -> str:
    if "run" in step:
        lines = [line for line in str(step["run"]).strip().splitlines() if line.strip()]
        return f"Run {lines[0].strip() if lines else ''}"
    return f"Run {step['uses']}"


class _FileCommands:
    """The fresh per-step files of GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH, GITHUB_STATE and
    GITHUB_STEP_SUMMARY, and what the runner does with them after the step (even a failed one)."""

    def __init__(self, runner_temp: Path):
        folder = runner_temp / "_runner_file_commands"
        folder.mkdir(parents=True, exist_ok=True)
        self.files = {name: folder / f"{name.lower()}_{uuid.uuid4()}" for name in
                      ("OUTPUT", "ENV", "PATH", "STATE", "STEP_SUMMARY")}
        for path in self.files.values():
            path.touch()

    def env(self) -> dict[str, str]:
        return {f"GITHUB_{name}": str(path) for name, path in self.files.items()}

    def apply(self, job: _Job, result: StepResult) -> None:
        try:
            outputs = parse_key_values(self.files["OUTPUT"].read_text(encoding="utf-8"))
            env = parse_key_values(self.files["ENV"].read_text(encoding="utf-8"))
        except ValueError as exc:
            raise StepFailed(str(exc)) from None
        result.outputs.update(outputs)
        for name, value in env.items():
            if name.upper() == "NODE_OPTIONS":  # the runner refuses this one
                result.stderr += "##[warning]Can't store NODE_OPTIONS output parameter using '$GITHUB_ENV' command.\n"
                continue
            job.env[name] = value
        for line in self.files["PATH"].read_text(encoding="utf-8").splitlines():
            if line.strip():
                if line in job.path_prepend:
                    job.path_prepend.remove(line)
                job.path_prepend.append(line)
        summary = self.files["STEP_SUMMARY"].read_text(encoding="utf-8")
        if summary:
            result.summary = summary
            job.summaries.append(summary)


def parse_key_values(text: str) -> dict[str, str]:
    """The runner's parser of GITHUB_OUTPUT and GITHUB_ENV: `NAME=VALUE` lines and
    `NAME<<DELIMITER` ... `DELIMITER` blocks; an unterminated block is an error."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            key, value = line.split("=", 1)
            if not key:
                raise ValueError(f"Invalid format '{line}'. Name must not be empty")
        elif heredoc >= 0:
            key, delimiter = line.split("<<", 1)
            if not key or not delimiter:
                raise ValueError(f"Invalid format '{line}'. Name must not be empty and delimiter must not be empty")
            body = []
            while True:
                if i >= len(lines) or (i == len(lines) - 1 and lines[i] != delimiter and not text.endswith("\n")):
                    raise ValueError(f"Invalid value. Matching delimiter not found '{delimiter}'")
                if lines[i] == delimiter:
                    i += 1
                    break
                body.append(lines[i])
                i += 1
            value = "\n".join(body)
        else:
            raise ValueError(f"Invalid format '{line}'")
        values[key] = value
    return values


# The github context keys the runner exports as GITHUB_<KEY> (actions/runner GitHubContext.cs).
EXPORTED = ("action", "action_path", "action_ref", "action_repository", "actor", "api_url", "base_ref",
            "event_name", "event_path", "graphql_url", "head_ref", "job", "ref", "ref_name", "ref_protected",
            "ref_type", "repository", "repository_owner", "retention_days", "run_attempt", "run_id", "run_number",
            "server_url", "sha", "triggering_actor", "workflow", "workflow_ref", "workflow_sha", "workspace")


def _process_env(job: _Job, scope: _Scope, step_env: dict, commands: _FileCommands, action_name: str) -> dict:
    """Machine env < workflow env < job env (< GITHUB_ENV) < callers' step env < step env;
    then PATH additions, then the GITHUB_*/RUNNER_* variables, which nothing overrides."""
    env = {**job.base_env, **job.env, **scope.caller_env, **step_env}
    if job.path_prepend:
        env["PATH"] = os.pathsep.join([*reversed(job.path_prepend), env.get("PATH", "")])
    github = dict(job.github_ctx, action=action_name, action_path=scope.action_path)
    env.update({f"GITHUB_{key.upper()}": github[key] for key in EXPORTED if key != "action_path" or github[key]})
    env.update(commands.env())
    env.update({f"RUNNER_{key.upper()}": value for key, value in job.runner_ctx.items()})
    env["RUNNER_WORKSPACE"] = str(job.workspace.parent)
    return env


def _next_action_name(job: _Job, step: dict, kind: str) -> str:
    if step.get("id"):
        return str(step["id"])
    job.action_counter += 1
    return f"__{kind}" if job.action_counter == 1 else f"__{kind}_{job.action_counter}"


def _working_directory(job: _Job, scope: _Scope, step: dict, ctx: Context) -> Path:
    raw = step.get("working-directory", None if scope.composite else scope.defaults.get("working-directory"))
    if raw is None:
        return job.workspace
    path = job.workspace / interpolate(raw, ctx)
    if not path.is_dir():
        raise StepFailed(f"An error occurred trying to start process: working directory '{path}' does not exist")
    return path


def _execute(job: _Job, command: list[str], env: dict, cwd: Path, timeout: float, result: StepResult) -> None:
    """Run a process in its own process group, so a timeout kills everything it started."""
    try:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    except FileNotFoundError as exc:
        raise StepFailed(f"An error occurred trying to start process '{command[0]}': {exc.strerror}") from None
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        result.stdout += out.decode("utf-8", "replace")
        result.stderr += err.decode("utf-8", "replace")
        result.exit_code = -signal.SIGKILL
        raise StepFailed(f"The step has timed out after {timeout:g} seconds") from None
    result.stdout += out.decode("utf-8", "replace")
    result.stderr += err.decode("utf-8", "replace")
    result.exit_code = process.returncode
    for line in result.stdout.splitlines():
        if line.startswith("::add-mask::") and line[12:]:
            job.masks.add(line[12:])


def _timeout(job: _Job, step: dict, ctx: Context) -> float:
    minutes = step.get("timeout-minutes")
    if minutes is None:
        return job.step_timeout
    return min(job.step_timeout, float(evaluate_value(minutes, ctx)) * 60)


def _run_script(job, scope, step, ctx, step_env, commands, result) -> None:
    shell = step.get("shell", None if scope.composite else scope.defaults.get("shell"))
    if scope.composite and shell is None:
        raise StepFailed("Required property is missing: shell (a composite action's run steps must set it)")
    template = SHELLS.get(shell, shell)
    if "{0}" not in template:
        raise StepFailed(f"Invalid shell option. Shell path should contain '{{0}}': {shell}")
    script = interpolate(step["run"], ctx)
    suffix = ".py" if template.split()[0] == "python" else ".sh"
    path = job.runner_temp / f"{uuid.uuid4()}{suffix}"
    path.write_text(script, encoding="utf-8")
    command = [part.replace("{0}", str(path)) for part in template.split()]
    env = _process_env(job, scope, step_env, commands, _next_action_name(job, step, "run"))
    _execute(job, command, env, _working_directory(job, scope, step, ctx), _timeout(job, step, ctx), result)
    if result.exit_code != 0:
        raise StepFailed(f"Process completed with exit code {result.exit_code}.")


# ── uses: ──

def _run_uses(job, scope, step, ctx, step_env, commands, result) -> None:
    uses = str(step["uses"])
    with_ = {name: interpolate(value, ctx) for name, value in _str_map(step.get("with"), "with").items()}
    if uses.startswith("./"):
        _run_composite(job, scope, step, uses, with_, ctx, step_env, result)
        return
    name, _, ref = uses.partition("@")
    handler = BUILTIN_ACTIONS.get(name.lower())
    if handler is None or not ref:
        raise StepFailed(f"emulator does not know {uses}")
    env = _process_env(job, scope, step_env, commands, _next_action_name(job, step, name.replace("/", "_")))
    handler(job, scope, step, with_, env, ctx, result)


def _bool_input(value: str | None, default: bool) -> bool:
    return default if value in (None, "") else value.strip().lower() == "true"


def _checkout(job, scope, step, with_, env, ctx, result) -> None:
    """actions/checkout: by default (`clean: true`) nothing of the previous run survives:
    untracked and ignored files (a stale `.reconciler/` store) are removed, then the
    test's callback puts the repository in place. `fetch-depth` is the callback's business."""
    target = job.workspace / with_.get("path", "")
    target.mkdir(parents=True, exist_ok=True)
    if _bool_input(with_.get("clean"), True):
        for child in target.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    try:
        job.checkout(target)
    except Exception as exc:  # the callback's failure is the step's failure
        raise StepFailed(f"checkout failed: {type(exc).__name__}: {exc}") from None
    result.outputs.update(ref=job.github_ctx["ref"], commit=job.github_ctx["sha"])
    result.stdout += f"checked out {job.github_ctx['repository']}@{job.github_ctx['sha']} into {target}\n"


def _setup_python(job, scope, step, with_, env, ctx, result) -> None:
    """actions/setup-python: the running Python is used; a different requested version is
    reported, since the real action would install it."""
    version = ".".join(map(str, sys.version_info[:3]))
    wanted = with_.get("python-version", "")
    if wanted and not version.startswith(wanted.rstrip(".x*")):
        result.stdout += f"::warning::emulator: python-version {wanted} requested, {version} used\n"
    result.outputs.update({"python-version": version, "python-path": sys.executable, "cache-hit": "false"})


def _search(workspace: Path, spec: str) -> tuple[list[Path], Path | None]:
    """actions/upload-artifact's search: newline-separated paths or globs, `!` excludes;
    files keep their path relative to the least common ancestor of the search paths."""
    includes, excludes = [], []
    for line in (l.strip() for l in spec.splitlines()):
        if line:
            (excludes if line.startswith("!") else includes).append(line.lstrip("!"))
    files: dict[Path, None] = {}
    roots = []
    for pattern in includes:
        full = (workspace / pattern)
        base = Path(str(full).split("*")[0].split("?")[0].split("[")[0])
        roots.append(base if base.is_dir() else base.parent)
        for match in sorted(glob(str(full), recursive=True)):
            match = Path(match)
            for file in ([match] if match.is_file() else sorted(p for p in match.rglob("*") if p.is_file())):
                files[file.resolve()] = None
    excluded = {Path(m).resolve() for pattern in excludes for m in glob(str(workspace / pattern), recursive=True)}
    found = [f for f in files if f not in excluded and not any(p in excluded for p in f.parents)]
    if not found:
        return [], None
    root = Path(os.path.commonpath([str(r.resolve()) for r in roots])) if len(roots) > 1 else roots[0].resolve()
    return found, root


def _upload_artifact(job, scope, step, with_, env, ctx, result) -> None:
    name = with_.get("name") or "artifact"
    if "path" not in with_ or not with_["path"].strip():
        raise StepFailed("Input required and not supplied: path")
    files, root = _search(job.workspace, with_["path"])
    if not files:
        mode = with_.get("if-no-files-found") or "warn"
        message = f"No files were found with the provided path: {with_['path']}. No artifacts will be uploaded."
        if mode == "error":
            raise StepFailed(message)
        if mode == "warn":
            result.stdout += f"::warning::{message}\n"
        return
    destination = job.artifacts_root / name
    if destination.exists():
        if not _bool_input(with_.get("overwrite"), False):
            raise StepFailed(f"Failed to CreateArtifact: Received non-retryable error: Failed request: (409) "
                             f"Conflict: an artifact with this name already exists on the workflow run")
        shutil.rmtree(destination)
    for file in files:
        target = destination / file.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
    job.artifacts[name] = destination
    result.outputs.update({"artifact-id": str(len(job.artifacts)), "artifact-url":
                           f"https://github.com/{job.github_ctx['repository']}/actions/runs/"
                           f"{job.github_ctx['run_id']}/artifacts/{len(job.artifacts)}"})
    result.stdout += f"uploaded {len(files)} file(s) as artifact {name}\n"


def _download_artifact(job, scope, step, with_, env, ctx, result) -> None:
    target = job.workspace / with_.get("path", "")
    names = [with_["name"]] if with_.get("name") else sorted(
        p.name for p in job.artifacts_root.iterdir()) if job.artifacts_root.is_dir() else []
    for name in names:
        source = job.artifacts_root / name
        if not source.is_dir():
            raise StepFailed(f"Unable to download artifact(s): Artifact not found for name: {name}")
        shutil.copytree(source, target if with_.get("name") else target / name, dirs_exist_ok=True)
    result.outputs["download-path"] = str(target)


def _github_script(job, scope, step, with_, env, ctx, result) -> None:
    """actions/github-script: the script runs in node (github_script_host.js) against the
    FakeGitHub, which is written to a file before and read back after."""
    inputs = {name: interpolate(default, ctx) for name, default in GITHUB_SCRIPT_INPUTS.items()}
    inputs.update(with_)
    unexpected = sorted(set(with_) - set(GITHUB_SCRIPT_INPUTS) - {"script"})
    if unexpected:
        result.stdout += f"::warning::Unexpected input(s) {unexpected}\n"
    for name, value in inputs.items():
        env[f"INPUT_{name.replace(' ', '_').upper()}"] = value
    folder = job.runner_temp / "_github_script"
    folder.mkdir(exist_ok=True)
    state_file, control_file = folder / f"state-{uuid.uuid4()}.json", folder / f"control-{uuid.uuid4()}.json"
    state_file.write_text(json.dumps(job.github.to_json()), encoding="utf-8")
    own_token = inputs.get("github-token") == job.secrets["GITHUB_TOKEN"]
    control_file.write_text(json.dumps({
        "state": str(state_file), "permissions": job.permissions if own_token else None,
        "artifacts": [{"id": i + 1, "name": name, "expired": False,
                       "size_in_bytes": sum(f.stat().st_size for f in stored.rglob("*") if f.is_file())}
                      for i, (name, stored) in enumerate(job.artifacts.items())]}), encoding="utf-8")
    try:
        _execute(job, ["node", str(HOST_JS), str(control_file)], env, job.workspace, _timeout(job, step, ctx), result)
    finally:
        if state_file.exists() and state_file.stat().st_size:
            job.github.load_json(json.loads(state_file.read_text(encoding="utf-8")))
    if result.exit_code != 0:
        failures = [line[len("::error::"):] for line in result.stdout.splitlines() if line.startswith("::error::")]
        raise StepFailed(failures[-1].replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")
                         if failures else f"node exited with {result.exit_code}")


BUILTIN_ACTIONS = {
    "actions/checkout": _checkout,
    "actions/setup-python": _setup_python,
    "actions/upload-artifact": _upload_artifact,
    "actions/download-artifact": _download_artifact,
    "actions/github-script": _github_script,
}


def _run_composite(job, scope, step, uses, with_, ctx, step_env, result) -> None:
    folder = (job.workspace / uses).resolve()
    metadata = next((folder / n for n in ("action.yml", "action.yaml") if (folder / n).is_file()), None)
    if metadata is None:
        raise StepFailed(f"Can't find 'action.yml' or 'action.yaml' under '{folder}'. "
                         f"Did you forget to run actions/checkout before running your local action?")
    action = load_yaml(metadata) or {}
    runs = _str_map(action.get("runs"), "runs")
    if runs.get("using") != "composite":
        raise StepFailed(f"emulator does not run {runs.get('using')!r} actions ({uses}); only composite")
    try:
        _validate_steps(runs.get("steps"), f"{metadata}: runs.steps")
    except EmulatorError as exc:
        raise StepFailed(str(exc)) from None
    declared = _str_map(action.get("inputs"), "inputs")
    given = {k.lower(): v for k, v in with_.items()}
    unexpected = sorted(set(given) - {k.lower() for k in declared})
    if unexpected:
        result.stdout += f"::warning::Unexpected input(s) {unexpected}, valid inputs are {sorted(declared)}\n"
    inner = _Scope(composite=True, inputs={}, action_path=str(folder), caller_env={**scope.caller_env, **step_env})
    defaults_ctx = _contexts(job, inner, CaseSensitiveDict({**job.env, **inner.caller_env}), COMPOSITE_CONTEXTS)
    for name, spec in declared.items():
        spec = spec or {}
        if name.lower() in given:
            inner.inputs[name] = given[name.lower()]
        elif "default" in spec:
            inner.inputs[name] = interpolate(spec["default"], defaults_ctx)
        elif spec.get("required"):
            raise StepFailed(f"Input required and not supplied: {name} (action {uses})")
        else:
            inner.inputs[name] = ""
    result.steps = _run_steps(job, inner, runs["steps"])
    result.stdout += "".join(s.stdout for s in result.steps)
    result.stderr += "".join(s.stderr for s in result.steps)
    outputs_ctx = _contexts(job, inner, CaseSensitiveDict({**job.env, **inner.caller_env}), COMPOSITE_CONTEXTS)
    for name, spec in _str_map(action.get("outputs"), "outputs").items():
        result.outputs[name] = interpolate((spec or {}).get("value", ""), outputs_ctx)
    if inner.status == "failure":
        failed = [s.name for s in result.steps if s.conclusion == "failure"]
        raise StepFailed(f"composite action {uses} failed at: {', '.join(failed)}")
