"""Each condition that decides whether one entry is imported, evaluated on its own.

Every check answers for itself, whether or not an earlier one already excludes the
entry, so explain can name every reason at once: under the search bases, the filter
(clause by clause), member_of (direct or nested, and through which groups), disabled,
the email the templates make, a conflict with another entry, and in manual mode
whether `manual:` lists them. `ok` is True (passes), False (excludes) or None (does
not apply, or not decidable for an entry that is not in scope).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable, Mapping, Sequence

from ..desired.templates import email_problem, render_template
from ..directory.entries import is_disabled
from ..directory.filters import Clause
from ..dn import normalise_dn
from ..model import EntryVerdict
from ..policy.model import Directory, Policy

ORDER = ("search_base", "filter", "member_of", "disabled", "email", "conflict", "manual")


@dataclass
class Check:
    name: str  # one of ORDER
    ok: bool | None
    summary: str  # one line, what the check found
    facts: dict = field(default_factory=dict)  # the same, as data (explain --format json)
    clause: Clause | None = None  # the filter check's clause tree
    excludes: str = ""  # when it excludes: the reason in a few words ("the filter clause (!(x=y))")

    def to_json(self) -> dict:
        data = {"ok": self.ok, "summary": self.summary, **self.facts}
        if self.clause is not None:
            data["clause"] = self.clause.to_json()
        return data


def _parent(key: str) -> str | None:
    from ..directory.filters import _parent_key  # the one-level scope's own notion of a parent

    return _parent_key(key)


def search_base_check(directory: Directory, dn: str) -> Check:
    scope = directory.users.scope
    key = normalise_dn(dn)
    bases = []
    for base in directory.users.search_bases:
        base_key = normalise_dn(base)
        below = key.endswith("," + base_key)
        if scope == "one":
            under = _parent(key) == base_key
        else:
            under = key == base_key or below
        bases.append({"base": base, "under": under, "below": below or key == base_key})
    facts = {"scope": scope, "bases": bases}
    claimed = [b["base"] for b in bases if b["under"]]
    if claimed:
        return Check("search_base", True, f"under {claimed[0]} (scope {scope})", facts)
    deeper = [b["base"] for b in bases if b["below"]]
    if deeper:  # scope one: below a base, but not directly
        return Check("search_base", False, f"below {deeper[0]} but not directly in it (scope one)", facts,
                     excludes=f"below {deeper[0]}, not directly in it (users.scope: one)")
    listed_bases = ", ".join(directory.users.search_bases)
    return Check("search_base", False, f"not under any search base ({listed_bases}; scope {scope})", facts,
                 excludes="outside the search bases")


def filter_check(directory: Directory, clause: Clause, default: str | None, values: Callable[[str], list[str]]) -> Check:
    """`values(attribute)` gives the entry's values of an attribute, to show next to each clause."""
    failing = [c.text for c in clause.failing()]
    facts = {"filter": directory.users.filter, "flavour_default": directory.users.filter == default,
             "failing": failing, "values": {name: values(name) for name in clause.attributes()}}
    note = f" (the {directory.flavour} default)" if facts["flavour_default"] else ""
    if clause.matched:
        return Check("filter", True, f"matches {directory.users.filter}{note}", facts, clause)
    if failing == [clause.text]:  # the whole filter: an item, an OR none of whose alternatives holds, a NOT
        what = f"the filter {clause.text}"
    else:
        what = ("the filter clause " if len(failing) == 1 else "the filter clauses ") + ", ".join(failing)
    return Check("filter", False, f"{what} fails", facts, clause, excludes=what)


def member_of_check(directory: Directory, dn: str, path_to: Callable[[str], list[str] | None],
                    how_to: Callable[[str], Sequence[str | None]] | None = None) -> Check:
    """`path_to(group)`: the groups from the entry up to `group` (the entry's direct group first,
    `group` last), [group] for a direct member, None for no member. `how_to(group)`: for each group of
    that path, how it names the one below it: None for a member DN, `memberUid alice` for a posixGroup's
    account name (then the group's facts have `via`, and the summary says it)."""
    wanted = directory.users.member_of
    if not wanted:
        return Check("member_of", None, "users.member_of is not set: no group is required", {"groups": []})
    groups = []
    for group in wanted:
        path = path_to(group)
        facts_of = {"group": group, "member": path is not None, "direct": path is not None and len(path) == 1,
                    "path": path or []}
        via = list(how_to(group)) if path and how_to is not None else []
        if any(via):
            facts_of["via"] = via
        groups.append(facts_of)
    facts = {"groups": groups}
    member = [g for g in groups if g["member"]]
    if member:
        first = member[0]
        via = first.get("via") or [None] * len(first["path"])
        if first["direct"]:
            how = f", by {via[0]}" if via[0] else ""
            return Check("member_of", True, f"member of {first['group']} (directly{how})", facts)
        return Check("member_of", True, f"member of {first['group']} through nested groups: "
                                        + " → ".join(g + (f" (by {v})" if v else "") for g, v in zip(first["path"], via)),
                     facts)
    names = " or ".join(wanted)
    return Check("member_of", False, f"not a member of {names}, directly or through nested groups", facts,
                 excludes=f"not a member of {names}")


def disabled_check(policy: Policy, directory: Directory, attributes: Mapping[str, Sequence[str]]) -> Check:
    rule = directory.schema.disabled
    values = list(attributes.get(rule.attribute.lower(), ()))
    disabled = is_disabled(rule, values)
    if rule.flag is not None:
        name = " (ACCOUNTDISABLE)" if rule.flag == 2 and rule.attribute.lower() == "useraccountcontrol" else ""
        seen = f"{rule.attribute} {', '.join(values) or 'not set'}: flag {rule.flag}{name} {'set' if disabled else 'not set'}"
    elif rule.equals is not None:
        seen = f"{rule.attribute} {', '.join(values) or 'not set'} ({'equals' if disabled else 'is not'} {rule.equals})"
    else:
        seen = f"{rule.attribute} {'present (' + ', '.join(values) + ')' if disabled else 'not present'}"
    facts = {"disabled": disabled, "attribute": rule.attribute, "values": values, "flag": rule.flag,
             "equals": rule.equals, "include_disabled": directory.users.include_disabled}
    if not disabled:
        return Check("disabled", True, f"enabled ({seen})", facts)
    if not directory.users.include_disabled:
        return Check("disabled", False, f"disabled ({seen}); users.include_disabled is false", facts,
                     excludes=f"disabled ({seen})")
    if policy.lifecycle.when_disabled == "delete":
        return Check("disabled", False, f"disabled ({seen}); users.include_disabled imports nothing while "
                                        f"lifecycle.when_disabled is delete", facts, excludes=f"disabled ({seen})")
    return Check("disabled", True, f"disabled ({seen}), imported deactivated (users.include_disabled)", facts)


def email_check(directory: Directory, attributes: Mapping[str, Sequence[str]]) -> tuple[Check, str | None]:
    """The templates tried in order, what each yields; the first value is the email. (check, email)."""
    entry = SimpleNamespace(attributes=attributes)
    tried = []
    email = rule = None
    for template in directory.mapping.email:
        value = render_template(template, entry)  # type: ignore[arg-type]
        missing = [name for name in template.attributes if not (attributes.get(name.lower()) or ("",))[0]]
        tried.append({"template": template.text, "value": value.lower() if value else None, "missing": missing})
        if value and email is None:
            email, rule = value.lower(), template.text
            break
    problem = email_problem(email) if email is not None else None
    facts = {"email": email, "template": rule, "tried": tried, "valid": email is not None and problem is None,
             "problem": problem}
    before = "; ".join(f"{t['template']}: no {', '.join(t['missing']) or 'value'}" for t in tried if t["value"] is None)
    tried_note = f" ({before})" if before else ""
    if email is None:
        names = ", ".join(t.text for t in directory.mapping.email)
        return Check("email", False, f"none of {names} yields a value{tried_note}", facts,
                     excludes=f"no email (none of {names} yields a value)"), None
    if problem is not None:
        return Check("email", False, f"{email!r} from {rule} is not a valid address: {problem}", facts,
                     excludes=f"the email {email!r} is not a valid address"), email
    return Check("email", True, f"{email} from {rule}{tried_note}", facts), email


def conflict_check(policy: Policy, directory: Directory, dn: str, anchor: str | None, email: str | None,
                   mine: EntryVerdict | None, verdicts: Sequence[EntryVerdict], store_conflicts: Sequence[str]) -> Check:
    """Another entry with the same email (or anchor) in the directory, the same email in another
    directory while identity.merge_by_email is false, or a store record that holds the address."""
    key = normalise_dn(dn)
    same_directory = [v for v in verdicts if v.directory == directory.name and normalise_dn(v.dn) != key]
    by_email = [v for v in same_directory if email and v.email == email]
    by_anchor = [v for v in same_directory if anchor and v.anchor.lower() == anchor.lower()]
    elsewhere = [v for v in verdicts if v.directory != directory.name and email and v.email == email]
    facts: dict = {"with": [], "merged_with": [], "store": list(store_conflicts)}
    if mine is not None and mine.reason.startswith("conflict"):
        if "merge_by_email is false" in mine.reason:
            others, why = elsewhere, f"the same email {email} in another directory, identity.merge_by_email false"
        elif by_anchor and f"same {directory.schema.anchor}" in mine.reason:
            others, why = by_anchor, f"the same {directory.schema.anchor} {anchor}"
        else:
            others, why = by_email, f"the same email {email}"
        facts["with"] = [{"directory": v.directory, "dn": v.dn} for v in others]
        whom = "; ".join(f"{v.dn} ({v.directory})" for v in others) or mine.reason
        return Check("conflict", False, f"conflict with {whom}: {why}; neither is imported", facts,
                     excludes=f"a conflict with {whom}")
    if store_conflicts:
        return Check("conflict", False, "; ".join(store_conflicts), facts, excludes=store_conflicts[0])
    if mine is not None and mine.verdict == "imported":
        partners = [v for v in verdicts if v.user_key == mine.user_key and v.user_key and v is not mine]
        facts["merged_with"] = [{"directory": v.directory, "dn": v.dn} for v in partners]
        if partners:
            return Check("conflict", True, "none; merged by email with " +
                         "; ".join(f"{v.dn} ({v.directory})" for v in partners), facts)
        return Check("conflict", True, "none: no other entry has this email or anchor", facts)
    if mine is None:
        would = [v for v in by_email + by_anchor if v.verdict != "ignored" or v.reason.startswith("conflict")]
        if would:
            facts["with"] = [{"directory": v.directory, "dn": v.dn} for v in would]
            return Check("conflict", None, "not in scope; if it were, it would share its email or anchor with " +
                         "; ".join(f"{v.dn} ({v.directory})" for v in would), facts)
    return Check("conflict", True, "none: no other entry has this email or anchor", facts)


def manual_check(policy: Policy, dn: str, account: str | None, email: str | None) -> Check | None:
    if policy.placement.mode != "manual":
        return None
    names = {m.strip().lower() for m in policy.manual}
    dns = {normalise_dn(m) for m in policy.manual if "=" in m}
    if {email or "", (account or "").lower()} & names or normalise_dn(dn) in dns:  # as the scope stage reads manual:
        return Check("manual", True, "listed under manual:", {"listed": True})
    return Check("manual", False, "not listed under manual: (placement.mode manual imports only those listed)",
                 {"listed": False}, excludes="not listed under manual:")
