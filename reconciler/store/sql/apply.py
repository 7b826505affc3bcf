"""Writing a plan's changes into the SQL tables, inside the apply's one transaction.

The store rules (`..rules`) check every change before the first row is
written; this module supplies their lookups and one handler per kind of change
(`ChangeWriter.HANDLERS`). A refused change stops the apply and the whole
transaction is rolled back. The tables' constraints stay behind the rules as a
backstop (docs/store-schema.md).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import Location, StoreError
from ...model import Change, Link
from ..rules import Checked, StoreRules, refusal
from .rows import LOCAL_KEY_PREFIX, local_id, team_columns, user_columns

if TYPE_CHECKING:
    from .store import Tx


class ChangeWriter(StoreRules[int]):
    """Applies plan changes to the tables inside one transaction; users are found as their row id.

    Links are written last: within one plan a link may move from one user to
    another (a merge, a re-hire), and the UNIQUE (directory, anchor) constraint
    would otherwise depend on which of the two changes sorts first.
    """

    unmanaged_key = f"{LOCAL_KEY_PREFIX}<id>"

    def __init__(self, tx: Tx, now: str, where: str):
        super().__init__()
        self.tx, self.now, self.where = tx, now, where
        self.pending_links: list[tuple[Change, int, tuple[Link, ...]]] = []
        self.written: set[int] = set()  # users whose email, name or attributes this apply set

    def finish(self) -> None:
        for change, user_id, links in self.pending_links:
            self.guarded(change, lambda u=user_id, l=links: self._write_links(u, l))
        self.check_teams()
        self._remember_written()

    def _remember_written(self) -> None:
        """What this apply wrote, as the rows now hold it, for the next plan's three-way comparison: a
        later difference between a row and this memory is an edit in the application."""
        ids = sorted(self.written)
        for start in range(0, len(ids), 500):  # 500 a statement: a first import writes every user
            chunk = ids[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            self.tx.execute(f"DELETE FROM user_written WHERE user_id IN ({marks})", chunk)
            self.tx.execute("INSERT INTO user_written (user_id, email, display_name, attributes)"
                            f" SELECT id, email, display_name, attributes FROM users WHERE id IN ({marks}) AND managed = 1",
                            chunk)

    def refused(self, change: Change, reason: str) -> Exception:
        return StoreError(f"{refusal(change, reason)}; nothing was changed (the whole apply was rolled back)",
                          Location(self.where))

    # ── lookups ──

    def find_user(self, key: str) -> tuple[int, bool] | None:
        user_id = local_id(key)
        if user_id is None:
            row = self.tx.one("SELECT id, managed FROM users WHERE key = ?", (key,))
        else:
            row = self.tx.one("SELECT id, managed FROM users WHERE key = ? OR (key IS NULL AND id = ?)", (key, user_id))
        return (int(row[0]), bool(row[1])) if row else None

    def team_managed(self, key: str) -> bool | None:
        row = self.tx.one("SELECT managed FROM teams WHERE key = ?", (key,))
        return bool(row[0]) if row else None

    def team_holders(self, key: str) -> int:
        return int(self.tx.one("SELECT count(*) FROM users WHERE team_key = ?", (key,))[0])

    def first_child(self, key: str) -> str | None:
        row = self.tx.one("SELECT key FROM teams WHERE parent_key = ? ORDER BY key", (key,))
        return None if row is None else row[0]

    def is_member(self, user: int, team: str) -> bool:
        return self.tx.one("SELECT 1 FROM memberships WHERE user_id = ? AND team_key = ?", (user, team)) is not None

    # ── users ──

    def _create_user(self, checked: Checked) -> None:
        self.new_user(checked.key)
        columns = user_columns(checked.fields)
        self.require_team(columns["team_key"])
        row = self.tx.one(
            "INSERT INTO users"
            " (key, email, display_name, attributes, team_key, status, managed, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?) RETURNING id",
            (checked.key, columns["email"], columns["display_name"], columns["attributes"], columns["team_key"],
             columns["status"], self.now, self.now),
        )
        self.written.add(int(row[0]))
        self._replace_links(checked.change, int(row[0]), checked.fields["links"])

    def _adopt_user(self, checked: Checked) -> None:
        user_id = self.adoptable(checked)
        columns = user_columns(checked.fields)
        self.require_team(columns["team_key"])
        self._update_row(user_id, {"key": checked.key, "managed": 1, **columns})
        self.written.add(user_id)
        self._replace_links(checked.change, user_id, checked.fields["links"])

    def _change_user(self, checked: Checked) -> None:
        """update, move, reactivate, deactivate: set the fields `after` names."""
        user_id = self.managed_user(checked.key)
        columns = user_columns(checked.fields)
        if "team_key" in columns:
            self.require_team(columns["team_key"])
        self._update_row(user_id, columns)
        if {"email", "display_name", "attributes"} & set(checked.fields):
            self.written.add(user_id)
        if "links" in checked.fields:
            self._replace_links(checked.change, user_id, checked.fields["links"])

    def _delete_user(self, checked: Checked) -> None:
        user_id = self.managed_user(checked.key)
        # explicit rather than trusting ON DELETE CASCADE: foreign keys may be off on another connection's engine
        self.tx.execute("DELETE FROM memberships WHERE user_id = ?", (user_id,))
        self.tx.execute("DELETE FROM user_links WHERE user_id = ?", (user_id,))
        self.tx.execute("DELETE FROM user_written WHERE user_id = ?", (user_id,))
        self.tx.execute("DELETE FROM users WHERE id = ?", (user_id,))
        self.written.discard(user_id)
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
                raise self.link_taken(link, owner[1] if owner[1] is not None else f"{LOCAL_KEY_PREFIX}{owner[0]}")
            self.tx.execute(
                "INSERT INTO user_links (user_id, directory, anchor) VALUES (?, ?, ?)",
                (user_id, link.directory, link.anchor),
            )

    # ── memberships ──

    def _add_membership(self, checked: Checked) -> None:
        user_id = self.membership_to_add(checked)
        self.tx.execute("INSERT INTO memberships (user_id, team_key) VALUES (?, ?)", (user_id, checked.team))

    def _remove_membership(self, checked: Checked) -> None:
        user_id = self.membership_to_remove(checked)
        self.tx.execute("DELETE FROM memberships WHERE user_id = ? AND team_key = ?", (user_id, checked.team))

    # ── teams ──

    def _create_team(self, checked: Checked) -> None:
        self.new_team(checked)
        columns = team_columns(checked.fields)
        self.tx.execute(
            "INSERT INTO teams (key, name, parent_key, managed, created_at) VALUES (?, ?, ?, 1, ?)",
            (checked.key, columns["name"], columns.get("parent_key"), self.now),
        )

    def _update_team(self, checked: Checked) -> None:
        self.managed_team(checked.key)
        columns = team_columns(checked.fields)
        names = sorted(columns)
        self.tx.execute(
            f"UPDATE teams SET {', '.join(f'{n} = ?' for n in names)} WHERE key = ?",
            (*(columns[n] for n in names), checked.key),
        )
        self.parent_named(checked)

    def _delete_team(self, checked: Checked) -> None:
        self.deletable_team(checked)
        self.tx.execute("DELETE FROM memberships WHERE team_key = ?", (checked.key,))
        self.tx.execute("DELETE FROM teams WHERE key = ?", (checked.key,))

    HANDLERS = {("team", "create"): _create_team, ("team", "update"): _update_team, ("team", "delete"): _delete_team,
                ("user", "create"): _create_user, ("user", "adopt"): _adopt_user, ("user", "delete"): _delete_user,
                **dict.fromkeys([("user", a) for a in ("reactivate", "update", "move", "deactivate")], _change_user),
                ("membership", "add"): _add_membership, ("membership", "remove"): _remove_membership}
