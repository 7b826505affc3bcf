"""Stage 3: each person's team, and the teams that exist because someone is placed in them.

By `placement.mode`: target-group puts everyone in one team; ou-teams in the team
of the entry's OU path below its search base (every ancestor team created too);
manual in the team the first `manual:` entry naming them gives, a path below the
root (every ancestor team created too, keyed like OU paths), else the root;
group-teams in the root, plus a team per directory group the person is in,
directly or through nested groups; root in the root.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..directory.membership import group_parents, transitive_groups
from ..dn import ou_path
from ..model import DesiredTeam, DirectoryRead
from ..policy.model import Policy
from .scope import Candidate


# Everyone's memberships outside group-teams: one empty set, not one per person (an empty frozenset is 216 bytes)
NO_TEAMS: frozenset[str] = frozenset()


def team_key(path: list[str]) -> str:
    """Team keys are '/'-joined paths; a '/' inside a name is escaped so paths stay unambiguous."""
    return "/".join(p.replace("\\", "\\\\").replace("/", "\\/") for p in path)


class Placement:
    """Places people; `teams` collects every team placed into, keyed by team key."""

    def __init__(self, policy: Policy, reads: dict[str, DirectoryRead]):
        self.policy = policy
        self.reads = reads
        self.teams: dict[str, DesiredTeam] = {}
        # group -> the groups listing it, by directory: for group-teams only, made when first asked for (the
        # other modes never look, and it walks every group's members: 1.1 s of a million users' plan)
        self._group_parents: dict[str, dict[str, set[str]]] = {}
        self.team_keys: dict[tuple[str, ...], str] = {}  # placement path -> team key, once added
        self.rules: dict[tuple[tuple[str, ...], str], str] = {}  # (OU path, base) -> its rule text, built once
        self.places: dict[tuple[str, str], tuple[str, str]] = {}  # (container DN, base) -> (team key, rule), ou-teams

    def add_team(self, path: list[str]) -> str:
        known = self.team_keys.get(tuple(path))  # a dozen OU paths shared by 100,000 users
        if known is not None:
            return known
        for depth in range(1, len(path) + 1):
            key = team_key(path[:depth])
            if key not in self.teams:
                parent = team_key(path[: depth - 1]) if depth > 1 else None
                self.teams[key] = DesiredTeam(key, path[depth - 1], parent)
        key = self.team_keys[tuple(path)] = team_key(path)
        return key

    def place(self, winner: Candidate) -> tuple[str, str]:
        """(team key, the rule that placed them there, as explain shows it)."""
        placement = self.policy.placement
        if placement.mode == "target-group":
            return self.add_team([placement.target_group or placement.root]), f"target-group: every user goes to {placement.target_group}"
        if placement.mode == "ou-teams":
            entry = winner.entry
            dn, base = entry.dn, entry.search_base
            # The OU path is the container's: entries of one container share a place. Without escapes or
            # quotes the first comma ends the entry's own RDN; other DNs are placed one by one.
            comma = dn.find(",")
            container = (dn[comma + 1 :], base) if comma > 0 and "\\" not in dn and '"' not in dn else None
            placed = self.places.get(container) if container is not None else None
            if placed is None:
                placed = self._ou_place(dn, base)
                if container is not None:
                    self.places[container] = placed
            return placed
        if placement.mode == "manual" and winner.manual:
            return self.manual_team(winner)
        return self.add_team([placement.root]), f"{placement.mode}: every user goes to {placement.root}"

    def _ou_place(self, dn: str, base: str) -> tuple[str, str]:
        ous = ou_path(dn, base)
        rule = self.rules.get((tuple(ous), base))
        if rule is None:  # one string per OU path, not one per user
            rule = self.rules[(tuple(ous), base)] = f"ou-teams: OU path {'/'.join(ous) or '(none)'} below {base}"
        return self.add_team([self.policy.placement.root, *ous]), rule

    def manual_team(self, winner: Candidate) -> tuple[str, str]:
        """Mode manual: the team of the first entry of manual: that names the winning entry. Another entry
        naming them with another team (by their account name, say, and by their email) is in the rule."""
        root = self.policy.placement.root
        first, *more = winner.manual
        rule = f"manual: {first.who} → {first.team_text or root}"
        others = [m for m in more if m.team != first.team]
        if others:
            rule += ("; also listed as " + ", ".join(f"{m.who} → {m.team_text or root}" for m in others)
                     + ", the first listing wins")
        return self.add_team([root, *first.team]), rule

    def _parents(self, directory: str) -> dict[str, set[str]]:
        """`membership.group_parents` of the directory's groups, made on first use."""
        parents = self._group_parents.get(directory)
        if parents is None:
            parents = self._group_parents[directory] = group_parents(self.reads[directory].groups)
        return parents

    def group_teams(self, person: Sequence[Candidate]) -> frozenset[str]:
        """group-teams: a team per group any of the person's entries is in, through nesting too."""
        if self.policy.placement.mode != "group-teams":
            return NO_TEAMS
        keys: set[str] = set()
        root = team_key([self.policy.placement.root])
        for c in person:
            read = self.reads[c.directory.name]
            for group_dn in transitive_groups(c.entry.groups, self._parents(c.directory.name)):
                group = read.groups.get(group_dn)
                if group is None:
                    continue
                key = f"group:{group.anchor}"
                self.teams.setdefault(key, DesiredTeam(key, group.name, root))
                keys.add(key)
        return frozenset(keys) if keys else NO_TEAMS
