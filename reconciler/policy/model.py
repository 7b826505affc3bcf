"""The validated policy as typed, immutable values.

The loader (`reconciler.policy.load`) turns YAML into these after the schema and
semantic checks pass; every later stage reads only these, never raw YAML.
Defaults here mirror the `default` of each key in `schemas/policy.schema.json`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from ..errors import Location, SecretError

DirectoryKind = Literal["active-directory", "openldap", "389ds", "freeipa", "ldif", "entra-id"]
Flavour = Literal["active-directory", "openldap", "389ds", "freeipa", "entra-id"]
LifecycleAction = Literal["deactivate", "delete", "keep"]
PlacementMode = Literal["manual", "root", "ou-teams", "group-teams", "target-group"]

SECRET_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


@dataclass(frozen=True)
class SecretRef:
    """A `${NAME}` reference, resolved from the environment only when used.

    The resolved value is never stored on the object, so it cannot leak through
    repr(), logs or a traceback's locals.
    """

    variable: str
    path: str  # the policy key that needs it, e.g. directories.corp.bind.password
    location: Location | None = None

    def resolve(self) -> str:
        value = os.environ.get(self.variable)
        if value is None:
            where = f"{self.location}: " if self.location else ""
            raise SecretError(
                f"{where}environment variable {self.variable} is not set; {self.path} needs it "
                f"(export {self.variable}=... or set it as a CI secret)"
            )
        return value

    def __repr__(self) -> str:
        return f"SecretRef(${{{self.variable}}})"


@dataclass(frozen=True)
class Template:
    """An attribute template like '{sAMAccountName}@corp.example.com'.

    It yields a value only when every attribute it names has a non-empty value.
    """

    text: str

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(m.group(1) for m in re.finditer(r"\{([^{}]+)\}", self.text))


@dataclass(frozen=True)
class Bind:
    user: str | None = None  # DN, UPN (svc@corp.example.com) or DOMAIN\user
    password: SecretRef | None = None
    method: Literal["simple", "ntlm"] = "simple"


@dataclass(frozen=True)
class Tls:
    ca_file: str | None = None  # absolute, resolved against the policy file's folder
    verify: bool = True
    start_tls: bool = True  # for ldap:// URLs


@dataclass(frozen=True)
class DisabledRule:
    """How a directory marks a disabled account.

    AD: bit 2 (ACCOUNTDISABLE) of userAccountControl. OpenLDAP: the presence of an
    attribute (pwdAccountLockedTime). 389 Directory Server and FreeIPA: an attribute with a
    given value (nsAccountLock: TRUE, compared case-insensitively).
    """

    attribute: str
    flag: int | None = None  # bitwise flag that must be set
    equals: str | None = None  # case-insensitive value that means disabled
    # neither flag nor equals: presence of the attribute means disabled


@dataclass(frozen=True)
class Schema:
    """The attribute names a flavour uses; defaults per flavour, overridable."""

    anchor: str  # objectGUID | entryUUID | nsUniqueId | ipaUniqueID
    account_name: str  # sAMAccountName | uid
    group_name: str  # cn
    member: tuple[str, ...]  # member | member, uniqueMember
    disabled: DisabledRule
    # group attributes that name members by account name (posixGroup's memberUid), matched case-insensitively
    # to `account_name`; a value that is a DN is taken as a DN (some directories write DNs there)
    member_uid: tuple[str, ...] = ()


FLAVOUR_SCHEMAS: dict[str, Schema] = {
    "active-directory": Schema(
        anchor="objectGUID",
        account_name="sAMAccountName",
        group_name="cn",
        member=("member",),
        disabled=DisabledRule(attribute="userAccountControl", flag=2),
    ),
    "openldap": Schema(
        anchor="entryUUID",
        account_name="uid",
        group_name="cn",
        member=("member", "uniqueMember"),
        disabled=DisabledRule(attribute="pwdAccountLockedTime"),
        member_uid=("memberUid",),
    ),
    # 389 Directory Server: nsUniqueId is text (9abfff99-ecac11f1-9437ebcb-234807e9); nsAccountLock is what
    # `dsidm account lock` sets, and what a role's inactivation computes
    "389ds": Schema(
        anchor="nsUniqueId",
        account_name="uid",
        group_name="cn",
        member=("member", "uniqueMember"),
        disabled=DisabledRule(attribute="nsAccountLock", equals="TRUE"),
        member_uid=("memberUid",),
    ),
    # FreeIPA (389 DS underneath): ipaUniqueID survives renames; groups under cn=groups,cn=accounts list
    # members (users and nested groups) in member; memberUid lives only in the compat tree
    "freeipa": Schema(
        anchor="ipaUniqueID",
        account_name="uid",
        group_name="cn",
        member=("member",),
        disabled=DisabledRule(attribute="nsAccountLock", equals="TRUE"),
    ),
    # Microsoft Graph's names: the object id anchors, the UPN is the sign-in name, accountEnabled false is disabled
    "entra-id": Schema(
        anchor="id",
        account_name="userPrincipalName",
        group_name="displayName",
        member=("members",),
        disabled=DisabledRule(attribute="accountEnabled", equals="false"),
    ),
}


@dataclass(frozen=True)
class UserScope:
    search_bases: tuple[str, ...]
    filter: str = "(objectClass=person)"
    scope: Literal["subtree", "one"] = "subtree"
    member_of: tuple[str, ...] = ()  # group DNs; membership may be nested
    include_disabled: bool = False


@dataclass(frozen=True)
class GroupScope:
    search_bases: tuple[str, ...] = ()  # empty: groups are not read
    filter: str = "(objectClass=group)"
    scope: Literal["subtree", "one"] = "subtree"


@dataclass(frozen=True)
class AttributeMapping:
    email: tuple[Template, ...] = (Template("{mail}"),)  # the first template that yields a value
    display_name: Template = Template("{displayName}")
    attributes: tuple[tuple[str, Template], ...] = ()  # sorted by name


@dataclass(frozen=True)
class Certificate:
    """Kind entra-id: a certificate credential: a PEM file (private key and certificate) or PKCS#12 (.pfx)."""

    path: str  # absolute, resolved against the policy file's folder
    password: SecretRef | None = None


@dataclass(frozen=True)
class FederatedToken:
    """Kind entra-id: workload identity federation: a token another identity provider issued is the assertion.

    `file`: a file holding the token (AKS workload identity writes one and names it in
    AZURE_FEDERATED_TOKEN_FILE), read afresh whenever a token is needed; a path, or a ${NAME}
    reference to the variable that holds the path. `github_actions`: the job's OIDC token, asked of
    ACTIONS_ID_TOKEN_REQUEST_URL with `audience` (the job needs `permissions: id-token: write`).
    """

    file: str | SecretRef | None = None
    github_actions: bool = False
    audience: str = "api://AzureADTokenExchange"


@dataclass(frozen=True)
class Graph:
    """Kind entra-id: where and as whom Microsoft Graph is read, or the offline snapshot read instead."""

    tenant: str | SecretRef | None = None  # a GUID or a domain; or ${AZURE_TENANT_ID}
    client_id: str | SecretRef | None = None  # the app registration's application (client) ID
    client_secret: SecretRef | None = None  # one credential of the three
    certificate: Certificate | None = None
    federated_token: FederatedToken | None = None
    cloud: Literal["global", "us-government", "china"] = "global"
    login: str = "https://login.microsoftonline.com"  # the cloud's, or endpoints.login
    graph: str = "https://graph.microsoft.com"  # the cloud's, or endpoints.graph (without /v1.0)
    snapshot: str | None = None  # absolute path of an offline snapshot (JSON as Graph returns it)
    read_groups: bool = False  # `groups:` is given: the groups are read (placement group-teams)
    throttle_budget: float = 300.0  # seconds a read may spend waiting out 429/503 in all


@dataclass(frozen=True)
class DeltaReads:
    """`delta:` on a live directory: read what changed since the last apply, and in full every `full_read_every`."""

    full_read_every: timedelta = timedelta(days=1)


@dataclass(frozen=True)
class Directory:
    name: str
    kind: DirectoryKind
    flavour: Flavour
    schema: Schema
    users: UserScope
    groups: GroupScope
    mapping: AttributeMapping  # the policy's mapping with this directory's overrides applied
    path: str | None = None  # kind ldif: absolute path of the snapshot
    urls: tuple[str, ...] = ()
    bind: Bind | None = None
    tls: Tls = field(default_factory=Tls)
    allow_insecure_bind: bool = False
    page_size: int = 1000
    connect_timeout: float = 10.0
    operation_timeout: float = 120.0
    empty_result_expected: bool = False
    location: Location | None = None
    # kind entra-id: Microsoft Graph's settings. Its users.search_bases is ("/users",), the collection read, and
    # users.filter and groups.filter hold OData $filter expressions, not LDAP filters
    graph: Graph | None = None
    delta: DeltaReads | None = None  # None: every read is a full read

    @property
    def member_of_on_server(self) -> bool:
        """Whether the server, not the reader, applies users.member_of: AD's in-chain rule returns members
        only, so a read never sees a non-member and cannot say why someone is missing."""
        return self.kind == "active-directory" and bool(self.users.member_of)


@dataclass(frozen=True)
class Placement:
    mode: PlacementMode = "root"
    root: str = "Organisation"
    target_group: str | None = None  # mode target-group: every imported user's team


@dataclass(frozen=True)
class ManualEntry:
    """One person listed under `manual:` (mode manual) and the team they go into.

    `team` is the path of team names below `placement.root` (`Sales/EMEA` in the policy is
    ("Sales", "EMEA")); empty: the root team, as for an entry written as a plain string.
    """

    who: str  # an email, account name or DN, as written
    team: tuple[str, ...] = ()

    @property
    def team_text(self) -> str | None:
        """The team as the policy writes it (Sales/EMEA), None for the root team."""
        return "/".join(self.team) if self.team else None


@dataclass(frozen=True)
class Identity:
    merge_by_email: bool = True
    adopt_unmanaged: bool = True
    precedence: tuple[str, ...] = ()  # directory names, first wins attributes; default: policy order


@dataclass(frozen=True)
class Lifecycle:
    when_out_of_scope: LifecycleAction = "deactivate"
    when_disabled: LifecycleAction = "deactivate"


@dataclass(frozen=True)
class Limit:
    """At most `count` changes and at most `percent` of the managed population; None is no limit."""

    count: int | None = None
    percent: float | None = None


@dataclass(frozen=True)
class ReviewMargin:
    """How many more changes of one kind the edit may cause at apply than the reviewer saw: the larger
    of `count` and `percent` of the reviewed number (0 and 0: exactly what was reviewed, or fewer)."""

    count: int = 2
    percent: float = 10.0


@dataclass(frozen=True)
class Safety:
    max_creates: Limit = Limit()
    max_updates: Limit = Limit()
    max_deactivations: Limit = Limit(count=50, percent=10.0)
    max_deletions: Limit = Limit(count=50, percent=10.0)
    review_margin: ReviewMargin = ReviewMargin()
    min_limit: int = 2  # a percentage limit never allows fewer (small stores): see plan/safety.py
    window_hours: int = 24  # deactivations and deletions are also limited over this many hours (0: not)


@dataclass(frozen=True)
class StoreConfig:
    kind: Literal["sqlite", "sql", "scim"] = "sqlite"
    path: str | None = None  # sqlite: absolute, resolved against the policy file's folder; scim: its side file
    url: str | SecretRef | None = None
    token: SecretRef | None = None
    # state_dir: ${NAME}: the folder comes from the environment when the store is opened (a CI runner's
    # folder that actions/checkout does not clean); `path` is then this file name inside it
    state_dir: SecretRef | None = None
    folder: str = ""  # the policy file's folder, which a relative state_dir is taken from

    def file(self) -> str | None:
        """Where the store keeps its file (sqlite: the database; scim: the side file), resolved now."""
        if self.state_dir is None or self.path is None:
            return self.path
        return os.path.abspath(os.path.join(self.folder, self.state_dir.resolve(), self.path))


@dataclass(frozen=True)
class Policy:
    path: str  # the policy file as given
    digest: str  # sha256 of the file's bytes: what a saved plan is checked against
    directories: tuple[Directory, ...]  # in policy order
    placement: Placement
    identity: Identity
    lifecycle: Lifecycle
    safety: Safety
    store: StoreConfig
    manual: tuple[str, ...] = ()  # mode manual: who is listed (emails, account names or DNs), in policy order
    # per entry of `manual`, by position: its team path below placement.root; () or past the end: the root team
    manual_teams: tuple[tuple[str, ...], ...] = ()

    def directory(self, name: str) -> Directory:
        for d in self.directories:
            if d.name == name:
                return d
        raise KeyError(name)

    @property
    def manual_entries(self) -> tuple[ManualEntry, ...]:
        """`manual:` in policy order, each with its team."""
        teams = self.manual_teams
        return tuple(ManualEntry(who, teams[i] if i < len(teams) else ()) for i, who in enumerate(self.manual))

    @property
    def precedence(self) -> tuple[str, ...]:
        named = list(self.identity.precedence)
        return tuple(named + [d.name for d in self.directories if d.name not in named])
