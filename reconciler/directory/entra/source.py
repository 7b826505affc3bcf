"""`kind: entra-id`: the tenant's users (and groups) read through Microsoft Graph, or from a snapshot.

The read, in order, so that a typo fails before the long part:
1. each `users.member_of` group is found (by object ID, or by display name: exactly one group),
   and its members through nesting are read (`/groups/{id}/transitiveMembers/microsoft.graph.user`);
2. `/users` with `$select` of only what the policy uses and `$top=999`, `users.filter` as
   `$filter`, every page to the last `@odata.nextLink`;
3. with `groups:`, `/groups` (`groups.filter`) and each group's direct members, for group-teams.

Every user read becomes a `DirectoryEntry` through `entries.EntryBuilder`, as LDAP entries do:
the anchor is the object `id`, the account name the `userPrincipalName`, `accountEnabled: false`
is disabled. Where an LDAP entry has its DN, a user has its userPrincipalName (unique in the
tenant, and what `/users/{id | userPrincipalName}` takes): plans, preview and explain name
people by it, and the desired state only tells entries apart by it; a group's is `groups/{id}`. `onPremisesImmutableId` is always read: it
ties a synced user to its Active Directory entry (`desired.merge`). Users outside member_of
are in `out_of_scope` with the reason. Any failed page or broken chain of pages raises
`DirectoryError` (graph.py): nothing is planned from a partial read.

`read_with_state` reads the tenant through Graph's delta queries when the state kept with the store
allows it (delta.py), and builds the read from the records with the same `_read`; a snapshot is
always read in full.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable

from ...dn import normalise_dn
from ...errors import DirectoryError
from ...model import DirectoryEntry, DirectoryGroup, DirectoryRead, OutOfScope
from ...policy.graph import EXTENSION_ATTRIBUTES, EXTENSION_CONTAINER, graph_name
from ...policy.model import Directory
from ...progress import current
from ..delta import ReadNote, SyncState, now_text, reconciler_version, scope_digest
from ..entries import EntryBuilder, LoweredAttributes, template_attributes
from .readers import GROUP_TYPE, USER_TYPE, LiveGraph, SnapshotGraph

IMMUTABLE_ID = "onPremisesImmutableId"
ALWAYS = ("id", "userPrincipalName", "accountEnabled", IMMUTABLE_ID)
_EXTENSIONS = {name.lower() for name in EXTENSION_ATTRIBUTES}


def open_reader(directory: Directory):
    return SnapshotGraph(directory) if directory.graph is not None and directory.graph.snapshot else LiveGraph(directory)


def user_select(directory: Directory, extra: Iterable[str] = ()) -> list[str]:
    """The user properties to `$select`: what the templates name (Graph's spelling), and what every read needs."""
    names = set(ALWAYS)
    for attribute in (*template_attributes(directory.mapping), *extra):
        if attribute.lower() in _EXTENSIONS:
            names.add(EXTENSION_CONTAINER)
        elif (spelled := graph_name(attribute)) is not None:
            names.add(spelled)
    return sorted(names, key=str.lower)


def text_value(value: Any) -> list[str]:
    """A property's value as the text values an entry holds: booleans as true/false, lists item by item."""
    if value is None:
        return []
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, list):
        return [t for item in value for t in text_value(item)]
    if isinstance(value, (dict,)):
        return []
    return [str(value)]


def attributes_of(user: dict) -> dict[str, list[str]]:
    """A Graph object's properties as an entry's attributes (names lower-cased, values as text); the
    on-premises extension attributes are flattened to extensionattribute1..15. Returned as entries'
    `LoweredAttributes`, so the builder does not lower the names again."""
    attributes: dict[str, list[str]] = LoweredAttributes()
    for key, value in user.items():
        if value is None or key[:1] == "@":
            continue
        kind = type(value)
        if kind is str:  # nearly every property: no conversion
            attributes[key.lower()] = [value]
        elif kind is dict:
            if key.lower() == EXTENSION_CONTAINER.lower():
                for name, inner in value.items():
                    if text_value(inner):
                        attributes[name.lower()] = text_value(inner)
        elif values := text_value(value):
            attributes[key.lower()] = values
    return attributes


def key_of(dn: str) -> str:
    """normalise_dn's answer for what stands for a user's DN: a userPrincipalName (or users/{id}) holds no
    '=', so the LDAP parser would give up on it and lower it; this lowers it without asking the parser."""
    return dn.strip().lower() if "=" not in dn else normalise_dn(dn)


def user_dn(user: dict) -> str:
    """What stands for a user's DN: its userPrincipalName (users/{id} for a snapshot without one)."""
    return str(user.get("userPrincipalName") or f"users/{user.get('id')}")


def group_dn(object_id: str) -> str:
    return f"groups/{object_id}"


class GraphSource:
    """Reads one kind entra-id directory completely, or raises DirectoryError."""

    def __init__(self, directory: Directory, reader_factory=open_reader):
        self.directory = directory
        self._open = reader_factory  # tests hand in a reader
        self.reader = None

    def read(self) -> DirectoryRead:
        reader = self.reader = self._open(self.directory)
        try:
            return self._read(reader)
        finally:
            reader.close()

    def read_with_state(self, kept: SyncState | None, why_not: str, full_read_every: timedelta,
                        now: datetime) -> tuple[DirectoryRead, SyncState, ReadNote]:
        """A delta read through Graph's delta queries from `kept` when it may be trusted, else a full read
        that keeps the delta links and records for the next one (delta.py); the read, the state to keep with
        the next apply, and what the plan says about how the directory was read. A snapshot has no delta:
        it is read in full, and its state holds nothing."""
        directory = self.directory
        if directory.graph is not None and directory.graph.snapshot:
            read = self.read()
            state = SyncState(directory.name, "snapshot", directory.graph.snapshot,
                              scope_digest("entra-id", "snapshot", directory.graph.snapshot), reconciler_version(),
                              now_text(now))
            return read, state, ReadNote(directory.name, "full", "a snapshot is always read in full")
        from .delta import read_with_state

        reader = self.reader = self._open(directory)
        try:
            return read_with_state(self, reader, kept, why_not, full_read_every, now)
        finally:
            reader.close()

    def _read(self, reader) -> DirectoryRead:
        directory = self.directory
        scope = directory.users
        wanted: set[str] | None = None
        if scope.member_of:
            wanted = set()
            for ref in scope.member_of:
                wanted |= reader.transitive_user_ids(reader.group(ref))
        groups, direct = self._groups(reader) if directory.graph.read_groups else ([], {})
        build = EntryBuilder(directory, needed={*template_attributes(directory.mapping), IMMUTABLE_ID.lower()})
        users: dict[str, DirectoryEntry] = {}
        dropped: list[OutOfScope] = []
        reason = f"not a member of {' or '.join(scope.member_of)} (directly or through nested groups)"
        read = 0
        dn_of: dict[str, str] = {}  # user id -> its normalised DN, for the groups' member lists
        report = current().read  # users read, a page at a time, to the progress observer
        for page in reader.users(user_select(directory), scope.filter):
            report(directory.name, len(page))
            for user in page:
                read += 1
                object_id = str(user.get("id") or "")
                if not object_id:
                    raise DirectoryError(f"directory {directory.name}: {reader.source} returned a user without id; "
                                         f"the read cannot anchor it, so nothing is planned")
                dn = user_dn(user)
                key = key_of(dn)
                if key in users:
                    raise DirectoryError(f"directory {directory.name}: {reader.source} returned the user {object_id} "
                                         f"twice; the pages overlap, so the read is not trusted")
                entry = build(dn, attributes_of(user), "/users", direct.get(object_id.lower(), ()))
                dn_of[object_id.lower()] = key
                if wanted is not None and object_id.lower() not in wanted:
                    dropped.append(OutOfScope(directory.name, dn, entry.anchor, reason))
                else:
                    users[key] = entry
        return DirectoryRead(
            directory=directory.name,
            users=[users[key] for key in sorted(users)],
            groups=self._group_entries(groups, dn_of),
            out_of_scope=sorted(dropped, key=lambda o: key_of(o.dn)),
            entries_read=read,
        )

    def _groups(self, reader) -> tuple[list[tuple[dict, list[tuple[bool, str]]]], dict[str, set[str]]]:
        """The groups scope with each group's direct members as (is a group, object id), and each user's
        direct groups (user id -> normalised group DNs), read before the users that carry them."""
        groups: list[tuple[dict, list[tuple[bool, str]]]] = []
        direct: dict[str, set[str]] = {}
        for group in reader.groups(self.directory.groups.filter):
            key = normalise_dn(group_dn(str(group["id"])))
            members: list[tuple[bool, str]] = []
            for member in reader.members(group):
                member_id = str(member.get("id") or "").lower()
                kind = member.get("@odata.type")
                if not member_id:
                    continue
                if kind == GROUP_TYPE:
                    members.append((True, member_id))
                elif kind in (USER_TYPE, None):  # devices, service principals, contacts are no people
                    members.append((False, member_id))
                    direct.setdefault(member_id, set()).add(key)
            groups.append((group, members))
        return groups, direct

    def _group_entries(self, groups, dn_of: dict[str, str]) -> dict[str, DirectoryGroup]:
        """The groups keyed by normalised DN, their members named as the entries are (users by DN, groups/{id})."""
        found: dict[str, DirectoryGroup] = {}
        for group, members in groups:
            object_id = str(group["id"])
            dn = group_dn(object_id)
            names = frozenset(normalise_dn(group_dn(m)) if is_group else dn_of.get(m, key_of(f"users/{m}"))
                              for is_group, m in members)
            found[normalise_dn(dn)] = DirectoryGroup(self.directory.name, dn, object_id,
                                                     str(group.get("displayName") or object_id), names)
        return dict(sorted(found.items()))
