"""The plan as a reviewer reads it, built once for the text and the Markdown renderers.

- Sections in reading order (`ChangeKind.reading`): what takes access or records away
  first (deletions, deactivations, team deletions), then what grants it, then the rest.
- Identical changes are one group, shown once with the count and who: the same field
  changes (`title: Engineering Manager → Director of Engineering`, 21 people), the same
  move between two teams, leavers with the same reason, hires into the same team.
- Updates are field-level (`fields.field_changes`): only what differs, attributes one by one.
- People are named as the store or the directory knows them (name, email, team, title),
  sorted by name; teams are always their path of names (`Example Corp / Sales`).

Nothing here escapes or formats: the renderers do, each for its medium.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..changes import BY_KIND_ACTION, ChangeKind, membership_parts
from ..model import Change, Person, Plan
from .fields import FieldChange, field_changes

NONE = "(none)"
NO_TEAM = "(no team)"
TITLE_ATTRIBUTES = ("title", "jobTitle", "department")  # what says who someone is, first found


@dataclass(frozen=True)
class Who:
    """One person (or team) a change is about, as a reviewer recognises them."""

    name: str  # display name; a team's path for team changes
    email: str | None = None
    team: str | None = None  # path of names
    title: str | None = None
    detail: str = ""  # what changes for this one person when their group does not say it all

    @property
    def sort_key(self) -> tuple[str, str]:
        return (self.name.casefold(), (self.email or "").casefold())


@dataclass
class Group:
    """Changes of one kind that do the same thing for the same reason: shown once, with who."""

    headline: str  # what they share: "title: A → B", "Example Corp / Facilities → Example Corp / Workplace", ""
    reason: str
    cause: str | None = None  # with --base-policy: "policy" (this edit does it) or "pending"
    people: list[Who] = field(default_factory=list)  # empty in a counted-only section (`sections(..., counted=)`)
    counted: int = 0

    @property
    def size(self) -> int:
        return len(self.people) or self.counted


@dataclass
class Section:
    kind: ChangeKind
    groups: list[Group]  # the largest first; groups of one person last, by name

    @property
    def count(self) -> int:
        return sum(g.size for g in self.groups)

    @property
    def title(self) -> str:
        return self.kind.title


def sections(plan: Plan, counted: bool = False) -> list[Section]:
    """Every change of the plan, once, in reading order. `counted`: the sections that do not take access
    away are only counted per group, without who (a large plan's summary: a person each costs time)."""
    by_kind: dict[tuple[str, str], list[Change]] = defaultdict(list)
    for change in plan.changes:
        by_kind[(change.kind, change.action)].append(change)
    namer = _Namer(plan)
    out = []
    for key, changes in by_kind.items():
        kind = BY_KIND_ACTION[key]
        out.append(Section(kind, _groups(kind, changes, namer, counted and not kind.risky)))
    return sorted(out, key=lambda s: s.kind.reading)


def team_counts(plan: Plan, limit: int = 20) -> list[tuple[str, dict[str, int]]]:
    """Per team (the path of names), how many users each action puts in or takes out of it, the busiest
    first: what a large plan's summary shows instead of every person."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c in plan.changes:
        if c.kind != "user":
            continue
        kind = BY_KIND_ACTION[(c.kind, c.action)]
        if c.action in ("create", "adopt"):
            team = (c.after or {}).get("team")
        elif c.action == "move":
            team = (c.after or {}).get("team")
        else:
            person = plan.people.get(c.key)
            team = person.team if person else None
        counts[plan.teams.get(team, team) if team else NO_TEAM][kind.title] += 1
    ranked = sorted(counts.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    return [(team, dict(sorted(c.items()))) for team, c in ranked[:limit]]


# ───────────────────────────── grouping ─────────────────────────────


class _Namer:
    """Names for user keys and team keys, from what the plan carries."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.created: dict[str, dict[str, Any]] = {
            c.key: c.after for c in plan.changes if c.kind == "user" and c.action in ("create", "adopt") and c.after}

    def team(self, key: str | None) -> str:
        if not key:
            return NO_TEAM
        return self.plan.teams.get(key, key)

    def person(self, key: str, subject: str = "") -> Who:
        record = self.created.get(key)
        if record is not None:
            return Who(record.get("display_name") or record.get("email") or key, record.get("email"),
                       self.team(record.get("team")), _title(record.get("attributes") or {}))
        card: Person | None = self.plan.people.get(key)
        if card is not None:
            return Who(card.name or card.email, card.email, self.team(card.team), _title(dict(card.attributes)))
        return Who(subject or key, subject if "@" in subject else None)


def _title(attributes: dict[str, Any]) -> str | None:
    return next((str(attributes[a]) for a in TITLE_ATTRIBUTES if attributes.get(a)), None)


def _groups(kind: ChangeKind, changes: list[Change], namer: _Namer, counted: bool = False) -> list[Group]:
    keyed: dict[tuple[str, str, str | None], Group] = {}
    for change in changes:
        headline, who = _describe(kind, change, namer, counted)
        group = keyed.get((headline, change.reason, change.cause))
        if group is None:
            group = keyed[(headline, change.reason, change.cause)] = Group(headline, change.reason, change.cause)
        if counted:
            group.counted += 1
        else:
            group.people.append(who)
    groups = list(keyed.values())
    for group in groups:
        group.people.sort(key=lambda w: w.sort_key)
    # the largest groups first; people on their own after them, by name
    return sorted(groups, key=lambda g: (-g.size, g.people[0].sort_key if len(g.people) == 1 else ("", ""),
                                         g.headline, g.reason))


_NOBODY = Who("")


def _describe(kind: ChangeKind, change: Change, namer: _Namer, counted: bool = False) -> tuple[str, Who]:
    """(what the change shares with others like it, who it is about with what is theirs alone);
    `counted`: the headline only."""
    if counted and change.kind == "user" and change.action in ("create", "move"):
        before, after = (change.before or {}).get("team"), (change.after or {}).get("team")
        if change.action == "create":
            status = " (created deactivated)" if (change.after or {}).get("status") == "deactivated" else ""
            return namer.team(after) + status, _NOBODY
        return f"{namer.team(before)} → {namer.team(after)}", _NOBODY
    if change.kind == "team":
        who = Who(namer.plan.teams.get(change.key) or change.subject or change.key)
        return "", who if change.action in ("create", "delete") else _with_detail(who, _team_fields(change, namer))
    if change.kind == "membership":
        user_key, team = membership_parts(change.key)
        email = change.subject.rsplit(" in ", 1)[0] if " in " in change.subject else change.subject
        return namer.team(team), namer.person(user_key, email)
    who = namer.person(change.key, change.subject)
    if change.action == "create":
        record = change.after or {}
        status = " (created deactivated)" if record.get("status") == "deactivated" else ""
        who = Who(who.name, who.email, who.team, None, _attributes_text(record.get("attributes") or {}))
        return namer.team(record.get("team")) + status, who
    if change.action == "move":
        before, after = (change.before or {}).get("team"), (change.after or {}).get("team")
        return f"{namer.team(before)} → {namer.team(after)}", who
    if change.action in ("update", "adopt"):
        before = {k: v for k, v in (change.before or {}).items() if k != "key"}
        after = change.after or {}
        if change.action == "adopt":
            after = {k: v for k, v in after.items() if k in before}
        shared = "; ".join(f.text(namer.team) for f in field_changes(before, after))
        return shared, who
    if change.action == "deactivate" and "links" in (change.after or {}):
        released = field_changes({"links": change.before.get("links", [])} if change.before else {},
                                 {"links": change.after["links"]})
        return "", _with_detail(who, "; ".join(f.text(namer.team) for f in released))
    return "", who


def _with_detail(who: Who, detail: str) -> Who:
    return Who(who.name, who.email, who.team, who.title, detail)


def _attributes_text(attributes: dict[str, Any]) -> str:
    return ", ".join(f"{name}: {value}" for name, value in sorted(attributes.items()) if value not in (None, ""))


def _team_fields(change: Change, namer: _Namer) -> str:
    before, after = change.before or {}, change.after or {}
    parts = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if name == "parent":
            old, new = namer.team(old), namer.team(new)
        parts.append(f"{name}: {old if old not in (None, '') else NONE} → {new if new not in (None, '') else NONE}")
    return "; ".join(parts)


def names(people: Iterable[Who]) -> list[str]:
    return [w.name for w in people]


__all__ = ["FieldChange", "Group", "NONE", "Section", "Who", "names", "sections", "team_counts"]
