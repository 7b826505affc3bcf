"""field_changes (what a plan shows of an update) finds exactly the values DeepDiff finds different:
attributes one by one, links as members added and removed, every other field as old → new."""
from __future__ import annotations

from deepdiff import DeepDiff
from hypothesis import given, settings, strategies as st

from reconciler.render.fields import field_changes

small = st.sampled_from(["", "a", "b", "A", "é", "a b"])
records = st.fixed_dictionaries({
    "email": small,
    "display_name": small,
    "attributes": st.dictionaries(st.sampled_from(["title", "department", "manager", "email"]), small, max_size=3),
    "links": st.lists(st.sampled_from(["corp:1", "corp:2", "emea:1"]), max_size=3, unique=True),
})


def by_deepdiff(before, after) -> set[tuple]:
    """(path, old, new) per differing value, as DeepDiff reports them; links as sets of members."""
    found: set[tuple] = set()
    difference = DeepDiff(before, after, ignore_order=True, threshold_to_diff_deeper=0, view="tree")
    links_old, links_new = set(), set()
    for changes in difference.values():
        for level in changes:
            path = level.path(output_format="list")
            old, new = present(level.t1), present(level.t2)
            if path[0] == "links":
                links_old |= {old} if isinstance(old, str) else set(old or ())
                links_new |= {new} if isinstance(new, str) else set(new or ())
                continue
            found.add((tuple(path), old, new))
    if links_old or links_new:
        found.add((("links",), tuple(sorted(links_old - links_new)), tuple(sorted(links_new - links_old))))
    return found


def present(value):
    return None if type(value).__name__ == "NotPresent" else value


def by_fields(before, after) -> set[tuple]:
    return {(c.path, tuple(c.old) if c.path == ("links",) else c.old, tuple(c.new) if c.path == ("links",) else c.new)
            for c in field_changes(before, after)}


@settings(max_examples=500, deadline=None)
@given(records, records)
def test_field_changes_agree_with_deepdiff(before, after):
    assert by_fields(before, after) == by_deepdiff(before, after)


def test_an_unchanged_attribute_is_not_repeated():
    changes = field_changes({"attributes": {"department": "Sales", "title": "Account Executive"}},
                            {"attributes": {"department": "Sales", "title": "Account Manager"}})
    assert [c.text() for c in changes] == ["title: Account Executive → Account Manager"]


def test_how_each_kind_of_value_is_said():
    changes = field_changes(
        {"display_name": "Ann L.", "email": "a@x", "attributes": {"email": "old@x"}, "links": ["corp:1"], "team": "T1"},
        {"display_name": "Ann Lee", "email": "a@x", "attributes": {}, "links": ["corp:1", "emea:2"], "team": "T2"})
    assert [c.text(lambda key: {"T1": "Org / One", "T2": "Org / Two"}[key]) for c in changes] == [
        "display name: Ann L. → Ann Lee",
        "attribute email: old@x → (none)",  # an attribute named like a field is said to be one
        "team: Org / One → Org / Two",
        "links: + emea:2",
    ]
