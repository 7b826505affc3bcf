"""changed_fields names exactly the top-level fields DeepDiff finds different.

DeepDiff was the comparison first used for a user's record; == on the plain
JSON values is the same comparison, and this keeps DeepDiff as the oracle.
"""
from __future__ import annotations

from deepdiff import DeepDiff
from hypothesis import given, settings, strategies as st

from reconciler.plan.diff import USER_FIELDS, changed_fields

small = st.sampled_from(["", "a", "b", "A", "é", "a b"])
records = st.fixed_dictionaries({
    "email": small,
    "display_name": small,
    "attributes": st.dictionaries(small, small, max_size=3),
    "links": st.lists(small, max_size=3),
})


def fields_by_deepdiff(have, want):
    difference = DeepDiff(have, want, threshold_to_diff_deeper=0, view="tree")
    found = {level.path(output_format="list")[0] for changes in difference.values() for level in changes}
    return sorted(found, key=USER_FIELDS.index)


@settings(max_examples=400, deadline=None)
@given(records, records)
def test_changed_fields_agree_with_deepdiff(have, want):
    assert changed_fields(have, want) == fields_by_deepdiff(have, want)


@settings(max_examples=100, deadline=None)
@given(records)
def test_a_record_equal_to_itself_has_no_changed_fields(record):
    copy = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v) for k, v in record.items()}
    assert changed_fields(record, copy) == [] == fields_by_deepdiff(record, copy)


# record() spells a link as the person's key when the two are the same text (one string, not two per person):
# whatever the key and the link, the record says exactly str(link)
names = st.text(st.sampled_from("ab:c"), max_size=4)


@settings(max_examples=400, deadline=None)
@given(st.text(st.sampled_from("abc"), min_size=1, max_size=3), names, names)
def test_a_records_links_read_exactly_as_the_links_whatever_the_key(directory, anchor, key_tail):
    from reconciler.plan.diff import _link_text
    from reconciler.model import Link

    link = Link(directory, anchor)
    for key in (f"{directory}:{anchor}", f"{directory}:{key_tail}", key_tail, f"{directory}{anchor}", f"x{directory}:{anchor}"):
        assert _link_text(link, key) == str(link)
    key = f"{directory}:{anchor}"
    assert _link_text(link, key) is key  # the person's own key string, not a copy


def test_records_of_equal_attributes_share_one_dict_and_read_the_same():
    """A first plan at a million people makes a million records; equal attributes are one dict among them."""
    from reconciler.model import DesiredUser, Link
    from reconciler.plan.diff import record

    def person(key: str, title: str) -> DesiredUser:
        return DesiredUser(key=key, email=f"{key}@x", display_name=key, attributes=(("title", title),), team=None,
                           memberships=frozenset(), links=(Link("corp", key),), source="corp", dn=f"cn={key}",
                           account_name=key, status="active", placed_by="root")

    shared: dict = {}
    first, second, other = (record(person(k, t), shared) for k, t in (("a", "CEO"), ("b", "CEO"), ("c", "CTO")))
    assert first["attributes"] is second["attributes"] and first["attributes"] == {"title": "CEO"}
    assert other["attributes"] == {"title": "CTO"}
    assert record(person("a", "CEO")) == first and first["links"] == ["corp:a"]
