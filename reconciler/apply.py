"""Applying a plan: safety limits, the lock, one unit of change in the store, history."""
from __future__ import annotations

import getpass
import os
import socket
from dataclasses import replace
from datetime import datetime, timezone

from .errors import StalePlan
from .model import Plan
from .plan.document import plan_digest
from .plan.safety import enforce
from .policy.model import Policy
from .store import ApplyRecord, LockInfo, Store, failures_recorded


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def actor() -> tuple[str, str | None, str | None]:
    """Who applies: the CI actor and commit when GitHub Actions runs us, else user@host."""
    if os.environ.get("GITHUB_ACTOR"):
        return os.environ["GITHUB_ACTOR"], os.environ.get("GITHUB_SHA"), os.environ.get("GITHUB_RUN_ID")
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}", os.environ.get("CI_COMMIT_SHA"), os.environ.get("CI_PIPELINE_ID")


def check_saved_plan(plan: Plan, policy: Policy) -> None:
    """A saved plan applies only to the policy it was made from (the store is checked inside the apply)."""
    if plan.policy_digest != policy.digest:
        raise StalePlan(f"plan is stale: {policy.path} changed since the plan was made; run plan again")
    if plan.store_kind != policy.store.kind:
        raise StalePlan(f"plan is for a {plan.store_kind} store but the policy now uses {policy.store.kind}; run plan again")


def apply_plan(plan: Plan, policy: Policy, store: Store, *, force_reason: str | None = None,
               on_lock=None) -> ApplyRecord:
    """Refuses over a safety limit (unless forced with a reason), then applies under the store lock.

    The store re-checks its fingerprint inside its transaction, so a plan is never
    applied to a store that changed after the plan was made.
    """
    who, commit, run_id = actor()
    record = ApplyRecord(
        started_at=now(), finished_at="", actor=who, commit=commit, run_id=run_id,
        policy_digest=policy.digest, plan_digest=plan_digest(plan), counts=plan.summary,
        outcome="applied", force_reason=force_reason,
    )
    # a refusal is history too: a scheduled job stuck on a limit shows in `reconciler history`
    write = getattr(store, "record", None) or (lambda _record: None)  # stores that keep no refusals skip it
    with failures_recorded(write, lambda outcome: replace(record, finished_at=now(), outcome=_short(outcome))):
        enforce(plan, policy.safety, force_reason=force_reason)
    with store.lock(who) as lock:
        if on_lock is not None:
            on_lock(lock)
        return store.apply(plan.changes, plan.store_fingerprint, record)


def _short(outcome: str) -> str:
    """'refused: 42 deactivations is over ...' without the advice meant for the terminal."""
    return outcome.replace("refused, nothing changed: ", "").split(". Review the plan")[0]


__all__ = ["apply_plan", "check_saved_plan", "LockInfo"]
