"""Desired state: what the store should hold, from the policy and the directory reads.

Pure function of its inputs: no I/O, no store. Every entry read gets a verdict
(imported, ignored, disabled) with a reason, which is what preview and explain show.

The stages, one module each, in the order `build_desired_state` runs them:

- `scope`: per entry, whether it is in scope (enabled, with an email that is an
  address, `templates.email_problem`, listed under `manual:` in manual mode, its
  anchor not shared with another entry of its directory); every entry left out
  gets its verdict here;
- `merge`: one person per email: the same email twice in one directory is a
  conflict, across directories the entries merge (`identity.precedence` names the
  winner) unless `identity.merge_by_email` is false;
- `placement`: each person's team (target group, OU path below the search base,
  root) and, in group-teams mode, a team per group it is in through nesting;
- `users`: the `DesiredUser` of each person and the verdict of every entry imported.

`templates` renders the mapping's templates (email, display name, attributes).
"""
from __future__ import annotations

from ..model import DesiredState, DirectoryRead, by_key_in_order
from ..policy.model import Policy
from .merge import one_person_per_email
from .placement import Placement
from .scope import Verdicts, in_scope
from .users import desired_users


def build_desired_state(policy: Policy, reads: list[DirectoryRead], *, release_entries: bool = False,
                        all_verdicts: bool = True) -> DesiredState:
    """`release_entries`: the caller needs the reads' user entries no more (a plan: only the groups and
    counts are read again), so each entry is let go as soon as its person is built instead of all of them
    living until the desired state is done. The reads' `users` lists are emptied; nothing else changes.
    At a million users that keeps the peak of this stage near the size of the read, not read plus desired.

    Without `all_verdicts`, the verdicts a plan reads: every entry's but the "imported" of each person's
    winning entry (counted, not listed: the diff reads those off the desired people, and a million of them
    were 100 MB), in the order the stages reached them (a plan orders only the few it lists, make_plan, and
    sorting a million by normalised DN was 150 MB of keys at once)."""
    by_name = {r.directory: r for r in reads}
    verdicts = Verdicts(list_winners=all_verdicts)
    placement = Placement(policy, by_name)
    in_scope_counts = {r.directory: len(r.users) for r in reads}
    # At 100,000 users the order below is worth 20 MB of peak memory: the candidates and people are
    # temporaries, gone once the users are built, and the verdicts are sorted (100,000 sort keys, freed
    # again) before the sorted copies of users and teams are made, which then reuse that memory.
    candidates = in_scope(policy, by_name, verdicts)
    if release_entries:
        for read in reads:
            read.users = []  # the candidates hold the entries in scope now, each until its person is built
    people = one_person_per_email(policy, candidates, verdicts)
    del candidates
    users = desired_users(people, placement, verdicts, policy.lifecycle.when_disabled, release=release_entries)
    del people
    ordered = verdicts.ordered(policy.precedence) if all_verdicts else verdicts.items
    warnings = [f"manual: lists {m.who!r}, whom no directory read has (an email, account name or DN, as the "
                "directory spells it); nobody is placed by it" for m in verdicts.unmatched_manual]
    users = by_key_in_order(users)
    return DesiredState(users=users, teams=dict(sorted(placement.teams.items())),
                        verdicts=ordered, directories=verdicts.counts(policy, by_name, in_scope_counts),
                        warnings=warnings)
