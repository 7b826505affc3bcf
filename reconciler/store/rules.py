"""The store rules: what every store checks before it writes any of a plan's changes.

Two halves, one set of messages:

- `check(change)`, the shape of a change, without the store: a known kind and
  action (`reconciler.changes.BY_KIND_ACTION`); for a user change, only the
  fields its action may set (`ChangeKind.fields`), all of them for create and
  adopt, each of the right shape (email a non-empty string, display_name a
  string, attributes a map of strings, team a key or null, status one of
  STATUSES and the one its action implies, links "directory:anchor" strings),
  and at least one; for an adopt, the unmanaged user `before` names; for a
  membership, the {"user", "team"} side; for a team, name and parent. It
  returns the change as store-neutral values (`Checked`: field names, not SQL
  columns or SCIM paths), so a store converts but never re-checks.
- `StoreRules`, what needs the store: only managed users and teams change
  (adopt takes an unmanaged user), keys are new when created, teams exist when
  referred to, a team goes only once no user has it as team and no team has it
  as parent, a membership is added once and removed only when there, a link
  belongs to one user. A store's writer subclasses it and supplies the lookups
  (`find_user`, `team_managed`...) and a handler per kind of change in
  `HANDLERS`; `run` checks every change's shape first, then calls the handlers
  in order, then `finish` for what can only be checked at the end of the plan
  (a team may be created before its parent, a link may move between users).

A refused change raises `ChangeRejected`; the store names the change around
the reason (`refusal`) and says what became of the rest.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from ..changes import BY_KIND_ACTION, TEAM_FIELDS, USER_FIELDS
from ..model import Change, Link

STATUSES = ("active", "deactivated")
# the status a user change must set, when its action implies one
# a create may set either: a disabled account imported with users.include_disabled is created deactivated
IMPLIED_STATUS = {"reactivate": "active", "deactivate": "deactivated"}


class ChangeRejected(Exception):
    """A change that cannot be applied; the store names the change around `reason`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def refusal(change: Change, reason: str) -> str:
    """The start of every store's message for a refused change."""
    return f"cannot apply {change.kind} {change.action} {change.key}: {reason}"


# ───────────────────────────── the shape of a change ─────────────────────────────


@dataclass(frozen=True)
class Checked:
    """A change whose shape the rules accepted, as store-neutral values."""

    change: Change
    # user changes: the USER_FIELDS `after` sets (email, display_name: str; attributes: dict[str, str];
    # team: str | None; status; links: distinct Links sorted by text); team changes: name, parent
    fields: dict[str, Any] = field(default_factory=dict)
    adopt_from: str | None = None  # adopt: the key of the unmanaged user taken over
    user: str | None = None  # membership: its user key
    team: str | None = None  # membership: its team key

    @property
    def key(self) -> str:
        return self.change.key


def check(change: Change, unmanaged_key: str) -> Checked:
    """The change's values if its shape is one a store can apply; else ChangeRejected.

    `unmanaged_key` is how the store's unmanaged users' keys look ("local:<id>"),
    for the message that asks for one.
    """
    kind = BY_KIND_ACTION.get((change.kind, change.action))
    if kind is None:
        raise ChangeRejected("this store does not know that kind of change")
    if change.kind == "membership":
        user, team = _membership_sides(change)
        return Checked(change, user=user, team=team)
    if change.action == "delete":
        return Checked(change)
    if change.kind == "team":
        return Checked(change, _team_fields(change.after, change.action))
    adopt_from = None
    if change.action == "adopt":
        adopt_from = (change.before or {}).get("key")
        if not isinstance(adopt_from, str):
            raise ChangeRejected(f'before must name the user to adopt as {{"key": "{unmanaged_key}", ...}}')
    fields = _user_fields(change.after or {}, change.action, kind.fields)
    if change.action not in ("create", "adopt") and not fields:
        raise ChangeRejected("after names no field to change")
    return Checked(change, fields, adopt_from=adopt_from)


def _membership_sides(change: Change) -> tuple[str, str]:
    """(user key, team key) of a membership change, from the side that holds them."""
    side = change.after if change.action == "add" else change.before
    if not isinstance(side, Mapping) or not isinstance(side.get("user"), str) or not isinstance(side.get("team"), str):
        where = "after" if change.action == "add" else "before"
        raise ChangeRejected(f'{where} must be {{"user": <user key>, "team": <team key>}}')
    return side["user"], side["team"]


def _user_fields(after: Any, action: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(after, Mapping):
        raise ChangeRejected("after must be an object of user fields")
    unknown = sorted(set(after) - allowed)
    if unknown:
        raise ChangeRejected(f"{action} cannot set {', '.join(unknown)} (it sets only {', '.join(sorted(allowed))})")
    if action in ("create", "adopt"):
        missing = [f for f in USER_FIELDS if f not in after]
        if missing:
            raise ChangeRejected(f"{action} needs every user field; missing {', '.join(missing)}")
    fields = {name: _USER_VALUES[name](value) for name, value in after.items()}
    implied = IMPLIED_STATUS.get(action)
    if implied and fields.get("status") != implied:
        raise ChangeRejected(f"{action} must set status {implied}")
    return fields


def _email(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ChangeRejected("email must be a non-empty string")
    return value


def _display_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ChangeRejected("display_name must be a string")
    return value


def _attributes(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ChangeRejected("attributes must map names to strings")
    return dict(value)


def _team(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ChangeRejected("team must be a team key or null")
    return value


def _status(value: Any) -> str:
    if value not in STATUSES:
        raise ChangeRejected(f"status must be one of {', '.join(STATUSES)}, not {value!r}")
    return value


def _links(value: Any) -> tuple[Link, ...]:
    if not isinstance(value, (list, tuple)):
        raise ChangeRejected('links must be a list of "directory:anchor" strings')
    return tuple(sorted({parse_link(v) for v in value}, key=str))


def parse_link(text: Any) -> Link:
    if not isinstance(text, str) or ":" not in text:
        raise ChangeRejected(f'link {text!r} is not "directory:anchor"')
    directory, anchor = text.split(":", 1)
    if not directory or not anchor:
        raise ChangeRejected(f'link {text!r} is not "directory:anchor"')
    return Link(directory, anchor)


_USER_VALUES: dict[str, Callable[[Any], Any]] = {"email": _email, "display_name": _display_name,
                                                 "attributes": _attributes, "team": _team, "status": _status,
                                                 "links": _links}


def _team_fields(after: Any, action: str) -> dict[str, Any]:
    if not isinstance(after, Mapping):
        raise ChangeRejected("after must be an object of team fields")
    unknown = sorted(set(after) - set(TEAM_FIELDS))
    if unknown:
        raise ChangeRejected(f"team {action} cannot set {', '.join(unknown)} (it sets only name, parent)")
    if action == "create" and "name" not in after:
        raise ChangeRejected("team create needs a name")
    fields: dict[str, Any] = {}
    if "name" in after:
        if not isinstance(after["name"], str) or not after["name"]:
            raise ChangeRejected("name must be a non-empty string")
        fields["name"] = after["name"]
    if "parent" in after:
        if after["parent"] is not None and not isinstance(after["parent"], str):
            raise ChangeRejected("parent must be a team key or null")
        fields["parent"] = after["parent"]
    if action == "update" and not fields:
        raise ChangeRejected("after names no field to change")
    return fields


# ───────────────────────────── the rules that need the store ─────────────────────────────

U = TypeVar("U")  # how a store holds on to a user it found (a row id, a model object)


class StoreRules(Generic[U]):
    """A store's writer: its lookups and handlers, these rules around them."""

    unmanaged_key: ClassVar[str]  # how the store's unmanaged users' keys look, e.g. "local:<id>"
    HANDLERS: ClassVar[dict[tuple[str, str], Callable[[Any, Checked], Any]]]  # every (kind, action)
    rejections: ClassVar[tuple[type[Exception], ...]] = (ChangeRejected,)  # what a handler may refuse with

    def __init__(self) -> None:
        self.parent_checks: list[tuple[Change, str]] = []  # team creates/updates and the parent they name
        self.deleted_teams: list[Change] = []

    # ── what the store supplies ──

    def find_user(self, key: str) -> tuple[U, bool] | None:
        """The user and whether it is managed, or None when there is no such user."""
        raise NotImplementedError

    def team_managed(self, key: str) -> bool | None:
        """Whether the team is managed, or None when there is no such team."""
        raise NotImplementedError

    def team_holders(self, key: str) -> int:
        """How many users have the team as their team."""
        raise NotImplementedError

    def first_child(self, key: str) -> str | None:
        """The first (by key) team that has this one as parent."""
        raise NotImplementedError

    def is_member(self, user: U, team: str) -> bool:
        raise NotImplementedError

    def refused(self, change: Change, reason: str) -> Exception:
        """The error that stops the apply at a refused change."""
        raise NotImplementedError

    def finish(self) -> None:
        """What is checked once every change has been handled (each through `guarded`)."""
        self.check_teams()

    # ── running a plan ──

    def run(self, changes: Sequence[Change]) -> list[Any]:
        """Every change's shape, then every change's handler in order, then `finish`; the handlers' results."""
        checked = [self.guarded(change, lambda c=change: check(c, self.unmanaged_key)) for change in changes]
        results = [self.guarded(c.change, lambda c=c: self.HANDLERS[(c.change.kind, c.change.action)](self, c))
                   for c in checked]
        self.finish()
        return results

    def guarded(self, change: Change, step: Callable[[], Any]) -> Any:
        try:
            return step()
        except self.rejections as rejected:
            raise self.refused(change, rejected.reason if isinstance(rejected, ChangeRejected) else str(rejected)) from None

    # ── the rules ──

    def managed_user(self, key: str) -> U:
        found = self.find_user(key)
        if found is None:
            raise ChangeRejected(f"user {key} is not in the store")
        user, managed = found
        if not managed:
            raise ChangeRejected(
                f"user {key} was created in the application and is not managed; only adopt may change it")
        return user

    def new_user(self, key: str) -> None:
        if self.find_user(key) is not None:
            raise ChangeRejected(f"a user with key {key} already exists")

    def adoptable(self, checked: Checked) -> U:
        """The unmanaged user an adopt takes over, under a key no other user has."""
        old_key = checked.adopt_from
        assert old_key is not None
        found = self.find_user(old_key)
        if found is None:
            raise ChangeRejected(f"the user to adopt, {old_key}, is not in the store")
        user, managed = found
        if managed:
            raise ChangeRejected(f"the user to adopt, {old_key}, is already managed")
        if checked.key != old_key:
            self.new_user(checked.key)
        return user

    def require_team(self, key: str | None, what: str = "team") -> None:
        if key is not None and self.team_managed(key) is None:
            raise ChangeRejected(f"{what} {key} does not exist")

    def managed_team(self, key: str) -> None:
        managed = self.team_managed(key)
        if managed is None:
            raise ChangeRejected(f"team {key} is not in the store")
        if not managed:
            raise ChangeRejected(f"team {key} was created in the application and is not managed")

    def new_team(self, checked: Checked) -> None:
        """A team create's key is free; its parent is checked at the end (it may come later in the plan)."""
        if self.team_managed(checked.key) is not None:
            raise ChangeRejected(f"a team with key {checked.key} already exists")
        self.parent_named(checked)

    def parent_named(self, checked: Checked) -> None:
        parent = checked.fields.get("parent")
        if parent is not None:
            self.parent_checks.append((checked.change, parent))

    def deletable_team(self, checked: Checked) -> None:
        """A managed team no user has as team; whether another team has it as parent is checked at the end."""
        self.managed_team(checked.key)
        holders = self.team_holders(checked.key)
        if holders:
            raise ChangeRejected(f"{holders} user(s) still have it as their team; move them first")
        self.deleted_teams.append(checked.change)

    def membership_to_add(self, checked: Checked) -> U:
        assert checked.user is not None and checked.team is not None
        user = self.managed_user(checked.user)
        self.require_team(checked.team)
        if self.is_member(user, checked.team):
            raise ChangeRejected(f"user {checked.user} is already a member of team {checked.team}")
        return user

    def membership_to_remove(self, checked: Checked) -> U:
        assert checked.user is not None and checked.team is not None
        user = self.managed_user(checked.user)
        if not self.is_member(user, checked.team):
            raise ChangeRejected(f"user {checked.user} is not a member of team {checked.team}")
        return user

    @staticmethod
    def link_taken(link: Link | str, owner: str) -> ChangeRejected:
        return ChangeRejected(f"link {link} already belongs to user {owner}")

    def check_teams(self) -> None:
        """At the end of the plan: every parent named exists, and no deleted team is still a parent."""
        for change, parent in self.parent_checks:
            self.guarded(change, lambda p=parent: self.require_team(p, "parent team"))
        for change in self.deleted_teams:
            self.guarded(change, lambda c=change: self._no_children(c.key))

    def _no_children(self, key: str) -> None:
        child = self.first_child(key)
        if child is not None:
            raise ChangeRejected(f"team {child} still has it as its parent")
