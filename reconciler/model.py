"""The values that flow between the stages, one way:

    policy ─► directory read ─► desired state ─► plan (diff against the store) ─► apply

Each stage takes the previous stage's values and returns its own; none reaches
back. Everything here is a plain dataclass so stages can be tested in isolation
and a new directory kind or store only has to produce or accept these.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Set as AbstractSet
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal, Protocol, TypeVar

from .changes import CHANGE_KINDS
from .dn import normalise_dn  # noqa: F401  (DNs are reconciler.dn's; re-exported for the importers of model)


def quick_init(cls: type) -> type:
    """Gives a frozen slots dataclass an __init__ that sets each field through its slot's descriptor, not
    through `object.__setattr__` by name as the generated one does: the same parameters, defaults and
    `__post_init__`, in about half the time. A plan of a million people makes several million of these
    objects (bench/README.md, "Decoding on the other core"). The generated __init__ stays as
    `_dataclass_init` (tests/unit/test_quick_init.py builds every class both ways). Only for classes whose
    fields all take plain defaults, if any: no default factory, no init=False, no InitVar."""
    from dataclasses import MISSING, fields

    declared = cls.__dataclass_fields__  # type: ignore[attr-defined]
    chosen = fields(cls)
    if len(chosen) != len(declared) or any(f.default_factory is not MISSING or not f.init for f in chosen):
        raise TypeError(f"quick_init: {cls.__name__} has a field it does not handle")
    scope: dict[str, Any] = {}
    parameters, lines = [], []
    for f in chosen:
        scope[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        if f.default is MISSING:
            parameters.append(f.name)
        else:
            scope[f"_default_{f.name}"] = f.default
            parameters.append(f"{f.name}=_default_{f.name}")
        lines.append(f"    _set_{f.name}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        lines.append("    self.__post_init__()")
    exec(f"def __init__(self, {', '.join(parameters)}):\n" + "\n".join(lines), scope)  # noqa: S102 (our own text)
    scope["__init__"].__qualname__ = f"{cls.__qualname__}.__init__"
    cls._dataclass_init = cls.__init__  # type: ignore[attr-defined]
    cls.__init__ = scope["__init__"]  # type: ignore[misc]
    return cls

# ───────────────────────────── directory read ─────────────────────────────


class DnSet(tuple):
    """A set of normalised DNs kept as a tuple: what a frozenset of them means, at a fraction of the bytes.

    A user is in about five groups; a frozenset of five costs 472 bytes, this tuple 80 (a million users
    read, 390 MB). Duplicates are dropped when it is made, in first-seen order. It compares, hashes and
    combines as a set: equal to any set with the same DNs (`frozenset`, `set`, another `DnSet`), and
    `|`, `&`, `-`, `^` with a set on either side are set algebra (a `DnSet` when it is on the left,
    the other operand's set type when that is). `in` scans the tuple: cheap for the few DNs of a user,
    and nothing asks it of a big group's members.
    """

    __slots__ = ()

    def __new__(cls, dns: Iterable[str] = ()) -> "DnSet":
        if type(dns) is cls:
            return dns  # type: ignore[return-value]
        return tuple.__new__(cls, dict.fromkeys(dns))

    def _same(self, other: object) -> bool | None:
        if type(other) in _SET_TYPES or isinstance(other, AbstractSet):
            return len(self) == len(other) and all(dn in other for dn in self)  # type: ignore[arg-type]
        return False if isinstance(other, tuple) else None  # a tuple is a sequence: never equal to a set

    def __eq__(self, other: object) -> bool:
        same = self._same(other)
        return NotImplemented if same is None else same  # type: ignore[return-value]

    def __ne__(self, other: object) -> bool:
        same = self._same(other)
        return NotImplemented if same is None else not same  # type: ignore[return-value]

    def __hash__(self) -> int:
        return hash(frozenset(self))

    def __le__(self, other: object) -> bool:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return all(dn in other for dn in self)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return len(self) < len(other) and self.__le__(other)

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return all(dn in self for dn in other)

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return len(self) > len(other) and self.__ge__(other)

    def __or__(self, other: object) -> "DnSet":
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return DnSet((*self, *other))

    def __and__(self, other: object) -> "DnSet":
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return DnSet(dn for dn in self if dn in other)

    def __sub__(self, other: object) -> "DnSet":
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return DnSet(dn for dn in self if dn not in other)

    def __xor__(self, other: object) -> "DnSet":
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return DnSet((*(dn for dn in self if dn not in other), *(dn for dn in other if dn not in self)))

    # a set on the left: the answer is of its type, as `frozenset | set` is a frozenset
    def __ror__(self, other: object):
        return other | frozenset(self) if isinstance(other, AbstractSet) else NotImplemented

    def __rand__(self, other: object):
        return other & frozenset(self) if isinstance(other, AbstractSet) else NotImplemented

    def __rsub__(self, other: object):
        return other - frozenset(self) if isinstance(other, AbstractSet) else NotImplemented

    def __rxor__(self, other: object):
        return other ^ frozenset(self) if isinstance(other, AbstractSet) else NotImplemented

    def union(self, *others: Iterable[str]) -> "DnSet":
        return DnSet((*self, *(dn for other in others for dn in other)))

    def intersection(self, *others: Iterable[str]) -> "DnSet":
        sets = [o if isinstance(o, AbstractSet) else frozenset(o) for o in others]
        return DnSet(dn for dn in self if all(dn in s for s in sets))

    def difference(self, *others: Iterable[str]) -> "DnSet":
        sets = [o if isinstance(o, AbstractSet) else frozenset(o) for o in others]
        return DnSet(dn for dn in self if not any(dn in s for s in sets))

    def issubset(self, other: Iterable[str]) -> bool:
        return self.__le__(other if isinstance(other, AbstractSet) else frozenset(other))

    def issuperset(self, other: Iterable[str]) -> bool:
        return all(dn in self for dn in other)

    def isdisjoint(self, other: Iterable[str]) -> bool:
        return not any(dn in self for dn in other)

    def __repr__(self) -> str:
        return f"DnSet({tuple(self)!r})"


AbstractSet.register(DnSet)
_SET_TYPES = (frozenset, set, DnSet)


class Attributes(Mapping):
    """An entry's attributes, read-only: name -> tuple of text values, like the dict it replaces, compactly.

    The names are the read's (one `layout` dict, name -> position, shared by every entry of a read); each
    entry keeps only its values, aligned to them: None where it has no value, the text itself where it has
    one (nearly always), a tuple where it has several. Per user that is one small object and one tuple
    instead of a dict and a tuple per value (at four attributes, 120 bytes instead of 375). It reads as a
    mapping of the names that have values, in layout order, each to a tuple of its values, and is equal to
    any mapping with the same items; `first(name)` is the first value without making a tuple.
    """

    __slots__ = ("_layout", "_values")

    def __init__(self, layout: dict[str, int], values: tuple[str | tuple[str, ...] | None, ...]):
        self._layout = layout
        self._values = values

    @classmethod
    def of(cls, attributes: Mapping[str, Iterable[str]]) -> "Attributes":
        """From a mapping of names to values (a dict a test or another source built); names without values are left out."""
        if type(attributes) is cls:
            return attributes  # type: ignore[return-value]
        kept = {name: tuple(values) for name, values in attributes.items() if values}
        return cls({name: index for index, name in enumerate(kept)},
                   tuple(values[0] if len(values) == 1 else values for values in kept.values()))

    def first(self, name: str) -> str | None:
        index = self._layout.get(name)
        if index is None:
            return None
        value = self._values[index]
        return value if value is None or type(value) is str else value[0]

    def __getitem__(self, name: str) -> tuple[str, ...]:
        index = self._layout.get(name)
        value = None if index is None else self._values[index]
        if value is None:
            raise KeyError(name)
        return (value,) if type(value) is str else value

    def get(self, name: str, default=None):
        index = self._layout.get(name)
        value = None if index is None else self._values[index]
        if value is None:
            return default
        return (value,) if type(value) is str else value

    def __contains__(self, name: object) -> bool:
        index = self._layout.get(name)  # type: ignore[call-overload]
        return index is not None and self._values[index] is not None

    def __iter__(self) -> Iterator[str]:
        values = self._values
        return (name for name, index in self._layout.items() if values[index] is not None)

    def __len__(self) -> int:
        return len(self._values) - self._values.count(None)

    def __repr__(self) -> str:
        return repr(dict(self.items()))

    def __reduce__(self):
        return (Attributes, (self._layout, self._values))


@quick_init
@dataclass(slots=True, frozen=True)
class DirectoryEntry:
    """One user entry as a source read it, in the compact form every source produces.

    `attributes` holds only the attributes the policy needs, keys lower-cased,
    values decoded to text (binary anchors in their canonical text form): a read-only
    mapping of names to tuples of values (`Attributes`; a dict given here becomes one),
    and `groups` a set of DNs (`DnSet`; any other set given here becomes one).
    """

    directory: str
    dn: str
    anchor: str  # objectGUID as 8-4-4-4-12 text, or entryUUID
    account_name: str | None
    attributes: Attributes
    disabled: bool
    search_base: str  # the policy search base it was found under (for ou-teams)
    groups: DnSet = DnSet()  # normalised DNs of the groups it is a direct member of

    def __post_init__(self) -> None:
        # the sources hand both in compact already (directory/entries.py); tests and callers may give a dict and a set
        if type(self.attributes) is not Attributes:
            object.__setattr__(self, "attributes", Attributes.of(self.attributes))
        if type(self.groups) is not DnSet:
            object.__setattr__(self, "groups", DnSet(self.groups))

    def first(self, attribute: str) -> str | None:
        return self.attributes.first(attribute.lower())


@quick_init
@dataclass(slots=True, frozen=True)
class DirectoryGroup:
    directory: str
    dn: str
    anchor: str
    name: str
    members: AbstractSet[str]  # normalised DNs of direct members (users or groups): a set (a DnSet from the sources)


@dataclass(slots=True, frozen=True)
class OutOfScope:
    """An entry the source saw but left out of scope, with the reason. Optional:
    a live source usually never sees them (the server applies the filter)."""

    directory: str
    dn: str
    anchor: str
    reason: str  # "not a member of CN=Security Key Owners,... (directly or through nested groups)"


@dataclass(slots=True)
class DirectoryRead:
    """Everything one directory contributed: complete, or the source raised."""

    directory: str
    users: list[DirectoryEntry]  # in scope by bases, filter and member_of; disabled ones included, flagged
    groups: dict[str, DirectoryGroup]  # normalised DN -> group, the groups scope
    out_of_scope: list[OutOfScope] = field(default_factory=list)
    entries_read: int = 0  # what the source pulled (preview's "number of entries read")


# ───────────────────────────── desired state ─────────────────────────────


@quick_init
@dataclass(slots=True, frozen=True)
class Link:
    """Ties a reconciler user to one directory entry."""

    directory: str
    anchor: str

    def __str__(self) -> str:
        return f"{self.directory}:{self.anchor}"


@quick_init
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
    # "active", or "deactivated" for a person whose every entry is disabled and imported anyway
    # (users.include_disabled, lifecycle.when_disabled: deactivate); None: the store's status is kept (keep)
    status: Status | None = "active"


@dataclass(slots=True, frozen=True)
class DesiredTeam:
    key: str  # "Organisation/Sales/EMEA" for OU paths, "group:<anchor>" for directory groups
    name: str
    parent: str | None


Verdict = Literal["imported", "ignored", "disabled"]


@quick_init
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
    warnings: list[str] = field(default_factory=list)  # what the policy asks for that no entry answers


# ───────────────────────────── store state ─────────────────────────────

Status = Literal["active", "deactivated"]


@quick_init
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


class KnownUser(Protocol):
    """What a store read may take a user's values from: the person the plan will compare that user with
    (a DesiredUser). Equal values are then one object, not two: at a million users, what the store and the
    directories agree on is most of the store's size (bench/README.md: "store read")."""

    key: str
    email: str
    display_name: str
    attributes: tuple[tuple[str, str], ...]
    links: tuple[Link, ...]


@dataclass(slots=True, frozen=True)
class StoreTeam:
    key: str
    name: str
    parent: str | None
    managed: bool


@dataclass(slots=True, frozen=True)
class Written:
    """What reconciler last wrote for a managed user, of the fields a person can edit in the application."""

    email: str
    display_name: str
    attributes: tuple[tuple[str, str], ...]  # sorted (name, value)


@dataclass(slots=True)
class StoreState:
    users: dict[str, StoreUser]
    teams: dict[str, StoreTeam]
    fingerprint: str  # changes whenever the store's content changes: what stale plans are checked against
    # sign-in names the store keeps unique across all its users and derives from the email (SCIM's userName),
    # lowercased -> the key of the user holding it; empty for stores with no such rule (SQL)
    taken_names: dict[str, str] = field(default_factory=dict)
    # the three-way comparison: for each managed user whose record someone changed since reconciler last wrote
    # it, what it wrote (users the store holds as written are not listed: that is nearly all of them)
    edited: dict[str, Written] = field(default_factory=dict)
    remembers_writes: bool = False  # the store keeps what it last wrote; without it, edits cannot be told apart


# ───────────────────────────── plan ─────────────────────────────

Kind = Literal["user", "team", "membership"]
Action = Literal[
    "create", "adopt", "update", "move", "reactivate", "deactivate", "delete", "add", "remove"
]


@quick_init
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
    subject: str = ""  # who or what, for people: the email; a team's name; "email in team"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"action": self.action, "kind": self.kind, "key": self.key, "subject": self.subject}
        data["before"] = self.before
        data["after"] = self.after
        data["reason"] = self.reason
        if self.cause:
            data["cause"] = self.cause
        return data


# Changes apply in this order so parents exist before children and removals come last (reconciler/changes.py).
ACTION_ORDER: dict[tuple[str, str], int] = {(c.kind, c.action): c.order for c in CHANGE_KINDS}


Keyed = TypeVar("Keyed", "DesiredUser", "StoreUser")


def by_key_in_order(users: dict[str, Keyed]) -> dict[str, Keyed]:
    """The same users (each filed under its own key) in key order. `users` is emptied before the sorted
    dict is built, so the two tables never live at once: at a million users each is about 40 MB."""
    ordered = sorted(users.values(), key=attrgetter("key"))
    users.clear()
    return {user.key: user for user in ordered}


def sort_changes(changes: list[Change]) -> list[Change]:
    """Apply order: by ACTION_ORDER, then by key, except team deletes, which go
    children first (a path key sorts after its parent's, so descending)."""
    ordered = sorted(changes, key=lambda c: (ACTION_ORDER[(c.kind, c.action)], c.key))
    deletes = [c for c in ordered if (c.kind, c.action) == ("team", "delete")]
    if not deletes:
        return ordered
    rest = [c for c in ordered if (c.kind, c.action) != ("team", "delete")]
    return rest + sorted(deletes, key=lambda c: c.key, reverse=True)


@dataclass(slots=True, frozen=True)
class LimitCheck:
    """One safety limit held against a plan: what it plans, what the policy allows, and whether apply would go on."""

    limit: str  # the policy key: "max_deactivations"
    noun: str  # "deactivations"
    planned: int
    allowed: int | None  # None: the policy sets no limit
    rule: str  # how `allowed` is reached: "10% (28 of 288 active users)"
    window_hours: int | None = None  # set: `planned` counts what was applied in this many hours, plus this plan

    @property
    def ok(self) -> bool:
        return self.allowed is None or self.planned <= self.allowed

    def to_json(self) -> dict[str, Any]:
        data = {"limit": self.limit, "noun": self.noun, "planned": self.planned, "allowed": self.allowed,
                "rule": self.rule, "ok": self.ok}
        if self.window_hours is not None:
            data["window_hours"] = self.window_hours
        return data


@dataclass(slots=True, frozen=True)
class Review:
    """What a pull-request reviewer approves (plan --base-policy): this policy, and what its edit does.

    `effect` counts the changes the edit itself causes (cause "policy"), per kind.action;
    apply after merge holds the fresh effect against it (reconciler/plan/review.py).
    """

    policy_digest: str
    base_policy_digest: str | None  # None: no policy on the target branch yet, the edit causes everything
    effect: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"policy_digest": self.policy_digest, "base_policy_digest": self.base_policy_digest,
                "effect": dict(self.effect)}


@dataclass(slots=True, frozen=True)
class Person:
    """Who a user change is about, as the store knows them before the plan: what a reviewer reads
    ("the CEO", not a bare address). Renderers show it; nothing applies it."""

    name: str
    email: str
    team: str | None  # team key
    attributes: tuple[tuple[str, str], ...]  # sorted (name, value)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "email": self.email, "team": self.team, "attributes": dict(self.attributes)}


@dataclass(frozen=True)
class ReadNote:
    """How a directory was read, for the plan: `kind` "full" or "delta", and why in plain words."""

    directory: str
    kind: str
    reason: str
    changed: int | None = None  # records a delta changed or removed

    def to_json(self) -> dict[str, Any]:
        data = {"directory": self.directory, "kind": self.kind, "reason": self.reason}
        if self.changed is not None:
            data["changed"] = self.changed
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> "ReadNote":
        return ReadNote(str(data["directory"]), str(data["kind"]), str(data["reason"]), data.get("changed"))

    @property
    def text(self) -> str:
        return f"{self.directory}: {self.kind} read ({self.reason})"


@dataclass(slots=True)
class Plan:
    policy_path: str
    policy_digest: str
    store_kind: str
    store_fingerprint: str
    directories: dict[str, dict[str, int]]
    changes: list[Change]  # in apply order (sort_changes)
    ignored: list[EntryVerdict]  # entries read but not imported, with the reason
    managed_users: int  # active managed users: the population safety percentages are taken of
    generated_at: str = ""  # ISO 8601 UTC; the only field that differs between identical runs
    safety: tuple[LimitCheck, ...] = ()  # every limit the policy sets, held against this plan
    review: Review | None = None  # with --base-policy: what the reviewer approves
    # for readers: every team the changes name, as its path of names ("Example Corp / Sales"), and the
    # store's record of every user changed but not created (last known name, team, attributes)
    teams: dict[str, str] = field(default_factory=dict)
    people: dict[str, Person] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # e.g. a manual: entry that names nobody read
    reads: list[ReadNote] = field(default_factory=list)  # how each directory with `delta:` was read (not digested)
    # the delta-read states to keep with the apply of this plan (directory -> bytes); never in the document
    sync_states: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)
    # the digest, computed once (reconciler/plan/document.py) and carried: renderers, --out and apply all
    # need it. It covers neither `cause` nor `review`, so a replace() that only marks causes keeps it valid.
    digest_cache: str | None = field(default=None, repr=False, compare=False)

    @property
    def refused(self) -> bool:
        """Apply would refuse this plan (without --force): a safety limit is exceeded."""
        return any(not check.ok for check in self.safety)

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
