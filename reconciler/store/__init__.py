"""Stores: where the application's users live. A new store starts here.

A store plug-in is one package under `reconciler/store/` (today `sql/`, with
its SQLite and PostgreSQL engines, and `scim/`) whose class satisfies `Store`,
plus one line in `STORES`. The packages have the same face:

- `store.py`: the class satisfying `Store`;
- `apply.py`: how each change is written: a `rules.StoreRules` subclass that
  answers the rules' lookups in this store and holds a handler per (kind,
  action) in `HANDLERS`, covering every row of `reconciler.changes.CHANGE_KINDS`
  (tests/unit/test_changes.py checks it);
- the rest is the store's own (tables and rows, HTTP and resources...).

What every store shares is in `common.py` (the history line, the lock's
answer, the clock, the content fingerprint) and `rules.py` (the store rules).

A store must:
- `read()` the managed users and teams, and the unmanaged users that could be
  adopted (same email), into a `StoreState` with a `fingerprint` that changes
  whenever that content changes (`common.fingerprint` of the content, at least);
- `apply()` a list of changes as one unit: verify inside the unit that the
  fingerprint is still the one the plan was made against (else `StalePlan`
  with `common.STALE_MESSAGE`); check the whole plan with the store rules
  (`StoreRules.run`: every change's shape first, then each against the store)
  before writing anything, refusing with "cannot apply <kind> <action> <key>:
  <reason>; nothing was changed (...)";
  change only managed objects (or adopt), and record the apply in its history,
  a failure as "failed: ..." (`failures_recorded`);
- `lock()` so two applies never overlap (a held lock raises `LockHeld`, naming the
  holder and since when; a lock older than its TTL is taken over and says so, and
  so is at once a lock whose holder is provably gone: a session that ended on
  PostgreSQL, a process of this host that no longer runs for a lock kept in a file,
  `common.LockProcess`; a holder elsewhere, which cannot be checked, keeps its TTL);
- read with read access alone (`read()` and `history()` change no content, and
  nothing at all where they may not write: plan, history, explain and check work
  on a store this user may not write; apply says it needs write access), and
  refuse a place holding another application's data (a SQLite file, a PostgreSQL
  schema with tables of the store's names) before changing anything there;
- keep the delta-read states (`read_sync()`; `apply(..., sync=)` writes them in the apply's own
  unit, and never after a failed apply), opaque bytes per directory (`directory/delta.py`);
- keep `history()` of applies, and `record()` one history line on its own (a
  refusal decided before apply);
- pass the store contract, tests/store_contract.py, run against it.

It may also `read_later()`: a read begun before the plan needs it and taken then (`read_later` below;
the SQL store reads in a helper process while the desired state is built, sql/prefetch.py).
"""
from __future__ import annotations

import importlib
from contextlib import AbstractContextManager
from typing import Callable, Mapping, Protocol, Sequence

from ..model import Change, KnownUser, StoreState
from ..policy.model import StoreConfig
from .common import ApplyRecord, LockInfo, failures_recorded

__all__ = ["STORES", "ApplyRecord", "LockInfo", "Store", "failures_recorded", "open_store", "read_later"]


class Store(Protocol):
    kind: str

    def read(self, known: Mapping[str, KnownUser] | None = None) -> StoreState: ...  # known: see model.KnownUser

    def fingerprint(self) -> str: ...

    def lock(self, holder: str) -> AbstractContextManager[LockInfo]: ...

    def apply(self, changes: Sequence[Change], expected_fingerprint: str, record: ApplyRecord,
              sync: Mapping[str, bytes] | None = None) -> ApplyRecord: ...

    def read_sync(self) -> dict[str, bytes]: ...  # the delta-read states kept with the last apply, by directory

    def generation(self) -> str | None: ...  # moves with every write to the content; None: cannot tell cheaply

    def history(self) -> list[ApplyRecord]: ...

    def record(self, record: ApplyRecord) -> ApplyRecord: ...  # one history line on its own (a refusal)

    def close(self) -> None: ...


def _plugin(module: str, name: str) -> Callable[[StoreConfig], Store]:
    """Opens a store whose module is imported only when a policy asks for that kind (psycopg, httpx)."""

    def open_(config: StoreConfig) -> Store:
        return getattr(importlib.import_module(module, __name__), name)(config)

    return open_


STORES: dict[str, Callable[[StoreConfig], Store]] = {  # store.kind -> how to open it
    "sqlite": _plugin(".sql.sqlite", "SqliteStore"),
    "sql": _plugin(".sql.postgres", "PostgresStore"),
    "scim": _plugin(".scim.store", "ScimStore"),
}


def open_store(config: StoreConfig) -> Store:
    return STORES[config.kind](config)


class LaterRead(Protocol):
    def begin(self) -> None: ...
    def state(self, known: Mapping[str, KnownUser] | None = None) -> StoreState: ...
    def close(self) -> None: ...


def read_later(store: Store) -> LaterRead:
    """`store.read`, made ready now, begun by `.begin()` and finished by `.state(known)`, where the store can
    work on it meanwhile (a SQL store reads in a helper process while the plan builds the desired state:
    sql/prefetch.py); `.close()` stops it if the state is never taken. A store without `read_later` reads
    at `.state`."""
    start = getattr(store, "read_later", None)
    return start() if start is not None else _ReadThen(store)


class _ReadThen:
    def __init__(self, store: Store) -> None:
        self.store = store

    def begin(self) -> None:
        pass

    def state(self, known: Mapping[str, KnownUser] | None = None) -> StoreState:
        return self.store.read(known=known)

    def close(self) -> None:
        pass
