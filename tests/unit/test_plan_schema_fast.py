"""The saved plan's schema check has a fast path (fastjsonschema, the schema compiled to Python code) and a
wording path (jsonschema, Draft 2020-12). The fast path must never accept what jsonschema refuses, nor refuse
what it accepts: held here on a real plan and on thousands of damaged copies of it."""
from __future__ import annotations

import copy
import json

from hypothesis import given, settings, strategies as st
from jsonschema import Draft202012Validator

from reconciler.model import Change, EntryVerdict, LimitCheck, Person, Plan, Review
from reconciler.plan.document import _valid_fast, dumps, plan_schema

PLAN = Plan(policy_path="policy.yaml", policy_digest="sha256:" + "a" * 64, store_kind="sqlite",
            store_fingerprint="sha256:" + "b" * 64,
            directories={"corp": {"read": 3, "in_scope": 3, "imported": 2, "ignored": 1, "disabled": 0}},
            changes=[Change("create", "user", "corp:1", "new in corp", None, {"email": "a@x", "display_name": "A",
                            "attributes": {"title": "T"}, "team": "Org", "links": ["corp:1"], "status": "active"},
                            subject="a@x"),
                     Change("deactivate", "user", "corp:2", "left", {"status": "active"}, {"status": "deactivated"},
                            cause="pending", subject="b@x")],
            ignored=[EntryVerdict("corp", "CN=X", "x", "x", None, "ignored", "no email")], managed_users=10,
            generated_at="2026-01-01T00:00:00Z",
            safety=(LimitCheck("max_deactivations", "deactivations", 1, 2, "2"),),
            review=Review("sha256:" + "c" * 64, None, {"user.deactivate": 1}),
            teams={"Org": "Org"}, people={"corp:2": Person("B", "b@x", "Org", ())}, warnings=["w"])
DOCUMENT = json.loads(dumps(PLAN))
STRICT = Draft202012Validator(plan_schema())

junk = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.text(max_size=3), st.just([]), st.just({}),
                 st.just("sha256:" + "0" * 64), st.just("explode"))


def paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, prefix + (index,))


PATHS = [p for p in paths(DOCUMENT) if p]


def test_the_real_plan_is_valid_both_ways():
    assert STRICT.is_valid(DOCUMENT) and _valid_fast(DOCUMENT)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(PATHS), junk, st.booleans())
def test_both_validators_agree_on_damaged_plans(path, value, delete):
    damaged = copy.deepcopy(DOCUMENT)
    parent = damaged
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[path[-1]] = value
    else:
        parent[path[-1]] = value
    assert _valid_fast(damaged) == STRICT.is_valid(damaged), path


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([p for p in PATHS if isinstance(p[-1], str)]), st.text(min_size=1, max_size=5))
def test_both_validators_agree_on_unknown_keys(path, name):
    damaged = copy.deepcopy(DOCUMENT)
    parent = damaged
    for step in path[:-1]:
        parent = parent[step]
    if isinstance(parent, dict):
        parent["x" + name] = 1
    assert _valid_fast(damaged) == STRICT.is_valid(damaged), path
