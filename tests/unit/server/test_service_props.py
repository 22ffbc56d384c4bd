"""In-process property: whatever the requests (batches, concurrency, retries, records to reject), the service's segment
is what a replay of its input file writes, record for record, and each event id is decided at most once."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving import POLICY, sample_events

import escalation
from escalation.server import Metrics, Service
from escalation.state import SQLiteStore

EVENTS = sample_events(60)


@st.composite
def requests(draw: st.DrawFn) -> list[list[bytes]]:
    """Requests (each one or more input lines): sample events in order, some sent twice, some broken."""
    lines: list[bytes] = []
    for event in EVENTS[: draw(st.integers(1, len(EVENTS)))]:
        kind = draw(st.sampled_from(["plain", "plain", "plain", "retry", "reject", "no_id"]))
        if kind == "reject":
            lines.append(json.dumps(dict(event, type="no.such_event")).encode())
        elif kind == "no_id":
            lines.append(json.dumps({k: v for k, v in event.items() if k != "id"}).encode())
        else:
            lines.append(json.dumps(event).encode())
            if kind == "retry":
                lines.append(json.dumps(event).encode())
    out: list[list[bytes]] = []
    while lines:
        n = draw(st.integers(1, 4))
        out.append(lines[:n])
        lines = lines[n:]
    return out


async def _serve(service: Service, batches: list[list[bytes]], width: int) -> None:
    service.start()
    for i in range(0, len(batches), width):  # ``width`` requests at once, as concurrent clients send them
        await asyncio.gather(*(service.submit(b) for b in batches[i : i + width]))
    await service.stop()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=requests(), width=st.integers(1, 4))
def test_the_service_log_is_a_replay_of_what_it_accepted(batches: list[list[bytes]], width: int) -> None:
    policy = escalation.load(str(POLICY))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "audit"
        service = Service(str(POLICY), policy, SQLiteStore(str(Path(tmp) / "state.db"), exclusive=True), folder, Metrics())
        service.recover()
        asyncio.run(_serve(service, batches, width))
        logged = [json.loads(line) for line in (folder / "segment-000001.jsonl").read_bytes().splitlines()]
        body = [{k: v for k, v in r.items() if k not in ("prev", "hash")} for r in logged if r["kind"] in ("decision", "rejected")]
        here = os.getcwd()
        os.chdir(folder)  # the replay names its input as given: the segment's own name
        try:
            records = escalation.replay(policy, ["segment-000001.input.jsonl"])
            replayed = [json.loads(json.dumps(r)) for r in records if r["kind"] in ("decision", "rejected")]  # tuples as arrays
        finally:
            os.chdir(here)
        assert body == replayed
        ids = [r["event"]["id"] for r in body if r["kind"] == "decision" and "id" in r["event"]]
        assert len(ids) == len(set(ids))
