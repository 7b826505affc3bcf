"""A saved plan is evidence for review, not an instruction to trust.

`apply --plan FILE` plans afresh from the policy, the directories and the store,
and applies only when the file describes exactly that plan. What is applied is the
fresh plan, never the file's changes, and every safety input (`managed_users`, the
counts) comes from the store. Anyone can edit the file and recompute its digest:
an extra create, an email changed to an outsider's, a deactivation turned into a
delete, an inflated `managed_users` all fail the comparison and change nothing.
"""
from __future__ import annotations

import json

from ..errors import StalePlan
from ..model import Change, Plan

Claim = tuple[str, str, str, str, str]


def _claim(change: Change) -> Claim:
    """A change as comparable text: what it does, not how it is explained (reason, subject, cause)."""
    return (change.kind, change.action, change.key, json.dumps(change.before, sort_keys=True), json.dumps(change.after, sort_keys=True))


def _say(claim: Claim) -> str:
    """The change in a message: escaped by JSON, so a hostile file cannot put terminal control codes on screen."""
    kind, action, key, _before, after = claim
    text = f"{action} {kind} {json.dumps(key)}" + (f" with {after}" if action in ("create", "adopt", "update", "move") else "")
    return text if len(text) <= 200 else text[:197] + "..."


def verify_saved(saved: Plan, fresh: Plan, source: str) -> None:
    """Refuses unless `fresh` (planned now) is the plan `saved` describes; says what differs."""
    if saved.policy_digest != fresh.policy_digest:
        raise StalePlan(f"plan is stale: {fresh.policy_path} changed since the plan was made; run plan again")
    if saved.store_kind != fresh.store_kind:
        raise StalePlan(f"plan is stale: it is for a {saved.store_kind} store but the policy now uses {fresh.store_kind}; run plan again")
    if saved.store_fingerprint != fresh.store_fingerprint:
        raise StalePlan("plan is stale: the store changed since the plan was made; run plan again")
    differences: list[str] = []
    if saved.managed_users != fresh.managed_users:
        differences.append(f"it says the store has {saved.managed_users} active managed users, the store has {fresh.managed_users}")
    claimed = {_claim(c) for c in saved.changes}
    produced = {_claim(c) for c in fresh.changes}
    extra = sorted(claimed - produced, key=repr)
    missing = sorted(produced - claimed, key=repr)
    if extra:
        differences.append(f"{len(extra)} change(s) in the file that a fresh plan does not make (first: {_say(extra[0])})")
    if missing:
        differences.append(f"{len(missing)} change(s) a fresh plan makes that the file lacks (first: {_say(missing[0])})")
    if len(saved.changes) != len(claimed):
        differences.append("the file lists a change more than once")
    if differences:
        raise StalePlan(
            f"{source} is not what the policy, the directories and the store produce now: "
            + "; ".join(differences),
            advice="The directories changed since it was made, or the file was edited: run plan again and review it")
