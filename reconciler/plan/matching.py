"""The diff's first step: which store user each desired person is, by directory anchor first (the winning
directory's first), then by email (re-hires, merges, adoption).

Most people are a *pair*: the store user under the person's own key, holding that person's winning link and
no other. No one else can reach that store user by anchor (a link belongs to one desired person), so a pair
is matched as it stands. Pairs are neither looked up in a map of store links nor filed as matches: at a
million users the map, the matches and the claimed keys were about 150 MB at the diff's peak
(bench/README.md). A link a pair shares with another store user would make the answer depend on which of
the two a map lookup finds, so then no pair is taken as one and every link goes through the map.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from ..model import DesiredUser, Link, StoreUser


@dataclass
class Matches:
    desired: Mapping[str, DesiredUser]
    store: Mapping[str, StoreUser]
    pairs: bool  # whether pairs are matched as they stand (no pair's link is shared)
    # the store user of each desired person or None, in the order of `desired`: a list, not a dict by key
    in_order: list[StoreUser | None] = field(default_factory=list)
    others: dict[str, StoreUser] = field(default_factory=dict)  # desired key -> store user, but the pairs
    claimed_others: set[str] = field(default_factory=set)  # the store keys of `others`
    # people whose email only an unmanaged store user has, while identity.adopt_unmanaged is false
    refused: list[tuple[DesiredUser, StoreUser]] = field(default_factory=list)

    def __iter__(self) -> Iterator[tuple[DesiredUser, StoreUser | None]]:
        """(desired person, the store user matched to them or None), in the order of `desired`."""
        return zip(self.desired.values(), self.in_order)

    def of(self, desired_key: str) -> StoreUser | None:
        """The store user the person is matched to, if any."""
        found = self.others.get(desired_key)
        if found is None and self.pairs and paired(self.desired.get(desired_key), s := self.store.get(desired_key)):
            return s
        return found

    def is_claimed(self, store_key: str) -> bool:
        """Whether a desired person is matched to this store user."""
        return store_key in self.claimed_others or (
            self.pairs and paired(self.desired.get(store_key), self.store.get(store_key)))


def match(desired: Mapping[str, DesiredUser], store: Mapping[str, StoreUser], adopt_unmanaged: bool) -> Matches:
    by_link = _links_beyond_pairs(desired, store)
    matches = Matches(desired, store, pairs=by_link is not None)
    if by_link is None:
        by_link = _links_beyond_pairs(desired, store, shortcut=False)
    no_links: dict[str, str] = {}
    unmatched: list[tuple[int, DesiredUser]] = []
    in_order, others, claimed, pairs = matches.in_order, matches.others, matches.claimed_others, matches.pairs
    for index, d in enumerate(desired.values()):  # pass 1: anchors, the winning directory's first
        if pairs and paired(d, s := store.get(d.key)):
            in_order.append(s)
            continue
        links = d.links if len(d.links) == 1 else sorted(d.links, key=lambda link: link.directory != d.source)
        for link in links:
            key = by_link.get(link.directory, no_links).get(link.anchor)
            if key and key not in claimed:  # a pair's store user is in no map to be found
                in_order.append(found := store[key])
                others[d.key] = found
                claimed.add(key)
                break
        else:
            in_order.append(None)
            unmatched.append((index, d))
    if not unmatched:
        return matches
    # usually a handful of hires: the email index holds only their emails (every store user's: 190 MB at a million)
    wanted = {d.email for _, d in unmatched}
    by_email: dict[str, list[StoreUser]] = defaultdict(list)
    for user in store.values():
        if (email := user.email.lower()) in wanted:
            by_email[email].append(user)
    for index, d in unmatched:  # pass 2: email (re-hires, merges, adoption)
        candidates = sorted((u for u in by_email.get(d.email, ()) if not matches.is_claimed(u.key)),
                            key=lambda u: (not u.managed, u.key))
        if not candidates:
            continue
        found = candidates[0]
        if not found.managed and not adopt_unmanaged:
            matches.refused.append((d, found))
            continue
        in_order[index] = others[d.key] = found
        claimed.add(found.key)
    return matches


def paired(d: DesiredUser | None, s: StoreUser | None) -> bool:
    """Whether store user `s`, under desired person `d`'s key, holds `d`'s winning link and no other."""
    if d is None or s is None or len(s.links) != 1:
        return False
    # the store read takes the person's own links tuple where they are equal (model.KnownUser): one link
    # is then the winning one, without comparing Link objects (three times per user in a plan)
    return s.links is d.links or s.links[0] == winning_link(d)


def winning_link(d: DesiredUser) -> Link:
    """The link of the entry whose attributes won, which the person's key spells."""
    links = d.links
    return links[0] if len(links) == 1 else next(link for link in links if link.directory == d.source)


def _links_beyond_pairs(desired: Mapping[str, DesiredUser], store: Mapping[str, StoreUser],
                        shortcut: bool = True) -> dict[str, dict[str, str]] | None:
    """directory -> anchor -> store key of every link the store holds outside the pairs (all of them
    without `shortcut`); None when a store user outside the pairs holds a pair's link (the pair then is
    not one). Dicts by directory, not Link or "directory:anchor" keys: no new string or tuple per link.
    A pair's key is its link spelled "directory:anchor" (DesiredUser.key), which finds the pair a link names."""
    by_link: dict[str, dict[str, str]] = defaultdict(dict)
    for user in store.values():
        if shortcut and paired(desired.get(user.key), user):
            continue
        for link in user.links:
            if shortcut:
                spelled = f"{link.directory}:{link.anchor}"
                held = store.get(spelled)
                if held is not None and held is not user and paired(desired.get(spelled), held):
                    return None
            by_link[link.directory][link.anchor] = user.key
    return by_link
