"""The `escalation` command line: a thin layer over the library (interfaces.md §3)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .checker import check_source
from .errors import Diagnostic, EscalationError, PolicyError
from .parser import read_source

# Exit codes (interfaces.md §3).
EXIT_OK = 0
EXIT_POLICY = 1
EXIT_USAGE = 2
EXIT_VIOLATIONS = 3
EXIT_REJECTED = 4
EXIT_TAMPERED = 5


def _policy_files(paths: tuple[str, ...]) -> list[str]:
    """Expand folders to the `.esc` policies inside them (test files excluded)."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(str(f) for f in sorted(path.rglob("*.esc")) if not f.name.endswith(".test.esc"))
        else:
            out.append(p)
    return out


def _render(diags: list[Diagnostic], source: str | None) -> str:
    return "\n".join(d.render(source) for d in diags)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="escalation")
def cli() -> None:
    """Check, format, test and replay `.esc` policies for handling angry and abusive customers."""


@cli.command()
@click.argument("policies", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", help="json: one object with every diagnostic, for editors and CI")
def check(policies: tuple[str, ...], fmt: str) -> None:
    """Parse and check POLICIES (files or folders); exit 1 if any has an error."""
    all_diags: list[Diagnostic] = []
    errors = warnings = 0
    files = _policy_files(policies)
    for path in files:
        try:
            source: str | None = read_source(path)
        except PolicyError as err:
            diags, source = err.diagnostics, err.source
        else:
            assert source is not None
            diags = check_source(source, path).diagnostics
        all_diags.extend(diags)
        errors += sum(d.is_error for d in diags)
        warnings += sum(not d.is_error for d in diags)
        if fmt == "text" and diags:
            click.echo(_render(diags, source))
            click.echo()
    if fmt == "json":
        click.echo(json.dumps({"diagnostics": [d.to_json() for d in all_diags], "errors": errors, "warnings": warnings}, indent=2, ensure_ascii=False))
    else:
        noun = "policy" if len(files) == 1 else "policies"
        click.echo(f"checked {len(files)} {noun}: {errors} error(s), {warnings} warning(s)", err=True)
    sys.exit(EXIT_POLICY if errors else EXIT_OK)


@cli.command()
@click.argument("policies", nargs=-1, required=True)
@click.option("--check", "check_only", is_flag=True, help="Change nothing; exit 1 if a file is not formatted")
def fmt(policies: tuple[str, ...], check_only: bool) -> None:
    """Rewrite POLICIES in the canonical layout, keeping comments."""
    from .formatter import format_source

    changed = failed = 0
    for path in _policy_files(policies):
        try:
            source = read_source(path)
            formatted = format_source(source, path)
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
            _write_atomically(Path(path), formatted.encode("utf-8"))
            click.echo(f"reformatted {path}")
    if failed:
        sys.exit(EXIT_POLICY)
    sys.exit(EXIT_POLICY if (check_only and changed) else EXIT_OK)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` beside ``path`` and rename it into place: the file is whole or untouched."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent) or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main() -> None:
    """Entry point: never shows a Python traceback for an expected failure."""
    try:
        cli.main(standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
