"""Reading a SCIM server's Users and Groups (and the side file's notes) as the store state a plan diffs against."""
from __future__ import annotations

import pytest

from reconciler.model import Link
from reconciler.store.scim.mapping import ENTERPRISE_USER
from reconciler.store.scim.state import Notes, UserNote
from reconciler.store.scim.view import ViewError, build_snapshot


def user(id: str, external_id: str | None = None, email: str | None = None, version: str = "1", **extra) -> dict:
    resource = {"id": id, "userName": email or f"{id}@corp.example.com", "displayName": id.title(),
                "meta": {"version": version}, **extra}
    if external_id is not None:
        resource["externalId"] = external_id
    return resource


def group(id: str, external_id: str | None, name: str, members: list[str], version: str = "1") -> dict:
    resource = {"id": id, "displayName": name, "members": [{"value": m} for m in members], "meta": {"version": version}}
    if external_id is not None:
        resource["externalId"] = external_id
    return resource


USERS = [
    user("u1", "corp:a1"),
    user("u2", "corp:a2", active=False),
    user("u3", None, "hand@corp.example.com"),  # made in the application
    user("u4", "00u-okta-1"),  # an externalId that is not a reconciler key
]
GROUPS = [
    group("g1", "Org", "Org", ["u1", "u2"]),
    group("g2", "Org/Sales", "Sales", ["u1", "gone-user"]),
    group("g3", None, "Hand made", ["u3", "u1"]),
]


def test_managed_and_unmanaged_users_and_teams_get_their_keys():
    state = build_snapshot(USERS, GROUPS, Notes()).state
    assert {k: u.managed for k, u in state.users.items()} == {
        "corp:a1": True, "corp:a2": True, "scim:u3": False, "scim:u4": False}
    assert {k: (t.name, t.managed) for k, t in state.teams.items()} == {
        "Org": ("Org", True), "Org/Sales": ("Sales", True), "scim:g3": ("Hand made", False)}
    assert state.users["corp:a2"].status == "deactivated" and state.users["corp:a1"].status == "active"


def test_the_note_says_which_group_is_the_team_and_the_rest_are_memberships():
    notes = Notes(users={"corp:a1": UserNote("Org/Sales", ("corp:a1", "emea:b1"))})
    a1 = build_snapshot(USERS, GROUPS, notes).state.users["corp:a1"]
    assert a1.team == "Org/Sales" and a1.memberships == frozenset({"Org", "scim:g3"})
    assert a1.links == (Link("corp", "a1"), Link("emea", "b1"))


def test_without_a_note_a_user_in_one_managed_group_has_it_as_team():
    state = build_snapshot(USERS, GROUPS, Notes()).state
    assert state.users["corp:a2"].team == "Org"
    assert state.users["corp:a2"].links == (Link("corp", "a2"),)
    assert state.users["corp:a1"].team is None  # two managed groups: which is the team is not known


def test_a_user_taken_out_of_their_teams_group_by_hand_reads_without_team():
    notes = Notes(users={"corp:a2": UserNote("Org/Sales", ("corp:a2",))})
    assert build_snapshot(USERS, GROUPS, notes).state.users["corp:a2"].team is None


def test_members_that_are_no_users_are_ignored():
    state = build_snapshot(USERS, [group("g2", "Org/Sales", "Sales", ["u1", "gone-user"]) | {
        "members": [{"value": "u1"}, {"value": "gone-user"}, {"value": "g1", "type": "Group"}]}], Notes()).state
    assert state.users["corp:a1"].team == "Org/Sales" and state.users["corp:a1"].memberships == frozenset()


def test_a_teams_parent_comes_from_its_note_else_from_its_path():
    state = build_snapshot(USERS, GROUPS, Notes(teams={"Org": None})).state
    assert state.teams["Org/Sales"].parent == "Org" and state.teams["Org"].parent is None
    grouped = build_snapshot(USERS, [*GROUPS, group("g4", "group:7f", "VPN", [])], Notes(teams={"group:7f": "Org"}))
    assert grouped.state.teams["group:7f"].parent == "Org"


def test_the_manager_reads_as_the_managers_email():
    users = [user("u1", "corp:a1"), user("u5", "corp:a5", **{ENTERPRISE_USER: {"manager": {"value": "u1"}}})]
    state = build_snapshot(users, [], Notes()).state
    assert dict(state.users["corp:a5"].attributes)["manager"] == "u1@corp.example.com"


def test_two_users_with_one_external_id_are_an_error_naming_both():
    with pytest.raises(ViewError) as error:
        build_snapshot([user("u1", "corp:a1"), user("u9", "corp:a1")], [], Notes())
    assert "users u1 and u9 both have externalId corp:a1" in str(error.value)


def test_the_fingerprint_does_not_depend_on_listing_order():
    one = build_snapshot(USERS, GROUPS, Notes()).state.fingerprint
    other = build_snapshot(list(reversed(USERS)), list(reversed(GROUPS)), Notes()).state.fingerprint
    assert one == other and one.startswith("sha256:")


def test_the_fingerprint_follows_managed_versions_and_all_content():
    base = build_snapshot(USERS, GROUPS, Notes()).state.fingerprint
    touched = [user("u1", "corp:a1", version="2"), *USERS[1:]]
    assert build_snapshot(touched, GROUPS, Notes()).state.fingerprint != base  # a managed user changed on the server
    unmanaged_touched = [*USERS[:2], user("u3", None, "hand@corp.example.com", version="9"), USERS[3]]
    assert build_snapshot(unmanaged_touched, GROUPS, Notes()).state.fingerprint == base  # not ours, same content
    renamed = [*USERS[:2], user("u3", None, "other@corp.example.com"), USERS[3]]
    assert build_snapshot(renamed, GROUPS, Notes()).state.fingerprint != base  # adoptable by another email now
    noted = Notes(users={"corp:a1": UserNote("Org", ("corp:a1",))})
    assert build_snapshot(USERS, GROUPS, noted).state.fingerprint != base  # the team the plan sees changed
