"""The two ways a kind entra-id directory is read, with one face: `LiveGraph` asks Microsoft Graph,
`SnapshotGraph` answers the same questions from an offline snapshot file.

The snapshot is JSON as Graph returns it:

    {"users":  [ {user objects, as GET /users returns them}, ... ],
     "groups": [ {group objects, as GET /groups returns them,
                  "members": [ {"@odata.type": "#microsoft.graph.user", "id": "..."}, ... ]}, ... ]}

`members` of a group is the `value` of GET /groups/{id}/members (direct members, users and groups);
nesting is followed here, as Graph's transitiveMembers would. Filters are evaluated by
`reconciler.odata`, as Graph evaluates them.
"""
from __future__ import annotations

import json
import re
from typing import Iterator

from ...errors import DirectoryError
from ...odata import FilterError, Unsupported, needs_advanced_query, parse
from ...policy.model import Directory
from ..membership import Membership
from .graph import PAGE_SIZE, GraphClient, NotFound

GUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
USERS, GROUPS = "User.Read.All", "GroupMember.Read.All"
USER_TYPE, GROUP_TYPE = "#microsoft.graph.user", "#microsoft.graph.group"


def quoted(text: str) -> str:
    """An OData string literal."""
    return "'" + text.replace("'", "''") + "'"


class LiveGraph:
    """Microsoft Graph, through `GraphClient`."""

    def __init__(self, directory: Directory, client: GraphClient | None = None):
        self.directory = directory
        self.client = client or GraphClient(directory)
        self.source = self.client.source

    def close(self) -> None:
        self.client.close()

    def tenant_id(self) -> str:
        """The ID of the tenant that answers (the access token's `tid`; the policy's tenant if it has none)."""
        from .auth import _value, token_tenant

        return token_tenant(self.client.token()) or str(_value(self.directory.graph.tenant) or "").lower()

    def users(self, select: list[str], filter: str) -> Iterator[list[dict]]:
        params = {"$select": ",".join(select), "$top": str(PAGE_SIZE)}
        if filter:
            params["$filter"] = filter
        what = f"reading /users" + (f" with $filter {filter}" if filter else "")
        yield from self.client.pages("users", what, USERS, params, advanced=bool(filter) and needs_advanced_query(filter))

    def group(self, ref: str) -> dict:
        """The group `ref` names: its object ID, or else its display name (exactly one group must have it)."""
        where = f"users.member_of {ref!r}"
        if GUID.match(ref):
            try:
                return self.client.get(f"groups/{ref}", f"reading group {ref} ({where})", GROUPS,
                                       {"$select": "id,displayName"})
            except NotFound:
                raise DirectoryError(f"directory {self.directory.name}: {where}: no group has the object ID {ref}; "
                                     f"check it in the Entra admin center (Groups → the group → Object ID)") from None
        found = self.client.collect("groups", f"looking up the group {ref!r} ({where})", GROUPS,
                                    {"$filter": f"displayName eq {quoted(ref)}", "$select": "id,displayName"})
        return only_group(self.directory, ref, found)

    def transitive_user_ids(self, group: dict) -> set[str]:
        ids: set[str] = set()
        what = f"reading the members of {group.get('displayName') or group['id']} (transitiveMembers)"
        for page in self.client.pages(f"groups/{group['id']}/transitiveMembers/microsoft.graph.user", what, GROUPS,
                                      {"$select": "id", "$top": str(PAGE_SIZE)}):
            ids.update(str(m["id"]).lower() for m in page if m.get("id"))
        return ids

    def groups(self, filter: str, select: list[str] | None = None) -> list[dict]:
        params = {"$select": ",".join(select or ("id", "displayName")), "$top": str(PAGE_SIZE)}
        if filter:
            params["$filter"] = filter
        return self.client.collect("groups", "reading /groups" + (f" with $filter {filter}" if filter else ""), GROUPS,
                                   params, advanced=bool(filter) and needs_advanced_query(filter))

    def members(self, group: dict) -> list[dict]:
        return self.client.collect(f"groups/{group['id']}/members",
                                   f"reading the members of {group.get('displayName') or group['id']}", GROUPS,
                                   {"$select": "id", "$top": str(PAGE_SIZE)})

    # ── single objects, for explain ──

    def user(self, object_id: str, select: list[str]) -> dict | None:
        """By object ID or userPrincipalName (GET /users/{id | userPrincipalName})."""
        from urllib.parse import quote

        try:
            return self.client.get(f"users/{quote(object_id, safe='@')}", f"reading user {object_id}", USERS,
                                   {"$select": ",".join(select)})
        except NotFound:
            return None

    def find_users(self, text: str, select: list[str]) -> list[dict]:
        value = quoted(text)
        wanted = f"mail eq {value} or userPrincipalName eq {value} or displayName eq {value}"
        return self.client.collect("users", f"looking for {text!r}", USERS,
                                   {"$filter": wanted, "$select": ",".join(select), "$top": "20"})

    def member_of(self, object_id: str, kind: str) -> list[dict]:
        """The groups an object (`users` or `groups`) is a direct member of."""
        try:
            return self.client.collect(f"{kind}/{object_id}/memberOf/microsoft.graph.group",
                                       f"reading the groups of {object_id}", GROUPS, {"$select": "id,displayName"})
        except NotFound:
            return []


class SnapshotGraph:
    """An offline snapshot answering as Graph would."""

    def __init__(self, directory: Directory):
        graph = directory.graph
        assert graph is not None and graph.snapshot
        self.directory = directory
        self.path = graph.snapshot
        self.source = f"the snapshot {self.path}"
        self._users, self._groups = load_snapshot(self.path)
        self._by_id = {str(g["id"]).lower(): g for g in self._groups}
        self._graph: Membership | None = None

    def close(self) -> None:
        pass

    def _filter(self, text: str, what: str):
        try:
            return parse(text).matches
        except Unsupported as error:
            raise DirectoryError(f"directory {self.directory.name}: {what} {text!r}: {error.message}, so the snapshot "
                                 f"cannot be read with it; Graph evaluates it when the tenant is read") from None
        except FilterError as error:
            raise DirectoryError(f"directory {self.directory.name}: {what} {text!r} is not a filter Graph would take: "
                                 f"{error.message} (character {error.offset + 1})") from None

    def users(self, select: list[str], filter: str) -> Iterator[list[dict]]:
        matches = self._filter(filter, "users.filter") if filter else None
        found = [u for u in self._users if matches is None or matches(u)]
        for start in range(0, len(found), PAGE_SIZE):
            yield found[start:start + PAGE_SIZE]

    def group(self, ref: str) -> dict:
        if GUID.match(ref) and ref.lower() in self._by_id:
            return self._by_id[ref.lower()]
        if GUID.match(ref):
            raise DirectoryError(f"directory {self.directory.name}: users.member_of {ref!r}: no group in {self.path} has "
                                 f"this object ID")
        named = [g for g in self._groups if str(g.get("displayName", "")).casefold() == ref.casefold()]
        return only_group(self.directory, ref, named)

    def membership(self) -> Membership:
        if self._graph is None:
            graph = Membership()
            for group in self._groups:
                key = "groups/" + str(group["id"]).lower()
                for member in group.get("members") or ():
                    kind = "groups/" if member.get("@odata.type") == GROUP_TYPE else "users/"
                    graph.add(key, kind + str(member.get("id", "")).lower())
            self._graph = graph
        return self._graph

    def transitive_user_ids(self, group: dict) -> set[str]:
        key = "groups/" + str(group["id"]).lower()
        return {member[6:] for member in self.membership().all_members(key) if member.startswith("users/")}

    def groups(self, filter: str, select: list[str] | None = None) -> list[dict]:
        matches = self._filter(filter, "groups.filter") if filter else None
        return [g for g in self._groups if matches is None or matches(g)]

    def members(self, group: dict) -> list[dict]:
        return list(group.get("members") or ())

    def user(self, object_id: str, select: list[str]) -> dict | None:
        """By object ID or userPrincipalName, as GET /users/{id | userPrincipalName}."""
        wanted = object_id.lower()
        return next((u for u in self._users if wanted in (str(u.get("id", "")).lower(),
                                                         str(u.get("userPrincipalName") or "").lower())), None)

    def find_users(self, text: str, select: list[str]) -> list[dict]:
        wanted = text.casefold()
        return [u for u in self._users
                if any(str(u.get(k) or "").casefold() == wanted for k in ("mail", "userPrincipalName", "displayName"))]

    def member_of(self, object_id: str, kind: str) -> list[dict]:
        key = f"{kind}/{object_id.lower()}"
        return [self._by_id[g[7:]] for g in sorted(self.membership().direct_groups(key)) if g[7:] in self._by_id]


def only_group(directory: Directory, ref: str, found: list[dict]) -> dict:
    """The one group a member_of entry names by display name: none or several is an error."""
    where = f"directory {directory.name}: users.member_of {ref!r}"
    if not found:
        raise DirectoryError(f"{where}: no group has this display name or object ID; check its spelling (a missing "
                             f"group would put everyone out of scope)")
    if len(found) > 1:
        ids = ", ".join(sorted(str(g.get("id", "?")) for g in found))
        raise DirectoryError(f"{where}: {len(found)} groups have this display name ({ids}); name the one meant by "
                             f"its object ID")
    return found[0]


def load_snapshot(path: str) -> tuple[list[dict], list[dict]]:
    """(users, groups) of a snapshot file; a file that is not one is a DirectoryError at FILE[:LINE:COL]."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as error:
        raise DirectoryError(f"{path}: the Graph snapshot cannot be read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise DirectoryError(f"{path}: the Graph snapshot is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise DirectoryError(f"{path}:{error.lineno}:{error.colno}: not JSON: {error.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("users"), list):
        raise DirectoryError(f"{path}: a Graph snapshot is a JSON object with users (a list of user objects as Graph "
                             f"returns them) and optionally groups")
    groups = data.get("groups", [])
    if not isinstance(groups, list):
        raise DirectoryError(f"{path}: groups must be a list of group objects")
    for what, objects in (("users", data["users"]), ("groups", groups)):
        seen: set[str] = set()
        for index, item in enumerate(objects):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"].strip():
                raise DirectoryError(f"{path}: {what}[{index}] has no id (every object of a Graph read has one)")
            key = item["id"].lower()
            if key in seen:
                raise DirectoryError(f"{path}: {what}[{index}]: the id {item['id']} appears twice")
            seen.add(key)
    return data["users"], groups
