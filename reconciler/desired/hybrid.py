"""Stage 2, before emails: hybrid identities, one person's Active Directory entry and its Entra ID record.

Entra Connect (and Cloud Sync) writes a synced user's AD source anchor into its cloud record's
`onPremisesImmutableId`, by default the base64 of the AD `objectGUID`
(`directory.entra.hybrid`). When a policy reads both, that anchor says which AD entry a cloud
record is, and it is trusted over email: a person whose cloud mail differs from the AD mail is
still one user. `merge.one_person_per_email` groups the joined cloud record under the AD entry's
email.

Where the anchor and the emails disagree, the cloud record is left out with a conflict naming
both sides, and the AD entries go on as they would without the cloud directory:
- a cloud record joined to one entry by anchor whose email is another entry's;
- a cloud record not joined by anchor whose email is that of an AD entry that has its own cloud
  record by anchor;
- two cloud records with the same immutable ID (both left out).
The verdicts of the joined say so ("joined to <DN> in corp by onPremisesImmutableId").
"""
from __future__ import annotations

from collections import defaultdict

from ..directory.entra.hybrid import source_anchor
from .scope import Candidate, Verdicts


def hybrid_matches(candidates: list[Candidate], verdicts: Verdicts) -> tuple[list[Candidate], dict[int, Candidate]]:
    """(the candidates that go on, {id(cloud candidate): the AD candidate it is joined to by anchor})."""
    cloud = [c for c in candidates if c.directory.kind == "entra-id"]
    if not cloud:  # a policy without Entra ID pays one pass and nothing else
        return candidates, {}
    on_premises = {c.entry.anchor.lower(): c for c in candidates if c.directory.schema.anchor.lower() == "objectguid"}
    links = {id(c): on_premises[g] for c in cloud if (g := source_anchor(c.entry)) is not None and g in on_premises}
    if not links:
        return candidates, {}
    by_email: dict[str, list[Candidate]] = defaultdict(list)
    for c in candidates:
        by_email[c.email].append(c)
    claims: dict[int, list[Candidate]] = defaultdict(list)  # id(AD candidate) -> the cloud records naming it
    for c in cloud:
        if id(c) in links:
            claims[id(links[id(c)])].append(c)
    left_out: set[int] = set()

    def conflict(c: Candidate, why: str) -> None:
        verdicts.add(c.entry, c.email, "ignored", f"conflict: {why}; it is not imported")
        left_out.add(id(c))

    for claimants in claims.values():
        if len(claimants) > 1:
            for c in claimants:
                others = "; ".join(o.entry.dn for o in claimants if o is not c)
                conflict(c, f"the same onPremisesImmutableId as {others} in {c.directory.name}, both synced from "
                            f"{links[id(c)].entry.dn} in {links[id(c)].directory.name}")
    for c in cloud:
        partner = links.get(id(c))
        if partner is None or id(c) in left_out or c.email == partner.email:
            continue
        others = [o for o in by_email[c.email] if o is not c and links.get(id(o)) is not partner]
        if others:
            conflict(c, f"onPremisesImmutableId ties it to {partner.entry.dn} in {partner.directory.name}, but its "
                        f"email {c.email} is that of " + "; ".join(f"{o.entry.dn} in {o.directory.name}" for o in others))
    partnered = {id(links[id(c)]): c for c in cloud if id(c) in links and id(c) not in left_out}
    for c in cloud:
        if id(c) in links or id(c) in left_out:
            continue
        for o in by_email[c.email]:
            if id(o) in partnered:
                conflict(c, f"its email {c.email} is that of {o.entry.dn} in {o.directory.name}, whose record in "
                            f"{c.directory.name} by onPremisesImmutableId is {partnered[id(o)].entry.dn}")
                break
    kept = [c for c in candidates if id(c) not in left_out]
    joined = {id(c): links[id(c)] for c in kept if id(c) in links}
    for c in kept:  # the verdicts of the imported say by what they were joined
        if id(c) in joined:
            partner = joined[id(c)]
            c.email_rule += f", joined to {partner.entry.dn} in {partner.directory.name} by onPremisesImmutableId"
            partner.email_rule += f", joined to {c.entry.dn} in {c.directory.name} by onPremisesImmutableId"
    return kept, joined
