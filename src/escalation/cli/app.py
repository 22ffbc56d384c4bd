"""The `escalation` command line (interfaces.md §3): the command group, the one mapping of errors to exit codes, signals.

Each verb lives in its own module, thin over the library, and raises the library's
errors; :class:`_Group` turns an :class:`~escalation.errors.EscalationError` into one
sentence on standard error and the exit code its class carries (:func:`_fail`), so no
verb writes a traceback for a user's error. :func:`main` adds Ctrl-C, SIGTERM and a
closed standard output.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, NoReturn

import click

from ..errors import EscalationError, PolicyError
from ..version import __version__
from .check import check
from .compile import compile_cmd
from .explain import explain
from .fmt import fmt
from .replay import replay
from .serve import serve
from .test import test_cmd
from .verify import verify

# Exit codes (interfaces.md §3): those of errors (EXIT_OK ... EXIT_TAMPERED) are in errors.py, each error class carrying its own; these are for signals.
#: A closed standard output (`escalation replay ... | head`): the status of a Unix tool killed by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141
#: SIGINT (Ctrl-C) and SIGTERM: 128 + the signal's number, as a shell reports a process they ended.
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def _fail(err: EscalationError) -> NoReturn:
    """Stop the command on ``err``: a policy's diagnostics, else ``error: `` and its sentence; the exit code its class carries.

    Notes a verb added (:func:`escalation.cli.common.noted`) follow the sentence, each in parentheses.
    """
    notes = "".join(f" ({note})" for note in getattr(err, "__notes__", ()))
    click.echo(err.render() if isinstance(err, PolicyError) else f"error: {err}{notes}", err=True)
    sys.exit(err.exit_code)


def _quiet_broken_pipe() -> NoReturn:
    """A closed standard output: point it at the null device, so that Python's last flush at exit cannot fail again; exit 141."""
    with_devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(with_devnull, 1)
    finally:
        os.close(with_devnull)
    sys.exit(EXIT_BROKEN_PIPE)


class _Group(click.Group):
    """The command group: an error of the library ends any command through :func:`_fail`; a closed standard output with 141.

    Click would exit 1 on a broken pipe, and show a traceback for any other exception;
    this catches them first (also under ``click.testing.CliRunner``, which calls the group).
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_broken_pipe()
        except EscalationError as err:
            _fail(err)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="escalation")
def cli() -> None:
    """Check, format, test and replay `.esc` policies for handling angry and abusive customers."""


for _command in (check, fmt, replay, verify, explain, compile_cmd, test_cmd, serve):
    cli.add_command(_command)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like KeyboardInterrupt for SIGINT, so that clean-up runs on the way out."""


def _on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
    raise Terminated


def main() -> None:
    """Entry point: never shows a Python traceback for an expected failure; Ctrl-C exits 130, SIGTERM 143.

    Both remove what the command was writing (a temporary log; a private copy of an
    input is deleted with the process in any case). A closed standard output exits 141
    (:class:`_Group`).
    """
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:  # not when the caller chose to ignore it
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = cli.main(standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Terminated:
        click.echo("terminated", err=True)
        sys.exit(EXIT_TERMINATED)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except EscalationError as err:  # raised outside a command (the group handles those raised inside one)
        _fail(err)
    except BrokenPipeError:  # written outside a command (click's own output)
        sys.exit(EXIT_BROKEN_PIPE)
    sys.exit(code if isinstance(code, int) else 0)
