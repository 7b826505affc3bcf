"""The change vocabulary is one table, and every place that treats changes by kind agrees with it."""
from reconciler.changes import BY_KIND_ACTION, CHANGE_KINDS, membership_key, membership_parts
from reconciler.model import ACTION_ORDER
from reconciler.plan.safety import LIMITED
from reconciler.render.markdown import SHORTEN_ORDER


def test_every_kind_is_in_every_derived_list():
    keys = set(BY_KIND_ACTION)
    assert len(keys) == len(CHANGE_KINDS) == 12
    assert set(ACTION_ORDER) == keys
    assert sorted(ACTION_ORDER.values()) == list(range(12))
    assert sorted(c.reading for c in CHANGE_KINDS) == list(range(12))  # one place each in the reading order


def test_a_reviewer_meets_what_takes_access_away_first():
    first = sorted(CHANGE_KINDS, key=lambda c: c.reading)[:3]
    assert [c.name for c in first] == ["user.delete", "user.deactivate", "team.delete"]
    assert {c.name for c in CHANGE_KINDS if c.risky} == {"user.delete", "user.deactivate", "team.delete"}


def test_counts_are_said_one_way():
    assert BY_KIND_ACTION[("team", "create")].count(15) == "15 teams to create"
    assert BY_KIND_ACTION[("user", "deactivate")].count(1) == "1 user to deactivate"
    assert BY_KIND_ACTION[("membership", "add")].count(1200) == "1,200 memberships to add"


def test_what_is_never_shortened_is_what_changes_access():
    never = keys_without_rank = {k for k in BY_KIND_ACTION if k not in SHORTEN_ORDER}
    assert never == keys_without_rank == {("user", "adopt"), ("user", "reactivate"), ("user", "deactivate"),
                                          ("user", "delete"), ("team", "delete")}
    assert SHORTEN_ORDER[0] == "ignored"


def test_the_safety_limits_count_what_they_say():
    assert LIMITED["max_creates"] == ("creates", {("user", "create"), ("user", "adopt")})
    assert LIMITED["max_updates"] == ("updates", {("user", "update"), ("user", "move")})
    assert LIMITED["max_deactivations"] == ("deactivations", {("user", "deactivate")})
    assert LIMITED["max_deletions"] == ("deletions", {("user", "delete")})


def test_every_store_handles_every_kind():
    from reconciler.store.scim.apply import HANDLERS as SCIM
    from reconciler.store.sql.apply import ChangeWriter as _ChangeWriter

    assert set(_ChangeWriter.HANDLERS) == set(BY_KIND_ACTION) == set(SCIM)


def test_membership_keys_round_trip():
    assert membership_parts(membership_key("corp:1-2", "Example Corp/Sales|x")) == ("corp:1-2", "Example Corp/Sales|x")
