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


# ── Attributes ───────────────────────────────────────────────────────────────

from reconciler.directory.entries import EntryBuilder  # noqa: E402
from reconciler.model import Attributes, DirectoryEntry  # noqa: E402

from tests.factories import directory  # noqa: E402


def test_attributes_read_as_the_dict_of_tuples_they_replace():
    plain = {"mail": ("ann@x",), "cn": ("Ann", "Anna"), "title": ("",)}
    attributes = Attributes.of(plain)
    assert attributes == plain and plain == attributes and not (attributes != plain)
    assert dict(attributes) == plain and list(attributes) == ["mail", "cn", "title"] and len(attributes) == 3
    assert attributes["cn"] == ("Ann", "Anna") and attributes["mail"] == ("ann@x",)
    assert attributes.get("mail") == ("ann@x",) and attributes.get("sn") is None and attributes.get("sn", ()) == ()
    assert "mail" in attributes and "sn" not in attributes
    assert attributes.first("cn") == "Ann" and attributes.first("title") == "" and attributes.first("sn") is None
    assert sorted(attributes.items()) == sorted(plain.items())
    with pytest.raises(KeyError):
        attributes["sn"]
    assert repr(attributes) == repr(plain)
    assert pickle.loads(pickle.dumps(attributes)) == plain


def test_attributes_leave_out_names_without_values():
    assert Attributes.of({"mail": (), "cn": ["Ann"]}) == {"cn": ("Ann",)}
    sparse = Attributes({"cn": 0, "mail": 1, "sn": 2}, ("Ann", None, ("A", "B")))
    assert sparse == {"cn": ("Ann",), "sn": ("A", "B")} and len(sparse) == 2 and "mail" not in sparse


def test_an_entry_made_with_a_dict_and_a_frozenset_holds_the_compact_forms():
    entry = DirectoryEntry("corp", "cn=a", "guid", "a", {"mail": ("a@x",)}, False, "dc=x", frozenset({"cn=g"}))
    assert type(entry.attributes) is Attributes and type(entry.groups) is DnSet
    assert entry.attributes == {"mail": ("a@x",)} and entry.groups == {"cn=g"} and entry.first("MAIL") == "a@x"


def test_the_builder_shares_repeated_values_and_stops_sharing_distinct_ones():
    build = EntryBuilder(directory(), needed=["department", "mail"])
    entries = [build(f"CN=u{n},DC=x", {"objectGUID": [bytes(16 - len(str(n))) + str(n).encode()],
                                       "department": [b"Engineering"], "mail": [f"u{n}@x".encode()]}, "DC=x")
               for n in range(EntryBuilder.SHARED_DISTINCT * 2)]
    assert all(e.attributes == {"department": ("Engineering",), "mail": (f"u{n}@x",)} for n, e in enumerate(entries))
    assert len({id(e.first("department")) for e in entries}) == 1  # one string for every entry
    assert [name for name, _guid, texts in build._columns if texts is None] == ["mail"]  # no longer looked up


# ── the desired state, sharing and letting entries go ─────────────────────────

import gc  # noqa: E402

from reconciler.desired import build_desired_state  # noqa: E402
from reconciler.policy.model import Identity, Placement  # noqa: E402

from tests.factories import directory, group, person, policy, read  # noqa: E402


def _reads():
    ann = person("Ann Lee", ou="OU=Sales", department="Sales", title="Manager",
                 groups=("CN=Platform,OU=Groups,DC=corp,DC=example,DC=com",))
    bob = person("Bob Stone", ou="OU=Sales", department="Sales", title="Manager", mail="Bob.Stone@CORP.example.com")
    clash = [person("Twin One", mail="twin@corp.example.com"), person("Twin Two", mail="twin@corp.example.com")]
    off = person("Off Person", disabled=True)
    emea = person("Ann Lee", directory="emea", anchor="emea-guid", department="EMEA Sales")
    return [read(ann, bob, *clash, off, groups=(group("Platform", ann.dn),)), read(emea, directory="emea")]


def test_letting_entries_go_builds_the_same_desired_state_and_frees_them():
    for mode in ("ou-teams", "group-teams"):
        p = policy(directory("corp"), directory("emea"), placement=Placement(mode=mode),
                   identity=Identity(precedence=("emea", "corp")))
        kept = build_desired_state(p, _reads())
        reads = _reads()
        entries = [e for r in reads for e in r.users]
        released = build_desired_state(p, reads, release_entries=True)
        assert released == kept
        assert all(r.users == [] for r in reads)
        gc.collect()
        # nothing but this test's list holds an entry: the desired state keeps none of them alive
        assert all(gc.get_referrers(e) == [entries] for e in entries)


def test_people_with_equal_attributes_share_them_and_everyone_shares_no_memberships():
    state = build_desired_state(policy(placement=Placement(mode="ou-teams")), _reads()[:1])
    ann, bob = state.users["corp:guid-ann.lee"], state.users["corp:guid-bob.stone"]
    assert ann.attributes == bob.attributes and ann.attributes is bob.attributes
    assert ann.memberships == frozenset() and ann.memberships is bob.memberships
    assert bob.email == "bob.stone@corp.example.com"
    assert state.users["corp:guid-ann.lee"].email == "ann.lee@corp.example.com"


# ── the builder's inline paths against the plain functions ────────────────────

from hypothesis import example, given, settings, strategies as st  # noqa: E402

from reconciler.directory.entries import anchor_text, is_disabled, lower_keys, value_text  # noqa: E402
from reconciler.errors import DirectoryError  # noqa: E402
from reconciler.policy.model import FLAVOUR_SCHEMAS  # noqa: E402

_raw_value = st.one_of(
    st.text(max_size=6).map(str.encode),  # UTF-8
    st.binary(max_size=17),  # often not UTF-8 (base64 then), sometimes 16 bytes (a GUID)
    st.sampled_from([b" ", b"  x ", b"\xff\xfe", b"Engineering"]),
    st.text(max_size=4),  # a kept delta record's text
)
_values = st.lists(_raw_value, max_size=3)


def _plainly(d, needed, dn, attributes, base, groups):
    """The entry as the plain functions make it, one by one: what the builder's inline paths must equal."""
    lowered = lower_keys(attributes)
    schema = d.schema
    anchor = anchor_text(d.name, dn, schema.anchor, lowered.get(schema.anchor.lower(), ()))
    accounts = lowered.get(schema.account_name.lower(), ())
    values = {name: tuple(value_text(name, v) for v in lowered[name]) for name in sorted(needed) if lowered.get(name)}
    return DirectoryEntry(d.name, dn, anchor, value_text(schema.account_name, accounts[0]) if accounts else None, values,
                          is_disabled(schema.disabled, lowered.get(schema.disabled.attribute.lower(), ())), base,
                          frozenset(groups))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["active-directory", "openldap"]),
       st.lists(st.fixed_dictionaries({}, optional={
           "entryUUID": _values, "objectGUID": _values, "uid": _values, "sAMAccountName": _values,
           "userAccountControl": st.lists(st.sampled_from([b"512", b"514", b"x", b"2"]), max_size=2),
           "pwdAccountLockedTime": _values, "mail": _values, "Mail": _values, "department": _values}),
           min_size=1, max_size=6))
@example("openldap", [{"entryUUID": [b"  id-1 "], "uid": [b"\xff"], "mail": [b"a@x"]}, {"entryUUID": [b"\xfe\xff"]},
                      {"entryUUID": [b"  "]}, {"entryUUID": [b"a", b"b"]}, {"entryUUID": ["kept text"], "Mail": [b"\xff"]}])
@example("active-directory", [{"objectGUID": [bytes(range(16))], "userAccountControl": [b"514"], "department": [b"x"]}])
def test_the_builder_makes_the_entries_and_errors_the_plain_functions_make(flavour, rows):
    """The builder decodes a single UTF-8 value, a text anchor and an absent disabled attribute inline, and
    shares repeated values; entry for entry it must equal the plain functions, and raise what they raise."""
    d = directory(flavour=flavour, schema=FLAVOUR_SCHEMAS[flavour])
    needed = ["department", "mail"]
    build = EntryBuilder(d, needed=needed)
    for n, attributes in enumerate(rows):
        dn = f"CN=u{n},DC=x"
        try:
            expected = _plainly(d, needed, dn, attributes, "DC=x", ["cn=g"])
        except DirectoryError as error:
            with pytest.raises(DirectoryError) as raised:
                build(dn, attributes, "DC=x", ["cn=g"])
            assert str(raised.value) == str(error)
            continue
        assert build(dn, attributes, "DC=x", ["cn=g"]) == expected
