"""Kill -9 during a bounded load, restart, repeat: no answered decision is lost, the folder verifies and replays byte for
byte, retried events are not applied twice; and a policy reload (SIGHUP, and a syntax error that changes nothing)."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serving import POLICY, Served, audit_lines, folder_bytes, httpx, sample_events, verify

KILLS = 4

@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A service on three_strikes.esc (not started: call ``.start()``); killed at the end if still running."""
    server = Served(tmp_path, POLICY)
    yield server
    server.close()



def _client_loop(served: Served, events: list[dict[str, Any]], answers: dict[int, bytes], stop: threading.Event) -> None:
    """Send ``events`` one at a time; an event without an answer (the server died) is sent again after the restart."""
    i = 0
    deadline = time.monotonic() + 120
    while i < len(events) and not stop.is_set() and time.monotonic() < deadline:
        try:
            response = httpx.post(
                served.url + "/v1/events", content=json.dumps(events[i]), headers={"content-type": "application/json"}, timeout=10
            )
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        if response.status_code in (200, 422):
            answers[events[i]["id"]] = response.content
            i += 1
        else:
            time.sleep(0.05)


def test_kill_9_at_random_moments_loses_no_answered_decision(served: Served) -> None:
    rng = random.Random(15)
    events = sample_events()
    by_client: list[list[dict[str, Any]]] = [[] for _ in range(4)]
    for event in events:  # a conversation's events go through one client, in order
        by_client[sum(event["conversation"].encode()) % 4].append(event)
    answers: list[dict[int, bytes]] = [{} for _ in by_client]
    stop = threading.Event()
    served.start()
    threads = [threading.Thread(target=_client_loop, args=(served, evs, ans, stop), daemon=True) for evs, ans in zip(by_client, answers, strict=True)]
    for t in threads:
        t.start()
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.05, 0.6))
        served.kill()
        served.start()
    for t in threads:
        t.join(120)
    stop.set()
    assert served.stop() == 0
    answered = {k: v for ans in answers for k, v in ans.items()}
    assert len(answered) == len(events)
    lines = audit_lines(served.audit)
    assert all(line in lines for line in answered.values()), "an answered decision is missing from the audit folder"
    decided = Counter()
    for line in lines:
        record = json.loads(line)
        if record.get("kind") == "decision":
            decided[record["event"]["id"]] += 1
    assert decided and max(decided.values()) == 1, "a retried event was applied twice"
    intact = verify(str(served.audit))
    assert intact.returncode == 0, intact.stderr
    replayed = verify(str(served.audit), "--policy", str(POLICY))
    assert replayed.returncode == 0, replayed.stderr


def _wait_reload(client: Any, result: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        health = client.get("/health").json()
        if health.get("reload", {}).get("result") == result:
            return dict(health)
        time.sleep(0.05)
    raise AssertionError(f"no reload with result {result}")


def test_reload_on_sighup_opens_a_segment_under_the_new_policy_and_a_bad_policy_changes_nothing(served: Served, tmp_path: Path) -> None:
    old, new = tmp_path / "old.esc", tmp_path / "new.esc"
    old.write_text(POLICY.read_text())
    new.write_text(POLICY.read_text().replace("let max_warnings = 2", "let max_warnings = 1").replace('version "2026.11"', 'version "2026.12"'))
    live = tmp_path / "live.esc"
    live.write_text(old.read_text())
    served.policy = live
    served.start()
    events = sample_events(200)
    with served.client() as client:
        for event in events[:100]:
            assert client.post("/v1/events", content=json.dumps(event), headers={"content-type": "application/json"}).status_code in (200, 422)
        live.write_text(new.read_text())
        served.signal(signal.SIGHUP)
        health = _wait_reload(client, "ok")
        assert health["policy"]["version"] == "2026.12" and health["segment"] == "segment-000002.jsonl"
        for event in events[100:]:
            assert client.post("/v1/events", content=json.dumps(event), headers={"content-type": "application/json"}).status_code in (200, 422)
        before = folder_bytes(served.audit)
        live.write_text('policy "broken" version "1"\nrule {\n')
        failed = client.post("/v1/policy/reload")
        assert failed.status_code == 422 and failed.json()["error"] == "reload_failed"
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["policy"]["version"] == "2026.12" and health["reload"]["result"] == "failed"
        assert health["reload"]["error"]
        assert folder_bytes(served.audit) == before
        metrics = client.get("/metrics").text
        assert 'escalation_reloads_total{result="ok"} 1.0' in metrics and 'escalation_reloads_total{result="failed"} 1.0' in metrics
    assert served.stop() == 0
    assert verify(str(served.audit)).returncode == 0
    replayed = verify(str(served.audit), "--policy", str(old), "--policy", str(new))
    assert replayed.returncode == 0, replayed.stderr
    missing = verify(str(served.audit), "--policy", str(old))
    assert missing.returncode == 2 and "none of the --policy files" in missing.stderr
    segment = served.audit / "segment-000002.jsonl"
    segment.write_bytes(segment.read_bytes().replace(b'"seq":1,', b'"seq":7,', 1))
    tampered = verify(str(served.audit))
    assert tampered.returncode == 5 and "segment-000002.jsonl" in tampered.stderr
