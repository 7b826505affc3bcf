"""The console script on a terminal (a pseudo-terminal): progress on stderr while it reads and plans,
nothing of it without a terminal or with --quiet, and a plan taller than the terminal through the pager."""
from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import threading
import time
from dataclasses import dataclass

from tests.e2e.conftest import reconciler_executable

STAGES = ("reading corp…", "reading emea…", "building the desired state…", "reading the store…", "comparing…",
          "rendering the plan…")
# what would turn progress or the pager off, or pick another pager, in the environment the tests run in
LEFT_OUT = ("CI", "PAGER", "RECONCILER_PAGER", "LESS", "LINES", "COLUMNS", "NO_COLOR", "TERM")


@dataclass
class Screen:
    code: int
    terminal: str  # all the terminal received (stderr, and stdout unless piped), line ends as written
    stdout: str | None  # stdout when it was a pipe


def in_terminal(company, *args: str, rows: int = 24, columns: int = 100, env: dict[str, str] | None = None,
                answer: tuple[str, str] | None = None, stdout_piped: bool = False, timeout: float = 60) -> Screen:
    """Runs `reconciler ARGS` with stdin, stderr (and stdout, unless piped) on a pseudo-terminal of
    `rows` × `columns`; `answer` = (prompt, text): types text once the prompt shows."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    attributes = termios.tcgetattr(slave)
    attributes[1] &= ~termios.ONLCR  # keep line ends as the program writes them
    termios.tcsetattr(slave, termios.TCSANOW, attributes)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_") and k not in LEFT_OUT}
    environment["TERM"] = "xterm"
    environment.update(env or {})
    process = subprocess.Popen([reconciler_executable(), *args], cwd=company.folder, env=environment, stdin=slave,
                               stdout=subprocess.PIPE if stdout_piped else slave, stderr=slave)
    os.close(slave)
    piped: list[bytes] = []
    reader = None
    if stdout_piped:
        reader = threading.Thread(target=lambda: piped.append(process.stdout.read()))
        reader.start()
    received = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every holder of the terminal's other side is gone
                break
            if not chunk:
                break
            received += chunk
            if answer is not None and answer[0].encode() in received:
                os.write(master, answer[1].encode())
                answer = None
        code = process.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    if reader is not None:
        reader.join(timeout=10)
        process.stdout.close()
    return Screen(code, received.decode("utf-8", "replace"), piped[0].decode("utf-8") if piped else None)


# ── progress ──

def test_progress_shows_on_a_terminal_and_is_gone_before_the_plan(company):
    screen = in_terminal(company, "plan", "policy.yaml", "--no-pager")
    assert screen.code == 0, screen.terminal
    for stage in STAGES:
        assert f"\r{stage}" in screen.terminal, stage
    before_plan, plan = screen.terminal.split("\x1b[1mPlan\x1b[0m for", 1)  # the plan, coloured on a terminal
    assert before_plan.endswith("\r")  # the line was erased, back at its start, before the plan began
    assert before_plan.rstrip("\r ").endswith("rendering the plan…")
    assert "\r" not in plan.replace("\r\n", "")  # and never drawn again over it
    assert "Users to create" in plan


def test_progress_goes_to_stderr_only(company):
    plain = company.run("plan", "policy.yaml")
    screen = in_terminal(company, "plan", "policy.yaml", stdout_piped=True)
    assert screen.code == 0, screen.terminal
    assert screen.stdout == plain.out  # stdout as without a terminal
    assert "reading corp…" in screen.terminal and "Plan for" not in screen.terminal


def test_quiet_shows_no_progress(company):
    for command in (["plan", "policy.yaml", "--no-pager", "--quiet"], ["plan", "policy.yaml", "--no-pager", "-q"],
                    ["preview", "policy.yaml", "--quiet"]):
        screen = in_terminal(company, *command)
        assert screen.code == 0, screen.terminal
        assert not any(stage in screen.terminal for stage in STAGES), command
        assert "\r" not in screen.terminal, command  # nothing drawn in place (the terminal's line ends are \n)


def test_ci_and_dumb_terminals_show_no_progress(company):
    for env in ({"CI": "true"}, {"TERM": "dumb"}):
        screen = in_terminal(company, "plan", "policy.yaml", "--no-pager", env=env)
        assert screen.code == 0, screen.terminal
        assert "reading corp…" not in screen.terminal, env


def test_without_a_terminal_stderr_stays_empty(company):
    for command in (["plan", "policy.yaml"], ["preview", "policy.yaml"], ["plan", "policy.yaml", "--format", "json"]):
        result = company.run(*command, env={"CI": ""})
        assert result.code == 0, result.err
        assert result.err == "", command
    applied = company.run("apply", "policy.yaml", "--auto-approve", env={"CI": ""})
    assert applied.code == 0 and applied.err == ""


def test_preview_and_apply_show_progress_too(company):
    preview = in_terminal(company, "preview", "policy.yaml")
    assert preview.code == 0 and "\rreading corp…" in preview.terminal and "\rbuilding the desired state…" in preview.terminal
    applied = in_terminal(company, "apply", "policy.yaml", "--auto-approve", "--no-pager")
    assert applied.code == 0, applied.terminal
    assert "\rreading corp…" in applied.terminal and "\rapplying…" in applied.terminal
    # after the plan, 'applying…' is drawn, erased, and 'Applied:' starts where it was
    assert re.search(r"\n\rapplying…\r {9}\rApplied: [^\r]*\n$", applied.terminal), applied.terminal[-300:]


def test_an_error_erases_the_progress_line_first(company):
    company.snapshot().path.write_text("dn: nonsense\n")
    screen = in_terminal(company, "plan", "policy.yaml", "--no-pager")
    assert screen.code == 1
    erased, message = screen.terminal.rsplit("\r", 1)
    assert erased.endswith(" ") and "corp.ldif" in message  # the error starts at the line's start


# ── the pager ──

def paging(company) -> tuple[dict[str, str], "os.PathLike"]:
    paged = company.folder / "paged.txt"
    return {"PAGER": f"sh -c 'cat > {paged}'"}, paged


def test_a_plan_taller_than_the_terminal_goes_through_the_pager(company):
    env, paged = paging(company)
    screen = in_terminal(company, "plan", "policy.yaml", "--detailed-exitcode", rows=10, env=env)
    assert screen.code == 2  # --detailed-exitcode as without the pager
    text = paged.read_text()
    assert text.startswith("\x1b[1mPlan\x1b[0m for policy.yaml")  # the coloured plan, as the terminal would get it
    assert "Users to create" in text and "plan digest: " in text
    assert "Users to create" not in screen.terminal  # not printed besides


def test_no_pager_a_short_plan_or_no_terminal_print_straight(company):
    env, paged = paging(company)
    screen = in_terminal(company, "plan", "policy.yaml", "--no-pager", rows=10, env=env)
    assert screen.code == 0 and "Users to create" in screen.terminal and not paged.exists()
    screen = in_terminal(company, "plan", "policy.yaml", rows=1000, env=env)  # it fits
    assert screen.code == 0 and "Users to create" in screen.terminal and not paged.exists()
    screen = in_terminal(company, "plan", "policy.yaml", rows=10, env=env, stdout_piped=True)
    assert screen.code == 0 and "Users to create" in screen.stdout and not paged.exists()
    screen = in_terminal(company, "plan", "policy.yaml", "--format", "json", rows=10, env=env)
    assert screen.code == 0 and '"changes"' in screen.terminal and not paged.exists()  # text plans only


def test_a_pager_that_cannot_start_prints_the_plan(company):
    screen = in_terminal(company, "plan", "policy.yaml", rows=10, env={"PAGER": "no-such-pager --flag"})
    assert screen.code == 0 and "Users to create" in screen.terminal
    screen = in_terminal(company, "plan", "policy.yaml", "--detailed-exitcode", rows=10,
                         env={"RECONCILER_PAGER": "", "PAGER": "no-such-pager"})
    assert screen.code == 2 and "Users to create" in screen.terminal


def test_quitting_the_pager_early_is_no_error(company):
    screen = in_terminal(company, "plan", "policy.yaml", "--detailed-exitcode", rows=10, env={"PAGER": "head -n 3"})
    assert screen.code == 2, screen.terminal
    shown = screen.terminal.split("\r")[-1]
    assert shown.count("\n") == 3 and "Traceback" not in screen.terminal and "error" not in screen.terminal


def test_apply_pages_the_plan_then_asks_after_the_pager_closed(company):
    env, paged = paging(company)
    screen = in_terminal(company, "apply", "policy.yaml", rows=10, env=env, answer=("Apply these changes? [y/N]: ", "n\n"))
    assert screen.code == 1, screen.terminal
    assert "Users to create" in paged.read_text() and "Apply these changes" not in paged.read_text()
    assert "Users to create" not in screen.terminal
    assert "Apply these changes? [y/N]: " in screen.terminal and "Nothing applied." in screen.terminal
    assert not company.store.exists() or company.sql("SELECT count(*) FROM users") == [(0,)]
