"""The embedding API as the README shows it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import attrs
import pytest

import escalation
from conftest import ROOT
from escalation.api import write_replay
from escalation.replay import open_inputs
from escalation.runtime import admit_record, check_order


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


THREE_STRIKES = str(ROOT / "policies" / "three_strikes.esc")
SAMPLE = str(ROOT / "examples" / "sample.jsonl")


def test_replay_takes_as_of_beside_or_inside_the_options() -> None:
    policy = escalation.load(THREE_STRIKES)
    by_keyword = list(escalation.replay(policy, [SAMPLE], as_of="2026-11-30T00:00:00Z"))
    by_options = list(escalation.replay(policy, [SAMPLE], options=escalation.ReplayOptions(as_of="2026-11-30T00:00:00Z")))
    assert by_keyword == by_options
    assert by_keyword[0]["as_of"] == "2026-11-30T00:00:00Z"
    assert by_keyword != list(escalation.replay(policy, [SAMPLE]))
    with pytest.raises(ValueError, match="in the options"):
        list(escalation.replay(policy, [SAMPLE], as_of="2026-11-30T00:00:00Z", options=escalation.ReplayOptions()))


def test_replay_options_are_frozen_and_checked() -> None:
    options = escalation.ReplayOptions(as_of="2026-11-22T10:00:00Z", jobs=4)
    assert options.as_of == escalation.ReplayOptions(as_of=options.as_of).as_of  # a string is parsed to microseconds
    assert options.parallel and not escalation.ReplayOptions(jobs=4, strict=True).parallel
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        options.jobs = 1  # type: ignore[misc]
    for bad in ({"jobs": 0}, {"idle_horizon": 0}, {"partitions": 0}):
        with pytest.raises(ValueError, match="at least 1"):
            escalation.ReplayOptions(**bad)  # type: ignore[arg-type]


def test_write_replay_with_jobs_writes_the_serial_log(tmp_path: Path) -> None:
    policy = escalation.load(THREE_STRIKES)
    logs = []
    for jobs in (1, 2):
        inputs = open_inputs([SAMPLE])
        out = tmp_path / f"jobs{jobs}.jsonl"
        with out.open("wb") as fh:
            totals = write_replay(policy, inputs, fh, escalation.ReplayOptions(jobs=jobs))
        logs.append(out.read_bytes())
        assert totals.events == sum(1 for line in logs[-1].splitlines() if b'"kind":"decision"' in line)
    assert logs[0] == logs[1]


def test_a_session_rejects_an_event_of_another_conversation_and_keeps_the_callers_dict() -> None:
    state = escalation.load(THREE_STRIKES).start("c-1")
    event = {"time": "2026-11-22T10:00:00Z", "type": "agent.warn"}
    state.feed(event)
    assert "conversation" not in event
    with pytest.raises(escalation.EventError, match="belongs to conversation 'c-2', not 'c-1'"):
        state.feed({**event, "conversation": "c-2"})
    assert state.feed({**event, "conversation": "c-1"}).type == "agent.warn"


def test_the_admission_path_orders_by_time_and_names_the_conversation_when_asked() -> None:
    vocabulary = escalation.load(THREE_STRIKES).compiled.vocabulary
    event = admit_record({"time": "2026-11-22T10:00:00Z", "type": "agent.warn"}, vocabulary, "c-1")
    later = event.time + 1
    check_order(event, event.time)
    with pytest.raises(escalation.EventError, match=r"earlier than the previous event \("):
        check_order(event, later)
    with pytest.raises(escalation.EventError, match="earlier than the previous event of conversation 'c-1'"):
        check_order(event, later, name_conversation=True)
