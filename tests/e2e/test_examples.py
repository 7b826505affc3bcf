"""Every bundled example validates and plans, and says what the seed scenario it stands for promises."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, reconciler_executable

# the GitOps kit's policy points at a live AD and its CA file, which the user adds: tests/unit/test_gitops_kit.py
# validates it, and tests/e2e/test_gitops_loop.py runs the kit's workflows on a policy that can plan here
EXAMPLES = sorted([*(p for p in ROOT.glob("examples/*/policy.yaml") if p.parent.name != "gitops"),
                   *ROOT.glob("examples/seeds/*.yaml")])


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([reconciler_executable(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def examples(tmp_path) -> Path:
    """A copy of examples/, so the stores they create stay out of the repository."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns(".reconciler"))
    return tmp_path / "examples"


def test_there_is_one_example_per_seed_scenario():
    names = {p.stem for p in EXAMPLES}
    assert {"policy", "eset-eee-teams-by-ou", "esmc-target-group", "hideez-key-owners", "sophos-per-domain-filters"} <= names


@pytest.mark.parametrize("policy", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_validates_and_plans_and_starts_with_the_schema_line(policy, examples):
    assert policy.read_text().startswith("# yaml-language-server: $schema=../../schemas/policy.schema.json")
    copy = examples / policy.relative_to(ROOT / "examples")
    assert run("validate", str(copy), cwd=examples).returncode == 0
    planned = run("plan", str(copy), "--format", "json", "--detailed-exitcode", cwd=examples)
    assert planned.returncode == 2, planned.stderr  # a fresh store: changes pending
    assert json.loads(planned.stdout)["summary"]["user.create"] > 0


def plan_of(name: str, examples: Path) -> dict:
    done = run("plan", f"seeds/{name}.yaml", "--format", "json", cwd=examples)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_hideez_imports_exactly_the_nested_members_of_security_key_owners_from_both_domains(examples):
    plan = plan_of("hideez-key-owners", examples)
    created = sorted(c["subject"] for c in plan["changes"] if c["action"] == "create" and c["kind"] == "user")
    assert created == sorted([
        "chinedu.okafor@corp.example.com", "jurgen.weiss@corp.example.com", "margaret.chen@corp.example.com",
        "nlindqvist@corp.example.com", "priya.raman@corp.example.com", "ravi.patel@corp.example.com",
        "samuel.osei@corp.example.com", "tom.baker@corp.example.com", "zoe.adams@corp.example.com",
        "amelie.laurent@example.com", "camille.fournier@emea.example.com", "eleanor.hughes@emea.example.com",
        "matthias.kruger@emea.example.com",
    ])
    hannah = next(v for v in plan["ignored"] if v["account_name"] == "hberg")
    assert hannah["reason"] == "disabled in corp"


def test_esmc_puts_everyone_in_the_target_group(examples):
    plan = plan_of("esmc-target-group", examples)
    teams = {c["after"]["team"] for c in plan["changes"] if c["action"] == "create" and c["kind"] == "user"}
    assert teams == {"Synced from AD"}
    subjects = {c["subject"] for c in plan["changes"] if c["kind"] == "user"}
    assert "amelie.laurent@example.com" in subjects  # a member of R&D (Europe) * only: the special characters work


def test_sophos_creates_groups_only_with_synced_members_and_honours_the_group_filter(examples):
    plan = plan_of("sophos-per-domain-filters", examples)
    team_names = {c["after"]["name"] for c in plan["changes"] if c["kind"] == "team"}
    assert "Empty Project" not in team_names and "All Contractors" not in team_names
    assert {"VPN Users", "R&D (Europe) *", "Security Key Owners"} <= team_names
    assert not any("finance" in (c["after"] or {}).get("attributes", {}).get("department", "").lower()
                   for c in plan["changes"] if c["kind"] == "user")
