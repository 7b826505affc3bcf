"""Group membership as a graph of normalised DNs, nested and cycle-safe.

Directories record membership twice: a group's `member` (or `uniqueMember`)
lists its direct members, and a member's `memberOf` lists its direct groups
(AD keeps both; OpenLDAP only with the memberof overlay). Either side alone is
enough to build the graph, so both are merged. Nesting is followed to any depth;
a cycle (A contains B contains A, harmless in AD) ends the walk instead of looping.

`Membership` is the graph a source builds while reading; `group_parents` and
`transitive_groups` walk the groups of a finished `DirectoryRead` upwards (a
user's groups through nesting, for group-teams placement).
"""
from __future__ import annotations

from collections import defaultdict, deque
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from ..dn import normalise_dn

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


class Membership:
    """Direct memberships, and the transitive closure asked of them."""

    def __init__(self) -> None:
        self._members: dict[str, set[str]] = defaultdict(set)  # group -> direct members
        self._groups: dict[str, set[str]] = defaultdict(set)  # member -> direct groups
        self._all_members: dict[str, frozenset[str]] = {}  # closures, computed once per group
        self._all_groups: dict[str, frozenset[str]] = {}

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

    def add(self, group: str, member: str) -> None:
        """Records that `member` is a direct member of `group` (both normalised DNs)."""
        self._members[group].add(member)
        self._groups[member].add(group)
        self._all_members.clear()
        self._all_groups.clear()

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
