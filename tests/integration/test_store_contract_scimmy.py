"""The store contract on the SCIM store against a second, independent SCIM server: SCIMMY (tests/servers/scimmy/).

Every test of test_store_contract_scim.py (the contract's, less the SQL tables',
and the SCIM side file's) runs here unchanged, each on a fresh SCIMMY server
instead of scim2-server: only `start_server` differs. SCIMMY differs from
scim2-server where RFC 7644 lets servers differ (a Bulk path cannot name a
group by bulkId, a GET list ignores startIndex, PATCH add of a present member
adds it again), and the store must keep its contract on both. The quickstart
over SCIMMY is tests/e2e/test_scimmy_quickstart.py.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.test_store_contract_scim import *  # noqa: F401,F403  the same tests, fixtures and app
from tests.servers.scim import ScimServer
from tests.servers.scimmy import ScimmyServer, start_scimmy_server

pytestmark = pytest.mark.integration


@pytest.fixture
def start_server() -> Callable[[Path], ScimServer]:
    return start_scimmy_server


def test_scimmy_differs_from_scim2_server_where_rfc_7644_lets_it_and_the_store_reads_it_whole(engine, store):
    """What makes this run worth having: SCIMMY as shipped, not scim2-server again. If a SCIMMY upgrade
    changes one of these, this test says so (and the fallback it exercised may have nothing left to do)."""
    server = engine.server()
    assert isinstance(server, ScimmyServer)
    for i in range(25):
        server.create_user({"userName": f"person{i}@example.com"})
    # a GET for startIndex 21 answers the first 20 again, saying it starts at 1 (express 5 drops the casts)
    page = server.http.get("Users", params={"startIndex": 21, "count": 200}).json()
    assert (page["totalResults"], page["startIndex"], len(page["Resources"])) == (25, 1, 20)
    # a Bulk path naming a group by bulkId is not resolved; the same bulkId in a value is
    answer = server.http.post("Bulk", json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                                            "failOnErrors": 1, "Operations": [
        {"method": "POST", "path": "/Groups", "bulkId": "g",
         "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G", "externalId": "G"}},
        {"method": "PATCH", "path": "/Groups/bulkId:g", "data": {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": "H"}]}}]}).json()
    assert [r["status"] for r in answer["Operations"]] == ["201", "404"]

    state = store.read()  # the store lists all 25 (and the group) by POST /.search after the GET's answer
    assert len(state.users) == 25 and set(state.teams) == {"G"}
    assert any(line.startswith("POST /scim/v2/Users/.search 200") for line in server.requests())
