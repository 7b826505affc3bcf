"""The pager: which one (environment), when (a terminal, a text taller than it, not --no-pager), and
what happens when it cannot start or the person quits early. Real processes, fake terminals."""
from __future__ import annotations

import os
import shlex

import pytest

from reconciler.cli import pager

TALL = "".join(f"line {n}\n" for n in range(50))
SHORT = "one\ntwo\n"


class Terminal:
    """A stdout that says it is a terminal (or not), writing to a real file the pager can inherit."""

    def __init__(self, path, tty: bool = True):
        self.handle = open(path, "w", encoding="utf-8")
        self.tty = tty
        self.encoding = "utf-8"
        self.errors = "strict"

    def isatty(self) -> bool:
        return self.tty

    def fileno(self) -> int:
        return self.handle.fileno()

    def write(self, text: str) -> int:
        return self.handle.write(text)

    def flush(self) -> None:
        self.handle.flush()


@pytest.fixture
def size(monkeypatch):
    """The terminal's size as the pager module asks it: 80 × 24 unless a test says otherwise."""
    current = {"size": os.terminal_size((80, 24))}
    monkeypatch.setattr(pager.os, "get_terminal_size", lambda fd: current["size"])
    return current


@pytest.fixture
def terminal(tmp_path, size):
    out = Terminal(tmp_path / "screen")
    yield out
    out.handle.close()


def recording(tmp_path, name="paged") -> tuple[str, object]:
    """A pager command that keeps what it received (and its LESS) in files."""
    target = tmp_path / name
    return f"sh -c 'echo \"$LESS\" > {shlex.quote(str(target))}.less; cat > {shlex.quote(str(target))}'", target


# ── which pager ──

@pytest.mark.parametrize("environ, command", [
    ({}, "less"),
    ({"PAGER": "more"}, "more"),
    ({"PAGER": "more", "RECONCILER_PAGER": "most -s"}, "most -s"),
    ({"PAGER": "more", "RECONCILER_PAGER": ""}, None),  # set but empty: no pager, PAGER is not asked
    ({"PAGER": ""}, None),
    ({"PAGER": "  "}, None),
    ({"PAGER": "cat"}, None),
    ({"RECONCILER_PAGER": "cat", "PAGER": "less"}, None),
])
def test_the_pager_is_reconciler_pager_then_pager_then_less(environ, command):
    assert pager.pager_command(environ) == command


# ── when ──

def test_only_a_text_taller_than_the_terminal_is_paged(terminal, size):
    assert pager.wanted(TALL, terminal, {}) == "less"
    assert pager.wanted(SHORT, terminal, {}) is None
    size["size"] = os.terminal_size((80, 60))
    assert pager.wanted(TALL, terminal, {}) is None


def test_lines_that_wrap_count_as_the_rows_they_take(terminal, size):
    size["size"] = os.terminal_size((10, 5))
    assert pager.rows("x" * 25 + "\n", 10) == 3
    assert pager.rows("\x1b[1m" + "x" * 10 + "\x1b[0m\n\n", 10) == 2  # colour codes take no room; an empty line one
    assert pager.wanted("x" * 60 + "\n", terminal, {}) == "less"


def test_lines_and_columns_in_the_environment_win(terminal):
    assert pager.wanted(TALL, terminal, {"LINES": "100"}) is None
    assert pager.wanted(SHORT, terminal, {"LINES": "1"}) == "less"


def test_no_pager_when_stdout_is_not_a_terminal_or_with_no_pager(tmp_path, terminal):
    piped = Terminal(tmp_path / "pipe", tty=False)
    try:
        assert pager.wanted(TALL, piped, {}) is None
        assert pager.page(TALL, stream=piped, environ={}) is False  # the caller prints as usual
    finally:
        piped.handle.close()
    assert pager.wanted(TALL, terminal, {}, no_pager=True) is None
    assert pager.wanted(TALL, terminal, {"PAGER": "cat"}) is None


def test_no_pager_when_the_terminal_size_is_unknown(tmp_path, monkeypatch):
    def unknown(fd):
        raise OSError(25, "Inappropriate ioctl for device")

    monkeypatch.setattr(pager.os, "get_terminal_size", unknown)
    out = Terminal(tmp_path / "screen")
    try:
        assert pager.wanted(TALL, out, {}) is None
    finally:
        out.handle.close()


# ── running it ──

def test_the_text_goes_through_the_pager_with_less_told_frx(tmp_path, terminal):
    command, paged = recording(tmp_path)
    assert pager.page(TALL, stream=terminal, environ={"PATH": os.environ["PATH"], "PAGER": command}) is True
    assert paged.read_text() == TALL
    assert paged.with_suffix(".less").read_text() == "FRX\n"
    assert (tmp_path / "screen").read_text() == ""  # nothing printed besides


def test_a_less_setting_of_ones_own_is_kept(tmp_path, terminal):
    command, paged = recording(tmp_path)
    assert pager.page(TALL, stream=terminal, environ={"PATH": os.environ["PATH"], "PAGER": command, "LESS": "-S"})
    assert paged.with_suffix(".less").read_text() == "-S\n"


def test_a_pager_that_is_not_installed_prints_the_text_as_usual(tmp_path, terminal):
    environ = {"PATH": os.environ["PATH"], "PAGER": "no-such-pager-anywhere --flag"}
    assert pager.page(TALL, stream=terminal, environ=environ) is False


def test_a_shell_pager_that_cannot_run_prints_the_text_as_usual(tmp_path, terminal):
    # through the shell (the `=`): not found, 127; a folder run as a program: not executable, 126
    for command in ("no-such-pager-anywhere --width=80", f"sh -c '{tmp_path} -x'"):
        environ = {"PATH": os.environ["PATH"], "PAGER": command}
        assert pager.page(TALL * 2000, stream=terminal, environ=environ) is False, command
    assert (tmp_path / "screen").read_text() == ""  # it showed nothing: the caller prints it all


def test_quitting_the_pager_early_is_no_error(tmp_path, terminal):
    # reads one line and leaves, as a person pressing q does: the rest meets a closed pipe
    environ = {"PATH": os.environ["PATH"], "PAGER": "head -n 1"}
    assert pager.page(TALL * 5000, stream=terminal, environ=environ) is True
    assert (tmp_path / "screen").read_text() == "line 0\n"


def test_the_pager_is_waited_for_before_page_returns(tmp_path, terminal):
    command = f"sh -c 'cat > /dev/null; sleep 0.3; echo done > {shlex.quote(str(tmp_path / 'finished'))}'"
    assert pager.page(TALL, stream=terminal, environ={"PATH": os.environ["PATH"], "PAGER": command})
    assert (tmp_path / "finished").read_text() == "done\n"  # so apply's question comes after it


def test_ctrl_c_is_left_to_the_pager_and_restored_after(tmp_path, terminal):
    import signal

    before = signal.getsignal(signal.SIGINT)
    # an interrupt while the pager runs (once it has read everything: page() is waiting for it)
    command = f"sh -c 'cat > /dev/null; kill -INT {os.getpid()}; sleep 0.2'"
    assert pager.page(TALL, stream=terminal, environ={"PATH": os.environ["PATH"], "PAGER": command})
    assert signal.getsignal(signal.SIGINT) is before
