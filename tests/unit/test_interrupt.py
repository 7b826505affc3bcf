"""A test run stopped with SIGTERM stops the servers its fixtures started (tests/interrupt.py).

A pytest of its own runs a session fixture that starts a process, as the server fixtures do, and a test
that waits; it is sent SIGTERM while the test waits. The fixture's teardown must stop the process, and
pytest must say it was interrupted rather than die silently."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = """
import subprocess
import pytest
from tests.interrupt import pytest_configure  # noqa: F401

@pytest.fixture(scope="session")
def server(tmp_path_factory):
    process = subprocess.Popen(["sleep", "600"])
    (OUT / "server.pid").write_text(str(process.pid))
    yield process
    process.kill()
    process.wait()
    (OUT / "stopped").write_text("yes")
"""

TEST = """
import time

def test_waits(server):
    (OUT / "waiting").write_text("yes")
    time.sleep(60)
"""


def test_sigterm_tears_the_fixtures_down_and_their_processes_stop(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(f"from pathlib import Path\nOUT = Path({str(out)!r})\n" + CONFTEST)
    (project / "test_waiting.py").write_text(f"from pathlib import Path\nOUT = Path({str(out)!r})\n" + TEST)
    run = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
                           cwd=project, env={**os.environ, "PYTHONPATH": str(ROOT)},
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (out / "waiting").exists():
            assert run.poll() is None and time.monotonic() < deadline, run.stdout.read() if run.poll() is not None else "no start"
            time.sleep(0.05)
        server = int((out / "server.pid").read_text())
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    assert (out / "stopped").read_text() == "yes"
    assert not Path(f"/proc/{server}").exists()  # stopped and reaped by the fixture, not orphaned
    assert run.returncode == 2 and "KeyboardInterrupt" in output and "stopped by signal 15" in output
