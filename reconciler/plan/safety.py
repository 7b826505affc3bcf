"""Safety limits: every plan carries its verdict (shown at plan time), apply refuses one over a limit."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..changes import CHANGE_KINDS, LIMIT_NOUNS
from ..errors import TooMuchChange
from ..model import LimitCheck, Plan
from ..policy.model import Limit, Safety

# which plan actions each limit counts (reconciler/changes.py)
LIMITED = {limit: (noun, {(c.kind, c.action) for c in CHANGE_KINDS if c.limit == limit})
           for limit, noun in LIMIT_NOUNS.items()}


@dataclass(frozen=True)
class Violation:
    limit: str
    message: str


def allowed(limit: Limit, managed: int, *, percent_applies: bool = True) -> tuple[int | None, str]:
    """The largest number allowed and how to say it; None when nothing limits it."""
    bounds: list[tuple[int, str]] = []
    if limit.count is not None:
        bounds.append((limit.count, f"{limit.count}"))
    if limit.percent is not None and percent_applies:
        # floor: a 10% limit on 9 users allows 0, so small stores are protected too (no exemption)
        n = math.floor(limit.percent * managed / 100)
        bounds.append((n, f"{limit.percent:g}% ({n} of {managed} managed users)"))
    if not bounds:
        return None, ""
    return min(bounds)


def checks(summary: dict[str, int], managed_users: int, safety: Safety) -> tuple[LimitCheck, ...]:
    """Each limit the policy sets, held against the plan's counts (limits set to null are left out)."""
    found: list[LimitCheck] = []
    for name, (noun, actions) in LIMITED.items():
        n = sum(summary.get(f"{kind}.{action}", 0) for kind, action in actions)
        # an initial import has no population to take a percentage of
        most, said = allowed(getattr(safety, name), managed_users,
                             percent_applies=not (name == "max_creates" and managed_users == 0))
        if most is not None:
            found.append(LimitCheck(name, noun, n, most, said))
    return tuple(found)


def violations(plan: Plan, safety: Safety) -> list[Violation]:
    return [Violation(c.limit, f"{c.planned} {c.noun} is over the limit of {c.rule} (safety.{c.limit})")
            for c in checks(plan.summary, plan.managed_users, safety) if not c.ok]


def enforce(plan: Plan, safety: Safety, *, force_reason: str | None = None) -> None:
    found = violations(plan, safety)
    if found and not force_reason:
        raise TooMuchChange("; ".join(v.message for v in found),
                            advice='Review the plan; if it is right, apply with --force --reason "..."')
