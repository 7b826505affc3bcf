"""Errors a user can cause, each with an exit code and one clear line.

The CLI catches `ReconcilerError` and prints `str(error)`; anything else is a bug
and may show a traceback (without locals, so secrets stay out of it).
"""
from __future__ import annotations

from dataclasses import dataclass


class ExitCode:
    OK = 0
    ERROR = 1
    CHANGES_PENDING = 2  # only with --detailed-exitcode
    REFUSED = 3  # safety limit, stale or edited plan, held lock: nothing was changed
    USAGE = 64  # EX_USAGE; Typer's default 2 would read as "changes pending" in CI


@dataclass(frozen=True)
class Location:
    """Where in a file a problem is: 1-based line and column, like compilers print."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column or 1}"
        return self.file


class ReconcilerError(Exception):
    """A problem the user can fix. The message is one line: where, what, how to fix."""

    exit_code = ExitCode.ERROR

    def __init__(self, message: str, location: Location | None = None, *, advice: str = ""):
        super().__init__(message)
        self.message = message  # what went wrong: what the history records
        self.location = location
        self.advice = advice  # what to do about it: for the person at the terminal, not the history

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return f"{text}. {self.advice}" if self.advice else text


@dataclass(frozen=True)
class Problem:
    """One validation finding; `path` is the dotted path in the policy document."""

    location: Location
    path: str
    message: str

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        return f"{self.location}: {self.message}{where}"


class PolicyError(ReconcilerError):
    """The policy is invalid. Carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.location.file, p.location.line, p.location.column, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))

    def __str__(self) -> str:
        return self.message


class SecretError(ReconcilerError):
    """A `${NAME}` reference whose environment variable is not set."""


class DirectoryError(ReconcilerError):
    """A directory could not be read completely. Aborts the plan: a half-read
    directory must never turn into mass deactivation."""


class StoreError(ReconcilerError):
    """The store could not be opened, read or written."""


class Refused(ReconcilerError):
    """Refused without changing anything: exit 3. The terminal hears "refused, nothing changed: ..."; the
    history records "refused: <message>"."""

    exit_code = ExitCode.REFUSED

    def __str__(self) -> str:
        return "refused, nothing changed: " + super().__str__()


class TooMuchChange(Refused):
    """A plan exceeds a safety limit of the policy."""


class StalePlan(Refused):
    """A saved plan no longer matches the store or the policy, or was edited."""


class LockHeld(Refused):
    """Another apply holds the store lock."""
