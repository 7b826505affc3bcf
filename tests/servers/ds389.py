"""A 389 Directory Server instance of its own, under a temp dir, on free loopback ports (ldap:// and ldaps://).

Debian's `389-ds-base` installs into /etc, /var and /run and expects systemd. Nothing of that is
used here: the instance lives in a prefix of its own (what `dscreate ds-root` prepares for users
who are not root, done by hand because that command refuses root): the packaged defaults.inf,
schema and templates copied under the work dir with every path pointed there, systemd and
SELinux off. `dscreate from-file` (with PREFIX set) builds the instance and its self-signed CA
and server certificate (for `localhost`), and `ns-slapd -d 0` runs it in the foreground, so the
pid is the server's own and the fixture stops it by that pid. The memberOf plugin is turned on
(for member and uniqueMember), as most sites have it.

Users are inetOrgPerson with nsAccountLock: TRUE when disabled (what `dsidm account lock` sets);
the anchor is nsUniqueId. A service account reads everything, operational attributes included
(an ACI names them: `targetattr="*"` does not cover them on 389 DS).
"""
from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import time
from pathlib import Path

from ldap3 import NONE, SIMPLE, Connection as LdapConnection, Server

from . import free_port, require_binary, unavailable, wait_until
from .base import DirectoryServer
from .population import GROUPS, PEOPLE, SERVICE_ACCOUNT, SERVICE_PASSWORD, Connection, Group, Person
from .tls import TlsFiles

ADMIN_DN = "cn=Directory Manager"
ADMIN_PASSWORD = "Directory-Manager-Secret-1"
INSTANCE = "rt"
# what the service account may read: every user attribute and the operational ones the flavour uses
READ_ATTRIBUTES = "* || nsUniqueId || nsAccountLock || memberOf || entryUUID"
CREATE_TIMEOUT = 120  # dscreate takes about 11 s here (most of it the self-signed certificate)


class Ds389(DirectoryServer):
    kind = "389ds"

    def __init__(self, workdir: Path, tls: TlsFiles, suffix: str = "dc=example,dc=org", mail_domain: str = "example.org"):
        super().__init__()
        self.workdir = Path(workdir)
        self.prefix = self.workdir / "root"
        self.suffix = suffix
        self.mail_domain = mail_domain
        self.ldap_port = free_port()
        self.ldaps_port = free_port()
        self.config_dir = self.prefix / "etc" / "dirsrv" / f"slapd-{INSTANCE}"
        self.log_file = str(self.workdir / "ns-slapd.log")
        self.timings = {}
        self.connection = Connection(
            kind=self.kind,
            # the self-signed certificate dscreate makes names localhost
            ldaps_url=f"ldaps://localhost:{self.ldaps_port}",
            ldap_url=f"ldap://localhost:{self.ldap_port}",
            ca_file=str(self.config_dir / "ca.crt"),
            other_ca_file=tls.ca_file,  # the other servers' test CA: not the one that signed this server
            base_dn=suffix,
            people_base=f"ou=People,{suffix}",
            groups_base=f"ou=Groups,{suffix}",
            bind_dn=f"cn={SERVICE_ACCOUNT},ou=Service,{suffix}",
            extra={"admin_dn": ADMIN_DN},
        )

    # ── start and stop ──────────────────────────────────────────────────────
    def start(self, people=PEOPLE, groups=GROUPS) -> "Ds389":
        ns_slapd = require_binary("ns-slapd")
        dscreate = require_binary("dscreate")
        started = time.monotonic()
        self._prepare_prefix()
        self._create(dscreate)
        self.timings["dscreate"] = time.monotonic() - started
        self._configure()
        log = open(self.log_file, "ab")
        # -d 0: stay in the foreground (so the pid is ns-slapd's own) without debug output
        self.process = subprocess.Popen(
            [ns_slapd, "-D", str(self.config_dir), "-i", str(self.workdir / "ns-slapd.pid"), "-d", "0"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        wait_until(self._bound_admin, 30, "389 Directory Server", self.process, self._error_log())
        self.seed_structure()
        self.seed(people, groups)
        self.started_in = time.monotonic() - started
        self.timings["start and seed"] = self.started_in - self.timings["dscreate"]
        return self

    def _prepare_prefix(self) -> None:
        """What `dscreate ds-root` does: the package's data, config templates and schema under the prefix,
        and a defaults.inf whose paths all point into it."""
        share = Path("/usr/share/dirsrv")
        if not (share / "inf" / "defaults.inf").exists():
            unavailable("389-ds-base is not installed (no /usr/share/dirsrv/inf/defaults.inf)")
        root = self.prefix
        shutil.copytree(share, root / "share" / "dirsrv", dirs_exist_ok=True)
        for folder in ("config", "schema"):
            shutil.copytree(f"/etc/dirsrv/{folder}", root / "etc" / "dirsrv" / folder, dirs_exist_ok=True)
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        user, group = _user_and_group()
        lib = _plugin_dir().parent.parent  # /usr/lib/<triplet>
        fixed = {
            "with_selinux": "no", "with_systemd": "0", "user": user, "group": group, "prefix": str(root),
            "bin_dir": "/usr/bin", "sbin_dir": "/usr/sbin", "lib_dir": str(lib), "data_dir": f"{root}/share",
            "inst_dir": f"{root}/lib/slapd-{{instance_name}}", "plugin_dir": str(_plugin_dir()),
            "system_schema_dir": f"{root}/share/dirsrv/schema",
        }
        lines = []
        for line in (share / "inf" / "defaults.inf").read_text().splitlines():
            key = line.split("=", 1)[0].strip()
            if key in fixed:
                line = f"{key} = {fixed[key]}"
            else:
                line = line.replace(" /", f" {root}/", 1)  # an absolute path: into the prefix
            lines.append(line)
        (root / "share" / "dirsrv" / "inf" / "defaults.inf").write_text("\n".join(lines) + "\n")

    def _create(self, dscreate: str) -> None:
        user, group = _user_and_group()
        inf = self.workdir / "instance.inf"
        inf.write_text(f"""\
[general]
systemd = False
selinux = False
start = False
strict_host_checking = False
full_machine_name = localhost
[slapd]
instance_name = {INSTANCE}
user = {user}
group = {group}
port = {self.ldap_port}
secure_port = {self.ldaps_port}
self_sign_cert = True
root_dn = {ADMIN_DN}
root_password = {ADMIN_PASSWORD}
ldapi = {self.workdir}/ldapi.socket
[backend-userroot]
suffix = {self.suffix}
create_suffix_entry = True
""")
        done = subprocess.run([dscreate, "from-file", str(inf)], env={**os.environ, "PREFIX": str(self.prefix)},
                              capture_output=True, text=True, timeout=CREATE_TIMEOUT, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"dscreate from-file failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def _configure(self) -> None:
        """dse.ldif, before the first start: loopback only, and the memberOf plugin on for both member kinds."""
        dse = self.config_dir / "dse.ldif"
        text = dse.read_text()
        text = text.replace("dn: cn=config\n", "dn: cn=config\nnsslapd-listenhost: 127.0.0.1\n"
                                                "nsslapd-securelistenhost: 127.0.0.1\n", 1)
        block = re.search(r"^dn: cn=MemberOf Plugin,cn=plugins,cn=config\n.*?\n\n", text, re.S | re.M)
        if block is None:
            raise RuntimeError(f"no memberOf plugin entry in {dse}")
        plugin = block.group(0).replace("nsslapd-pluginEnabled: off", "nsslapd-pluginEnabled: on")
        plugin = plugin.replace("memberofgroupattr: member\n", "memberofgroupattr: member\nmemberofgroupattr: uniqueMember\n")
        dse.write_text(text[: block.start()] + plugin + text[block.end():])

    def _error_log(self) -> str:
        return str(self.prefix / "var" / "log" / "dirsrv" / f"slapd-{INSTANCE}" / "errors")

    def log_tail(self, lines: int = 30) -> str:
        path = Path(self._error_log())
        return "".join(path.read_text(errors="replace").splitlines(True)[-lines:]) if path.exists() else ""

    # ── connections ─────────────────────────────────────────────────────────
    def admin_connection(self) -> LdapConnection:
        server = Server("127.0.0.1", port=self.ldap_port, get_info=NONE)
        return LdapConnection(server, ADMIN_DN, ADMIN_PASSWORD, authentication=SIMPLE, auto_bind=True,
                              raise_exceptions=False)

    def _bound_admin(self) -> bool:
        conn = self.admin_connection()
        conn.unbind()
        return True

    # ── objects ─────────────────────────────────────────────────────────────
    def seed_structure(self) -> None:
        conn = self.admin()
        for ou in ("People", "Groups", "Service"):
            self.check(conn.add(f"ou={ou},{self.suffix}", ["top", "organizationalUnit"], {"ou": ou}), f"adding ou={ou}")
        dn = self.connection.bind_dn
        self.check(conn.add(dn, ["top", "applicationProcess", "simpleSecurityObject"],
                            {"cn": SERVICE_ACCOUNT, "userPassword": SERVICE_PASSWORD}), f"adding {dn}")
        aci = (f'(targetattr="{READ_ATTRIBUTES}")(version 3.0; acl "reconciler tests: the sync account reads"; '
               f'allow (read, search, compare) userdn="ldap:///{dn}";)')
        from ldap3 import MODIFY_ADD

        self.check(conn.modify(self.suffix, {"aci": [(MODIFY_ADD, [aci])]}), "adding the read ACI")

    def user_entry(self, person: Person) -> tuple[str, dict]:
        attributes = {
            "objectClass": ["top", "person", "organizationalPerson", "inetOrgPerson"],
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
            attributes["nsAccountLock"] = "TRUE"
        return f"uid={person.account}", attributes

    def group_entry(self, group: Group, member_dns: list[str]) -> tuple[str, dict]:
        from ldap3.utils.dn import escape_rdn

        attribute = "uniqueMember" if group.unique_members else "member"
        attributes: dict = {"objectClass": ["top", "groupOfUniqueNames" if group.unique_members else "groupOfNames"],
                            "cn": group.cn}
        if member_dns:  # 389 DS lets a groupOfNames be empty
            attributes[attribute] = member_dns
        self._unique = getattr(self, "_unique", set())
        if group.unique_members:
            self._unique.add(group.cn)
        return f"cn={escape_rdn(group.cn)}", attributes

    def member_attribute(self, group_cn: str) -> str:
        return "uniqueMember" if group_cn in getattr(self, "_unique", set()) else "member"

    def disabled_change(self, account: str, disabled: bool) -> dict:
        from ldap3 import MODIFY_DELETE, MODIFY_REPLACE

        return {"nsAccountLock": [(MODIFY_REPLACE, ["TRUE"])] if disabled else [(MODIFY_DELETE, [])]}

    def add_posix_group(self, cn: str, gid: int, member_uids: list[str]) -> str:
        """A posixGroup of the nis schema 389 DS ships: members by account name (or DN) in memberUid."""
        from ldap3.utils.dn import escape_rdn

        dn = f"cn={escape_rdn(cn)},{self.connection.groups_base}"
        attributes: dict = {"cn": cn, "gidNumber": str(gid)}
        if member_uids:
            attributes["memberUid"] = member_uids
        self.check(self.admin().add(dn, ["top", "posixGroup"], attributes), f"adding {dn}")
        self._dns[f"group:{cn}"] = dn
        return dn


def _user_and_group() -> tuple[str, str]:
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def _plugin_dir() -> Path:
    found = sorted(Path("/usr/lib").glob("*/dirsrv/plugins")) or sorted(Path("/usr/lib64").glob("dirsrv/plugins"))
    if not found:
        unavailable("389-ds-base's plugins are not installed (no /usr/lib/*/dirsrv/plugins)")
    return found[0]


def ds389_installed() -> bool:
    return shutil.which("ns-slapd") is not None or Path("/usr/sbin/ns-slapd").exists()
