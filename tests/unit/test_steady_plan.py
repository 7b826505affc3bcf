"""The kept plan (plan/steady.py) is reused only under exactly the conditions it was kept for, and a kept plan
that does not read is made afresh, never a failed plan or a traceback."""
from __future__ import annotations

import pytest

from reconciler.model import Plan, ReadNote
from reconciler.plan import steady
from reconciler.plan.document import plan_digest

DIGEST = "sha256:" + "a" * 64


def empty_plan() -> Plan:
    return Plan(policy_path="policy.yaml", policy_digest=DIGEST, store_kind="sqlite", store_fingerprint="sha256:" + "b" * 64,
                directories={"corp": {"read": 3, "in_scope": 3, "imported": 3, "ignored": 0, "disabled": 0}},
                changes=[], ignored=[], managed_users=3, generated_at="2026-11-30T10:00:00Z")


def kept() -> bytes:
    return steady.keep(empty_plan(), DIGEST, "1.0", "store.db#7")


def test_the_kept_plan_comes_back_for_the_same_policy_version_and_generation():
    plan = steady.reuse(kept(), policy_digest=DIGEST, version="1.0", generation="store.db#7")
    assert plan is not None and plan_digest(plan) == plan_digest(empty_plan())


@pytest.mark.parametrize("policy, version, generation", [
    ("sha256:" + "c" * 64, "1.0", "store.db#7"),  # another policy
    (DIGEST, "1.1", "store.db#7"),  # another reconciler
    (DIGEST, "1.0", "store.db#8"),  # the store was written since
    (DIGEST, "1.0", None),  # a store that cannot say
])
def test_any_other_condition_means_the_plan_is_made_again(policy, version, generation):
    assert steady.reuse(kept(), policy_digest=policy, version=version, generation=generation) is None


@pytest.mark.parametrize("damage", [
    lambda blob: blob[:-40],  # cut short
    lambda blob: blob.replace(b'"managed_users": 3', b'"managed_users": 4'),  # edited: the digest no longer holds
    lambda blob: blob[:blob.index(b"\n", len(steady.HEAD)) + 1] + b"\xff\xfe not text",
    lambda blob: steady.HEAD + b"{not json}\n{}",
    lambda blob: b"",
])
def test_a_kept_plan_that_does_not_read_is_made_again(damage):
    assert steady.reuse(damage(kept()), policy_digest=DIGEST, version="1.0", generation="store.db#7") is None


def test_the_renewed_plan_says_why_nothing_was_read_and_carries_the_new_states():
    plan = steady.reuse(kept(), policy_digest=DIGEST, version="1.0", generation="store.db#7")
    note = ReadNote("corp", "delta", "changes since the last apply", 0)
    fresh = steady.renewed(plan, generated_at="2026-11-30T11:00:00Z", notes=[note], states={"corp": b"s"}, safety=())
    assert fresh.generated_at == "2026-11-30T11:00:00Z" and fresh.sync_states == {"corp": b"s"}
    assert fresh.reads[0].reason.endswith("nothing changed in the directories or the store since the last apply, "
                                          "so the plan is the one made then")
    assert plan_digest(fresh) == plan_digest(empty_plan())  # time and reads are not digested
