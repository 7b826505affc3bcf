"""Applying a plan: safety limits, the lock, one unit of change in the store, history."""
from __future__ import annotations

import getpass
import os
import socket
import sys
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from .errors import ExitCode, ReconcilerError, StalePlan
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


def check_saved_plan(plan: Plan, policy: Policy, made_from: Path | None = None) -> None:
    """A saved plan applies only to the policy it was made from (the store is checked inside the apply).
    `made_from`: where the plan's policy is, when the plan says (apply --plan)."""
    if plan.policy_digest != policy.digest:
        if made_from is not None and not _same_file(made_from, Path(policy.path)):
            raise StalePlan(f"the plan was made from {made_from}, not from {policy.path}: apply it with the policy "
                            "it was made from, or run plan with this one")
        raise StalePlan(f"plan is stale: {policy.path} changed since the plan was made; run plan again")
    if plan.store_kind != policy.store.kind:
        raise StalePlan(f"plan is for a {plan.store_kind} store but the policy now uses {policy.store.kind}; run plan again")


def plan_key() -> bytes | None:
    """The key saved plans are signed with and checked against, if the environment sets one."""
    key = os.environ.get("RECONCILER_PLAN_KEY", "")
    return key.encode() if key else None


def read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ReconcilerError(f"{path}: cannot read the {what}: {error.strerror}") from None


def verified_saved_plan(plan_file: Path, policy_path: Path | None, load: Callable[[Path], Policy],
                        *, key: bytes | None) -> tuple[Policy, Plan]:
    """The policy and the plan to apply for `apply --plan`: the fresh plan, once it is shown to be the saved one.

    The file is read as a claim (digest, signature, schema), the policy is checked before any directory
    is read, then the plan is made afresh and compared; the file's changes are never applied themselves."""
    from .pipeline import plan_policy
    from .plan.document import decode, loads
    from .plan.saved import verify_saved

    source = str(plan_file)
    saved = loads(decode(read_file(plan_file, "plan"), source), source, key=key)
    made_from = _policy_of(saved, plan_file)
    if policy_path is None and made_from is None:
        raise ReconcilerError(f"{source} was made from {saved.policy_path}, which is neither next to the plan nor "
                              "in this folder; give the policy: reconciler apply POLICY --plan " + source)
    policy = load(policy_path if policy_path is not None else made_from)  # type: ignore[arg-type]
    check_saved_plan(saved, policy, made_from)
    fresh = plan_policy(policy, plan_only=True).plan
    with refusals_recorded(fresh, policy):  # a forged or outdated plan file is worth an audit line
        verify_saved(saved, fresh, source)
    return policy, fresh


def _policy_of(saved: Plan, plan_file: Path) -> Path | None:
    """Where the policy a saved plan names is: `plan --out` records it relative to the plan file's folder;
    a plan written to stdout names it as given, relative to where plan ran (often the same folder)."""
    named = Path(saved.policy_path)
    candidates = [named] if named.is_absolute() else [plan_file.parent / named, named]
    return next((c for c in candidates if c.is_file()), None)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or a.samefile(b)
    except OSError:
        return False


@contextmanager
def refusals_recorded(plan: Plan, policy: Policy) -> Iterator[None]:
    """A refusal of `plan` before it reaches the apply (a forged saved plan, a merge that is not the
    reviewed one) goes into the store's history like a refusal at a safety limit."""
    from .store import open_store

    try:
        yield
    except ReconcilerError:
        store = open_store(policy.store)
        try:
            with failures_recorded(store.record, lambda outcome: replace(_record(plan, policy, None), finished_at=now(),
                                                                          outcome=outcome)):
                raise
        finally:
            store.close()


def held_to_review(plan: Plan, reviewed_file: Path, policy: Policy) -> list[str]:
    """What apply says about the review: refuses (nothing changed) unless the plan is what was reviewed."""
    from .plan.document import decode
    from .plan.review import hold, parse

    source = str(reviewed_file)
    review = parse(decode(read_file(reviewed_file, "review"), source), source)
    with refusals_recorded(plan, policy):
        held = hold(review, plan, policy.safety.review_margin)
    drift = [c for c in plan.changes if c.cause == "pending"]
    lines = [f"Reviewed in the pull request: policy {review.policy_digest[:19]}…, the merged policy is the same.",
             "The edit's effect, reviewed and now (per kind of change):", *held.lines]
    lines.append(f"Since the review, {len(drift)} change(s) that the edit does not cause (drift in the directories or the store) "
                 "are applied with it, within the safety limits." if drift else "No drift since the review.")
    return lines


def confirm_or_refuse(plan: Plan, *, expect_digest: str | None, auto_approve: bool) -> None:
    """The last word before a fresh plan is applied: the strict digest, then a person's yes on a terminal."""
    if expect_digest is not None and plan_digest(plan) != expect_digest.strip():
        raise StalePlan(f"the plan now has digest {plan_digest(plan)}, not the reviewed "
                        f"{expect_digest.strip()}; the directories or the store changed since the review: plan again and review")
    if plan.empty or auto_approve:
        return
    if not sys.stdin.isatty():
        raise ReconcilerError("refusing to apply without confirmation: stdin is not a terminal; "
                              "review the plan and pass --auto-approve (or apply a saved plan with --plan)")
    import typer

    if not typer.confirm("Apply these changes?", default=False):
        typer.echo("Nothing applied.")
        raise typer.Exit(ExitCode.ERROR)


def apply_plan(plan: Plan, policy: Policy, store: Store, *, force_reason: str | None = None,
               on_lock=None) -> ApplyRecord:
    """Refuses over a safety limit (unless forced with a reason), then applies under the store lock.

    The store re-checks its fingerprint inside its transaction, so a plan is never
    applied to a store that changed after the plan was made. A plan with no changes
    (not forced) gets no history line: the store counts it, and its next line says how
    many there were (`store.common.is_unchanged`); refused and failed ones are lines.
    """
    record = _record(plan, policy, force_reason)
    # a refusal is history too: a scheduled job stuck on a limit shows in `reconciler history`
    with failures_recorded(store.record, lambda outcome: replace(record, finished_at=now(), outcome=outcome)):
        enforce(plan, policy.safety, force_reason=force_reason)
    with store.lock(record.actor) as lock:
        if on_lock is not None:
            on_lock(lock)
        if plan.sync_states:  # directories read as deltas: their new states are kept with this apply
            return store.apply(plan.changes, plan.store_fingerprint, record, sync=_with_steady_plan(plan, policy, store))
        return store.apply(plan.changes, plan.store_fingerprint, record)


def _with_steady_plan(plan: Plan, policy: Policy, store: Store) -> dict[str, bytes]:
    """The delta states, and the plan itself when it changes nothing (plan.steady: the next run reuses it while
    nothing changes). The store's generation is read before its apply: a write in between makes the apply
    stale, or leaves a kept plan whose generation is already old, which is never reused."""
    from .directory.delta import reconciler_version
    from .plan import steady

    generation = store.generation()
    sync = dict(plan.sync_states)
    if plan.empty and generation is not None:
        sync[steady.KEY] = steady.keep(plan, policy.digest, reconciler_version(), generation)
    else:
        sync[steady.KEY] = b""  # an apply that changes the store: a plan kept before no longer holds
    return sync


def _record(plan: Plan, policy: Policy, force_reason: str | None) -> ApplyRecord:
    who, commit, run_id = actor()
    return ApplyRecord(
        started_at=now(), finished_at="", actor=who, commit=commit, run_id=run_id,
        policy_digest=policy.digest, plan_digest=plan_digest(plan), counts=plan.summary,
        outcome="applied", force_reason=force_reason,
    )


__all__ = ["apply_plan", "check_saved_plan", "LockInfo"]
