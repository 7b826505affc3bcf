from __future__ import annotations

import os
import shutil
import sys

from rich.console import Console


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def console() -> Console:
    """Colour on a terminal; piped into a file or a CI log, plain and wide enough that
    tables never cut an email or a DN short."""
    if stdout_is_terminal():
        return Console(highlight=False, soft_wrap=True)
    return Console(highlight=False, soft_wrap=True, no_color=True, width=max(shutil.get_terminal_size((200, 24)).columns, 200))


def start_progress(quiet: bool) -> None:
    """Progress on stderr for the rest of the command when a person watches it (`reconciler.progress`
    says when); erased before the output, and for good when the command ends (`main`)."""
    from .. import progress

    if progress.enabled(sys.stderr, os.environ, quiet):
        progress.install(progress.TerminalProgress(sys.stderr))


def clear_progress() -> None:
    """The progress line off the screen, before output or a message; the next stage draws it again."""
    from .. import progress

    progress.current().clear()
