"""The embedding API as the README shows it."""

from __future__ import annotations

import json
import os
import re

import pytest

import escalation
from conftest import ROOT


def test_readme_library_example_runs() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block is not None
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(block.group(1), "README.md", "exec"), {})
    finally:
        os.chdir(cwd)


def test_feed_snapshot_resume_and_errors() -> None:
    policy = escalation.load(str(ROOT / "policies" / "three_strikes.esc"))
    state = policy.start("c-1")
    d = state.feed({"time": "2026-11-22T10:00:00Z", "type": "customer.message", "abuse": "insult"})
    assert not d.permitted("agent.hang_up")
    assert [ob.id for ob in d.obligations] == ["c-1#1"]
    saved = json.loads(json.dumps(state.snapshot()))
    resumed = policy.resume(saved)
    assert list(resumed.feed({"time": "2026-11-22T10:00:30Z", "type": "agent.warn"}).fulfilled) == ["c-1#1"]
    with pytest.raises(escalation.EventError, match="earlier"):
        resumed.feed({"time": "2026-11-22T09:00:00Z", "type": "agent.warn"})
    with pytest.raises(escalation.EventError, match="not an event or action"):
        resumed.feed({"time": "2026-11-22T11:00:00Z", "type": "agent.dance"})
    with pytest.raises(escalation.SnapshotError):
        policy.resume({"format": "escalation-snapshot/1", "policy_sha256": "0" * 64})


def test_load_reports_diagnostics(tmp_path: object) -> None:
    bad = ROOT / "tests" / "_bad_policy.esc"
    bad.write_text('policy "x"\nrule r {\n  on customer.mesage\n  require agent.warn within 1m\n}\n')
    try:
        with pytest.raises(escalation.PolicyError) as info:
            escalation.load(str(bad))
        assert info.value.diagnostics[0].code == "E010"
    finally:
        bad.unlink()
