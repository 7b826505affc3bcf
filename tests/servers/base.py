"""What tests do with a running directory server, whichever kind it is.

`DirectoryServer` seeds the shared population and offers the edits end-to-end
scenarios need (hire, disable, re-enable, move to another OU, group changes,
leave), plus `directory(...)`/`policy_directory(...)` to point a policy at it.
Subclasses (`samba.SambaDC`, `slapd.Slapd`) say how each object is spelled.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, Connection as LdapConnection
from ldap3.utils.dn import escape_rdn, to_dn

from . import stop_process
from .population import GROUPS, PEOPLE, Connection, Group, Person


class DirectoryServer:
    kind: str = ""  # active-directory | openldap
    process: subprocess.Popen | None = None
    log_file: str = ""
    connection: Connection
    started_in: float = 0.0  # seconds from nothing to a seeded, bound server (reported by the fixtures)
    timings: dict[str, float] = {}  # phases of started_in, where a server has distinct ones

    def __init__(self) -> None:
        self._dns: dict[str, str] = {}  # account name or group cn -> current DN (moves change it)
        self._admin: LdapConnection | None = None

    # ── subclass hooks ──────────────────────────────────────────────────────
    def admin_connection(self) -> LdapConnection:
        raise NotImplementedError

    def user_entry(self, person: Person) -> tuple[str, dict]:
        """(rdn, attributes) of a new user entry."""
        raise NotImplementedError

    def group_entry(self, group: Group, member_dns: list[str]) -> tuple[str, dict]:
        raise NotImplementedError

    def disabled_change(self, account: str, disabled: bool) -> dict:
        raise NotImplementedError

    def member_attribute(self, group_cn: str) -> str:
        return "member"

    # ── naming ──────────────────────────────────────────────────────────────
    def ou_dn(self, path: tuple[str, ...]) -> str:
        """The DN of an OU path below People: ("Sales", "EMEA") -> OU=EMEA,OU=Sales,<people base>."""
        rdns = [f"{self.ou_attribute}={escape_rdn(name)}" for name in reversed(path)]
        return ",".join([*rdns, self.connection.people_base])

    ou_attribute = "ou"

    def user_dn(self, account: str) -> str:
        return self._dns[account]

    def group_dn(self, cn: str) -> str:
        return self._dns[f"group:{cn}"]

    # ── seeding ─────────────────────────────────────────────────────────────
    def admin(self) -> LdapConnection:
        if self._admin is None or self._admin.closed:
            self._admin = self.admin_connection()
        return self._admin

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            raise RuntimeError(f"{self.kind} test server: {what} failed: {self.admin().result}")

    def ensure_ou(self, path: tuple[str, ...]) -> str:
        for depth in range(1, len(path) + 1):
            dn = self.ou_dn(path[:depth])
            conn = self.admin()
            if not conn.search(dn, "(objectClass=*)", search_scope=BASE, attributes=["1.1"]):
                self.check(conn.add(dn, ["top", "organizationalUnit"], {"ou": path[depth - 1]}), f"adding {dn}")
        return self.ou_dn(path)

    def seed(self, people=PEOPLE, groups=GROUPS) -> None:
        for person in people:
            self.add_user(person)
        for group in groups:
            self.add_group(group)

    def add_user(self, person: Person, groups: tuple[str, ...] = ()) -> str:
        """A new hire: the user entry, then the groups they join."""
        parent = self.ensure_ou(person.ou) if person.ou else self.connection.people_base
        rdn, attributes = self.user_entry(person)
        dn = f"{rdn},{parent}"
        object_classes = attributes.pop("objectClass")
        self.check(self.admin().add(dn, object_classes, attributes), f"adding {dn}")
        self._dns[person.account] = dn
        for cn in groups:
            self.add_to_group(person.account, cn)
        return dn

    def add_group(self, group: Group) -> str:
        members = [self.user_dn(a) for a in group.members] + [self.group_dn(g) for g in group.groups]
        rdn, attributes = self.group_entry(group, members)
        dn = f"{rdn},{self.connection.groups_base}"
        object_classes = attributes.pop("objectClass")
        self.check(self.admin().add(dn, object_classes, attributes), f"adding {dn}")
        self._dns[f"group:{group.cn}"] = dn
        return dn

    # ── the edits scenarios make ──────────────────────────────────────────────
    def set_disabled(self, account: str, disabled: bool = True) -> None:
        changes = self.disabled_change(account, disabled)
        self.check(self.admin().modify(self.user_dn(account), changes), f"{'disabling' if disabled else 'enabling'} {account}")

    def move_user(self, account: str, ou: tuple[str, ...]) -> str:
        """An OU move: same entry (same anchor), new DN."""
        old = self.user_dn(account)
        parent = self.ensure_ou(ou) if ou else self.connection.people_base
        rdn = to_dn(old)[0]  # the RDN as written, escapes respected
        self.check(self.admin().modify_dn(old, rdn, new_superior=parent), f"moving {account}")
        self._dns[account] = f"{rdn},{parent}"
        return self._dns[account]

    def set_attribute(self, account: str, name: str, value: str | None) -> None:
        change = [(MODIFY_REPLACE, [value])] if value is not None else [(MODIFY_REPLACE, [])]
        self.check(self.admin().modify(self.user_dn(account), {name: change}), f"setting {name} of {account}")

    def add_to_group(self, member: str, group_cn: str) -> None:
        """`member` is an account name, or `group:<cn>` to nest a group."""
        dn = self._dns[member]
        attribute = self.member_attribute(group_cn)
        self.check(self.admin().modify(self.group_dn(group_cn), {attribute: [(MODIFY_ADD, [dn])]}),
                   f"adding {member} to {group_cn}")

    def remove_from_group(self, member: str, group_cn: str) -> None:
        dn = self._dns[member]
        attribute = self.member_attribute(group_cn)
        self.check(self.admin().modify(self.group_dn(group_cn), {attribute: [(MODIFY_DELETE, [dn])]}),
                   f"removing {member} from {group_cn}")

    def delete_user(self, account: str) -> None:
        """A leaver whose entry is deleted (rather than disabled)."""
        self.check(self.admin().delete(self.user_dn(account)), f"deleting {account}")
        del self._dns[account]

    # ── policies pointing at this server ─────────────────────────────────────
    def bind_env(self) -> dict[str, str]:
        """The environment a policy's ${PASSWORD_ENV} resolves in."""
        return {self.connection.password_env: self.connection.bind_password}

    def policy_directory(self, **overrides) -> dict:
        """A `directories.<name>` mapping for a YAML policy file, reading this server over LDAPS with the test CA."""
        c = self.connection
        data: dict = {
            "kind": self.kind,
            "urls": [c.ldaps_url],
            "bind": {"user": c.bind_dn, "password": "${" + c.password_env + "}"},
            "tls": {"ca_file": c.ca_file},
            "page_size": 7,
            "users": {"search_bases": [c.people_base]},
            "groups": {"search_bases": [c.groups_base]},
        }
        data.update(overrides)
        return data

    def directory(self, name: str = "corp", *, users: dict | None = None, groups: dict | None = None,
                  bind_user: str | None = None, password_env: str | None = None, method: str = "simple",
                  mapping: dict | None = None, **overrides):
        """A `policy.model.Directory` reading this server (LDAPS, test CA, service account, page size 7)."""
        from reconciler.policy.model import (
            FLAVOUR_SCHEMAS, Bind, Directory, GroupScope, AttributeMapping, SecretRef, Template, Tls, UserScope,
        )

        c = self.connection
        flavour = self.kind
        ad = flavour == "active-directory"
        user_scope = dict(search_bases=(c.people_base,),
                          filter="(&(objectClass=user)(!(objectClass=computer)))" if ad else "(objectClass=inetOrgPerson)")
        user_scope.update(users or {})
        group_scope = dict(search_bases=(c.groups_base,),
                           filter="(objectClass=group)" if ad else "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))")
        group_scope.update(groups or {})
        templates = mapping or {"email": ["{mail}"], "display_name": "{displayName}",
                                "attributes": {"department": "{department}" if ad else "{departmentNumber}"}}
        values = dict(
            name=name, kind=flavour, flavour=flavour, schema=FLAVOUR_SCHEMAS[flavour],
            users=UserScope(**user_scope), groups=GroupScope(**group_scope),
            mapping=AttributeMapping(email=tuple(Template(t) for t in templates["email"]),
                            display_name=Template(templates.get("display_name", "{displayName}")),
                            attributes=tuple(sorted((k, Template(v)) for k, v in templates.get("attributes", {}).items()))),
            urls=(c.ldaps_url,),
            bind=Bind(user=bind_user or c.bind_dn,
                      password=SecretRef(password_env or c.password_env, f"directories.{name}.bind.password"),
                      method=method),
            tls=Tls(ca_file=c.ca_file),
            page_size=7,
            connect_timeout=5.0,
            operation_timeout=20.0,
        )
        values.update(overrides)
        return Directory(**values)

    # ── lifecycle ───────────────────────────────────────────────────────────
    def stop(self) -> None:
        if self._admin is not None:
            try:
                self._admin.unbind()
            except Exception:
                pass
            self._admin = None
        if self.process is not None:
            stop_process(self.process)

    def log_tail(self, lines: int = 30) -> str:
        path = Path(self.log_file)
        return "".join(path.read_text(errors="replace").splitlines(True)[-lines:]) if path.exists() else ""


def timed(function):
    """Runs `function()` and returns (result, seconds)."""
    start = time.monotonic()
    result = function()
    return result, time.monotonic() - start


def environ_with(values: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(values)
    return env
