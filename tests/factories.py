"""Builders for policies, directory reads and store states, so each stage can be tested alone."""
from __future__ import annotations

from dataclasses import replace

from reconciler.model import (
    DirectoryEntry, DirectoryGroup, DirectoryRead, Link, StoreState, StoreTeam, StoreUser, normalise_dn,
)
from reconciler.policy.model import (
    FLAVOUR_SCHEMAS, Directory, GroupScope, Identity, Lifecycle, AttributeMapping, Placement, Policy, Safety, StoreConfig,
    Template, UserScope,
)

BASE = "OU=People,DC=corp,DC=example,DC=com"


def directory(name: str = "corp", **overrides) -> Directory:
    values = dict(
        name=name, kind="ldif", flavour="active-directory", schema=FLAVOUR_SCHEMAS["active-directory"],
        users=UserScope(search_bases=(BASE,)), groups=GroupScope(search_bases=("OU=Groups,DC=corp,DC=example,DC=com",)),
        mapping=AttributeMapping(email=(Template("{mail}"), Template("{sAMAccountName}@corp.example.com")),
                        display_name=Template("{displayName}"),
                        attributes=(("department", Template("{department}")),)),
        path="/dev/null",
    )
    values.update(overrides)
    return Directory(**values)


def policy(*directories: Directory, **overrides) -> Policy:
    values = dict(
        path="policy.yaml", digest="sha256:" + "0" * 64, directories=directories or (directory(),),
        placement=Placement(mode="root"), identity=Identity(), lifecycle=Lifecycle(), safety=Safety(),
        store=StoreConfig(kind="sqlite", path="/tmp/none.db"),
    )
    values.update(overrides)
    return Policy(**values)


def person(name: str, *, directory: str = "corp", ou: str = "", mail: str | None = "default", disabled: bool = False,
           anchor: str | None = None, groups: tuple[str, ...] = (), **attributes: str) -> DirectoryEntry:
    dn = f"CN={name},{ou + ',' if ou else ''}{BASE}"
    account = name.lower().replace(" ", ".")
    attrs = {"samaccountname": (account,), "displayname": (name,)}
    if mail == "default":
        mail = f"{account}@corp.example.com"
    if mail:
        attrs["mail"] = (mail,)
    attrs.update({k.lower(): (v,) for k, v in attributes.items()})
    return DirectoryEntry(directory=directory, dn=dn, anchor=anchor or f"guid-{account}", account_name=account,
                          attributes=attrs, disabled=disabled, search_base=BASE,
                          groups=frozenset(normalise_dn(g) for g in groups))


def group(cn: str, *members: str, directory: str = "corp", anchor: str | None = None) -> DirectoryGroup:
    return DirectoryGroup(directory=directory, dn=f"CN={cn},OU=Groups,DC=corp,DC=example,DC=com",
                          anchor=anchor or f"gguid-{cn.lower()}", name=cn,
                          members=frozenset(normalise_dn(m) for m in members))


def read(*users: DirectoryEntry, directory: str = "corp", groups: tuple[DirectoryGroup, ...] = ()) -> DirectoryRead:
    return DirectoryRead(directory=directory, users=list(users), groups={normalise_dn(g.dn): g for g in groups},
                         entries_read=len(users))


def store_user(key: str, email: str, *, managed: bool = True, status: str = "active", team: str | None = "Organisation",
               display_name: str | None = None, links: tuple[str, ...] | None = None, attributes=(),
               memberships=frozenset()) -> StoreUser:
    if links is None:
        links = (key,) if managed else ()
    return StoreUser(key=key, email=email, display_name=display_name or email.split("@")[0], attributes=tuple(attributes),
                     team=team, memberships=frozenset(memberships),
                     links=tuple(Link(*l.split(":", 1)) for l in links), status=status, managed=managed)  # type: ignore[arg-type]


def store(*users: StoreUser, teams: tuple[StoreTeam, ...] = (StoreTeam("Organisation", "Organisation", None, True),)) -> StoreState:
    return StoreState(users={u.key: u for u in users}, teams={t.key: t for t in teams}, fingerprint="sha256:" + "1" * 64)


def imported_user(p: DirectoryEntry, **overrides) -> StoreUser:
    """The store record a previous apply would have written for this person (root placement)."""
    values = dict(display_name=p.first("displayName"), attributes=tuple(sorted(
        (k, v[0]) for k, v in p.attributes.items() if k == "department")))
    values.update(overrides)
    return store_user(f"{p.directory}:{p.anchor}", p.first("mail") or "", **values)


__all__ = ["replace"]
