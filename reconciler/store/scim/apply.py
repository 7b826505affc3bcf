"""Plan changes as SCIM requests: every change is first run on an in-memory model of the store.

The model answers the store rules' lookups (`..rules`: a create of an existing
key, an update of an unmanaged user, a team delete that still has users... are
refused, with the SQL store's messages), and adds SCIM's own (attributes with
no place in a SCIM User, a manager who is no user), so a plan that cannot
apply is refused before the first request (`ChangeRefused`). Each change becomes a `Step`: its operations, requests to
the server and notes for the side file, which execute.py carries out.

A user's groups on the server are always its team plus its memberships: each
change that moves a user or changes a membership adds or removes exactly the
group memberships that make that true again (adds first, so a move that stops
halfway leaves the user in a group, not in none).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...model import Change
from ..rules import ChangeRejected, Checked, StoreRules
from .mapping import MANAGER, UNMANAGED_PREFIX, MappingError, check_attributes
from .view import Snapshot

SCIM_FIELDS = ("email", "display_name", "attributes", "status")  # the user fields that live on the server


@dataclass(frozen=True)
class Op:
    """One step of a change: `action` is a request to the server, or a note for the side file."""

    action: str  # create_group rename_group delete_group create_user update_user delete_user
    #              add_member remove_member note_user forget_user note_team forget_team
    key: str  # the user or team the step is about
    team: str | None = None  # add_member/remove_member: the team; note_user: the user's team
    fields: dict[str, Any] = field(default_factory=dict)  # user fields, or {"name": ...} for a group
    adopt_from: str | None = None  # update_user of an adoption: the unmanaged key it had
    links: tuple[str, ...] = ()
    parent: str | None = None


@dataclass
class Step:
    change: Change
    ops: list[Op]


# ───────────────────────────── the model and the rules ─────────────────────────────


@dataclass
class _User:
    email: str
    team: str | None
    memberships: set[str]
    links: tuple[str, ...]
    managed: bool
    manager: str | None = None  # the manager's email, when the attributes name one
    written: dict[str, Any] = field(default_factory=dict)  # email, display_name, attributes as they will be


@dataclass
class _Team:
    parent: str | None
    managed: bool


class RequestPlanner(StoreRules[_User]):
    """Turns a plan's changes into the `Step`s of requests and notes, on a model of the store read at apply."""

    unmanaged_key = f"{UNMANAGED_PREFIX}<id>"
    rejections = (ChangeRejected, MappingError)

    def __init__(self, snapshot: Snapshot):
        super().__init__()
        state = snapshot.state
        self.users = {
            k: _User(u.email, u.team, set(u.memberships), tuple(str(l) for l in u.links), u.managed,
                     dict(u.attributes).get(MANAGER),
                     {"email": u.email, "display_name": u.display_name, "attributes": dict(u.attributes)})
            for k, u in state.users.items()
        }
        self.teams = {k: _Team(t.parent, t.managed) for k, t in state.teams.items()}
        self.members: dict[str, set[str]] = {k: set() for k in state.teams}  # team key -> user keys in its group
        for key, user in state.users.items():
            for team in {user.team, *user.memberships} - {None}:
                self.members.setdefault(team, set()).add(key)  # type: ignore[arg-type]
        self.link_changes: dict[str, Change] = {}  # user key -> the change that last set its links
        self.manager_changes: dict[str, Change] = {}  # user key -> the change that last set its manager

    def plan(self, changes: Sequence[Change]) -> list[Step]:
        """The steps, access removals first: SCIM has no transaction, so a request that fails stops the
        apply where it is, and a leaver's deactivation must never wait behind an unrelated create the
        server refuses. Removing access depends on nothing the other changes make (the rules ran on the
        plan's order above, and a removal only touches its own user and their memberships)."""
        steps = [Step(change, ops) for change, ops in zip(changes, self.run(changes))]
        return sorted(steps, key=lambda step: not _removes_access(step.change))

    def finish(self) -> None:
        self.check_teams()
        self._check_links()
        self._check_managers()

    def refused(self, change: Change, reason: str) -> Exception:
        return ChangeRefused(change, reason)

    # ── lookups, on the model ──

    def find_user(self, key: str) -> tuple[_User, bool] | None:
        user = self.users.get(key)
        return None if user is None else (user, user.managed)

    def team_managed(self, key: str) -> bool | None:
        team = self.teams.get(key)
        return None if team is None else team.managed

    def team_holders(self, key: str) -> int:
        return sum(1 for u in self.users.values() if u.team == key)

    def first_child(self, key: str) -> str | None:
        return min((k for k, t in self.teams.items() if t.parent == key), default=None)

    def is_member(self, user: _User, team: str) -> bool:
        return team in user.memberships

    # ── group membership follows team and memberships ──

    def _sync(self, user_key: str, teams: set[str | None]) -> list[Op]:
        adds, removes = [], []
        user = self.users.get(user_key)
        for team in sorted(t for t in teams if t is not None):
            if team not in self.teams:
                continue
            should = user is not None and (user.team == team or team in user.memberships)
            members = self.members.setdefault(team, set())
            if should and user_key not in members:
                members.add(user_key)
                adds.append(Op("add_member", user_key, team=team))
            elif not should and user_key in members:
                members.discard(user_key)
                removes.append(Op("remove_member", user_key, team=team))
        return adds + removes  # adds first: a move that stops halfway leaves the user in a group, not in none

    def _note(self, key: str) -> Op:
        """The side file's note of a user: their team, links, and what this apply writes of them (the
        three-way comparison's memory: a later difference on the server is an edit in the application)."""
        user = self.users[key]
        return Op("note_user", key, team=user.team, links=user.links, fields={"written": dict(user.written)})

    # ── users ──

    @staticmethod
    def _server_fields(fields: dict[str, Any]) -> dict[str, Any]:
        server = {name: fields[name] for name in SCIM_FIELDS if name in fields}
        if "attributes" in server:
            check_attributes(server["attributes"])
        return server

    def _set_user_fields(self, key: str, checked: Checked) -> None:
        user, fields = self.users[key], checked.fields
        user.written.update({name: fields[name] for name in ("email", "display_name", "attributes") if name in fields})
        if "email" in fields:
            user.email = fields["email"]
        if "attributes" in fields:
            user.manager = fields["attributes"].get(MANAGER) or None
            if user.manager:
                self.manager_changes[key] = checked.change
            else:
                self.manager_changes.pop(key, None)
        if "links" in fields:
            user.links = tuple(str(link) for link in fields["links"])  # distinct and sorted by the rules
            self.link_changes[key] = checked.change

    def _create_user(self, checked: Checked) -> list[Op]:
        self.new_user(checked.key)
        team = checked.fields["team"]
        self.require_team(team)
        server = self._server_fields(checked.fields)
        self.users[checked.key] = _User(checked.fields["email"], team, set(), (), True)
        self._set_user_fields(checked.key, checked)
        return [Op("create_user", checked.key, fields=server), self._note(checked.key),
                *self._sync(checked.key, {team})]

    def _adopt_user(self, checked: Checked) -> list[Op]:
        user, old_key, team = self.adoptable(checked), checked.adopt_from, checked.fields["team"]
        self.require_team(team)
        server = self._server_fields(checked.fields)
        del self.users[old_key]
        for members in self.members.values():
            if old_key in members:
                members.discard(old_key)
                members.add(checked.key)
        user.managed, user.team = True, team
        self.users[checked.key] = user
        self._set_user_fields(checked.key, checked)
        return [Op("update_user", checked.key, fields=server, adopt_from=old_key), self._note(checked.key),
                *self._sync(checked.key, {team})]

    def _change_user(self, checked: Checked) -> list[Op]:
        """update, move, reactivate, deactivate: set the fields `after` names."""
        user = self.managed_user(checked.key)
        server = self._server_fields(checked.fields)
        ops: list[Op] = [Op("update_user", checked.key, fields=server)] if server else []
        self._set_user_fields(checked.key, checked)
        if "team" in checked.fields:
            self.require_team(checked.fields["team"])
            old_team, user.team = user.team, checked.fields["team"]
            ops += self._sync(checked.key, {old_team, user.team})
        if {"team", "links", "email", "display_name", "attributes"} & set(checked.fields):
            ops.append(self._note(checked.key))
        return ops

    def _delete_user(self, checked: Checked) -> list[Op]:
        key = checked.key
        self.managed_user(key)
        ops = [Op("remove_member", key, team=t) for t, members in sorted(self.members.items()) if key in members]
        for members in self.members.values():
            members.discard(key)
        del self.users[key]
        self.link_changes.pop(key, None)
        self.manager_changes.pop(key, None)
        return [*ops, Op("delete_user", key), Op("forget_user", key)]

    # ── memberships ──

    def _add_membership(self, checked: Checked) -> list[Op]:
        assert checked.user is not None and checked.team is not None
        self.membership_to_add(checked).memberships.add(checked.team)
        return self._sync(checked.user, {checked.team})

    def _remove_membership(self, checked: Checked) -> list[Op]:
        assert checked.user is not None and checked.team is not None
        self.membership_to_remove(checked).memberships.discard(checked.team)
        return self._sync(checked.user, {checked.team})

    # ── teams ──

    def _create_team(self, checked: Checked) -> list[Op]:
        self.new_team(checked)
        parent = checked.fields.get("parent")
        self.teams[checked.key] = _Team(parent, True)
        self.members[checked.key] = set()
        return [Op("create_group", checked.key, fields={"name": checked.fields["name"]}),
                Op("note_team", checked.key, parent=parent)]

    def _update_team(self, checked: Checked) -> list[Op]:
        self.managed_team(checked.key)
        team = self.teams[checked.key]
        ops = []
        if "name" in checked.fields:
            ops.append(Op("rename_group", checked.key, fields={"name": checked.fields["name"]}))
        if "parent" in checked.fields:
            team.parent = checked.fields["parent"]
            self.parent_named(checked)
            ops.append(Op("note_team", checked.key, parent=team.parent))
        return ops

    def _delete_team(self, checked: Checked) -> list[Op]:
        self.deletable_team(checked)
        for user in self.users.values():
            user.memberships.discard(checked.key)
        del self.teams[checked.key]
        self.members.pop(checked.key, None)
        return [Op("delete_group", checked.key), Op("forget_team", checked.key)]

    HANDLERS = {("team", "create"): _create_team, ("team", "update"): _update_team, ("team", "delete"): _delete_team,
                ("user", "create"): _create_user, ("user", "adopt"): _adopt_user, ("user", "delete"): _delete_user,
                **dict.fromkeys([("user", a) for a in ("reactivate", "update", "move", "deactivate")], _change_user),
                ("membership", "add"): _add_membership, ("membership", "remove"): _remove_membership}

    # ── checks over the whole plan ──

    def _check_links(self) -> None:
        owners: dict[str, str] = {}
        for key, user in sorted(self.users.items(), key=lambda kv: (kv[0] in self.link_changes, kv[0])):
            if not user.managed:
                continue
            for link in user.links:
                if link in owners and key in self.link_changes:
                    self.guarded(self.link_changes[key], lambda l=link, o=owners[link]: _reject(self.link_taken(l, o)))
                owners.setdefault(link, key)

    def _check_managers(self) -> None:
        emails = {u.email.lower() for u in self.users.values()}
        for key, change in sorted(self.manager_changes.items()):
            manager = self.users[key].manager
            if manager and manager.lower() not in emails:
                self.guarded(change, lambda m=manager: _reject(ChangeRejected(
                    f"attribute manager is {m!r}, which is not the email of any user in the SCIM store; "
                    "map manager to the manager's email address")))


def _removes_access(change: Change) -> bool:
    return change.kind == "user" and change.action in ("deactivate", "delete")


def _reject(rejection: ChangeRejected) -> None:
    raise rejection


HANDLERS = RequestPlanner.HANDLERS  # the table tests/unit/test_changes.py holds against reconciler.changes


class ChangeRefused(Exception):
    """A change the model refused before anything was sent."""

    def __init__(self, change: Change, reason: str):
        super().__init__(reason)
        self.change, self.reason = change, reason


def plan_operations(snapshot: Snapshot, changes: Sequence[Change]) -> list[Step]:
    return RequestPlanner(snapshot).plan(changes)
