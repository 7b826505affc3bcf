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
    StoreUser, key=text, email=text, display_name=text,
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


def test_chunk_boundaries_do_not_change_the_digest():
    many = [StoreUser(f"corp:{n:05d}", f"u{n}@x", f"U {n}", (("dept", "x"),), "Org", frozenset(), (Link("corp", str(n)),),
                      "active", True) for n in range(2500)]
    assert fingerprint(many, []) == whole_state_digest(many, [])
