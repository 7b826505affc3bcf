"""The SCIM store as the CLI uses it: the lock and history in the side file, stale plans, failed applies recorded,
and reading never writing anything locally. The server is a scripted in-memory one (tests/unit/test_scim_apply.py)."""
from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from reconciler.errors import LockHeld, SecretError, StalePlan, StoreError
from reconciler.model import Change
from reconciler.policy.model import SecretRef
from reconciler.policy.model import StoreConfig
from reconciler.store import ApplyRecord, open_store
from reconciler.store.scim.client import ScimClient
from reconciler.store.scim.store import ScimStore
from tests.unit.test_scim_apply import GROUPS, USERS, FakeServer, create

RECORD = ApplyRecord(started_at="2026-11-21T09:00:00Z", finished_at="", actor="ci@runner", commit="abc", run_id="7",
                     policy_digest="sha256:p", plan_digest="sha256:d", counts={}, outcome="")


class ListingServer(FakeServer):
    """FakeServer that also lists Users and Groups."""

    def __init__(self, **options):
        super().__init__(**options)
        self.users, self.groups = [dict(u) for u in USERS], [dict(g) for g in GROUPS]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v2/")
        if request.method == "GET" and path in ("Users", "Groups"):
            listed = self.users if path == "Users" else self.groups
            return httpx.Response(200, json={"totalResults": len(listed), "Resources": listed})
        return super().__call__(request)


def config(tmp_path) -> StoreConfig:
    return StoreConfig(kind="scim", path=str(tmp_path / ".reconciler" / "scim-state.db"),
                       url="http://127.0.0.1:1/v2", token=SecretRef("TEST_SCIM_TOKEN", "store.token"))


def store(tmp_path, server: FakeServer | None = None) -> ScimStore:
    client = ScimClient("http://127.0.0.1:1/v2", "t", transport=httpx.MockTransport(server or ListingServer()),
                        sleep=lambda s: None)
    return ScimStore(config(tmp_path), client=client)


def test_the_registry_opens_a_scim_store(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SCIM_TOKEN", "t")
    opened = open_store(config(tmp_path))
    assert isinstance(opened, ScimStore) and opened.kind == "scim"
    opened.close()


def test_reading_writes_nothing_locally(tmp_path):
    s = store(tmp_path)
    assert set(s.read().users) == {"corp:a1", "corp:a2", "scim:u3"}
    assert s.history() == []
    assert not (tmp_path / ".reconciler").exists()


def test_history_needs_no_token(tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_SCIM_TOKEN", raising=False)
    s = ScimStore(config(tmp_path))
    assert s.history() == []
    with pytest.raises(SecretError, match="TEST_SCIM_TOKEN is not set"):
        s.read()


def test_a_second_apply_is_refused_while_the_lock_is_held(tmp_path):
    first, second = store(tmp_path), store(tmp_path)
    with first.lock("alice@ci"):
        with pytest.raises(LockHeld, match="store is locked by alice@ci since"):
            with second.lock("bob@laptop"):
                pass
        with pytest.raises(LockHeld):  # an apply without the lock takes it, and so is refused too
            second.apply([], second.fingerprint(), RECORD)
    with second.lock("bob@laptop"):
        pass


def test_an_apply_is_recorded_with_its_counts(tmp_path):
    s = store(tmp_path)
    applied = s.apply([create("corp:n1", "new@corp.example.com")], s.fingerprint(), RECORD)
    assert applied.outcome == "applied" and applied.counts == {"user.create": 1}
    [line] = s.history()
    assert (line.outcome, line.actor, line.counts) == ("applied", "ci@runner", {"user.create": 1})


def test_a_stale_plan_is_refused_and_recorded(tmp_path):
    server = ListingServer()
    s = store(tmp_path, server)
    fingerprint = s.fingerprint()
    server.users[0] = {**server.users[0], "displayName": "Edited in the app"}
    with pytest.raises(StalePlan, match="plan is stale"):
        s.apply([create("corp:n1", "new@corp.example.com")], fingerprint, RECORD)
    assert [m for m, _, _ in server.requests if m != "GET"] == []
    assert s.history()[0].outcome.startswith("refused: plan is stale")


def test_a_plan_the_store_cannot_take_changes_nothing_and_says_so(tmp_path):
    server = ListingServer()
    s = store(tmp_path, server)
    bad = Change("update", "user", "scim:u3", "", {}, {"display_name": "X"})
    with pytest.raises(StoreError) as error:
        s.apply([create("corp:n1", "new@corp.example.com"), bad], s.fingerprint(), RECORD)
    assert "cannot apply user update scim:u3" in str(error.value) and "nothing was changed" in str(error.value)
    assert [m for m, _, _ in server.requests if m != "GET"] == []
    assert s.history()[0].outcome.startswith("failed: cannot apply user update scim:u3")


def test_a_failing_request_stops_the_apply_and_the_report_says_what_was_done(tmp_path):
    class Refusing(ListingServer):
        def __call__(self, request):
            if request.method == "POST" and b"corp:n2" in request.content:
                return httpx.Response(409, json={"status": "409", "scimType": "uniqueness", "detail": "userName taken"})
            return super().__call__(request)

    s = store(tmp_path, Refusing())
    changes = [create(f"corp:n{i}", f"n{i}@corp.example.com") for i in (1, 2, 3)]
    with pytest.raises(StoreError) as error:
        s.apply(changes, s.fingerprint(), replace(RECORD, counts={}))
    message = str(error.value)
    assert "apply stopped at change 2 of 3 (user create corp:n2)" in message
    assert "HTTP 409 (uniqueness): userName taken" in message and "1 change(s) were applied, 2 were not" in message
    assert s.history()[0].outcome == f"failed: {error.value.message}"
    # what was done is noted: n1's team is known to the next plan
    assert s.side.load().users["corp:n1"].team == "Org"


@pytest.mark.parametrize("url, message", [
    ("http://scim.example.com/v2", "would send the token in clear"),
    (None, "store.url is not set"),
])
def test_an_unusable_url_is_one_line(tmp_path, url, message):
    with pytest.raises(StoreError, match=message):
        ScimStore(replace(config(tmp_path), url=url))
