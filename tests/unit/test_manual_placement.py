"""Manual placement into a team (issue 11): `manual:` entries are a person (email, account name or DN,
into the root team) or {who, team} with team a path below placement.root; ESET's "AD users can be
selected then either imported to a team or quick imported straight to the root".

The mistakes `validate` reports are in test_policy_errors.py; here: what the valid forms load as,
where the desired state places people, and what the plan says about it."""
from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.desired import build_desired_state
from reconciler.desired.scope import Verdicts, in_scope
from reconciler.model import StoreTeam
from reconciler.plan.diff import diff
from reconciler.policy import load_policy, validate_policy
from reconciler.policy.model import ManualEntry, Placement
from tests.factories import directory, imported_user, person, policy, read, store

HEAD = """\
version: 1
directories:
  corp:
    kind: ldif
    path: corp.ldif
    users: {search_bases: ['DC=corp,DC=example,DC=com']}
placement: {mode: manual, root: Example Corp}
"""


def write(tmp_path: Path, manual: str) -> Path:
    (tmp_path / "corp.ldif").write_text("version: 1\n")
    path = tmp_path / "policy.yaml"
    path.write_text(HEAD + manual)
    return path


# ───────── the policy ─────────


def test_strings_and_mappings_load_as_who_and_team_in_policy_order(tmp_path):
    path = write(tmp_path, """\
manual:
  - alice@corp.example.com
  - {who: bob, team: Sales/EMEA}
  - who: 'CN=Cat Power,OU=People,DC=corp,DC=example,DC=com'
    team: Support
  - {who: dan}
""")
    assert validate_policy(path) == []
    loaded = load_policy(path)
    # `manual` stays the people listed, as strings, for whatever only needs to know who
    assert loaded.manual == ("alice@corp.example.com", "bob", "CN=Cat Power,OU=People,DC=corp,DC=example,DC=com", "dan")
    assert loaded.manual_teams == ((), ("Sales", "EMEA"), ("Support",), ())
    assert loaded.manual_entries == (
        ManualEntry("alice@corp.example.com"),
        ManualEntry("bob", ("Sales", "EMEA")),
        ManualEntry("CN=Cat Power,OU=People,DC=corp,DC=example,DC=com", ("Support",)),
        ManualEntry("dan"),
    )
    assert [e.team_text for e in loaded.manual_entries] == [None, "Sales/EMEA", "Support", None]


def test_a_list_of_strings_loads_as_before_without_teams(tmp_path):
    loaded = load_policy(write(tmp_path, "manual: [alice@corp.example.com, bob]\n"))
    assert loaded.manual == ("alice@corp.example.com", "bob")
    assert loaded.manual_teams == ()
    assert loaded.manual_entries == (ManualEntry("alice@corp.example.com"), ManualEntry("bob"))


@pytest.mark.parametrize("team", ["Sales", "Sales/EMEA", "R&D/Platform Team", "Zürich/Ventes", "Example Corporation"])
def test_team_paths_that_are_valid(tmp_path, team):
    assert validate_policy(write(tmp_path, f"manual: [{{who: bob, team: '{team}'}}]\n")) == []


def test_the_same_team_for_several_people_is_fine(tmp_path):
    path = write(tmp_path, "manual:\n  - {who: ann, team: Sales}\n  - {who: bob, team: Sales}\n  - {who: cat, team: Sales/EMEA}\n")
    assert validate_policy(path) == []


def test_the_schema_describes_both_forms():
    from reconciler.policy import policy_schema

    schema = policy_schema()
    entry = schema["$defs"]["manual_entry"]
    assert schema["properties"]["manual"]["items"] == {"$ref": "#/$defs/manual_entry"}
    assert set(entry["then"]["properties"]) == {"who", "team"}
    assert all(p["description"] for p in entry["then"]["properties"].values())
    assert "Sales/EMEA" in schema["properties"]["manual"]["description"]


# ───────── the desired state ─────────


def manual_policy(*entries: str | ManualEntry, root: str = "Example Corp"):
    who = tuple(e if isinstance(e, str) else e.who for e in entries)
    teams = tuple(() if isinstance(e, str) else e.team for e in entries)
    return policy(placement=Placement(mode="manual", root=root), manual=who, manual_teams=teams)


def test_a_named_team_places_them_there_and_creates_it_with_its_parents_below_the_root():
    ann, bob, cat = person("Ann Lee"), person("Bob Stone"), person("Cat Power")
    p = manual_policy("ann.lee@corp.example.com", ManualEntry("bob.stone", ("Sales", "EMEA")),
                      ManualEntry(cat.dn, ("Sales",)))
    state = build_desired_state(p, [read(ann, bob, cat, person("Dan Brown"))])
    teams = {u.account_name: u.team for u in state.users.values()}
    assert teams == {"ann.lee": "Example Corp", "bob.stone": "Example Corp/Sales/EMEA", "cat.power": "Example Corp/Sales"}
    assert {k: (t.name, t.parent) for k, t in state.teams.items()} == {
        "Example Corp": ("Example Corp", None),
        "Example Corp/Sales": ("Sales", "Example Corp"),
        "Example Corp/Sales/EMEA": ("EMEA", "Example Corp/Sales"),
    }


def test_placed_by_names_the_entry_and_its_team_as_written():
    ann, bob = person("Ann Lee"), person("Bob Stone")
    p = manual_policy("ANN.LEE@corp.example.com", ManualEntry("bob.stone", ("Sales", "EMEA")))
    users = {u.account_name: u for u in build_desired_state(p, [read(ann, bob)]).users.values()}
    assert users["ann.lee"].placed_by == "manual: ANN.LEE@corp.example.com → Example Corp"
    assert users["bob.stone"].placed_by == "manual: bob.stone → Sales/EMEA"


def test_manual_team_keys_are_the_keys_ou_teams_gives_the_same_ous():
    """A store moving from ou-teams to manual (or back) keeps its teams: the same path, the same key."""
    bob = person("Bob Stone", ou="OU=EMEA,OU=Sales")
    by_ou = build_desired_state(policy(placement=Placement(mode="ou-teams", root="Example Corp")), [read(bob)])
    by_hand = build_desired_state(manual_policy(ManualEntry("bob.stone", ("Sales", "EMEA"))), [read(bob)])
    assert by_hand.users["corp:guid-bob.stone"].team == by_ou.users["corp:guid-bob.stone"].team == "Example Corp/Sales/EMEA"
    assert by_hand.teams == by_ou.teams


def test_a_team_name_with_a_backslash_gets_the_escaped_key_ou_teams_would_give():
    bob = person("Bob Stone")
    state = build_desired_state(manual_policy(ManualEntry("bob.stone", ("R\\D",))), [read(bob)])
    assert state.users["corp:guid-bob.stone"].team == "Example Corp/R\\\\D"
    assert state.teams["Example Corp/R\\\\D"].name == "R\\D"


def test_only_the_listed_are_imported_and_the_others_say_why():
    state = build_desired_state(manual_policy(ManualEntry("bob.stone", ("Sales",))),
                                [read(person("Bob Stone"), person("Dan Brown"))])
    assert list(state.users) == ["corp:guid-bob.stone"]
    dan = next(v for v in state.verdicts if v.account_name == "dan.brown")
    assert (dan.verdict, dan.reason) == ("ignored", "not listed under manual:")


def test_two_entries_naming_one_person_the_first_listing_wins_and_the_rule_says_so():
    """validate cannot know that bob.stone and bob.stone@corp.example.com are one person; the plan can."""
    bob = person("Bob Stone")
    p = manual_policy(ManualEntry("bob.stone@corp.example.com", ("Sales",)), ManualEntry("bob.stone", ("Support",)))
    user = build_desired_state(p, [read(bob)]).users["corp:guid-bob.stone"]
    assert user.team == "Example Corp/Sales"
    assert user.placed_by == ("manual: bob.stone@corp.example.com → Sales; also listed as bob.stone → Support, "
                              "the first listing wins")
    same_team = manual_policy(ManualEntry("bob.stone@corp.example.com", ("Sales",)), ManualEntry("bob.stone", ("Sales",)))
    assert build_desired_state(same_team, [read(bob)]).users["corp:guid-bob.stone"].placed_by == \
        "manual: bob.stone@corp.example.com → Sales"


def test_a_person_in_two_directories_goes_where_the_winning_entry_is_listed():
    corp = person("Ann Lee")
    emea = person("Ann Lee", directory="emea", anchor="emea-guid")
    p = policy(directory("corp"), directory("emea"), placement=Placement(mode="manual", root="Example Corp"),
               manual=("ann.lee@corp.example.com",), manual_teams=(("Sales",),))
    state = build_desired_state(p, [read(corp), read(emea, directory="emea")])
    [user] = state.users.values()
    assert (user.key, user.team, len(user.links)) == ("corp:guid-ann.lee", "Example Corp/Sales", 2)


def test_entries_that_name_nobody_read_are_known():
    """A typo in manual: imports nobody; the desired state keeps the entries that named no entry read
    (disabled or not), for the plan to say so."""
    off = person("Off Person", disabled=True)
    p = manual_policy("ann.lee@corp.example.com", ManualEntry("nobody", ("Sales",)), "off.person",
                      ManualEntry("CN=Gone,OU=People,DC=corp,DC=example,DC=com"))
    verdicts = Verdicts()
    found = in_scope(p, {"corp": read(person("Ann Lee"), off)}, verdicts)
    assert [c.entry.account_name for c in found] == ["ann.lee"]
    assert verdicts.unmatched_manual == [ManualEntry("nobody", ("Sales",)),
                                         ManualEntry("CN=Gone,OU=People,DC=corp,DC=example,DC=com")]
    assert Verdicts().unmatched_manual == []  # other modes: nothing to say


# ───────── the plan ─────────


def test_a_new_user_is_created_in_the_named_team_after_the_teams():
    bob = person("Bob Stone")
    p = manual_policy(ManualEntry("bob.stone", ("Sales", "EMEA")))
    changes = diff(p, build_desired_state(p, [read(bob)]), store(teams=())).changes
    assert [(c.action, c.kind, c.key) for c in changes] == [
        ("create", "team", "Example Corp"),
        ("create", "team", "Example Corp/Sales"),
        ("create", "team", "Example Corp/Sales/EMEA"),
        ("create", "user", "corp:guid-bob.stone"),
    ]
    assert changes[-1].after["team"] == "Example Corp/Sales/EMEA"


def test_a_changed_team_is_a_move_placed_by_the_manual_entry():
    bob = person("Bob Stone", department="Sales")
    p = manual_policy(ManualEntry("bob.stone", ("Support",)))
    teams = (StoreTeam("Example Corp", "Example Corp", None, True),
             StoreTeam("Example Corp/Sales", "Sales", "Example Corp", True))
    state = store(imported_user(bob, team="Example Corp/Sales"), teams=teams)
    changes = diff(p, build_desired_state(p, [read(bob)]), state).changes
    move = next(c for c in changes if c.action == "move")
    assert (move.key, move.before, move.after, move.reason) == (
        "corp:guid-bob.stone", {"team": "Example Corp/Sales"}, {"team": "Example Corp/Support"},
        "placed by manual: bob.stone → Support")
    assert [(c.action, c.key) for c in changes if c.kind == "team"] == [
        ("create", "Example Corp/Support"), ("delete", "Example Corp/Sales")]
