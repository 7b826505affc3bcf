"""What every store shares: the history line (and the applies that changed nothing, counted instead of
recorded), the lock's answer and its holder's process, the clock, and the content fingerprint.

Nothing here knows where a store keeps its users. A store plug-in (see
`reconciler/store/__init__.py`) records its applies as `ApplyRecord`s, answers
`lock()` with a `LockInfo`, refuses a stale plan with `STALE_MESSAGE`, and
fingerprints its content with `fingerprint`, computed from the store values
rather than from how the store holds them (rows, resources), so that the same
content has the same fingerprint in every SQL engine. A store whose lock is a
row in a file (SQLite, the SCIM side file) records the holder's `LockProcess`
with it, so that a successor can tell a crashed holder on the same machine
from one that is still running.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from json.encoder import encode_basestring as _string  # a str as JSON (ensure_ascii=False), in C
from operator import attrgetter
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


# How an apply ends. A refused or failed one changed nothing, except a SCIM apply that failed halfway (a SCIM
# server has no transactions): its outcome says how many changes were applied and how many were not.
OUTCOMES = ("applied", "refused", "failed")


@dataclass(frozen=True)
class ApplyRecord:
    """One line of history: who applied what, when, and how it ended.

    `counts` is what the plan had, per "kind.action": what was applied when the outcome is "applied",
    what was planned and not applied when it is "refused: ..." or "failed: ..." (`applied`,
    `planned_not_applied` say which). `unchanged_runs`: the applies with no changes, not recorded as lines
    of their own, between the previous line and this one (`is_unchanged`)."""

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
    unchanged_runs: int = 0

    @property
    def result(self) -> str:
        """"applied", "refused" or "failed"; "unknown" for an outcome none of these (a hand-edited row)."""
        head = self.outcome.split(":", 1)[0].strip()
        return head if head in OUTCOMES else "unknown"

    @property
    def reason(self) -> str | None:
        """Why it was refused or failed (the outcome after "refused: "), None when applied."""
        if self.result == "applied":
            return None
        if self.result == "unknown":
            return self.outcome
        return self.outcome.split(":", 1)[1].strip() if ":" in self.outcome else None

    @property
    def applied(self) -> dict[str, int]:
        """What this apply changed: its counts when applied, nothing when refused or failed."""
        return dict(self.counts) if self.result == "applied" else {}

    @property
    def planned_not_applied(self) -> dict[str, int]:
        """What the plan had and was not applied: its counts when refused or failed, nothing when applied."""
        return {} if self.result == "applied" else dict(self.counts)

    def to_json(self) -> dict[str, Any]:
        """Every field, keys stable (docs/store-schema.md, `reconciler history --format json`)."""
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
            "result": self.result,
            "reason": self.reason,
            "applied": dict(sorted(self.applied.items())),
            "planned_not_applied": dict(sorted(self.planned_not_applied.items())),
            "force_reason": self.force_reason,
            "unchanged_runs": self.unchanged_runs,
        }


def is_unchanged(changes: Sequence[Change], record: ApplyRecord) -> bool:
    """An apply that changes nothing and is not forced (the hourly job on a store in sync): it gets no history
    line; the store counts it (`Unchanged`) and the next line says how many there were (`unchanged_runs`).
    A forced one is recorded: its reason is worth keeping. A refused or failed one always is."""
    return not changes and not record.force_reason


@dataclass(frozen=True)
class Unchanged:
    """The applies with no changes since the newest history line: how many, and when the latest finished."""

    runs: int = 0
    latest: str | None = None  # ISO 8601 UTC


class History(list[ApplyRecord]):
    """The history lines, newest first (a list, so that it compares equal to one), and `unchanged`: the
    applies with no changes since the newest line, read with them."""

    def __init__(self, records: Iterable[ApplyRecord] = (), unchanged: Unchanged = Unchanged()):
        super().__init__(records)
        self.unchanged = unchanged


@dataclass(frozen=True)
class LockInfo:
    holder: str
    since: str  # ISO 8601 UTC
    expired_takeover: str | None = None  # set when a crashed run's lock was taken over


# ───────────────────────────── the lock holder's process ─────────────────────────────


@dataclass(frozen=True)
class LockProcess:
    """The process that holds a file store's apply lock, as far as a successor needs it to prove the holder gone.

    `host` and `pid` say where to look. `boot` (the kernel's boot id) and `pid_namespace` make sure the
    successor looks at the same process table: a machine with the same host name, the same machine after a
    reboot, or a container sharing the host name but not its processes are all "elsewhere", where nothing can
    be proven and the lock's TTL decides. `started` (the process's start time in clock ticks since boot, field
    22 of /proc/<pid>/stat) tells the holder from a later process that was given its pid. Without /proc (not
    Linux) only `host` and `pid` are known: a pid that no longer exists proves the holder gone, a live one
    proves nothing (it may be reused).
    """

    host: str
    pid: int
    boot: str | None = None
    pid_namespace: str | None = None
    started: str | None = None

    @classmethod
    def current(cls) -> LockProcess:
        pid = os.getpid()
        return cls(host=socket.gethostname(), pid=pid, boot=_boot_id(), pid_namespace=_pid_namespace(),
                   started=_proc_stat(pid)[1])

    def encode(self) -> str:
        """`host=... pid=... [boot=...] [pidns=...] [started=...]`, space-separated, values percent-encoded."""
        fields = {"host": self.host, "pid": str(self.pid), "boot": self.boot, "pidns": self.pid_namespace,
                  "started": self.started}
        return " ".join(f"{k}={urllib.parse.quote(v, safe='-._:[]')}" for k, v in fields.items() if v is not None)

    @classmethod
    def decode(cls, text: str) -> LockProcess | None:
        """The process `encode` wrote, or None for anything else (a lock written before processes were recorded,
        a hand-made row): such a lock is left to its TTL."""
        fields: dict[str, str] = {}
        for part in text.split():
            key, sep, value = part.partition("=")
            if not sep:
                return None
            fields[key] = urllib.parse.unquote(value)
        try:
            pid = int(fields["pid"])
            host = fields["host"]
        except (KeyError, ValueError):
            return None
        if pid <= 0 or not host:
            return None
        return cls(host=host, pid=pid, boot=fields.get("boot"), pid_namespace=fields.get("pidns"),
                   started=fields.get("started"))

    def gone(self) -> str | None:
        """Why this process provably no longer runs ("pid 4242 on runner-1 is gone"), or None when it may
        still run: it does, or it is elsewhere (another host, boot or pid namespace), where this process
        cannot look."""
        here = LockProcess.current()
        if (self.host, self.boot, self.pid_namespace) != (here.host, here.boot, here.pid_namespace):
            return None
        said = f"pid {self.pid} on {self.host} is gone"
        try:
            os.kill(self.pid, 0)  # signal 0: nothing is sent, only whether the process exists is checked
        except ProcessLookupError:
            return said
        except OSError:  # PermissionError: it exists, another user's
            pass
        state, started = _proc_stat(self.pid)
        if state in ("Z", "X"):  # exited; only its exit status waits for its parent
            return said
        if self.started is not None and started is not None and started != self.started:
            return f"{said} (its pid now belongs to a process started later)"
        return None


def _proc_stat(pid: int) -> tuple[str | None, str | None]:
    """(state, start time in clock ticks since boot) from /proc/<pid>/stat, or (None, None) where unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
    except OSError:
        return None, None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")"
    fields = text[text.rfind(")") + 2:].split()
    if len(fields) < 20:
        return None, None
    return fields[0], fields[19]  # fields 3 and 22 of proc(5)


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return None


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
    ordered = sorted(users, key=attrgetter("key"))
    row = _UserRow()
    for start in range(0, len(ordered), 1000):
        chunk = ",".join(map(row, ordered[start : start + 1000]))
        digest.update(((',' if start else '') + chunk).encode("utf-8"))
    digest.update(b"]}")
    return "sha256:" + digest.hexdigest()


class _UserRow:
    """A user's row of the digested JSON, as `_compact` of (key, email, display name, sorted attributes, team,
    sorted memberships, sorted links as text, status, managed) writes it, built from escaped strings: half
    the time of encoding a tuple per user (bench/README.md: "store read"). Most users share one of a few
    attributes tuples, whose text is made once (the first `SHARED` of them: where they are mostly distinct,
    a text per user kept to the end would cost more than it saves); any value not of the usual type goes
    through `_compact`."""

    SHARED = 4096

    def __init__(self) -> None:
        self._attributes: dict[tuple[tuple[str, str], ...], str] = {}

    def __call__(self, u: StoreUser) -> str:
        attributes = self._attributes.get(u.attributes) if type(u.attributes) is tuple else None
        if attributes is None:
            attributes = _compact(sorted(u.attributes))
            if type(u.attributes) is tuple and len(self._attributes) < self.SHARED:
                self._attributes[u.attributes] = attributes
        links = u.links
        if len(links) == 1 and type(links[0].directory) is str and type(links[0].anchor) is str:
            link_text = "[" + _string(links[0].directory + ":" + links[0].anchor) + "]"
        else:
            link_text = _compact(sorted(map(str, links)))
        return "[" + ",".join((
            _text(u.key), _text(u.email), _text(u.display_name), attributes, _text(u.team),
            _compact(sorted(u.memberships)) if u.memberships else "[]", link_text, _text(u.status),
            "true" if u.managed is True else "false" if u.managed is False else _compact(u.managed),
        )) + "]"


def _text(value: Any) -> str:
    """`_compact(value)`, without the encoder's set-up for a string."""
    return _string(value) if type(value) is str else _compact(value)


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
