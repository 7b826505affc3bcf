"""Safety limits: every plan carries its verdict (shown at plan time), apply refuses one over a limit."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from ..changes import CHANGE_KINDS, LIMIT_NOUNS
from ..errors import TooMuchChange
from ..model import LimitCheck, Plan
from ..policy.model import Limit, Safety

if TYPE_CHECKING:  # the plan stage reads history records, it does not import the store stage
    from ..store.common import ApplyRecord

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


# what the window limits: the changes that take access away
WINDOWED = ("max_deactivations", "max_deletions")


def checks(summary: dict[str, int], active_users: int, safety: Safety,
           recent: dict[str, int] | None = None) -> tuple[LimitCheck, ...]:
    """Each limit the policy sets, held against the plan's counts (limits set to null are left out);
    and, for deactivations and deletions, against what was applied in the last `safety.window_hours`
    plus this plan (`recent`: counts per kind.action from the history), so a series of plans each under
    the limit cannot add up to mass change."""
    found: list[LimitCheck] = []
    recent = recent or {}
    for name, (noun, actions) in LIMITED.items():
        n = sum(summary.get(f"{kind}.{action}", 0) for kind, action in actions)
        # an initial import has no population to take a percentage of
        most, said = allowed(getattr(safety, name), active_users, at_least=safety.min_limit,
                             percent_applies=not (name == "max_creates" and active_users == 0))
        if most is None:
            continue
        found.append(LimitCheck(name, noun, n, most, said))
        before = sum(recent.get(f"{kind}.{action}", 0) for kind, action in actions)
        if name in WINDOWED and before and safety.window_hours:
            # the population the window started with: who is active now and who this window took away
            then = active_users + sum(recent.get(k, 0) for k in ("user.deactivate", "user.delete"))
            most, said = allowed(getattr(safety, name), then, at_least=safety.min_limit)
            said = said.replace(f"of {then} active users", f"of {then} active users {safety.window_hours} h ago")
            found.append(LimitCheck(name, f"{noun} in {safety.window_hours} h", before + n, most,  # type: ignore[arg-type]
                                    f"{said}; {before} applied since, {n} planned", safety.window_hours))
    return tuple(found)


def recent_counts(history: list[ApplyRecord], hours: int, now: datetime) -> dict[str, int]:
    """What applies changed in the last `hours`, per kind.action: applied ones only, and not forced ones
    (a forced apply was reviewed by a person, who said why; it must not jam the hourly job after it)."""
    since = now - timedelta(hours=hours)
    counts: dict[str, int] = {}
    for record in history:
        if record.outcome != "applied" or record.force_reason:
            continue
        try:
            finished = datetime.strptime(record.finished_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            continue
        if finished >= since:
            for name, n in record.counts.items():
                counts[name] = counts.get(name, 0) + n
    return counts


def violations(plan: Plan, safety: Safety) -> list[Violation]:
    """The limits a plan exceeds: its own verdict, made when it was planned (with the window's history)."""
    held = plan.safety or checks(plan.summary, plan.managed_users, safety)
    return [Violation(c.limit, f"{c.planned} {c.noun} is over the limit of {c.rule} (safety.{c.limit})")
            for c in held if not c.ok]


def enforce(plan: Plan, safety: Safety, *, force_reason: str | None = None) -> None:
    found = violations(plan, safety)
    if found and not force_reason:
        raise TooMuchChange("; ".join(v.message for v in found),
                            advice='Review the plan; if it is right, apply with --force --reason "..."')
