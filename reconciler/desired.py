"""Desired state: what the store should hold, from the policy and the directory reads.

Pure function of its inputs: no I/O, no store. Every entry read gets a verdict
(imported, ignored, disabled) with a reason, which is what preview and explain show.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cache

from .model import (
    DesiredState,
    DesiredTeam,
    DesiredUser,
    DirectoryEntry,
    DirectoryGroup,
    DirectoryRead,
    EntryVerdict,
    Link,
)
from .dn import normalise_dn, ou_path
from .directory.membership import reachable
from .policy.model import AttributeMapping, Directory, Policy, Template


@cache
def _names(text: str) -> tuple[tuple[str, str, str], ...]:
    """A template's (attribute, lower-cased attribute, placeholder), parsed once per template text
    rather than once per entry (keyed by the text: a str's hash is cached, a Template's is not)."""
    return tuple((name, name.lower(), "{" + name + "}") for name in Template(text).attributes)


def render_template(template: Template, entry: DirectoryEntry) -> str | None:
    """The template's text with each {attribute} replaced, or None if any is missing or empty."""
    text = template.text
    attributes = entry.attributes
    for _name, key, placeholder in _names(text):
        values = attributes.get(key)  # entry.first(name), without a call per placeholder
        value = values[0] if values else None
        if not value:
            return None
        text = text.replace(placeholder, value)
    return text.strip() or None


def email_of(mapping: AttributeMapping, entry: DirectoryEntry) -> tuple[str | None, str | None]:
    """(email, template text that produced it): the first candidate that yields a value."""
    for template in mapping.email:
        value = render_template(template, entry)
        if value:
            return value.lower(), template.text
    return None, None


def team_key(path: list[str]) -> str:
    """Team keys are '/'-joined paths; a '/' inside a name is escaped so paths stay unambiguous."""
    return "/".join(p.replace("\\", "\\\\").replace("/", "\\/") for p in path)


@dataclass(slots=True)
class _Candidate:
    entry: DirectoryEntry
    directory: Directory
    email: str
    email_rule: str


class _Builder:
    def __init__(self, policy: Policy, reads: list[DirectoryRead]):
        self.policy = policy
        self.reads = {r.directory: r for r in reads}
        self.verdicts: list[EntryVerdict] = []
        self.teams: dict[str, DesiredTeam] = {}
        self.manual = {m.strip().lower() for m in policy.manual}
        self.manual_dns = {normalise_dn(m) for m in policy.manual if "=" in m}
        self.group_parents = {name: _group_parents(r.groups) for name, r in self.reads.items()}
        self.team_keys: dict[tuple[str, ...], str] = {}  # placement path -> team key, once added
        self.texts: dict[tuple, str] = {}  # reasons and rules shared by many users, built once each

    # ── verdicts ──

    def verdict(self, entry: DirectoryEntry, email: str | None, verdict: str, reason: str, user_key: str | None = None):
        self.verdicts.append(
            EntryVerdict(entry.directory, entry.dn, entry.anchor, entry.account_name, email, verdict, reason, user_key)  # type: ignore[arg-type]
        )

    # ── stage 1: per entry, in scope and with an email? ──

    def candidates(self) -> list[_Candidate]:
        found: list[_Candidate] = []
        for directory in self.policy.directories:
            read = self.reads[directory.name]
            for gone in read.out_of_scope:
                self.verdicts.append(
                    EntryVerdict(gone.directory, gone.dn, gone.anchor, None, None, "ignored", gone.reason)
                )
            for entry in read.users:
                email, rule = email_of(directory.mapping, entry)
                if entry.disabled and not directory.users.include_disabled:
                    self.verdict(entry, email, "disabled", f"disabled in {directory.name}")
                elif email is None:
                    tried = ", ".join(t.text for t in directory.mapping.email)
                    self.verdict(entry, None, "ignored", f"no email: none of {tried} yields a value")
                elif self.policy.placement.mode == "manual" and not self.listed(entry, email):
                    self.verdict(entry, email, "ignored", "not listed under manual:")
                else:
                    found.append(_Candidate(entry, directory, email, rule or ""))
        return found

    def listed(self, entry: DirectoryEntry, email: str) -> bool:
        names = {email, (entry.account_name or "").lower()}
        return bool(names & self.manual) or normalise_dn(entry.dn) in self.manual_dns

    # ── stage 2: one person per email ──

    def people(self, candidates: list[_Candidate]) -> list[list[_Candidate]]:
        by_email: dict[str, list[_Candidate]] = defaultdict(list)
        for c in candidates:
            by_email[c.email].append(c)
        rank = {name: i for i, name in enumerate(self.policy.precedence)}
        people: list[list[_Candidate]] = []
        for email in sorted(by_email):
            group = by_email[email]
            if len(group) == 1:  # the usual person: one entry, nothing to clash or merge with
                people.append(group)
                continue
            per_directory: dict[str, list[_Candidate]] = defaultdict(list)
            for c in group:
                per_directory[c.directory.name].append(c)
            clashing = {d for d, cs in per_directory.items() if len(cs) > 1}
            for d in sorted(clashing):
                for c in per_directory[d]:
                    others = "; ".join(o.entry.dn for o in per_directory[d] if o is not c)
                    self.verdict(c.entry, email, "ignored", f"conflict: {email} is also the email of {others} in {d}; neither is imported")
            usable = [c for c in group if c.directory.name not in clashing]
            if not usable:
                continue
            usable.sort(key=lambda c: rank[c.directory.name])
            if len(usable) > 1 and not self.policy.identity.merge_by_email:
                for c in usable:
                    others = ", ".join(o.directory.name for o in usable if o is not c)
                    self.verdict(c.entry, email, "ignored",
                                 f"conflict: {email} is also used in {others} and identity.merge_by_email is false")
                continue
            people.append(usable)
        return people

    # ── stage 3: placement ──

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

    def place(self, winner: _Candidate) -> tuple[str, str]:
        placement = self.policy.placement
        if placement.mode == "target-group":
            return self.add_team([placement.target_group or placement.root]), f"target-group: every user goes to {placement.target_group}"
        if placement.mode == "ou-teams":
            ous = ou_path(winner.entry.dn, winner.entry.search_base)
            rule = self.texts.get((tuple(ous), winner.entry.search_base))
            if rule is None:  # one string per OU path, not one per user
                rule = f"ou-teams: OU path {'/'.join(ous) or '(none)'} below {winner.entry.search_base}"
                self.texts[(tuple(ous), winner.entry.search_base)] = rule
            return self.add_team([placement.root, *ous]), rule
        return self.add_team([placement.root]), f"{placement.mode}: every user goes to {placement.root}"

    def group_teams(self, person: list[_Candidate]) -> frozenset[str]:
        if self.policy.placement.mode != "group-teams":
            return frozenset()
        keys: set[str] = set()
        root = team_key([self.policy.placement.root])
        for c in person:
            read = self.reads[c.directory.name]
            for group_dn in transitive_groups(c.entry.groups, self.group_parents[c.directory.name]):
                group = read.groups.get(group_dn)
                if group is None:
                    continue
                key = f"group:{group.anchor}"
                self.teams.setdefault(key, DesiredTeam(key, group.name, root))
                keys.add(key)
        return frozenset(keys)

    def build(self) -> DesiredState:
        users: dict[str, DesiredUser] = {}
        for person in self.people(self.candidates()):
            winner = person[0]
            entry, directory = winner.entry, winner.directory
            key = f"{directory.name}:{entry.anchor}"
            team, rule = self.place(winner)
            display = render_template(directory.mapping.display_name, entry) or entry.account_name or winner.email
            attributes = tuple(
                (name, value)
                for name, template in directory.mapping.attributes
                if (value := render_template(template, entry)) is not None
            )
            users[key] = DesiredUser(
                key=key,
                email=winner.email,
                display_name=display,
                attributes=attributes,
                team=team,
                memberships=self.group_teams(person),
                links=(Link(directory.name, entry.anchor),) if len(person) == 1 else
                      tuple(sorted((Link(c.directory.name, c.entry.anchor) for c in person), key=str)),
                source=directory.name,
                dn=entry.dn,
                account_name=entry.account_name,
                placed_by=rule,
            )
            for c in person:
                if c is winner:
                    reason = self.texts.get((c.directory.name, c.email_rule))
                    if reason is None:  # shared by everyone imported by the same rule
                        reason = self.texts[(c.directory.name, c.email_rule)] = \
                            f"in scope of {c.directory.name}; email from {c.email_rule}"
                else:
                    reason = (f"in scope of {c.directory.name}; email from {c.email_rule}; merged by email with "
                              f"{winner.directory.name}, whose attributes win")
                self.verdict(c.entry, c.email, "imported", reason, key)
        rank = {name: position for position, name in enumerate(self.policy.precedence)}
        self.verdicts.sort(key=lambda v: (rank[v.directory], normalise_dn(v.dn)))
        return DesiredState(users=dict(sorted(users.items())), teams=dict(sorted(self.teams.items())),
                            verdicts=self.verdicts, directories=self.counts())

    def counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for d in self.policy.directories:
            read = self.reads[d.name]
            counts[d.name] = {"read": read.entries_read, "in_scope": len(read.users),
                              "imported": 0, "ignored": 0, "disabled": 0}
        for v in self.verdicts:
            counts[v.directory][v.verdict] += 1
        return counts


def _group_parents(groups: dict[str, DirectoryGroup]) -> dict[str, set[str]]:
    parents: dict[str, set[str]] = defaultdict(set)
    for dn, group in groups.items():
        for member in group.members:
            if member in groups:
                parents[member].add(dn)
    return parents


def transitive_groups(direct: frozenset[str], parents: dict[str, set[str]]) -> set[str]:
    """The direct groups and every group above them; cycle-safe."""
    found = set(direct)
    for group in direct:
        found |= reachable(group, parents)
    return found


def build_desired_state(policy: Policy, reads: list[DirectoryRead]) -> DesiredState:
    return _Builder(policy, reads).build()
