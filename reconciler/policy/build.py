"""A validated policy document (plain data) → the typed `Policy`.

Runs only after the schema and semantic checks found nothing, so it can trust
shapes and types. Defaults here are the schema's `default`s; relative paths
become absolute, against the policy file's folder.
"""
from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from typing import Any

from .load import DocPath, Locator, dotted
from .model import (
    FLAVOUR_SCHEMAS,
    SECRET_REFERENCE,
    Bind,
    Certificate,
    DeltaReads,
    Directory,
    DisabledRule,
    FederatedToken,
    Graph,
    GroupScope,
    Identity,
    Lifecycle,
    Limit,
    AttributeMapping,
    Placement,
    Policy,
    ReviewMargin,
    Safety,
    Schema,
    SecretRef,
    StoreConfig,
    Template,
    Tls,
    UserScope,
)

# (users filter, groups filter) per flavour, as the vendors' defaults.
DEFAULT_FILTERS = {
    "active-directory": ("(&(objectClass=user)(!(objectClass=computer)))", "(objectClass=group)"),
    "openldap": ("(objectClass=inetOrgPerson)",
                 "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))"),
    # 389 DS 1.4+ creates people as nsPerson (dsidm), older trees as inetOrgPerson
    "389ds": ("(|(objectClass=inetOrgPerson)(objectClass=nsPerson))",
              "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))"),
    "freeipa": ("(objectClass=inetOrgPerson)", "(objectClass=groupOfNames)"),
    # kind entra-id: OData $filter expressions; members, not guests, and security groups
    "entra-id": ("userType eq 'Member'", "securityEnabled eq true"),
}
DEFAULT_STATE_DIR = ".reconciler"
DEFAULT_STORE_PATH = ".reconciler/store.db"  # what store.path means when neither it nor state_dir is set
DEFAULT_STORE_FILE = "store.db"  # in the state dir, unless store.path names the file
DEFAULT_SCIM_STATE_FILE = "scim-state.db"


def given(spec: dict, *keys: str) -> dict[str, Any]:
    """The keys the policy sets; the others keep the model's defaults (which the schema's `default`s
    state, checked in tests/unit/test_policy_schema.py), so no default is written a third time here."""
    return {key.replace("-", "_"): spec[key] for key in keys if key in spec}


class PolicyBuilder:
    def __init__(self, locate: Locator, folder: str):
        self.locate = locate
        self.folder = folder

    def absolute(self, path: str) -> str:
        return os.path.abspath(os.path.join(self.folder, path))

    def secret(self, value: str, path: DocPath) -> SecretRef:
        match = SECRET_REFERENCE.match(value)
        if match is None:  # the schema lets only ${NAME} references through; reaching here is a bug
            raise ValueError(f"{dotted(path)} is not a ${{NAME}} reference")
        return SecretRef(match.group(1), dotted(path), self.locate.value(path))

    def policy(self, data: dict, file: str, digest: str) -> Policy:
        mapping = data.get("mapping", {})
        placement = data.get("placement", {})
        identity = data.get("identity", {})
        lifecycle = data.get("lifecycle", {})
        return Policy(
            path=file,
            digest=digest,
            directories=tuple(
                self.directory(name, spec, mapping) for name, spec in data["directories"].items()
            ),
            placement=Placement(**given(placement, "mode", "root", "target_group")),
            identity=Identity(**given(identity, "merge_by_email", "adopt_unmanaged"),
                              precedence=tuple(identity.get("precedence", ()))),
            lifecycle=Lifecycle(**given(lifecycle, "when_out_of_scope", "when_disabled")),
            safety=self.safety(data.get("safety", {})),
            store=self.store(data.get("store", {})),
            **self.manual(data.get("manual", [])),
        )

    @staticmethod
    def manual(entries: list) -> dict[str, Any]:
        """`manual:` as the people listed and, by position, the team path each goes into: an entry is a
        string (the root team) or {who, team} with team a '/'-separated path below placement.root."""
        who = tuple(e if isinstance(e, str) else e["who"] for e in entries)
        teams = tuple(tuple(e["team"].split("/")) if isinstance(e, dict) and "team" in e else () for e in entries)
        return {"manual": who, **({"manual_teams": teams} if any(teams) else {})}

    def directory(self, name: str, spec: dict, mapping: dict) -> Directory:
        base: DocPath = ("directories", name)
        kind = spec["kind"]
        if kind == "entra-id":
            return self.entra_directory(name, spec, mapping)
        flavour = spec.get("flavour", "active-directory") if kind == "ldif" else kind
        users_filter, groups_filter = DEFAULT_FILTERS[flavour]
        users = spec["users"]
        groups = spec.get("groups", {})
        tls = spec.get("tls", {})
        timeouts = spec.get("timeouts", {})
        bind = spec.get("bind")
        return Directory(
            name=name,
            kind=kind,
            flavour=flavour,
            schema=self.schema(FLAVOUR_SCHEMAS[flavour], spec.get("schema", {})),
            users=UserScope(
                search_bases=tuple(users["search_bases"]),
                filter=users.get("filter", users_filter),
                member_of=tuple(users.get("member_of", ())),
                **given(users, "scope", "include_disabled"),
            ),
            groups=GroupScope(
                search_bases=tuple(groups.get("search_bases", ())),
                filter=groups.get("filter", groups_filter),
                **given(groups, "scope"),
            ),
            mapping=self.mapping(mapping, spec.get("mapping", {})),
            path=self.absolute(spec["path"]) if kind == "ldif" else None,
            urls=tuple(spec.get("urls", ())),
            bind=Bind(
                user=bind["user"],
                password=self.secret(bind["password"], base + ("bind", "password")),
                **given(bind, "method"),
            )
            if bind
            else None,
            tls=Tls(ca_file=self.absolute(tls["ca_file"]) if tls.get("ca_file") else None, **given(tls, "verify", "start_tls")),
            **given(spec, "allow_insecure_bind", "page_size", "empty_result_expected"),
            **{field: float(timeouts[key]) for key, field in (("connect", "connect_timeout"), ("operation", "operation_timeout"))
               if key in timeouts},
            location=self.locate.key(base),
            delta=delta_reads(spec.get("delta")),
        )

    def entra_directory(self, name: str, spec: dict, mapping: dict) -> Directory:
        """Kind entra-id: Microsoft Graph's users (and groups when `groups:` is given), or a snapshot of them."""
        from .graph import CLOUDS

        base: DocPath = ("directories", name)
        users_filter, groups_filter = DEFAULT_FILTERS["entra-id"]
        users, groups = spec["users"], spec.get("groups")
        tls, timeouts = spec.get("tls", {}), spec.get("timeouts", {})
        cloud = spec.get("cloud", "global")
        login, graph = CLOUDS[cloud]
        endpoints = spec.get("endpoints", {})

        def reference_or_text(key: str):
            value = spec.get(key)
            if value is None:
                return None
            return self.secret(value, base + (key,)) if SECRET_REFERENCE.match(value) else value

        certificate = spec.get("certificate")
        federated = spec.get("federated_token")
        token_file = federated.get("file") if federated else None
        return Directory(
            name=name,
            kind="entra-id",
            flavour="entra-id",
            schema=FLAVOUR_SCHEMAS["entra-id"],
            users=UserScope(search_bases=("/users",), filter=users.get("filter", users_filter),
                            member_of=tuple(users.get("member_of", ())), **given(users, "include_disabled")),
            groups=GroupScope(search_bases=("/groups",) if groups is not None else (),
                              filter=(groups or {}).get("filter", groups_filter)),
            mapping=self.mapping(mapping, spec.get("mapping", {})),
            tls=Tls(ca_file=self.absolute(tls["ca_file"]) if tls.get("ca_file") else None, **given(tls, "verify")),
            **given(spec, "empty_result_expected"),
            **{field: float(timeouts[key]) for key, field in (("connect", "connect_timeout"), ("operation", "operation_timeout"))
               if key in timeouts},
            location=self.locate.key(base),
            delta=delta_reads(spec.get("delta")),
            graph=Graph(
                tenant=reference_or_text("tenant"),
                client_id=reference_or_text("client_id"),
                client_secret=self.secret(spec["client_secret"], base + ("client_secret",)) if "client_secret" in spec else None,
                certificate=Certificate(
                    path=self.absolute(certificate["path"]),
                    password=self.secret(certificate["password"], base + ("certificate", "password"))
                    if "password" in certificate else None,
                ) if certificate else None,
                federated_token=FederatedToken(
                    file=(self.secret(token_file, base + ("federated_token", "file")) if SECRET_REFERENCE.match(token_file)
                          else self.absolute(token_file)) if token_file else None,
                    **given(federated, "github_actions", "audience"),
                ) if federated else None,
                cloud=cloud,
                login=endpoints.get("login", login).rstrip("/"),
                graph=endpoints.get("graph", graph).rstrip("/"),
                snapshot=self.absolute(spec["snapshot"]) if "snapshot" in spec else None,
                read_groups=groups is not None,
                **given(spec, "throttle_budget"),
            ),
        )

    @staticmethod
    def schema(defaults: Schema, overrides: dict) -> Schema:
        changes: dict[str, Any] = {k: overrides[k] for k in ("anchor", "account_name", "group_name") if k in overrides}
        for key in ("member", "member_uid"):
            if key in overrides:
                changes[key] = tuple(overrides[key])
        if "disabled" in overrides:
            rule = overrides["disabled"]
            changes["disabled"] = DisabledRule(attribute=rule["attribute"], flag=rule.get("flag"), equals=rule.get("equals"))
        return replace(defaults, **changes)

    @staticmethod
    def mapping(top: dict, override: dict) -> AttributeMapping:
        """The top-level mapping with a directory's overrides: email and
        display_name replace, attributes merge key by key."""
        merged = {**top, **override}
        attributes = {**top.get("attributes", {}), **override.get("attributes", {})}
        return AttributeMapping(
            attributes=tuple((name, Template(attributes[name])) for name in sorted(attributes)),
            **({"email": tuple(Template(text) for text in merged["email"])} if "email" in merged else {}),
            **({"display_name": Template(merged["display_name"])} if "display_name" in merged else {}),
        )

    @staticmethod
    def limit(value: Any) -> Limit:
        """The three spellings: 50, '10%', {count: 50, percent: 10}; null is no limit."""
        if value is None:
            return Limit()
        if isinstance(value, int):
            return Limit(count=value)
        if isinstance(value, str):
            return Limit(percent=float(value.rstrip("%")))
        percent = value.get("percent")
        return Limit(count=value.get("count"), percent=float(percent) if percent is not None else None)

    def safety(self, safety: dict) -> Safety:
        limits = {key: self.limit(value) for key, value in safety.items() if key.startswith("max_")}
        return Safety(**limits, **given(safety, "min_limit", "window_hours"),
                      **({"review_margin": self.review_margin(safety["review_margin"])} if "review_margin" in safety else {}))

    @staticmethod
    def review_margin(value) -> ReviewMargin:
        """0, 5, '10%' or {count, percent}; the larger bound wins (unlike the limits, where the lower does)."""
        if isinstance(value, int):
            return ReviewMargin(count=value, percent=0.0)
        if isinstance(value, str):
            return ReviewMargin(count=0, percent=float(value.rstrip("%")))
        return ReviewMargin(count=value.get("count", 0), percent=float(value.get("percent", 0)))

    def store(self, store: dict) -> Store:
        kind = store.get("kind", "sqlite")
        state_dir = store.get("state_dir", DEFAULT_STATE_DIR)
        # sqlite: the database; scim: lock, history and the relations SCIM cannot hold, in a side file
        name = {"sqlite": DEFAULT_STORE_FILE, "scim": DEFAULT_SCIM_STATE_FILE}.get(kind)
        if kind == "sqlite" and "path" in store:
            return StoreConfig(kind="sqlite", path=self.absolute(store["path"]))
        if name is not None and SECRET_REFERENCE.match(state_dir):
            extra = dict(path=name, state_dir=self.secret(state_dir, ("store", "state_dir")), folder=self.folder)
        elif name is not None:
            extra = dict(path=self.absolute(os.path.join(state_dir, name)))
        else:
            extra = {}
        if kind == "sqlite":
            return StoreConfig(kind="sqlite", **extra)
        url = store["url"]
        return StoreConfig(
            kind=kind,
            url=self.secret(url, ("store", "url")) if SECRET_REFERENCE.match(url) else url,
            token=self.secret(store["token"], ("store", "token")) if "token" in store else None,
            **extra,
        )


def build_policy(data: dict, locate: Locator, folder: str, file: str, digest: str) -> Policy:
    return PolicyBuilder(locate, folder).policy(data, file, digest)


_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def delta_reads(spec: dict | None) -> DeltaReads | None:
    """`delta:` as the schema allows it (`full_read_every` like 30m, 12h, 1d)."""
    if spec is None:
        return None
    every = spec.get("full_read_every", "1d")
    return DeltaReads(full_read_every=timedelta(**{_UNITS[every[-1]]: int(every[:-1])}))
