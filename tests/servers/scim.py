"""A real SCIM 2.0 server for the SCIM store's tests: `scim2-server` from PyPI on loopback.

scim2-server is an independent RFC 7643/7644 implementation (Yaal Coop's
scim2 suite). It keeps resources in memory, so each fixture starts a fresh one
on a free 127.0.0.1 port with a random bearer token, and stops it by its pid.
Its ServiceProviderConfig comes from a file, so a test can start a server
that does not support PATCH or filtering (it then answers 501), and check the
store falls back.
"""
from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from . import free_port, stop_process, unavailable, wait_until

FULL_SUPPORT: dict[str, Any] = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
    "patch": {"supported": True},
    "bulk": {"supported": True, "maxOperations": 1000, "maxPayloadSize": 1048576},
    "filter": {"supported": True, "maxResults": 1000},
    "changePassword": {"supported": False},
    "sort": {"supported": True},
    "etag": {"supported": True},
}


def service_provider_config(**features: Any) -> dict[str, Any]:
    """FULL_SUPPORT with some features replaced, e.g. patch={"supported": False}."""
    return {**FULL_SUPPORT, **features}


class ScimServer:
    """A running scim2-server and an admin's view of it (as the application's own console would be)."""

    def __init__(self, folder: Path, config: dict[str, Any] | None = None):
        self.folder = folder
        self.port = free_port()
        self.token = "test-" + secrets.token_hex(16)
        self.log_file = str(folder / "scim2-server.log")
        self.url = f"http://127.0.0.1:{self.port}/v2"
        config_file = folder / "service-provider-config.json"
        config_file.write_text(json.dumps(config or FULL_SUPPORT))
        started = time.monotonic()
        with open(self.log_file, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "scim2_server.testserver.cli", "--hostname", "127.0.0.1",
                 "--port", str(self.port), "--bearer-token", self.token,
                 "--service-provider-config", str(config_file)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.http = httpx.Client(base_url=self.url + "/", headers={"Authorization": f"Bearer {self.token}"},
                                 trust_env=False, timeout=10)
        try:
            wait_until(lambda: self.http.get("ServiceProviderConfig").status_code == 200, 30,
                       "scim2-server", self.process, self.log_file)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - started

    def stop(self) -> None:
        self.http.close()
        stop_process(self.process)

    # ── the application's side ──

    def list(self, endpoint: str) -> list[dict]:
        """Every resource, page by page (a server may cap the page below what was asked)."""
        resources: list[dict] = []
        while True:
            answer = self.http.get(endpoint, params={"startIndex": len(resources) + 1, "count": 1000})
            answer.raise_for_status()
            page = answer.json()
            resources += page.get("Resources") or []
            if not page.get("Resources") or len(resources) >= page["totalResults"]:
                return resources

    def users(self) -> list[dict]:
        return self.list("Users")

    def groups(self) -> list[dict]:
        return self.list("Groups")

    def user(self, user_name: str) -> dict | None:
        hits = [u for u in self.users() if u.get("userName", "").lower() == user_name.lower()]
        assert len(hits) <= 1, f"{len(hits)} users named {user_name}"
        return hits[0] if hits else None

    def group(self, external_id: str) -> dict | None:
        hits = [g for g in self.groups() if g.get("externalId") == external_id]
        assert len(hits) <= 1, f"{len(hits)} groups with externalId {external_id}"
        return hits[0] if hits else None

    def create_user(self, resource: dict) -> dict:
        answer = self.http.post("Users", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], **resource})
        assert answer.status_code == 201, answer.text
        return answer.json()

    def patch(self, endpoint: str, resource_id: str, operations: list[dict]) -> None:
        answer = self.http.patch(f"{endpoint}/{resource_id}", json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations})
        assert answer.status_code in (200, 204), answer.text

    def delete(self, endpoint: str, resource_id: str) -> None:
        answer = self.http.delete(f"{endpoint}/{resource_id}")
        assert answer.status_code == 204, answer.text


def start_scim_server(folder: Path, config: dict[str, Any] | None = None) -> ScimServer:
    """A fresh server, or skip (fail under RECONCILER_REQUIRE_SERVERS=1) when scim2-server is not installed."""
    if importlib.util.find_spec("scim2_server") is None:
        unavailable("scim2-server is not installed (pip install -e '.[test]')")
    folder.mkdir(parents=True, exist_ok=True)
    return ScimServer(folder, config)


@pytest.fixture
def scim_server(tmp_path) -> Iterator[ScimServer]:
    server = start_scim_server(tmp_path / "scim2-server")
    yield server
    server.stop()


# ───────────────────────────── Example Corp over SCIM ─────────────────────────────

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
SQLITE_STORE = "store:\n  kind: sqlite\n  path: .reconciler/store.db\n"


@dataclass
class Result:
    code: int
    out: str
    err: str


class ScimCompany:
    """A private copy of the quickstart (policy and LDIF snapshots) whose store is a SCIM server."""

    def __init__(self, folder: Path, url: str, token: str):
        shutil.copytree(QUICKSTART, folder, ignore=shutil.ignore_patterns(".reconciler", "*.py", "__pycache__"))
        self.folder = folder
        self.policy = folder / "policy.yaml"
        self.token = token
        text = self.policy.read_text()
        assert SQLITE_STORE in text, "the quickstart's store section changed; update ScimCompany"
        self.policy.write_text(text.replace(SQLITE_STORE, f"store:\n  kind: scim\n  url: {url}\n  token: '${{SCIM_TOKEN}}'\n"))

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
        executable = shutil.which("reconciler")
        if executable is None:
            pytest.fail("the reconciler console script is not installed; run tests/run (it does pip install -e .)")
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith("GITHUB_") and k.lower() not in PROXY_VARIABLES}
        environment.update({"SCIM_TOKEN": self.token, **(env or {})})
        done = subprocess.run([executable, *args], cwd=self.folder, capture_output=True, text=True,
                              env=environment, timeout=timeout)
        return Result(done.returncode, done.stdout, done.stderr)

    def plan_json(self, *extra: str) -> dict:
        result = self.run("plan", "policy.yaml", "--format", "json", *extra)
        assert result.code == 0, result.err
        return json.loads(result.out)

    def apply(self, *extra: str, env: dict[str, str] | None = None) -> Result:
        result = self.run("apply", "policy.yaml", "--auto-approve", *extra, env=env)
        assert result.code == 0, result.err + result.out
        return result

    def plan_is_empty(self) -> bool:
        result = self.run("plan", "policy.yaml", "--detailed-exitcode")
        assert result.code in (0, 2), result.err
        return result.code == 0

    def set_policy(self, old: str, new: str) -> None:
        text = self.policy.read_text()
        assert old in text, old
        self.policy.write_text(text.replace(old, new))


PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def changes(plan: dict, action: str | None = None, kind: str = "user") -> list[dict]:
    return [c for c in plan["changes"] if c["kind"] == kind and (action is None or c["action"] == action)]
