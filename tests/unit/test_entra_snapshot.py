"""kind entra-id read offline from a snapshot: JSON as Microsoft Graph returns users and groups
(https://learn.microsoft.com/en-us/graph/api/resources/user, .../resources/group; a group's members as
GET /groups/{id}/members returns them, https://learn.microsoft.com/en-us/graph/api/group-list-members)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.directory import check_directory, open_source
from reconciler.errors import DirectoryError
from reconciler.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "entra" / "cloud.json"


def user(object_id: str, upn: str, **properties) -> dict:
    return {"id": object_id, "userPrincipalName": upn, "accountEnabled": True, "userType": "Member",
            "displayName": upn.split("@")[0].title(), "mail": upn, **properties}


def member(kind: str, object_id: str) -> dict:
    return {"@odata.type": f"#microsoft.graph.{kind}", "id": object_id}


SNAPSHOT = {
    "users": [
        user("00000000-0000-0000-0000-00000000000a", "alice@contoso.com", department="Sales"),
        user("00000000-0000-0000-0000-00000000000b", "bob@contoso.com", accountEnabled=False),
        user("00000000-0000-0000-0000-00000000000c", "carol@contoso.com", mail=None),
        user("00000000-0000-0000-0000-00000000000d", "guest_x.com#EXT#@contoso.onmicrosoft.com", userType="Guest"),
        user("00000000-0000-0000-0000-00000000000e", "dave@contoso.com", proxyAddresses=["SMTP:dave@contoso.com"],
             onPremisesExtensionAttributes={"extensionAttribute1": "K-1", "extensionAttribute2": None}),
    ],
    "groups": [
        {"id": "10000000-0000-0000-0000-000000000001", "displayName": "Key Owners", "securityEnabled": True,
         "members": [member("user", "00000000-0000-0000-0000-00000000000a"),
                     member("group", "10000000-0000-0000-0000-000000000002"),
                     member("device", "20000000-0000-0000-0000-000000000001")]},
        {"id": "10000000-0000-0000-0000-000000000002", "displayName": "Nested", "securityEnabled": True,
         "members": [member("user", "00000000-0000-0000-0000-00000000000b"),
                     member("group", "10000000-0000-0000-0000-000000000001")]},  # a cycle, harmless
        {"id": "10000000-0000-0000-0000-000000000003", "displayName": "Mail list", "securityEnabled": False,
         "members": [member("user", "00000000-0000-0000-0000-00000000000c")]},
    ],
}


def directory(tmp_path, users: str = "{}", extra: str = "", snapshot: dict | None = SNAPSHOT, groups: bool = False):
    (tmp_path / "cloud.json").write_text(json.dumps(snapshot) if snapshot is not None else '{"users": []}')
    (tmp_path / "policy.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        directories:
          cloud:
            kind: entra-id
            snapshot: cloud.json
            users: {users}
        """) + ("    groups: {}\n" if groups else "") + extra)
    return load_policy(tmp_path / "policy.yaml").directories[0]


def test_the_snapshot_is_read_as_graph_would_answer(tmp_path):
    read = open_source(directory(tmp_path, extra="mapping: {attributes: {key: '{extensionAttribute1}', "
                                                 "dept: '{department}'}}\n")).read()
    # the default filter leaves the guest out, as Graph would not return them
    assert [e.dn for e in read.users] == ["alice@contoso.com", "bob@contoso.com", "carol@contoso.com", "dave@contoso.com"]
    assert read.entries_read == 4
    alice, bob, carol, dave = read.users
    assert alice.anchor == "00000000-0000-0000-0000-00000000000a" and alice.account_name == "alice@contoso.com"
    assert alice.attributes["department"] == ("Sales",) and not alice.disabled
    assert bob.disabled  # accountEnabled false
    assert "mail" not in carol.attributes  # null is no value
    assert dave.attributes["extensionattribute1"] == ("K-1",)


def test_member_of_by_name_follows_nesting_and_says_why_others_are_out(tmp_path):
    read = open_source(directory(tmp_path, users="{member_of: [Key Owners]}")).read()
    assert [e.dn for e in read.users] == ["alice@contoso.com", "bob@contoso.com"]
    assert sorted(o.dn for o in read.out_of_scope) == ["carol@contoso.com", "dave@contoso.com"]
    assert read.out_of_scope[0].reason == "not a member of Key Owners (directly or through nested groups)"
    by_id = open_source(directory(tmp_path, users="{member_of: ['10000000-0000-0000-0000-000000000002']}")).read()
    assert [e.dn for e in by_id.users] == ["alice@contoso.com", "bob@contoso.com"]  # through the cycle


def test_groups_are_read_for_group_teams_with_direct_members(tmp_path):
    assert open_source(directory(tmp_path)).read().groups == {}  # without groups: they are not read
    read = open_source(directory(tmp_path, groups=True)).read()
    assert sorted(g.name for g in read.groups.values()) == ["Key Owners", "Nested"]  # securityEnabled eq true
    owners = next(g for g in read.groups.values() if g.name == "Key Owners")
    assert owners.members == {"alice@contoso.com", "groups/10000000-0000-0000-0000-000000000002"}  # no device
    alice = read.users[0]
    assert alice.groups == {"groups/10000000-0000-0000-0000-000000000001"}


def test_a_users_filter_is_evaluated_as_graph_would(tmp_path):
    read = open_source(directory(tmp_path, users="{filter: \"startswith(mail, 'a') or accountEnabled eq false\"}")).read()
    assert [e.dn for e in read.users] == ["alice@contoso.com", "bob@contoso.com"]


@pytest.mark.parametrize("users, words", [
    ("{member_of: [Nobody]}", "users.member_of 'Nobody': no group has this display name or object ID"),
    ("{member_of: ['10000000-0000-0000-0000-00000000ffff']}", "no group in"),
    ("{filter: 'memberOf/$count eq 0'}", "a $count segment is evaluated by Graph only, so the snapshot cannot be read"),
])
def test_what_the_snapshot_cannot_answer_is_one_line(tmp_path, users, words):
    with pytest.raises(DirectoryError) as raised:
        open_source(directory(tmp_path, users=users)).read()
    assert words in str(raised.value) and "\n" not in str(raised.value)


def test_two_groups_with_one_name_must_be_named_by_id(tmp_path):
    twice = {**SNAPSHOT, "groups": [*SNAPSHOT["groups"], {**SNAPSHOT["groups"][0], "id": "10000000-0000-0000-0000-000000000009"}]}
    with pytest.raises(DirectoryError) as raised:
        open_source(directory(tmp_path, users="{member_of: [Key Owners]}", snapshot=twice)).read()
    assert "2 groups have this display name" in str(raised.value) and "name the one meant by its object ID" in str(raised.value)


@pytest.mark.parametrize("content, words", [
    ('{"users": [', "cloud.json:1:12: not JSON"),
    ('[]', "a Graph snapshot is a JSON object with users"),
    ('{"users": [{"displayName": "x"}]}', "users[0] has no id"),
    ('{"users": [{"id": "a"}, {"id": "A"}]}', "users[1]: the id A appears twice"),
])
def test_a_broken_snapshot_is_refused_where_it_breaks(tmp_path, content, words):
    d = directory(tmp_path, snapshot=None)
    (tmp_path / "cloud.json").write_text(content)
    with pytest.raises(DirectoryError) as raised:
        open_source(d).read()
    assert words in str(raised.value)
    assert check_directory(d)[0].ok is False


def test_check_says_what_the_snapshot_holds(tmp_path):
    assert str(check_directory(directory(tmp_path))[0].detail).endswith("cloud.json: 5 users, 3 groups")


def test_the_example_snapshot_is_what_its_generator_writes(tmp_path):
    out = tmp_path / "cloud.json"
    subprocess.run([sys.executable, str(ROOT / "examples" / "entra" / "generate_snapshot.py"), str(out)], check=True,
                   capture_output=True)
    assert out.read_bytes() == EXAMPLE.read_bytes(), "run: python examples/entra/generate_snapshot.py"


def test_the_example_snapshot_holds_synced_and_cloud_only_people():
    data = json.loads(EXAMPLE.read_text())
    synced = [u for u in data["users"] if u.get("onPremisesSyncEnabled")]
    cloud_only = [u for u in data["users"] if not u.get("onPremisesSyncEnabled")]
    assert len(synced) == 228 and len(cloud_only) == 8
    assert all(u["onPremisesImmutableId"] for u in synced)
    chen = next(u for u in synced if u["onPremisesSamAccountName"] == "mchen")
    assert chen["mail"] == "margaret.chen@example.com"  # differs from corp's Margaret.Chen@corp.example.com
