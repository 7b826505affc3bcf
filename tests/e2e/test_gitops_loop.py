"""The GitOps loop as a team runs it: the kit's own workflows, step by step, from their YAML.

Each test plays a policy repository made from `examples/gitops/` (tests/e2e/gitops_repo.py):
pull requests are git branches, the workflows run in the GitHub Actions emulator (tests/gha:
bash `run:` steps with GITHUB_OUTPUT, the composite action's own steps, `actions/github-script`
in node against an in-memory pull request), reconciler is installed by the composite action
from this checkout's wheel, and the store lives where the runner keeps it. What is asserted
is what a team sees: the comments, the check's outcome, the issues, and the store.
"""
from __future__ import annotations

import pytest

from tests.e2e.gitops_repo import PolicyRepo, review_line
from tests.servers import require_binary
from tests.wheelhouse import wheelhouse  # noqa: F401  (the session fixture)

pytestmark = pytest.mark.slow  # installs this checkout's wheel through the kit's composite action

CONTRACTORS_BASE = "        - OU=Contractors,DC=corp,DC=example,DC=com\n"


@pytest.fixture(scope="session")
def tool_cache(tmp_path_factory):
    """The runner's tool cache: the composite action installs reconciler once and reuses it."""
    return tmp_path_factory.mktemp("tool-cache")


@pytest.fixture
def repo(tmp_path, wheelhouse, tool_cache) -> PolicyRepo:  # noqa: F811
    require_binary("node")  # github-script steps; skips on a laptop without it, fails in CI
    require_binary("git")
    return PolicyRepo(tmp_path, wheelhouse, tool_cache)


@pytest.fixture
def synced(repo) -> PolicyRepo:
    """The repository after its first policy pull request was planned, merged and applied."""
    number = repo.open_pull_request("Add the sync policy", {"policy.yaml": repo.policy_text})
    assert repo.run_plan(number).ok
    before, after = repo.merge(number)
    applied = repo.run_apply(before, after)
    assert applied.ok, applied.log[-3000:]
    return repo


def edit(repo: PolicyRepo, old: str, new: str, text: str | None = None) -> str:
    text = text if text is not None else repo.policy()
    assert old in text, old
    return text.replace(old, new)


def hire(repo: PolicyRepo, account: str, ou: str) -> None:
    corp = repo.snapshot()
    corp.add(f"CN={account},{ou}", {
        "objectClass": ["top", "person", "organizationalPerson", "user"], "cn": [account], "sAMAccountName": [account],
        "mail": [f"{account}@corp.example.com"], "displayName": [account.title()], "department": ["Sales"],
        "objectGUID": [f"{abs(hash(account)) % 10**8:08d}-1111-4000-8000-000000000000"], "userAccountControl": ["512"]})
    corp.save()


def leave(repo: PolicyRepo, *accounts: str) -> None:
    corp = repo.snapshot()
    for account in accounts:
        corp.remove(corp.find(sAMAccountName=account))
    corp.save()


def test_policy_pull_request_to_apply_after_merge_to_hourly_drift(repo):
    # 1. The first policy: there is none on main yet, so the edit causes every change
    first = repo.open_pull_request("Add the sync policy", {"policy.yaml": repo.policy_text})
    planned = repo.run_plan(first)
    assert planned.ok, planned.log[-3000:]
    [comment] = repo.bot_comments(first)
    head = repo.github.pull(first)["head"]["sha"]
    assert comment.startswith("<!-- reconciler-plan 1/1 -->\nCommit " + head[:12])
    assert f"[run {repo.run_id}]" in comment
    assert review_line(comment)["base_policy_digest"] is None
    assert review_line(comment)["effect"]["user.create"] == 288
    assert "plan-" in str(list(planned.artifacts)) and (planned.artifacts[f"reconciler-plan-{first}"] / "plan.json").exists()
    before, after = repo.merge(first)
    applied = repo.run_apply(before, after)
    assert applied.ok, applied.log[-3000:]
    assert list(repo.statuses().values()).count("active") == 288
    [outcome] = repo.bot_comments(first, "<!-- reconciler-apply -->")
    assert "✅ Applied after merge" in outcome and "Applied: 288 users to create, 15 teams to create" in outcome
    # the store is kept where checkout does not clean; the workspace has no store of its own
    assert (repo.state / "store.db").exists() and not (repo.workspace / ".reconciler").exists()

    # 2. Contractors out of scope: the reviewer sees 23 deactivations caused by the edit
    second = repo.open_pull_request("Contractors no longer use the app", {"policy.yaml": edit(repo, CONTRACTORS_BASE, "")})
    assert repo.run_plan(second).ok
    [comment] = repo.bot_comments(second)
    assert review_line(comment)["effect"] == {"user.deactivate": 23}
    assert "and its effect: 23 users to deactivate" in comment

    # 3. Between review and merge the directory moves on, as it always does at this size
    leave(repo, "sosei")
    hire(repo, "nnewhire", "OU=Sales,OU=People,DC=corp,DC=example,DC=com")
    before, after = repo.merge(second)
    applied = repo.run_apply(before, after)
    assert applied.ok, applied.log[-4000:]
    statuses = repo.statuses()
    assert statuses["samuel.osei@corp.example.com"] == "deactivated"  # drift, applied with the merge
    assert statuses["nnewhire@corp.example.com"] == "active"
    assert list(statuses.values()).count("deactivated") == 24
    [outcome] = repo.bot_comments(second, "<!-- reconciler-apply -->")
    assert "Users to deactivate: reviewed 23, now 23" in outcome and "Since the review, 2 change(s)" in outcome

    # 4. A hand edit in the application and a leaver: the hourly job puts it back, then has nothing to do
    repo.sql("UPDATE users SET display_name = 'Edited by hand' WHERE email = 'margaret.chen@corp.example.com'")
    leave(repo, "rpatel")
    drift = repo.run_drift()
    assert drift.ok, drift.log[-3000:]
    assert drift.step("plan").outputs["exit-code"] == "2" and not drift.step("apply").skipped
    assert repo.sql("SELECT display_name FROM users WHERE email = 'margaret.chen@corp.example.com'") != [("Edited by hand",)]
    assert repo.statuses()["ravi.patel@corp.example.com"] == "deactivated"
    quiet = repo.run_drift()
    assert quiet.ok and quiet.step("plan").outputs["exit-code"] == "0" and quiet.step("apply").skipped
    assert repo.github.issues(state="all", label="reconciler-drift") == []


def test_a_merge_of_another_policy_than_the_reviewed_one_is_refused_with_nothing_changed(synced):
    repo = synced
    number = repo.open_pull_request("Contractors out", {"policy.yaml": edit(repo, CONTRACTORS_BASE, "")})
    assert repo.run_plan(number).ok
    # a commit pushed after the plan ran, whose plan never ran (or was still running): merged unreviewed
    repo.push_to_pull_request(number, {"policy.yaml": edit(repo, "root: Example Corp", "root: Example Corporation",
                                                           repo.policy(f"change-{number}"))}, "Rename the root team too")
    before_store = repo.statuses()
    teams_before = repo.sql("SELECT key FROM teams ORDER BY key")
    before, after = repo.merge(number)
    refused = repo.run_apply(before, after)
    assert not refused.ok and refused.step("apply").outputs["exit-code"] == "3"
    assert "is not the one reviewed in the pull request" in refused.log
    assert repo.statuses() == before_store and repo.sql("SELECT key FROM teams ORDER BY key") == teams_before
    [outcome] = repo.bot_comments(number, "<!-- reconciler-apply -->")
    assert "⛔ Apply after merge refused; nothing was changed" in outcome and "is not the one reviewed" in outcome
    assert repo.history()[-1]["outcome"].startswith("refused: the merged policy")  # recorded, nothing else changed


def test_a_forged_plan_comment_is_not_a_review(synced):
    """Anyone can comment on a pull request; only the workflow's own comment carries a review."""
    repo = synced
    number = repo.open_pull_request("Contractors out", {"policy.yaml": edit(repo, CONTRACTORS_BASE, "")})
    assert repo.run_plan(number).ok
    [genuine] = repo.bot_comments(number)
    # the branch is then broken, so the workflow replaces its plan with an error comment ...
    repo.push_to_pull_request(number, {"policy.yaml": "version: 1\ndirectories: {}\n"}, "oops")
    failed = repo.run_plan(number)
    assert not failed.ok
    [error] = repo.bot_comments(number)
    assert "reconciler could not plan this pull request" in error and "reconciler-review" not in error
    # ... and mallory posts the old review as a comment of her own, then the broken policy is merged
    repo.github.add_comment(number, genuine, login="mallory", type="User")
    before_store = repo.statuses()
    before, after = repo.merge(number)
    refused = repo.run_apply(before, after)
    assert not refused.ok and refused.step("reviewed").outcome == "failure"
    assert f"pull request #{number} has no reconciler plan to apply" in refused.log
    assert refused.step("apply").skipped and repo.statuses() == before_store


def test_a_plan_over_a_safety_limit_turns_the_check_red_and_still_comments(synced):
    repo = synced
    people = "        - OU=People,DC=corp,DC=example,DC=com\n"
    number = repo.open_pull_request("Only contractors", {"policy.yaml": edit(repo, people, "")})
    planned = repo.run_plan(number)
    assert not planned.ok and planned.step("plan").outputs["exit-code"] == "3"
    assert planned.steps[-1].outcome == "failure" and planned.steps[-1].exit_code == 3
    [comment] = repo.bot_comments(number)
    assert "[!CAUTION]" in comment and "apply would refuse this plan" in comment
    found = next(line for line in comment.splitlines() if line.startswith("| deactivations |"))
    planned_count = int(found.split("|")[2])
    assert planned_count > 28 and "| 28 | ✗" in found
    assert f"reconciler-plan-{number}" in planned.artifacts  # the full plan is still uploaded
    # merged anyway (an admin bypassed the check): apply refuses too, and changes nothing
    before_store = repo.statuses()
    before, after = repo.merge(number)
    refused = repo.run_apply(before, after)
    assert not refused.ok and refused.step("apply").outputs["exit-code"] == "3"
    assert "is over the limit of 10% (28 of 288 active users)" in refused.log
    assert repo.statuses() == before_store
    assert repo.history()[-1]["outcome"].startswith("refused: ")


def test_a_stuck_hourly_sync_opens_one_issue_and_the_next_good_run_closes_it(synced):
    repo = synced
    original = (repo.directory / "corp.ldif").read_bytes()
    corp = repo.snapshot()
    leavers = sorted(dn for dn, a in corp.entries.items() if "samaccountname" in a and ",OU=Engineering," in dn)
    for dn in leavers:
        corp.remove(dn)
    corp.save()
    first = repo.run_drift()
    assert not first.ok and first.step("plan").outputs["exit-code"] == "3"
    [issue] = repo.github.issues(label="reconciler-drift")
    assert issue["title"] == "reconciler: the hourly sync is stuck" and "is over the limit" in issue["body"]
    assert f"run {repo.run_id}" in issue["body"]
    second = repo.run_drift()
    assert not second.ok
    assert [i["number"] for i in repo.github.issues(label="reconciler-drift")] == [issue["number"]]  # one issue, updated
    assert len(repo.github.comments(issue["number"])) == 1
    assert list(repo.statuses().values()).count("deactivated") == 0  # nothing changed while refused
    (repo.directory / "corp.ldif").write_bytes(original)  # the read was wrong: fixed at the source
    fixed = repo.run_drift()
    assert fixed.ok
    assert repo.github.issues(label="reconciler-drift") == []
    [closed] = repo.github.issues(state="closed", label="reconciler-drift")
    assert repo.github.comments(closed["number"])[-1]["body"].startswith("Resolved:")


def test_checkout_cleans_the_workspace_but_the_store_survives_in_the_state_dir(synced):
    repo = synced
    stray = repo.workspace / ".reconciler" / "store.db"
    stray.parent.mkdir()
    stray.write_text("a store a previous job left in the workspace")
    leave(repo, "sosei")
    drift = repo.run_drift()
    assert drift.ok and not stray.exists()
    assert repo.statuses()["samuel.osei@corp.example.com"] == "deactivated"
    assert [h["outcome"] for h in repo.history()] == ["applied", "applied"]


def test_a_plan_too_long_for_one_comment_is_split_and_the_parts_follow_the_plan(repo):
    """6,000 contractors leave at once: every deactivation stays in the comments (they are the
    risk the reviewer approves), split across comments that each fit GitHub's limit; when the
    plan shrinks again, the extra comments go."""
    corp = repo.snapshot()
    for n in range(6000):
        corp.add(f"CN=Temp {n:04d},OU=Contractors,DC=corp,DC=example,DC=com", {
            "objectClass": ["top", "person", "organizationalPerson", "user"], "cn": [f"Temp {n:04d}"],
            "sAMAccountName": [f"temp{n:04d}"], "mail": [f"temp.worker.{n:04d}@corp.example.com"],
            "displayName": [f"Temp {n:04d}"], "objectGUID": [f"{n:08d}-2222-4000-8000-000000000000"],
            "userAccountControl": ["512"]})
    corp.save()
    policy = edit(repo, "  max_deactivations: 10%\n", "  max_deactivations: 100%\n", repo.policy_text)
    first = repo.open_pull_request("Add the sync policy", {"policy.yaml": policy})
    assert repo.run_plan(first).ok
    [only] = repo.bot_comments(first)  # 6,288 creates are low risk: counted per team, one comment
    assert "This plan is large" in only and "Every change is in the JSON plan (the `reconciler-plan-1` artifact" in only
    before, after = repo.merge(first)
    assert repo.run_apply(before, after).ok

    second = repo.open_pull_request("Contractors out", {"policy.yaml": edit(repo, CONTRACTORS_BASE, "")})
    planned = repo.run_plan(second)
    assert planned.ok, planned.log[-3000:]
    parts = repo.bot_comments(second)
    assert len(parts) >= 2
    assert all(body.startswith(f"<!-- reconciler-plan {k}/{len(parts)} -->") for k, body in enumerate(parts, 1))
    assert all(len(body) <= 65_536 for body in parts)
    assert review_line(parts[0])["effect"]["user.deactivate"] == 6023
    assert sum("reconciler-review" in body for body in parts) == 1
    everything = "\n".join(parts)
    assert all(f"`temp.worker.{n:04d}@corp.example.com`" in everything for n in range(6000))  # never cut
    first_ids = [c["id"] for c in repo.github.comments(second)]

    repo.push_to_pull_request(second, {"policy.yaml": repo.policy()}, "Keep the contractors after all")
    replanned = repo.run_plan(second)
    assert replanned.ok
    [one] = repo.bot_comments(second)
    assert one.startswith("<!-- reconciler-plan 1/1 -->") and "No changes" in one
    assert [c["id"] for c in repo.github.comments(second)] == first_ids[:1]  # updated in place, the rest deleted
