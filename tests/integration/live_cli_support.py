"""Running the installed `reconciler` command against the live test servers.

`LiveCompany` is a folder with a policy file that points at one or more running
servers (LDAPS with the test CA, the service account, a password by `${VAR}`
reference passed to the subprocess's environment) and an SQLite store next to it.
`Sandbox` is one test's own OU, people and groups on a shared server, removed
again afterwards, so tests that hire, move and fire people do not see each other.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from ldap3 import BASE, SUBTREE
from ruamel.yaml import YAML

from tests.e2e.conftest import reconciler_executable as reconciler_on_path
from tests.servers.base import DirectoryServer
from tests.servers.population import Group, Person

STORE = ".reconciler/store.db"


def reconciler_executable() -> str:
    """The console script installed for the interpreter running the tests; a version manager's
    shim on PATH (pyenv's is a shell script) would add a few tenths of a second to every call."""
    beside = Path(sys.executable).parent / "reconciler"
    return str(beside) if os.access(beside, os.X_OK) else reconciler_on_path()


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


class LiveCompany:
    """A policy file reading live servers, its store, and the command run on it."""

    def __init__(self, folder: Path, servers: dict[str, DirectoryServer]):
        self.folder = folder
        self.servers = servers  # directory name in the policy -> the server it reads
        self.policy = folder / "policy.yaml"
        self.store = folder / STORE
        self.env = {}
        for server in servers.values():
            self.env.update(server.bind_env())

    def write_policy(self, directories: dict[str, dict], **top) -> None:
        document = {
            "version": 1,
            "directories": directories,
            "mapping": {"email": ["{mail}"], "display_name": "{displayName}"},
            "placement": {"mode": "ou-teams", "root": "Org"},
            "store": {"kind": "sqlite", "path": STORE},
            **top,
        }
        yaml = YAML(typ="safe", pure=True)
        yaml.default_flow_style = False
        with self.policy.open("w", encoding="utf-8") as handle:
            yaml.dump(document, handle)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith("GITHUB_") and k not in self.env}  # only what this company passes
        environment.update(self.env)
        environment.update(env or {})
        done = subprocess.run([reconciler_executable(), *args], cwd=self.folder, capture_output=True, text=True,
                              env=environment, timeout=120)
        return Result(done.returncode, done.stdout, done.stderr)

    def plan_json(self) -> dict:
        result = self.run("plan", "policy.yaml", "--format", "json")
        assert result.code == 0, result.output
        return json.loads(result.out)

    def apply(self) -> Result:
        result = self.run("apply", "policy.yaml", "--auto-approve")
        assert result.code == 0, result.output
        return result

    def sql(self, query: str, *params) -> list[tuple]:
        with sqlite3.connect(self.store) as db:
            return db.execute(query, params).fetchall()

    def user(self, email: str) -> dict | None:
        rows = self.sql("SELECT key, email, display_name, team_key, status, managed FROM users "
                        "WHERE lower(email) = lower(?)", email)
        if not rows:
            return None
        assert len(rows) == 1, rows
        key, mail, name, team, status, managed = rows[0]
        return {"key": key, "email": mail, "display_name": name, "team": team, "status": status, "managed": bool(managed)}

    def links(self, email: str) -> list[tuple[str, str]]:
        """(directory, anchor) of every directory entry linked to the user with this email."""
        return self.sql("SELECT l.directory, l.anchor FROM users u JOIN user_links l ON l.user_id = u.id "
                        "WHERE lower(u.email) = lower(?) ORDER BY l.directory", email)

    def dump(self) -> list[tuple]:
        """Everything an apply could change, to compare before and after."""
        tables = ("users", "user_links", "teams", "memberships", "apply_history", "meta")
        return [(table, self.sql(f"SELECT * FROM {table} ORDER BY 1")) for table in tables]


def changes(plan: dict, action: str | None = None, kind: str = "user") -> list[dict]:
    return [c for c in plan["changes"] if c["kind"] == kind and (action is None or c["action"] == action)]


def mail_domain(server: DirectoryServer) -> str:
    return getattr(server, "mail_domain", "corp.example.com")  # Samba's people are @corp.example.com


def email(server: DirectoryServer, account: str) -> str:
    return f"{account}@{mail_domain(server)}"


def anchor(server: DirectoryServer, account: str) -> str:
    """The entry's stable anchor as the server reports it (AD: objectGUID as a GUID string; OpenLDAP: entryUUID),
    read with the administrator's connection, independently of the reconciler."""
    attribute = "objectGUID" if server.kind == "active-directory" else "entryUUID"
    conn = server.admin()
    server.check(conn.search(server.user_dn(account), "(objectClass=*)", search_scope=BASE, attributes=[attribute]),
                 f"reading the {attribute} of {account}")
    value = conn.entries[0][attribute].raw_values[0]
    if server.kind == "active-directory":  # 16 bytes; AD's string form has its first three fields little-endian
        return str(uuid.UUID(bytes_le=value))
    return value.decode("ascii")


class Sandbox:
    """One test's OU below People, with its people and groups; `remove()` deletes all of it."""

    def __init__(self, server: DirectoryServer, name: str):
        self.server = server
        self.name = name
        self.base = server.ensure_ou((name,))
        self.accounts: list[str] = []
        self.groups: list[str] = []

    def hire(self, account: str, *ou: str, mail: bool = True, disabled: bool = False, groups: tuple[str, ...] = ()) -> str:
        """A person in OU path `ou` below the sandbox; returns the email they have (if `mail`)."""
        person = Person(account, account.capitalize(), "Sandbox", (self.name, *ou), mail=mail, disabled=disabled)
        self.server.add_user(person, groups=groups)
        self.accounts.append(account)
        return email(self.server, account)

    def group(self, cn: str, members: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> str:
        dn = self.server.add_group(Group(cn, members=members, groups=groups))
        self.groups.append(cn)
        return dn

    def team(self, *ou: str) -> str:
        """The team key ou-teams gives someone in OU path `ou` below the sandbox (the policy's root is Org)."""
        return "/".join(("Org", *ou))

    def remove(self) -> None:
        conn = self.server.admin()
        for cn in reversed(self.groups):  # outer groups first: they name the inner ones
            conn.delete(self.server.group_dn(cn))
        for account in self.accounts:
            try:
                self.server.user_dn(account)
            except KeyError:  # the test deleted them already (a leaver)
                continue
            self.server.delete_user(account)
        # the OUs the people lived in (moves may have added some), deepest first
        conn.search(self.base, "(objectClass=*)", search_scope=SUBTREE, attributes=["1.1"])
        for dn in sorted((e.entry_dn for e in conn.entries), key=lambda dn: -dn.count(",")):
            conn.delete(dn)
        if conn.search(self.base, "(objectClass=*)", search_scope=BASE, attributes=["1.1"]):
            raise RuntimeError(f"sandbox {self.base} is still there: {conn.result}")
