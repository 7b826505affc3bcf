"""Delta reads of kind entra-id: Microsoft Graph's delta queries, applied to the records kept with the store.

What is kept (`reconciler.directory.delta.SyncState`, method "graph-delta", server: the tenant ID, the
access token's `tid`):
- search "users": the `@odata.deltaLink` of `/users/delta` and every user that users.filter let through
  (members of users.member_of or not: the others are the read's out_of_scope), keyed by object id (lower
  case), as Graph returned it with only the selected properties, nulls left out;
- search "groups" (a directory with `groups:`): the link of `/groups/delta` (with `members`) and each group
  groups.filter lets through, with its direct users and groups as `members` ({"@odata.type", "id"}).

A full read first asks for the latest delta links (`$deltatoken=latest`, the "sync from now" Graph offers for
directory objects), then reads as `GraphSource.read()` does and keeps what it returned; so the next delta
reports every change made after the full read began. Changes made while it ran are reported again, which
is harmless: a change sets properties, it never adds to them.

A delta read follows each kept link (with `Prefer: return=minimal`) to its new delta link:
- an item with `@removed` (`reason` "changed": soft-deleted, restorable; "deleted": gone) leaves the records;
- any other item's properties are merged into the kept record: Graph sends an updated object's changed
  properties, a property cleared as null (documented for both answers, minimal or not, so the merge is
  right for either). An object that is not kept (a new one, or one the filter left out last time) is taken
  as it comes when the item carries every selected property, else read whole with
  `/users/delta?$filter=id eq '…' or id eq '…'` (50 ids a request, the documented limit; a round without a
  token answers with the objects' current state). A group that is not kept is always read whole: in an
  update, `members@delta` carries only the changes;
- `members@delta` of a kept group adds members, or removes those marked `@removed`; the same group may come
  in several items (a large membership is split), and the same change twice (replays): both are harmless;
- users.filter and groups.filter are then evaluated here (`reconciler.odata`, Graph's $filter on objects
  as Graph returns them) on every object the round touched: `/users/delta` and `/groups/delta` take no
  $filter but `id eq`, so the rounds are unfiltered and a user who stops matching leaves the records. A
  filter this cannot evaluate (a clause `reconciler.odata` does not support, a property outside the
  catalogue of properties a delta reports: `TRACKED_USER`, `TRACKED_GROUP`) makes every read of the
  directory a full one, and the plan says why (`delta_refusal`).

users.member_of is read as a full read reads it, every time: each group's transitiveMembers (ids only, a
request per 999 members). A `/groups/delta` limited to the member_of groups' ids cannot follow nesting (a
group nested into one of them later brings its members, and the ids of a delta link are fixed), while the
ids cost little next to the users.

The DirectoryRead is then built from the records by `GraphSource._read`, the code of a full read, so a delta
read gives a full read's DirectoryRead whenever Graph reported its changes completely. Refused links (410
Gone, `syncStateNotFound`, an unknown token) mean a full read (`TokenRefused`); a failed page or a broken
chain of pages is a `DirectoryError`, as in a full read: nothing is planned from a partial delta.
Documents: https://learn.microsoft.com/en-us/graph/delta-query-overview, .../graph/api/user-delta,
.../graph/api/group-delta, .../graph/delta-query-groups.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator

from ...odata import FilterError, Unsupported, parse
from ...policy.graph import EXTENSION_CONTAINER, USER_PROPERTIES
from ...policy.model import Directory
from ..delta import (Delta, ReadNote, SearchState, SyncState, TokenRefused, now_text, reconciler_version,
                     scope_digest, usable)
from .graph import PAGE_SIZE, GraphClient
from .readers import GROUP_TYPE, GROUPS, USER_TYPE, USERS, quoted

METHOD = "graph-delta"
BATCH = 50  # ids per `$filter=id eq … or …` of a delta query (Graph's documented limit)
# the properties a delta reports changes of, whose values a filter may read here: the user properties the
# policy may name (policy/graph.py), and the group properties held in the directory itself
TRACKED_USER = {name.lower(): name for name in (*USER_PROPERTIES, EXTENSION_CONTAINER)}
TRACKED_GROUP = {name.lower(): name for name in (
    "id", "classification", "createdDateTime", "description", "displayName", "groupTypes", "isAssignableToRole",
    "mail", "mailEnabled", "mailNickname", "membershipRule", "membershipRuleProcessingState", "onPremisesDomainName",
    "onPremisesSamAccountName", "onPremisesSecurityIdentifier", "onPremisesSyncEnabled", "securityEnabled",
    "securityIdentifier", "visibility")}
Match = Callable[[Any], bool]


# ── what a directory's delta reads ask ───────────────────────────────────────────────────

@dataclass(frozen=True)
class Spec:
    """The properties a delta read selects (the full read's, and what the filters read), the filters as
    predicates, why the directory cannot be read by deltas (None if it can), and the scope digest."""

    user_select: list[str]
    group_select: list[str]  # without members, which /groups/delta is asked for besides
    users_match: Match | None
    groups_match: Match | None
    refusal: str | None
    scope: str


def spec_of(directory: Directory) -> Spec:
    from .source import user_select  # source imports this module

    refusals: list[str] = []
    users_match, user_extra = _filter(directory.users.filter, "users.filter", TRACKED_USER, refusals)
    select = user_select(directory)
    for name in user_extra:
        if name.lower() not in {s.lower() for s in select}:
            select.append(name)
    select.sort(key=str.lower)
    read_groups = bool(directory.graph and directory.graph.read_groups)
    groups_match, group_extra = (_filter(directory.groups.filter, "groups.filter", TRACKED_GROUP, refusals)
                                 if read_groups else (None, []))
    group_select = sorted({"id", "displayName", *group_extra}, key=str.lower)
    scope = scope_digest("entra-id", METHOD, select, directory.users.filter, list(directory.users.member_of),
                         read_groups, group_select if read_groups else None,
                         directory.groups.filter if read_groups else None)
    refusal = (refusals[0] + "; Graph's delta queries filter by object id only, so every read of this directory is "
               "a full one") if refusals else None
    return Spec(select, group_select, users_match, groups_match, refusal, scope)


def delta_refusal(directory: Directory) -> str | None:
    """Why `directory` cannot be read by deltas (its filter cannot be evaluated on what Graph's delta reports),
    or None. For `validate`, or a plan's note."""
    return spec_of(directory).refusal


def _filter(text: str, where: str, tracked: dict[str, str], refusals: list[str]) -> tuple[Match | None, list[str]]:
    """The filter as a predicate and the properties it reads (Graph's spelling); a refusal when it cannot be
    evaluated on the records."""
    if not text:
        return None, []
    try:
        compiled = parse(text)
    except Unsupported as error:
        refusals.append(f"{where} {text!r} cannot be evaluated on the changes Graph reports ({error.message})")
        return None, []
    except FilterError as error:
        refusals.append(f"{where} {text!r} is not a filter this version can evaluate ({error.message})")
        return None, []
    names: list[str] = []
    unknown: list[str] = []
    for name in sorted(compiled.properties, key=str.lower):
        spelled = tracked.get(name.lower())
        if spelled is None:
            unknown.append(name)
        else:
            names.append(spelled)
    if unknown:
        refusals.append(f"{where} reads {', '.join(unknown)}, which a delta read does not follow")
        return None, []
    return compiled.matches, names


# ── records ──────────────────────────────────────────────────────────────────────────────

def record_of(item: dict) -> dict:
    """A Graph object as kept: its properties without annotations (`@odata.type`, `members@delta`) and nulls."""
    return {key: value for key, value in item.items() if value is not None and "@" not in key}


def merged(base: dict, item: dict) -> dict:
    """`base` with an item's properties set over it (null: the property is cleared)."""
    result = dict(base)
    for key, value in item.items():
        if "@" in key or key == "members":
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def _member(entry: Any) -> tuple[str, dict] | None:
    """(id, kept form) of a member a full read counts (users and groups; devices and the like are no people)."""
    if not isinstance(entry, dict):
        return None
    object_id, kind = str(entry.get("id") or ""), entry.get("@odata.type")
    if not object_id or kind not in (USER_TYPE, GROUP_TYPE, None):
        return None
    return object_id.lower(), {"@odata.type": kind or USER_TYPE, "id": object_id}


def _with_members(record: dict, members: dict[str, dict]) -> dict:
    record["members"] = [members[key] for key in sorted(members)]
    return record


def _members_applied(record: dict, changes: Any) -> dict[str, dict]:
    members = {str(m["id"]).lower(): m for m in record.get("members") or ()}
    for change in changes or ():
        found = _member(change)
        if found is None:
            continue
        if "@removed" in change:
            members.pop(found[0], None)
        else:
            members[found[0]] = found[1]
    return members


class Recorder:
    """A reader that keeps, as it passes them on, the users and groups a full read returns."""

    def __init__(self, reader, spec: Spec):
        self.reader, self.spec = reader, spec
        self.source = reader.source
        self.users_records: dict[str, dict] = {}
        self.groups_records: dict[str, dict] = {}

    def users(self, select: list[str], filter: str) -> Iterator[list[dict]]:
        for page in self.reader.users(self.spec.user_select, filter):  # the full read's properties and the filter's
            for user in page:
                key = str(user.get("id") or "").lower()
                if key:
                    self.users_records[key] = record_of(user)
            yield page

    def groups(self, filter: str) -> list[dict]:
        return self.reader.groups(filter, self.spec.group_select)

    def members(self, group: dict) -> list[dict]:
        found = self.reader.members(group)
        members = dict(filter(None, map(_member, found)))
        self.groups_records[str(group["id"]).lower()] = _with_members(record_of(group), members)
        return found

    def group(self, ref: str) -> dict:
        return self.reader.group(ref)

    def transitive_user_ids(self, group: dict) -> set[str]:
        return self.reader.transitive_user_ids(group)


class FromRecords:
    """A reader answering the users and groups questions from records; member_of is asked of Graph."""

    def __init__(self, reader, users: dict[str, dict], groups: dict[str, dict]):
        self.reader, self.source = reader, reader.source
        self.users_records, self.groups_records = users, groups

    def users(self, select: list[str], filter: str) -> Iterator[list[dict]]:
        values = [self.users_records[key] for key in sorted(self.users_records)]
        for start in range(0, len(values), PAGE_SIZE):
            yield values[start:start + PAGE_SIZE]

    def groups(self, filter: str) -> list[dict]:
        return [self.groups_records[key] for key in sorted(self.groups_records)]

    def members(self, group: dict) -> list[dict]:
        return list(group.get("members") or ())

    def group(self, ref: str) -> dict:
        return self.reader.group(ref)

    def transitive_user_ids(self, group: dict) -> set[str]:
        return self.reader.transitive_user_ids(group)


# ── Graph's delta queries ────────────────────────────────────────────────────────────────

def latest_link(client: GraphClient, kind: str, select: list[str], permission: str) -> str:
    """The delta link from which a delta reports every change made from now on (`$deltatoken=latest`)."""
    from ...errors import DirectoryError

    what = f"asking /{kind}/delta for the latest delta link"
    rounds = client.delta_round(f"{kind}/delta", what, permission, {"$select": ",".join(select), "$deltatoken": "latest"})
    try:
        for _page in rounds:
            pass
    except TokenRefused as refused:
        raise DirectoryError(f"directory {client.directory.name}: {what}: Graph refused it ({refused})") from None
    assert rounds.link is not None
    return rounds.link


def _kept_link(client: GraphClient, kept: SyncState, name: str) -> str:
    search = kept.searches.get(name)
    if search is None or not search.token:
        raise TokenRefused(f"the kept state has no delta link for {name}")
    if not client.ours(search.token) or f"/{name}/" not in search.token.split("?")[0] + "/":
        raise TokenRefused(f"the kept delta link for {name} is not one of {client.root}'s")
    return search.token


def _key(client: GraphClient, item: Any, where: str) -> str:
    key = str(item.get("id") or "").lower() if isinstance(item, dict) else ""
    if not key:
        raise client._error(where, "Graph returned an object without id in a delta; the change cannot be applied, so "
                                   "nothing is planned")
    return key


def _split(overlay: dict[str, dict | None], matches: Match | None, link: str) -> Delta:
    """The touched objects as a Delta: those that exist and match the filter changed, the others removed."""
    changed: dict[str, dict] = {}
    removed: set[str] = set()
    for key, record in overlay.items():
        if record is not None and (matches is None or matches(record)):
            changed[key] = record
        else:
            removed.add(key)
    return Delta(changed, frozenset(removed), None, link)


def read_whole(client: GraphClient, kind: str, select: list[str], ids: dict[str, str], permission: str,
               members: bool = False) -> dict[str, dict | None]:
    """The current state of objects (lower-cased id -> original id) through `/{kind}/delta?$filter=id eq …`, a
    round without a token, 50 ids at a time; None for those that are gone."""
    found: dict[str, dict | None] = {}
    keys = sorted(ids)
    asked = ",".join(select + (["members"] if members else []))
    for start in range(0, len(keys), BATCH):
        batch = keys[start:start + BATCH]
        wanted = set(batch)
        what = f"reading {len(batch)} changed {kind} whole (/{kind}/delta with $filter id eq)"
        rounds = client.delta_round(f"{kind}/delta", what, permission, {
            "$select": asked, "$filter": " or ".join(f"id eq {quoted(ids[key])}" for key in batch)})
        for page in rounds:
            for item in page:
                key = _key(client, item, what)
                if key not in wanted:
                    continue
                if "@removed" in item:
                    found[key] = None
                    continue
                record = merged(found.get(key) or {}, item)
                if members:
                    _with_members(record, _members_applied(found.get(key) or {}, item.get("members@delta")))
                found[key] = record
    return found


def user_changes(client: GraphClient, link: str, records: dict[str, dict], spec: Spec) -> Delta:
    """What changed among the users since `link`, as a Delta of the kept records."""
    overlay: dict[str, dict | None] = {}
    partial: dict[str, str] = {}  # lower-cased id -> id, of objects whose current state must be read whole
    wanted = {name.lower() for name in spec.user_select}
    what = "reading /users/delta (the changes since the last read)"
    rounds = client.delta_round(link, what, USERS, minimal=True, kept=True)
    for page in rounds:
        for item in page:
            key = _key(client, item, what)
            if "@removed" in item:
                overlay[key] = None
                partial.pop(key, None)
                continue
            base = overlay[key] if key in overlay else records.get(key)
            if base is None:
                overlay[key] = record_of(item)
                if not wanted <= {name.lower() for name in item}:
                    partial[key] = str(item["id"])
            else:
                overlay[key] = merged(base, item)
    assert rounds.link is not None
    if partial:
        whole = read_whole(client, "users", spec.user_select, partial, USERS)
        for key in partial:
            overlay[key] = whole.get(key)
    return _split(overlay, spec.users_match, rounds.link)


def group_changes(client: GraphClient, link: str, records: dict[str, dict], spec: Spec) -> Delta:
    """What changed among the groups and their direct members since `link`, as a Delta of the kept records."""
    overlay: dict[str, dict | None] = {}
    unknown: dict[str, str] = {}  # groups not kept: read whole
    what = "reading /groups/delta (the changes since the last read)"
    rounds = client.delta_round(link, what, GROUPS, minimal=True, kept=True)
    for page in rounds:
        for item in page:
            key = _key(client, item, what)
            if "@removed" in item:
                overlay[key] = None
                unknown.pop(key, None)
                continue
            if key in unknown:
                continue
            base = overlay[key] if key in overlay else records.get(key)
            if base is None:
                unknown[key] = str(item["id"])
                continue
            overlay[key] = _with_members(merged(base, item), _members_applied(base, item.get("members@delta")))
    assert rounds.link is not None
    if unknown:
        whole = read_whole(client, "groups", spec.group_select, unknown, GROUPS, members=True)
        for key in unknown:
            overlay[key] = whole.get(key)
    return _split(overlay, spec.groups_match, rounds.link)


# ── the read ─────────────────────────────────────────────────────────────────────────────

def read_with_state(source, reader, kept: SyncState | None, why_not: str, full_read_every: timedelta,
                    now: datetime):
    """`GraphSource.read_with_state` for a tenant: (DirectoryRead, SyncState, ReadNote). `reader` is a LiveGraph."""
    directory = source.directory
    name = directory.name
    spec = spec_of(directory)
    read_groups = bool(directory.graph.read_groups)
    tenant = reader.tenant_id()
    trusted, reason = usable(kept, why_not, directory=name, method=METHOD, scope=spec.scope,
                             full_read_every=full_read_every, now=now, server=tenant)
    if spec.refusal is not None:
        trusted, reason = False, spec.refusal
    if trusted and kept is not None:
        client = reader.client
        try:
            deltas = {"users": user_changes(client, _kept_link(client, kept, "users"),
                                            kept.searches["users"].records, spec)}
            if read_groups:
                deltas["groups"] = group_changes(client, _kept_link(client, kept, "groups"),
                                                 kept.searches["groups"].records, spec)
        except TokenRefused as refused:
            reason = f"Graph refused the delta link ({refused}): read in full"
        else:
            searches: dict[str, SearchState] = {}
            touched = 0
            for search, delta in deltas.items():
                records, count = delta.applied_to(kept.searches[search].records)
                searches[search] = SearchState(delta.token, records)
                touched += count
            read = source._read(FromRecords(reader, searches["users"].records,
                                            searches["groups"].records if read_groups else {}))
            state = SyncState(name, METHOD, tenant, spec.scope, reconciler_version(), kept.full_read_at, searches,
                              kept.changes_since_full + touched)
            return read, state, ReadNote(name, "delta", f"changes since the last apply; last full read "
                                                        f"{kept.full_read_at}", touched)
    if spec.refusal is not None:  # nothing to keep: the next read is a full one too
        state = SyncState(name, METHOD, tenant, spec.scope, reconciler_version(), now_text(now))
        return source._read(reader), state, ReadNote(name, "full", reason)
    client = reader.client
    links = {"users": latest_link(client, "users", spec.user_select, USERS)}
    if read_groups:
        links["groups"] = latest_link(client, "groups", [*spec.group_select, "members"], GROUPS)
    recorder = Recorder(reader, spec)
    read = source._read(recorder)
    searches = {"users": SearchState(links["users"], recorder.users_records)}
    if read_groups:
        searches["groups"] = SearchState(links["groups"], recorder.groups_records)
    state = SyncState(name, METHOD, tenant, spec.scope, reconciler_version(), now_text(now), searches)
    return read, state, ReadNote(name, "full", reason)
