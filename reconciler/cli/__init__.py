"""The `reconciler` command. Each command lives in its own module; this one wires
them and turns errors into one line and the documented exit codes."""
from __future__ import annotations

import errno
import gc
import os
import sys

import typer

from .. import __version__, allocator, progress
from ..errors import ExitCode, ReconcilerError

# The distribution on PyPI: `reconciler` there is an unrelated project.
DISTRIBUTION = "directory-reconciler"

app = typer.Typer(
    name="reconciler",
    help="Directory sync as reviewed code: plan, review, apply.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals could hold a resolved secret
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},  # subcommands inherit it
)


def version() -> str:
    """The installed distribution's version; the source tree's own only when it is not installed."""
    from importlib import metadata  # 10 ms of imports every command would pay for `--version` alone

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return __version__


def _print_version(requested: bool) -> None:
    if requested:
        print(f"reconciler {version()} ({DISTRIBUTION})")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                      help="Print the version and the distribution it came from, then exit."),
) -> None:
    pass


from . import validate, commands, inspect  # noqa: E402,F401  (registers the commands)


# Typer >= 0.25 carries its own copy of Click; its usage error is the base class of
# typer.BadParameter either way, so find it there rather than importing click.
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def main(argv: list[str] | None = None) -> None:
    # The collector policy of every command, decided here once: a plan builds millions of long-lived
    # objects and next to no reference cycles, and CPython's cycle collector would rescan them again
    # and again as they pile up (what that cost: bench/README.md). Reference counting still frees
    # everything; a command is one short process.
    gc.disable()
    allocator.map_large_blocks()  # a read's page-sized blocks given back whole when freed (allocator.py)
    command = typer.main.get_command(app)
    try:
        try:
            code = command.main(args=argv, prog_name="reconciler", standalone_mode=False)
        finally:
            progress.finish()  # the progress line (stderr, a terminal) erased before any message below
    except UsageError as error:
        if type(error).__name__ == "NoArgsIsHelpError":  # bare `reconciler`: the help is the answer
            print(error.format_message())
            sys.exit(ExitCode.OK)
        # Click exits 2 on usage errors, which CI would read as "changes pending"
        where = error.ctx.command_path if error.ctx else "reconciler"
        print(f"usage error: {error.format_message()} (see '{where} --help')", file=sys.stderr)
        sys.exit(ExitCode.USAGE)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(ExitCode.ERROR)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except ReconcilerError as error:
        print(str(error), file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as error:
        if error.errno not in (errno.EPIPE, errno.ENOSPC, errno.EIO, errno.EFBIG):
            raise
        _output_failed(error)
    try:
        sys.stdout.flush()  # here, not at exit, where a failed flush is a traceback-like warning
    except OSError as error:
        _output_failed(error)
    sys.exit(code if isinstance(code, int) else ExitCode.OK)


def _output_failed(error: OSError) -> None:
    """stdout could not be written (a full disk, a closed pipe): one line, exit 1, and no second
    attempt to flush what is left when the interpreter exits."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    print(f"cannot write the output: {error.strerror}", file=sys.stderr)
    sys.exit(ExitCode.ERROR)
