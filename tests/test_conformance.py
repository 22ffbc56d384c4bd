"""The shared conformance suite (../shared/conformance), one test per case, grouped by kind."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from conftest import SHARED, escalation_command, require_shared

CASES = sorted(p.parent for p in (SHARED / "conformance" / "cases").glob("*/case.json")) if SHARED.is_dir() else []


def _kind(case: object) -> str:
    return str(json.loads((case / "case.json").read_text())["kind"])  # type: ignore[operator]


def test_the_suite_is_present() -> None:
    require_shared()
    assert CASES, "no conformance cases found"


@pytest.mark.parametrize("case", CASES, ids=[f"{_kind(c)}:{c.name}" for c in CASES])
def test_conformance_case(case: object) -> None:
    require_shared()
    runner = SHARED / "conformance" / "run.py"
    cmd = [sys.executable, str(runner), "--escalation", shlex.join(escalation_command()), str(case)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.stdout.strip().endswith("1 passed, 0 failed"), proc.stdout + proc.stderr
