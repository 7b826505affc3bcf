"""What every store shares: the history line, the lock's answer, the clock, and the content fingerprint.

Nothing here knows where a store keeps its users. A store plug-in (see
`reconciler/store/__init__.py`) records its applies as `ApplyRecord`s, answers
`lock()` with a `LockInfo`, refuses a stale plan with `STALE_MESSAGE`, and
fingerprints its content with `fingerprint`, computed from the store values
rather than from how the store holds them (rows, resources), so that the same
content has the same fingerprint in every SQL engine.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..errors import ReconcilerError, Refused
from ..model import ACTION_ORDER, Change, StoreTeam, StoreUser

DEFAULT_LOCK_TTL = 900  # seconds; an apply that takes longer than this is presumed crashed
STALE_MESSAGE = "plan is stale: the store changed since the plan was made; run plan again"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ApplyRecord:
    """One line of history: who applied what, when, and how it ended."""

    started_at: str
    finished_at: str
    actor: str  # GITHUB_ACTOR or user@host
    commit: str | None
    run_id: str | None
    policy_digest: str
    plan_digest: str
    counts: dict[str, int]
    outcome: str  # "applied" | "failed: ..." | "refused: ..."
    force_reason: str | None = None
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "actor": self.actor,
            "commit": self.commit,
            "run_id": self.run_id,
            "policy_digest": self.policy_digest,
            "plan_digest": self.plan_digest,
            "counts": dict(sorted(self.counts.items())),
            "outcome": self.outcome,
            "force_reason": self.force_reason,
        }


@dataclass(frozen=True)
class LockInfo:
    holder: str
    since: str  # ISO 8601 UTC
    expired_takeover: str | None = None  # set when a crashed run's lock was taken over


@contextmanager
def failures_recorded(write: Callable[[ApplyRecord], object], finished: Callable[[str], ApplyRecord]) -> Iterator[None]:
    """An apply that is refused or fails goes into the history as such ("refused: ...",
    "failed: ..."), then the error goes on; a history that cannot be written never hides
    why the apply did not go through. Shared by every store and by the safety check."""
    try:
        yield
    except ReconcilerError as error:
        outcome = f"{'refused' if isinstance(error, Refused) else 'failed'}: {error.message}"
        try:
            write(finished(outcome))
        except ReconcilerError:
            pass
        raise


# ───────────────────────────── history counts ─────────────────────────────


def summarise(changes: Iterable[Change]) -> dict[str, int]:
    """Counts per "kind.action" in apply order, the shape of Plan.summary."""
    counts: dict[str, int] = {}
    for change in changes:
        name = f"{change.kind}.{change.action}"
        counts[name] = counts.get(name, 0) + 1
    order = {f"{kind}.{action}": rank for (kind, action), rank in ACTION_ORDER.items()}
    return dict(sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


# ───────────────────────────── fingerprint ─────────────────────────────


def fingerprint(users: Iterable[StoreUser], teams: Iterable[StoreTeam]) -> str:
    """"sha256:" + the digest of the store's content in a canonical order.

    Everything a plan depends on is in it (unmanaged users too: they can be
    adopted), and nothing else: timestamps and history do not count.

    The digested text is the compact JSON of {"teams": [...], "users": [...]}
    (keys sorted, rows sorted by key); it is hashed a thousand users at a time
    instead of being built whole, which at 100,000 users held the state twice more.
    """
    team_rows = sorted(([t.key, t.name, t.parent, t.managed] for t in teams), key=lambda item: item[0])
    digest = hashlib.sha256()
    digest.update(('{"teams":' + _compact(team_rows) + ',"users":[').encode("utf-8"))
    ordered = sorted(users, key=lambda u: u.key)
    for start in range(0, len(ordered), 1000):
        chunk = _compact([_user_row(u) for u in ordered[start : start + 1000]])[1:-1]  # the rows without [ ]
        digest.update(((',' if start else '') + chunk).encode("utf-8"))
    digest.update(b"]}")
    return "sha256:" + digest.hexdigest()


def _user_row(u: StoreUser) -> list[Any]:
    return [
        u.key,
        u.email,
        u.display_name,
        [list(pair) for pair in sorted(u.attributes)],
        u.team,
        sorted(u.memberships),
        sorted(str(link) for link in u.links),
        u.status,
        u.managed,
    ]


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
