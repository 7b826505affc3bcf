"""Sending the apply's operations in SCIM Bulk requests (RFC 7644 §3.7), when the server supports Bulk and PATCH.

One request carries many changes (a first sync of 300 people is one or two
requests instead of 600), which matters over a WAN. Operations keep their
order; a user or group created in the same request is referenced as
"bulkId:<id>" by the group PATCHes that follow it. failOnErrors is 1, so the
server stops at the first error and the results say which changes were done.

An operation that would need the real id of a resource created in the same
request in a place bulkId references do not reach (a member filter, a user's
PATCH path) closes the request first. When the answer to a Bulk request is
lost, which of its changes ran is unknown: the apply stops and says so, and
the next plan reads what the server has (externalIds prevent duplicates).

Where RFC 7644 lets servers differ, the first refusal is learnt for the rest
of the apply, and the request is sent again from the refused operation on
(safe: failOnErrors 1 makes the server stop there, §3.7.3, and the answer
shows it did; a server that went on is not sent anything again):
- a group named by "bulkId:<id>" in an operation's *path*: §3.7.2 defines
  bulkId references in an operation's data, and servers that resolve them
  there need not in a path (SCIMMY answers 404 "Resource bulkId:group5 not
  found"). Once refused, ids the answers gave replace bulkIds everywhere, and
  a request is cut before an operation whose path names a resource created
  earlier in it, so that operation goes in the next request by its real id
  (bulkIds stay in values, where every server resolves them);
- a user PATCH naming an extension attribute by path, refused as 400
  invalidPath (§3.5.2): that user's write, and every later one that names
  such paths, becomes a PUT of the whole resource (as execute.py does).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .client import PATCH_OP, ScimHttpError, answer_lost
from .mapping import (
    new_group_resource,
    new_user_resource,
    patch_operations,
    patches_extension,
    put_body,
    set_paths,
    user_values,
)

BULK_ID = "bulkId:"
BULK_ID_REFERENCE = re.compile(r"bulkId:([A-Za-z0-9_.~-]+)")
MAX_BATCH = 200  # operations per request even when the server allows more: keeps each request well inside timeouts
PAYLOAD_MARGIN = 0.9  # of maxPayloadSize, for the request's envelope


@dataclass
class _Entry:
    step: int  # index of the step the operation belongs to
    operation: dict[str, Any]
    what: str
    after: Callable[[dict[str, Any], Callable[[str], str]], None]  # (result, resolve bulk ids) once it succeeded
    put: Callable[[], dict[str, Any]] | None = None  # a user PATCH naming extension paths: the same write as a PUT


@dataclass
class _Batch:
    entries: list[_Entry] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=dict)  # user key -> bulkId of its POST in this batch
    groups: dict[str, str] = field(default_factory=dict)
    size: int = 0


class NeedsFlush(Exception):
    """The operation needs an id that only the pending request's answer gives."""


class BulkSender:
    def __init__(self, executor: Any, max_operations: int, max_payload: int):
        self.x = executor  # the Executor whose ids, resources and notes this keeps up to date
        self.max_operations = max(1, min(max_operations, MAX_BATCH))
        self.max_payload = int(max_payload * PAYLOAD_MARGIN) if max_payload else 0
        self.counter = 0

    def run(self, steps: Sequence[Any], stopped: Callable[[int, Any, ScimHttpError], Exception]) -> int:
        """Carries out the steps; returns how many, or raises stopped(done, change, error)."""
        batch, first = _Batch(), 0
        for index, step in enumerate(steps):
            user_ids = dict(self.x.user_ids)  # building renames adopted users; a rebuild must start from before
            entries = self._entries(index, step.ops, batch)
            if entries is None or (batch.entries and self._overflows(batch, entries)):
                self.x.user_ids = user_ids
                self._send(batch, steps, first, stopped)
                batch, first = _Batch(), index
                entries = self._entries(index, step.ops, batch)
                assert entries is not None, "the planner never makes a step that needs ids from its own request"
            batch.entries += entries
            batch.size += _size(entries)
        self._send(batch, steps, first, stopped)
        return len(steps)

    def _overflows(self, batch: _Batch, entries: list[_Entry]) -> bool:
        count = sum(1 for e in batch.entries + entries if e.operation)
        return count > self.max_operations or bool(self.max_payload and batch.size + _size(entries) > self.max_payload)

    # ── building ──

    def _bulk_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def _entries(self, index: int, ops: Sequence[Any], batch: _Batch) -> list[_Entry] | None:
        """The bulk operations of one step, or None when one needs an id the pending request would give."""
        built: list[_Entry] = []
        users, groups = dict(batch.users), dict(batch.groups)
        try:
            for op in ops:
                entry = self._entry(index, op, users, groups)
                if entry is not None:
                    built.append(entry)
        except NeedsFlush:
            return None
        batch.users, batch.groups = users, groups
        return built

    def _user_ref(self, key: str, pending: dict[str, str]) -> str:
        return f"{BULK_ID}{pending[key]}" if key in pending else self.x.user_ids[key]

    def _group_ref(self, key: str, pending: dict[str, str]) -> str:
        return f"{BULK_ID}{pending[key]}" if key in pending else self.x.group_ids[key]

    def _entry(self, index: int, op: Any, users: dict[str, str], groups: dict[str, str]) -> _Entry | None:
        x = self.x
        if op.action.startswith(("note_", "forget_")):
            return _Entry(index, {}, "", lambda result, resolve, op=op: x.do(op))
        if op.action == "create_user":
            bulk_id = self._bulk_id("user")
            body = new_user_resource(op.key, op.fields, x.manager_id(op.key, op.fields))
            users[op.key] = bulk_id

            def created_user(result, resolve, key=op.key, body=body):
                x.remember_user(key, {**body, "id": _created_id(result)})
            return _Entry(index, {"method": "POST", "path": "/Users", "bulkId": bulk_id, "data": body},
                          f"creating user {op.key}", created_user)
        if op.action == "create_group":
            bulk_id = self._bulk_id("group")
            body = new_group_resource(op.key, op.fields["name"])
            groups[op.key] = bulk_id

            def created_group(result, resolve, key=op.key, body=body):
                group_id = _created_id(result)
                x.group_ids[key] = group_id
                x.group_resources[group_id] = {**body, "id": group_id}
                x.group_members[group_id] = set()
            return _Entry(index, {"method": "POST", "path": "/Groups", "bulkId": bulk_id, "data": body},
                          f"creating team {op.key}", created_group)
        if op.action in ("add_member", "remove_member"):
            if op.action == "remove_member" and op.key in users:
                raise NeedsFlush
            group, user = self._group_ref(op.team, groups), self._user_ref(op.key, users)
            if op.action == "add_member":
                change = {"op": "add", "path": "members", "value": [{"value": user, "type": "User"}]}
            else:
                change = {"op": "remove", "path": f'members[value eq "{user}"]'}

            def member(result, resolve, team=op.team, user=user, add=op.action == "add_member"):
                members = x.group_members.setdefault(x.group_ids[team], set())
                members.add(resolve(user)) if add else members.discard(resolve(user))
            verb = "adding user {} to" if op.action == "add_member" else "removing user {} from"
            return _Entry(index, {"method": "PATCH", "path": f"/Groups/{group}",
                                  "data": {"schemas": [PATCH_OP], "Operations": [change]}},
                          f"{verb.format(op.key)} team {op.team}", member)
        if op.key in users or op.key in groups or op.adopt_from in users:
            raise NeedsFlush  # a user or group PATCHed, renamed or deleted in the request that creates it
        if op.action == "update_user":
            user_id = x.user_ids[op.adopt_from or op.key]
            resource = x.user_resources[user_id]
            values = user_values(op.fields, resource, x.manager_id(op.key, op.fields))
            if op.adopt_from is not None:
                values["externalId"] = op.key
            operations = patch_operations(resource, values)
            if op.adopt_from is not None:  # same id, new key: later operations of this request name it so
                del x.user_ids[op.adopt_from]
                x.user_ids[op.key] = user_id

            def updated(result, resolve, user_id=user_id, values=values):
                x.remember_user_resource(user_id, set_paths(x.user_resources[user_id], values))
            if not operations:
                return _Entry(index, {}, "", updated)
            verb = "adopting" if op.adopt_from else "updating"

            def put(user_id=user_id, values=values):  # built when sent, from the resource as written by then
                return {"method": "PUT", "path": f"/Users/{user_id}", "data": put_body(x.user_resources[user_id], values)}
            return _Entry(index, {"method": "PATCH", "path": f"/Users/{user_id}",
                                  "data": {"schemas": [PATCH_OP], "Operations": operations}},
                          f"{verb} user {op.key}", updated, put if patches_extension(operations) else None)
        if op.action == "delete_user":
            user_id = x.user_ids[op.key]

            def deleted(result, resolve, key=op.key, user_id=user_id):
                del x.user_ids[key]
                x.user_resources.pop(user_id, None)
                x.id_by_email = {e: i for e, i in x.id_by_email.items() if i != user_id}
            return _Entry(index, {"method": "DELETE", "path": f"/Users/{user_id}"}, f"deleting user {op.key}", deleted)
        if op.action == "rename_group":
            group_id = x.group_ids[op.key]

            def renamed(result, resolve, group_id=group_id, name=op.fields["name"]):
                x.group_resources[group_id] = {**x.group_resources[group_id], "displayName": name}
            return _Entry(index, {"method": "PATCH", "path": f"/Groups/{group_id}", "data": {
                "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": op.fields["name"]}]}},
                f"renaming team {op.key}", renamed)
        if op.action == "delete_group":
            group_id = x.group_ids[op.key]

            def deleted_group(result, resolve, key=op.key, group_id=group_id):
                x.group_ids.pop(key, None)
                x.group_resources.pop(group_id, None)
                x.group_members.pop(group_id, None)
            return _Entry(index, {"method": "DELETE", "path": f"/Groups/{group_id}"}, f"deleting team {op.key}",
                          deleted_group)
        raise AssertionError(f"no bulk form for {op.action}")

    # ── sending ──

    def _send(self, batch: _Batch, steps: Sequence[Any], first: int, stopped) -> None:
        """Sends the batch (in pieces, once the server refused a bulkId in a path) and records what it did;
        raises stopped(...) at the first operation that failed for good."""
        resolved: dict[str, str] = {}  # bulkId -> the id its POST's answer gave, for the whole batch

        def resolve(value: str) -> str:
            return resolved.get(value[len(BULK_ID):], value) if value.startswith(BULK_ID) else value

        pending, done = list(batch.entries), first  # done: the steps before `done` were carried out
        while pending:
            piece, pending = self._piece(pending, resolved)
            again = self._send_piece(piece, steps, done, stopped, resolved, resolve)
            pending = again + pending
            done = pending[0].step if pending else done

    def _piece(self, entries: list[_Entry], resolved: dict[str, str]) -> tuple[list[_Entry], list[_Entry]]:
        """The entries for the next request, and the rest. Once the server refused a bulkId in a path, the ids
        the answers gave replace bulkIds, and the piece ends before an operation whose path still names one
        (a resource created earlier in this piece: its id comes with this piece's answer)."""
        piece: list[_Entry] = []
        for index, entry in enumerate(entries):
            if entry.put is not None and not self.x.extension_paths:
                entry.operation, entry.put = entry.put(), None
            if not self.x.bulk_id_paths and entry.operation:
                entry.operation = _with_ids(entry.operation, resolved)
                if BULK_ID in entry.operation.get("path", "") and any(e.operation for e in piece):
                    return piece, entries[index:]
            piece.append(entry)
        return piece, []

    def _send_piece(self, piece: list[_Entry], steps: Sequence[Any], done: int, stopped,
                    resolved: dict[str, str], resolve: Callable[[str], str]) -> list[_Entry]:
        """One request; the entries to send again (from a refused operation on, once the refusal is learnt)."""
        requests = [e for e in piece if e.operation]
        results: list[dict[str, Any]] = []
        if requests:
            last = max(e.step for e in piece)
            what = f"applying changes {done + 1} to {last + 1} in one request (POST /Bulk)"
            try:
                results = self.x.client.bulk([e.operation for e in requests], what)
            except ScimHttpError as error:
                # sent, and no answer says what became of it: the whole request's changes are unknown
                unknown = last + 1 - done if answer_lost(error) else 0
                raise stopped(done, steps[done].change, error, unknown) from None
        outcome = iter(results)
        for position, entry in enumerate(piece):
            if not entry.operation:
                entry.after({}, resolve)
                continue
            result = next(outcome, None)
            status = _status(result)
            if status is not None and status < 400:
                if entry.operation.get("bulkId"):
                    resolved[entry.operation["bulkId"]] = _created_id(result)
                entry.after(result, resolve)
                continue
            response = (result or {}).get("response")
            scim_type = response.get("scimType") if isinstance(response, dict) else None
            failure = ScimHttpError(f"{entry.what} ({entry.operation['method']} {entry.operation['path']} in /Bulk)",
                                    status, _detail(result), scim_type)
            if next(outcome, None) is None and self._learnt(entry, failure, resolved):
                return piece[position:]  # nothing after it ran (failOnErrors): send it again, the new way
            raise stopped(entry.step, steps[entry.step].change, failure)
        return []

    def _learnt(self, entry: _Entry, failure: ScimHttpError, resolved: dict[str, str]) -> bool:
        """Whether the refusal says the server lacks something this sender can do without, for the rest of the
        apply: a bulkId (of a resource this batch created) in the path, or an extension attribute's path."""
        referenced = BULK_ID_REFERENCE.search(entry.operation.get("path", ""))
        if (self.x.bulk_id_paths and referenced and referenced.group(1) in resolved and failure.status is not None
                and 400 <= failure.status < 500):
            self.x.bulk_id_paths = False  # the resource exists (its POST succeeded): only its name in the path failed
            return True
        if entry.put is not None and self.x.extension_paths and refuses_extension_path(
                failure, entry.operation.get("data", {}).get("Operations")):
            self.x.extension_paths = False
            return True
        return False


def refuses_extension_path(error: ScimHttpError, operations: Any) -> bool:
    """A PATCH that named an extension attribute by path, refused as 400 invalidPath (RFC 7644 §3.12)."""
    return error.status == 400 and (error.scim_type or "").lower() == "invalidpath" and patches_extension(operations)


def _with_ids(operation: dict[str, Any], resolved: dict[str, str]) -> dict[str, Any]:
    """The operation with every bulkId whose resource exists by now replaced by its id (path and data)."""

    def swap(value: Any) -> Any:
        if isinstance(value, str) and BULK_ID in value:
            return BULK_ID_REFERENCE.sub(lambda m: resolved.get(m.group(1), m.group(0)), value)
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    return swap(operation)


def _size(entries: list[_Entry]) -> int:
    return sum(len(json.dumps(e.operation, ensure_ascii=False).encode("utf-8")) for e in entries if e.operation)


def _status(result: dict[str, Any] | None) -> int | None:
    try:
        return int(str((result or {}).get("status")).split()[0])
    except (ValueError, IndexError):
        return None


def _detail(result: dict[str, Any] | None) -> str:
    if result is None:
        return "the server stopped the Bulk request before this operation (an earlier one failed)"
    response = result.get("response")
    if isinstance(response, dict) and response.get("detail"):
        return " ".join(str(response["detail"]).split())
    return "no detail"


def _created_id(result: dict[str, Any]) -> str:
    response = result.get("response")
    if isinstance(response, dict) and isinstance(response.get("id"), str):
        return response["id"]
    location = str(result.get("location") or "")
    if not location:
        raise ScimHttpError("reading a Bulk result", _status(result), "a created resource came back without its location")
    return location.rstrip("/").rsplit("/", 1)[-1]
