"""A policy repository as a team runs it on GitHub, for the GitOps loop tests.

- `origin` is a bare git repository (GitHub's copy); `dev` is a teammate's clone where
  commits are made and pushed; pull requests and merges are real git branches and merge
  commits, and `FakeGitHub` (tests/gha) holds the pull requests, comments and issues.
- The repository holds what a user copies from `examples/gitops/` (the workflows and the
  composite action, unchanged) and their own `policy.yaml`.
- The directory is the quickstart's two AD snapshots, kept outside the repository (they
  are the directory, not configuration), which tests edit to play hires and leavers.
- The runner is self-hosted: one workspace reused by every run (so `actions/checkout`'s
  cleaning matters), a tool cache that keeps the installed reconciler between runs, and
  `RECONCILER_STATE_DIR`, the repository variable naming where the store survives.
- reconciler itself is installed by the composite action from this checkout's wheel
  (tests/wheelhouse.py), with pip allowed no index: exactly what the kit would run.
"""
from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.gha import FakeGitHub, JobResult, run_job
from tests.ldif_edit import Snapshot
from tests.wheelhouse import Wheelhouse

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "examples" / "gitops"
QUICKSTART = ROOT / "examples" / "quickstart"
BOT = "github-actions[bot]"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def user_policy(directory: Path) -> str:
    """The team's policy: the quickstart's, reading the directory snapshots where they are, with the
    store's state where the runner keeps it (store.state_dir from the repository variable)."""
    text = (QUICKSTART / "policy.yaml").read_text()
    text = text.replace("path: corp.ldif", f"path: {directory / 'corp.ldif'}")
    text = text.replace("path: emea.ldif", f"path: {directory / 'emea.ldif'}")
    text = text.replace("  path: .reconciler/store.db", "  state_dir: '${RECONCILER_STATE_DIR}'")
    assert "state_dir" in text and str(directory) in text
    return text


@dataclass
class PolicyRepo:
    root: Path
    wheelhouse: Wheelhouse
    tool_cache: Path
    github: FakeGitHub = field(default_factory=FakeGitHub)
    run_id: int = 7000

    def __post_init__(self) -> None:
        self.origin, self.dev = self.root / "origin.git", self.root / "dev"
        self.directory, self.state = self.root / "directory", self.root / "runner-state"
        self.workspace = self.root / "runner" / "work" / "policies"
        for folder in (self.directory, self.state, self.workspace):
            folder.mkdir(parents=True)
        for name in ("corp.ldif", "emea.ldif"):
            shutil.copy(QUICKSTART / name, self.directory / name)
        git(self.root, "init", "-q", "--bare", "-b", "main", str(self.origin))
        git(self.root, "clone", "-q", str(self.origin), str(self.dev))
        git(self.dev, "config", "user.email", "alice@corp.example.com")
        git(self.dev, "config", "user.name", "Alice")
        git(self.dev, "checkout", "-q", "-b", "main")
        shutil.copytree(KIT / ".github", self.dev / ".github")
        shutil.copy(KIT / ".gitignore", self.dev / ".gitignore")
        shutil.copy(KIT / "README.md", self.dev / "README.md")
        git(self.dev, "add", "-A")
        git(self.dev, "commit", "-q", "-m", "The reconciler GitOps kit")
        git(self.dev, "push", "-q", "origin", "main")
        self.policy_text = user_policy(self.directory)

    # ── git and pull requests ──

    def head(self, ref: str = "main") -> str:
        return git(self.dev, "rev-parse", ref)

    def _commit(self, files: dict[str, str | None], message: str) -> str:
        for name, text in files.items():
            path = self.dev / name
            if text is None:
                path.unlink()
            else:
                path.write_text(text)
        git(self.dev, "add", "-A")
        git(self.dev, "commit", "-q", "-m", message)
        return self.head("HEAD")

    def open_pull_request(self, title: str, files: dict[str, str | None]) -> int:
        number = len(self.github.issue_records) + 1
        branch = f"change-{number}"
        base = self.head("main")
        git(self.dev, "checkout", "-q", "-b", branch, "main")
        sha = self._commit(files, title)
        git(self.dev, "push", "-q", "origin", branch)
        git(self.dev, "checkout", "-q", "main")
        self.github.open_pull_request(number, title, sha, branch, base_ref="main", base_sha=base)
        return number

    def push_to_pull_request(self, number: int, files: dict[str, str | None], message: str) -> str:
        """Another commit on the pull request's branch (a `synchronize` event)."""
        branch = self.github.pull(number)["head"]["ref"]
        git(self.dev, "checkout", "-q", branch)
        sha = self._commit(files, message)
        git(self.dev, "push", "-q", "origin", branch)
        git(self.dev, "checkout", "-q", "main")
        self.github.pull_records[str(number)]["head"]["sha"] = sha
        self.github.associate(sha, number)
        return sha

    def merge(self, number: int) -> tuple[str, str]:
        """Merge the pull request into main as GitHub's merge button does; (before, after) of the push."""
        branch = self.github.pull(number)["head"]["ref"]
        before = self.head("main")
        git(self.dev, "checkout", "-q", "main")
        git(self.dev, "merge", "-q", "--no-ff", "-m", f"Merge pull request #{number}", branch)
        git(self.dev, "push", "-q", "origin", "main")
        after = self.head("main")
        self.github.merge(number, after)
        return before, after

    def policy(self, ref: str = "main") -> str:
        return git(self.dev, "show", f"{ref}:policy.yaml")

    # ── running the workflows ──

    def _checkout(self, sha: str):
        def lay(path: Path) -> None:  # what actions/checkout with fetch-depth 0 leaves: the repository at sha
            git(path, "clone", "-q", str(self.origin), ".")
            git(path, "checkout", "-q", "--detach", sha)
        return lay

    def run(self, workflow: str, job: str, *, event_name: str, payload: dict, sha: str, ref: str) -> JobResult:
        self.run_id += 1
        temp = self.root / "runner" / "temp" / str(self.run_id)
        # the workflow as committed (the tests never change it, so the teammate's clone has the same file)
        return run_job(
            self.dev / ".github" / "workflows" / workflow, job, event_name=event_name, payload=payload, github=self.github, workspace=self.workspace,
            checkout=self._checkout(sha), runner_temp=temp, tool_cache=self.tool_cache, sha=sha, ref=ref,
            secrets={"CORP_BIND_PASSWORD": "not-used-by-snapshots"},
            vars={"RECONCILER_STATE_DIR": str(self.state)},
            env=self.wheelhouse.offline_env(), run_id=self.run_id, artifacts=self.root / "artifacts" / str(self.run_id),
            default_permissions="restricted", step_timeout=300,
        )

    def run_plan(self, number: int) -> JobResult:
        pull = self.github.pull(number)
        return self.run("plan.yml", "plan", event_name="pull_request",
                        payload=self.github.pull_request_payload(number, "synchronize"),
                        sha=pull["head"]["sha"], ref=f"refs/pull/{number}/merge")

    def run_apply(self, before: str, after: str) -> JobResult:
        return self.run("apply.yml", "apply", event_name="push", payload=self.github.push_payload(after, before=before),
                        sha=after, ref="refs/heads/main")

    def run_drift(self) -> JobResult:
        return self.run("drift.yml", "sync", event_name="schedule", payload={"schedule": "17 * * * *"},
                        sha=self.head("main"), ref="refs/heads/main")

    # ── what a team looks at ──

    def bot_comments(self, number: int, marker: str = "<!-- reconciler-plan") -> list[str]:
        return [c["body"] for c in self.github.comments(number)
                if c["user"]["login"] == BOT and c["body"].startswith(marker)]

    def snapshot(self, name: str = "corp") -> Snapshot:
        return Snapshot(self.directory / f"{name}.ldif")

    def sql(self, query: str, *params) -> list[tuple]:
        with sqlite3.connect(self.state / "store.db") as db:
            return db.execute(query, params).fetchall()

    def statuses(self) -> dict[str, str]:
        return dict(self.sql("SELECT email, status FROM users"))

    def history(self) -> list[dict]:
        return [json.loads(counts) | {"outcome": outcome} for outcome, counts in
                self.sql("SELECT outcome, counts FROM apply_history ORDER BY id")]


def review_line(comment: str) -> dict:
    found = re.search(r"<!-- reconciler-review (\{.*?\}) -->", comment)
    assert found, comment[:2000]
    return json.loads(found.group(1))
