"""The store fingerprint, hashed in chunks, is the digest of the whole-state JSON it always was.

Stores made before the change hold plans saved against the old digest; a
different digest would call every saved plan stale.
"""
from __future__ import annotations

import hashlib
import json

from hypothesis import given, settings, strategies as st

from reconciler.model import Link, StoreTeam, StoreUser
from reconciler.store.common import fingerprint

text = st.text(max_size=12)


def whole_state_digest(users, teams) -> str:
    """The fingerprint as first written: one JSON document of the whole state, hashed at once."""
    content = {
        "users": sorted(
            ([u.key, u.email, u.display_name, [list(pair) for pair in sorted(u.attributes)], u.team,
              sorted(u.memberships), sorted(str(link) for link in u.links), u.status, u.managed] for u in users),
            key=lambda item: item[0],
        ),
        "teams": sorted(([t.key, t.name, t.parent, t.managed] for t in teams), key=lambda item: item[0]),
    }
    data = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(data.encode("utf-8")).hexdigest()


users = st.builds(
    StoreUser, key=text, email=st.none() | text, display_name=st.none() | text,
    attributes=st.lists(st.tuples(text, text), max_size=3).map(tuple),
    team=st.none() | text, memberships=st.frozensets(text, max_size=3),
    links=st.lists(st.builds(Link, text, text), max_size=2).map(tuple),
    status=st.sampled_from(["active", "deactivated"]), managed=st.booleans(),
)
teams = st.builds(StoreTeam, key=text, name=text, parent=st.none() | text, managed=st.booleans())


@settings(max_examples=200, deadline=None)
@given(st.lists(users, max_size=8, unique_by=lambda u: u.key), st.lists(teams, max_size=4, unique_by=lambda t: t.key))
def test_chunked_fingerprint_equals_the_whole_state_digest(user_list, team_list):
    assert fingerprint(user_list, team_list) == whole_state_digest(user_list, team_list)


def test_shared_attributes_texts_and_unusual_values_give_the_same_digest():
    """The row is built from escaped strings, each distinct attributes tuple's text made once and then
    shared, up to a bound: users sharing a tuple, more distinct tuples than the bound, text needing JSON
    escapes, several links, and values of other types must all digest as the one JSON document does."""
    shared = (("department", 'R&D "Europe"\\ \u00e9\u2028\n'), ("title", "Eng"))
    odd = [
        StoreUser(f"k{n:05d}", f"u{n}@x", "Zo\u00eb \"Q\"\t", shared if n % 2 else (("n", str(n)),), None,
                  frozenset({"T2", "T1"}) if n % 3 == 0 else frozenset(),
                  (Link("corp", f"a{n}"),) if n % 5 else (Link("emea", "z"), Link("corp", f"a{n}")),
                  "active" if n % 7 else "deactivated", n % 4 != 0)
        for n in range(5000)
    ]
    odd.append(StoreUser("k99999", None, None, (), None, frozenset(), (), "active", True))  # type: ignore[arg-type]
    assert fingerprint(odd, []) == whole_state_digest(odd, [])
    from reconciler.store.common import _UserRow

    row, bound = _UserRow(), _UserRow.SHARED
    distinct = [StoreUser(f"d{n}", "e", "d", (("n", str(n)),), None, frozenset(), (), "active", True)
                for n in range(bound + 10)]
    texts = [row(u) for u in distinct]
    assert len(row._attributes) == bound  # bounded: the rest are made each time
    assert fingerprint(distinct, []) == whole_state_digest(distinct, [])
    assert texts[-1].startswith('["d%d","e","d",[["n","%d"]]' % (bound + 9, bound + 9))


def test_chunk_boundaries_do_not_change_the_digest():
    many = [StoreUser(f"corp:{n:05d}", f"u{n}@x", f"U {n}", (("dept", "x"),), "Org", frozenset(), (Link("corp", str(n)),),
                      "active", True) for n in range(2500)]
    assert fingerprint(many, []) == whole_state_digest(many, [])
