"""Carrying out the planned SCIM operations in order, one request each or in Bulk requests.

SCIM has no transactions: when a request fails for good, the apply stops there
(`ApplyStopped`) knowing how many changes were done and which one failed.
Nothing is lost by that: every created resource carries its key in
externalId, so the next plan reads what was done and plans only the rest.
The executor keeps ids, resources as last written, group members and the
side file's notes up to date as it goes, so PUTs carry current content and the
notes say what was actually done.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...model import Change, Written
from .apply import Op, Step
from .bulk import BulkSender, refuses_extension_path
from .client import ScimClient, ScimHttpError, answer_lost
from .mapping import (
    MANAGER,
    add_member_operation,
    group_with_members,
    new_group_resource,
    new_user_resource,
    patch_operations,
    patches_extension,
    put_body,
    read_group,
    remove_member_operation,
    set_paths,
    user_values,
)
from .state import Notes, UserNote
from .view import Snapshot


class ApplyStopped(Exception):
    """A request failed for good; `done` changes were carried out before `failed`, and `unknown` changes from
    `failed` on may or may not have been: their request was sent but no answer says what the server did
    (the connection broke, a timeout, a 5xx)."""

    def __init__(self, done: int, total: int, failed: Change | None, error: ScimHttpError, unknown: int = 0):
        super().__init__(error.message)
        self.done, self.total, self.failed, self.error, self.unknown = done, total, failed, error, unknown



class Executor:
    """Sends the operations in order, keeping ids, resources and notes up to date as it goes."""

    def __init__(self, client: ScimClient, snapshot: Snapshot):
        self.client = client
        # What the server takes, learnt for the rest of the apply (see _write and bulk.py):
        self.patch = client.capabilities().patch  # PATCH at all: announced, and not answered 501
        self.extension_paths = True  # PATCH paths into a schema extension, until one is refused as invalidPath
        self.bulk_id_paths = True  # a Bulk operation's path naming a resource by bulkId, until one is refused
        self.user_ids = dict(snapshot.user_ids)  # key -> SCIM id
        self.group_ids = dict(snapshot.group_ids)
        self.user_resources = {i: u.resource for i, u in snapshot.users.items()}
        self.group_resources = {i: g.resource for i, g in snapshot.groups.items()}
        self.group_members = {i: set(g.members) for i, g in snapshot.groups.items()}
        self.id_by_email = {u.email.lower(): i for i, u in sorted(snapshot.users.items(), key=lambda kv: not kv[1].managed)}
        self.notes: Notes = snapshot.notes.copy()
        self.waiting_for_manager: list[tuple[str, dict[str, Any]]] = []  # (user key, fields) set once the manager exists

    def run(self, steps: Sequence[Step]) -> int:
        """Carries out every step; raises ApplyStopped at the first request that fails for good."""
        capabilities = self.client.capabilities()
        if capabilities.bulk and capabilities.patch and steps:
            def stopped(done: int, change: Change, error: ScimHttpError, unknown: int = 0) -> ApplyStopped:
                return ApplyStopped(done, len(steps), change, error, unknown)

            BulkSender(self, capabilities.bulk_max_operations, capabilities.bulk_max_payload).run(steps, stopped)
            done = len(steps)
        else:
            done = self._run_one_by_one(steps)
        try:
            self._set_waiting_managers()
        except ScimHttpError as error:
            raise ApplyStopped(done, len(steps), None, error) from None
        return done

    def _run_one_by_one(self, steps: Sequence[Step]) -> int:
        done = 0
        for step in steps:
            try:
                for op in step.ops:
                    self.do(op)
            except ScimHttpError as error:
                raise ApplyStopped(done, len(steps), step.change, error, 1 if answer_lost(error) else 0) from None
            done += 1
        return done

    def do(self, op: Op) -> None:
        """One operation: a request (single mode), or a note for the side file (both modes)."""
        getattr(self, f"_{op.action}")(op)

    # ── users ──

    def manager_id(self, key: str, fields: dict[str, Any]) -> str | None:
        """The SCIM id of the manager the fields name (by email); None when they name none, or when the
        manager does not exist yet: the user then waits, and gets the manager at the end of the apply."""
        manager = (fields.get("attributes") or {}).get(MANAGER)
        if not manager:
            return None
        found = self.id_by_email.get(manager.lower())
        if found is None:
            self.waiting_for_manager.append((key, {"attributes": fields["attributes"]}))
        return found

    def _create_user(self, op: Op) -> None:
        body = new_user_resource(op.key, op.fields, self.manager_id(op.key, op.fields))
        created = self.client.create("Users", body, f"creating user {op.key} (POST /Users)")
        self.remember_user(op.key, created)

    def remember_user(self, key: str, resource: dict[str, Any]) -> None:
        """A created (or found) user: its id under its key, its resource, its addresses for manager lookups."""
        user_id = str(resource["id"])
        self.user_ids[key] = user_id
        self.user_resources[user_id] = resource
        for entry in [resource.get("userName"), *(e.get("value") for e in resource.get("emails") or [] if isinstance(e, dict))]:
            if isinstance(entry, str):
                self.id_by_email[entry.lower()] = user_id

    def _update_user(self, op: Op) -> None:
        old_key = op.adopt_from or op.key
        user_id = self.user_ids[old_key]
        resource = self.user_resources[user_id]
        values = user_values(op.fields, resource, self.manager_id(op.key, op.fields))
        if op.adopt_from is not None:
            values["externalId"] = op.key
        what = f"{'adopting' if op.adopt_from else 'updating'} user {op.key} ({{verb}} /Users/{user_id})"
        self._write_user(user_id, resource, values, what)
        if op.adopt_from is not None:
            del self.user_ids[old_key]
            self.user_ids[op.key] = user_id

    def _write(self, path: str, operations: list[dict] | None, body: Callable[[], dict[str, Any]],
               what: str) -> dict[str, Any] | None:
        """PATCH the operations (none: nothing to send) while the server takes PATCH, else PUT the body.

        Returns None after a PATCH, else what the PUT answered (the body sent, when the answer is empty).
        Two refusals switch to PUT for the rest of the apply, as RFC 7644 lets a server support less:
        - a PATCH answered 501: announced in /ServiceProviderConfig but not implemented (whether PATCH is
          there at all is the server's to say, RFC 7643 §5); a PUT replaces the whole resource (§3.5.1);
        - a PATCH naming an extension attribute by path ("<enterprise urn>:department") refused as 400
          invalidPath: §3.5.2 leaves the paths a server accepts to it, and servers differ on the URN-qualified
          form of §3.10; a PUT carries the extension's values inside the resource instead. Only PATCHes that
          name such paths switch (group writes never do).
        """
        if self.patch and not (not self.extension_paths and patches_extension(operations)):
            try:
                if operations:
                    self.client.patch(path, operations, what.format(verb="PATCH"))
                return None
            except ScimHttpError as error:
                if error.status == 501:
                    self.patch = False
                elif refuses_extension_path(error, operations):
                    self.extension_paths = False
                else:
                    raise
        sent = body()
        return self.client.put(path, sent, what.format(verb="PUT")) or sent

    def _write_user(self, user_id: str, resource: dict[str, Any], values: dict[str, Any], what: str) -> None:
        operations = patch_operations(resource, values) if self.patch else None
        put = self._write(f"Users/{user_id}", operations, lambda: put_body(resource, values), what)
        self.remember_user_resource(user_id, set_paths(resource, values) if put is None else put)

    def remember_user_resource(self, user_id: str, resource: dict[str, Any]) -> None:
        """A user's resource as last written, so the next PATCH or PUT starts from it."""
        self.user_resources[user_id] = {**resource, "id": user_id}
        for entry in [resource.get("userName"), *(e.get("value") for e in resource.get("emails") or [] if isinstance(e, dict))]:
            if isinstance(entry, str):
                self.id_by_email[entry.lower()] = user_id

    def _delete_user(self, op: Op) -> None:
        user_id = self.user_ids[op.key]
        self.client.delete(f"Users/{user_id}", f"deleting user {op.key} (DELETE /Users/{user_id})")
        del self.user_ids[op.key]
        self.user_resources.pop(user_id, None)
        self.id_by_email = {e: i for e, i in self.id_by_email.items() if i != user_id}

    def _set_waiting_managers(self) -> None:
        waiting, self.waiting_for_manager = self.waiting_for_manager, []
        for key, fields in waiting:
            user_id = self.user_ids.get(key)
            manager_id = self.id_by_email.get(fields["attributes"][MANAGER].lower())
            if user_id is None or manager_id is None:
                continue  # deleted later in the plan, or the planner's check let it through: the next plan shows it
            values = {k: v for k, v in user_values(fields, self.user_resources[user_id], manager_id).items()
                      if k.endswith(":manager")}
            self._write_user(user_id, self.user_resources[user_id], values,
                             f"setting the manager of user {key} ({{verb}} /Users/{user_id})")

    # ── groups ──

    def _create_group(self, op: Op) -> None:
        created = self.client.create("Groups", new_group_resource(op.key, op.fields["name"]),
                                     f"creating team {op.key} (POST /Groups)")
        group = read_group(created)
        self.group_ids[op.key] = group.id
        self.group_resources[group.id] = created
        self.group_members[group.id] = set(group.members)

    def _rename_group(self, op: Op) -> None:
        group_id = self.group_ids[op.key]
        what = f"renaming team {op.key} ({{verb}} /Groups/{group_id})"
        self._write_group(group_id, [{"op": "replace", "path": "displayName", "value": op.fields["name"]}],
                          self.group_members[group_id], what, display_name=op.fields["name"])

    def _delete_group(self, op: Op) -> None:
        group_id = self.group_ids.pop(op.key)
        self.client.delete(f"Groups/{group_id}", f"deleting team {op.key} (DELETE /Groups/{group_id})")
        self.group_resources.pop(group_id, None)
        self.group_members.pop(group_id, None)

    def _add_member(self, op: Op) -> None:
        self._member(op, add=True)

    def _remove_member(self, op: Op) -> None:
        self._member(op, add=False)

    def _member(self, op: Op, add: bool) -> None:
        assert op.team is not None
        group_id, user_id = self.group_ids[op.team], self.user_ids[op.key]
        members = set(self.group_members[group_id])
        members.add(user_id) if add else members.discard(user_id)
        operation = add_member_operation(user_id) if add else remove_member_operation(user_id)
        verb = "adding" if add else "removing"
        what = f"{verb} user {op.key} {'to' if add else 'from'} team {op.team} ({{verb}} /Groups/{group_id})"
        self._write_group(group_id, [operation], members, what)

    def _write_group(self, group_id: str, operations: list[dict], members: set[str], what: str,
                     display_name: str | None = None) -> None:
        resource = self.group_resources[group_id]
        updated = self._write(f"Groups/{group_id}", operations,
                              lambda: group_with_members(resource, members, display_name), what)
        if updated is None:  # patched
            updated = dict(resource)
            if display_name is not None:
                updated["displayName"] = display_name
        self.group_resources[group_id] = {**updated, "id": group_id}
        self.group_members[group_id] = set(members)

    # ── notes ──

    def _note_user(self, op: Op) -> None:
        written = op.fields.get("written")
        self.notes.users[op.key] = UserNote(op.team, tuple(sorted(op.links)), None if written is None else Written(
            written["email"], written["display_name"] or "", tuple(sorted(written["attributes"].items()))))

    def _forget_user(self, op: Op) -> None:
        self.notes.users.pop(op.key, None)

    def _note_team(self, op: Op) -> None:
        self.notes.teams[op.key] = op.parent

    def _forget_team(self, op: Op) -> None:
        self.notes.teams.pop(op.key, None)
