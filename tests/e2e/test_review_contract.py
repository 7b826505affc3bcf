"""The review contract through the console script: what the pull request's comment records is what
`apply --reviewed` holds the merge to (the workflows around it: test_gitops_loop.py)."""
from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import changes

CONTRACTORS_BASE = "        - OU=Contractors,DC=corp,DC=example,DC=com\n"


def hire(company, account: str, ou: str = "OU=Contractors,DC=corp,DC=example,DC=com") -> None:
    corp = company.snapshot()
    guid = f"{abs(hash(account)) % 10**8:08d}-0000-4000-8000-000000000000"
    corp.add(f"CN={account},{ou}", {
        "objectClass": ["top", "person", "organizationalPerson", "user"], "cn": [account], "sAMAccountName": [account],
        "mail": [f"{account}@corp.example.com"], "displayName": [account.title()], "objectGUID": [guid],
        "userAccountControl": ["512"], "department": ["Contracting"]})
    corp.save()


def leave(company, account: str) -> None:
    corp = company.snapshot()
    corp.remove(corp.find(sAMAccountName=account))
    corp.save()


@pytest.fixture
def pull_request(synced):
    """A policy edit as a pull request makes it: the target branch's policy kept aside, the edit
    (contractors out of scope) in policy.yaml, and the reviewed comment's review saved."""
    (synced.folder / "base-policy.yaml").write_text(synced.policy.read_text())
    synced.set_policy(CONTRACTORS_BASE, "")
    comment = synced.run("plan", "policy.yaml", "--base-policy", "base-policy.yaml", "--format", "markdown")
    assert comment.code == 0, comment.err
    (synced.folder / "review.json").write_text(comment.out)  # the whole comment: apply finds the review line in it
    return synced, comment.out


def apply_reviewed(company):
    return company.run("apply", "policy.yaml", "--auto-approve", "--reviewed", "review.json", "--base-policy", "base-policy.yaml")


def statuses(company) -> dict[str, str]:
    return dict(company.sql("SELECT email, status FROM users"))


def test_the_comment_says_what_approving_it_approves(pull_request):
    _, comment = pull_request
    assert "<!-- reconciler-review {" in comment
    assert "and its effect: 23 users to deactivate" in comment


def test_the_merge_applies_though_the_directory_moved_a_little(pull_request):
    company, _ = pull_request
    leave(company, "sosei")  # a leaver between review and merge: drift, not the edit
    hire(company, "newhire")  # a new hire outside contractors
    result = apply_reviewed(company)
    assert result.code == 0, result.err
    assert "The edit's effect, reviewed and now" in result.out and "Users to deactivate: reviewed 23, now 23" in result.out
    assert "Since the review, 1 change(s) that the edit does not cause" in result.out
    assert statuses(company)["samuel.osei@corp.example.com"] == "deactivated"
    assert sum(1 for s in statuses(company).values() if s == "deactivated") == 24


def test_a_merged_policy_that_is_not_the_reviewed_one_is_refused(pull_request):
    company, _ = pull_request
    before = statuses(company)
    company.set_policy("root: Example Corp", "root: Example Corporation")  # pushed to the branch after the plan
    result = apply_reviewed(company)
    assert result.code == 3 and "is not the one reviewed in the pull request" in result.err
    assert statuses(company) == before
    [refusal, _first] = json.loads(company.run("history", "policy.yaml", "--format", "json").out)
    assert refusal["outcome"].startswith("refused: the merged policy") and refusal["counts"]["user.deactivate"] == 23


def test_an_edit_that_now_causes_materially_more_is_refused(pull_request):
    company, _ = pull_request
    before = statuses(company)
    # contractors hired and synced between review and merge: the edit now removes 23 + 4, over the margin of 3
    for n in range(4):
        hire(company, f"temp{n}")
    (company.folder / "sync-policy.yaml").write_text(company.folder.joinpath("base-policy.yaml").read_text())
    assert company.run("apply", "sync-policy.yaml", "--auto-approve").code == 0  # the hourly sync of the old policy
    before = statuses(company)
    result = apply_reviewed(company)
    assert result.code == 3, result.err
    assert "27 users to deactivate (reviewed 23, margin 3)" in result.err and "safety.review_margin" in result.err
    assert statuses(company) == before


def test_a_tighter_margin_in_the_policy_is_honoured(synced):
    (synced.folder / "base-policy.yaml").write_text(synced.policy.read_text())
    synced.set_policy(CONTRACTORS_BASE, "")
    synced.set_policy("safety:\n", "safety:\n  review_margin: 0\n")
    (synced.folder / "review.json").write_text(
        synced.run("plan", "policy.yaml", "--base-policy", "base-policy.yaml", "--format", "markdown").out)
    hire(synced, "temp0")
    synced.folder.joinpath("sync-policy.yaml").write_text(synced.folder.joinpath("base-policy.yaml").read_text())
    assert synced.run("apply", "sync-policy.yaml", "--auto-approve").code == 0
    result = apply_reviewed(synced)
    assert result.code == 3 and "24 users to deactivate (reviewed 23, margin 0)" in result.err


def test_no_policy_on_the_target_branch_means_the_edit_causes_everything(company):
    (company.folder / "base-policy.yaml").write_text("")
    plan = company.plan_json("--base-policy", "base-policy.yaml")
    assert {c["cause"] for c in plan["changes"]} == {"policy"}
    assert plan["review"]["base_policy_digest"] is None
    assert plan["review"]["effect"] == plan["summary"]
    (company.folder / "review.json").write_text(
        company.run("plan", "policy.yaml", "--base-policy", "base-policy.yaml", "--format", "markdown").out)
    result = apply_reviewed(company)
    assert result.code == 0, result.err
    assert sum(1 for s in statuses(company).values() if s == "active") == 288


def test_a_review_without_the_base_policy_is_a_usage_error(pull_request):
    company, _ = pull_request
    assert company.run("apply", "policy.yaml", "--auto-approve", "--reviewed", "review.json").code == 64
    assert company.run("apply", "--plan", "x.json", "--reviewed", "review.json", "--base-policy", "b.yaml").code == 64


@pytest.mark.parametrize("content", [b"", b"\xff\xfe", b"<!-- reconciler-review {\"format\": 1} -->", b"just words"])
def test_a_missing_or_broken_review_is_one_line_and_changes_nothing(pull_request, content):
    company, _ = pull_request
    before = statuses(company)
    (company.folder / "review.json").write_bytes(content)
    result = apply_reviewed(company)
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert statuses(company) == before


def test_the_plan_json_carries_the_review_and_the_digest_ignores_it(pull_request):
    company, _ = pull_request
    with_review = company.plan_json("--base-policy", "base-policy.yaml")
    without = company.plan_json()
    assert with_review["review"]["effect"] == {"user.deactivate": 23} and "review" not in without
    assert with_review["digest"] == without["digest"]
    assert len(changes(with_review, "deactivate")) == 23
    history = json.loads(company.run("history", "policy.yaml", "--format", "json").out)
    assert len(history) == 1
