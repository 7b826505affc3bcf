"""Between SCIM resources (RFC 7643) and the reconciler's users and teams. No I/O here.

A reconciler user is a SCIM User whose `externalId` is its key
(`directory:anchor`); a team is a SCIM Group whose `externalId` is the team key.
Mapped attributes go where SCIM has a place for them (`ATTRIBUTE_HOMES`); an
attribute with no place is refused before anything is written, rather than
silently dropped and shown as drift on every plan.

Every place the reconciler owns on a user is a *path*: "userName",
"name.givenName", "<enterprise urn>:department". `user_values` says what each
path should hold (None: absent); `set_paths` writes them into a resource (for
POST and PUT) and `patch_operations` turns the differences into PATCH operations.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"

# mapped attribute name -> the path that holds it; names are SCIM's own, case as in RFC 7643
ATTRIBUTE_HOMES: dict[str, str] = {
    "title": "title",
    "givenName": "name.givenName",
    "familyName": "name.familyName",
    "employeeNumber": f"{ENTERPRISE_USER}:employeeNumber",
    "costCenter": f"{ENTERPRISE_USER}:costCenter",
    "organization": f"{ENTERPRISE_USER}:organization",
    "division": f"{ENTERPRISE_USER}:division",
    "department": f"{ENTERPRISE_USER}:department",
    "manager": f"{ENTERPRISE_USER}:manager",  # complex: {"value": <the manager's SCIM id>}
}
MANAGER = "manager"

USER_KEY = re.compile(r"[a-z][a-z0-9_-]*:\S.*", re.DOTALL)  # "directory:anchor", as the policy names directories
UNMANAGED_PREFIX = "scim:"


class MappingError(Exception):
    """A value the SCIM side cannot hold; the caller names the change."""


# ───────────────────────────── keys ─────────────────────────────


def is_user_key(external_id: Any) -> bool:
    """Whether a User's externalId is a reconciler key, making the user managed."""
    return isinstance(external_id, str) and USER_KEY.fullmatch(external_id) is not None


def is_team_key(external_id: Any) -> bool:
    """Whether a Group's externalId makes it a reconciler team (any non-empty externalId does)."""
    return isinstance(external_id, str) and external_id.strip() != ""


def unmanaged_key(scim_id: str) -> str:
    return f"{UNMANAGED_PREFIX}{scim_id}"


def parent_from_path(key: str) -> str | None:
    """The parent of an OU-path team key ("A/B/C" -> "A/B"), honouring escaped slashes; None at the top."""
    cut, index = -1, 0
    while index < len(key):
        if key[index] == "\\":
            index += 2
            continue
        if key[index] == "/":
            cut = index
        index += 1
    return key[:cut] if cut > 0 else None


# ───────────────────────────── paths in a resource ─────────────────────────────


def _steps(path: str) -> list[str]:
    if path.startswith("urn:"):
        urn, _, name = path.rpartition(":")
        return [urn, name]
    return path.split(".")


def get_path(resource: Mapping[str, Any], path: str) -> Any:
    node: Any = resource
    for step in _steps(path):
        if not isinstance(node, Mapping):
            return None
        node = node.get(step)
    return node


def set_paths(resource: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the resource with each path set (None removes it), its schemas listing the extension it uses."""
    result = copy.deepcopy(dict(resource))
    for path, value in values.items():
        *parents, leaf = _steps(path)
        node = result
        for step in parents:
            child = node.get(step)
            if not isinstance(child, dict):
                if value is None:
                    break
                child = node[step] = {}
            node = child
        else:
            if value is None:
                node.pop(leaf, None)
            else:
                node[leaf] = copy.deepcopy(value)
    for container in ("name", ENTERPRISE_USER):  # an emptied complex attribute goes too
        if container in result and not result[container]:
            del result[container]
    schemas = [s for s in result.get("schemas") or [CORE_USER] if s != ENTERPRISE_USER]
    result["schemas"] = schemas + ([ENTERPRISE_USER] if result.get(ENTERPRISE_USER) else [])
    return result


def _same(have: Any, want: Any) -> bool:
    if isinstance(want, dict) and isinstance(have, dict) and set(want) == {"value"}:
        return have.get("value") == want["value"]  # manager: the server may add $ref and displayName
    if isinstance(want, list) and isinstance(have, list):
        return [_email_form(e) for e in have] == [_email_form(e) for e in want]
    return have == want


def _email_form(entry: Any) -> Any:
    if isinstance(entry, dict):
        return (entry.get("value"), entry.get("type"), bool(entry.get("primary")))
    return entry


def patch_operations(resource: Mapping[str, Any], values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """PATCH operations (RFC 7644 §3.5.2) taking the resource to the values; none when it already holds them."""
    operations: list[dict[str, Any]] = []
    for path, want in values.items():
        have = get_path(resource, path)
        if want is None:
            if have is not None:
                operations.append({"op": "remove", "path": path})
        elif not _same(have, want):
            operations.append({"op": "replace", "path": path, "value": want})
    return operations


def is_extension_path(path: Any) -> bool:
    """Whether a PATCH path reaches into a schema extension by its URN ("<enterprise urn>:department")."""
    return isinstance(path, str) and path[:4].lower() == "urn:"


def patches_extension(operations: Any) -> bool:
    """Whether PATCH operations name an extension attribute by path: the paths some servers refuse as
    invalidPath (RFC 7644 §3.5.2 lets a server decide which paths it supports; §3.12 names the error)."""
    return any(isinstance(o, Mapping) and is_extension_path(o.get("path")) for o in operations or ())


def put_body(resource: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The body of a PUT that sets the values: the resource as read, the paths set, without its meta."""
    return {k: v for k, v in set_paths(resource, values).items() if k != "meta"}


# ───────────────────────────── users ─────────────────────────────


def email_entries(email: str, existing: Any) -> list[dict[str, Any]]:
    """The emails list: ours first as the primary work address, the application's others kept, not primary."""
    others = []
    for entry in existing if isinstance(existing, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("value"), str) and entry["value"].lower() != email.lower():
            others.append({k: v for k, v in entry.items() if k != "primary"})
    return [{"value": email, "type": "work", "primary": True}, *others]


def check_attributes(attributes: Mapping[str, str]) -> None:
    """Refuses attribute names SCIM has no place for, naming the ones it has."""
    unknown = sorted(set(attributes) - set(ATTRIBUTE_HOMES))
    if unknown:
        near = {name.lower(): name for name in ATTRIBUTE_HOMES}
        hints = [f"{u} (did you mean {near[u.lower()]}?)" if u.lower() in near else u for u in unknown]
        raise MappingError(
            f"attribute{'s' if len(unknown) > 1 else ''} {', '.join(hints)} ha{'ve' if len(unknown) > 1 else 's'} "
            f"no place in a SCIM User; map only {', '.join(ATTRIBUTE_HOMES)} (see docs/store-scim.md)"
        )


def user_values(
    fields: Mapping[str, Any], resource: Mapping[str, Any], manager_id: str | None = None
) -> dict[str, Any]:
    """What each owned path should hold for the given user fields (email, display_name, attributes, status).

    Only the fields present are mapped, so an update of the email alone touches
    userName and emails and nothing else. `manager_id` is the SCIM id the
    `manager` attribute resolved to (the caller resolves it).
    """
    values: dict[str, Any] = {}
    if "email" in fields:
        values["userName"] = fields["email"]
        values["emails"] = email_entries(fields["email"], resource.get("emails"))
    if "display_name" in fields:
        values["displayName"] = fields["display_name"] or None
        values["name.formatted"] = fields["display_name"] or None
    if "attributes" in fields:
        attributes = fields["attributes"]
        check_attributes(attributes)
        for name, path in ATTRIBUTE_HOMES.items():
            value = attributes.get(name)
            if name == MANAGER and value:
                if manager_id is not None:  # else the caller sets it later, once the manager exists
                    values[path] = {"value": manager_id}
            else:
                values[path] = value if value else None
    if "status" in fields:
        values["active"] = fields["status"] == "active"
    return values


@dataclass(frozen=True)
class ScimResource:
    """What the reconciler reads from any SCIM resource it keeps."""

    id: str
    external_id: str | None
    version: str  # meta.version, else meta.lastModified (version_of)
    resource: dict[str, Any]  # as read


@dataclass(frozen=True)
class ScimUser(ScimResource):
    """What the reconciler reads from one SCIM User."""

    email: str
    display_name: str
    attributes: dict[str, str]  # by mapped name; manager still as the SCIM id it holds
    active: bool

    @property
    def managed(self) -> bool:
        return is_user_key(self.external_id)


def primary_email(resource: Mapping[str, Any]) -> str:
    """The email a user is matched by: the primary email (RFC 7643 §4.1.2), else userName when it is an
    address (most applications sign in with it), else the first email."""
    emails = [e["value"] for e in resource.get("emails") or [] if isinstance(e, dict) and isinstance(e.get("value"), str)]
    primary = [e["value"] for e in resource.get("emails") or []
               if isinstance(e, dict) and isinstance(e.get("value"), str) and e.get("primary") is True]
    user_name = resource.get("userName") if isinstance(resource.get("userName"), str) else ""
    for candidate in (*primary[:1], user_name if "@" in user_name else "", *emails[:1], user_name):
        if candidate:
            return candidate
    return ""


def version_of(resource: Mapping[str, Any]) -> str:
    """meta.version, else meta.lastModified: what changes whenever the server changes the resource."""
    meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
    return str(meta.get("version") or meta.get("lastModified") or "")


def read_user(resource: Mapping[str, Any]) -> ScimUser:
    attributes: dict[str, str] = {}
    for name, path in ATTRIBUTE_HOMES.items():
        value = get_path(resource, path)
        if name == MANAGER:
            value = value.get("value") if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            attributes[name] = value
        elif value is not None and not isinstance(value, str):
            attributes[name] = str(value)
    display_name = resource.get("displayName") or get_path(resource, "name.formatted") or ""
    external_id = resource.get("externalId")
    return ScimUser(
        id=str(resource["id"]),
        external_id=external_id if isinstance(external_id, str) else None,
        email=primary_email(resource),
        display_name=str(display_name),
        attributes=attributes,
        active=resource.get("active") is not False,  # absent means active (RFC 7643 leaves it to the server)
        version=version_of(resource),
        resource=dict(resource),
    )


def new_user_resource(key: str, fields: Mapping[str, Any], manager_id: str | None) -> dict[str, Any]:
    """The body of POST /Users for a created user."""
    base = {"schemas": [CORE_USER], "externalId": key}
    return set_paths(base, {k: v for k, v in user_values(fields, {}, manager_id).items()})


# ───────────────────────────── groups ─────────────────────────────


@dataclass(frozen=True)
class ScimGroup(ScimResource):
    display_name: str
    members: frozenset[str]  # SCIM ids of the members that are not groups

    @property
    def managed(self) -> bool:
        return is_team_key(self.external_id)


def read_group(resource: Mapping[str, Any]) -> ScimGroup:
    members = set()
    for member in resource.get("members") or []:
        if isinstance(member, dict) and isinstance(member.get("value"), str) and member.get("type") != "Group":
            members.add(member["value"])
    external_id = resource.get("externalId")
    return ScimGroup(
        id=str(resource["id"]),
        external_id=external_id if isinstance(external_id, str) and external_id.strip() else None,
        display_name=str(resource.get("displayName") or ""),
        members=frozenset(members),
        version=version_of(resource),
        resource=dict(resource),
    )


def new_group_resource(key: str, name: str) -> dict[str, Any]:
    return {"schemas": [CORE_GROUP], "externalId": key, "displayName": name, "members": []}


def group_with_members(resource: Mapping[str, Any], member_ids: set[str] | frozenset[str],
                       display_name: str | None = None) -> dict[str, Any]:
    """A group for PUT: the resource as read, its user members replaced, group members kept."""
    result = {k: copy.deepcopy(v) for k, v in resource.items() if k not in ("meta", "id")}
    kept = [m for m in resource.get("members") or [] if isinstance(m, dict) and m.get("type") == "Group"]
    result["members"] = kept + [{"value": i, "type": "User"} for i in sorted(member_ids)]
    if display_name is not None:
        result["displayName"] = display_name
    result.setdefault("schemas", [CORE_GROUP])
    return result


def add_member_operation(user_id: str) -> dict[str, Any]:
    return {"op": "add", "path": "members", "value": [{"value": user_id, "type": "User"}]}


def remove_member_operation(user_id: str) -> dict[str, Any]:
    return {"op": "remove", "path": f"members[value eq {_quoted(user_id)}]"}


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
