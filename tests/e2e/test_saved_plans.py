"""A saved plan is evidence, not an instruction: `apply --plan` applies only what the policy,
the directories and the store still produce.

Each forgery here is what an attacker with write access to the plan file (an artifact, a
shared folder) would do: edit the changes or the safety inputs, then recompute the unkeyed
digest so the file looks untouched. Every one must be refused with exit 3, change nothing
in the store, record nothing as applied, and print one line without a traceback.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from reconciler.plan.document import content_digest
from tests.e2e.conftest import changes, reconciler_executable, remove_people

SOSEI = "samuel.osei@corp.example.com"


def store_rows(company) -> list[tuple]:
    return company.sql("SELECT key, email, display_name, team_key, status, managed, attributes FROM users ORDER BY key")


def reseal(document: dict) -> str:
    """What a forger does after editing: recompute the digest, which anyone can."""
    document["digest"] = content_digest(document)
    return json.dumps(document, indent=2, sort_keys=True)


@pytest.fixture
def saved(synced, tmp_path):
    """A real saved plan with one leaver in it, and the store as it was before any apply."""
    remove_people(synced, ["sosei"])
    # a user made by hand in the application, whom no directory entry matches: a forger's target for adoption
    synced.sql("INSERT INTO users (key, email, display_name, status, managed, attributes, created_at, updated_at) "
               "VALUES ('local:mallory', 'mallory@evil.example', 'Mallory', 'active', 0, '{}', '2026-01-01', '2026-01-01')")
    plan_file = tmp_path / "plan.json"
    made = synced.run("plan", "policy.yaml", "--out", str(plan_file))
    assert made.code == 0, made.err
    return synced, plan_file, json.loads(plan_file.read_text()), store_rows(synced)


def a_managed_user(document_or_company):
    rows = document_or_company.sql("SELECT key, email FROM users WHERE managed = 1 AND email <> ? ORDER BY key LIMIT 1", SOSEI)
    return rows[0]


def forge_extra_create(company, document):
    document["changes"].insert(0, {
        "action": "create", "kind": "user", "key": "corp:00000000-0000-0000-0000-00000000beef", "subject": "mallory@evil.example",
        "before": None, "reason": "new in corp",
        "after": {"email": "mallory@evil.example", "display_name": "Mallory", "attributes": {}, "team": None,
                  "links": ["corp:00000000-0000-0000-0000-00000000beef"], "status": "active"}})
    document["summary"] = {"user.create": 1, **document["summary"]}


def forge_changed_email(company, document):
    key, email = a_managed_user(company)
    document["changes"].insert(0, {"action": "update", "kind": "user", "key": key, "subject": email,
                                   "before": {"email": email}, "after": {"email": "mallory@evil.example"},
                                   "reason": "store differs from corp in email; the directory's data wins"})
    document["summary"] = {"user.update": 1, **document["summary"]}


def forge_adoption(company, document):
    """The hand-made mallory adopted as a directory person: managed, linked, beyond the next plan's reach."""
    key, email = a_managed_user(company)
    document["changes"].insert(0, {"action": "adopt", "kind": "user", "key": "corp:forged", "subject": "mallory@evil.example",
                                   "before": {"key": "local:mallory", "email": "mallory@evil.example"},
                                   "after": {"email": "mallory@evil.example", "display_name": "Mallory", "attributes": {},
                                             "team": None, "links": ["corp:forged"], "status": "active"},
                                   "reason": "adopted"})
    document["summary"] = {"user.adopt": 1, **document["summary"]}


def forge_delete(company, document):
    for change in document["changes"]:
        if change["action"] == "deactivate":
            change["action"], change["after"] = "delete", None
    document["summary"] = {"user.delete": 1}


def forge_mass_deactivation(company, document):
    """200 deactivations, with managed_users inflated so that 10% would let them through."""
    keys = [k for (k,) in company.sql("SELECT key FROM users WHERE managed = 1 ORDER BY key")][:200]
    document["changes"] = [{"action": "deactivate", "kind": "user", "key": k, "subject": k, "before": {"status": "active"},
                            "after": {"status": "deactivated"}, "reason": "left scope"} for k in keys]
    document["summary"] = {"user.deactivate": len(keys)}
    document["managed_users"] = 100_000
    for check in document["safety"]:
        check["ok"] = True


def forge_managed_users_only(company, document):
    document["managed_users"] = 1


def forge_unknown_action(company, document):
    document["changes"][0]["action"] = "exfiltrate"


def forge_unknown_kind(company, document):
    document["changes"][0]["kind"] = "admin"


def forge_wrong_types(company, document):
    document["changes"][0]["before"] = "active"
    document["managed_users"] = "many"


def forge_duplicate_change(company, document):
    document["changes"].append(dict(document["changes"][0]))


FORGERIES = [forge_extra_create, forge_changed_email, forge_adoption, forge_delete, forge_mass_deactivation,
             forge_managed_users_only, forge_unknown_action, forge_unknown_kind, forge_wrong_types, forge_duplicate_change]


@pytest.mark.parametrize("forge", FORGERIES, ids=lambda f: f.__name__.removeprefix("forge_"))
def test_a_forged_plan_with_a_recomputed_digest_is_refused_and_changes_nothing(saved, forge):
    company, plan_file, document, _ = saved
    forge(company, document)
    before = store_rows(company)
    plan_file.write_text(reseal(document))
    result = company.run("apply", "--plan", str(plan_file))
    assert result.code in (1, 3), (result.code, result.err)  # 3: refused as forged; 1: not a valid plan (schema)
    assert store_rows(company) == before
    assert company.user(SOSEI)["status"] == "active"  # not even the honest part is applied
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert "Applied" not in result.out
    history = json.loads(company.run("history", "policy.yaml", "--format", "json").out)
    assert [h["outcome"].split(":")[0] for h in history] in (["applied"], ["refused", "applied"])
    if len(history) == 2:  # refused after planning afresh: an audit line, newest first
        assert "is not what the policy, the directories and the store produce now" in history[0]["outcome"]


def test_the_refusal_says_what_differs(saved):
    company, plan_file, document, _ = saved
    forge_extra_create(company, document)
    plan_file.write_text(reseal(document))
    result = company.run("apply", "--plan", str(plan_file))
    assert result.code == 3
    assert "is not what the policy, the directories and the store produce now" in result.err
    assert "1 change(s) in the file that a fresh plan does not make (first: create user" in result.err
    assert "mallory@evil.example" in result.err and "nothing changed" in result.err


def test_the_honest_saved_plan_applies_the_fresh_plan(saved):
    company, plan_file, _, _ = saved
    result = company.run("apply", "--plan", str(plan_file))
    assert result.code == 0 and "Applied: 1 user to deactivate." in result.out
    assert company.user(SOSEI)["status"] == "deactivated"


def test_a_directory_change_since_the_plan_refuses_it(saved):
    company, plan_file, _, before = saved
    remove_people(company, ["mchen"])  # another leaver, after the plan was saved
    result = company.run("apply", "--plan", str(plan_file))
    assert result.code == 3 and "a fresh plan makes that the file lacks" in result.err
    assert store_rows(company) == before


def test_reasons_and_subjects_are_explanations_not_instructions(saved):
    """A reworded reason changes nothing that is applied: the digest catches it as an edit."""
    company, plan_file, document, _ = saved
    document["changes"][0]["reason"] = "approved by the CISO"
    plan_file.write_text(json.dumps(document))  # digest not recomputed
    result = company.run("apply", "--plan", str(plan_file))
    assert result.code == 3 and "edited after it was made" in result.err


@pytest.mark.parametrize("content, code, says", [
    (b"\xff\xfe{\x00", 1, "is not UTF-8"),
    (b"{\"format_version\": 1,", 1, "not a JSON plan"),
    (b"[1, 2, 3]", 1, "not a reconciler plan"),
    (b"{\"format_version\": 1}", 1, "not a valid plan"),
    (b"[" * 100_000, 1, "not a"),
    (b"", 1, "not a JSON plan"),
], ids=["not-utf8", "truncated", "a-list", "empty-object", "deeply-nested", "empty-file"])
def test_malformed_plan_files_are_one_line_and_change_nothing(saved, content, code, says):
    company, plan_file, _, before = saved
    plan_file.write_bytes(content)
    result = company.run("apply", "--plan", str(plan_file))
    assert result.code == code and says in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert store_rows(company) == before


def test_terminal_control_codes_in_a_forged_file_are_not_printed(saved):
    company, plan_file, document, _ = saved
    forge_extra_create(company, document)
    document["changes"][0]["key"] = "corp:\x1b]0;pwned\x07\x1b[2J"
    plan_file.write_text(reseal(document))
    result = company.run("apply", "--plan", str(plan_file))
    assert result.code == 3 and "\x1b" not in result.err and "\x07" not in result.err


# ── signing ──

def test_with_a_plan_key_only_plans_signed_with_it_apply(synced, tmp_path):
    remove_people(synced, ["sosei"])
    key = {"RECONCILER_PLAN_KEY": "s3cret-plan-key"}
    signed, unsigned = tmp_path / "signed.json", tmp_path / "unsigned.json"
    assert synced.run("plan", "policy.yaml", "--out", str(unsigned)).code == 0
    assert synced.run("plan", "policy.yaml", "--out", str(signed), env=key).code == 0
    document = json.loads(signed.read_text())
    assert document["signature"].startswith("hmac-sha256:") and "s3cret" not in signed.read_text()
    refused = synced.run("apply", "--plan", str(unsigned), env=key)
    assert refused.code == 3 and "is not signed" in refused.err
    other = synced.run("apply", "--plan", str(signed), env={"RECONCILER_PLAN_KEY": "another-key"})
    assert other.code == 3 and "not signed with RECONCILER_PLAN_KEY" in other.err
    assert synced.user(SOSEI)["status"] == "active"
    applied = synced.run("apply", "--plan", str(signed), env=key)
    assert applied.code == 0 and synced.user(SOSEI)["status"] == "deactivated"


# ── the digest a reviewer sees ──

def test_the_digest_does_not_depend_on_base_policy(synced, tmp_path):
    """The apply-after-merge bug: the comment's digest came from `plan --base-policy`, whose changes
    carry a cause, so a fresh plan after merge never had the same digest."""
    remove_people(synced, ["sosei"])
    (synced.folder / "base-policy.yaml").write_text(synced.policy.read_text())
    with_base = synced.plan_json("--base-policy", "base-policy.yaml")
    plain = synced.plan_json()
    assert {c.get("cause") for c in with_base["changes"]} == {"pending"}
    assert with_base["digest"] == plain["digest"]
    applied = synced.run("apply", "policy.yaml", "--auto-approve", "--expect-digest", with_base["digest"])
    assert applied.code == 0, applied.err


def test_the_plan_carries_its_safety_verdict_and_detailed_exitcode_says_3(synced):
    corp = synced.snapshot()
    people = [dn for dn, attributes in corp.entries.items() if "samaccountname" in attributes
              and (dn.endswith("OU=Contractors,DC=corp,DC=example,DC=com") or ",OU=Engineering," in dn)]
    for dn in people:
        corp.remove(dn)
    corp.save()
    plan = synced.plan_json()
    [check] = [c for c in plan["safety"] if c["limit"] == "max_deactivations"]
    deactivations = len(changes(plan, "deactivate"))
    assert check == {"limit": "max_deactivations", "noun": "deactivations", "planned": deactivations, "allowed": 28,
                     "rule": "10% (28 of 288 active users)", "ok": False}
    assert plan["refused"] is True and deactivations > 28
    assert synced.run("plan", "policy.yaml", "--detailed-exitcode").code == 3
    text = synced.run("plan", "policy.yaml").out
    assert f"deactivations {deactivations} / allowed 28 ✗" in text


def test_a_saved_plan_finds_its_policy_from_any_folder(synced, tmp_path):
    """`plan --out` records the policy relative to the plan file, so `apply --plan FILE` run elsewhere
    (another job step, another working directory) reads the policy the plan was made from."""
    remove_people(synced, ["sosei"])
    plan_file = synced.folder / "plans" / "leaver.json"
    assert synced.run("plan", "policy.yaml", "--out", "plans/leaver.json").code == 0
    document = json.loads(plan_file.read_text())
    assert document["policy"]["path"] == "../policy.yaml"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([reconciler_executable(), "apply", "--plan", str(plan_file), "--auto-approve"],
                          cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert synced.user(SOSEI)["status"] == "deactivated"


def test_the_policys_path_is_not_part_of_the_plan_digest(synced):
    """The same plan made from another folder (a CI checkout, a laptop) has the same digest."""
    inside = synced.plan_json()
    done = subprocess.run([reconciler_executable(), "plan", str(synced.policy), "--format", "json"],
                          cwd=synced.folder.parent, capture_output=True, text=True, timeout=120)
    outside = json.loads(done.stdout)
    assert outside["policy"]["path"] != inside["policy"]["path"]
    assert outside["digest"] == inside["digest"]


def test_a_plan_applied_with_another_policy_says_so(synced):
    """Not "changed since the plan was made": the file was never that plan's policy."""
    remove_people(synced, ["sosei"])
    assert synced.run("plan", "policy.yaml", "--out", "plan.json").code == 0
    other = synced.folder / "other.yaml"
    other.write_text(synced.policy.read_text().replace("max_deactivations: 10%", "max_deactivations: 20%"))
    result = synced.run("apply", "other.yaml", "--plan", "plan.json", "--auto-approve")
    assert result.code == 3 and "Traceback" not in result.err
    assert result.err.strip() == ("refused, nothing changed: the plan was made from policy.yaml, not from other.yaml: "
                                  "apply it with the policy it was made from, or run plan with this one")
    assert synced.user(SOSEI)["status"] == "active"
    synced.policy.write_text(synced.policy.read_text().replace("max_deactivations: 10%", "max_deactivations: 20%"))
    result = synced.run("apply", "policy.yaml", "--plan", "plan.json", "--auto-approve")
    assert result.code == 3 and "policy.yaml changed since the plan was made" in result.err
