"""`--idle-horizon`: frees idle conversations; documented effects, and none without the option."""

from __future__ import annotations

import io
import json
from pathlib import Path

from escalation.load import load_compiled
from escalation.replay import open_inputs, replay_records, write_log

ROOT = Path(__file__).resolve().parents[3]
POLICY = load_compiled(str(ROOT / "policies" / "three_strikes.esc"))
US = 1_000_000


def _log(path: Path, horizon: int | None) -> list[dict[str, object]]:
    buf = io.BytesIO()
    write_log(replay_records(POLICY, open_inputs([str(path)]), idle_horizon=horizon), buf)
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def _strip(records: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in r.items() if k not in ("prev", "hash", "idle_horizon")} for r in records]


def test_a_horizon_longer_than_the_input_changes_nothing_but_the_header() -> None:
    sample = ROOT / "examples" / "sample.jsonl"
    plain, horizon = _log(sample, None), _log(sample, 30 * 86400 * US)
    assert "idle_horizon" not in plain[0] and horizon[0]["idle_horizon"] == 30 * 86400
    assert _strip(plain) == _strip(horizon)


def test_a_returning_conversation_starts_afresh_and_keeps_its_numbering(tmp_path: Path) -> None:
    lines = [{"conversation": "late", "time": "2026-11-22T10:00:00Z", "type": "customer.message", "abuse": "insult"}]
    # enough traffic elsewhere, a day later, to trigger a sweep
    lines += [{"conversation": f"o{n}", "time": "2026-11-23T10:00:00Z", "type": "agent.summarize"} for n in range(1100)]
    lines += [{"conversation": "late", "time": "2026-11-23T10:00:01Z", "type": "customer.message", "abuse": "insult"}]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    records = _log(path, 3600 * US)
    last = [r for r in records if r.get("kind") == "decision" and r["conversation"] == "late"][-1]
    assert last["created"][0]["id"] == "late#2"  # numbering goes on
    closes = [r for r in records if r["kind"] == "close" and r["conversation"] == "late"]
    assert [c["open"][0]["id"] for c in closes] == ["late#1", "late#2"]  # closed once when idle, once at the end
    assert records[-1]["conversations"] == 1101
