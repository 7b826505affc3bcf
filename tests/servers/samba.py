"""A Samba AD domain controller provisioned into a temp dir, on 127.0.0.1:389/636.

`samba-tool domain provision` writes a fresh domain (a few seconds); `samba -i
-M single` serves only LDAP (the other AD services are switched off: they are
not needed and slow the start). Samba presents the test CA's certificate for
127.0.0.1, so the tests verify TLS as users do. Needs root (Samba refuses to run
as anyone else) and the standard ports, since AD clients assume them.
"""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from ldap3 import BASE, NONE, SIMPLE, Connection as LdapConnection, Server, Tls as LdapTls

from . import port_in_use, require_binary, require_root, unavailable, wait_until
from .base import DirectoryServer
from .population import SERVICE_ACCOUNT, SERVICE_PASSWORD, Connection, Group, Person
from .tls import TlsFiles

REALM = "CORP.EXAMPLE.COM"
DOMAIN = "CORP"
BASE_DN = "DC=corp,DC=example,DC=com"
ADMIN_PASSWORD = "Adm1n-Passw0rd-Test!"
HOST = "127.0.0.1"

UF_ACCOUNTDISABLE = 0x2
UF_PASSWD_NOTREQD = 0x20
UF_NORMAL_ACCOUNT = 0x200

# Extra accounts whose binds fail with the AD sub-codes `check` translates.
FAILING_BIND_ACCOUNTS = {
    "svc-disabled": {"userAccountControl": str(UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE)},  # 533
    "svc-expired": {"accountExpires": "116444736000000000"},  # 1970-01-01: 701
    "svc-mustchange": {"pwdLastSet": "0"},  # 773
    "svc-hours": {"logonHours": b"\x00" * 21},  # no permitted hour: 530
    "svc-workstation": {"userWorkstations": "NOWHERE"},  # only from a computer that does not exist: 531
}


class SambaDC(DirectoryServer):
    kind = "active-directory"
    ou_attribute = "OU"

    def __init__(self, workdir: Path, tls: TlsFiles):
        super().__init__()
        self.workdir = workdir
        self.tls = tls
        self.target = workdir / "dc"
        self.log_file = str(workdir / "samba.log")
        self.connection = Connection(
            kind=self.kind,
            ldaps_url=f"ldaps://{HOST}",
            ldap_url=f"ldap://{HOST}",
            ca_file=tls.ca_file,
            other_ca_file=tls.other_ca_file,
            base_dn=BASE_DN,
            people_base=f"OU=People,{BASE_DN}",
            groups_base=f"OU=Groups,{BASE_DN}",
            bind_dn=f"CN={SERVICE_ACCOUNT},OU=Service Accounts,{BASE_DN}",
            extra={
                "upn": f"{SERVICE_ACCOUNT}@corp.example.com",
                "down_level": f"{DOMAIN}\\{SERVICE_ACCOUNT}",
                "admin_dn": f"CN=Administrator,CN=Users,{BASE_DN}",
                "failing_binds": {name: f"{DOMAIN}\\{name}" for name in FAILING_BIND_ACCOUNTS},
                "failing_password": SERVICE_PASSWORD,
            },
        )

    # ── start and stop ──────────────────────────────────────────────────────
    def start(self) -> "SambaDC":
        require_root("Samba AD DC")
        samba_tool = require_binary("samba-tool")
        samba = require_binary("samba")
        for port in (389, 636, 3268, 3269):
            if port_in_use(port):
                unavailable(f"port {port} on 127.0.0.1 is in use; the Samba AD DC needs it")
        started = time.monotonic()
        self.provision(samba_tool)
        provisioned = time.monotonic()
        log = open(self.log_file, "ab")
        self.process = subprocess.Popen(
            [samba, "-i", "-M", "single", "-s", str(self.target / "etc" / "smb.conf")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        wait_until(self._bound_admin, 60, "Samba AD DC", self.process, self.log_file)
        answering = time.monotonic()
        self.seed_service_accounts()
        self.seed()
        self.started_in = time.monotonic() - started
        self.timings = {"provision": provisioned - started, "start": answering - provisioned,
                        "seed": time.monotonic() - answering}
        return self

    def provision(self, samba_tool: str) -> None:
        options = {
            "interfaces": HOST,
            "bind interfaces only": "yes",
            "tls enabled": "yes",
            "tls keyfile": self.tls.key_file,
            "tls certfile": self.tls.cert_file,
            "tls cafile": self.tls.ca_file,
            "ldap server require strong auth": "no",  # simple binds over plain LDAP for the StartTLS/insecure tests
        }
        command = [
            samba_tool, "domain", "provision", f"--realm={REALM}", f"--domain={DOMAIN}", "--server-role=dc",
            "--dns-backend=NONE", "--use-rfc2307", f"--targetdir={self.target}", f"--adminpass={ADMIN_PASSWORD}",
            "--host-name=dc1", *(f"--option={key} = {value}" for key, value in options.items()),
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"samba-tool domain provision failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        self._tune_config(options)

    def _tune_config(self, options: dict[str, str]) -> None:
        """Keeps the instance to itself (pid, sockets and logs in the temp dir), serves LDAP only, and
        re-adds options the provisioner does not write back."""
        path = self.target / "etc" / "smb.conf"
        text = path.read_text()
        text = re.sub(r"\tserver services = .*\n", "\tserver services = ldap\n", text)
        text = re.sub(r"\tlog file = .*\n", f"\tlog file = {self.log_file}\n", text)
        for directory in ("run", "ncalrpc", "winbindd"):
            (self.target / directory).mkdir(exist_ok=True)
        own = {
            "pid directory": self.target / "run",
            "ncalrpc dir": self.target / "ncalrpc",
            "winbindd socket directory": self.target / "winbindd",
            "dcerpc endpoint servers": "",
            **options,
        }
        lines = "".join(f"\t{key} = {value}\n" for key, value in own.items() if f"\t{key} = " not in text)
        path.write_text(text.replace("[global]\n", "[global]\n" + lines, 1))

    # ── connections ─────────────────────────────────────────────────────────
    def admin_connection(self) -> LdapConnection:
        # LDAPS: AD only accepts unicodePwd (setting passwords) over an encrypted connection.
        import ssl

        server = Server(HOST, port=636, use_ssl=True, get_info=NONE,
                        tls=LdapTls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.tls.ca_file))
        return LdapConnection(server, self.connection.extra["admin_dn"], ADMIN_PASSWORD, authentication=SIMPLE,
                              auto_bind=True, raise_exceptions=False)

    def _bound_admin(self) -> bool:
        conn = self.admin_connection()
        ok = conn.search(BASE_DN, "(objectClass=*)", search_scope=BASE, attributes=["1.1"])
        conn.unbind()
        return ok

    # ── objects ─────────────────────────────────────────────────────────────
    def seed_service_accounts(self) -> None:
        self.ensure_ou_at(f"OU=Service Accounts,{BASE_DN}", "Service Accounts")
        self.ensure_ou_at(self.connection.people_base, "People")
        self.ensure_ou_at(self.connection.groups_base, "Groups")
        self._add_account(SERVICE_ACCOUNT, {})
        for name, attributes in FAILING_BIND_ACCOUNTS.items():
            self._add_account(name, attributes)

    def ensure_ou_at(self, dn: str, name: str) -> None:
        conn = self.admin()
        if not conn.search(dn, "(objectClass=*)", search_scope=BASE, attributes=["1.1"]):
            self.check(conn.add(dn, ["top", "organizationalUnit"], {"ou": name}), f"adding {dn}")

    def _add_account(self, name: str, changes: dict[str, str]) -> None:
        from ldap3 import MODIFY_REPLACE

        dn = f"CN={name},OU=Service Accounts,{BASE_DN}"
        conn = self.admin()
        self.check(conn.add(dn, ["top", "person", "organizationalPerson", "user"], {
            "sAMAccountName": name,
            "userPrincipalName": f"{name}@corp.example.com",
            "unicodePwd": f'"{SERVICE_PASSWORD}"'.encode("utf-16-le"),
            "userAccountControl": str(UF_NORMAL_ACCOUNT),
        }), f"adding {dn}")
        if changes:
            self.check(conn.modify(dn, {k: [(MODIFY_REPLACE, [v])] for k, v in changes.items()}), f"changing {dn}")

    def user_entry(self, person: Person) -> tuple[str, dict]:
        from ldap3.utils.dn import escape_rdn

        flags = UF_NORMAL_ACCOUNT | UF_PASSWD_NOTREQD | (UF_ACCOUNTDISABLE if person.disabled else 0)
        attributes = {
            "objectClass": ["top", "person", "organizationalPerson", "user"],
            "sAMAccountName": person.account,
            "userPrincipalName": f"{person.account}@corp.example.com",
            "givenName": person.given,
            "sn": person.surname,
            "displayName": person.display_name,
            "userAccountControl": str(flags),
        }
        if person.mail:
            attributes["mail"] = f"{person.account}@corp.example.com"
        if person.department:
            attributes["department"] = person.department
        return f"CN={escape_rdn(person.display_name)}", attributes

    def group_entry(self, group: Group, member_dns: list[str]) -> tuple[str, dict]:
        from ldap3.utils.dn import escape_rdn

        attributes = {
            "objectClass": ["top", "group"],
            # sAMAccountName may not hold * and a few other characters; the cn keeps the real name
            "sAMAccountName": re.sub(r"[^A-Za-z0-9-]+", "-", group.cn).strip("-")[:20],
        }
        if member_dns:
            attributes["member"] = member_dns
        return f"CN={escape_rdn(group.cn)}", attributes

    def disabled_change(self, account: str, disabled: bool) -> dict:
        from ldap3 import MODIFY_REPLACE

        conn = self.admin()
        conn.search(self.user_dn(account), "(objectClass=*)", search_scope=BASE, attributes=["userAccountControl"])
        flags = int(conn.entries[0].userAccountControl.value)
        flags = flags | UF_ACCOUNTDISABLE if disabled else flags & ~UF_ACCOUNTDISABLE
        return {"userAccountControl": [(MODIFY_REPLACE, [str(flags)])]}
