"""Plan changes as SCIM operations: every change is first run on an in-memory model of the store.

The model applies the SQLite store's rules (a create of an existing key, an
update of an unmanaged user, a team delete that still has users... are
refused), so a plan that cannot apply is refused before the first request
(`ChangeRefused`). Each change becomes a `Step`: its operations, requests to
the server and notes for the side file, which execute.py carries out.

A user's groups on the server are always its team plus its memberships: each
change that moves a user or changes a membership adds or removes exactly the
group memberships that make that true again (adds first, so a move that stops
halfway leaves the user in a group, not in none).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...model import Change
from ..sql.rows import ChangeRejected, membership_parts, team_columns, user_columns
from .mapping import MANAGER, MappingError, check_attributes
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


@dataclass
class _Team:
    parent: str | None
    managed: bool


class Planner:
    def __init__(self, snapshot: Snapshot):
        state = snapshot.state
        self.users = {
            k: _User(u.email, u.team, set(u.memberships), tuple(str(l) for l in u.links), u.managed,
                     dict(u.attributes).get(MANAGER))
            for k, u in state.users.items()
        }
        self.teams = {k: _Team(t.parent, t.managed) for k, t in state.teams.items()}
        self.members: dict[str, set[str]] = {k: set() for k in state.teams}  # team key -> user keys in its group
        for key, user in state.users.items():
            for team in {user.team, *user.memberships} - {None}:
                self.members.setdefault(team, set()).add(key)  # type: ignore[arg-type]
        self.parent_checks: list[tuple[Change, str]] = []
        self.deleted_teams: list[Change] = []
        self.link_changes: dict[str, Change] = {}  # user key -> the change that last set its links
        self.manager_changes: dict[str, Change] = {}  # user key -> the change that last set its manager

    def plan(self, changes: Sequence[Change]) -> list[Step]:
        steps = [Step(change, self._guarded(change, lambda c=change: self._plan(c))) for change in changes]
        for change, parent in self.parent_checks:
            self._guarded(change, lambda p=parent: self._require_team(p, "parent team"))
        for change in self.deleted_teams:
            self._guarded(change, lambda c=change: self._require_no_children(c.key))
        self._check_links()
        self._check_managers()
        return steps

    @staticmethod
    def _guarded(change: Change, step: Callable[[], Any]) -> Any:
        try:
            return step()
        except (ChangeRejected, MappingError) as rejected:
            reason = rejected.reason if isinstance(rejected, ChangeRejected) else str(rejected)
            raise ChangeRefused(change, reason) from None

    def _plan(self, change: Change) -> list[Op]:
        handler = HANDLERS.get((change.kind, change.action))
        if handler is None:
            raise ChangeRejected("this store does not know that kind of change")
        return handler(self, change)

    # ── lookups ──

    def _managed_user(self, key: str) -> _User:
        user = self.users.get(key)
        if user is None:
            raise ChangeRejected(f"user {key} is not in the store")
        if not user.managed:
            raise ChangeRejected(
                f"user {key} was created in the application and is not managed; only adopt may change it")
        return user

    def _require_team(self, key: str | None, what: str = "team") -> None:
        if key is not None and key not in self.teams:
            raise ChangeRejected(f"{what} {key} does not exist")

    def _managed_team(self, key: str) -> _Team:
        team = self.teams.get(key)
        if team is None:
            raise ChangeRejected(f"team {key} is not in the store")
        if not team.managed:
            raise ChangeRejected(f"team {key} was created in the application and is not managed")
        return team

    def _require_no_children(self, key: str) -> None:
        children = sorted(k for k, t in self.teams.items() if t.parent == key)
        if children:
            raise ChangeRejected(f"team {children[0]} still has it as its parent")

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
        user = self.users[key]
        return Op("note_user", key, team=user.team, links=user.links)

    # ── users ──

    @staticmethod
    def _server_fields(after: dict[str, Any]) -> dict[str, Any]:
        fields = {name: after[name] for name in SCIM_FIELDS if name in after}
        if "attributes" in fields:
            check_attributes(fields["attributes"])
        return fields

    def _set_user_fields(self, key: str, change: Change, after: dict[str, Any]) -> None:
        user = self.users[key]
        if "email" in after:
            user.email = after["email"]
        if "attributes" in after:
            user.manager = after["attributes"].get(MANAGER) or None
            if user.manager:
                self.manager_changes[key] = change
            else:
                self.manager_changes.pop(key, None)
        if "links" in after:
            user.links = tuple(sorted(set(after["links"])))
            self.link_changes[key] = change

    def _create_user(self, change: Change) -> list[Op]:
        columns, _ = user_columns(change.after or {}, "create")
        if change.key in self.users:
            raise ChangeRejected(f"a user with key {change.key} already exists")
        self._require_team(columns["team_key"])
        after = dict(change.after or {})
        fields = self._server_fields(after)
        self.users[change.key] = _User(after["email"], columns["team_key"], set(), (), True)
        self._set_user_fields(change.key, change, after)
        return [Op("create_user", change.key, fields=fields), self._note(change.key),
                *self._sync(change.key, {columns["team_key"]})]

    def _adopt_user(self, change: Change) -> list[Op]:
        old_key = (change.before or {}).get("key")
        if not isinstance(old_key, str):
            raise ChangeRejected('before must name the user to adopt as {"key": "scim:<id>", ...}')
        columns, _ = user_columns(change.after or {}, "adopt")
        user = self.users.get(old_key)
        if user is None:
            raise ChangeRejected(f"the user to adopt, {old_key}, is not in the store")
        if user.managed:
            raise ChangeRejected(f"the user to adopt, {old_key}, is already managed")
        if change.key != old_key and change.key in self.users:
            raise ChangeRejected(f"a user with key {change.key} already exists")
        self._require_team(columns["team_key"])
        after = dict(change.after or {})
        fields = self._server_fields(after)
        del self.users[old_key]
        for members in self.members.values():
            if old_key in members:
                members.discard(old_key)
                members.add(change.key)
        user.managed, user.team = True, columns["team_key"]
        self.users[change.key] = user
        self._set_user_fields(change.key, change, after)
        return [Op("update_user", change.key, fields=fields, adopt_from=old_key), self._note(change.key),
                *self._sync(change.key, {columns["team_key"]})]

    def _change_user(self, change: Change) -> list[Op]:
        """update, move, reactivate, deactivate: set the fields `after` names."""
        user = self._managed_user(change.key)
        columns, links = user_columns(change.after or {}, change.action)
        if not columns and links is None:
            raise ChangeRejected("after names no field to change")
        after = dict(change.after or {})
        fields = self._server_fields(after)
        ops: list[Op] = [Op("update_user", change.key, fields=fields)] if fields else []
        self._set_user_fields(change.key, change, after)
        if "team_key" in columns:
            self._require_team(columns["team_key"])
            old_team, user.team = user.team, columns["team_key"]
            ops += self._sync(change.key, {old_team, user.team})
        if "team_key" in columns or links is not None:
            ops.append(self._note(change.key))
        return ops

    def _delete_user(self, change: Change) -> list[Op]:
        user = self._managed_user(change.key)
        ops = [Op("remove_member", change.key, team=t)
               for t, members in sorted(self.members.items()) if change.key in members]
        for members in self.members.values():
            members.discard(change.key)
        del self.users[change.key]
        del user
        self.link_changes.pop(change.key, None)
        self.manager_changes.pop(change.key, None)
        return [*ops, Op("delete_user", change.key), Op("forget_user", change.key)]

    # ── memberships ──

    def _add_membership(self, change: Change) -> list[Op]:
        user_key, team_key = membership_parts(change)
        user = self._managed_user(user_key)
        self._require_team(team_key)
        if team_key in user.memberships:
            raise ChangeRejected(f"user {user_key} is already a member of team {team_key}")
        user.memberships.add(team_key)
        return self._sync(user_key, {team_key})

    def _remove_membership(self, change: Change) -> list[Op]:
        user_key, team_key = membership_parts(change)
        user = self._managed_user(user_key)
        if team_key not in user.memberships:
            raise ChangeRejected(f"user {user_key} is not a member of team {team_key}")
        user.memberships.discard(team_key)
        return self._sync(user_key, {team_key})

    # ── teams ──

    def _create_team(self, change: Change) -> list[Op]:
        columns = team_columns(change.after, "create")
        if change.key in self.teams:
            raise ChangeRejected(f"a team with key {change.key} already exists")
        parent = columns.get("parent_key")
        self.teams[change.key] = _Team(parent, True)
        self.members[change.key] = set()
        if parent is not None:
            self.parent_checks.append((change, parent))  # the parent may be created later in this plan
        return [Op("create_group", change.key, fields={"name": columns["name"]}),
                Op("note_team", change.key, parent=parent)]

    def _update_team(self, change: Change) -> list[Op]:
        columns = team_columns(change.after, "update")
        if not columns:
            raise ChangeRejected("after names no field to change")
        team = self._managed_team(change.key)
        ops = []
        if "name" in columns:
            ops.append(Op("rename_group", change.key, fields={"name": columns["name"]}))
        if "parent_key" in columns:
            team.parent = columns["parent_key"]
            if team.parent is not None:
                self.parent_checks.append((change, team.parent))
            ops.append(Op("note_team", change.key, parent=team.parent))
        return ops

    def _delete_team(self, change: Change) -> list[Op]:
        self._managed_team(change.key)
        holders = [k for k, u in self.users.items() if u.team == change.key]
        if holders:
            raise ChangeRejected(f"{len(holders)} user(s) still have it as their team; move them first")
        for user in self.users.values():
            user.memberships.discard(change.key)
        del self.teams[change.key]
        self.members.pop(change.key, None)
        self.deleted_teams.append(change)
        return [Op("delete_group", change.key), Op("forget_team", change.key)]

    # ── checks over the whole plan ──

    def _check_links(self) -> None:
        owners: dict[str, str] = {}
        for key, user in sorted(self.users.items(), key=lambda kv: (kv[0] in self.link_changes, kv[0])):
            if not user.managed:
                continue
            for link in user.links:
                if link in owners and key in self.link_changes:
                    self._guarded(self.link_changes[key], lambda l=link, o=owners[link]: _reject(
                        f"link {l} already belongs to user {o}"))
                owners.setdefault(link, key)

    def _check_managers(self) -> None:
        emails = {u.email.lower() for u in self.users.values()}
        for key, change in sorted(self.manager_changes.items()):
            manager = self.users[key].manager
            if manager and manager.lower() not in emails:
                self._guarded(change, lambda m=manager: _reject(
                    f"attribute manager is {m!r}, which is not the email of any user in the SCIM store; "
                    "map manager to the manager's email address"))


def _reject(reason: str) -> None:
    raise ChangeRejected(reason)


HANDLERS: dict[tuple[str, str], Callable[[Planner, Change], list[Op]]] = {
    ("team", "create"): Planner._create_team,
    ("team", "update"): Planner._update_team,
    ("user", "create"): Planner._create_user,
    ("user", "adopt"): Planner._adopt_user,
    ("user", "reactivate"): Planner._change_user,
    ("user", "update"): Planner._change_user,
    ("user", "move"): Planner._change_user,
    ("membership", "add"): Planner._add_membership,
    ("membership", "remove"): Planner._remove_membership,
    ("user", "deactivate"): Planner._change_user,
    ("user", "delete"): Planner._delete_user,
    ("team", "delete"): Planner._delete_team,
}


class ChangeRefused(Exception):
    """A change the model refused before anything was sent."""

    def __init__(self, change: Change, reason: str):
        super().__init__(reason)
        self.change, self.reason = change, reason


def plan_operations(snapshot: Snapshot, changes: Sequence[Change]) -> list[Step]:
    return Planner(snapshot).plan(changes)
