"""The review contract in isolation: what is recorded, how it travels in a comment, and when
apply after merge holds to it (reconciler/plan/review.py)."""
import json

import pytest

from reconciler.errors import ReconcilerError, StalePlan
from reconciler.model import Change, Plan, Review
from reconciler.plan.review import hold, margin_for, marker, parse, review_of
from reconciler.policy.model import ReviewMargin

POLICY = "sha256:" + "a" * 64
BASE = "sha256:" + "b" * 64
OTHER = "sha256:" + "c" * 64


def attributed(edit: dict[str, int], pending: dict[str, int] = {}, policy: str = POLICY, base: str | None = BASE) -> Plan:
    changes = []
    for cause, counts in (("policy", edit), ("pending", pending)):
        for name, n in counts.items():
            kind, action = name.split(".")
            changes += [Change(action, kind, f"corp:{cause}-{name}-{i}", "why", cause=cause) for i in range(n)]
    plan = Plan("policy.yaml", policy, "sqlite", "f", {}, changes, [], 288)
    plan.review = review_of(plan, base)
    return plan


def test_the_review_counts_only_what_the_edit_causes():
    plan = attributed({"user.deactivate": 23}, {"user.create": 2, "user.update": 1})
    assert plan.review == Review(POLICY, BASE, {"user.deactivate": 23})


def test_the_marker_round_trips_and_a_comment_around_it_is_fine():
    plan = attributed({"user.deactivate": 23, "team.delete": 1})
    line = marker(plan)
    assert line.startswith("<!-- reconciler-review {") and line.endswith("} -->") and "\n" not in line
    comment = f"<!-- reconciler-plan 1/1 -->\nCommit abc\n\n### plan\n{line}\n| who | ... |"
    assert parse(comment, "comment") == plan.review
    assert parse(line[len("<!-- reconciler-review "):-len(" -->")], "json") == plan.review


def test_no_review_without_base_policy():
    assert marker(Plan("p", POLICY, "sqlite", "f", {}, [], [], 0)) == ""


@pytest.mark.parametrize("text", [
    "no marker here",
    '<!-- reconciler-review {"format": 2, "policy_digest": "x", "effect": {}} -->',
    '{"format": 1, "policy_digest": "sha256:short", "base_policy_digest": null, "effect": {}}',
    '{"format": 1, "policy_digest": "%s", "base_policy_digest": null, "effect": {"user.exfiltrate": 1}}' % POLICY,
    '{"format": 1, "policy_digest": "%s", "base_policy_digest": null, "effect": {"user.create": -1}}' % POLICY,
    '{"format": 1, "policy_digest": "%s", "base_policy_digest": null, "effect": {"user.create": true}}' % POLICY,
    '{"format": 1, "policy_digest": "%s", "base_policy_digest": null, "effect": []}' % POLICY,
])
def test_a_malformed_review_is_one_clear_error(text):
    with pytest.raises(ReconcilerError) as error:
        parse(text, "review.json")
    assert str(error.value).startswith("review.json: ") and "\n" not in str(error.value)


@pytest.mark.parametrize("reviewed, margin, allowed_extra", [
    (0, ReviewMargin(), 2), (10, ReviewMargin(), 2), (23, ReviewMargin(), 3), (100, ReviewMargin(), 10),
    (1000, ReviewMargin(), 100), (23, ReviewMargin(0, 0), 0), (23, ReviewMargin(5, 0), 5), (7, ReviewMargin(0, 10), 1),
])
def test_the_margin_is_the_larger_bound(reviewed, margin, allowed_extra):
    assert margin_for(reviewed, margin) == allowed_extra


def test_the_reviewed_plan_holds_through_drift():
    reviewed = attributed({"user.deactivate": 23}).review
    fresh = attributed({"user.deactivate": 23}, {"user.create": 5, "user.deactivate": 3})  # hires and leavers since
    held = hold(reviewed, fresh, ReviewMargin())
    assert "  Users to deactivate: reviewed 23, now 23" in held.lines


def test_a_little_more_within_the_margin_holds_and_is_shown():
    reviewed = attributed({"user.deactivate": 23}).review
    held = hold(reviewed, attributed({"user.deactivate": 26}), ReviewMargin())
    assert "  Users to deactivate: reviewed 23, now 26 (+3)" in held.lines


def test_materially_more_is_refused():
    reviewed = attributed({"user.deactivate": 23}).review
    with pytest.raises(StalePlan) as refused:
        hold(reviewed, attributed({"user.deactivate": 27}), ReviewMargin())
    assert "27 users to deactivate (reviewed 23, margin 3)" in str(refused.value) and "nothing changed" in str(refused.value)


def test_a_kind_of_change_the_review_never_showed_is_held_to_the_count_margin():
    reviewed = attributed({"user.update": 20}).review
    with pytest.raises(StalePlan, match=r"3 users to delete \(reviewed 0, margin 2\)"):
        hold(reviewed, attributed({"user.update": 20, "user.delete": 3}), ReviewMargin())
    with pytest.raises(StalePlan):
        hold(reviewed, attributed({"user.update": 20, "user.delete": 1}), ReviewMargin(0, 0))


def test_fewer_than_reviewed_is_fine():
    reviewed = attributed({"user.deactivate": 23}).review
    held = hold(reviewed, attributed({"user.deactivate": 20}), ReviewMargin(0, 0))
    assert "  Users to deactivate: reviewed 23, now 20 (-3)" in held.lines


def test_a_merged_policy_that_is_not_the_reviewed_one_is_refused():
    reviewed = attributed({"user.deactivate": 23}).review
    with pytest.raises(StalePlan) as refused:
        hold(reviewed, attributed({"user.deactivate": 23}, policy=OTHER), ReviewMargin())
    assert "the merged policy" in str(refused.value) and "is not the one reviewed" in str(refused.value)


def test_a_different_base_is_noted():
    reviewed = attributed({"user.deactivate": 23}).review
    held = hold(reviewed, attributed({"user.deactivate": 23}, base=OTHER), ReviewMargin())
    assert any("not the one the review was planned against" in line for line in held.lines)


def test_the_marker_cannot_be_ended_by_what_it_holds():
    """Only digests and counts go in, and parse() refuses anything else: no directory value ever reaches it."""
    plan = attributed({"user.create": 1})
    body = json.loads(marker(plan)[len("<!-- reconciler-review "):-len(" -->")])
    assert set(body) == {"format", "policy_digest", "base_policy_digest", "effect"}
