"""`model.quick_init`: the faster __init__ of the hot frozen dataclasses builds exactly what the dataclass's own
__init__ builds (same fields, defaults, __post_init__), and the objects stay frozen, comparable and picklable."""
from __future__ import annotations

import pickle
from dataclasses import MISSING, FrozenInstanceError, dataclass, field, fields, replace

import pytest
from hypothesis import given, strategies as st

from reconciler.directory.ldap.paged import RawEntry
from reconciler.model import (
    Change, DesiredUser, DirectoryEntry, DirectoryGroup, DnSet, EntryVerdict, Link, StoreUser, quick_init,
)

QUICK = [DirectoryEntry, DirectoryGroup, Link, DesiredUser, EntryVerdict, StoreUser, Change, RawEntry]

values = st.one_of(st.none(), st.booleans(), st.text(max_size=8), st.integers(),
                   st.tuples(st.text(max_size=4), st.text(max_size=4)))


def both_ways(cls, args, kwargs):
    quick = cls(*args, **kwargs)
    generated = object.__new__(cls)
    cls._dataclass_init(generated, *args, **kwargs)
    return quick, generated


def slots(obj) -> list:
    return [getattr(obj, f.name) for f in fields(obj)]


@pytest.mark.parametrize("cls", QUICK, ids=lambda c: c.__name__)
@given(data=st.data())
def test_the_quick_init_sets_what_the_dataclass_init_sets(cls, data):
    chosen = fields(cls)
    if cls is DirectoryEntry:  # its __post_init__ makes the attributes and groups compact: give it their inputs
        args = [data.draw(st.text(max_size=5)) for _ in range(4)] + [
            {"mail": ("a@x",)}, data.draw(st.booleans()), "base"]
        kwargs = {"groups": frozenset({"cn=g"})} if data.draw(st.booleans()) else {}
    else:
        without_default = sum(1 for f in chosen if f.default is MISSING)
        count = data.draw(st.integers(min_value=without_default, max_value=len(chosen)))  # defaults taken or given
        args = [data.draw(values) for _ in range(count)]
        kwargs = {}
    quick, generated = both_ways(cls, args, kwargs)
    assert [type(v) for v in slots(quick)] == [type(v) for v in slots(generated)]
    assert slots(quick) == slots(generated)
    assert quick == generated
    assert repr(quick) == repr(generated)


def test_keywords_defaults_and_post_init_are_the_dataclasss():
    entry = DirectoryEntry(directory="d", dn="cn=a", anchor="1", account_name=None, attributes={"mail": ("a@x",)},
                           disabled=False, search_base="b")
    assert entry.groups == DnSet() and type(entry.groups) is DnSet
    assert type(entry.attributes).__name__ == "Attributes" and entry.first("mail") == "a@x"
    assert EntryVerdict("d", "cn=a", "1", None, None, "ignored", "why").user_key is None
    assert RawEntry("cn=a", {"cn": [b"a"]}).record is None
    assert RawEntry("cn=a", {}, ["kept"]) == RawEntry("cn=a", {})  # record is not compared, as declared
    with pytest.raises(TypeError):
        Link("only-one")
    with pytest.raises(TypeError):
        Link("a", "b", "c")
    with pytest.raises(TypeError):
        Link(directory="a", anchor="b", other="c")


def test_the_objects_stay_frozen_hashable_replaceable_and_picklable():
    link = Link("corp", "guid-1")
    with pytest.raises(FrozenInstanceError):
        link.anchor = "other"  # type: ignore[misc]
    assert hash(link) == hash(Link("corp", "guid-1")) and {link: 1}[Link("corp", "guid-1")] == 1
    moved = replace(link, anchor="guid-2")
    assert moved == Link("corp", "guid-2") and link.anchor == "guid-1"
    assert pickle.loads(pickle.dumps(link)) == link
    user = StoreUser("k", "a@x", "A", (("title", "T"),), None, frozenset(), (link,), "active", True)
    assert pickle.loads(pickle.dumps(user)) == user


def test_classes_it_cannot_build_faithfully_are_refused():
    @dataclass(slots=True, frozen=True)
    class WithFactory:
        items: list = field(default_factory=list)

    @dataclass(slots=True, frozen=True)
    class NotInInit:
        value: int = field(default=0, init=False)

    for cls in (WithFactory, NotInInit):
        with pytest.raises(TypeError, match="quick_init"):
            quick_init(cls)


def test_users_by_key_in_order_are_the_same_users_sorted_and_the_input_is_emptied():
    """model.by_key_in_order sorts the desired state's and the store's million users without two tables
    at once: the result is every user under its own key, in key order, and the dict it was given is empty."""
    from reconciler.model import by_key_in_order
    from tests.factories import store_user

    users = {u.key: u for u in (store_user(k, f"{k}@x.example") for k in ("corp:b", "corp:a", "emea:a", "corp:c"))}
    given = dict(users)
    ordered = by_key_in_order(users)
    assert list(ordered) == ["corp:a", "corp:b", "corp:c", "emea:a"]
    assert ordered == given and all(ordered[k] is given[k] for k in given) and users == {}
