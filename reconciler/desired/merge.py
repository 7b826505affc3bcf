"""Stage 2: one person per email.

The same email twice in one directory is a conflict, and neither entry is
imported. Across directories the entries are one person, ordered by
`identity.precedence` (the first one's attributes win), unless
`identity.merge_by_email` is false, which makes that a conflict too.

Hybrid identities are matched first (`hybrid.hybrid_matches`): when the policy
reads Active Directory and Entra ID, an Entra ID user whose `onPremisesImmutableId`
is the base64 of an AD entry's objectGUID is that entry's person, whatever its
cloud email: it is grouped under the AD entry's email, so the two merge as entries
with one email do (and do so even when `identity.merge_by_email` is false: the
anchor, not the email, joined them). Where anchor and email disagree, the cloud
record is left out with a conflict and the AD entries go on as they would alone.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from operator import attrgetter

from ..policy.model import Policy
from .hybrid import hybrid_matches
from .scope import Candidate, Verdicts


def one_person_per_email(policy: Policy, candidates: list[Candidate],
                         verdicts: Verdicts) -> list[Candidate | list[Candidate]]:
    """The people, by email: a lone candidate stands for a person of one entry, a list for entries that
    merged, the winner first. A cloud record joined to an AD entry by anchor counts under that entry's email.

    The candidates are sorted by email and taken in runs rather than filed in a dict of lists: at a
    million users the dict and a one-entry list per person were 150 MB at once (bench/README.md)."""
    candidates, joined = hybrid_matches(candidates, verdicts)
    email_of: Callable[[Candidate], str] = \
        (lambda c: joined[id(c)].email if id(c) in joined else c.email) if joined else attrgetter("email")
    candidates.sort(key=email_of)  # stable: the entries of one email stay in the order they were read
    rank = {name: i for i, name in enumerate(policy.precedence)}
    people: list[Candidate | list[Candidate]] = []
    start, count = 0, len(candidates)
    while start < count:
        first = candidates[start]
        email = email_of(first)
        end = start + 1
        while end < count and email_of(candidates[end]) == email:
            end += 1
        if end == start + 1:  # the usual person: one entry, nothing to clash or merge with
            people.append(first)
        elif (usable := _merged(policy, email, candidates[start:end], joined, rank, verdicts)) is not None:
            people.append(usable)
        start = end
    return people


def _merged(policy: Policy, email: str, group: list[Candidate], joined: dict[int, Candidate],
            rank: dict[str, int], verdicts: Verdicts) -> list[Candidate] | None:
    """The entries of one email as one person, the winner first; None when they clash (verdicts given)."""
    per_directory: dict[str, list[Candidate]] = defaultdict(list)
    for c in group:
        per_directory[c.directory.name].append(c)
    clashing = {d for d, cs in per_directory.items() if len(cs) > 1}
    for d in sorted(clashing):
        for c in per_directory[d]:
            others = "; ".join(sorted(o.entry.dn for o in per_directory[d] if o is not c))  # not in read order
            verdicts.add(c.entry, email, "ignored", f"conflict: {email} is also the email of {others} in {d}; neither is imported")
    usable = [c for c in group if c.directory.name not in clashing]
    if not usable:
        return None
    usable.sort(key=lambda c: rank[c.directory.name])
    if len(usable) > 1 and not policy.identity.merge_by_email and sum(id(c) not in joined for c in usable) > 1:
        for c in usable:
            others = ", ".join(o.directory.name for o in usable if o is not c)
            verdicts.add(c.entry, email, "ignored",
                         f"conflict: {email} is also used in {others} and identity.merge_by_email is false")
        return None
    return usable
