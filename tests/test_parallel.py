"""`--jobs N` writes byte for byte the log of a serial replay."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from escalation import check_source
from escalation.compiler import compile_policy
from escalation.parallel import owner, replay_parallel
from escalation.replay import open_inputs, replay_records, write_log
from policy_strategies import event_streams, mentioned

POLICY = (Path(__file__).resolve().parents[1] / "policies" / "three_strikes.esc").read_text(encoding="utf-8")
_CHECKED = check_source(POLICY).checked
assert _CHECKED is not None
_COMPILED = compile_policy(_CHECKED, POLICY.encode("utf-8"))
_BAD = [b"not json", b'{"conversation": 3}', b'{"conversation": "x", "time": "2026-11-22T10:00:00Z", "type": "agent.dance"}', b"[1, 2]", b"   "]


@settings(max_examples=25, deadline=None)
@given(
    event_streams(_CHECKED.vocabulary, max_events=40, prefer=mentioned(POLICY, _CHECKED.vocabulary)),
    st.lists(st.tuples(st.integers(0, 40), st.sampled_from(_BAD)), max_size=4),
    st.integers(2, 4),
    st.none() | st.integers(0, 10**7),
)
def test_parallel_replay_equals_serial(records: list[dict[str, object]], bad: list[tuple[int, bytes]], jobs: int, as_of: int | None) -> None:
    lines = [json.dumps(r).encode() for r in records]
    for at, junk in bad:
        lines.insert(min(at, len(lines)), junk)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        inputs = open_inputs([str(path)])
        as_of_us = None if as_of is None else 1795341600000000 + as_of * 1000
        serial = io.BytesIO()
        write_log(replay_records(_COMPILED, inputs, as_of_us), serial)
        parallel = io.BytesIO()
        replay_parallel(_COMPILED, inputs, as_of_us, jobs, parallel, tmp)
    assert parallel.getvalue() == serial.getvalue()


def test_a_conversation_always_has_one_owner() -> None:
    a = b'{"conversation": "c-1", "time": "x", "type": "y"}'
    b = b'{"type": "z", "conversation": "c-1"}'
    assert owner(a, 1, 3) == owner(b, 99, 3)
    assert owner(b"not json", 7, 3) == 7 % 3
