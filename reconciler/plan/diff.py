"""The diff: desired state against store state, keyed by stable anchors.

Set algebra finds creates and removals; records are compared field by field
only for the pairs that are not plainly equal, never as a whole-state diff
(DeepDiff over the whole state took 25 s at 100,000 users).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ..changes import USER_FIELDS as ALL_USER_FIELDS, change_kind, membership_key, membership_parts
from ..model import Change, DesiredState, DesiredUser, EntryVerdict, Link, Person, StoreState, StoreUser, sort_changes
from ..desired.scope import verdict_order
from ..policy.model import Policy
from .matching import Matches, match as match_people, winning_link

# the fields an update compares, in the order a plan names them
USER_FIELDS = tuple(f for f in ALL_USER_FIELDS if f in change_kind("user", "update").fields)


def record(user: DesiredUser | StoreUser, attributes: dict[tuple, dict[str, str]] | None = None) -> dict[str, Any]:
    """A user as the plan writes it: the fields a store holds, JSON-ready.

    `attributes`: a map from attribute tuples to the dict already made for an equal one, shared by
    every record of one plan (a first plan makes a million records, most with one of a few
    department/title combinations; nothing changes a plan's records once made)."""
    pairs = user.attributes
    if attributes is None:
        mapped = dict(pairs)
    else:
        mapped = attributes.get(pairs)
        if mapped is None:
            mapped = attributes[pairs] = dict(pairs)
    return {
        "email": user.email,
        "display_name": user.display_name,
        "attributes": mapped,
        "team": user.team,
        "links": [_link_text(link, user.key) for link in user.links],
        "status": user.status or "deactivated",  # a desired user whose status is kept (None) is new: created deactivated
    }


def _link_text(link: Link, key: str) -> str:
    """str(link), or `key` itself when it spells the same "directory:anchor" (a person of one entry's key
    is that entry's link): one string per person rather than two."""
    directory, anchor = link.directory, link.anchor
    if len(key) == len(directory) + 1 + len(anchor) and key.startswith(directory) and key.endswith(anchor) \
            and key[len(directory)] == ":":
        return key
    return str(link)


def changed_fields(have: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """Top-level fields that differ, in USER_FIELDS order.

    The values are plain JSON values (strings, a map of strings, a list of
    strings), for which == is the by-value comparison; DeepDiff, which this
    used to call, agrees field for field (tests/unit/test_diff_fields.py) at a
    hundredth of the cost, which mattered once an hourly plan had a thousand updates.
    """
    return [f for f in USER_FIELDS if have[f] != want[f]]


@dataclass
class Diff:
    changes: list[Change]
    ignored: list[EntryVerdict] = field(default_factory=list)  # people the store's state keeps out
    teams: dict[str, str] = field(default_factory=dict)  # every team key the changes name -> its path of names
    people: dict[str, Person] = field(default_factory=dict)  # user changes but creates: the store's record


class _Differ:
    def __init__(self, policy: Policy, desired: DesiredState, store: StoreState):
        self.policy, self.desired, self.store = policy, desired, store
        self.changes: list[Change] = []
        self.attribute_dicts: dict[tuple, dict[str, str]] = {}  # record(): one dict per distinct attributes tuple
        self.new_in: dict[str, str] = {}  # "new in corp": one string per directory, not per create
        self.ignored: list[EntryVerdict] = []
        self._managed_teams: frozenset[str] | None = None
        self.matches: Matches | None = None  # who each desired person is in the store (run())
        self.link_holder: dict[Link, str] = {}  # link -> the desired person holding it, for the leavers' links (run())
        # why an entry is not imported, by directory and anchor: the reason a leaver's change gives (run())
        self.verdict_by_link: dict[str, dict[str, EntryVerdict]] = {}

    def match(self) -> Matches:
        """Who each desired person is in the store (plan/matching.py); the people an unmanaged store user's
        email keeps out while identity.adopt_unmanaged is false are listed as ignored."""
        matches = match_people(self.desired.users, self.store.users, self.policy.identity.adopt_unmanaged)
        for d, found in matches.refused:
            self.ignored.append(EntryVerdict(
                d.source, d.dn, d.key.split(":", 1)[1], d.account_name, d.email, "ignored",
                f"the store has an unmanaged user {found.key} with email {d.email}; "
                "set identity.adopt_unmanaged: true to adopt it", d.key))
        return matches

    def user_changes(self, d: DesiredUser, s: StoreUser | None) -> None:
        """What to plan for one person the directories hold (`s`: the store's record of them, if any)."""
        want = record(d, self.attribute_dicts)
        if s is None:
            reason = self.new_in.get(d.source)
            if reason is None:
                reason = self.new_in[d.source] = f"new in {d.source}"
            self.changes.append(Change("create", "user", d.key, reason, None, want))
            self.membership_changes(d.key, d.memberships, frozenset())
            return
        have = record(s, self.attribute_dicts)
        if not s.managed:
            reason = f"adopted: an unmanaged user with email {d.email} exists; {d.source}'s data wins"
            self.changes.append(Change("adopt", "user", d.key, reason, {"key": s.key, **have}, want))
            self.membership_changes(d.key, d.memberships, s.memberships & self.managed_teams())
            return
        key = s.key
        if d.status == "active" and s.status != "active":
            self.changes.append(Change("reactivate", "user", key, f"back in scope and enabled in {d.source}",
                                       {"status": s.status}, {"status": "active"}))
        elif d.status == "deactivated" and s.status == "active":
            self.changes.append(Change("deactivate", "user", key, f"disabled in {d.source}; users.include_disabled "
                                       "keeps them in the store, deactivated", {"status": "active"},
                                       {"status": "deactivated"}))
        fields = changed_fields(have, want)
        if fields:
            self.changes.append(Change("update", "user", key, self.update_reason(d, s, have, want, fields),
                                       {f: have[f] for f in fields}, {f: want[f] for f in fields}))
        if have["team"] != want["team"]:
            self.changes.append(Change("move", "user", key, f"placed by {d.placed_by}",
                                       {"team": have["team"]}, {"team": want["team"]}))
        self.membership_changes(key, d.memberships, s.memberships & self.managed_teams())

    def update_reason(self, d: DesiredUser, s: StoreUser, have: dict[str, Any], want: dict[str, Any],
                      fields: list[str]) -> str:
        """Why an update: a change in the directory, an edit in the application (put back), or both, field
        by field. The store's memory of what reconciler last wrote (`StoreState.edited`: only the users
        whose record differs from it) is the third side; without one, the plan can only say they differ."""
        if not self.store.remembers_writes:
            return f"store differs from {d.source} in {', '.join(fields)}; the directory's data wins"
        written = self.store.edited.get(s.key)
        last = have if written is None else {"email": written.email, "display_name": written.display_name,
                                             "attributes": dict(written.attributes)}
        moved_in_directory: list[str] = []
        edited: list[str] = []
        both: list[str] = []
        for name, now, wanted, wrote in _editable_values(have, want, last, fields):
            if wanted != wrote and now == wrote:
                moved_in_directory.append(name)
            elif wanted == wrote:
                edited.append(f"{name} {_quoted(now)} put back to {_quoted(wanted)}")
            else:
                both.append(name)
        parts = []
        if moved_in_directory:
            parts.append(f"changed in {d.source}: {', '.join(moved_in_directory)}")
        if edited:
            parts.append(f"edited in the application since the last apply: {', '.join(edited)}")
        if both:
            parts.append(f"changed in {d.source} and edited in the application: {', '.join(both)}; "
                         "the directory's data wins")
        if "links" in fields:
            parts.append("the directory entries that make up this person changed")
        return "; ".join(parts)

    def unchanged(self, d: DesiredUser, s: StoreUser) -> bool:
        """Nothing to plan for this user: decided on the values as they are, without building the two
        records (99% of users in an hourly plan). Equal tuples make equal records; anything that is not
        plainly equal takes the full comparison in user_changes."""
        return (s.managed and (s.status == d.status or d.status is None) and d.email == s.email and d.display_name == s.display_name
                and d.team == s.team and d.attributes == s.attributes and d.links == s.links
                and (d.memberships == (s.memberships & self.managed_teams()) if s.memberships else not d.memberships))

    def managed_teams(self) -> frozenset[str]:
        """Teams whose memberships the plan may change (computed once: it is asked per user)."""
        if self._managed_teams is None:
            self._managed_teams = frozenset(k for k, t in self.store.teams.items() if t.managed) | frozenset(self.desired.teams)
        return self._managed_teams

    def membership_changes(self, user_key: str, want: frozenset[str], have: frozenset[str]) -> None:
        for team in sorted(want - have):
            self.changes.append(Change("add", "membership", membership_key(user_key, team),
                                       f"member of {self.team_name(team)} in the directory",
                                       None, {"user": user_key, "team": team}))
        for team in sorted(have - want):
            self.changes.append(Change("remove", "membership", membership_key(user_key, team),
                                       f"no longer a member of {self.team_name(team)} in the directory",
                                       {"user": user_key, "team": team}, None))

    def team_path(self, key: str) -> str:
        """'Example Corp/Sales/EMEA': the names from the root down, so a review can tell two 'EMEA's apart."""
        names: list[str] = []
        seen: set[str] = set()
        current: str | None = key
        while current is not None and current not in seen:
            seen.add(current)
            team = self.desired.teams.get(current) or self.store.teams.get(current)
            if team is None:
                names.append(current)
                break
            names.append(team.name)
            current = team.parent
        return " / ".join(reversed(names))

    def team_name(self, key: str) -> str:
        team = self.desired.teams.get(key) or self.store.teams.get(key)
        return team.name if team else key

    def leaver_changes(self, s: StoreUser) -> None:
        no_verdicts: dict[str, EntryVerdict] = {}
        verdict = next((found for l in s.links
                        if (found := self.verdict_by_link.get(l.directory, no_verdicts).get(l.anchor)) is not None), None)
        directories = {d.name for d in self.policy.directories}
        if verdict is not None and verdict.verdict == "disabled":
            action, reason = self.policy.lifecycle.when_disabled, verdict.reason
        elif verdict is not None and verdict.verdict == "imported":
            action = self.policy.lifecycle.when_out_of_scope
            holder = self.desired.users.get(verdict.user_key or "")
            reason = f"merged by email into {holder.email if holder else verdict.user_key}, which now holds this person"
        elif verdict is not None:
            action, reason = self.policy.lifecycle.when_out_of_scope, f"left scope: {verdict.reason}"
        elif s.links and not any(l.directory in directories for l in s.links):
            names = ", ".join(sorted({l.directory for l in s.links}))
            action, reason = self.policy.lifecycle.when_out_of_scope, f"left scope: directory {names} is no longer in the policy"
        else:
            action, reason = self.policy.lifecycle.when_out_of_scope, self.not_found_reason(s)
        released = self.links_held_by_others(s)
        before_links = {"links": [str(link) for link in s.links]} if released else {}
        after_links = {"links": [str(link) for link in s.links if link not in released]} if released else {}
        if action == "delete":
            self.changes.append(Change("delete", "user", s.key, reason, record(s, self.attribute_dicts), None))
        elif action == "deactivate" and s.status == "active":
            self.changes.append(Change("deactivate", "user", s.key, reason, {"status": "active", **before_links},
                                       {"status": "deactivated", **after_links}))
        elif released:
            # kept as they are (lifecycle keep, or deactivated before), but the entry now belongs to someone else:
            # left on this record, the link would make the store refuse the other user's update, run after run
            holders = ", ".join(sorted(f"{link} to {self.desired.users[self.link_holder[link]].email}" for link in released))
            self.changes.append(Change("update", "user", s.key, f"{reason}; releases {holders}",
                                       before_links, after_links))

    def links_held_by_others(self, s: StoreUser) -> set[Link]:
        """The links of a store user that the plan gives to another user (a merge by email, an entry
        that moved to a re-hire's record): they must be released in the same apply."""
        holder = self.link_holder
        return {link for link in s.links if holder.get(link, s.key) != s.key and self.store_key_of(holder[link]) != s.key}

    def store_key_of(self, desired_key: str) -> str | None:
        """The store key of the managed store user a desired person is matched to, if any (asked of the
        matches rather than kept as a second map of a million keys)."""
        found = self.matches.of(desired_key) if self.matches is not None else None
        return found.key if found is not None and found.managed else None

    def not_found_reason(self, s: StoreUser) -> str:
        """Why a store user's entries were not read at all. Where the server applies member_of, leaving
        the groups looks the same as leaving the search bases, so the reason names both."""
        names = sorted({l.directory for l in s.links})
        by_name = {d.name: d for d in self.policy.directories}
        filtered = [by_name[n] for n in names if n in by_name and by_name[n].member_of_on_server]
        if not filtered:
            return f"left scope: no longer found in {', '.join(names)} under its search bases and filter"
        groups = " or ".join(g for d in filtered for g in d.users.member_of)
        return (f"left scope: not a member of {groups} (directly or through nested groups) any more, or no longer "
                f"under the search bases and filter of {', '.join(names)}; the server checks membership and "
                "does not say which")

    def referenced_teams(self, people: list[DesiredUser], matches: Matches, unclaimed: list[StoreUser]) -> set[str]:
        """The teams someone is in once the user changes are applied: what the desired people are in (plus
        the memberships of their store records the plan does not manage), and what the store's other
        users (leavers, hand-made users) are in."""
        referenced = {d.team for d in people}
        managed = self.managed_teams()
        for d in people:
            if d.memberships:
                referenced |= d.memberships
        for s in matches.in_order:
            if s is not None and s.memberships:
                referenced |= (s.memberships - managed) if s.managed else s.memberships
        # a leaver being deleted still counts here, so their team goes one plan later (kept as it was)
        for s in unclaimed:
            referenced.add(s.team)
            referenced |= s.memberships
        referenced.discard(None)  # type: ignore[arg-type]
        return referenced  # type: ignore[return-value]

    def team_changes(self, referenced: set[str]) -> None:
        for key, team in self.desired.teams.items():
            existing = self.store.teams.get(key)
            if existing is None:
                self.changes.append(Change("create", "team", key, "has synced members", None,
                                           {"name": team.name, "parent": team.parent}))
            elif existing.managed and (existing.name, existing.parent) != (team.name, team.parent):
                before, after = {"name": existing.name, "parent": existing.parent}, {"name": team.name, "parent": team.parent}
                fields = [f for f in before if before[f] != after[f]]
                self.changes.append(Change("update", "team", key, "renamed or moved in the directory",
                                           {f: before[f] for f in fields}, {f: after[f] for f in fields}))
        keep = set(self.desired.teams) | referenced
        for key in list(keep):  # ancestors of anything kept stay too
            parent = (self.desired.teams.get(key) or self.store.teams.get(key))
            while parent is not None and parent.parent and parent.parent not in keep:
                keep.add(parent.parent)
                parent = self.desired.teams.get(parent.parent) or self.store.teams.get(parent.parent)
        for key, team in self.store.teams.items():
            if team.managed and key not in keep:
                self.changes.append(Change("delete", "team", key, "no synced members left", {"name": team.name, "parent": team.parent}, None))

    def name_conflicts(self, matches: Matches) -> None:
        """People whose email the store cannot take because another of its users holds it as a unique
        sign-in name (`StoreState.taken_names`, SCIM's userName): not planned, listed as conflicts. Planned,
        their create or update would be refused by the server at apply, run after run."""
        taken = self.store.taken_names
        if not taken:
            return
        by_store_key = {s.key: d.key for d, s in matches if s is not None}
        for d, mine in matches:
            holder = taken.get(d.email.lower())
            if holder is None or (mine is not None and mine.key == holder):
                continue
            held_by = self.store.users.get(holder)
            holder_label = f"{held_by.email} ({holder})" if held_by is not None and held_by.email else holder
            other = self.desired.users.get(by_store_key.get(holder, ""))
            if other is not None and other.email.lower() != d.email.lower():
                reason = (f"waits one apply: the store's user {holder_label} holds the sign-in name {d.email} "
                          f"until this plan renames it to {other.email}")
            elif held_by is not None and not held_by.managed:
                reason = (f"conflict: the store's user {holder_label}, not managed by reconciler, already has the "
                          f"sign-in name {d.email}, which the store keeps unique; rename or remove that user in the "
                          f"application, or give it the email {d.email} so it can be adopted")
            else:
                reason = (f"conflict: the store's user {holder_label} already has the sign-in name {d.email}, "
                          "which the store keeps unique; change one of the two addresses in the directory")
            self.ignored.append(EntryVerdict(d.source, d.dn, d.key.split(":", 1)[1], d.account_name, d.email,
                                             "ignored", reason, d.key))

    def run(self) -> Diff:
        matches = self.matches = self.match()
        self.name_conflicts(matches)
        blocked = {i.user_key for i in self.ignored}
        people = [d for d in self.desired.users.values() if d.key not in blocked] if blocked else list(self.desired.users.values())
        user_changes, unchanged = self.user_changes, self.unchanged
        for d, s in matches:
            if blocked and d.key in blocked:
                continue
            if s is None or not unchanged(d, s):  # 99% of an hourly plan is unchanged
                user_changes(d, s)
        is_claimed = matches.is_claimed
        unclaimed = [s for s in self.store.users.values() if not is_claimed(s.key)]
        leavers = [s for s in unclaimed if s.managed]
        leaving = _anchors_by_directory(link for s in leavers for link in s.links)
        self.link_holder = _link_holders(self.desired, leaving)
        self.verdict_by_link = _verdicts_by_link(self.desired, verdict_order(self.policy.precedence), leaving)
        for s in leavers:
            self.leaver_changes(s)
        self.team_changes(self.referenced_teams(people, matches, unclaimed))
        changes = self.changes
        emails = self.emails(changes)
        for index, change in enumerate(changes):  # in place: the unlabelled change goes as its copy is made
            changes[index] = replace(change, subject=self.subject(change, emails))
        del emails
        labelled = sort_changes(changes)
        people = self.people(labelled)
        return Diff(labelled, self.ignored, self.team_paths(labelled, people), people)

    def emails(self, changes: list[Change]) -> dict[str, str]:
        """The email each user key the changes name goes by: the desired person's (under the store key they
        are matched to), else the store's. Only for those keys: an hourly plan names a few thousand."""
        named = {membership_parts(c.key)[0] if c.kind == "membership" else c.key for c in changes if c.kind != "team"}
        emails = {u.key: u.email for u in self.store.users.values() if u.key in named}
        for d, s in self.matches or ():
            spelled = s.key if s is not None and s.managed else d.key
            if spelled in named:
                emails[spelled] = d.email
        return emails

    def people(self, changes: list[Change]) -> dict[str, Person]:
        """Who each changed user is, by the store's record: what a reviewer recognises them by."""
        cards: dict[str, Person] = {}
        for c in changes:
            if c.kind == "user" and c.action not in ("create", "adopt") and c.key not in cards:
                s = self.store.users.get(c.key)
                if s is not None:
                    cards[c.key] = Person(s.display_name, s.email, s.team, s.attributes)
        return cards

    def team_paths(self, changes: list[Change], people: dict[str, Person]) -> dict[str, str]:
        keys: set[str] = {p.team for p in people.values() if p.team}
        for c in changes:
            if c.kind == "team":
                keys.add(c.key)
                keys.update(side["parent"] for side in (c.before, c.after) if side and side.get("parent"))
            elif c.kind == "membership":
                keys.add(membership_parts(c.key)[1])
            else:
                keys.update(side["team"] for side in (c.before, c.after) if side and side.get("team"))
        return {key: self.team_path(key) for key in sorted(keys)}

    def subject(self, change: Change, emails: dict[str, str]) -> str:
        if change.kind == "team":
            return self.team_path(change.key)
        if change.kind == "membership":
            user_key, team = membership_parts(change.key)
            return f"{emails.get(user_key, user_key)} in {self.team_name(team)}"
        return emails.get(change.key, change.key)


def _anchors_by_directory(links: Iterable[Link]) -> dict[str, set[str]]:
    """directory -> the anchors of `links`: asked of a million links without a Link hash or a new string each."""
    anchors: dict[str, set[str]] = defaultdict(set)
    for link in links:
        anchors[link.directory].add(link.anchor)
    return anchors


def _link_holders(desired: DesiredState, wanted: dict[str, set[str]]) -> dict[Link, str]:
    """link -> the key of the desired person holding it, for the links `wanted` names only (the leavers': a
    map of every person's links was a million Link keys at once)."""
    if not wanted:
        return {}
    nothing: set[str] = set()
    return {link: d.key for d in desired.users.values() for link in d.links
            if link.anchor in wanted.get(link.directory, nothing)}


def _verdicts_by_link(desired: DesiredState, order, wanted: dict[str, set[str]]) -> dict[str, dict[str, EntryVerdict]]:
    """directory -> anchor -> the verdict of that entry, for the entries `wanted` names only (the leavers': a few
    thousand of a million verdicts, and no new string or tuple per entry). Two verdicts on one entry (an
    anchor two entries share) resolve to the later in verdict order, as they did when the verdicts came
    sorted: the answer does not depend on the order they come in.

    The "imported" verdict of each person's winning entry is read off the person (a plan's desired state does not
    list them, build_desired_state(all_verdicts=False)); where it is listed too, the two agree on all the
    diff asks of an imported verdict, the person it went to."""
    by_link: dict[str, dict[str, EntryVerdict]] = defaultdict(dict)
    if not wanted:
        return by_link
    nothing: set[str] = set()

    def consider(v: EntryVerdict) -> None:
        same_directory = by_link[v.directory]
        held = same_directory.get(v.anchor)
        if held is None or order(v) >= order(held):
            same_directory[v.anchor] = v

    for v in desired.verdicts:
        if v.anchor in wanted.get(v.directory, nothing):
            consider(v)
    for d in desired.users.values():
        first = winning_link(d)
        if first.anchor in wanted.get(first.directory, nothing):
            consider(EntryVerdict(d.source, d.dn, first.anchor, d.account_name, d.email, "imported",
                                  f"in scope of {d.source}", d.key))
    return by_link


def diff(policy: Policy, desired: DesiredState, store: StoreState) -> Diff:
    return _Differ(policy, desired, store).run()


LABELS = {"display_name": "display name"}


def _editable_values(have: dict[str, Any], want: dict[str, Any], last: dict[str, Any],
                     fields: list[str]) -> list[tuple[str, Any, Any, Any]]:
    """(label, store now, directory now, last written) for each value an update changes that a person can
    edit in the application: email, display name, each attribute."""
    out = []
    for field_name in fields:
        if field_name == "attributes":
            now, wanted, wrote = have["attributes"], want["attributes"], last.get("attributes") or {}
            for attribute in sorted(set(now) | set(wanted)):
                if now.get(attribute) != wanted.get(attribute):
                    out.append((attribute, now.get(attribute), wanted.get(attribute), wrote.get(attribute)))
        elif field_name in ("email", "display_name"):
            out.append((LABELS.get(field_name, field_name), have[field_name], want[field_name], last.get(field_name)))
    return out


def _quoted(value: Any) -> str:
    return "(none)" if value in (None, "") else repr(str(value))
