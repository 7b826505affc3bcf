"""Stores: where the application's users live. A new store starts here.

A store is a module with a class satisfying `Store` and one entry in `STORES`.
It must:
- `read()` the managed users and teams, and the unmanaged users that could be
  adopted (same email), into a `StoreState` with a `fingerprint` that changes
  whenever that content changes;
- `apply()` a list of changes as one unit: verify inside the unit that the
  fingerprint is still the one the plan was made against (else `StalePlan`),
  change only managed objects (or adopt), and record the apply in its history;
- `lock()` so two applies never overlap (a held lock raises `LockHeld`, naming the
  holder and since when; a lock older than its TTL is taken over and says so);
- keep `history()` of applies.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence

from ..errors import ReconcilerError, Refused
from ..model import Change, StoreState
from ..policy.model import StoreConfig


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


class Store(Protocol):
    kind: str

    def read(self) -> StoreState: ...

    def fingerprint(self) -> str: ...

    def lock(self, holder: str) -> AbstractContextManager[LockInfo]: ...

    def apply(self, changes: Sequence[Change], expected_fingerprint: str, record: ApplyRecord) -> ApplyRecord: ...

    def history(self) -> list[ApplyRecord]: ...

    def record(self, record: ApplyRecord) -> ApplyRecord: ...  # one history line on its own (a refusal)

    def close(self) -> None: ...


def _sqlite(config: StoreConfig) -> Store:
    from .sqlite import SqliteStore

    return SqliteStore(config)


def _postgres(config: StoreConfig) -> Store:
    from .postgres import PostgresStore

    return PostgresStore(config)


def _scim(config: StoreConfig) -> Store:
    from .scim import ScimStore

    return ScimStore(config)


STORES: dict[str, Callable[[StoreConfig], Store]] = {"sqlite": _sqlite, "sql": _postgres, "scim": _scim}


def open_store(config: StoreConfig) -> Store:
    return STORES[config.kind](config)
