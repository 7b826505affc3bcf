"""End-to-end tests run the installed `reconciler` console script on a copy of the quickstart company."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ldif_edit import Snapshot

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"


def reconciler_executable() -> str:
    found = shutil.which("reconciler")
    if found is None:
        pytest.fail("the reconciler console script is not installed; run tests/run (it does pip install -e .)")
    return found


@dataclass
class Result:
    code: int
    out: str
    err: str


class Company:
    """A private copy of Example Corp: its policy, its two snapshots and its store."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.policy = folder / "policy.yaml"
        self.store = folder / ".reconciler" / "store.db"

    def run(self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
        environment.update(env or {})
        done = subprocess.run([reconciler_executable(), *args], cwd=self.folder, capture_output=True, text=True,
                              env=environment, input=stdin, timeout=120)
        return Result(done.returncode, done.stdout, done.stderr)

    def plan_json(self, *extra: str) -> dict:
        result = self.run("plan", "policy.yaml", "--format", "json", *extra)
        assert result.code == 0, result.err
        return json.loads(result.out)

    def apply(self, *extra: str) -> Result:
        result = self.run("apply", "policy.yaml", "--auto-approve", *extra)
        assert result.code == 0, result.err + result.out
        return result

    def snapshot(self, name: str = "corp") -> Snapshot:
        return Snapshot(self.folder / f"{name}.ldif")

    def sql(self, query: str, *params) -> list[tuple]:
        with sqlite3.connect(self.store) as db:  # as an application would, with foreign keys on (docs/store-schema.md)
            db.execute("PRAGMA foreign_keys = ON")
            return db.execute(query, params).fetchall()

    def user(self, email: str) -> dict | None:
        rows = self.sql("SELECT key, email, display_name, team_key, status, managed, attributes FROM users "
                        "WHERE lower(email) = lower(?)", email)
        if not rows:
            return None
        assert len(rows) == 1, rows
        key, mail, name, team, status, managed, attributes = rows[0]
        return {"key": key, "email": mail, "display_name": name, "team": team, "status": status,
                "managed": bool(managed), "attributes": json.loads(attributes)}

    def set_policy(self, old: str, new: str) -> None:
        text = self.policy.read_text()
        assert old in text, old
        self.policy.write_text(text.replace(old, new))


@pytest.fixture
def company(tmp_path) -> Company:
    folder = tmp_path / "company"
    shutil.copytree(QUICKSTART, folder, ignore=shutil.ignore_patterns(".reconciler", "*.py", "__pycache__"))
    return Company(folder)


@pytest.fixture
def synced(company) -> Company:
    """The company after its first apply."""
    company.apply()
    return company


def changes(plan: dict, action: str | None = None, kind: str = "user") -> list[dict]:
    return [c for c in plan["changes"] if c["kind"] == kind and (action is None or c["action"] == action)]


def remove_people(company: Company, accounts) -> None:
    """Leavers: their entries gone from the corp snapshot (and from the groups that listed them)."""
    corp = company.snapshot()
    for account in accounts:
        corp.remove(corp.find(sAMAccountName=account))
    corp.save()
