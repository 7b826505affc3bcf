"""Conversions between SQL rows, the plan's change dicts and the store values.

No database access here: the SQL stores hand rows in and get column values
out, so every SQL engine reads and writes the same shapes. The fingerprint is
computed from the values rather than the rows (`..common.fingerprint`), so it
does not depend on column order, JSON spacing or row ids of managed users.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...changes import CHANGE_KINDS, TEAM_FIELDS, USER_FIELDS
from ...model import Change, Link, StoreTeam, StoreUser
from ..common import ApplyRecord

LOCAL_KEY_PREFIX = "local:"
STATUSES = ("active", "deactivated")

# The fields each user change may carry in `after`, by action. Anything else is a
# plan this store does not understand, and applying half of it would be worse.
FIELDS_BY_ACTION: dict[str, frozenset[str]] = {c.action: c.fields for c in CHANGE_KINDS if c.kind == "user" and c.fields}


class ChangeRejected(Exception):
    """A change that cannot be applied; the store names the change around `reason`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ───────────────────────────── keys and links ─────────────────────────────


def local_key(user_id: int) -> str:
    """The key of a user the application created by hand (its `key` column is NULL)."""
    return f"{LOCAL_KEY_PREFIX}{user_id}"


def local_id(key: str) -> int | None:
    """The row id a "local:<id>" key names, or None for any other key."""
    if key.startswith(LOCAL_KEY_PREFIX) and key[len(LOCAL_KEY_PREFIX):].isdigit():
        return int(key[len(LOCAL_KEY_PREFIX):])
    return None


def row_key(key: str | None, user_id: int) -> str:
    return key if key is not None else local_key(user_id)


def parse_link(text: Any) -> Link:
    if not isinstance(text, str) or ":" not in text:
        raise ChangeRejected(f'link {text!r} is not "directory:anchor"')
    directory, anchor = text.split(":", 1)
    if not directory or not anchor:
        raise ChangeRejected(f'link {text!r} is not "directory:anchor"')
    return Link(directory, anchor)


def membership_parts(change: Change) -> tuple[str, str]:
    """(user key, team key) of a membership change, from the side that holds them."""
    side = change.after if change.action == "add" else change.before
    if not isinstance(side, Mapping) or not isinstance(side.get("user"), str) or not isinstance(side.get("team"), str):
        where = "after" if change.action == "add" else "before"
        raise ChangeRejected(f'{where} must be {{"user": <user key>, "team": <team key>}}')
    return side["user"], side["team"]


# ───────────────────────────── attributes ─────────────────────────────


def attributes_json(attributes: Mapping[str, str]) -> str:
    """The canonical text of the attributes column: keys sorted, no spacing."""
    return json.dumps(dict(attributes), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def attributes_from_json(text: str | None) -> tuple[tuple[str, str], ...]:
    """The attributes column as sorted (name, value) pairs.

    The application may have written the column itself; non-text values are
    read as their JSON text so they still show up (and fingerprint) as written.
    Raises ValueError when the column is not a JSON object.
    """
    data = json.loads(text) if text else {}
    if not isinstance(data, dict):
        raise ValueError("attributes is not a JSON object")
    return tuple(sorted((str(k), v if isinstance(v, str) else json.dumps(v, sort_keys=True)) for k, v in data.items()))


# ───────────────────────────── change dicts → columns ─────────────────────────────


def user_columns(fields: Mapping[str, Any], action: str) -> tuple[dict[str, Any], tuple[Link, ...] | None]:
    """The users-table columns a user change sets, and its new links (None: links unchanged).

    Checks the shape of every field so a malformed plan is refused before any
    row changes.
    """
    if not isinstance(fields, Mapping):
        raise ChangeRejected("after must be an object of user fields")
    allowed = FIELDS_BY_ACTION[action]
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ChangeRejected(f"{action} cannot set {', '.join(unknown)} (it sets only {', '.join(sorted(allowed))})")
    if action in ("create", "adopt"):
        missing = [f for f in USER_FIELDS if f not in fields]
        if missing:
            raise ChangeRejected(f"{action} needs every user field; missing {', '.join(missing)}")
    columns: dict[str, Any] = {}
    links: tuple[Link, ...] | None = None
    for name, value in fields.items():
        if name == "email":
            if not isinstance(value, str) or not value:
                raise ChangeRejected("email must be a non-empty string")
            columns["email"] = value
        elif name == "display_name":
            if not isinstance(value, str):
                raise ChangeRejected("display_name must be a string")
            columns["display_name"] = value
        elif name == "attributes":
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ChangeRejected("attributes must map names to strings")
            columns["attributes"] = attributes_json(value)
        elif name == "team":
            if value is not None and not isinstance(value, str):
                raise ChangeRejected("team must be a team key or null")
            columns["team_key"] = value
        elif name == "status":
            if value not in STATUSES:
                raise ChangeRejected(f"status must be one of {', '.join(STATUSES)}, not {value!r}")
            columns["status"] = value
        elif name == "links":
            if not isinstance(value, (list, tuple)):
                raise ChangeRejected('links must be a list of "directory:anchor" strings')
            links = tuple(sorted({parse_link(v) for v in value}, key=str))
    expected_status = {"reactivate": "active", "deactivate": "deactivated", "create": "active"}.get(action)
    if expected_status and columns.get("status") != expected_status:
        raise ChangeRejected(f"{action} must set status {expected_status}")
    return columns, links


def team_columns(fields: Any, action: str) -> dict[str, Any]:
    """The teams-table columns a team create or update sets."""
    if not isinstance(fields, Mapping):
        raise ChangeRejected("after must be an object of team fields")
    unknown = sorted(set(fields) - set(TEAM_FIELDS))
    if unknown:
        raise ChangeRejected(f"team {action} cannot set {', '.join(unknown)} (it sets only name, parent)")
    if action == "create" and "name" not in fields:
        raise ChangeRejected("team create needs a name")
    columns: dict[str, Any] = {}
    if "name" in fields:
        if not isinstance(fields["name"], str) or not fields["name"]:
            raise ChangeRejected("name must be a non-empty string")
        columns["name"] = fields["name"]
    if "parent" in fields:
        if fields["parent"] is not None and not isinstance(fields["parent"], str):
            raise ChangeRejected("parent must be a team key or null")
        columns["parent_key"] = fields["parent"]
    return columns


# ───────────────────────────── rows → store values ─────────────────────────────


def store_user(
    row: Sequence[Any], links: Sequence[Link], memberships: Iterable[str],
    parsed: dict[str, tuple[tuple[str, str], ...]] | None = None,
) -> StoreUser:
    """A users row (id, key, email, display_name, attributes, team_key, status, managed) as a StoreUser.

    `parsed`, shared across the rows of one read, keeps each distinct attributes text parsed once:
    most users share one of a few department/title combinations.
    """
    user_id, key, email, display_name, attributes, team_key, status, managed = row
    if parsed is None:
        pairs = attributes_from_json(attributes)
    else:
        pairs = parsed.get(attributes)
        if pairs is None:
            pairs = parsed[attributes] = attributes_from_json(attributes)
    return StoreUser(
        key=row_key(key, user_id),
        email=email,
        display_name=display_name or "",
        attributes=pairs,
        team=team_key,
        memberships=frozenset(memberships),
        links=tuple(links) if len(links) < 2 else tuple(sorted(links, key=str)),
        status=status,
        managed=bool(managed),
    )


def store_team(row: Sequence[Any]) -> StoreTeam:
    """A teams row (key, name, parent_key, managed) as a StoreTeam."""
    key, name, parent_key, managed = row
    return StoreTeam(key=key, name=name, parent=parent_key, managed=bool(managed))


# ───────────────────────────── history ─────────────────────────────


HISTORY_COLUMNS = (
    "started_at, finished_at, actor, commit_ref, run_id, policy_digest, plan_digest, counts, outcome, force_reason"
)


def history_values(record: ApplyRecord) -> tuple[Any, ...]:
    """The apply_history values in HISTORY_COLUMNS order."""
    return (
        record.started_at,
        record.finished_at,
        record.actor,
        record.commit,
        record.run_id,
        record.policy_digest,
        record.plan_digest,
        json.dumps(dict(sorted(record.counts.items())), separators=(",", ":")),
        record.outcome,
        record.force_reason,
    )


def history_record(row: Sequence[Any]) -> ApplyRecord:
    """An apply_history row (id, then HISTORY_COLUMNS) as an ApplyRecord."""
    (record_id, started_at, finished_at, actor, commit_ref, run_id, policy_digest, plan_digest, counts, outcome,
     force_reason) = row
    return ApplyRecord(
        started_at=started_at,
        finished_at=finished_at,
        actor=actor,
        commit=commit_ref,
        run_id=run_id,
        policy_digest=policy_digest,
        plan_digest=plan_digest,
        counts=json.loads(counts) if counts else {},
        outcome=outcome,
        force_reason=force_reason,
        id=record_id,
    )
