"""`escalation fmt [--check] POLICY...`: rewrite policies and test files in the canonical layout, comments kept."""

from __future__ import annotations

import sys

import click

from ..errors import EXIT_OK, EXIT_POLICY, EXIT_USAGE, EscalationError, PolicyError
from ..streams import OutputError, write_atomically
from ..syntax import read_source
from .common import policy_files


@click.command()
@click.argument("policies", nargs=-1, required=True)
@click.option("--check", "check_only", is_flag=True, help="Change nothing; exit 1 if a file is not formatted")
def fmt(policies: tuple[str, ...], check_only: bool) -> None:
    """Rewrite POLICIES in the canonical layout, keeping comments."""
    from ..tooling.format import format_source, format_tests_source  # lazily: only this verb formats (start-up stays fast)

    changed = failed = unwritable = 0
    for path in policy_files(policies, with_tests=True):
        try:
            source = read_source(path)
            formatted = format_tests_source(source, path) if path.endswith(".test.esc") else format_source(source, path)
        except PolicyError as err:
            click.echo(err.render(), err=True)
            failed += 1
            continue
        except EscalationError as err:
            click.echo(f"{path}: {err}", err=True)
            failed += 1
            continue
        if formatted == source:
            continue
        changed += 1
        if check_only:
            click.echo(f"would reformat {path}")
        else:
            try:  # a symbolic link stays a link (its target is rewritten); the file keeps its mode
                write_atomically(path, formatted.encode("utf-8"))
            except OutputError as err:
                click.echo(f"error: {err}", err=True)
                unwritable += 1
                continue
            except OSError as err:
                click.echo(f"error: cannot rewrite {path}: {err.strerror or err}", err=True)
                unwritable += 1
                continue
            click.echo(f"reformatted {path}")
    if failed:
        sys.exit(EXIT_POLICY)
    if unwritable:
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_POLICY if (check_only and changed) else EXIT_OK)
