"""The SCIM store tells a change in the directory from an edit in the application, against a real
scim2-server: the side file's notes remember what reconciler last wrote of each user."""
from __future__ import annotations

import sqlite3

import pytest

from tests.ldif_edit import Snapshot
from tests.servers.scim import ScimCompany, changes, scim_server  # noqa: F401

pytestmark = pytest.mark.integration
ZOE = "zoe.adams@corp.example.com"


@pytest.fixture
def synced(tmp_path, scim_server) -> ScimCompany:  # noqa: F811
    company = ScimCompany(tmp_path / "company", scim_server.url, scim_server.token)
    company.apply()
    return company


def test_an_edit_on_the_server_is_put_back_and_said_to_be_one(synced, scim_server):  # noqa: F811
    zoe = scim_server.user(ZOE)
    scim_server.patch("Users", zoe["id"], [{"op": "replace", "path": "displayName", "value": "Zoe (edited)"}])
    [update] = changes(synced.plan_json(), "update")
    assert update["reason"] == ("edited in the application since the last apply: display name 'Zoe (edited)' "
                                "put back to 'Zoë Adams'")
    synced.apply()
    assert scim_server.user(ZOE)["displayName"] == "Zoë Adams" and synced.plan_is_empty()


def test_a_change_in_the_directory_is_said_to_be_one(synced, scim_server):  # noqa: F811
    corp = Snapshot(synced.folder / "corp.ldif")
    corp.set(corp.find(sAMAccountName="zadams"), "title", "Principal Engineer")
    corp.save()
    [update] = changes(synced.plan_json(), "update")
    assert update["reason"] == "changed in corp: title"
    synced.apply()
    assert synced.plan_is_empty()


def test_a_side_file_from_before_is_given_the_memory_by_the_next_apply(synced, scim_server):  # noqa: F811
    side = synced.folder / ".reconciler" / "scim-state.db"
    with sqlite3.connect(side) as db:  # notes as reconciler 0.2 wrote them: team and links only
        db.execute("UPDATE scim_notes SET data = json_remove(data, '$.written') WHERE kind = 'user'")
    corp = Snapshot(synced.folder / "corp.ldif")
    corp.set(corp.find(sAMAccountName="zadams"), "title", "Principal Engineer")
    corp.save()
    [update] = changes(synced.plan_json(), "update")
    assert update["reason"].startswith("store differs from corp in attributes")  # no memory: cannot tell
    synced.apply()
    with sqlite3.connect(side) as db:
        missing = db.execute("SELECT count(*) FROM scim_notes WHERE kind = 'user' AND json_extract(data, '$.written') "
                             "IS NULL").fetchone()[0]
    assert missing == 0
    zoe = scim_server.user(ZOE)
    scim_server.patch("Users", zoe["id"], [{"op": "replace", "path": "displayName", "value": "Zoe (edited)"}])
    [update] = changes(synced.plan_json(), "update")
    assert update["reason"].startswith("edited in the application since the last apply")
