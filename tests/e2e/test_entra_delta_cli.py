"""kind entra-id with `delta:` through the console script, against the loopback fake of Microsoft Graph
(tests/servers/fake_graph.py, the only server the tests fake; its users/delta and groups/delta follow
https://learn.microsoft.com/en-us/graph/delta-query-overview, .../api/user-delta and .../api/group-delta).

As a team runs it: the first plan reads the tenant in full and says why; after the apply, what changes in the
tenant (a department edited, an account disabled, someone leaving the member_of group, a hire joining it, a
hard delete) is read as a delta, and the plan is the plan a full read makes (the same policy without
`delta:` on the same store); a delta link Graph refuses (410 Gone) means a full read, said in the plan."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.e2e.test_entra_cli import APP, SECRET, fake, folder, run, shows_no_secret, tls  # noqa: F401 (fixtures)


@pytest.fixture
def policies(folder: Path) -> tuple[str, str]:
    """policy.yaml reads deltas; full.yaml is the same policy read in full, on the same store."""
    text = (folder / "policy.yaml").read_text()
    (folder / "full.yaml").write_text(text)
    (folder / "policy.yaml").write_text(text.replace("    users: {member_of: [Key Owners]}",
                                                     "    users: {member_of: [Key Owners]}\n    delta: {full_read_every: 1d}"))
    return "policy.yaml", "full.yaml"


def plan(folder: Path, policy: str) -> dict:
    done = run(folder, "plan", policy, "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def same_plan(delta: dict, full: dict) -> None:
    for key in ("changes", "directories", "ignored", "summary", "managed_users"):
        assert delta[key] == full[key], key


def test_delta_plans_through_the_console_script_equal_full_read_plans(folder, fake, policies):
    with_delta, in_full = policies
    first = run(folder, "plan", with_delta)
    assert first.returncode == 0, first.stderr
    assert "cloud: full read (no delta state is kept yet)" in first.stdout
    assert run(folder, "apply", with_delta, "--auto-approve").returncode == 0

    key_owners = next(g["id"] for g in fake.groups if g["displayName"] == "Key Owners")
    direct = [m["id"] for m in fake.members[key_owners.lower()] if m["@odata.type"].endswith("user")]
    fake.update_user(direct[0], department="Research")
    fake.disable_user(direct[1])
    fake.remove_member(key_owners, direct[2])
    fake.delete_user(direct[3], hard=True)
    hire = str(uuid.UUID(int=7))
    fake.add_user({"id": hire, "accountEnabled": True, "displayName": "New Hire", "mail": "new.hire@contoso.com",
                   "department": "Sales", "userPrincipalName": "new.hire@contoso.com", "userType": "Member"})
    fake.add_member(key_owners, hire)

    delta, full = plan(folder, with_delta), plan(folder, in_full)
    same_plan(delta, full)
    assert [(r["directory"], r["kind"]) for r in delta["reads"]] == [("cloud", "delta")]
    assert sorted(c["action"] for c in delta["changes"]) == ["create", "deactivate", "deactivate", "deactivate", "update"]
    text = run(folder, "plan", with_delta)
    assert "cloud: delta read (" in text.stdout
    shows_no_secret(text, fake)

    assert run(folder, "apply", with_delta, "--auto-approve").returncode == 0
    assert plan(folder, with_delta)["changes"] == [] == plan(folder, in_full)["changes"]

    fake.expire_delta_links()
    fake.update_user(direct[4], department="Finance")
    refused = plan(folder, with_delta)
    same_plan(refused, plan(folder, in_full))
    note = refused["reads"][0]
    assert note["kind"] == "full" and "410" in note["reason"], note
