"""`reconciler explain POLICY WHO`: why one person is in or out, condition by condition.

The person is looked for anywhere in each directory (`lookup`: the whole LDIF snapshot, or
bounded searches of a live server's naming contexts), not only in what the plan read, by
any name they may be asked by (`query`). For every entry found each condition is evaluated
on its own (`checks`): the search bases, the filter clause by clause (the same evaluator as
the LDIF source, on the client for a live server), member_of with the path of nesting,
disabled, the email templates, a conflict and with whom. Then what the plan made of them:
the verdict, the team and the rule that placed them, what the store holds, the pending
changes. Nothing found is a `ReconcilerError` naming what was searched, with close matches.

The CLI prints an `Explanation` as text or as JSON (`to_json`, stable keys).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from ..changes import membership_parts
from ..desired.templates import render_template
from ..directory.filters import InvalidFilter
from ..dn import normalise_dn
from ..errors import ReconcilerError
from ..model import Change, DesiredUser, EntryVerdict, StoreUser
from ..policy.model import Directory
from .checks import ORDER, Check, conflict_check, disabled_check, email_check, filter_check, manual_check, \
    member_of_check, search_base_check
from .lookup import Found, open_lookup
from .query import Query, by_display_name_only, parse_query, suggestions

__all__ = ["Explanation", "EntryExplanation", "explain", "NotFound"]


class NotFound(ReconcilerError):
    """Nobody answers to the name; carries the explanation (with suggestions) for --format json."""

    def __init__(self, message: str, explanation: "Explanation"):
        super().__init__(message)
        self.explanation = explanation


@dataclass
class EntryExplanation:
    directory: str
    source: str  # where it was read: "the snapshot /path/corp.ldif" or "ldaps://dc1.corp.example.com"
    dn: str
    matched_by: list[str]
    account_name: str | None
    display_name: str | None
    email: str | None
    read_by_plan: bool
    verdict: str  # the plan's (imported, ignored, disabled), or "out of scope" for an entry it did not read
    reason: str
    checks: list[Check]
    user: DesiredUser | None = None
    team_name: str | None = None
    membership_names: list[str] = field(default_factory=list)
    not_applied: list[str] = field(default_factory=list)

    @property
    def excluded_by(self) -> list[str]:
        return [c.excludes for c in self.checks if c.ok is False]

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_json(self) -> dict:
        user = None
        if self.user is not None:
            user = {"key": self.user.key, "email": self.user.email, "team": self.user.team,
                    "team_name": self.team_name, "placed_by": self.user.placed_by,
                    "memberships": sorted(self.user.memberships), "status": self.user.status}
        return {
            "directory": self.directory, "source": self.source, "dn": self.dn, "matched_by": self.matched_by,
            "account_name": self.account_name, "display_name": self.display_name, "email": self.email,
            "read_by_plan": self.read_by_plan, "verdict": self.verdict, "reason": self.reason,
            "excluded_by": self.excluded_by, "checks": {c.name: c.to_json() for c in self.checks},
            "user": user, "not_applied": self.not_applied,
        }


@dataclass
class Explanation:
    query: str
    form: str  # dn | domain | name
    searched: str
    entries: list[EntryExplanation]
    store_users: list[StoreUser]
    pending: list[Change]
    brief: bool = False  # several people answer to a display name: each in a line
    truncated: list[str] = field(default_factory=list)  # directories whose name search hit its size limit
    suggestions: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "query": self.query, "form": self.form, "searched": self.searched, "found": bool(self.entries or self.store_users),
            "brief": self.brief, "truncated": self.truncated, "suggestions": self.suggestions,
            "entries": [e.to_json() for e in self.entries],
            "store": [{"key": u.key, "email": u.email, "display_name": u.display_name, "team": u.team,
                       "status": u.status, "managed": u.managed} for u in self.store_users],
            "plan": [{"action": c.action, "kind": c.kind, "key": c.key, "subject": c.subject, "reason": c.reason}
                     for c in self.pending],
        }


def explain(planned, who: str) -> Explanation:
    """`planned` is the `pipeline.Planned` of the policy: its reads' verdicts, desired state, store and plan."""
    policy = planned.policy
    query = parse_query(who, policy)
    verdicts = planned.desired.verdicts
    by_entry: dict[tuple[str, str], EntryVerdict] = {(v.directory, normalise_dn(v.dn)): v for v in verdicts}
    planned_matches = _verdict_matches(query, policy, verdicts)
    entries: list[EntryExplanation] = []
    names: list[str] = []
    truncated: list[str] = []
    for directory in policy.directories:
        also = {key: value for (name, key), value in planned_matches.items() if name == directory.name}
        if directory.name not in query.directories and not also:
            continue
        lookup = open_lookup(directory)
        try:
            found = lookup.find(query, also)
            if lookup.truncated:
                truncated.append(directory.name)
            for entry in found:
                entries.append(_explain_entry(planned, directory, lookup, entry, by_entry.get((directory.name, entry.key))))
            if not found:
                names += lookup.names(query)
        finally:
            lookup.close()
    user_keys = {e.user.key for e in entries if e.user is not None} | \
                {by_entry[(e.directory, normalise_dn(e.dn))].user_key for e in entries
                 if (e.directory, normalise_dn(e.dn)) in by_entry} - {None}
    links = {f"{v.directory}:{v.anchor}" for e in entries
             if (v := by_entry.get((e.directory, normalise_dn(e.dn)))) is not None}
    emails = {e.email for e in entries if e.email} | ({query.key} if query.form == "name" else set())
    store_users = [u for u in planned.store_state.users.values()
                   if u.email.lower() in emails or u.key in user_keys or any(str(link) in links for link in u.links)]
    keys = user_keys | {u.key for u in store_users}
    pending = [c for c in planned.plan.changes
               if c.key in keys or (c.kind == "membership" and membership_parts(c.key)[0] in keys)]
    searched = query.searched(policy.directories)
    explanation = Explanation(query.text, query.form, searched, entries, store_users, pending, truncated=truncated)
    if len(entries) > 1 and all(by_display_name_only(e.matched_by) for e in entries) \
            and len({e.email or e.dn for e in entries}) > 1:
        explanation.brief = True
    if not entries and not store_users:
        names += _plan_names(planned, query)
        explanation.suggestions = suggestions(query, names)
        hint = f"; did you mean {' or '.join(explanation.suggestions)}?" if explanation.suggestions else \
            "; check the spelling, or run preview"
        store = ", and no store user has it as email" if query.form == "name" else ""
        raise NotFound(f"{query.text}: not found: {searched}{store}{hint}", explanation)
    return explanation


def _verdict_matches(query: Query, policy, verdicts) -> dict[tuple[str, str], tuple[str, list[str]]]:
    """Entries the plan read that answer to the query by what the verdicts hold (the email the mapping
    made, the account name, the DN): (directory, normalised DN) -> (DN, how)."""
    found: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for v in verdicts:
        if v.directory not in query.directories:
            continue
        how: list[str] = []
        if query.form == "dn":
            how = ["DN"] if normalise_dn(v.dn) == query.key else []
        elif query.form == "domain":
            account = policy.directory(v.directory).schema.account_name
            how = [f"{account} in domain {query.domain}"] if (v.account_name or "").casefold() == query.key else []
        else:
            if (v.email or "").casefold() == query.key:
                how.append("email")
            if (v.account_name or "").casefold() == query.key:
                how.append(policy.directory(v.directory).schema.account_name)
        if how:
            found[(v.directory, normalise_dn(v.dn))] = (v.dn, how)
    return found


def _plan_names(planned, query: Query) -> list[str]:
    """Names the plan knows, for suggestions: every entry read, every desired and store user."""
    if query.form == "dn":
        return [v.dn for v in planned.desired.verdicts]
    names = [v.account_name or "" for v in planned.desired.verdicts]
    if query.form == "domain":
        return names
    names += [v.email or "" for v in planned.desired.verdicts]
    names += [u.display_name for u in planned.desired.users.values()]
    names += [n for u in planned.store_state.users.values() for n in (u.email, u.display_name)]
    return names


def _explain_entry(planned, directory: Directory, lookup, entry: Found, mine: EntryVerdict | None) -> EntryExplanation:
    from ..policy.build import DEFAULT_FILTERS

    policy = planned.policy
    # kind entra-id has no search bases (its lookup says so, and that its filter is evaluated whole)
    checks: list[Check] = [lookup.search_base(entry) if directory.kind == "entra-id"
                           else search_base_check(directory, entry.dn)]
    try:
        clause = lookup.clause(entry)
    except InvalidFilter as error:  # a live server took it; the evaluator here does not know everything it does
        checks.append(Check("filter", None, f"{directory.users.filter} cannot be evaluated here ({error}); the "
                                            f"server evaluates it during the plan", {"filter": directory.users.filter}))
    else:
        checks.append(filter_check(directory, clause, DEFAULT_FILTERS[directory.flavour][0],
                                   lambda name: list(entry.attributes.get(name.lower(), ()))))
    checks.append(member_of_check(directory, entry.dn, lambda group: lookup.path_to(entry, group),
                                  lambda group: lookup.how_to(entry, group)))
    checks.append(disabled_check(policy, directory, entry.attributes))
    email_result, email = email_check(directory, entry.attributes)
    checks.append(email_result)
    anchor = entry.first(directory.schema.anchor)
    store_conflicts = [i.reason for i in planned.plan.ignored
                       if mine is not None and mine.verdict == "imported" and i.user_key == mine.user_key]
    checks.append(conflict_check(policy, directory, entry.dn, anchor, email, mine, planned.desired.verdicts,
                                 store_conflicts))
    manual = manual_check(policy, entry.dn, entry.first(directory.schema.account_name), email)
    if manual is not None:
        checks.append(manual)
    checks.sort(key=lambda c: ORDER.index(c.name))
    if mine is not None:
        verdict, reason = mine.verdict, mine.reason
    else:
        excluded = [c.excludes for c in checks if c.ok is False]
        verdict = "out of scope"
        reason = ("not read by the plan: " + "; ".join(excluded)) if excluded else \
            "not read by the plan, although every condition holds here (the directory may have changed since)"
    user = planned.desired.users.get(mine.user_key or "") if mine is not None and mine.verdict == "imported" else None
    # the mapping's display name, as the users stage renders it
    display = render_template(directory.mapping.display_name, SimpleNamespace(attributes=entry.attributes)) \
        or entry.first("displayName")
    teams = planned.desired.teams
    return EntryExplanation(
        directory=directory.name, source=lookup.source, dn=entry.dn, matched_by=entry.matched_by,
        account_name=entry.first(directory.schema.account_name), display_name=display,
        email=(mine.email if mine is not None and mine.email else email), read_by_plan=mine is not None,
        verdict=verdict, reason=reason, checks=checks, user=user,
        team_name=teams[user.team].name if user is not None and user.team in teams else None,
        membership_names=[teams[k].name for k in sorted(user.memberships) if k in teams] if user is not None else [],
        not_applied=store_conflicts,
    )
