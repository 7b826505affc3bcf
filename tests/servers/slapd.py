"""An OpenLDAP slapd with a config written here, on free loopback ports (ldap:// and ldaps://).

mdb database; the memberof and ppolicy overlays (ppolicy makes
pwdAccountLockedTime, OpenLDAP's "disabled", settable); ACLs that hide one OU
from the service account (the "unreadable base" check); and a second service
account with a size limit below the population, so a paged read is cut short
(slapd answers the page that crosses the limit with sizeLimitExceeded).
Several instances can run at once (each has its own suffix, ports and files).
The nis schema is loaded (posixGroup and its memberUid); `schemas` includes more
files, such as FreeIPA's attributes (freeipa.schema) for the freeipa flavour's tests.
`syncprov=True` adds the syncprov overlay (RFC 4533 content synchronisation, what delta reads ask)
with `sessionlog` operations kept in its session log (0: none, so every refresh with a cookie runs
a present phase) and, with `reloadhint=True`, syncprov-reloadhint (a cookie too old to answer from is
refused with e-syncRefreshRequired rather than answered with the whole content); off by default, so
the shared servers are configured as before.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from ldap3 import BASE, NONE, SIMPLE, Connection as LdapConnection, Server

from . import free_port, require_binary, wait_until
from .base import DirectoryServer
from .population import GROUPS, PEOPLE, SERVICE_ACCOUNT, SERVICE_PASSWORD, Connection, Group, Person
from .tls import TlsFiles

ADMIN_PASSWORD = "admin-secret"
LIMITED_ACCOUNT = "svc-limited"
SIZE_LIMIT = 5  # entries the limited account may read: far below the population
LOCKED = "000001010000Z"  # ppolicy's "locked until an administrator unlocks"
MODULES = ("back_mdb", "memberof", "ppolicy")


class Slapd(DirectoryServer):
    kind = "openldap"

    def __init__(self, workdir: Path, tls: TlsFiles, suffix: str = "dc=example,dc=org", mail_domain: str = "example.org",
                 schemas: tuple[str, ...] = (), syncprov: bool = False, sessionlog: int = 0,
                 reloadhint: bool = False):
        super().__init__()
        self.syncprov = syncprov
        self.sessionlog = sessionlog  # syncprov-sessionlog: write operations remembered for delete lists
        self.reloadhint = reloadhint  # syncprov-reloadhint: honour a consumer's reloadHint FALSE with 4096
        self.workdir = workdir
        self.schemas = schemas  # more schema files, after the standard ones (core, cosine, nis, inetorgperson)
        self.tls = tls
        self.suffix = suffix
        self.mail_domain = mail_domain
        self.ldap_port = free_port()
        self.ldaps_port = free_port()
        self.log_file = str(workdir / "slapd.log")
        self.connection = Connection(
            kind=self.kind,
            ldaps_url=f"ldaps://127.0.0.1:{self.ldaps_port}",
            ldap_url=f"ldap://127.0.0.1:{self.ldap_port}",
            ca_file=tls.ca_file,
            other_ca_file=tls.other_ca_file,
            base_dn=suffix,
            people_base=f"ou=People,{suffix}",
            groups_base=f"ou=Groups,{suffix}",
            bind_dn=f"cn={SERVICE_ACCOUNT},ou=Service,{suffix}",
            extra={
                "admin_dn": f"cn=admin,{suffix}",
                "limited_dn": f"cn={LIMITED_ACCOUNT},ou=Service,{suffix}",
                "size_limit": SIZE_LIMIT,
                "restricted_base": f"ou=Restricted,{suffix}",
                "referral_base": f"ou=Partners,{suffix}",
            },
        )

    # ── start and stop ──────────────────────────────────────────────────────
    def start(self, people=PEOPLE, groups=GROUPS) -> "Slapd":
        slapd = require_binary("slapd")
        started = time.monotonic()
        (self.workdir / "db").mkdir(parents=True, exist_ok=True)
        config = self.workdir / "slapd.conf"
        config.write_text(self.config())
        log = open(self.log_file, "ab")
        urls = f"{self.connection.ldap_url}/ {self.connection.ldaps_url}/"
        # -d 0: stay in the foreground (so the pid is slapd's own) without debug output
        self.process = subprocess.Popen(
            [slapd, "-f", str(config), "-h", urls, "-d", "0"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        wait_until(self._bound_admin, 20, "slapd", self.process, self.log_file)
        self.seed_structure()
        self.seed(people, groups)
        self.started_in = time.monotonic() - started
        return self

    def config(self) -> str:
        wanted = MODULES + (("syncprov",) if self.syncprov else ())
        modules = "".join(f"moduleload {m}\n" for m in wanted if _module_available(m))
        extra = "".join(f"include {path}\n" for path in self.schemas)
        sync_index = "index entryCSN,entryUUID eq\n" if self.syncprov else ""  # what syncprov searches by
        c = self.connection
        return f"""\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
{extra}modulepath /usr/lib/ldap
{modules}
pidfile {self.workdir}/slapd.pid
argsfile {self.workdir}/slapd.args
TLSCACertificateFile {self.tls.ca_file}
TLSCertificateFile {self.tls.cert_file}
TLSCertificateKeyFile {self.tls.key_file}

database mdb
maxsize 104857600
suffix "{self.suffix}"
rootdn "{c.extra['admin_dn']}"
rootpw {ADMIN_PASSWORD}
directory {self.workdir}/db
index objectClass eq
index uid,cn,mail eq
index member,uniqueMember eq
{sync_index}
# slapd's default limit (500 entries) applies to everyone else; the sync account reads everything,
# the limited one far less than the population.
limits dn.exact="{c.bind_dn}" size=unlimited time=unlimited
limits dn.exact="{c.extra['limited_dn']}" size={SIZE_LIMIT}

access to attrs=userPassword
    by anonymous auth
    by self write
    by * none
access to dn.subtree="{c.extra['restricted_base']}"
    by * none
access to *
    by * read

overlay memberof
overlay ppolicy
{self._syncprov_config()}"""

    def _syncprov_config(self) -> str:
        if not self.syncprov:
            return ""
        # the checkpoint writes contextCSN to the suffix entry every 100 operations or 10 minutes;
        # reloadhint makes a too old cookie a refusal (4096) instead of a resend of the whole content
        log = f"syncprov-sessionlog {self.sessionlog}\n" if self.sessionlog else ""
        hint = "syncprov-reloadhint TRUE\n" if self.reloadhint else ""
        return f"""
overlay syncprov
syncprov-checkpoint 100 10
{log}{hint}"""

    # ── connections ─────────────────────────────────────────────────────────
    def admin_connection(self) -> LdapConnection:
        server = Server("127.0.0.1", port=self.ldap_port, get_info=NONE)
        return LdapConnection(server, self.connection.extra["admin_dn"], ADMIN_PASSWORD, authentication=SIMPLE,
                              auto_bind=True, raise_exceptions=False)

    def _bound_admin(self) -> bool:
        conn = self.admin_connection()
        conn.unbind()
        return True

    # ── objects ─────────────────────────────────────────────────────────────
    def seed_structure(self) -> None:
        conn = self.admin()
        rdn_value = self.suffix.split(",")[0].split("=", 1)[1]
        self.check(conn.add(self.suffix, ["dcObject", "organization"], {"dc": rdn_value, "o": rdn_value}),
                   f"adding {self.suffix}")
        for ou in ("People", "Groups", "Service", "Restricted", "Partners"):
            self.check(conn.add(f"ou={ou},{self.suffix}", ["organizationalUnit"], {"ou": ou}), f"adding ou={ou}")
        for account in (SERVICE_ACCOUNT, LIMITED_ACCOUNT):
            dn = f"cn={account},ou=Service,{self.suffix}"
            self.check(conn.add(dn, ["organizationalRole", "simpleSecurityObject"],
                                {"cn": account, "userPassword": SERVICE_PASSWORD}), f"adding {dn}")
        # A subordinate referral: a subtree search over ou=Partners returns a continuation reference.
        manage_dsa_it = [("2.16.840.1.113730.3.4.2", True, None)]
        self.check(conn.add(f"ou=Remote,{self.connection.extra['referral_base']}",
                            ["referral", "extensibleObject"],
                            {"ou": "Remote", "ref": f"ldap://partners.example.net/ou=Remote,{self.suffix}"},
                            controls=manage_dsa_it), "adding the referral")
        self.check(conn.add(f"uid=hidden,{self.connection.extra['restricted_base']}", ["inetOrgPerson"],
                            {"uid": "hidden", "cn": "Hidden Person", "sn": "Person"}), "adding the hidden person")

    def user_entry(self, person: Person) -> tuple[str, dict]:
        attributes = {
            "objectClass": ["inetOrgPerson"],
            "uid": person.account,
            "cn": person.display_name,
            "sn": person.surname,
            "givenName": person.given,
            "displayName": person.display_name,
        }
        if person.mail:
            attributes["mail"] = f"{person.account}@{self.mail_domain}"
        if person.department:
            attributes["departmentNumber"] = person.department
        if person.disabled:
            attributes["pwdAccountLockedTime"] = LOCKED
        return f"uid={person.account}", attributes

    def group_entry(self, group: Group, member_dns: list[str]) -> tuple[str, dict]:
        from ldap3.utils.dn import escape_rdn

        attribute = "uniqueMember" if group.unique_members else "member"
        # groupOfNames requires a member; an empty group lists the empty DN, the usual OpenLDAP idiom
        attributes = {"objectClass": ["groupOfUniqueNames" if group.unique_members else "groupOfNames"],
                      "cn": group.cn, attribute: member_dns or [""]}
        self._unique = getattr(self, "_unique", set())
        if group.unique_members:
            self._unique.add(group.cn)
        return f"cn={escape_rdn(group.cn)}", attributes

    def member_attribute(self, group_cn: str) -> str:
        return "uniqueMember" if group_cn in getattr(self, "_unique", set()) else "member"

    def disabled_change(self, account: str, disabled: bool) -> dict:
        from ldap3 import MODIFY_DELETE, MODIFY_REPLACE

        return {"pwdAccountLockedTime": [(MODIFY_REPLACE, [LOCKED])] if disabled else [(MODIFY_DELETE, [])]}


def _module_available(name: str) -> bool:
    return any(Path("/usr/lib/ldap").glob(f"{name}.so*")) or any(Path("/usr/lib/ldap").glob(f"{name}-*.so*"))


def slapd_installed() -> bool:
    return shutil.which("slapd") is not None or Path("/usr/sbin/slapd").exists()
