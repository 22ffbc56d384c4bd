"""`escalation test`: run the `test` blocks of policies (language.md §7), report failures and coverage.

The verb and the coverage it measures are documented in :mod:`escalation.tooling.coverage`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import attrs
import click

from ..api import load
from ..errors import EXIT_OK, EXIT_POLICY, PolicyError
from ..tooling import Coverage, Evidence, Failure, TestResult, collect_tests, compute, offset_text, run_tests
from .common import policy_files


@attrs.define(slots=True)
class _PolicyRun:
    """The outcome for one policy file."""

    path: str
    name: str | None = None
    errors: list[PolicyError] = attrs.field(factory=list)
    results: list[TestResult] = attrs.field(factory=list)
    coverage: Coverage | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "errors": [d.to_json() for err in self.errors for d in err.diagnostics],
            "tests": [r.to_json() for r in self.results],
            "coverage": self.coverage.to_json() if self.coverage is not None else None,
        }


def _run_policy(path: str, pattern: str | None) -> _PolicyRun:
    run = _PolicyRun(path)
    try:
        compiled = load(path).compiled
    except PolicyError as err:
        run.errors.append(err)
        return run
    run.name = compiled.name
    tests, broken = collect_tests(compiled, path)
    if broken is not None:
        run.errors.append(broken)
    run.results = list(run_tests(compiled, tests, pattern))
    run.coverage = compute(compiled, run.results, path)
    return run


def _failure_lines(f: Failure) -> list[str]:
    s = f.state
    if s.event is None:
        after = "before the first event" + (f" of contact {s.contact}" if s.contact is not None else "")
    else:
        after = f"`{s.event}` at {offset_text(s.offset or 0)} (line {s.line})"
    rows = [
        ("expected", f.expected),
        ("found", f.found),
        ("after", after),
        ("active", ", ".join(s.active) or "none"),
        ("permitted", ", ".join(s.permitted) or "nothing"),
        ("forbidden", ", ".join(s.forbidden) or "nothing"),
        ("pending", "; ".join(s.pending) or "no obligations"),
        ("violations", "; ".join(s.violations) or "none so far"),
    ]
    contact = f" (contact {s.contact})" if s.contact is not None else ""
    return [f"  {f.path}:{f.line}: {f.step}{contact}"] + [f"    {label:<10} {text}" for label, text in rows]


def _by(evidence: Evidence | None, policy_path: str) -> str:
    """The test that covered an item, and the step's line (with its file when that is not the policy's)."""
    if evidence is None:
        return ""
    where = f"line {evidence.line}" if evidence.path == policy_path else f"{evidence.path}:{evidence.line}"
    contact = f", contact {evidence.contact}" if evidence.contact is not None else ""
    return f'"{evidence.test}" ({where}{contact})'


def _coverage_lines(run: _PolicyRun, cov: Coverage) -> list[str]:
    title = f" ({run.name})" if run.name else ""
    lines = [f"coverage of {run.path}{title}: {cov.covered} of {cov.total} items, {cov.percent:.1f}%"]
    if not cov.items:
        return lines
    header = ("rule", "kind", "item", "covered", "by")
    rows = [
        (
            i.rule,
            i.kind,
            i.label,
            "yes" if i.by is not None else "no",
            _by(i.by, run.path),
        )
        for i in cov.items
    ]
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(4)]
    for r in [header, *rows]:
        lines.append(("  " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]).rstrip())
    return lines


def _below(runs: list[_PolicyRun], minimum: float | None) -> list[str]:
    """Why each policy misses ``--min-coverage`` (empty when all meet it)."""
    if minimum is None:
        return []
    out = []
    for run in runs:
        cov = run.coverage
        if cov is not None and cov.below(minimum):
            missing = cov.total - cov.covered
            out.append(
                f"coverage of {run.path} is {cov.percent:.1f}%, below the minimum of {minimum:g}%: "
                f"{missing} of {cov.total} items not covered"
            )
    return out


@click.command("test")
@click.argument("policies", nargs=-1, required=True)
@click.option("-k", "pattern", metavar="PATTERN", help="Run only the tests whose name contains PATTERN or matches it as a glob (case ignored)")
@click.option("--coverage", "show_coverage", is_flag=True, help="Report, per rule, whether it fired or became active and whether each effect decided something")
@click.option(
    "--min-coverage",
    type=click.FloatRange(0, 100),
    metavar="PCT",
    help="Exit 1 when a policy's coverage is below PCT percent (implies --coverage)",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="json: one object with the results and the coverage")
def test_cmd(policies: tuple[str, ...], pattern: str | None, show_coverage: bool, min_coverage: float | None, fmt: str) -> None:
    """Run the `test` blocks of POLICIES and of their sibling NAME.test.esc files; the last line is `N passed, M failed`."""
    runs: list[_PolicyRun] = []
    for path in policy_files(policies):
        run = _run_policy(path, pattern)
        runs.append(run)
        for err in run.errors:
            click.echo(err.render(), err=True)
        if fmt == "text":
            for result in run.results:
                if result.passed:
                    click.echo(f"PASS {result.name}")
                else:
                    click.echo(f"FAIL {result.name} ({result.path}:{result.line})")
                    for f in result.failures:
                        click.echo("\n".join(_failure_lines(f)))

    results = [r for run in runs for r in run.results]
    passed = sum(r.passed for r in results)
    failed = len(results) - passed
    broken = any(run.errors for run in runs)
    short = _below(runs, min_coverage)
    if pattern and not results and not broken:
        click.echo(f"note: no test name matches -k {pattern!r}", err=True)

    if fmt == "json":
        report = {
            "policies": [run.to_json() for run in runs],
            "passed": passed,
            "failed": failed,
            "min_coverage": min_coverage,
            "coverage_ok": not short,
        }
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        for line in short:
            click.echo(line, err=True)
    else:
        if show_coverage or min_coverage is not None:
            for run in runs:
                if run.coverage is not None:
                    click.echo()
                    click.echo("\n".join(_coverage_lines(run, run.coverage)))
            click.echo()
        for line in short:
            click.echo(line)
        click.echo(f"{passed} passed, {failed} failed")
    sys.exit(EXIT_POLICY if (failed or broken or short) else EXIT_OK)
