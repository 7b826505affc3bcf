"""A second, independent SCIM 2.0 server for the SCIM store's tests: SCIMMY (npm) on express, on loopback.

scim2-server (tests/servers/scim.py) is one reading of RFC 7643/7644; SCIMMY
(`scimmy` + `scimmy-routers`, tests/servers/scimmy/server.js with in-memory
handlers) is another, and where the RFC leaves servers room it uses it
differently: a Bulk operation's path cannot name a resource by `bulkId:` (it
answers 404), a GET of a list ignores `startIndex` and `count` (express 5
parses the query string afresh on every read, so the routers' numeric casts
are lost) and always answers the first 20 of all, while `POST /.search` pages
as asked; PATCH "add" of a member already present adds it twice. The store
must converge on both; the server is used as SCIMMY ships it, not fixed.

Each fixture starts a fresh server (its resources live in memory) on a free
127.0.0.1 port with a random bearer token, waits until it answers, and stops
it by its own pid. The node modules come from `npm ci` in tests/run; without
node or them the test skips (fails under RECONCILER_REQUIRE_SERVERS=1).
"""
from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from . import free_port, stop_process, unavailable, wait_until
from .scim import ScimServer

SERVER_DIR = Path(__file__).resolve().parent / "scimmy"
MODULES = ("scimmy", "scimmy-routers", "express")
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def pinned_versions() -> dict[str, str]:
    """The versions package.json pins (exact, so every machine meets the same server)."""
    return json.loads((SERVER_DIR / "package.json").read_text())["dependencies"]


def installed_version(module: str) -> str | None:
    manifest = SERVER_DIR / "node_modules" / module / "package.json"
    return json.loads(manifest.read_text()).get("version") if manifest.exists() else None


class ScimmyServer(ScimServer):
    """A running SCIMMY server and an admin's view of it (the same face as scim2-server's ScimServer)."""

    def __init__(self, folder: Path, node: str):  # noqa: D107  (not ScimServer's: another server to start)
        self.folder = folder
        self.port = free_port()
        self.token = "test-" + secrets.token_hex(16)
        self.log_file = str(folder / "scimmy.log")
        self.url = f"http://127.0.0.1:{self.port}/scim/v2"
        started = time.monotonic()
        with open(self.log_file, "w") as log:
            self.process = subprocess.Popen(
                [node, str(SERVER_DIR / "server.js"), "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=SERVER_DIR,
                env={"PATH": "/usr/bin:/bin", "SCIMMY_TOKEN": self.token},
            )
        self.http = httpx.Client(base_url=self.url + "/", headers={"Authorization": f"Bearer {self.token}"},
                                 trust_env=False, timeout=10)
        try:
            wait_until(lambda: self.http.get("ServiceProviderConfig").status_code == 200, 30,
                       "SCIMMY", self.process, self.log_file)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - started

    def list(self, endpoint: str) -> list[dict]:
        """Every resource. SCIMMY's GET answers the first 20 whatever startIndex says, so the admin's view
        pages with POST /.search (RFC 7644 §3.4.3), whose numbers SCIMMY reads; each id must come once."""
        resources: dict[str, dict] = {}
        while True:
            answer = self.http.post(f"{endpoint}/.search", json={
                "schemas": [SEARCH_REQUEST], "startIndex": len(resources) + 1, "count": 200})
            answer.raise_for_status()
            page = answer.json()
            for resource in page.get("Resources") or []:
                assert resource["id"] not in resources, f"{endpoint}: {resource['id']} listed twice"
                resources[resource["id"]] = resource
            if not page.get("Resources") or len(resources) >= page["totalResults"]:
                assert len(resources) == page["totalResults"], (len(resources), page["totalResults"])
                return list(resources.values())

    def requests(self) -> list[str]:
        """The requests the server answered so far, as "METHOD /path?query STATUS" (its log)."""
        with open(self.log_file) as log:
            return [line.rsplit(" ", 1)[0] for line in log.read().splitlines() if line[:1].isupper()
                    and line.split(" ", 1)[0] in ("GET", "POST", "PUT", "PATCH", "DELETE")]


def start_scimmy_server(folder: Path) -> ScimmyServer:
    """A fresh SCIMMY server, or skip (fail under RECONCILER_REQUIRE_SERVERS=1) when node or its modules are missing."""
    node = shutil.which("node")
    if node is None:
        unavailable("node is not installed (tests/run installs nodejs)")
    pinned = pinned_versions()
    wrong = [f"{m} {installed_version(m) or 'missing'} (pinned {pinned[m]})" for m in MODULES
             if installed_version(m) != pinned[m]]
    if wrong:
        unavailable(f"SCIMMY's node modules are not installed as pinned: {', '.join(wrong)}; "
                    "run `npm ci --prefix tests/servers/scimmy` (tests/run does)")
    folder.mkdir(parents=True, exist_ok=True)
    return ScimmyServer(folder, node)  # type: ignore[arg-type]


@pytest.fixture
def scimmy_server(tmp_path) -> Iterator[ScimmyServer]:
    server = start_scimmy_server(tmp_path / "scimmy")
    yield server
    server.stop()
