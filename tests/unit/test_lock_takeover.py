"""A crashed apply's lock on a file store (SQLite, the SCIM side file) is taken over at once when its holder
is provably gone: same host, same boot, same pid namespace, and the pid no longer runs, or runs a process
started later. Anywhere else (another host, a lock written before holders were recorded) the TTL decides.

The lock rows are written as a crashed run would leave them, with the process identity that
`LockProcess.encode` puts in the token; one test kills (-9) a real process holding the lock.
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

from reconciler.errors import LockHeld
from reconciler.policy.model import StoreConfig
from reconciler.store.common import LockProcess
from reconciler.store.scim.state import SideFile
from reconciler.store.sql.sqlite import SqliteStore
from tests.store_contract import FakeClock, T0, apply

ROOT = Path(__file__).resolve().parents[2]
SINCE = "2026-11-21T09:00:00Z"  # T0: the fake clock's now, so every lock below is well within its TTL


def dead_pid() -> int:
    """The pid of a process of this host that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def store(path: Path, **options) -> SqliteStore:
    return SqliteStore(StoreConfig(kind="sqlite", path=str(path)), clock=FakeClock(), **options)


def leave_lock(path: Path, process: LockProcess | None, holder: str = "ci@crashed") -> None:
    """The apply_lock row a run leaves when it dies holding the lock (no process: as an older reconciler wrote it)."""
    seed = store(path)
    apply(seed)  # the store exists
    seed.close()
    token = "0123abcd" if process is None else f"0123abcd {process.encode()}"
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO apply_lock (name, holder, token, since, ttl_seconds) VALUES ('apply', ?, ?, ?, 900)",
                   (holder, token, SINCE))
    db.close()


def lock_rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT holder, token FROM apply_lock").fetchall()
    db.close()
    return rows


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "store.db"


# ───────────────────────────── the holder's process ─────────────────────────────


def test_the_process_round_trips_through_its_text_and_old_tokens_are_no_process():
    here = LockProcess.current()
    assert here.host == socket.gethostname() and here.pid == os.getpid()
    assert LockProcess.decode(here.encode()) == here
    odd = LockProcess(host="runner 1=x", pid=42)  # a host name no DNS would allow still round-trips
    assert LockProcess.decode(odd.encode()) == odd
    for text in ("", "0123abcd", "host=runner-1", "host=runner-1 pid=0", "host=runner-1 pid=-1", "host= pid=5",
                 "host=runner-1 pid=x"):
        assert LockProcess.decode(text) is None, text


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="start times, boot and pid namespace come from /proc")
def test_gone_only_when_provable_on_this_host():
    here = LockProcess.current()
    assert here.started is not None and here.boot is not None and here.pid_namespace is not None
    assert here.gone() is None  # this very process runs
    pid = dead_pid()
    assert replace(here, pid=pid).gone() == f"pid {pid} on {here.host} is gone"
    assert replace(here, started=str(int(here.started) - 1)).gone() == (
        f"pid {here.pid} on {here.host} is gone (its pid now belongs to a process started later)")
    # elsewhere nothing can be proven: another machine, this one before a reboot, another container's processes
    assert replace(here, pid=pid, host="runner-elsewhere").gone() is None
    assert replace(here, pid=pid, boot="00000000-0000-0000-0000-000000000000").gone() is None
    assert replace(here, pid=pid, pid_namespace="pid:[1]").gone() is None
    # a process of another user that runs (PermissionError) is not gone; pid 1 always runs
    assert replace(here, pid=1, started=None).gone() is None


def test_an_exited_process_its_parent_has_not_reaped_yet_is_gone():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    holder = LockProcess(socket.gethostname(), child.pid, LockProcess.current().boot,
                         LockProcess.current().pid_namespace)  # no start time: only the pid to go by
    try:
        assert holder.gone() is None
        os.kill(child.pid, signal.SIGKILL)
        # a zombie until wait(): os.kill(pid, 0) still succeeds, but /proc says state Z (or the pid is gone)
        deadline = time.monotonic() + 10
        while holder.gone() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert holder.gone() == f"pid {child.pid} on {socket.gethostname()} is gone"
    finally:
        child.kill()
        child.wait()


# ───────────────────────────── the SQLite store's lock ─────────────────────────────


def test_a_lock_records_the_holding_process_in_its_token(path: Path):
    s = store(path)
    with s.lock("ci@runner"):
        [(holder, token)] = lock_rows(path)
        assert holder == "ci@runner"
        secret, process = token.split(" ", 1)
        assert len(secret) == 32 and LockProcess.decode(process) == LockProcess.current()
    s.close()


def test_the_lock_of_a_dead_pid_on_this_host_is_taken_over_at_once(path: Path):
    pid = dead_pid()
    leave_lock(path, replace(LockProcess.current(), pid=pid))
    successor = store(path)
    with successor.lock("ci@next") as info:  # within the TTL: the fake clock still says SINCE
        assert info.expired_takeover == (
            f"took over the lock of ci@crashed (pid {pid} on {socket.gethostname()} is gone; it held the lock "
            f"since {SINCE}); that apply crashed")
        assert [r[0] for r in lock_rows(path)] == ["ci@next"]
        apply(successor)
    successor.close()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="start times come from /proc")
def test_a_pid_now_running_a_later_process_is_taken_over_at_once(path: Path):
    here = LockProcess.current()
    leave_lock(path, replace(here, started=str(int(here.started) - 1)))  # this pid, but an earlier process
    successor = store(path)
    with successor.lock("ci@next") as info:
        assert info.expired_takeover is not None
        assert f"(pid {here.pid} on {here.host} is gone (its pid now belongs to a process started later); " \
            in info.expired_takeover
    successor.close()


@pytest.mark.parametrize("holder", ["a running process of this host", "another host", "an older reconciler"])
def test_a_holder_that_may_still_run_keeps_the_lock_until_its_ttl(path: Path, holder: str):
    process = {
        "a running process of this host": LockProcess.current(),
        "another host": replace(LockProcess.current(), host="runner-elsewhere", pid=dead_pid()),
        "an older reconciler": None,  # a token without the process: nothing to prove with
    }[holder]
    leave_lock(path, process)
    clock = FakeClock()
    successor = store(path)
    successor.clock = clock
    with pytest.raises(LockHeld) as raised:
        with successor.lock("ci@next"):
            pass
    assert raised.value.message == (f"store is locked by ci@crashed since {SINCE}; another apply is running "
                                    "(the lock expires at 2026-11-21T09:15:00Z)")
    with pytest.raises(LockHeld):  # an apply without the lock is refused too
        apply(successor)
    clock.advance(901)
    with successor.lock("ci@next") as info:  # past the TTL, as before
        assert info.expired_takeover == (f"took over the lock of ci@crashed (held since {SINCE}, expired at "
                                         "2026-11-21T09:15:00Z); that apply presumably crashed")
    successor.close()


def test_an_apply_without_the_lock_goes_through_when_the_holder_is_gone(path: Path):
    leave_lock(path, replace(LockProcess.current(), pid=dead_pid()))
    s = store(path)
    assert apply(s).outcome == "applied"
    s.close()


CRASHING_RUN = textwrap.dedent("""
    import sys, time
    from reconciler.policy.model import StoreConfig
    from reconciler.store.sql.sqlite import SqliteStore
    store = SqliteStore(StoreConfig(kind="sqlite", path=sys.argv[1]))
    held = store.lock("ci@crashed")  # kept: a collected generator would release the lock
    held.__enter__()
    print("locked", flush=True)
    time.sleep(120)
""")


def test_a_process_killed_holding_the_lock_is_taken_over_at_once(path: Path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    crashed = subprocess.Popen([sys.executable, "-c", CRASHING_RUN, str(path)], stdout=subprocess.PIPE, text=True,
                               env=env)
    try:
        assert crashed.stdout.readline().strip() == "locked"
        successor = SqliteStore(StoreConfig(kind="sqlite", path=str(path)))  # the real clock: well within the TTL
        with pytest.raises(LockHeld, match="store is locked by ci@crashed since "):
            with successor.lock("ci@next"):
                pass
        os.kill(crashed.pid, signal.SIGKILL)  # no release, no cleanup
        crashed.wait(10)
    finally:
        if crashed.poll() is None:
            crashed.kill()
            crashed.wait(10)
    with successor.lock("ci@next") as info:
        assert info.expired_takeover is not None
        assert info.expired_takeover.startswith(
            f"took over the lock of ci@crashed (pid {crashed.pid} on {socket.gethostname()} is gone; it held the lock since ")
        apply(successor)
    successor.close()


# ───────────────────────────── the SCIM side file: the same lock ─────────────────────────────


def test_the_scim_side_file_takes_over_a_dead_holders_lock_at_once_and_keeps_a_live_ones(tmp_path: Path):
    side_path = tmp_path / ".reconciler" / "scim-state.db"
    side = SideFile(side_path, clock=FakeClock(T0))
    held = side.lock("ci@crashed")  # kept: a collected generator would release the lock
    held.__enter__()  # this process holds it, and runs: refused
    other = SideFile(side_path, clock=FakeClock(T0))
    with pytest.raises(LockHeld, match="store is locked by ci@crashed since 2026-11-21T09:00:00Z; another apply is"):
        with other.lock("ci@next"):
            pass
    side.close()
    pid = dead_pid()  # the same row, as a run that died left it
    with sqlite3.connect(side_path) as db:
        db.execute("UPDATE apply_lock SET token = ?", (f"0123abcd {replace(LockProcess.current(), pid=pid).encode()}",))
    db.close()
    with other.lock("ci@next") as info:
        assert info.expired_takeover == (
            f"took over the lock of ci@crashed (pid {pid} on {socket.gethostname()} is gone; it held the lock "
            f"since {SINCE}); that apply crashed")
    other.close()
