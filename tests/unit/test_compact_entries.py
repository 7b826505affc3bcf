"""The compact per-user values of a directory read mean what the plain ones did (bench/memory.py measures
what they save): a `DnSet` is a set of DNs, whatever it is made of."""
from __future__ import annotations

import pickle
from collections.abc import Set

import pytest

from reconciler.model import DnSet


def test_a_dn_set_drops_duplicates_in_first_seen_order():
    assert tuple(DnSet(["b", "a", "b"])) == ("b", "a")
    assert len(DnSet(["b", "a", "b"])) == 2
    assert DnSet(DnSet(["a"])) == {"a"}


@pytest.mark.parametrize("other", [frozenset({"a", "b"}), {"b", "a"}, DnSet(["b", "a"])])
def test_a_dn_set_equals_any_set_of_the_same_dns(other):
    dns = DnSet(["a", "b"])
    assert dns == other and other == dns
    assert not (dns != other) and not (other != dns)
    assert hash(dns) == hash(frozenset(other))
    assert isinstance(dns, Set)


def test_a_dn_set_is_not_equal_to_a_sequence_or_another_set():
    dns = DnSet(["a", "b"])
    assert dns != ("a", "b") and ("a", "b") != dns
    assert dns != ["a", "b"]
    assert dns != {"a"} and dns != {"a", "b", "c"}
    assert DnSet() == frozenset() and not DnSet()


def test_set_algebra_with_a_dn_set_on_either_side_is_set_algebra():
    dns = DnSet(["a", "b"])
    assert dns | {"c"} == {"a", "b", "c"} and isinstance(dns | {"c"}, DnSet)
    assert {"c"} | dns == {"a", "b", "c"} and type({"c"} | dns) is set
    assert frozenset({"c"}) | dns == {"a", "b", "c"} and type(frozenset({"c"}) | dns) is frozenset
    assert dns & {"b", "c"} == {"b"} and {"b", "c"} & dns == {"b"}
    assert dns - {"a"} == {"b"} and {"a", "c"} - dns == {"c"}
    assert dns ^ {"b", "c"} == {"a", "c"} and {"b", "c"} ^ dns == {"a", "c"}
    assert dns <= {"a", "b"} and dns < {"a", "b", "c"} and not dns < {"a", "b"}
    assert dns >= {"a"} and dns > {"a"} and not dns > {"a", "b"}
    assert dns.union(["c"]) == {"a", "b", "c"} and dns.intersection(["a"]) == {"a"}
    assert dns.difference(["a"]) == {"b"} and dns.issubset(["a", "b", "c"]) and dns.issuperset(["a"])
    assert dns.isdisjoint(["c"]) and not dns.isdisjoint(["a"])
    assert "a" in dns and "c" not in dns


def test_a_dn_set_survives_pickling():
    dns = DnSet(["a", "b"])
    again = pickle.loads(pickle.dumps(dns))
    assert type(again) is DnSet and again == dns
