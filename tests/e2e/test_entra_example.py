"""examples/seeds/hideez-entra-hybrid.yaml: Hideez's 'several domains, on-premises and Azure AD, merged' with the AD
snapshot of the quickstart and the tenant it syncs to, offline (examples/entra/cloud.json): what the policy's
comments promise."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, reconciler_executable


@pytest.fixture
def seeds(tmp_path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns(".reconciler", "gitops"))
    return tmp_path / "examples" / "seeds"


def run(seeds: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([reconciler_executable(), *args], cwd=seeds, capture_output=True, text=True, timeout=120)


def plan(seeds: Path) -> dict:
    done = run(seeds, "plan", "hideez-entra-hybrid.yaml", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_synced_people_are_one_user_even_when_their_cloud_mail_differs(seeds):
    result = plan(seeds)
    users = {c["subject"]: c for c in result["changes"] if c["kind"] == "user" and c["action"] == "create"}
    chen = users["margaret.chen@corp.example.com"]  # margaret.chen@example.com in the cloud
    assert [link.split(":")[0] for link in chen["after"]["links"]] == ["cloud", "corp"]
    assert "margaret.chen@example.com" not in users and "ravi.patel@example.com" not in users
    assert users["nlindqvist@corp.example.com"]["after"]["links"][0].startswith("cloud:")  # no mail in AD
    hybrid = [u for u in users.values() if len(u["after"]["links"]) == 2]
    assert len(hybrid) == 9  # the enabled members of Security Key Owners


def test_cloud_only_people_come_in_and_guests_and_the_disabled_do_not(seeds):
    result = plan(seeds)
    subjects = {c["subject"] for c in result["changes"] if c["kind"] == "user"}
    assert {"ines.moreau@example.com", "kenji.ito@example.com", "lina.santos@example.com", "hugo.lambert@example.com",
            "ykaur@example.onmicrosoft.com", "akarim@corp.example.com"} <= subjects
    assert "pat@contoso.example" not in subjects and "tessa.quinn@example.com" not in subjects
    ignored = {(v["directory"], v["account_name"]): v["reason"] for v in result["ignored"]}
    assert ignored[("cloud", "tessa.quinn@example.com")] == "disabled in cloud"
    assert ("cloud", "pat_contoso.example#EXT#@example.onmicrosoft.com") not in ignored  # not read: userType Guest
    assert result["directories"]["cloud"] == {"read": 235, "in_scope": 18, "imported": 15, "ignored": 218, "disabled": 2}


def test_a_cloud_account_duplicating_a_synced_person_is_a_conflict(seeds):
    ignored = {(v["directory"], v["account_name"]): v["reason"] for v in plan(seeds)["ignored"]}
    assert ignored[("cloud", "samuel.osei@example.onmicrosoft.com")] == (
        "conflict: its email samuel.osei@corp.example.com is that of CN=Samuel Osei,OU=Operations,OU=People,"
        "DC=corp,DC=example,DC=com in corp, whose record in cloud by onPremisesImmutableId is sosei@corp.example.com; "
        "it is not imported")


def test_explain_and_preview_work_offline(seeds):
    done = run(seeds, "explain", "hideez-entra-hybrid.yaml", "margaret.chen@example.com", "--format", "json")
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stdout)["entries"][0]
    assert (entry["directory"], entry["verdict"], entry["matched_by"]) == ("cloud", "imported", ["mail"])
    assert "joined to CN=Margaret Chen,OU=People,DC=corp,DC=example,DC=com in corp by onPremisesImmutableId" \
           in entry["reason"]
    assert entry["checks"]["member_of"]["groups"][0]["path"] == ["Security Key Owners", "Hardware Key Users"]
    preview = run(seeds, "preview", "hideez-entra-hybrid.yaml", "--limit", "3")
    assert preview.returncode == 0 and "cloud: 235 entries read, 15 would be imported" in preview.stdout
    check = run(seeds, "check", "hideez-entra-hybrid.yaml")
    assert "OK   cloud: snapshot:" in check.stdout
