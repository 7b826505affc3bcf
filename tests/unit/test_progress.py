"""Progress on a terminal: when it shows, how often it is drawn, what it says, and that the stages and
the sources report to it per stage and per page or chunk, never per entry."""
from __future__ import annotations

import base64
import io
import os
import threading
from dataclasses import replace

import pytest

from reconciler import progress, timings
from reconciler.directory import read_all
from reconciler.directory.ldap.paged import paged_search
from reconciler.directory.ldap.source import LiveSource
from reconciler.directory.ldif.source import LdifSource
from reconciler.policy.model import GroupScope
from tests.unit.test_ldif_source import QUICKSTART, corp
from tests.unit.test_paged import SEARCH, FakeAD, _live_directory, people


class Terminal(io.StringIO):
    """What a TerminalProgress writes, kept; isatty as told."""

    def __init__(self, tty: bool = True):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A Progress that remembers every call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self._lock = threading.Lock()

    def stage(self, doing: str) -> None:
        self.calls.append(("stage", doing))

    def read(self, directory: str, entries: int) -> None:
        with self._lock:
            self.calls.append(("read", directory, entries))

    def clear(self) -> None:
        self.calls.append(("clear",))

    def reads(self, directory: str) -> list[int]:
        return [c[2] for c in self.calls if c[0] == "read" and c[1] == directory]


@pytest.fixture
def recorder():
    recording = progress.install(Recorder())
    yield recording
    progress.install(None)


# ── when it shows ──

@pytest.mark.parametrize("environ, quiet, tty, shown", [
    ({}, False, True, True),
    ({}, False, False, False),  # a pipe or a file: nothing at all
    ({}, True, True, False),  # --quiet
    ({"CI": "true"}, False, True, False),
    ({"CI": "1"}, False, True, False),
    ({"CI": "false"}, False, True, True),
    ({"CI": "0"}, False, True, True),
    ({"CI": ""}, False, True, True),
    ({"TERM": "dumb"}, False, True, False),
    ({"TERM": "xterm-256color"}, False, True, True),
    ({"NO_COLOR": "1"}, False, True, True),  # the line has no colour to take away
])
def test_progress_shows_only_on_a_terminal_when_nothing_says_otherwise(environ, quiet, tty, shown):
    assert progress.enabled(Terminal(tty), environ, quiet) is shown


def test_a_closed_or_missing_stream_is_no_terminal():
    closed = open(os.devnull, "w")
    closed.close()  # isatty raises ValueError
    assert progress.enabled(closed, {}) is False
    assert progress.enabled(None, {}) is False  # type: ignore[arg-type]


# ── the line ──

def test_reads_redraw_at_most_every_interval_however_many_chunks_arrive():
    clock, terminal = Clock(), Terminal()
    shown = progress.TerminalProgress(terminal, interval=0.25, clock=clock, columns=80)
    shown.stage("reading corp")
    for _ in range(10_000):  # 10,000 chunks over 5 seconds
        clock.now += 0.0005
        shown.read("corp", 10)
    assert shown.drawn <= 1 + 5 / 0.25 + 1
    assert shown.drawn >= 5 / 0.25 - 1  # and it does keep up
    assert shown.line() == "reading corp… 100,000 entries"
    assert terminal.getvalue().count("\r") == shown.drawn and "\n" not in terminal.getvalue()  # in place


def test_a_stage_is_drawn_at_once_and_starts_its_count_afresh():
    clock, terminal = Clock(), Terminal()
    shown = progress.TerminalProgress(terminal, clock=clock, columns=80)
    shown.stage("reading corp")
    clock.now += 1
    shown.read("corp", 1024)
    assert terminal.getvalue() == "\rreading corp…\rreading corp… 1,024 entries"
    shown.stage("comparing")  # at once, though no time passed
    assert shown.line() == "comparing…"
    # padded over the longer line it replaces
    assert terminal.getvalue().endswith("\rcomparing…" + " " * (len("reading corp… 1,024 entries") - len("comparing…")))


def test_clear_erases_the_line_with_spaces_and_returns_to_its_start():
    terminal = Terminal()
    shown = progress.TerminalProgress(terminal, columns=80)
    shown.stage("reading the store")
    shown.clear()
    width = len("reading the store…")
    assert terminal.getvalue() == "\rreading the store…" + "\r" + " " * width + "\r"
    shown.clear()  # nothing on screen: nothing written
    assert terminal.getvalue().endswith(" " * width + "\r")
    assert "\x1b" not in terminal.getvalue()  # no escape sequences, so any terminal takes it


def test_the_line_never_wraps():
    terminal = Terminal()
    shown = progress.TerminalProgress(terminal, columns=20)
    shown.stage("reading a-directory-with-a-long-name")
    assert len(terminal.getvalue().lstrip("\r")) == 19


def test_two_directories_in_one_stage_are_both_counted():
    shown = progress.TerminalProgress(Terminal(), columns=80)
    shown.stage("reading")
    shown.read("corp", 3)
    shown.read("emea", 4)
    shown.read("corp", 3)
    assert shown.line() == "reading… corp 6, emea 4"


def test_reads_from_worker_threads_all_count():
    clock = Clock()
    shown = progress.TerminalProgress(Terminal(), clock=clock, columns=80)
    shown.stage("reading corp")
    workers = [threading.Thread(target=lambda: [shown.read("corp", 1) for _ in range(5_000)]) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert shown.line() == "reading corp… 20,000 entries"


def test_a_terminal_that_went_away_silences_it_without_an_error():
    class Gone(Terminal):
        def write(self, text):
            raise OSError(5, "Input/output error")

    shown = progress.TerminalProgress(Gone(), columns=80)
    shown.stage("reading corp")
    shown.read("corp", 1)
    shown.clear()


def test_finish_erases_and_puts_the_no_op_back():
    terminal = Terminal()
    progress.install(progress.TerminalProgress(terminal, columns=80)).stage("comparing")
    progress.finish()
    assert terminal.getvalue().endswith("\r")
    assert progress.current() is progress.NO_PROGRESS
    progress.current().stage("nothing shows")  # the default does nothing
    assert "nothing shows" not in terminal.getvalue()


# ── who reports ──

def test_timings_stages_say_what_they_do(recorder, monkeypatch):
    monkeypatch.delenv(timings.ENV, raising=False)
    with timings.stage("diff", "comparing"):
        pass
    with timings.stage("read"):  # no words: nothing to show
        pass
    assert recorder.calls == [("stage", "comparing")]


def test_an_ldif_read_reports_entries_parsed_in_chunks_of_1024(recorder, tmp_path):
    snapshot = tmp_path / "big.ldif"
    lines = ["dn: DC=corp,DC=example,DC=com\nobjectClass: domain\n",
             "dn: OU=People,DC=corp,DC=example,DC=com\nobjectClass: organizationalUnit\n",
             "dn: OU=Groups,DC=corp,DC=example,DC=com\nobjectClass: organizationalUnit\n"]
    for i in range(2_500):
        lines.append(f"dn: CN=User {i},OU=People,DC=corp,DC=example,DC=com\nobjectClass: user\n"
                     f"objectGUID:: {base64.b64encode(i.to_bytes(16, 'little')).decode()}\n"
                     f"sAMAccountName: user{i}\nmail: user{i}@corp.example.com\n")
    snapshot.write_text("\n".join(lines))
    read = LdifSource(corp(path=snapshot)).read()
    assert read.entries_read == 2_500
    assert recorder.reads("corp") == [1024, 1024, 2_503 - 2048]  # per chunk, and the rest at the end
    assert ("stage", "selecting the users in scope of corp") in recorder.calls


def test_read_all_announces_each_directory(recorder):
    read_all([corp(), corp(name="corp2")])
    stages = [c[1] for c in recorder.calls if c[0] == "stage"]
    assert stages[0] == "reading corp" and "reading corp2" in stages
    assert sum(recorder.reads("corp")) == sum(recorder.reads("corp2")) == sum(
        1 for line in (QUICKSTART / "corp.ldif").read_text().splitlines() if line.startswith("dn:"))


def test_a_paged_search_reports_each_page_as_it_arrives(recorder):
    server = FakeAD(people(25))
    seen = []
    for entry in paged_search(server, SEARCH, page_size=10):
        seen.append((entry.dn, list(recorder.reads("corp"))))
    assert recorder.reads("corp") == [10, 10, 5]
    assert seen[10][1] == [10]  # the first page was reported before the second one's entries


def test_a_live_read_reports_from_its_read_ahead_thread(recorder):
    directory = replace(_live_directory(), page_size=100)
    read = LiveSource(directory, connection_factory=lambda d: (FakeAD(people(250)), None)).read()
    assert read.entries_read == 250
    assert recorder.reads("corp") == [100, 100, 50]
