"""The reviewed-plan loop: saved plans that cannot go stale, safety limits, the lock,
history, exit codes, and the pull-request view of a policy edit."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, changes, remove_people

BAD_POLICIES = sorted((ROOT / "tests/unit/policies/bad").glob("*.yaml"))


def contractors(company) -> list[str]:
    corp = company.snapshot()
    return sorted(a["samaccountname"][0] for dn, a in corp.entries.items()
                  if dn.endswith("OU=Contractors,DC=corp,DC=example,DC=com") and "samaccountname" in a)


# ── exit codes ──

def test_exit_codes(synced, tmp_path):
    assert synced.run("plan", "policy.yaml", "--detailed-exitcode").code == 0
    remove_people(synced, ["sosei"])
    assert synced.run("plan", "policy.yaml", "--detailed-exitcode").code == 2
    assert synced.run("plan", "policy.yaml").code == 0  # without the flag, changes are not an error
    assert synced.run("plan", "missing.yaml").code == 1
    assert synced.run("plan", "policy.yaml", "--format", "yaml").code == 64
    assert synced.run("plan").code == 64
    assert synced.run("frobnicate").code == 64


@pytest.mark.parametrize("policy", BAD_POLICIES, ids=lambda p: p.stem)
def test_every_bad_policy_gives_file_line_col_and_exit_1(company, policy):
    result = company.run("validate", str(policy))
    assert result.code == 1 and result.out == ""
    lines = result.err.strip().splitlines()
    assert lines and all(line.startswith(f"{policy}:") and line.split(":")[1].isdigit() and line.split(":")[2].isdigit()
                         for line in lines), result.err
    assert "Traceback" not in result.err


# ── saved plans ──

def test_a_saved_plan_applies_exactly_and_only_once(synced, tmp_path):
    remove_people(synced, ["sosei"])
    plan_file = tmp_path / "plan.json"
    assert synced.run("plan", "policy.yaml", "--out", str(plan_file)).code == 0
    first = synced.run("apply", "--plan", str(plan_file))
    assert first.code == 0 and "Applied: 1 user to deactivate." in first.out
    again = synced.run("apply", "--plan", str(plan_file))
    assert again.code == 3 and "plan is stale" in again.err


def test_a_plan_is_refused_when_the_store_changed_since(synced, tmp_path):
    remove_people(synced, ["sosei"])
    plan_file = tmp_path / "plan.json"
    synced.run("plan", "policy.yaml", "--out", str(plan_file))
    synced.sql("UPDATE users SET display_name = 'edited' WHERE email = 'margaret.chen@corp.example.com'")
    result = synced.run("apply", "--plan", str(plan_file))
    assert result.code == 3 and "store changed since the plan was made" in result.err
    assert synced.user("samuel.osei@corp.example.com")["status"] == "active"


def test_a_plan_is_refused_when_the_policy_changed_since(synced, tmp_path):
    plan_file = tmp_path / "plan.json"
    synced.run("plan", "policy.yaml", "--out", str(plan_file))
    synced.set_policy("root: Example Corp", "root: Example Corporation")
    result = synced.run("apply", "--plan", str(plan_file))
    assert result.code == 3 and "policy.yaml changed since the plan was made" in result.err


def test_an_edited_plan_file_is_refused(synced, tmp_path):
    remove_people(synced, ["sosei"])
    plan_file = tmp_path / "plan.json"
    synced.run("plan", "policy.yaml", "--out", str(plan_file))
    plan_file.write_text(plan_file.read_text().replace('"deactivate"', '"delete"'))
    result = synced.run("apply", "--plan", str(plan_file))
    assert result.code == 3 and "edited after it was made" in result.err
    assert synced.user("samuel.osei@corp.example.com")["status"] == "active"


def test_apply_after_merge_refuses_anything_but_the_reviewed_digest(synced):
    remove_people(synced, ["sosei"])
    reviewed = synced.plan_json()["digest"]
    remove_people(synced, ["mchen"])  # someone else left between review and merge
    result = synced.run("apply", "policy.yaml", "--auto-approve", "--expect-digest", reviewed)
    assert result.code == 3 and f"not the reviewed {reviewed}" in result.err
    assert synced.user("samuel.osei@corp.example.com")["status"] == "active"


def test_apply_without_a_terminal_needs_auto_approve(synced):
    remove_people(synced, ["sosei"])
    result = synced.run("apply", "policy.yaml", stdin="y\n")
    assert result.code == 1 and "--auto-approve" in result.err


# ── safety limits ──

def test_over_the_limit_the_plan_is_shown_but_apply_refuses_and_force_needs_a_reason(synced):
    in_store = [c for c in contractors(synced) if c not in {"lromero", "mgarcia"}]  # disabled / no email: never imported
    gone = in_store + ["sosei", "mchen", "rpatel", "praman", "zadams", "jweiss"]
    assert len(gone) == 29  # one over 10% of 288
    remove_people(synced, gone)
    shown = synced.run("plan", "policy.yaml")
    assert shown.code == 0 and "29 users to deactivate" in shown.out
    refused = synced.run("apply", "policy.yaml", "--auto-approve")
    assert refused.code == 3
    assert "29 deactivations is over the limit of 10% (28 of 288 active users) (safety.max_deactivations)" in refused.err
    assert synced.sql("SELECT count(*) FROM users WHERE status = 'deactivated'") == [(0,)]
    [refusal, *_] = json.loads(synced.run("history", "policy.yaml", "--format", "json").out)
    assert refusal["outcome"].startswith("refused: 29 deactivations is over the limit")
    assert synced.run("apply", "policy.yaml", "--auto-approve", "--force").code == 64
    forced = synced.run("apply", "policy.yaml", "--auto-approve", "--force", "--reason", "contractor programme ended (CHG-42)",
                        env={"GITHUB_ACTOR": "octocat", "GITHUB_SHA": "abc123def456", "GITHUB_RUN_ID": "99"})
    assert forced.code == 0
    [latest, *_] = json.loads(synced.run("history", "policy.yaml", "--format", "json").out)
    assert latest["force_reason"] == "contractor programme ended (CHG-42)"
    assert (latest["actor"], latest["commit"], latest["run_id"]) == ("octocat", "abc123def456", "99")
    assert latest["counts"] == {"user.deactivate": 29} and latest["outcome"] == "applied"


def test_a_small_store_gets_no_exemption_and_an_empty_read_never_wipes_it(company):
    hideez = (ROOT / "examples/seeds/hideez-key-owners.yaml").read_text()
    company.policy.write_text(hideez.replace("../quickstart/", "").replace(".reconciler/hideez.db", ".reconciler/store.db"))
    company.apply()
    assert company.sql("SELECT count(*) FROM users WHERE managed = 1") == [(13,)]
    # a filter typo that matches nobody: the read is empty, the store holds people from it
    company.set_policy("    users:\n      search_bases:\n        - OU=People", "    users:\n      filter: '(department=Nobody)'\n      search_bases:\n        - OU=People")
    empty = company.run("apply", "policy.yaml", "--auto-approve")
    assert empty.code == 1 and "directory corp returned no users" in empty.err and "empty_result_expected" in empty.err
    # a narrowing that leaves some: 8 of 13 would go, over 10% (1 of 13)
    company.set_policy("(department=Nobody)", "(!(department=Engineering))")
    refused = company.run("apply", "policy.yaml", "--auto-approve")
    assert refused.code == 3 and "of 13 active users" in refused.err
    assert company.sql("SELECT count(*) FROM users WHERE status = 'deactivated'") == [(0,)]


# ── lock ──

HOLD_LOCK = """
import sys, time
from reconciler.policy import load_policy
from reconciler.store import open_store
store = open_store(load_policy(sys.argv[1]).store)
with store.lock("ci-job-7@runner"):
    print("locked", flush=True)
    time.sleep(30)
"""


def test_a_second_concurrent_apply_is_refused_naming_the_holder(synced):
    remove_people(synced, ["sosei"])
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(synced.policy)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = synced.run("apply", "policy.yaml", "--auto-approve")
        assert result.code == 3 and "store is locked by ci-job-7@runner since" in result.err
        assert synced.user("samuel.osei@corp.example.com")["status"] == "active"
    finally:
        holder.kill()
        holder.wait()


def test_a_crashed_runs_lock_expires_and_the_next_apply_says_so(synced):
    remove_people(synced, ["sosei"])
    synced.sql("INSERT INTO apply_lock (name, holder, token, since, ttl_seconds) "
               "VALUES ('apply', 'crashed-job@runner', 't', '2020-01-01T00:00:00Z', 900)")
    result = synced.run("apply", "policy.yaml", "--auto-approve")
    assert result.code == 0 and "crashed-job@runner" in result.err


# ── the pull-request view ──

def test_base_policy_separates_this_edit_from_pending_drift(synced, tmp_path):
    base = tmp_path / "base-policy.yaml"
    base.write_text(synced.policy.read_text())
    (synced.folder / "base-policy.yaml").write_text(synced.policy.read_text())
    synced.set_policy("        - OU=Contractors,DC=corp,DC=example,DC=com\n", "")
    remove_people(synced, ["sosei"])  # a leaver the edit has nothing to do with
    plan = synced.plan_json("--base-policy", "base-policy.yaml")
    causes = {c["subject"]: c["cause"] for c in changes(plan, "deactivate")}
    assert causes.pop("samuel.osei@corp.example.com") == "pending"
    assert len(causes) == 23 and set(causes.values()) == {"policy"}  # 25 contractors: one disabled, one without email
    markdown = synced.run("plan", "policy.yaml", "--base-policy", "base-policy.yaml", "--format", "markdown").out
    assert "**this change:** 23 users to deactivate" in markdown and "**pending regardless:** 1 user to deactivate" in markdown


def test_markdown_goes_to_the_github_step_summary_too(synced, tmp_path):
    summary = tmp_path / "summary.md"
    remove_people(synced, ["sosei"])
    synced.run("plan", "policy.yaml", env={"GITHUB_STEP_SUMMARY": str(summary)})
    text = summary.read_text()
    assert text.startswith("### reconciler plan for policy\\.yaml") and "Users to deactivate (1)" in text


def run_on_terminal(company, answer: str) -> tuple[int, str]:
    """apply on a pseudo-terminal, as a person runs it, answering the confirmation prompt."""
    import os
    import pty

    from tests.e2e.conftest import reconciler_executable

    leader, follower = pty.openpty()
    # the plan is not paged here (test_terminal.py shows apply pages, then asks): the prompt is what is tested
    process = subprocess.Popen([reconciler_executable(), "apply", "policy.yaml", "--no-pager"], cwd=company.folder,
                               stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    output = b""
    answered = False
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        output += chunk
        if not answered and b"Apply these changes?" in output:
            os.write(leader, answer.encode() + b"\n")
            answered = True
    os.close(leader)
    return process.wait(timeout=60), output.decode(errors="replace")


def test_apply_on_a_terminal_asks_and_does_nothing_unless_confirmed(synced):
    remove_people(synced, ["sosei"])
    code, output = run_on_terminal(synced, "n")
    assert code == 1 and "Nothing applied." in output
    assert synced.user("samuel.osei@corp.example.com")["status"] == "active"
    code, output = run_on_terminal(synced, "y")
    assert code == 0 and "Applied: 1 user to deactivate." in output
    assert synced.user("samuel.osei@corp.example.com")["status"] == "deactivated"
