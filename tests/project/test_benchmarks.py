"""The benchmark command runs, reports every section, and its hand-written baseline stays honest.

No timing is asserted here: the figures live in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import escalation

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import gen_events  # noqa: E402
import handwritten  # noqa: E402

SECTION_TITLES = (
    "1. Full replay against the I/O floor",
    "2. In-process feed against hand-written Python",
    "3. One decision against the peers",
    "4. Start-up and scaling with the rule count",
    "5. Where a replay spends its time",
    "6. Scale: a million events, --jobs and Dask",
    "7. Customer history against none",
    "8. Customer scale: memory",
    "9. Version-1 replay against the tree before language 2",
)
PEERS = ("rule-engine", "business-rules", "durable-rules", "cedarpy", "regopy")


def test_quick_run_reports_every_section(tmp_path: Path) -> None:
    report = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--data-dir", str(tmp_path), "--output", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    text = report.read_text(encoding="utf-8")
    for title in SECTION_TITLES:
        assert title in proc.stdout
        assert f"## {title}" in text
    assert "FAILED" not in proc.stdout
    # the table printed at the end, one row per headline figure
    summary = proc.stdout.split("## Summary", 1)[1]
    for section in ("1 replay", "2 feed", "3 decision", "4 start-up", "4 scaling", "6 scale", "7 customers", "8 customer scale", "9 v1 no slower"):
        assert section in summary
    # issue 13: the customer-history ratio, the peak RSS at customer scale, the version-1 comparison (or why it was skipped)
    assert "ratio across/without: best" in proc.stdout and "paired" in proc.stdout
    assert "peak RSS" in text and "under the 400 MB target" in proc.stdout
    assert "identical modulo the /2 additions (escalation-audit/1 vs escalation-audit/2" in proc.stdout or "skipped: the git history" in proc.stdout
    assert "escalation replay" in proc.stdout and "floor (json)" in proc.stdout
    assert "plain Python" in proc.stdout
    for peer in PEERS:  # measured, or a note that says why not
        assert peer in text
    for fact in ("- date:", "- machine:", "CPU", "cores", "- Python:", "benchmarks/run.py --quick"):
        assert fact in text
    # the real results are not overwritten by a smoke run
    assert not (tmp_path / "out-ours.jsonl").exists()


def _n(obligation_id: str | None) -> int | None:
    return None if obligation_id is None else int(obligation_id.rsplit("#", 1)[1])


def test_handwritten_baseline_agrees_with_the_engine_event_by_event() -> None:
    import json

    policy = escalation.load(str(BENCH / "three_strikes.esc"))
    records = [json.loads(line) for line in gen_events.generate(3_000, 60, seed=11)]
    sessions: dict[str, escalation.Session] = {}
    hand = handwritten.Replay()
    kinds: set[str] = set()
    for i, record in enumerate(records):
        cid = record["conversation"]
        session = sessions.get(cid) or sessions.setdefault(cid, policy.start(cid))
        decision = session.feed(record)
        violations, fulfilled, created, hang_up = hand.feed_record(record)
        ours = (
            [(v.kind, v.rule, _n(v.obligation)) for v in decision.violations],
            [_n(f) for f in decision.fulfilled],
            [(_n(ob.id), ob.rule) for ob in decision.created],
            decision.permitted("agent.hang_up"),
        )
        theirs = (violations, fulfilled, [(ob[0], ob[1]) for ob in created], hang_up)
        assert ours == theirs, f"event {i} ({record}): engine {ours}, hand-written {theirs}"
        kinds.update(v.kind for v in decision.violations)
    assert kinds == {"forbidden_action", "missed_deadline", "unfulfilled"}  # the stream exercises every kind


def test_generator_is_deterministic_and_exact() -> None:
    first = list(gen_events.generate(1_000, 25, seed=3))
    assert first == list(gen_events.generate(1_000, 25, seed=3))
    assert len(first) == 1_000
    assert len({json_conversation(line) for line in first}) == 25


def json_conversation(line: str) -> str:
    import json

    return str(json.loads(line)["conversation"])


def test_benchmark_policy_is_the_shared_one() -> None:
    shared = ROOT.parent / "shared" / "conformance" / "three_strikes.esc"
    if not shared.exists():
        pytest.skip("the shared contract folder is not beside the repository")
    assert (BENCH / "three_strikes.esc").read_bytes() == shared.read_bytes()
