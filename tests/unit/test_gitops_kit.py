"""The GitOps kit in examples/gitops/ is complete and consistent: its policy
validates once the CA file and the environment are there, the files its README
lists exist, CODEOWNERS guards what matters and .gitignore keeps state out of git."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.policy import load_policy, validate_policy

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "examples" / "gitops"
ENV = {"CORP_BIND_PASSWORD": "not-a-real-password", "RECONCILER_STATE_DIR": "/var/lib/reconciler"}


@pytest.fixture
def kit(tmp_path, monkeypatch) -> Path:
    """A copy of the kit as a user has it after step 4: with their CA certificate in certs/."""
    copy = tmp_path / "policy-repo"
    shutil.copytree(KIT, copy)
    (copy / "certs" / "corp-ca.pem").write_text("-----BEGIN CERTIFICATE-----\nplaceholder\n-----END CERTIFICATE-----\n")
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return copy


def test_the_kit_policy_validates(kit):
    problems = validate_policy(kit / "policy.yaml")
    assert problems == [], "\n".join(map(str, problems))


def test_the_kit_policy_keeps_the_store_where_checkout_does_not_clean(kit, tmp_path, monkeypatch):
    state = tmp_path / "runner-state"
    monkeypatch.setenv("RECONCILER_STATE_DIR", str(state))
    policy = load_policy(kit / "policy.yaml")
    assert Path(policy.store.file()) == state / "store.db"


def test_without_the_ca_file_validate_says_where_it_goes(kit):
    (kit / "certs" / "corp-ca.pem").unlink()
    messages = [str(p) for p in validate_policy(kit / "policy.yaml")]
    assert len(messages) == 1 and "CA file 'certs/corp-ca.pem' does not exist" in messages[0]


def test_the_kit_policy_is_a_live_ad_with_secrets_by_reference_and_every_line_commented():
    text = (KIT / "policy.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=../../schemas/policy.schema.json\n")
    for needle in ("kind: active-directory", "ldaps://dc1.corp.example.com", "ldaps://dc2.corp.example.com",
                   "'CORP\\svc-reconciler'", "'${CORP_BIND_PASSWORD}'", "ca_file: certs/corp-ca.pem",
                   "member_of:", "mode: ou-teams", "when_out_of_scope: deactivate", "kind: sqlite",
                   "state_dir: '${RECONCILER_STATE_DIR}'"):
        assert needle in text, needle
    uncommented = [line for line in text.splitlines() if line.strip() and "#" not in line]
    assert uncommented == [], uncommented


def readme_files() -> list[str]:
    readme = (KIT / "README.md").read_text()
    section = readme.split("## What each file does", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE)


def test_every_file_the_kit_readme_lists_exists():
    listed = readme_files()
    assert {"policy.yaml", ".github/CODEOWNERS", ".gitignore", "certs/README.md", ".github/workflows/plan.yml",
            ".github/workflows/apply.yml", ".github/workflows/drift.yml"} <= set(listed)
    missing = [name for name in listed if not (KIT / name).is_file()]
    assert missing == []


def test_every_file_of_the_kit_is_listed_in_its_readme():
    present = {p.relative_to(KIT).as_posix() for p in KIT.rglob("*") if p.is_file()} - {"README.md"}
    assert present - set(readme_files()) == set()


def codeowners() -> list[tuple[str, list[str]]]:
    rules = []
    for line in (KIT / ".github" / "CODEOWNERS").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            pattern, *owners = line.split()
            rules.append((pattern, owners))
    return rules


def owners_of(path: str) -> list[str]:
    """The owners GitHub would pick for `path`: the last matching rule (the patterns used here
    are only root-anchored files and folders)."""
    found: list[str] = []
    for pattern, owners in codeowners():
        anchored = pattern.lstrip("/")
        if path == anchored or (anchored.endswith("/") and path.startswith(anchored)):
            found = owners
    return found


@pytest.mark.parametrize("path", ["policy.yaml", "certs/corp-ca.pem", ".github/workflows/apply.yml",
                                  ".github/actions/reconciler/action.yml", ".github/CODEOWNERS"])
def test_codeowners_covers_the_policy_the_certificates_and_the_workflows(path):
    assert owners_of(path) == ["@acme/identity-admins"]


def test_gitignore_keeps_state_and_scratch_files_out_of_git(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(KIT, repo)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=repo).returncode == 0

    for path in (".reconciler/", ".reconciler/store.db", "plan.json", "base-policy.yaml", "review.json",
                 "store.db", "reconciler-1.out"):
        assert ignored(path), path
    for path in ("policy.yaml", "certs/corp-ca.pem", "certs/README.md", ".github/CODEOWNERS", ".github/workflows/apply.yml"):
        assert not ignored(path), path
