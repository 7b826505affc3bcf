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
