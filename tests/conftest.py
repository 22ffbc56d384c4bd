"""Shared fixtures: where the contract (../shared) and the installed command are."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def escalation_command() -> list[str]:
    """The installed `escalation` beside this interpreter, else `python -m escalation`."""
    candidate = Path(sys.executable).with_name("escalation")
    if candidate.exists():
        return [str(candidate)]
    found = shutil.which("escalation")
    return [found] if found else [sys.executable, "-m", "escalation"]


def require_shared() -> Path:
    """The shared contract folder; in CI its absence is a failure, elsewhere a visible skip."""
    if not SHARED.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"the shared contract folder is missing: {SHARED}")
        pytest.skip(f"the shared contract folder is not beside the repository ({SHARED})")
    return SHARED


@pytest.fixture
def shared() -> Path:
    return require_shared()
