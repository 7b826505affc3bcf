"""Store files that are not what they seem, through the command (issue 12):

- a SQLite file of another application at store.path: every command refuses it in one line and leaves it
  byte for byte as it was;
- a crashed apply's lock: taken over at once when the holder's process is provably gone (this host, pid
  gone or reused), kept until its TTL when it may still run (another host).
"""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.store.common import LockProcess
from tests.e2e.conftest import ROOT, Company, Result

SAMUEL = "samuel.osei@corp.example.com"  # the person whose title the directory changes below


def assert_one_line_error(result: Result, code: int = 1) -> str:
    assert result.code == code, result.out + result.err
    assert "Traceback" not in result.err + result.out
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


def change_a_title(company: Company) -> None:
    corp = company.folder / "corp.ldif"
    text = corp.read_text()
    entry = text.index("sAMAccountName: sosei")
    start = text.rindex("\n\n", 0, entry)
    title = text.index("title: ", start)
    corp.write_text(text[:title] + "title: Acting " + text[title + len("title: "):])


def listing_and_bytes(company: Company) -> tuple[list[str], bytes]:
    return sorted(os.listdir(company.store.parent)), company.store.read_bytes()


# ───────────────────────────── another application's SQLite file ─────────────────────────────


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_a_sqlite_file_of_another_application_is_refused_by_every_command_and_left_as_it_was(company, journal):
    company.store.parent.mkdir()
    db = sqlite3.connect(company.store)
    with db:
        db.execute(f"PRAGMA journal_mode = {journal}")
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, login TEXT)")
        db.execute("INSERT INTO users VALUES (1, 'root')")
    db.close()
    before = listing_and_bytes(company)
    refusal = (f"{company.store}: not a reconciler store: this SQLite database has tables of its own (accounts, "
               "users) and no reconciler schema_version table, so it was left as it is; point store.path at "
               "reconciler's store file, or at a path that does not exist yet")
    for command in (["plan", "policy.yaml"], ["apply", "policy.yaml", "--auto-approve"], ["history", "policy.yaml"],
                    ["explain", "policy.yaml", SAMUEL]):
        assert assert_one_line_error(company.run(*command)) == refusal, command
        assert listing_and_bytes(company) == before, command  # the journal mode (header bytes 18-19) included
    check = company.run("check", "policy.yaml")
    assert check.code == 1 and check.out.splitlines()[-1] == f"FAIL store: sqlite: {refusal}"
    assert listing_and_bytes(company) == before


def test_an_empty_file_at_store_path_becomes_the_store(company):
    company.store.parent.mkdir()
    company.store.write_bytes(b"")  # e.g. made by `touch` to reserve the place: nothing of anyone's in it
    assert company.plan_json()["summary"]["user.create"] == 288
    company.apply()
    assert company.sql("SELECT count(*) FROM users WHERE managed = 1") == [(288,)]


# ───────────────────────────── a crashed apply's lock ─────────────────────────────


STUCK_APPLY = textwrap.dedent("""
    # `reconciler apply`, stuck once it holds the lock: the moment a crash would hurt most
    import sys, time
    from reconciler.store.sql.store import SqlStore

    def stuck(self, changes, expected_fingerprint, record):
        print("holding the lock", flush=True)
        time.sleep(120)

    SqlStore.apply = stuck
    from reconciler.cli import main
    sys.argv = ["reconciler", "apply", "policy.yaml", "--auto-approve"]
    sys.exit(main())
""")


def test_an_apply_killed_holding_the_lock_does_not_block_the_next_one(synced: Company):
    change_a_title(synced)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    stuck = subprocess.Popen([sys.executable, "-c", STUCK_APPLY], cwd=synced.folder, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in stuck.stdout:
            if line.strip() == "holding the lock":
                break
        else:
            pytest.fail(f"the stuck apply ended: {stuck.wait()} {stuck.stderr.read()}")
        [(holder,)] = synced.sql("SELECT holder FROM apply_lock")
        held = synced.run("apply", "policy.yaml", "--auto-approve")
        assert held.code == 3 and f"store is locked by {holder} since " in held.err  # it runs: refused
        os.kill(stuck.pid, signal.SIGKILL)
        stuck.wait(10)
    finally:
        if stuck.poll() is None:
            stuck.kill()
            stuck.wait(10)
    started = time.monotonic()
    result = synced.run("apply", "policy.yaml", "--auto-approve")
    assert result.code == 0, result.out + result.err
    assert time.monotonic() - started < 60  # at once, not after the 15 minutes of the lock's TTL
    assert result.err.startswith(f"note: took over the lock of {holder} (pid {stuck.pid} on "
                                 f"{socket.gethostname()} is gone; it held the lock since ")
    assert "Traceback" not in result.err
    assert synced.user(SAMUEL)["attributes"]["title"].startswith("Acting ")
    assert synced.sql("SELECT count(*) FROM apply_lock") == [(0,)]


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def leave_lock(company: Company, process: LockProcess) -> None:
    """The row a run that died holding the lock leaves, a minute ago (well within the 15 minutes' TTL)."""
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    company.sql("INSERT INTO apply_lock (name, holder, token, since, ttl_seconds) VALUES ('apply', 'ci@crashed', ?, "
                "?, 900)", f"0123abcd {process.encode()}", since)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="start times come from /proc (Linux)")
@pytest.mark.parametrize("holder", ["a dead pid of this host", "a pid of this host now another process's",
                                    "a dead pid of another host"])
def test_a_crashed_runs_lock_row_is_taken_over_at_once_only_when_its_holder_is_provably_gone(synced, holder):
    change_a_title(synced)
    here = LockProcess.current()
    process = {
        "a dead pid of this host": replace(here, pid=dead_pid()),
        "a pid of this host now another process's": replace(here, pid=1, started="0"),  # pid 1 did not start at 0
        "a dead pid of another host": replace(here, host="runner-elsewhere", pid=dead_pid()),
    }[holder]
    leave_lock(synced, process)
    result = synced.run("apply", "policy.yaml", "--auto-approve")
    if holder == "a dead pid of another host":  # it may run there: the TTL decides, as before
        line = assert_one_line_error(result, code=3)
        assert line.startswith("refused, nothing changed: store is locked by ci@crashed since ")
        assert "another apply is running (the lock expires at " in line
        assert not synced.user(SAMUEL)["attributes"]["title"].startswith("Acting ")
        return
    assert result.code == 0, result.out + result.err
    gone = f"pid {process.pid} on {here.host} is gone"
    assert result.err.startswith(f"note: took over the lock of ci@crashed ({gone}")
    assert synced.user(SAMUEL)["attributes"]["title"].startswith("Acting ")
