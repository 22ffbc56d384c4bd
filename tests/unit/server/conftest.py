"""Fixtures for the service's tests (the helpers are in serving.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import POLICY, Served


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A service on three_strikes.esc (not started: call ``.start()``); killed at the end if still running."""
    server = Served(tmp_path, POLICY)
    yield server
    server.close()
