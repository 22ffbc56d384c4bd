"""`escalation check` on large inputs: work linear in what is checked, memory bounded by the limits."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from escalation import cli
from escalation.errors import Diagnostic, PolicyError, Span, render_all

ROOT = Path(__file__).resolve().parents[1]


def _calls_on(target: object, run: Callable[[], Any]) -> int:
    """How many C-level calls ``run`` makes on ``target`` itself (``target.split``, ``target.count``, …)."""
    calls = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "c_call" and getattr(arg, "__self__", None) is target:
            calls += 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return calls


def _many_diagnostics(n: int) -> tuple[str, list[Diagnostic]]:
    source = "\n".join(f"let unused_{i} = 1" for i in range(n)) + "\n"
    diags = [Diagnostic("W003", "warning", f"`unused_{i}` is never used", Span(i + 1, 5, i + 1, 12 + len(str(i))), "remove it", "p.esc") for i in range(n)]
    return source, diags


def test_rendering_many_diagnostics_reads_the_source_once() -> None:
    """The text of `check` was quadratic: each diagnostic split the whole source again to find its line.

    With 20,000 diagnostics, the calls made on the source text stay a constant (one split),
    for the `check` verb's rendering and for PolicyError.render.
    """
    source, diags = _many_diagnostics(20_000)
    assert _calls_on(source, lambda: cli._render(diags, source)) <= 2
    assert _calls_on(source, lambda: PolicyError(diags, source).render()) <= 2


def test_rendering_all_at_once_is_rendering_each() -> None:
    source, diags = _many_diagnostics(300)
    expected = "\n".join(d.render(source) for d in diags)
    assert render_all(diags, source) == expected == PolicyError(diags, source).render() == cli._render(diags, source)
    assert render_all(diags, None) == "\n".join(d.render() for d in diags)


def test_check_prints_every_diagnostic_with_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "many.esc"
    path.write_text('policy "p" version "1"\n' + "".join(f"let unused_{i} = {i}\n" for i in range(200)))
    result = CliRunner().invoke(cli.cli, ["check", str(path)])
    assert result.exit_code == 0
    for i in range(200):
        assert f"{path}:{i + 2}:5: warning[W003]: `unused_{i}` is never used\n{i + 2:>4} | let unused_{i} = {i}\n" in result.output
