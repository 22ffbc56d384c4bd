"""`escalation check POLICY...`: parse and check policies and test files; diagnostics as text or JSON (interfaces.md §3)."""

from __future__ import annotations

import json
import sys

import click

from ..check import check_source, check_test_file
from ..errors import EXIT_OK, EXIT_POLICY, Diagnostic, PolicyError, render_all
from ..syntax import read_source
from .common import policy_files


@click.command()
@click.argument("policies", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", help="json: one object with every diagnostic, for editors and CI")
def check(policies: tuple[str, ...], fmt: str) -> None:
    """Parse and check POLICIES (files or folders); exit 1 if any has an error."""
    all_diags: list[Diagnostic] = []
    errors = warnings = 0
    files = policy_files(policies, with_tests=True)
    for path in files:
        try:
            source: str | None = read_source(path)
        except PolicyError as err:
            diags, source = err.diagnostics, err.source
        else:
            assert source is not None
            diags = check_test_file(source, path) if path.endswith(".test.esc") else check_source(source, path).diagnostics
        all_diags.extend(diags)
        errors += sum(d.is_error for d in diags)
        warnings += sum(not d.is_error for d in diags)
        if fmt == "text" and diags:
            click.echo(render_all(diags, source))
            click.echo()
    if fmt == "json":
        click.echo(json.dumps({"diagnostics": [d.to_json() for d in all_diags], "errors": errors, "warnings": warnings}, indent=2, ensure_ascii=False))
    else:
        noun = "policy" if len(files) == 1 else "policies"
        click.echo(f"checked {len(files)} {noun}: {errors} error(s), {warnings} warning(s)", err=True)
    sys.exit(EXIT_POLICY if errors else EXIT_OK)
