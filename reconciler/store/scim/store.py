"""`ScimStore`: the Store protocol over a SCIM server and the side file (see the package's docstring)."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace

from ...errors import Location, StalePlan, StoreError
from ...model import Change, KnownUser, StoreState, Written
from ...policy.model import SecretRef
from ...policy.model import StoreConfig
from ..common import (
    DEFAULT_LOCK_TTL, STALE_MESSAGE, ApplyRecord, Clock, History, LockInfo, failures_recorded, is_unchanged, iso, summarise,
    utc_now,
)
from ..rules import refusal
from .apply import ChangeRefused, plan_operations
from .client import ScimClient, ScimHttpError, ScimTokenError, ScimUrlError, check_base_url, check_token
from .execute import ApplyStopped, Executor
from .state import Notes, SideFile
from .view import Snapshot, ViewError, build_snapshot


class ScimStore:
    kind = "scim"

    def __init__(self, config: StoreConfig, lock_ttl: int = DEFAULT_LOCK_TTL, clock: Clock = utc_now,
                 client: ScimClient | None = None):
        self.clock = clock
        url = config.url.resolve() if isinstance(config.url, SecretRef) else config.url
        if not url:
            raise StoreError("store.url is not set; a scim store needs the SCIM base URL, e.g. https://app.example.com/scim/v2")
        try:
            self.where = check_base_url(url)
        except ScimUrlError as error:
            raise StoreError(str(error)) from None
        if client is None and config.token is None:
            raise StoreError("store.token is not set; a scim store needs a bearer token as a ${NAME} reference")
        self._token = config.token
        self._client = client
        side_file = config.file()
        if not side_file:
            raise StoreError("the scim store has no side file for its lock and history (store.state_dir is not set)")
        self.side = SideFile(side_file, lock_ttl=lock_ttl, clock=clock)
        self._holding = False

    @property
    def client(self) -> ScimClient:
        """Made on first use, so `history` reads the side file without needing the token."""
        if self._client is None:
            assert self._token is not None
            try:  # checked before anything is sent: a token no header can carry is never retried nor echoed
                token = check_token(self._token.resolve(),
                                    f"store.token: the environment variable {self._token.variable}")
            except ScimTokenError as error:
                raise StoreError(str(error)) from None
            self._client = ScimClient(self.where, token, token_hint=f"the token in ${{{self._token.variable}}}")
        return self._client

    # ── read ──

    def read(self, known: Mapping[str, KnownUser] | None = None) -> StoreState:
        # `known` (values to share with the desired state) is not taken: a SCIM store's users come as JSON
        # documents of their own, and a store an HTTP server pages through is not a million-user store here
        return self._snapshot().state

    def fingerprint(self) -> str:
        return self.read().fingerprint

    def _snapshot(self) -> Snapshot:
        try:
            users = self.client.list_all("Users", "listing users (GET /Users)")
            groups = self.client.list_all("Groups", "listing groups (GET /Groups)")
        except ScimHttpError as error:
            raise StoreError(error.message, Location(self.where)) from None
        try:
            return build_snapshot(users, groups, self.side.load())
        except ViewError as error:
            raise StoreError(str(error), Location(self.where)) from None

    # ── lock and history: the side file's ──

    @contextmanager
    def lock(self, holder: str) -> Iterator[LockInfo]:
        with self.side.lock(holder) as info:
            self._holding = True
            try:
                yield info
            finally:
                self._holding = False

    def history(self) -> History:
        return self.side.history()

    def record(self, record: ApplyRecord) -> ApplyRecord:
        return self.side.record(record)

    # ── apply ──

    def apply(self, changes: Sequence[Change], expected_fingerprint: str, record: ApplyRecord,
              sync: Mapping[str, bytes] | None = None) -> ApplyRecord:
        """Apply the changes in order under the lock; a failure stops and says what was and was not done.
        `sync` (the delta-read states) is kept in the side file with the history line of an apply that went
        through, never after a failure: the next read then starts from the state before it."""
        if not self._holding:  # the CLI holds the lock already; anyone else gets it taken for them
            with self.lock(record.actor):
                return self.apply(changes, expected_fingerprint, record, sync)
        record = replace(record, counts=record.counts or summarise(changes))
        with failures_recorded(self.side.record, lambda outcome: self._finished(record, outcome)):
            finished = self._finished(record, self._apply(changes, expected_fingerprint))
            if is_unchanged(changes, record):  # no line of its own: counted for the next one
                self.side.count_unchanged(finished.finished_at, sync)
                return finished
            return self.side.record(finished, sync)

    def generation(self) -> str | None:
        """None: a SCIM server cannot say cheaply that nothing changed on it, so a kept plan is never reused."""
        return None

    def read_sync(self) -> dict[str, bytes]:
        """The delta-read states, kept in the side file."""
        return self.side.read_sync()

    def _apply(self, changes: Sequence[Change], expected_fingerprint: str) -> str:
        snapshot = self._snapshot()
        if snapshot.state.fingerprint != expected_fingerprint:
            raise StalePlan(STALE_MESSAGE)
        try:
            steps = plan_operations(snapshot, changes)
        except ChangeRefused as refused:
            raise StoreError(
                f"{refusal(refused.change, refused.reason)}; "
                "nothing was changed (the whole plan was checked before the first request)",
                Location(self.where),
            ) from None
        executor = Executor(self.client, snapshot)
        try:
            executor.run(steps)
        except ApplyStopped as stopped:
            try:  # the notes of what was done; if they cannot be written, the next plan rebuilds them
                self.side.save(executor.notes)
            except StoreError:
                pass
            raise StoreError(self._stopped_message(stopped), Location(self.where)) from None
        self.side.save(remembered(executor.notes, snapshot))
        return "applied"

    @staticmethod
    def _stopped_message(stopped: ApplyStopped) -> str:
        remaining = stopped.total - stopped.done
        if stopped.failed is None:
            where = f"after all {stopped.total} changes, setting managers failed"
        else:
            change = stopped.failed
            where = f"stopped at change {stopped.done + 1} of {stopped.total} ({change.kind} {change.action} {change.key})"
        if stopped.unknown:
            counted = (f"{stopped.done} change(s) were applied, {stopped.unknown} may or may not have been (the request "
                       f"was sent and no answer says what the server did), {remaining - stopped.unknown} were not")
        else:
            counted = f"{stopped.done} change(s) were applied, {remaining} were not"
        return (
            f"apply {where}: {stopped.error.message}; {counted}; the server has no transactions, so what was done "
            "stays: plan again and apply to finish (a re-run converges: it plans only what is still missing, and "
            "nothing is duplicated)"
        )

    def _finished(self, record: ApplyRecord, outcome: str) -> ApplyRecord:
        return replace(record, finished_at=iso(self.clock()), outcome=outcome)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self.side.close()


__all__ = ["ScimStore"]


def remembered(notes: Notes, snapshot: Snapshot) -> Notes:
    """The notes with a memory of what was written for every managed user: a side file from before this
    memory existed gets one, the users as they are now taken as last written (as the SQL stores' migration
    does), so that the next plans can tell an edit in the application from a change in the directory."""
    for key, user in snapshot.state.users.items():
        note = notes.users.get(key)
        if user.managed and note is not None and note.written is None:
            notes.users[key] = replace(note, written=Written(user.email, user.display_name, user.attributes))
    return notes
