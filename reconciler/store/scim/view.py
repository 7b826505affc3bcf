"""The SCIM server's Users and Groups, plus the side file's notes, as a StoreState. No I/O here.

- A User is managed when its externalId is a reconciler key (`directory:anchor`);
  any other User is `scim:<id>`, unmanaged and adoptable by email.
- A Group is a managed team when it has an externalId (the team key); any other
  Group is the unmanaged team `scim:<id>`.
- A user's groups on the server are its team plus its memberships; the note
  says which one is the team. Without a note, a user in exactly one managed
  group has that group as team.
- A team's parent is its note's; without one, an OU-path key's prefix when that
  team exists.
- The fingerprint covers the content the plan depends on and, as the issue
  asks, every managed resource's id and meta.version (or lastModified).
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ...model import Link, StoreState, StoreTeam, StoreUser, Written
from ..common import fingerprint as content_fingerprint
from .mapping import (
    MANAGER,
    ScimGroup,
    ScimUser,
    parent_from_path,
    read_group,
    read_user,
    unmanaged_key,
)
from .state import Notes


class ViewError(Exception):
    """The server holds something the reconciler cannot read as one store; the message says what to fix."""


@dataclass
class Snapshot:
    """One read: the resources by SCIM id, the keys they go by, the notes, and the state the plan sees."""

    users: dict[str, ScimUser]  # SCIM id -> user
    groups: dict[str, ScimGroup]  # SCIM id -> group
    user_ids: dict[str, str]  # user key -> SCIM id
    group_ids: dict[str, str]  # team key -> SCIM id
    notes: Notes
    state: StoreState


def user_key_of(user: ScimUser) -> str:
    return user.external_id if user.managed and user.external_id else unmanaged_key(user.id)


def team_key_of(group: ScimGroup) -> str:
    return group.external_id if group.managed and group.external_id else unmanaged_key(group.id)


def _unique(resources: Iterable[ScimUser | ScimGroup], key_of, what: str) -> dict[str, str]:
    ids: dict[str, str] = {}
    for resource in sorted(resources, key=lambda r: r.id):
        key = key_of(resource)
        if key in ids:
            raise ViewError(
                f"{what} {ids[key]} and {resource.id} both have externalId {key}; "
                f"delete the duplicate {what} in the application (or clear its externalId)"
            )
        ids[key] = resource.id
    return ids


def _links(key: str, noted: tuple[str, ...] | None) -> tuple[Link, ...]:
    texts = noted if noted is not None else (key,)
    links = set()
    for text in texts:
        directory, _, anchor = text.partition(":")
        if directory and anchor:
            links.add(Link(directory, anchor))
    return tuple(sorted(links, key=str))


def build_snapshot(user_resources: Iterable[dict], group_resources: Iterable[dict], notes: Notes) -> Snapshot:
    users = {u.id: u for u in (read_user(r) for r in user_resources)}
    groups = {g.id: g for g in (read_group(r) for r in group_resources)}
    user_ids = _unique(users.values(), user_key_of, "users")
    group_ids = _unique(groups.values(), team_key_of, "groups")
    managed_teams = {team_key_of(g) for g in groups.values() if g.managed}

    teams_of: dict[str, set[str]] = defaultdict(set)  # SCIM user id -> team keys of the groups it is in
    for group in groups.values():
        for member in group.members:
            if member in users:  # a member left behind by a deleted user is not a user
                teams_of[member].add(team_key_of(group))
    email_of = {u.id: u.email for u in users.values()}

    store_users: dict[str, StoreUser] = {}
    for user in users.values():
        key = user_key_of(user)
        groups_in = teams_of[user.id]
        team: str | None = None
        note = notes.users.get(key) if user.managed else None
        if note is not None:
            team = note.team if note.team in groups_in else None
        elif user.managed:
            candidates = sorted(groups_in & managed_teams)
            team = candidates[0] if len(candidates) == 1 else None
        attributes = dict(user.attributes)
        if MANAGER in attributes:  # the manager as the plan names them: by email
            attributes[MANAGER] = email_of.get(attributes[MANAGER], attributes[MANAGER])
        store_users[key] = StoreUser(
            key=key,
            email=user.email,
            display_name=user.display_name,
            attributes=tuple(sorted(attributes.items())),
            team=team,
            memberships=frozenset(groups_in - {team}),
            links=_links(key, note.links if note else None) if user.managed else (),
            status="active" if user.active else "deactivated",
            managed=user.managed,
        )

    store_teams: dict[str, StoreTeam] = {}
    for group in groups.values():
        key = team_key_of(group)
        if group.managed:
            if key in notes.teams:
                parent = notes.teams[key]
            else:
                derived = parent_from_path(key)
                parent = derived if derived in managed_teams else None
        else:
            parent = None
        store_teams[key] = StoreTeam(key=key, name=group.display_name, parent=parent, managed=group.managed)

    store_users = dict(sorted(store_users.items()))
    store_teams = dict(sorted(store_teams.items()))
    managed = [key for key, u in store_users.items() if u.managed]
    state = StoreState(
        users=store_users,
        teams=store_teams,
        fingerprint=fingerprint(store_users.values(), store_teams.values(), users.values(), groups.values()),
        # RFC 7643 §4.1.1: userName is unique across the server's Users, case-insensitively (caseExact false)
        taken_names={name.lower(): user_key_of(u) for u in users.values()
                     if isinstance(name := u.resource.get("userName"), str) and name},
        # the three-way comparison: what the notes say reconciler wrote, where the server now differs
        edited={key: note.written for key in managed if (note := notes.users.get(key)) is not None
                and note.written is not None and _differs(note.written, store_users[key])},
        remembers_writes=all(notes.users.get(k) is not None and notes.users[k].written is not None for k in managed),
    )
    return Snapshot(users, groups, user_ids, group_ids, notes, state)


def fingerprint(store_users: Iterable[StoreUser], store_teams: Iterable[StoreTeam],
                users: Iterable[ScimUser], groups: Iterable[ScimGroup]) -> str:
    """"sha256:" over the content (as every store) and the managed resources' ids and versions, sorted."""
    versions = sorted(
        [["User", u.id, u.version] for u in users if u.managed] + [["Group", g.id, g.version] for g in groups if g.managed]
    )
    text = json.dumps({"content": content_fingerprint(store_users, store_teams), "versions": versions},
                      sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _differs(written: Written, user: StoreUser) -> bool:
    return (written.email, written.display_name, written.attributes) != (user.email, user.display_name, user.attributes)
