"""The values that flow between the stages, one way:

    policy ─► directory read ─► desired state ─► plan (diff against the store) ─► apply

Each stage takes the previous stage's values and returns its own; none reaches
back. Everything here is a plain dataclass so stages can be tested in isolation
and a new directory kind or store only has to produce or accept these.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# ───────────────────────────── directory read ─────────────────────────────


def normalise_dn(dn: str) -> str:
    """A DN in the form used as a dictionary key: RDNs trimmed, case folded.

    LDAP compares DNs case-insensitively for the attribute types used in
    directories (cn, ou, dc); two spellings of one DN must meet in set algebra.
    """
    from ldap3.utils.dn import safe_dn

    try:
        return safe_dn(dn).lower()
    except Exception:  # a DN ldap3 cannot parse is compared as written
        return dn.strip().lower()


@dataclass(slots=True, frozen=True)
class DirectoryEntry:
    """One user entry as a source read it, in the compact form every source produces.

    `attributes` holds only the attributes the policy needs, keys lower-cased,
    values decoded to text (binary anchors in their canonical text form).
    """

    directory: str
    dn: str
    anchor: str  # objectGUID as 8-4-4-4-12 text, or entryUUID
    account_name: str | None
    attributes: dict[str, tuple[str, ...]]
    disabled: bool
    search_base: str  # the policy search base it was found under (for ou-teams)
    groups: frozenset[str] = frozenset()  # normalised DNs of groups it is a direct member of

    def first(self, attribute: str) -> str | None:
        values = self.attributes.get(attribute.lower())
        return values[0] if values else None


@dataclass(slots=True, frozen=True)
class DirectoryGroup:
    directory: str
    dn: str
    anchor: str
    name: str
    members: frozenset[str]  # normalised DNs of direct members (users or groups)


@dataclass(slots=True, frozen=True)
class OutOfScope:
    """An entry the source saw but left out of scope, with the reason. Optional:
    a live source usually never sees them (the server applies the filter)."""

    directory: str
    dn: str
    anchor: str
    reason: str  # "not a member of CN=Security Key Owners,... (directly or nested)"


@dataclass(slots=True)
class DirectoryRead:
    """Everything one directory contributed: complete, or the source raised."""

    directory: str
    users: list[DirectoryEntry]  # in scope by bases, filter and member_of; disabled ones included, flagged
    groups: dict[str, DirectoryGroup]  # normalised DN -> group, the groups scope
    out_of_scope: list[OutOfScope] = field(default_factory=list)
    entries_read: int = 0  # what the source pulled (preview's "number of entries read")


# ───────────────────────────── desired state ─────────────────────────────


@dataclass(slots=True, frozen=True)
class Link:
    """Ties a reconciler user to one directory entry."""

    directory: str
    anchor: str

    def __str__(self) -> str:
        return f"{self.directory}:{self.anchor}"


@dataclass(slots=True, frozen=True)
class DesiredUser:
    key: str  # "directory:anchor" of the winning entry; the store's key wins if it already has the person
    email: str  # lower-cased
    display_name: str
    attributes: tuple[tuple[str, str], ...]  # sorted (name, value)
    team: str | None  # team key
    memberships: frozenset[str]  # team keys beyond the primary team (group-teams)
    links: tuple[Link, ...]  # sorted; more than one when directories merge by email
    source: str  # the directory whose attributes won
    dn: str
    account_name: str | None
    placed_by: str  # which rule placed them, for explain


@dataclass(slots=True, frozen=True)
class DesiredTeam:
    key: str  # "Organisation/Sales/EMEA" for OU paths, "group:<anchor>" for directory groups
    name: str
    parent: str | None


Verdict = Literal["imported", "ignored", "disabled"]


@dataclass(slots=True, frozen=True)
class EntryVerdict:
    """What became of one entry read: the rows of preview and explain."""

    directory: str
    dn: str
    anchor: str
    account_name: str | None
    email: str | None
    verdict: Verdict
    reason: str
    user_key: str | None = None  # the desired user it contributed to


@dataclass(slots=True)
class DesiredState:
    users: dict[str, DesiredUser]
    teams: dict[str, DesiredTeam]
    verdicts: list[EntryVerdict]  # one per entry read, in directory then DN order
    directories: dict[str, dict[str, int]]  # name -> {"read": n, "in_scope": n, "imported": n, "ignored": n, "disabled": n}


# ───────────────────────────── store state ─────────────────────────────

Status = Literal["active", "deactivated"]


@dataclass(slots=True, frozen=True)
class StoreUser:
    key: str  # managed users: the key the reconciler gave them; unmanaged: "local:<id>"
    email: str
    display_name: str
    attributes: tuple[tuple[str, str], ...]
    team: str | None
    memberships: frozenset[str]
    links: tuple[Link, ...]
    status: Status
    managed: bool


@dataclass(slots=True, frozen=True)
class StoreTeam:
    key: str
    name: str
    parent: str | None
    managed: bool


@dataclass(slots=True)
class StoreState:
    users: dict[str, StoreUser]
    teams: dict[str, StoreTeam]
    fingerprint: str  # changes whenever the store's content changes: what stale plans are checked against


# ───────────────────────────── plan ─────────────────────────────

Kind = Literal["user", "team", "membership"]
Action = Literal[
    "create", "adopt", "update", "move", "reactivate", "deactivate", "delete", "add", "remove"
]


@dataclass(slots=True, frozen=True)
class Change:
    """One entry of a plan: enough to apply it without the directory, and to review it.

    `before`/`after` hold the changed fields only for updates; the whole record
    for creates, adoptions and deletes. `cause` is set by --base-policy reviews:
    "policy" (this edit does it) or "pending" (would happen anyway).
    """

    action: Action
    kind: Kind
    key: str
    reason: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    cause: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"action": self.action, "kind": self.kind, "key": self.key}
        data["before"] = self.before
        data["after"] = self.after
        data["reason"] = self.reason
        if self.cause:
            data["cause"] = self.cause
        return data


# Changes apply in this order so parents exist before children and removals come last.
ACTION_ORDER: dict[tuple[str, str], int] = {
    ("team", "create"): 0,
    ("user", "create"): 1,
    ("user", "adopt"): 2,
    ("user", "reactivate"): 3,
    ("user", "update"): 4,
    ("user", "move"): 5,
    ("membership", "add"): 6,
    ("membership", "remove"): 7,
    ("user", "deactivate"): 8,
    ("user", "delete"): 9,
    ("team", "delete"): 10,
}


def change_sort_key(change: Change) -> tuple[int, str]:
    return (ACTION_ORDER[(change.kind, change.action)], change.key)


@dataclass(slots=True)
class Plan:
    policy_path: str
    policy_digest: str
    store_kind: str
    store_fingerprint: str
    directories: dict[str, dict[str, int]]
    changes: list[Change]  # sorted by change_sort_key
    ignored: list[EntryVerdict]  # entries read but not imported, with the reason
    managed_users: int  # the population safety percentages are taken of
    generated_at: str = ""  # ISO 8601 UTC; the only field that differs between identical runs

    @property
    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in self.changes:
            name = f"{c.kind}.{c.action}"
            counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: ACTION_ORDER[tuple(kv[0].split(".", 1))]))  # type: ignore[arg-type]

    @property
    def empty(self) -> bool:
        return not self.changes
