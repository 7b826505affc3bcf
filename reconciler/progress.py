"""What a run is doing, for a person watching a terminal: the stage, and entries read per directory.

The pipeline and the directory sources report to whatever observer is installed (`current()`); the
default does nothing, so they stay free of terminal code and a run without a terminal pays one
no-op call per stage and per page or chunk of entries, never one per entry. The CLI installs a
`TerminalProgress` when `enabled(...)` says a person is watching (`cli/console.py`).

When progress shows (decided once per command, by `enabled`):
- stderr is a terminal; nothing at all is written to a pipe or a file, so captured output and
  CI logs are what they were;
- not with `--quiet`;
- not when `CI` is set (to anything but empty, `0` or `false`): a CI runner that allocates a
  terminal still keeps a log, where a line redrawn in place is noise;
- not when `TERM` is `dumb` (a terminal that cannot be trusted to return to the line's start).
`NO_COLOR` does not turn it off: the line has no colour to take away.

Nothing goes to stdout; the line is erased (`clear`) before the command writes its output or an
error, and redrawn at most every `interval` seconds (stage changes at once).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable, Mapping, Protocol, TextIO


class Progress(Protocol):
    """The observer the stages report to. Calls may come from a reader's worker thread."""

    def stage(self, doing: str) -> None:
        """A new stage starts: 'reading corp', 'building the desired state', ..."""

    def read(self, directory: str, entries: int) -> None:
        """`entries` more entries of `directory` were read (a page of a live read, a chunk of a snapshot)."""

    def clear(self) -> None:
        """Take the progress off the screen: output or a message follows."""


class NoProgress:
    """The default: nothing is shown."""

    def stage(self, doing: str) -> None:
        pass

    def read(self, directory: str, entries: int) -> None:
        pass

    def clear(self) -> None:
        pass


NO_PROGRESS = NoProgress()
_current: Progress = NO_PROGRESS


def current() -> Progress:
    """The observer the running command installed (a no-op by default)."""
    return _current


def install(progress: Progress | None) -> Progress:
    """Installs `progress` (None: the no-op) for the rest of the command and returns it."""
    global _current
    _current = progress if progress is not None else NO_PROGRESS
    return _current


def finish() -> None:
    """Erases what is shown and goes back to the no-op: the command is over, or failed."""
    previous = _current
    install(None)
    previous.clear()


def enabled(stream: TextIO, environ: Mapping[str, str] | None = None, quiet: bool = False) -> bool:
    """Whether progress shows on `stream` (stderr): the rules in this module's docstring."""
    if quiet:
        return False
    environ = os.environ if environ is None else environ
    if environ.get("CI", "").strip().lower() not in ("", "0", "false"):
        return False
    if environ.get("TERM", "").strip().lower() == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):  # no stream, or a closed one
        return False


class TerminalProgress:
    """One line on a terminal, redrawn in place with a carriage return, padded over what it replaces
    (no escape sequences) and cut to the terminal's width so that it never wraps. Throttled: a read
    redraws only when `interval` seconds passed since the last drawing."""

    def __init__(self, stream: TextIO, interval: float = 0.25, clock: Callable[[], float] = time.monotonic,
                 columns: int | None = None):
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self.columns = columns or _columns(stream)
        self.drawn = 0  # how many times the line was drawn (tests, and the overhead measurement)
        self._lock = threading.Lock()
        self._doing = ""
        self._counts: dict[str, int] = {}
        self._drawn_at: float | None = None
        self._width = 0  # characters of the line on screen now
        self._broken = False  # the terminal went away: stay silent

    def stage(self, doing: str) -> None:
        with self._lock:
            self._doing = doing
            self._counts = {}
            self._draw(self.clock())

    def read(self, directory: str, entries: int) -> None:
        with self._lock:
            self._counts[directory] = self._counts.get(directory, 0) + entries
            now = self.clock()
            if self._drawn_at is None or now - self._drawn_at >= self.interval:
                self._draw(now)

    def clear(self) -> None:
        with self._lock:
            if self._width:
                self._write("\r" + " " * self._width + "\r")
                self._width = 0
            self._drawn_at = None

    def line(self) -> str:
        """What the line says now: 'reading corp… 12,000 entries'."""
        text = f"{self._doing}…" if self._doing else ""
        if len(self._counts) == 1:
            (count,) = self._counts.values()
            text += f" {count:,} entries"
        elif self._counts:
            text += " " + ", ".join(f"{name} {count:,}" for name, count in self._counts.items())
        return text

    def _draw(self, now: float) -> None:
        text = self.line()[: max(self.columns - 1, 0)]
        self._write("\r" + text + " " * max(self._width - len(text), 0))
        self._width = len(text)
        self._drawn_at = now
        self.drawn += 1

    def _write(self, text: str) -> None:
        if self._broken:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed terminal: progress is not worth an error
            self._broken = True


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80
