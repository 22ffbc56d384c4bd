"""Byte identity across refactors: every audit log recorded in tests/properties/golden/audits.json comes out again.

The entries (conformance replay cases, every example log against its policy, a generated
benchmark log, serial and with ``--jobs 2``) were recorded by ``tests/properties/golden/record.py``
with the code as it was before the move to the layout of ARCHITECTURE.md; each is replayed
with the installed ``escalation`` command and its SHA-256 compared.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, require_shared

_spec = importlib.util.spec_from_file_location("golden_record", ROOT / "tests" / "properties" / "golden" / "record.py")
assert _spec is not None and _spec.loader is not None
record = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(record)

#: The logs recorded for the format the engine writes (audits.json for /1; audits-2.json, once recorded, for /2).
GOLDEN: Path = record.golden_file()
DOCUMENT: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.exists() else {"bench_generator": record.BENCH_GENERATOR, "entries": []}
ENTRIES: list[dict[str, Any]] = DOCUMENT["entries"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("golden") / "bench"
    assert DOCUMENT["bench_generator"] == record.BENCH_GENERATOR
    record.prepare_bench(folder)
    return folder


def test_the_entries_cover_every_example_and_case() -> None:
    if not GOLDEN.exists():
        pytest.skip(f"no logs recorded for escalation-audit/{record.engine_format()} yet: run tests/properties/golden/record.py")
    names = {e["name"] for e in ENTRIES}
    assert {e["name"] for e in record.example_entries()} <= names
    assert len(record.example_entries()) == len(list((ROOT / "examples").glob("*.jsonl")))
    if record.CASES.is_dir():
        assert {e["name"] for e in record.case_entries(language=record.engine_format())} <= names
    assert any("--jobs" in e["args"] for e in ENTRIES)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_audit_log_is_byte_identical(entry: dict[str, Any], bench: Path, tmp_path: Path) -> None:
    if entry["cwd"].startswith("case:"):
        require_shared()
    code, digest, stderr = record.run_entry(entry, bench, tmp_path / "audit.jsonl")
    assert code == entry["exit"], stderr.decode(errors="replace")
    assert digest == entry["sha256"], f"the audit log of {entry['name']} changed"
