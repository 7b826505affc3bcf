"""Stage 1, per entry: in scope and with an email? And the verdicts every entry read ends with."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..dn import normalise_dn
from ..model import DirectoryEntry, DirectoryRead, EntryVerdict
from ..policy.model import Directory, ManualEntry, Policy
from .templates import email_of, email_problem


@dataclass(slots=True)
class Candidate:
    """An entry that passed stage 1, with the email it will be known by and the template that produced it."""

    entry: DirectoryEntry
    directory: Directory
    email: str
    email_rule: str
    manual: tuple[ManualEntry, ...] = ()  # mode manual: the entries of manual: that name it, in policy order


def verdict_order(precedence: tuple[str, ...]) -> Callable[[EntryVerdict], tuple[int, str]]:
    """The sort key of verdicts: by directory (in `identity.precedence` order), then by normalised DN."""
    rank = {name: position for position, name in enumerate(precedence)}
    return lambda v: (rank[v.directory], normalise_dn(v.dn))


class Verdicts:
    """The verdict (imported, ignored, disabled) and reason of every entry read, as the stages reach them."""

    def __init__(self, list_winners: bool = True) -> None:
        self.items: list[EntryVerdict] = []
        self.unmatched_manual: list[ManualEntry] = []  # mode manual: entries of manual: that name no entry read
        self.list_winners = list_winners  # False: a winning entry's "imported" is counted, not listed
        self.winners_unlisted: dict[str, int] = {}  # directory -> how many

    def add(self, entry: DirectoryEntry, email: str | None, verdict: str, reason: str, user_key: str | None = None):
        self.items.append(
            EntryVerdict(entry.directory, entry.dn, entry.anchor, entry.account_name, email, verdict, reason, user_key)  # type: ignore[arg-type]
        )

    def count_winner(self, directory: str) -> None:
        """A person's winning entry was imported (without `list_winners`, instead of `add`)."""
        self.winners_unlisted[directory] = self.winners_unlisted.get(directory, 0) + 1

    def ordered(self, precedence: tuple[str, ...]) -> list[EntryVerdict]:
        """The verdicts by directory (in `identity.precedence` order), then by DN."""
        self.items.sort(key=verdict_order(precedence))
        return self.items

    def counts(self, policy: Policy, reads: dict[str, DirectoryRead],
               in_scope: dict[str, int] | None = None) -> dict[str, dict[str, int]]:
        """Per directory: entries read, in scope (`in_scope`, counted before the entries were let go, or
        the reads' users now), and how many of them each verdict took."""
        counts: dict[str, dict[str, int]] = {}
        for d in policy.directories:
            read = reads[d.name]
            users = in_scope[d.name] if in_scope is not None else len(read.users)
            counts[d.name] = {"read": read.entries_read, "in_scope": users,
                              "imported": 0, "ignored": 0, "disabled": 0}
        for v in self.items:
            counts[v.directory][v.verdict] += 1
        for directory, unlisted in self.winners_unlisted.items():
            counts[directory]["imported"] += unlisted
        return counts


def in_scope(policy: Policy, reads: dict[str, DirectoryRead], verdicts: Verdicts) -> list[Candidate]:
    """The entries that go on to stage 2; every other entry read (out of scope, disabled, without an
    email, not listed under manual:) gets its verdict here."""
    manual = ManualIndex(policy.manual_entries) if policy.placement.mode == "manual" else None
    found: list[Candidate] = []
    for directory in policy.directories:
        read = reads[directory.name]
        for gone in read.out_of_scope:
            verdicts.items.append(
                EntryVerdict(gone.directory, gone.dn, gone.anchor, None, None, "ignored", gone.reason)
            )
        shared = _shared_anchors(read.users)
        for entry in read.users:
            email, rule = email_of(directory.mapping, entry)
            listing = manual.naming(entry, email) if manual is not None else ()
            if shared and entry.anchor.lower() in shared:
                others = "; ".join(sorted(o.dn for o in shared[entry.anchor.lower()] if o is not entry))
                verdicts.add(entry, email, "ignored", f"conflict: the same {directory.schema.anchor} {entry.anchor} "
                                                      f"as {others} in {directory.name}; neither is imported")
            elif entry.disabled and not directory.users.include_disabled:
                verdicts.add(entry, email, "disabled", f"disabled in {directory.name}")
            elif entry.disabled and policy.lifecycle.when_disabled == "delete":
                verdicts.add(entry, email, "disabled", f"disabled in {directory.name}; users.include_disabled imports "
                                                        "nothing while lifecycle.when_disabled is delete")
            elif email is None:
                tried = ", ".join(t.text for t in directory.mapping.email)
                verdicts.add(entry, None, "ignored", f"no email: none of {tried} yields a value")
            elif (problem := email_problem(email)) is not None:
                verdicts.add(entry, None, "ignored", f"email {email!r} is not a valid address: {problem}")
            elif manual is not None and not listing:
                verdicts.add(entry, email, "ignored", "not listed under manual:")
            else:
                found.append(Candidate(entry, directory, email, rule or "", listing))
    if manual is not None:
        verdicts.unmatched_manual = manual.unmatched()
    return found


def _shared_anchors(entries: list[DirectoryEntry]) -> dict[str, list[DirectoryEntry]]:
    """The entries of one read that share an anchor, by lower-cased anchor; usually none.

    Users are keyed by anchor: two entries with one anchor would be one user, the
    second silently replacing the first. Like the same email twice in one
    directory (`merge`), that is a conflict and neither is imported.
    """
    seen: dict[str, DirectoryEntry] = {}
    shared: dict[str, list[DirectoryEntry]] = {}
    for entry in entries:
        key = entry.anchor.lower()
        first = seen.setdefault(key, entry)
        if first is not entry:
            shared.setdefault(key, [first]).append(entry)
    return shared


class ManualIndex:
    """`manual:` for lookups: which of its entries name a directory entry, by email, account name or DN
    (a name case-insensitively, a DN as a DN), and which named none of the entries read."""

    def __init__(self, entries: tuple[ManualEntry, ...]):
        self.entries = entries
        self.by_name: dict[str, list[int]] = {}
        self.by_dn: dict[str, list[int]] = {}
        for index, m in enumerate(entries):
            self.by_name.setdefault(m.who.strip().lower(), []).append(index)
            if "=" in m.who:
                self.by_dn.setdefault(normalise_dn(m.who), []).append(index)
        self.named: set[int] = set()

    def naming(self, entry: DirectoryEntry, email: str | None) -> tuple[ManualEntry, ...]:
        """The entries of manual: that name `entry`, in policy order (the first decides its team)."""
        found = {*self.by_name.get(email or "", ()), *self.by_name.get((entry.account_name or "").lower(), ()),
                 *self.by_dn.get(normalise_dn(entry.dn), ())}
        if not found:
            return ()
        self.named |= found
        return tuple(self.entries[index] for index in sorted(found))

    def unmatched(self) -> list[ManualEntry]:
        return [m for index, m in enumerate(self.entries) if index not in self.named]


def listed(entry: DirectoryEntry, email: str, manual: set[str], manual_dns: set[str]) -> bool:
    """Whether `manual:` names the entry, by email, account name or DN."""
    names = {email, (entry.account_name or "").lower()}
    return bool(names & manual) or normalise_dn(entry.dn) in manual_dns
