"""A throwaway PostgreSQL server: `initdb` into a temp dir, `pg_ctl start` on a free loopback port.

Password (SCRAM) authentication over TCP for a test role that owns a test
database, as a production store would be reached; the Unix socket lives in
the temp dir so nothing touches the system's /var/run/postgresql. PostgreSQL
refuses to run as root, so when the tests run as root the server runs as the
`postgres` system user (created by the Debian package) in a temp dir it owns.
Stopped by the postmaster's own pid (from postmaster.pid), never by name.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

from . import free_port, require_binary, unavailable, wait_until

SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "super-" + uuid.uuid4().hex[:12]
ROLE = "reconciler"
ROLE_PASSWORD = "pw-" + uuid.uuid4().hex[:12]  # random: a test that finds it in output has found a leak
DATABASE = "reconciler"
SYSTEM_USER = "postgres"  # who runs the server when the tests run as root
# Durability is not what these tests are about; without fsync a start and each COMMIT are much faster.
SPEED = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def postgres_binary(name: str) -> str:
    """initdb/pg_ctl of the newest installed PostgreSQL (Debian keeps them off PATH), else from PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if found:
        return found[-1]
    return require_binary(name)  # skips locally, fails under RECONCILER_REQUIRE_SERVERS=1


class PostgresServer:
    """One running server; `url()` gives a connection URL for the test role (password included, tests only)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir: Path | None = None
        self.pid: int | None = None
        self.started_in = 0.0  # seconds from initdb to a server that accepts the test role

    # ── start and stop ──────────────────────────────────────────────────────
    def start(self) -> "PostgresServer":
        initdb, pg_ctl = postgres_binary("initdb"), postgres_binary("pg_ctl")
        started = time.monotonic()
        as_root = os.geteuid() == 0
        if as_root:
            try:
                account = pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                unavailable(f"running PostgreSQL as root is refused and there is no '{SYSTEM_USER}' system user")
            runuser = require_binary("runuser")
        # not under pytest's tmp dir: that one is private to root, and the server user must own its folder
        self.workdir = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
        data, sockets = self.workdir / "data", self.workdir / "sockets"
        sockets.mkdir()
        password_file = self.workdir / "superuser-password"
        password_file.write_text(SUPERUSER_PASSWORD + "\n")
        if as_root:
            for path in (self.workdir, sockets, password_file):
                os.chown(path, account.pw_uid, account.pw_gid)
        prefix = [runuser, "-u", SYSTEM_USER, "--"] if as_root else []
        self._run(
            [*prefix, initdb, "-D", str(data), "-U", SUPERUSER, f"--pwfile={password_file}", "--auth=scram-sha-256",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            "initdb",
        )
        password_file.unlink()
        options = f"-h 127.0.0.1 -p {self.port} -k {sockets} {SPEED}"
        self._run([*prefix, pg_ctl, "start", "-w", "-t", "30", "-D", str(data), "-l", str(self.log_file),
                   "-o", options], "pg_ctl start")
        self.pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
        wait_until(lambda: self._superuser_connect().close() or True, 20, "PostgreSQL", log=str(self.log_file))
        self.sql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{ROLE_PASSWORD}'",
                 f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        self.started_in = time.monotonic() - started
        return self

    @property
    def log_file(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "postgres.log"

    def _run(self, command: list[str], what: str) -> None:
        result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        if result.returncode != 0:
            log = self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""
            raise RuntimeError(f"{what} failed ({result.returncode}): {result.stderr.strip()}\n{log}")

    def stop(self) -> None:
        """Fast shutdown by the postmaster's pid, then remove the data directory."""
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGINT)  # SIGINT: "fast" shutdown, ends sessions without waiting for them
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and _alive(self.pid):
                time.sleep(0.05)
            if _alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)
            self.pid = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # ── connecting ──────────────────────────────────────────────────────────
    def url(self, user: str = ROLE, password: str | None = ROLE_PASSWORD, database: str = DATABASE,
            schema: str | None = None) -> str:
        auth = quote(user) + (f":{quote(password)}" if password is not None else "")
        query = f"?options={quote(f'-csearch_path={schema}')}" if schema else ""
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}{query}"

    def _superuser_connect(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(self.url(SUPERUSER, SUPERUSER_PASSWORD, database), autocommit=True, connect_timeout=5)

    def sql(self, *statements: str, database: str = "postgres") -> None:
        """Statements as the superuser (roles, databases, grants)."""
        with self._superuser_connect(database) as connection:
            for statement in statements:
                connection.execute(statement)

    def new_schema(self, owner: str = ROLE) -> str:
        """A fresh, empty schema in the test database: one store per test without a database per test."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.sql(f"CREATE SCHEMA {name} AUTHORIZATION {owner}", database=DATABASE)
        return name


def _alive(pid: int) -> bool:
    """Whether the process still runs; a zombie (exited, not yet reaped by its new parent) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
