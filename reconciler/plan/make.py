"""Turns the diff into a `Plan`, after the guards that keep a bad read from becoming mass change."""
from __future__ import annotations

from datetime import datetime, timezone

from ..errors import DirectoryError
from ..model import DesiredState, Plan, StoreState
from ..policy.model import Policy
from ..desired.scope import verdict_order
from .diff import diff
from .safety import checks


def guard_empty_reads(policy: Policy, desired: DesiredState, store: StoreState) -> None:
    """A directory that returns no users while the store holds managed users from it
    is far more likely a broken filter, base or permission than everyone leaving."""
    for directory in policy.directories:
        counts = desired.directories[directory.name]
        if counts["in_scope"] or directory.empty_result_expected:
            continue
        held = sum(1 for u in store.users.values() if u.managed and any(l.directory == directory.name for l in u.links))
        if held:
            raise DirectoryError(
                f"directory {directory.name} returned no users under {', '.join(directory.users.search_bases)} "
                f"matching {directory.users.filter}, but the store holds {held} managed users from it; "
                f"nothing was planned (if that is intended, set directories.{directory.name}.empty_result_expected: true)"
            )


def make_plan(policy: Policy, desired: DesiredState, store: StoreState, recent: dict[str, int] | None = None) -> Plan:
    """`recent`: what applies changed within safety.window_hours, per kind.action (plan/safety.py)."""
    guard_empty_reads(policy, desired, store)
    result = diff(policy, desired, store)
    # in verdict order whether or not the desired state sorted them all (build_desired_state: all_verdicts)
    ignored = sorted((v for v in desired.verdicts if v.verdict != "imported"), key=verdict_order(policy.precedence))
    ignored += result.ignored
    plan = Plan(
        policy_path=policy.path,
        policy_digest=policy.digest,
        store_kind=policy.store.kind,
        store_fingerprint=store.fingerprint,
        directories=desired.directories,
        changes=result.changes,
        ignored=ignored,
        managed_users=sum(1 for u in store.users.values() if u.managed and u.status == "active"),
        generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        teams=result.teams,
        people=result.people,
        warnings=list(desired.warnings),
    )
    plan.safety = checks(plan.summary, plan.managed_users, policy.safety, recent)
    return plan
