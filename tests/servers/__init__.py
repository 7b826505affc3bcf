"""Real servers for integration tests, started by fixtures and stopped by their own pid.

A missing binary skips the test on a developer machine, but fails it in CI
(`RECONCILER_REQUIRE_SERVERS=1`), so a broken CI image cannot turn the
integration suite into a row of silent skips.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

REQUIRE_SERVERS = os.environ.get("RECONCILER_REQUIRE_SERVERS") == "1"


def unavailable(reason: str) -> None:
    """Skips the test locally; fails it where the servers are required."""
    if REQUIRE_SERVERS:
        pytest.fail(f"{reason} (RECONCILER_REQUIRE_SERVERS=1)", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str) -> str:
    """The full path of an executable, or skip/fail the test if it is not installed."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        unavailable(f"{name} is not installed")
    return path  # type: ignore[return-value]


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        unavailable(f"{why} needs root")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_until(condition, timeout: float, what: str, process: subprocess.Popen | None = None, log: str | None = None):
    """Polls `condition()` until it returns a true value; fails with the server's log if it never does."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        try:
            result = condition()
            if result:
                return result
        except Exception as error:  # the server is still starting
            last_error = error
        time.sleep(0.1)
    tail = ""
    if log and os.path.exists(log):
        with open(log, errors="replace") as f:
            tail = "".join(f.readlines()[-30:])
    exited = f" (exited with {process.returncode})" if process is not None and process.poll() is not None else ""
    raise RuntimeError(f"{what} did not come up within {timeout}s{exited}: {last_error}\n{tail}")


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stops a server started with start_new_session=True: its own process group, by its pid."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout)
