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


def allowed(limit: Limit, active: int, *, percent_applies: bool = True, at_least: int = 0) -> tuple[int | None, str]:
    """The largest number allowed and how to say it; None when nothing limits it.

    A percentage is taken of the active managed users: deactivated ones do not count, so a series of
    small plans cannot take a store down 10% of what is left at a time. It never allows fewer than
    `at_least` (safety.min_limit): one ordinary leaver in a store of 4 goes through, while mass change
    stays blocked at every size (octoDNS and Okta exempt small sets the same way). An explicit count
    is what it says."""
    bounds: list[tuple[int, str]] = []
    if limit.count is not None:
        bounds.append((limit.count, f"{limit.count}"))
    if limit.percent is not None and percent_applies:
        n = math.floor(limit.percent * active / 100)
        if n < at_least:
            bounds.append((at_least, f"{limit.percent:g}% ({n} of {active} active users; at least {at_least}, safety.min_limit)"))
        else:
            bounds.append((n, f"{limit.percent:g}% ({n} of {active} active users)"))
    if not bounds:
        return None, ""
    return min(bounds)


def checks(summary: dict[str, int], active_users: int, safety: Safety) -> tuple[LimitCheck, ...]:
    """Each limit the policy sets, held against the plan's counts (limits set to null are left out)."""
    found: list[LimitCheck] = []
    for name, (noun, actions) in LIMITED.items():
        n = sum(summary.get(f"{kind}.{action}", 0) for kind, action in actions)
        # an initial import has no population to take a percentage of
        most, said = allowed(getattr(safety, name), active_users, at_least=safety.min_limit,
                             percent_applies=not (name == "max_creates" and active_users == 0))
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
