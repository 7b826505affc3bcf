"""The review contract: what a pull-request reviewer approves, and how apply after merge holds to it.

A reviewer approves two things, both computed by `plan --base-policy`:

1. the policy file, by its digest (the bytes that will be merged), and
2. the effect of the edit: how many changes of each kind the edit itself causes
   (the changes the target branch's policy would not make), e.g. 23 user.deactivate.

After merge, `apply --reviewed REVIEW` goes through when the merged policy is the
reviewed one and the edit causes no materially more than was reviewed (within
`safety.review_margin` per kind of change). The directories keep moving between
review and merge: changes the edit does not cause (new hires, leavers, hand edits)
are drift, shown in the apply output and held to the safety limits like any drift.

The review travels in the plan comment as one machine-readable HTML comment
(`marker`), which the apply workflow reads back from the bot's comment (`parse`).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from ..changes import BY_KIND_ACTION
from ..errors import ReconcilerError, StalePlan
from ..model import Plan, Review
from ..policy.model import ReviewMargin

MARKER = "reconciler-review"
FORMAT = 1
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
_SUMMARY_KEY = re.compile(r"(user|team|membership)\.(create|adopt|update|move|reactivate|deactivate|delete|add|remove)\Z")
_FOUND = re.compile(r"<!-- " + MARKER + r" (\{.*?\}) -->")


def review_of(plan: Plan, base_policy_digest: str | None) -> Review:
    """The review of an attributed plan (every change has a cause)."""
    effect: dict[str, int] = {}
    for change in plan.changes:
        if change.cause == "policy":
            name = f"{change.kind}.{change.action}"
            effect[name] = effect.get(name, 0) + 1
    order = list(plan.summary)
    return Review(plan.policy_digest, base_policy_digest, dict(sorted(effect.items(), key=lambda kv: order.index(kv[0]))))


def marker(plan: Plan) -> str:
    """The review as one HTML comment line; "" for a plan made without --base-policy.
    Only digests and counts go in: nothing a directory says can end the comment early."""
    if plan.review is None:
        return ""
    body = {"format": FORMAT, **plan.review.to_json()}
    return f"<!-- {MARKER} {json.dumps(body, sort_keys=True, separators=(',', ':'))} -->"


def parse(text: str, source: str) -> Review:
    """A review from a plan comment (the marker anywhere in it) or from the marker's JSON alone."""
    found = _FOUND.search(text)
    raw = found.group(1) if found else text.strip()
    try:
        data = json.loads(raw)
    except ValueError:
        raise ReconcilerError(f"{source}: no reconciler review in it; it should hold the `<!-- {MARKER} ... -->` line "
                              "of a plan comment made with `plan --base-policy --format markdown`") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ReconcilerError(f"{source}: not a reconciler review of format {FORMAT}")
    policy, base, effect = data.get("policy_digest"), data.get("base_policy_digest"), data.get("effect")
    if (not isinstance(policy, str) or not _DIGEST.match(policy)
            or not (base is None or (isinstance(base, str) and _DIGEST.match(base)))
            or not isinstance(effect, dict)
            or not all(isinstance(k, str) and _SUMMARY_KEY.match(k) and type(v) is int and v >= 0 for k, v in effect.items())):
        raise ReconcilerError(f"{source}: the review is malformed (policy_digest, base_policy_digest, effect); "
                              "take it from the plan comment unedited")
    return Review(policy, base, dict(effect))


@dataclass(frozen=True)
class Held:
    """What apply says about a fresh plan held against the review."""

    lines: list[str]  # reviewed vs now, per kind of change, for the apply output


def margin_for(reviewed: int, margin: ReviewMargin) -> int:
    """How many more changes of one kind the edit may cause than were reviewed: the larger of the two bounds."""
    return max(margin.count, math.ceil(reviewed * margin.percent / 100))


def hold(reviewed: Review, fresh: Plan, margin: ReviewMargin) -> Held:
    """Refuses (StalePlan, nothing changed) unless `fresh` is what the reviewer approved, give or take drift."""
    if fresh.review is None:
        raise ReconcilerError("internal: the fresh plan must be attributed against the base policy")
    if fresh.policy_digest != reviewed.policy_digest:
        raise StalePlan(
            f"the merged policy ({fresh.policy_digest}) is not the one reviewed in the pull "
            f"request ({reviewed.policy_digest}); it changed after the plan was commented, or another policy change was "
            "merged in between", advice="Plan it in a new pull request and review that")
    now = fresh.review.effect
    lines: list[str] = []
    over: list[str] = []
    for name in sorted(set(now) | set(reviewed.effect)):
        was, is_ = reviewed.effect.get(name, 0), now.get(name, 0)
        extra = margin_for(was, margin)
        kind = BY_KIND_ACTION.get(tuple(name.split(".", 1)))  # type: ignore[arg-type]
        if is_ > was + extra:
            over.append(f"{kind.count(is_) if kind else f'{is_} {name}'} (reviewed {was}, margin {extra})")
        lines.append(f"  {kind.title if kind else name}: reviewed {was}, now {is_}"
                     + ("" if is_ == was else f" ({is_ - was:+d})"))
    if over:
        raise StalePlan(
            "the edit now causes materially more than was reviewed: " + "; ".join(over)
            + " (safety.review_margin); the directories changed since the review",
            advice="Re-run the plan on the pull request (or open a new one) and review it again")
    if reviewed.base_policy_digest != fresh.review.base_policy_digest:
        lines.append("  note: the policy before this merge is not the one the review was planned against; "
                     "the edit's effect above is taken against the policy before this merge")
    return Held(lines)


__all__ = ["MARKER", "Held", "hold", "margin_for", "marker", "parse", "review_of"]
