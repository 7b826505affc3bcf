"""The plan in reading order (render/view.py), on plans built for each case a reviewer meets: what takes
access away first, identical changes once with who, people by name, hires by team, leavers by reason."""
from __future__ import annotations

from reconciler.model import Change, Person, Plan
from reconciler.render.markdown import MarkdownRenderer
from reconciler.render.text import TextRenderer
from reconciler.render.view import sections, team_counts

TEAMS = {"Org": "Org", "Org/Sales": "Org / Sales", "Org/Facilities": "Org / Facilities", "Org/Workplace": "Org / Workplace"}


def plan(changes, people=None) -> Plan:
    return Plan(policy_path="policy.yaml", policy_digest="sha256:" + "a" * 64, store_kind="sqlite",
                store_fingerprint="sha256:" + "b" * 64, directories={}, changes=list(changes), ignored=[],
                managed_users=100, generated_at="", teams=dict(TEAMS), people=dict(people or {}))


def person(key, name, team="Org/Sales", title="Rep"):
    return Person(name, f"{name.split()[0].lower()}@x", team, (("title", title),))


def title_change(i, old="Engineering Manager", new="Director of Engineering"):
    return Change("update", "user", f"corp:u{i}", "changed in corp: title", {"attributes": {"title": old}},
                  {"attributes": {"title": new}}, subject=f"u{i}@x")


def test_what_takes_access_away_comes_first_then_what_grants_it():
    changes = [Change("create", "user", "corp:n", "new in corp", None, {"email": "n@x", "display_name": "New",
                      "team": "Org/Sales", "attributes": {}}, subject="n@x"),
               title_change(1),
               Change("delete", "team", "Org/Facilities", "no synced members left", {"name": "Facilities"}, None,
                      subject="Org / Facilities"),
               Change("deactivate", "user", "corp:l", "left scope", {"status": "active"}, {"status": "deactivated"},
                      subject="l@x")]
    assert [s.title for s in sections(plan(changes))] == ["Users to deactivate", "Teams to delete", "Users to create",
                                                          "Users to update"]


def test_identical_updates_are_one_group_with_everyone_in_it_by_name():
    names = ["Zed Last", "Amy First", "Mia Middle"]
    people = {f"corp:u{i}": person(f"corp:u{i}", name) for i, name in enumerate(names)}
    [section] = sections(plan([title_change(i) for i in range(3)] + [title_change(9, "A", "B")], people))
    big, alone = section.groups
    assert (big.headline, big.reason, big.size) == ("title: Engineering Manager → Director of Engineering",
                                                    "changed in corp: title", 3)
    assert [w.name for w in big.people] == ["Amy First", "Mia Middle", "Zed Last"]
    assert alone.size == 1 and alone.headline == "title: A → B"


def test_a_move_between_two_teams_is_one_group_and_hires_are_grouped_by_team():
    moves = [Change("move", "user", f"corp:m{i}", "placed by OU path", {"team": "Org/Facilities"},
                    {"team": "Org/Workplace"}, subject=f"m{i}@x") for i in range(9)]
    hires = [Change("create", "user", f"corp:h{i}", "new in corp", None,
                    {"email": f"h{i}@x", "display_name": f"Hire {i}", "team": "Org/Sales",
                     "attributes": {"title": "Rep"}}, subject=f"h{i}@x") for i in range(3)]
    by_title = {s.title: s for s in sections(plan(moves + hires))}
    [move] = by_title["Users to move"].groups
    assert (move.headline, move.size) == ("Org / Facilities → Org / Workplace", 9)
    [hire] = by_title["Users to create"].groups
    assert (hire.headline, hire.size) == ("Org / Sales", 3)
    assert hire.people[0].detail == "title: Rep"  # who they are: their mapped attributes
    text = TextRenderer().render(plan(moves + hires))
    assert "  ~ Org / Facilities → Org / Workplace (9 people)  # placed by OU path" in text
    assert "  + Org / Sales (3 people)  # new in corp" in text


def test_leavers_with_one_reason_are_one_group_never_folded_and_say_who_they_were():
    people = {f"corp:l{i}": person(f"corp:l{i}", f"Leaver {i:02}", "Org/Sales", "Account Executive") for i in range(23)}
    leavers = [Change("deactivate", "user", f"corp:l{i}", "left scope: no longer found in corp", {"status": "active"},
                      {"status": "deactivated"}, subject=f"leaver{i}@x") for i in range(23)]
    ceo = Person("Margaret Chen", "margaret.chen@x", "Org", (("title", "Chief Executive Officer"),))
    leavers.append(Change("deactivate", "user", "corp:ceo", "disabled in corp", {"status": "active"},
                          {"status": "deactivated"}, subject="margaret.chen@x"))
    text = TextRenderer().render(plan(leavers, {**people, "corp:ceo": ceo}))
    assert "  - 23 people  # left scope: no longer found in corp" in text
    assert "… and" not in text  # every leaver listed
    assert "      Leaver 22 <leaver@x> · Org / Sales · Account Executive" in text
    assert "  - Margaret Chen <margaret.chen@x> · Org · Chief Executive Officer  # disabled in corp" in text
    markdown = MarkdownRenderer().render(plan(leavers, {**people, "corp:ceo": ceo}))
    assert "<details>" not in markdown
    assert "#### Users to deactivate (23 of 24)\n\n**Why:** left scope: no longer found in corp" in markdown


def test_changes_the_edit_causes_are_not_grouped_with_those_pending_regardless():
    mine = [Change("update", "user", f"corp:u{i}", "changed in corp: title", {"attributes": {"title": "A"}},
                   {"attributes": {"title": "B"}}, cause="policy", subject=f"u{i}@x") for i in range(2)]
    pending = [Change("update", "user", "corp:p", "changed in corp: title", {"attributes": {"title": "A"}},
                      {"attributes": {"title": "B"}}, cause="pending", subject="p@x")]
    [section] = sections(plan(mine + pending))
    assert [(g.cause, g.size) for g in section.groups] == [("policy", 2), ("pending", 1)]


def test_a_large_plan_counts_per_team():
    hires = [Change("create", "user", f"corp:h{i}", "new in corp", None,
                    {"email": f"h{i}@x", "display_name": f"H{i}", "team": "Org/Sales" if i % 3 else "Org",
                     "attributes": {}}, subject=f"h{i}@x") for i in range(30)]
    assert team_counts(plan(hires)) == [("Org / Sales", {"Users to create": 20}), ("Org", {"Users to create": 10})]
    text = TextRenderer(large=10).render(plan(hires))
    assert "30 changes: a summary (every change: --full, or --format json)" in text
    assert "  + 20 × Org / Sales  # new in corp" in text and "H1 <h1@x>" not in text
    assert "H1 <h1@x>" in TextRenderer(large=10, full=True).render(plan(hires))


def test_a_large_comment_still_lists_every_change_that_takes_access_away():
    """The terminal summary lists the first 1,000 leavers (--full: all); the pull-request comment, where
    they are approved, lists every one of them and splits over comments when it must."""
    leavers = [Change("deactivate", "user", f"corp:l{i:04}", "left scope", {"status": "active"},
                      {"status": "deactivated"}, subject=f"leaver{i:04}@x") for i in range(1500)]
    markdown = MarkdownRenderer().render(plan(leavers))
    assert all(f"`leaver{i:04}@x`" in markdown for i in range(1500))
    text = TextRenderer().render(plan(leavers))
    assert "leaver0999@x" in text and "leaver1000@x" not in text
    assert "  … 500 more (all of them: --full, or --format json)" in text


def test_a_plan_of_one_change_says_one_change_not_one_changes():
    """Plural-aware counts (issue 11): a reviewer reads "1 change", and "2 changes" from two."""
    one = plan([title_change(1)], {"corp:u1": person("corp:u1", "Ann Lee")})
    two = plan([title_change(1), title_change(2)])
    assert "**1 change:** 1 user to update" in MarkdownRenderer().render(one)
    assert "1 changes" not in MarkdownRenderer().render(one)
    assert "**2 changes:** 2 users to update" in MarkdownRenderer().render(two)
