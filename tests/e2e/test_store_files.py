"""Store files that are not what they seem, through the command (issue 12):

- a store this user may only read: plan, history, explain and check read it (and write nothing, not even
  SQLite's -wal and -shm files), apply says in one line that it needs write access;
- a SQLite file of another application at store.path: every command refuses it in one line and leaves it
  byte for byte as it was;
- a crashed apply's lock: taken over at once when the holder's process is provably gone (this host, pid
  gone or reused), kept until its TTL when it may still run (another host).
"""
from __future__ import annotations

import os
import shutil
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
from tests.e2e.conftest import ROOT, Company, Result, reconciler_executable

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


# ───────────────────────────── a store this user may only read ─────────────────────────────


def run_without_root_powers(company: Company, *args: str) -> Result:
    """The command, with file permissions holding even for root (which ignores them): without the capabilities
    that override them (tests/e2e/test_no_tracebacks.py does the same)."""
    command = [reconciler_executable(), *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: a read-only file cannot be made read-only")
        drop = "-dac_override,-dac_read_search,-fowner"
        command = [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}", *command]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    done = subprocess.run(command, cwd=company.folder, capture_output=True, text=True, env=environment, timeout=120)
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(params=["folder and file", "file", "folder"])
def read_only(request, synced: Company):
    """The synced company with a title changed in the directory, its store read-only as the parameter says."""
    change_a_title(synced)
    folder, file = synced.store.parent, synced.store
    if request.param != "folder":
        file.chmod(0o444)
    if request.param != "file":
        folder.chmod(0o555)
    synced.read_only = request.param
    yield synced
    folder.chmod(0o755)
    file.chmod(0o644)


def test_plan_history_explain_and_check_read_a_store_this_user_cannot_write(read_only: Company):
    before = listing_and_bytes(read_only)
    plan = run_without_root_powers(read_only, "plan", "policy.yaml", "--detailed-exitcode")
    assert plan.code == 2 and plan.err == "", plan.err  # changes pending: the title
    assert "Users to update (1)" in plan.out and SAMUEL in plan.out
    history = run_without_root_powers(read_only, "history", "policy.yaml")
    assert history.code == 0 and "applied" in history.out and history.err == ""
    explain = run_without_root_powers(read_only, "explain", "policy.yaml", SAMUEL)
    assert explain.code == 0 and "update user" in explain.out, explain.out + explain.err
    check = run_without_root_powers(read_only, "check", "policy.yaml")
    assert check.code == 1 and "Traceback" not in check.err  # apply could not run here: check says so
    folder, file = read_only.store.parent, read_only.store
    cannot_write = (f"{file} is read-only for this user; apply needs write access to it: fix its permissions"
                    if read_only.read_only == "file" else
                    f"{folder} is not writable by this user; the store's state (database, lock, history) must be "
                    "kept there: fix its permissions or point store.state_dir elsewhere")
    assert [line for line in check.out.splitlines() if " store: " in line] == [
        f"FAIL store: sqlite: {cannot_write}",
        "OK   store: sqlite: opened read-only (plan, history and explain can read it; apply cannot write it), "
        "288 managed users",
    ]
    assert listing_and_bytes(read_only) == before  # no -wal, no -shm, not a byte


def test_apply_to_a_store_this_user_cannot_write_says_it_needs_write_access(read_only: Company):
    before = listing_and_bytes(read_only)
    result = run_without_root_powers(read_only, "apply", "policy.yaml", "--auto-approve")
    line = assert_one_line_error(result)
    assert line.startswith(f"{read_only.store}: ")
    assert "apply needs write access to" in line and "plan, history and explain only read" in line
    assert listing_and_bytes(read_only) == before


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
