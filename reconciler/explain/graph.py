"""`reconciler explain` for a kind entra-id directory: the person found in Microsoft Graph (or the
snapshot), whatever the plan read, and the checks that differ from LDAP's.

- finding: by mail, userPrincipalName, display name or an smtp: proxy address (one filtered
  request to /users), or by object ID (`users/{id}`, or the ID itself);
- search base: Entra ID has none; every user of the tenant is read from /users;
- filter: the OData filter is evaluated whole, on the user as Graph returns it, by
  `reconciler.odata` (what Graph does with it during the plan); the clause-by-clause
  evaluation `explain` gives LDAP filters is LDAP-specific, and the check says so. A filter the
  evaluator here does not know is said to be evaluated by Graph only;
- member_of: the groups walked upwards from the user through `memberOf`, to name the nesting.
"""
from __future__ import annotations

from collections import deque
from typing import Mapping

from ..directory.entra.readers import GUID
from ..directory.entra.source import attributes_of, open_reader, user_dn, user_select
from ..directory.filters import Clause, InvalidFilter
from ..dn import normalise_dn
from ..errors import ReconcilerError
from ..odata import FilterError, Unsupported, parse
from ..policy.model import Directory
from .checks import Check
from .lookup import GROUP_WALK_LIMIT, Found, mapped_email
from .query import Query, matches, names_of

LOOKED_UP = ("mail", "userPrincipalName", "displayName", "proxyAddresses", "userType", "accountEnabled")


class GraphLookup:
    def __init__(self, directory: Directory):
        self.directory = directory
        self.reader = open_reader(directory)
        self.source = self.reader.source
        self.truncated = False
        filtered: set[str] = set()
        try:
            filtered = parse(directory.users.filter).properties if directory.users.filter else set()
        except FilterError:
            pass
        self.select = user_select(directory, (*LOOKED_UP, *filtered))
        self._spelled: dict[str, str] = {}

    def close(self) -> None:
        self.reader.close()

    def _found(self, user: dict, matched_by: list[str]) -> Found:
        attributes = {name: tuple(values) for name, values in attributes_of(user).items()}
        return Found(self.directory, user_dn(user), attributes, matched_by, user)

    def find(self, query: Query, also: Mapping[str, tuple[str, list[str]]]) -> list[Found]:
        found: dict[str, Found] = {}
        if self.directory.name in query.directories and query.form == "name":
            text = query.text.strip()
            object_id = text[6:] if text.lower().startswith("users/") else text
            if GUID.match(object_id):
                user = self.reader.user(object_id, self.select)
                if user is not None:
                    found[normalise_dn(user_dn(user))] = self._found(user, ["object ID"])
            else:
                for user in self.reader.find_users(text, self.select):
                    entry = self._found(user, [])
                    email = mapped_email(self.directory, entry.attributes)
                    entry.matched_by = matches(query, self.directory, entry.dn, entry.attributes, [email] if email else [])
                    if entry.matched_by:
                        found.setdefault(entry.key, entry)
        for key, (dn, how) in also.items():  # the plan's entries by their DN: the userPrincipalName
            if key not in found:
                user = self.reader.user(dn[6:] if dn.lower().startswith("users/") else dn, self.select)
                if user is not None:
                    found[key] = self._found(user, how)
        return [found[key] for key in sorted(found)]

    def search_base(self, entry: Found) -> Check:
        return Check("search_base", True, "Entra ID has no search bases: every user of the tenant is read from /users; "
                                          "the OData filter is evaluated whole, as Microsoft Graph does (the clause-by-"
                                          "clause evaluation explain gives LDAP filters is LDAP-specific)",
                     {"scope": "tenant", "bases": [{"base": "/users", "under": True, "below": True}]})

    def clause(self, entry: Found) -> Clause:
        """The whole filter as one clause, evaluated on the user as Graph returns it."""
        text = self.directory.users.filter
        try:
            compiled = parse(text)
        except Unsupported as error:
            raise InvalidFilter(f"{error.message}: Microsoft Graph evaluates this OData filter; explain evaluates "
                                f"LDAP filters clause by clause, and OData filters only as far as it knows them") from None
        except FilterError as error:
            raise InvalidFilter(error.message) from None
        properties = sorted(compiled.properties)
        return Clause(text, "", bool(compiled.matches(entry.raw)), (),
                      properties[0] if len(properties) == 1 else None)

    def _group_id(self, ref: str) -> tuple[str, str] | None:
        try:
            group = self.reader.group(ref)
        except ReconcilerError:
            return None
        return str(group["id"]).lower(), str(group.get("displayName") or group["id"])

    def path_to(self, entry: Found, group: str) -> list[str] | None:
        """The groups from the user's direct group up to `group` (display names), walked through memberOf."""
        target = self._group_id(group)
        if target is None:
            return None
        previous: dict[str, str | None] = {}
        names: dict[str, str] = {}
        start = str(entry.raw.get("id", "")).lower()
        queue = deque()
        for parent in self.reader.member_of(start, "users"):
            key = str(parent["id"]).lower()
            names[key] = str(parent.get("displayName") or key)
            if key not in previous:
                previous[key] = None
                queue.append(key)
        while queue and len(previous) <= GROUP_WALK_LIMIT:
            node = queue.popleft()
            if node == target[0]:
                path = [node]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])  # type: ignore[arg-type]
                return [names[key] for key in reversed(path)]
            for parent in self.reader.member_of(node, "groups"):
                key = str(parent["id"]).lower()
                names.setdefault(key, str(parent.get("displayName") or key))
                if key not in previous:
                    previous[key] = node
                    queue.append(key)
        return None

    def how_to(self, entry: Found, group: str) -> list[str | None]:
        path = self.path_to(entry, group) or []
        return [None] * len(path)

    def names(self, query: Query) -> list[str]:
        """What a close match is looked for among: every user of a snapshot; a live tenant is not listed."""
        if not self.directory.graph or not self.directory.graph.snapshot:
            return []
        found: list[str] = []
        for page in self.reader.users(self.select, ""):
            for user in page:
                found += names_of(self.directory, {k: tuple(v) for k, v in attributes_of(user).items()})
        return found
