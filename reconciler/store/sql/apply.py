"""Writing a plan's changes into the SQL tables, inside the apply's one transaction.

One handler per kind of change (`ChangeWriter.HANDLERS`); a change that cannot
apply raises `ChangeRejected`, and the whole transaction is rolled back.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ...errors import Location, StoreError
from ...model import Change, Link
from .rows import ChangeRejected, local_id, membership_parts, team_columns, user_columns

if TYPE_CHECKING:
    from .store import Tx


class ChangeWriter:
    """Applies plan changes to the tables inside one transaction.

    Links are written last: within one plan a link may move from one user to
    another (a merge, a re-hire), and the UNIQUE (directory, anchor) constraint
    would otherwise depend on which of the two changes sorts first.
    """

    def __init__(self, tx: Tx, now: str, where: str):
        self.tx, self.now, self.where = tx, now, where
        self.pending_links: list[tuple[Change, int, tuple[Link, ...]]] = []
        self.written_teams: list[tuple[Change, str | None]] = []  # team creates/updates and their parent
        self.deleted_teams: list[Change] = []

    def apply_all(self, changes: Sequence[Change]) -> None:
        for change in changes:
            self._guarded(change, lambda: self._apply(change))
        for change, user_id, links in self.pending_links:
            self._guarded(change, lambda: self._write_links(user_id, links))
        for change, parent in self.written_teams:
            if parent is not None:
                self._guarded(change, lambda: self._require_team(parent, "parent team"))
        for change in self.deleted_teams:
            self._guarded(change, lambda: self._require_no_children(change.key))

    def _guarded(self, change: Change, step: Callable[[], None]) -> None:
        try:
            step()
        except ChangeRejected as rejected:
            raise StoreError(
                f"cannot apply {change.kind} {change.action} {change.key}: {rejected.reason}; "
                "nothing was changed (the whole apply was rolled back)",
                Location(self.where),
            ) from None

    def _apply(self, change: Change) -> None:
        handler = self.HANDLERS.get((change.kind, change.action))
        if handler is None:
            raise ChangeRejected("this store does not know that kind of change")
        handler(self, change)

    # ── lookups ──

    def _find_user(self, key: str) -> tuple[int, bool] | None:
        user_id = local_id(key)
        if user_id is None:
            row = self.tx.one("SELECT id, managed FROM users WHERE key = ?", (key,))
        else:
            row = self.tx.one("SELECT id, managed FROM users WHERE key = ? OR (key IS NULL AND id = ?)", (key, user_id))
        return (int(row[0]), bool(row[1])) if row else None

    def _managed_user(self, key: str) -> int:
        found = self._find_user(key)
        if found is None:
            raise ChangeRejected(f"user {key} is not in the store")
        user_id, managed = found
        if not managed:
            raise ChangeRejected(
                f"user {key} was created in the application and is not managed; only adopt may change it"
            )
        return user_id

    def _team(self, key: str) -> bool | None:
        """Whether the team is managed, or None when there is no such team."""
        row = self.tx.one("SELECT managed FROM teams WHERE key = ?", (key,))
        return bool(row[0]) if row else None

    def _require_team(self, key: str | None, what: str = "team") -> None:
        if key is not None and self._team(key) is None:
            raise ChangeRejected(f"{what} {key} does not exist")

    def _managed_team(self, key: str) -> None:
        managed = self._team(key)
        if managed is None:
            raise ChangeRejected(f"team {key} is not in the store")
        if not managed:
            raise ChangeRejected(f"team {key} was created in the application and is not managed")

    # ── users ──

    def _create_user(self, change: Change) -> None:
        columns, links = user_columns(change.after or {}, "create")
        if self._find_user(change.key) is not None:
            raise ChangeRejected(f"a user with key {change.key} already exists")
        self._require_team(columns["team_key"])
        row = self.tx.one(
            "INSERT INTO users"
            " (key, email, display_name, attributes, team_key, status, managed, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?) RETURNING id",
            (change.key, columns["email"], columns["display_name"], columns["attributes"], columns["team_key"],
             columns["status"], self.now, self.now),
        )
        self._replace_links(change, int(row[0]), links or ())

    def _adopt_user(self, change: Change) -> None:
        old_key = (change.before or {}).get("key")
        if not isinstance(old_key, str):
            raise ChangeRejected('before must name the user to adopt as {"key": "local:<id>", ...}')
        columns, links = user_columns(change.after or {}, "adopt")
        found = self._find_user(old_key)
        if found is None:
            raise ChangeRejected(f"the user to adopt, {old_key}, is not in the store")
        user_id, managed = found
        if managed:
            raise ChangeRejected(f"the user to adopt, {old_key}, is already managed")
        if change.key != old_key and self._find_user(change.key) is not None:
            raise ChangeRejected(f"a user with key {change.key} already exists")
        self._require_team(columns["team_key"])
        self._update_row(user_id, {"key": change.key, "managed": 1, **columns})
        self._replace_links(change, user_id, links or ())

    def _change_user(self, change: Change) -> None:
        """update, move, reactivate, deactivate: set the fields `after` names."""
        user_id = self._managed_user(change.key)
        columns, links = user_columns(change.after or {}, change.action)
        if not columns and links is None:
            raise ChangeRejected("after names no field to change")
        if "team_key" in columns:
            self._require_team(columns["team_key"])
        self._update_row(user_id, columns)
        if links is not None:
            self._replace_links(change, user_id, links)

    def _delete_user(self, change: Change) -> None:
        user_id = self._managed_user(change.key)
        # explicit rather than trusting ON DELETE CASCADE: foreign keys may be off on another connection's engine
        self.tx.execute("DELETE FROM memberships WHERE user_id = ?", (user_id,))
        self.tx.execute("DELETE FROM user_links WHERE user_id = ?", (user_id,))
        self.tx.execute("DELETE FROM users WHERE id = ?", (user_id,))
        self.pending_links = [p for p in self.pending_links if p[1] != user_id]

    def _update_row(self, user_id: int, columns: dict[str, Any]) -> None:
        names = [*sorted(columns), "updated_at"]  # a links-only change still marks the user updated
        values = {**columns, "updated_at": self.now}
        assignments = ", ".join(f"{name} = ?" for name in names)
        self.tx.execute(f"UPDATE users SET {assignments} WHERE id = ?", (*(values[n] for n in names), user_id))

    def _replace_links(self, change: Change, user_id: int, links: tuple[Link, ...]) -> None:
        self.tx.execute("DELETE FROM user_links WHERE user_id = ?", (user_id,))
        self.pending_links.append((change, user_id, links))

    def _write_links(self, user_id: int, links: tuple[Link, ...]) -> None:
        for link in links:
            owner = self.tx.one(
                "SELECT u.id, u.key FROM user_links l JOIN users u ON u.id = l.user_id"
                " WHERE l.directory = ? AND l.anchor = ?",
                (link.directory, link.anchor),
            )
            if owner is not None:
                owner_key = owner[1] if owner[1] is not None else f"local:{owner[0]}"
                raise ChangeRejected(f"link {link} already belongs to user {owner_key}")
            self.tx.execute(
                "INSERT INTO user_links (user_id, directory, anchor) VALUES (?, ?, ?)",
                (user_id, link.directory, link.anchor),
            )

    # ── memberships ──

    def _add_membership(self, change: Change) -> None:
        user_key, team_key = membership_parts(change)
        user_id = self._managed_user(user_key)
        self._require_team(team_key)
        if self.tx.one("SELECT 1 FROM memberships WHERE user_id = ? AND team_key = ?", (user_id, team_key)):
            raise ChangeRejected(f"user {user_key} is already a member of team {team_key}")
        self.tx.execute("INSERT INTO memberships (user_id, team_key) VALUES (?, ?)", (user_id, team_key))

    def _remove_membership(self, change: Change) -> None:
        user_key, team_key = membership_parts(change)
        user_id = self._managed_user(user_key)
        cursor = self.tx.execute("DELETE FROM memberships WHERE user_id = ? AND team_key = ?", (user_id, team_key))
        if cursor.rowcount == 0:
            raise ChangeRejected(f"user {user_key} is not a member of team {team_key}")

    # ── teams ──

    def _create_team(self, change: Change) -> None:
        columns = team_columns(change.after, "create")
        if self._team(change.key) is not None:
            raise ChangeRejected(f"a team with key {change.key} already exists")
        parent = columns.get("parent_key")
        self.tx.execute(
            "INSERT INTO teams (key, name, parent_key, managed, created_at) VALUES (?, ?, ?, 1, ?)",
            (change.key, columns["name"], parent, self.now),
        )
        self.written_teams.append((change, parent))  # the parent may be created later in this plan

    def _update_team(self, change: Change) -> None:
        columns = team_columns(change.after, "update")
        if not columns:
            raise ChangeRejected("after names no field to change")
        self._managed_team(change.key)
        names = sorted(columns)
        self.tx.execute(
            f"UPDATE teams SET {', '.join(f'{n} = ?' for n in names)} WHERE key = ?",
            (*(columns[n] for n in names), change.key),
        )
        if "parent_key" in columns:
            self.written_teams.append((change, columns["parent_key"]))

    def _delete_team(self, change: Change) -> None:
        self._managed_team(change.key)
        row = self.tx.one("SELECT count(*) FROM users WHERE team_key = ?", (change.key,))
        if row[0]:
            raise ChangeRejected(f"{row[0]} user(s) still have it as their team; move them first")
        self.tx.execute("DELETE FROM memberships WHERE team_key = ?", (change.key,))
        self.tx.execute("DELETE FROM teams WHERE key = ?", (change.key,))
        self.deleted_teams.append(change)

    def _require_no_children(self, key: str) -> None:
        row = self.tx.one("SELECT key FROM teams WHERE parent_key = ? ORDER BY key", (key,))
        if row is not None:
            raise ChangeRejected(f"team {row[0]} still has it as its parent")

    HANDLERS: dict[tuple[str, str], Callable[[ChangeWriter, Change], None]] = {
        ("team", "create"): _create_team,
        ("team", "update"): _update_team,
        ("user", "create"): _create_user,
        ("user", "adopt"): _adopt_user,
        ("user", "reactivate"): _change_user,
        ("user", "update"): _change_user,
        ("user", "move"): _change_user,
        ("membership", "add"): _add_membership,
        ("membership", "remove"): _remove_membership,
        ("user", "deactivate"): _change_user,
        ("user", "delete"): _delete_user,
        ("team", "delete"): _delete_team,
    }
