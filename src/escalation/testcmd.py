"""`escalation test`: run the `test` blocks of policies (language.md §7)."""

from __future__ import annotations

import sys

import click

from .cli import EXIT_OK, EXIT_POLICY, _load_policy, _policy_files, _render
from .errors import PolicyError
from .parser import read_source


@click.command("test")
@click.argument("policies", nargs=-1, required=True)
@click.option("-k", "pattern", help="Run only tests whose name contains PATTERN (or matches it as a glob)")
def test_cmd(policies: tuple[str, ...], pattern: str | None) -> None:
    """Run the `test` blocks of POLICIES and of their sibling NAME.test.esc files."""
    from . import ast
    from .checker import check_tests
    from .parser import parse_tests
    from .testing import run_tests, sibling_tests

    passed = failed = 0
    broken = False
    for path in _policy_files(policies):
        compiled = _load_policy(path)
        tests: list[tuple[ast.Test, str]] = [(t, path) for t in compiled.checked.policy.tests]
        sibling = sibling_tests(path)
        if sibling is not None:
            try:
                text = read_source(str(sibling))
                extra = parse_tests(text, str(sibling))
            except PolicyError as err:
                click.echo(err.render(), err=True)
                broken = True
                continue
            diags = check_tests(compiled.checked.policy, extra, str(sibling))
            if any(d.is_error for d in diags):
                click.echo(_render(diags, text), err=True)
                broken = True
                continue
            tests.extend((t, str(sibling)) for t in extra)
        for result in run_tests(compiled, tests, pattern):
            if result.passed:
                passed += 1
                click.echo(f"PASS {result.name}")
            else:
                failed += 1
                click.echo(f"FAIL {result.name} ({result.path}:{result.line})")
                for f in result.failures:
                    click.echo(f"  {f.path}:{f.line}: expected {f.expected}")
                    click.echo(f"  {' ' * len(f'{f.path}:{f.line}:')} found    {f.found}")
    click.echo(f"{passed} passed, {failed} failed")
    sys.exit(EXIT_POLICY if (failed or broken) else EXIT_OK)
