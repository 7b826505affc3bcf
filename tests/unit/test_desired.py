"""Desired state: who is imported, with which email, where they are placed, and why others are not."""
from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from reconciler.desired import build_desired_state
from reconciler.desired.templates import render_template
from reconciler.dn import ou_path
from reconciler.policy.model import Identity, Placement, Template, UserScope
from tests.factories import BASE, directory, group, person, policy, read


def verdict_of(state, account):
    return next(v for v in state.verdicts if v.account_name == account)


def test_email_comes_from_the_first_template_that_yields_a_value_and_is_lower_cased():
    ann = person("Ann Lee", mail="Ann.Lee@Corp.Example.com")
    bob = person("Bob Stone", mail=None)
    state = build_desired_state(policy(), [read(ann, bob)])
    emails = sorted(u.email for u in state.users.values())
    assert emails == ["ann.lee@corp.example.com", "bob.stone@corp.example.com"]
    assert "{sAMAccountName}@corp.example.com" in verdict_of(state, "bob.stone").reason


def test_an_entry_without_any_email_is_ignored_with_the_templates_tried():
    d = directory(mapping=replace(directory().mapping, email=(Template("{mail}"), Template("{userPrincipalName}"))))
    state = build_desired_state(policy(d), [read(person("No Mail", mail=None))])
    assert state.users == {}
    v = verdict_of(state, "no.mail")
    assert v.verdict == "ignored"
    assert v.reason == "no email: none of {mail}, {userPrincipalName} yields a value"


def test_template_needs_every_attribute_it_names():
    p = person("Ann Lee")
    assert render_template(Template("{givenName}.{sn}@x"), p) is None
    assert render_template(Template("{sAMAccountName}@x.com"), p) == "ann.lee@x.com"


def test_disabled_accounts_are_excluded_unless_asked():
    off = person("Off Person", disabled=True)
    state = build_desired_state(policy(), [read(off)])
    assert state.users == {} and verdict_of(state, "off.person").reason == "disabled in corp"
    d = directory(users=UserScope(search_bases=(BASE,), include_disabled=True))
    assert len(build_desired_state(policy(d), [read(off)]).users) == 1


def test_same_email_twice_in_one_directory_imports_neither_and_reports_both():
    a = person("Ann One", mail="shared@corp.example.com")
    b = person("Ann Two", mail="shared@corp.example.com")
    state = build_desired_state(policy(), [read(a, b)])
    assert state.users == {}
    for account, other in (("ann.one", "CN=Ann Two"), ("ann.two", "CN=Ann One")):
        v = verdict_of(state, account)
        assert v.verdict == "ignored" and v.reason.startswith("conflict: shared@corp.example.com") and other in v.reason


def test_same_email_in_two_directories_is_one_person_and_precedence_decides_whose_data_wins():
    corp = person("Ann Lee", department="Sales")
    emea = person("Ann Lee", directory="emea", anchor="emea-guid", department="EMEA Sales")
    p = policy(directory("corp"), directory("emea"), identity=Identity(precedence=("emea",)))
    state = build_desired_state(p, [read(corp), read(emea, directory="emea")])
    assert list(state.users) == ["emea:emea-guid"]
    user = state.users["emea:emea-guid"]
    assert dict(user.attributes) == {"department": "EMEA Sales"}
    assert [str(l) for l in user.links] == ["corp:guid-ann.lee", "emea:emea-guid"]
    corp_verdict = next(v for v in state.verdicts if v.directory == "corp")
    assert corp_verdict.verdict == "imported" and "merged by email with emea" in corp_verdict.reason


def test_without_merge_by_email_the_same_email_in_two_directories_is_a_conflict():
    p = policy(directory("corp"), directory("emea"), identity=Identity(merge_by_email=False))
    state = build_desired_state(p, [read(person("Ann Lee")), read(person("Ann Lee", directory="emea"), directory="emea")])
    assert state.users == {}
    assert all("merge_by_email is false" in v.reason for v in state.verdicts)


def test_ou_teams_follow_the_ou_path_below_the_search_base_and_create_every_ancestor():
    ann = person("Ann Lee", ou="OU=Platform,OU=Engineering")
    bob = person("Bob Stone")
    state = build_desired_state(policy(placement=Placement(mode="ou-teams")), [read(ann, bob)])
    assert state.users["corp:guid-ann.lee"].team == "Organisation/Engineering/Platform"
    assert state.users["corp:guid-bob.stone"].team == "Organisation"
    assert {k: t.parent for k, t in state.teams.items()} == {
        "Organisation": None,
        "Organisation/Engineering": "Organisation",
        "Organisation/Engineering/Platform": "Organisation/Engineering",
    }


def test_ou_names_are_unescaped_and_a_slash_in_a_name_cannot_fake_a_level():
    assert ou_path(r"CN=X,OU=R&D (Europe) \2A,OU=A\,B,DC=c", "DC=c") == ["A,B", "R&D (Europe) *"]
    ann = person("Ann Lee", ou="OU=North/South")
    state = build_desired_state(policy(placement=Placement(mode="ou-teams")), [read(ann)])
    assert state.users["corp:guid-ann.lee"].team == "Organisation/North\\/South"
    assert state.teams["Organisation/North\\/South"].name == "North/South"


@pytest.mark.parametrize("order", [1, -1])
def test_ou_teams_are_worked_out_once_per_container_and_match_the_ou_path_of_each_entry(order):
    """Entries of one container share its place (worked out once); a name with an escaped comma or a DN
    with spaces after its commas is placed by its parsed OU path, in either order."""
    escaped = person("Lee\\, Ann", ou="OU=Sales,OU=EMEA", anchor="guid-lee", mail="lee@corp.example.com")
    plain = person("Bob Stone", ou="OU=Sales,OU=EMEA")
    colleague = person("Cy Doe", ou="OU=Sales,OU=EMEA")
    spaced = person("Di Roe", ou="OU=Sales, OU=EMEA")
    elsewhere = person("Ed Poe", ou="OU=EMEA")
    state = build_desired_state(policy(placement=Placement(mode="ou-teams")),
                                [read(*[escaped, plain, colleague, spaced, elsewhere][::order])])
    teams = {u.account_name: (u.team, u.placed_by) for u in state.users.values()}
    sales = ("Organisation/EMEA/Sales", f"ou-teams: OU path EMEA/Sales below {BASE}")
    assert teams == {"lee\\,.ann": sales, "bob.stone": sales, "cy.doe": sales, "di.roe": sales,
                     "ed.poe": ("Organisation/EMEA", f"ou-teams: OU path EMEA below {BASE}")}


def test_group_teams_follow_nested_groups_and_only_groups_with_synced_members_become_teams():
    ann = person("Ann Lee", groups=("CN=Platform,OU=Groups,DC=corp,DC=example,DC=com",))
    off = person("Off Person", disabled=True, groups=("CN=Lonely,OU=Groups,DC=corp,DC=example,DC=com",))
    platform = group("Platform", ann.dn)
    engineering = group("Engineering", platform.dn)
    lonely = group("Lonely", off.dn)
    cycle_a = group("Cycle A", "CN=Cycle B,OU=Groups,DC=corp,DC=example,DC=com", platform.dn)
    cycle_b = group("Cycle B", cycle_a.dn)
    state = build_desired_state(policy(placement=Placement(mode="group-teams")),
                                [read(ann, off, groups=(platform, engineering, lonely, cycle_a, cycle_b))])
    user = state.users["corp:guid-ann.lee"]
    names = sorted(state.teams[k].name for k in user.memberships)
    assert names == ["Cycle A", "Cycle B", "Engineering", "Platform"]
    assert "Lonely" not in {t.name for t in state.teams.values()}


def test_only_group_teams_walks_the_groups_members():
    """Which groups list which groups is group-teams' business alone: the other modes must not walk five
    million member values of a million users' groups to work it out (1.1 s of such a plan)."""
    class Untouchable(tuple):
        def __iter__(self):
            raise AssertionError("a group's members were walked")

    ann = person("Ann Lee", groups=("CN=Platform,OU=Groups,DC=corp,DC=example,DC=com",))
    platform = replace(group("Platform", ann.dn), members=Untouchable())
    for mode in ("ou-teams", "target-group", "root"):
        placement = Placement(mode=mode, target_group="Synced" if mode == "target-group" else None)
        state = build_desired_state(policy(placement=placement), [read(ann, groups=(platform,))])
        assert list(state.users) == ["corp:guid-ann.lee"]
    with pytest.raises(AssertionError, match="members were walked"):
        build_desired_state(policy(placement=Placement(mode="group-teams")), [read(ann, groups=(platform,))])


def test_manual_mode_imports_exactly_the_listed_people_by_email_account_or_dn():
    ann, bob, cat = person("Ann Lee"), person("Bob Stone"), person("Cat Power")
    p = policy(placement=Placement(mode="manual"), manual=("ANN.LEE@corp.example.com", "bob.stone", cat.dn.upper()))
    dan = person("Dan Brown")
    state = build_desired_state(p, [read(ann, bob, cat, dan)])
    assert sorted(u.account_name for u in state.users.values()) == ["ann.lee", "bob.stone", "cat.power"]
    assert verdict_of(state, "dan.brown").reason == "not listed under manual:"


def test_target_group_places_everyone_in_one_named_team():
    p = policy(placement=Placement(mode="target-group", target_group="ESMC Synced"))
    state = build_desired_state(p, [read(person("Ann Lee"))])
    assert state.users["corp:guid-ann.lee"].team == "ESMC Synced"
    assert list(state.teams) == ["ESMC Synced"]


def test_counts_per_directory_add_up():
    d = replace(directory(), mapping=replace(directory().mapping, email=(Template("{mail}"),)))
    state = build_desired_state(policy(d), [read(person("Ann Lee"), person("Off", disabled=True), person("Nope", mail=None))])
    assert state.directories["corp"] == {"read": 3, "in_scope": 3, "imported": 1, "ignored": 1, "disabled": 1}


# merge.py takes the people in runs of one email from the candidates sorted by email, not from a dict of
# lists (150 MB at a million users). Whatever order a directory hands its entries in, the people, their
# links and winners, and every verdict must come out the same, and every email must end as one person, a
# clash in one directory, or a conflict across directories without merge_by_email.

_EMAILS = [f"p{n}@corp.example.com" for n in range(6)]


@st.composite
def _reads(draw):
    directories = ("corp", "emea", "apac")
    entries = {name: [] for name in directories}
    for n in range(draw(st.integers(0, 14))):
        where = draw(st.sampled_from(directories))
        email = draw(st.sampled_from(_EMAILS))
        entries[where].append(person(f"User {n}", directory=where, anchor=f"{where}-{n}", mail=email.upper()
                                     if draw(st.booleans()) else email))
    order = [draw(st.permutations(range(len(entries[name])))) for name in directories]
    return directories, entries, order, draw(st.booleans())


@settings(max_examples=150, deadline=None)
@given(_reads())
def test_people_do_not_depend_on_the_order_entries_are_read_in(drawn):
    directories, entries, order, merge = drawn
    p = policy(*(directory(name) for name in directories),
               identity=Identity(precedence=("emea", "corp", "apac"), merge_by_email=merge))

    def state(shuffled: bool):
        reads = [read(*([entries[name][i] for i in order[at]] if shuffled else entries[name]), directory=name)
                 for at, name in enumerate(directories)]
        return build_desired_state(p, reads)

    plain, shuffled = state(False), state(True)
    assert plain.users == shuffled.users
    assert plain.verdicts == shuffled.verdicts and plain.directories == shuffled.directories
    for email in _EMAILS:
        mine = [e for name in directories for e in entries[name] if e.first("mail").lower() == email]
        per_directory = {e.directory: [o for o in mine if o.directory == e.directory] for e in mine}
        usable = [e for e in mine if len(per_directory[e.directory]) == 1]
        holders = [u for u in plain.users.values() if u.email == email]
        if not usable or (len(usable) > 1 and not merge):
            assert holders == []
            continue
        (user,) = holders
        assert sorted(map(str, user.links)) == sorted(f"{e.directory}:{e.anchor}" for e in usable)
        winner = min(usable, key=lambda e: ("emea", "corp", "apac").index(e.directory))
        assert (user.key, user.source, user.dn) == (f"{winner.directory}:{winner.anchor}", winner.directory, winner.dn)
