"""Group membership as a graph of normalised DNs, nested and cycle-safe.

Directories record membership twice: a group's `member` (or `uniqueMember`)
lists its direct members, and a member's `memberOf` lists its direct groups
(AD keeps both; OpenLDAP only with the memberof overlay). Either side alone is
enough to build the graph, so both are merged. Nesting is followed to any depth;
a cycle (A contains B contains A, harmless in AD) ends the walk instead of looping.

A posixGroup names its members by account name instead (`memberUid: alice`), and
no memberOf records it. `AccountNames` turns such values into DNs: an account name
is matched case-insensitively to the entries' account attribute (`uid`), a value
that is a DN (some directories write DNs there) is that DN; a name nobody has is
no member. The edge it makes remembers the value (`Membership.via`), for explain.

`Membership` is the graph a source builds while reading; `group_parents` and
`transitive_groups` walk the groups of a finished `DirectoryRead` upwards (a
user's groups through nesting, for group-teams placement).
"""
from __future__ import annotations

from collections import defaultdict, deque
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from ..dn import dn_parses, normalise_dn

if TYPE_CHECKING:
    from ..model import DirectoryGroup

MEMBER_OF = "memberof"


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def member_dn(value: str | bytes) -> str:
    """The member DN of a member value, normalised.

    `uniqueMember` (NameAndOptionalUID) may carry a `#'0101'B` UID suffix after the DN.
    """
    text = _text(value).strip()
    if text.endswith("'B") and "#'" in text:
        text = text[: text.rindex("#'")]
    return normalise_dn(text)


def is_dn_value(text: str) -> bool:
    """Whether a memberUid value is a DN rather than an account name: it has an `=` and parses as a DN."""
    return "=" in text and dn_parses(text.strip())


class AccountNames:
    """Account names -> the entries that carry them, to resolve memberUid values (see the module docstring).

    Every value of the account attribute counts (uid is multi-valued); two entries with one name are both named.
    """

    def __init__(self, pairs: Iterable[tuple[Iterable[str | bytes], str]] = ()) -> None:
        """`pairs`: (the entry's account names, its normalised DN), iterated only when a value is first
        resolved, so a read that meets no posixGroup never builds the index (a generator costs nothing)."""
        self._keys: dict[str, list[str]] = {}  # casefolded account name -> normalised DNs
        self._pending: list[Iterable[tuple[Iterable[str | bytes], str]]] = [pairs]

    def add(self, names: Iterable[str | bytes], key: str) -> None:
        """Records that the entry `key` (a normalised DN) answers to each of `names`."""
        self._pending.append(((names, key),))

    def _index(self) -> None:
        pending, self._pending = self._pending, []
        for pairs in pending:
            for names, key in pairs:
                for name in names:
                    folded = _text(name).strip().casefold()
                    if folded:
                        keys = self._keys.setdefault(folded, [])
                        if key not in keys:
                            keys.append(key)

    def resolve(self, value: str | bytes) -> tuple[str, ...]:
        """The normalised DNs a memberUid value names: the DN itself, or the entries with that account name
        (none for a name nobody has)."""
        text = _text(value).strip()
        if not text:
            return ()
        if is_dn_value(text):
            return (member_dn(text),)
        if self._pending:
            self._index()
        return tuple(self._keys.get(text.casefold(), ()))


class Membership:
    """Direct memberships, and the transitive closure asked of them."""

    def __init__(self) -> None:
        self._members: dict[str, set[str]] = defaultdict(set)  # group -> direct members
        self._groups: dict[str, set[str]] = defaultdict(set)  # member -> direct groups
        self._all_members: dict[str, frozenset[str]] = {}  # closures, computed once per group
        self._all_groups: dict[str, frozenset[str]] = {}
        self._via: dict[tuple[str, str], str] = {}  # (group, member) -> how the group names it, when not by DN

    @classmethod
    def from_entries(
        cls,
        entries: Iterable[tuple[str, Mapping[str, Sequence[str | bytes]]]],
        member_attributes: Iterable[str],
    ) -> "Membership":
        """Builds the graph from (dn, attributes) pairs whose attribute keys are lower-cased."""
        graph = cls()
        member_keys = [name.lower() for name in member_attributes]
        for dn, attributes in entries:
            this = normalise_dn(dn)
            for key in member_keys:
                for value in attributes.get(key, ()):
                    graph.add(this, member_dn(value))
            for value in attributes.get(MEMBER_OF, ()):
                graph.add(normalise_dn(_text(value)), this)
        return graph

    def add(self, group: str, member: str, via: str | None = None) -> None:
        """Records that `member` is a direct member of `group` (both normalised DNs); `via` says how the
        group names it when that is not a member DN (`memberUid alice`)."""
        members = self._members[group]
        if via is not None:
            if member not in members:  # named by DN too: the DN is how
                self._via.setdefault((group, member), via)
        elif self._via:
            self._via.pop((group, member), None)
        members.add(member)
        self._groups[member].add(group)
        self._all_members.clear()
        self._all_groups.clear()

    def add_member_uids(self, group: str, attribute: str, values: Iterable[str | bytes],
                        accounts: AccountNames) -> list[str]:
        """Records the members a group's memberUid-like `attribute` names; returns the DN values among
        them (the caller may have to read those: a nested group)."""
        dns = []
        for value in values:
            text = _text(value).strip()
            for member in accounts.resolve(text):
                self.add(group, member, f"{attribute} {text}")
            if is_dn_value(text):
                dns.append(text)
        return dns

    def via(self, group: str, member: str) -> str | None:
        """How `group` names `member` directly when not by DN (`memberUid alice`); None for a member DN."""
        return self._via.get((group, member))

    def direct_members(self, group: str) -> frozenset[str]:
        return frozenset(self._members.get(group, ()))

    def direct_groups(self, member: str) -> frozenset[str]:
        return frozenset(self._groups.get(member, ()))

    def all_members(self, group: str) -> frozenset[str]:
        """Everything reachable downwards from `group`: members, members of member groups, ..."""
        if group not in self._all_members:
            self._all_members[group] = reachable(group, self._members)
        return self._all_members[group]

    def all_groups(self, member: str) -> frozenset[str]:
        """Every group `member` belongs to directly or through nested groups."""
        if member not in self._all_groups:
            self._all_groups[member] = reachable(member, self._groups)
        return self._all_groups[member]

    def is_member(self, member: str, group: str) -> bool:
        """Whether `member` is in `group`, directly or through nested groups."""
        return member in self.all_members(group)


def reachable(start: str, edges: Mapping[str, set[str]]) -> frozenset[str]:
    """Breadth-first walk; `seen` makes cycles terminate. `start` is included only via a cycle."""
    seen: set[str] = set()
    queue = deque(edges.get(start, ()))
    while queue:
        node = queue.popleft()
        if node in seen:
            continue
        seen.add(node)
        queue.extend(edges.get(node, ()))
    return frozenset(seen)


def group_parents(groups: Mapping[str, DirectoryGroup]) -> dict[str, set[str]]:
    """Group -> the groups of `groups` that list it as a direct member (keys are normalised DNs)."""
    parents: dict[str, set[str]] = defaultdict(set)
    for dn, group in groups.items():
        for member in group.members:
            if member in groups:
                parents[member].add(dn)
    return parents


def transitive_groups(direct: frozenset[str], parents: Mapping[str, set[str]]) -> set[str]:
    """The direct groups and every group above them; cycle-safe."""
    found = set(direct)
    for group in direct:
        found |= reachable(group, parents)
    return found
