"""The desired users: one per person, from the winning entry, and the verdict of every entry imported."""
from __future__ import annotations

from collections.abc import Sequence

from ..model import DesiredUser, Link
from ..policy.model import Directory
from .placement import Placement
from .scope import Candidate, Verdicts
from .sharing import Sharing
from .templates import renderer


def desired_users(people: list[Candidate | list[Candidate]], placement: Placement, verdicts: Verdicts,
                  when_disabled: str = "deactivate", release: bool = False) -> dict[str, DesiredUser]:
    """`release`: each person's place in `people` is emptied once they are built, so that their entries can
    go (`build_desired_state(release_entries=True)`). `when_disabled` decides the status of people imported although disabled (users.include_disabled):
    created and kept deactivated ("deactivate"), or left as the store has them ("keep"; new ones are
    created deactivated all the same: a disabled account is never given access). Scope does not let
    them through when it is "delete"."""
    users: dict[str, DesiredUser] = {}
    reasons: dict[tuple[str, str], str] = {}  # (directory, email rule) -> the imported verdict's reason
    # equal (name, value) pairs and attributes tuples made once (sharing.py): most people share a department
    share_pair: dict[str, Sharing] = {}  # by attribute name
    share_attributes = Sharing()
    mappings: dict[str, _Mapping] = {}  # by directory name: its templates' renderers, worked out once
    for index, one in enumerate(people):
        if release:
            people[index] = None  # type: ignore[call-overload]  (this loop holds the person until the next)
        person = (one,) if type(one) is Candidate else one  # merge.py: a lone candidate is a person of one
        winner = person[0]
        entry, directory = winner.entry, winner.directory
        mapping = mappings.get(directory.name)
        if mapping is None:
            mapping = mappings[directory.name] = _Mapping(directory, share_pair)
        key = f"{directory.name}:{entry.anchor}"
        team, rule = placement.place(winner)
        display = mapping.display_name(entry) or entry.account_name or winner.email
        pairs = []
        for name, render, share in mapping.attributes:
            value = render(entry)
            if value is not None:
                pairs.append(share((name, value)))
        attributes = share_attributes(tuple(pairs))
        users[key] = DesiredUser(
            key=key,
            email=winner.email,
            display_name=display,
            attributes=attributes,
            team=team,
            memberships=placement.group_teams(person),
            links=(Link(directory.name, entry.anchor),) if len(person) == 1 else
                  tuple(sorted((Link(c.directory.name, c.entry.anchor) for c in person), key=str)),
            source=directory.name,
            dn=entry.dn,
            account_name=entry.account_name,
            placed_by=rule,
            status=_status(person, when_disabled),
        )
        for c in person:
            if c is winner and not verdicts.list_winners:
                verdicts.count_winner(c.directory.name)  # the diff reads this verdict off the person
                continue
            if c is winner:
                reason = reasons.get((c.directory.name, c.email_rule))
                if reason is None:  # shared by everyone imported by the same rule
                    reason = reasons[(c.directory.name, c.email_rule)] = \
                        f"in scope of {c.directory.name}; email from {c.email_rule}"
            else:
                joined = "by onPremisesImmutableId" in c.email_rule  # desired/hybrid.py says so in the rule
                reason = (f"in scope of {c.directory.name}; email from {c.email_rule}; merged "
                          f"{'by anchor' if joined else 'by email'} with {winner.directory.name}, whose attributes win")
            if c.entry.disabled:
                reason += f"; disabled in {c.directory.name}, {_disabled_outcome(person, when_disabled)}"
            verdicts.add(c.entry, c.email, "imported", reason, key)
    return users


class _Mapping:
    """A directory's display name and attribute templates as renderers (`templates.renderer`), each
    attribute with the `Sharing` of its (name, value) pairs, which every directory mapping that name uses."""

    def __init__(self, directory: Directory, share_pair: dict[str, Sharing]) -> None:
        mapping = directory.mapping
        self.display_name = renderer(mapping.display_name.text)
        self.attributes = [(name, renderer(template.text), share_pair.setdefault(name, Sharing()))
                           for name, template in mapping.attributes]


def _status(person: Sequence[Candidate], when_disabled: str) -> str | None:
    # one enabled entry is enough: without include_disabled the person would be that entry
    enabled = not person[0].entry.disabled if len(person) == 1 else not all(c.entry.disabled for c in person)
    if enabled:
        return "active"
    return None if when_disabled == "keep" else "deactivated"


def _disabled_outcome(person: Sequence[Candidate], when_disabled: str) -> str:
    if not all(c.entry.disabled for c in person):
        return "but enabled elsewhere, so active"
    if when_disabled == "keep":
        return ("imported (users.include_disabled); lifecycle.when_disabled: keep leaves the store's status as it "
                "is, and a new account is created deactivated")
    return "imported deactivated (users.include_disabled, lifecycle.when_disabled: deactivate)"
