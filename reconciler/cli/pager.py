"""A long plan on a terminal goes through a pager, as `git` does.

Which pager: `$RECONCILER_PAGER`, else `$PAGER`, else `less`; `less` is given `LESS=FRX` (quit when
the text fits, keep colours, leave the text on screen) unless `LESS` is set (and `lv` `LV=-c`). A
variable that is set but empty, or the pager `cat`, means no pager. A command with the shell's
syntax (`|`, `>`, `$`...) runs through `sh -c`, as git runs it.

No pager when: `--no-pager`; stdout is not a terminal; the text fits the terminal's height (its
lines as they wrap at its width); the pager cannot be started (not on PATH, or it exits 126 or 127,
a shell's "cannot execute" and "not found", having shown nothing): then the text is printed as it
would be without one.
The person quitting the pager before the end (a closed pipe) is no error, and the pager is waited for
before `page` returns, so that what follows (apply's confirmation) is asked on a clean terminal.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from typing import Mapping, TextIO

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# What makes a pager command need a shell (git's list, less the space and quotes shlex handles).
_SHELL = set("|&;<>()$`\\*?[#~=%\n")
_NOT_STARTED = (126, 127)  # the shell's "cannot execute" and "not found"


def pager_command(environ: Mapping[str, str]) -> str | None:
    """The pager to use, as a command line, or None for none."""
    for name in ("RECONCILER_PAGER", "PAGER"):
        if name in environ:
            command = environ[name].strip()
            break
    else:
        command = "less"
    return None if command in ("", "cat") else command


def rows(text: str, columns: int) -> int:
    """How many terminal rows `text` takes at `columns` wide (colour codes take none)."""
    columns = max(columns, 1)
    total = 0
    for line in text.splitlines():
        width = len(_ANSI.sub("", line))
        total += max(1, -(-width // columns))
    return total


def terminal_size(stream: TextIO, environ: Mapping[str, str]) -> tuple[int, int] | None:
    """(columns, lines) of the terminal `stream` writes to, or None when it is not a terminal.
    LINES and COLUMNS, when set to numbers, win over what the terminal says (as for `shutil`)."""
    try:
        if not stream.isatty():
            return None
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return None
    columns, lines = size.columns, size.lines
    for name in ("COLUMNS", "LINES"):
        value = environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            if name == "COLUMNS":
                columns = int(value)
            else:
                lines = int(value)
    return columns, lines


def wanted(text: str, stream: TextIO, environ: Mapping[str, str], no_pager: bool = False) -> str | None:
    """The pager command for `text` on `stream`, or None when it is printed as it is."""
    if no_pager:
        return None
    command = pager_command(environ)
    if command is None:
        return None
    size = terminal_size(stream, environ)
    if size is None or size[1] <= 0:
        return None
    columns, lines = size
    return command if rows(text, columns) > lines else None


def page(text: str, no_pager: bool = False, stream: TextIO | None = None,
         environ: Mapping[str, str] | None = None) -> bool:
    """Shows `text` through the pager when `wanted` says so and the pager starts; False when the
    caller is to print it as usual (the path every non-terminal run takes, unchanged)."""
    stream = sys.stdout if stream is None else stream
    environ = os.environ if environ is None else environ
    command = wanted(text, stream, environ, no_pager)
    return command is not None and run(command, text, stream, environ)


def run(command: str, text: str, stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Pipes `text` through `command`; False when it could not be started (nothing was shown)."""
    argv = _argv(command)
    if argv is None:
        return False
    env = dict(environ)
    env.setdefault("LESS", "FRX")
    env.setdefault("LV", "-c")  # lv, a pager some systems default to: keep colours too
    try:
        stream.flush()  # what was written before comes before the pager's screen
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=stream.fileno(), env=env,
                                   encoding=getattr(stream, "encoding", None) or "utf-8",
                                   errors=getattr(stream, "errors", None) or "replace")
    except (OSError, ValueError):  # not found, not executable, no file descriptor
        return False
    # Ctrl-C is the pager's (less leaves a search with it): not the end of this command while it runs.
    previous = _ignore_interrupts()
    try:
        try:
            process.stdin.write(text)
        except BrokenPipeError:  # the person quit before the end, or the pager never read
            pass
        finally:
            try:
                process.stdin.close()
            except BrokenPipeError:
                pass
        code = process.wait()
    finally:
        _restore_interrupts(previous)
    # A shell that could not run the command (126, 127) read nothing and showed nothing; no pager
    # exits so after showing the text.
    return code not in _NOT_STARTED


def _argv(command: str) -> list[str] | None:
    """The pager's argv: through `sh -c` when the command uses the shell's syntax, else its words
    (None when the program is nowhere on PATH: it cannot be started)."""
    shell = ["/bin/sh", "-c", command] if os.path.exists("/bin/sh") else None
    if _SHELL & set(command):
        return shell
    try:
        words = shlex.split(command)
    except ValueError:  # an unbalanced quote: the shell says what it makes of it
        return shell
    if not words or shutil.which(words[0]) is None:
        return None
    return words


def _ignore_interrupts():
    try:
        return signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        return None


def _restore_interrupts(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)
