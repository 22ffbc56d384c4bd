"""The shared conformance suite (../shared/conformance), one test per case, grouped by kind.

The engine implements language 2 and audit format escalation-audit/2: the runner holds it to every
case (its default). A case the runner skips fails here: nothing is skipped quietly.

Every case runs once per back end (runtime/backend.py), chosen by name through ESCALATION_BACKEND
in the command's environment.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED, escalation_command, require_shared
from escalation.errors import EscalationError
from escalation.load import compile_source
from escalation.runtime import BACKEND_NAMES, BACKEND_VARIABLE, Interaction, step_table

CASES = sorted(p.parent for p in (SHARED / "conformance" / "cases").glob("*/case.json")) if SHARED.is_dir() else []


def _spec(case: Path) -> dict[str, object]:
    return dict(json.loads((case / "case.json").read_text()))


def test_the_suite_is_present() -> None:
    require_shared()
    assert CASES, "no conformance cases found"


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("case", CASES, ids=[f"{_spec(c)['kind']}:{c.name}" for c in CASES])
def test_conformance_case(case: Path, backend: str) -> None:
    require_shared()
    runner = SHARED / "conformance" / "run.py"
    cmd = [sys.executable, str(runner), "--escalation", shlex.join(escalation_command()), str(case)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, BACKEND_VARIABLE: backend})
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert last == "1 passed, 0 failed", proc.stdout + proc.stderr


def test_the_backend_variable_selects_the_back_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the environment names is what an interaction runs on; an unknown name is refused, naming the known ones."""
    compiled = compile_source((SHARED / "conformance" / "three_strikes.esc").read_text(encoding="utf-8"), "three_strikes.esc") if SHARED.is_dir() else None
    if compiled is None:
        pytest.skip("the shared conformance folder is absent")
    for name in BACKEND_NAMES:
        monkeypatch.setenv(BACKEND_VARIABLE, name)
        assert Interaction(compiled, "c").steps is step_table(compiled, name)
    monkeypatch.setenv(BACKEND_VARIABLE, "nonesuch")
    with pytest.raises(EscalationError, match="generated"):
        Interaction(compiled, "c")
