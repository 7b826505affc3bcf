"""Conversions between SQL rows, checked changes (`..rules.Checked`) and the store values.

No database access and no checks here: the store rules have checked the
changes already. The SQL stores hand rows in and get column values
out, so every SQL engine reads and writes the same shapes. The fingerprint is
computed from the values rather than the rows (`..common.fingerprint`), so it
does not depend on column order, JSON spacing or row ids of managed users.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...model import KnownUser, Link, StoreTeam, StoreUser
from ..common import ApplyRecord, Unchanged

LOCAL_KEY_PREFIX = "local:"
USER_COLUMN = {"team": "team_key"}  # user fields whose column has another name; links have their own table
TEAM_COLUMN = {"parent": "parent_key"}


# ───────────────────────────── keys ─────────────────────────────


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


# ───────────────────────────── checked changes → columns ─────────────────────────────


def user_columns(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The users-table columns for the user fields of a checked change (`..rules.Checked`); links have a table."""
    columns = {USER_COLUMN.get(name, name): value for name, value in fields.items() if name != "links"}
    if "attributes" in columns:
        columns["attributes"] = attributes_json(columns["attributes"])
    return columns


def team_columns(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The teams-table columns for the team fields of a checked change."""
    return {TEAM_COLUMN.get(name, name): value for name, value in fields.items()}


# ───────────────────────────── rows → store values ─────────────────────────────


NO_MEMBERSHIPS: frozenset[str] = frozenset()  # one for every user in no team beyond their own (216 bytes each)


class UserRows:
    """Users rows (id, key, email, display_name, attributes, team_key, status, managed, ...) and their links
    ((directory, anchor) pairs) as StoreUsers, for the rows of one read.

    Each distinct attributes text is parsed once (most users share one of a few department/title
    combinations), and the few team keys and statuses are one string each, not one per row. `known`: the
    people the plan compares the store with, by key; where a user's values equal theirs, theirs are taken
    (one object, not two). Raises ValueError for an attributes column that is not a JSON object.
    """

    def __init__(self, known: Mapping[str, KnownUser] | None = None) -> None:
        self._parsed: dict[str | None, tuple[tuple[str, str], ...]] = {}
        self._teams: dict[str, str] = {}
        self._statuses: dict[str, str] = {}
        self._known = known.get if known is not None else None

    def __call__(self, row: Sequence[Any], links: Sequence[tuple[str, str]], memberships: Iterable[str]) -> StoreUser:
        user_id, key, email, display_name, attributes, team_key, status, managed = row[:8]  # more columns may follow
        pairs = self._parsed.get(attributes)
        if pairs is None:
            pairs = self._parsed[attributes] = attributes_from_json(attributes)
        if team_key is not None:
            team_key = self._teams.setdefault(team_key, team_key)
        status = self._statuses.setdefault(status, status)
        key = row_key(key, user_id)
        display_name = display_name or ""
        same = self._known(key) if self._known is not None else None
        if same is None:
            kept_links = _links(links)
        else:
            key = same.key
            if email == same.email:
                email = same.email
            if display_name == same.display_name:
                display_name = same.display_name
            if pairs == same.attributes:
                pairs = same.attributes
            kept_links = same.links if _same_links(links, same.links) else _links(links)
        return StoreUser(key, email, display_name, pairs, team_key,
                         frozenset(memberships) if memberships else NO_MEMBERSHIPS, kept_links, status, bool(managed))


def _links(pairs: Sequence[tuple[str, str]]) -> tuple[Link, ...]:
    links = tuple(Link(directory, anchor) for directory, anchor in pairs)
    return links if len(links) < 2 else tuple(sorted(links, key=str))


def _same_links(pairs: Sequence[tuple[str, str]], links: tuple[Link, ...]) -> bool:
    """Whether (directory, anchor) pairs, in any order, are exactly `links`, without making Link objects."""
    if len(pairs) != len(links):
        return False
    if len(pairs) == 1:
        (directory, anchor), (link,) = pairs[0], links
        return directory == link.directory and anchor == link.anchor
    return sorted(pairs) == sorted((link.directory, link.anchor) for link in links)


def store_team(row: Sequence[Any]) -> StoreTeam:
    """A teams row (key, name, parent_key, managed) as a StoreTeam."""
    key, name, parent_key, managed = row
    return StoreTeam(key=key, name=name, parent=parent_key, managed=bool(managed))


# ───────────────────────────── history ─────────────────────────────


HISTORY_COLUMNS = (
    "started_at, finished_at, actor, commit_ref, run_id, policy_digest, plan_digest, counts, outcome, force_reason, "
    "unchanged_runs"
)
# a store of schema version 2 or older, read as it is (read-only): its lines have no unchanged_runs, read as 0
HISTORY_COLUMNS_BEFORE_UNCHANGED = HISTORY_COLUMNS.replace("unchanged_runs", "0")

# the applies with no changes since the newest history line, kept in `meta` until the next line takes them over
UNCHANGED_RUNS_KEY = "noop_applies"
UNCHANGED_LATEST_KEY = "last_noop_at"


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
        record.unchanged_runs,
    )


def history_record(row: Sequence[Any]) -> ApplyRecord:
    """An apply_history row (id, then HISTORY_COLUMNS) as an ApplyRecord."""
    (record_id, started_at, finished_at, actor, commit_ref, run_id, policy_digest, plan_digest, counts, outcome,
     force_reason, unchanged_runs) = row
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
        unchanged_runs=int(unchanged_runs or 0),
    )


def unchanged_from_meta(values: Mapping[str, str]) -> Unchanged:
    """The pending count of applies with no changes from the `meta` values (key -> value); a hand-edited
    count that is not a number reads as none."""
    try:
        runs = max(int(values.get(UNCHANGED_RUNS_KEY) or 0), 0)
    except ValueError:
        runs = 0
    return Unchanged(runs, values.get(UNCHANGED_LATEST_KEY) if runs else None)
