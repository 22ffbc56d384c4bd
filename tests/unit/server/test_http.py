"""`escalation serve` over real HTTP: a real process on a local port, httpx as the client (interfaces.md §5)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import POLICY, Served, audit_lines, escalation_command, folder_bytes, sample_events, verify


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A service on three_strikes.esc (not started: call ``.start()``); killed at the end if still running."""
    server = Served(tmp_path, POLICY)
    yield server
    server.close()



def _post(client, event, **kw):
    return client.post("/v1/events", content=json.dumps(event), headers={"content-type": "application/json"}, **kw)


def test_a_decision_is_the_audit_record_and_the_folder_verifies_and_replays(served: Served) -> None:
    served.start()
    events = sample_events(40)
    with served.client() as client:
        first = _post(client, events[0])
        assert first.status_code == 200
        record = first.json()
        assert record["kind"] == "decision" and record["seq"] == 1 and record["source"] == "segment-000001.input.jsonl:1"
        assert record["event"] == events[0] and "agent.hang_up" in record["forbidden"]
        batch = client.post("/v1/events", content="\n".join(json.dumps(e) for e in events[1:]) + "\n", headers={"content-type": "application/x-ndjson"})
        assert batch.status_code == 200
        records = batch.json()
        assert [r["seq"] for r in records] == list(range(2, 41))
        assert all(r["kind"] == "decision" for r in records)
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["policy"]["name"] == "Three strikes"
        metrics = client.get("/metrics").text
        assert "escalation_decisions_total 40.0" in metrics
        assert "escalation_request_seconds_bucket" in metrics and 'operation="audit_sync"' in metrics
        assert client.get("/openapi.json").json()["paths"].keys() >= {"/v1/events", "/v1/conversations/{conversation}", "/v1/customers/{customer}"}
        assert client.get("/docs").status_code == 200
    assert served.stop() == 0
    lines = audit_lines(served.audit)
    assert first.content in lines and all(json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() in lines for r in records)
    intact = verify(str(served.audit))
    assert intact.returncode == 0, intact.stderr
    replayed = verify(str(served.audit), "--policy", str(POLICY))
    assert replayed.returncode == 0, replayed.stderr
    assert "identical to a fresh replay" in replayed.stderr


def test_conversation_and_customer_answers(served: Served) -> None:
    served.start()
    events = [e for e in sample_events() if e["conversation"] == "c-7-00014"]
    with served.client() as client:
        for event in events[:3]:
            assert _post(client, event).status_code == 200
        last = events[2]["time"]
        now = client.get("/v1/conversations/c-7-00014").json()
        assert set(now) == {"conversation", "customer", "at", "permitted", "forbidden", "active", "obligations", "overdue"}
        assert now["customer"] == "cust-0571" and now["at"] >= last and "agent.hang_up" in now["forbidden"]
        at_last = client.get("/v1/conversations/c-7-00014", params={"at": last})
        assert at_last.status_code == 200 and at_last.json()["at"] == last
        early = client.get("/v1/conversations/c-7-00014", params={"at": "2020-01-01T00:00:00Z"})
        assert early.status_code == 422 and early.json()["error"] == "bad_at" and "earlier than" in early.json()["reason"]
        garbage = client.get("/v1/conversations/c-7-00014", params={"at": "yesterday"})
        assert garbage.status_code == 422 and set(garbage.json()) == {"error", "reason"}
        unknown = client.get("/v1/conversations/nobody")
        assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_conversation"
        customer = client.get("/v1/customers/cust-0571").json()
        assert customer == {"customer": "cust-0571", "conversations": ["c-7-00014"], "events": 3}
        assert client.get("/v1/customers/nobody").status_code == 404
    assert served.stop() == 0


def test_a_retry_by_id_is_answered_with_the_first_decision_and_not_applied_again(served: Served) -> None:
    served.start()
    event = sample_events(1)[0]
    with served.client() as client:
        first = _post(client, event)
        again = _post(client, dict(event, abuse="insult"))  # whatever else it holds
        other_type = _post(client, dict(event, id=str(event["id"])))  # "1" is not 1: a new event
        assert first.status_code == again.status_code == 200 and again.content == first.content
        assert other_type.status_code == 200 and other_type.json()["seq"] == 2
        assert "escalation_retries_total 1.0" in client.get("/metrics").text
    assert served.stop() == 0
    served.start()  # the answers outlive a restart
    with served.client() as client:
        assert _post(client, event).content == first.content
    assert served.stop() == 0
    inputs = (served.audit / "segment-000001.input.jsonl").read_text().splitlines()
    assert len(inputs) == 2 and (served.audit / "segment-000002.input.jsonl").read_text() == ""


def test_a_rejected_event_is_logged_and_answered_422(served: Served) -> None:
    served.start()
    with served.client() as client:
        answer = _post(client, {"conversation": "x", "time": "2026-11-22T10:00:00Z", "type": "no.such_event", "id": 9})
        assert answer.status_code == 422
        record = answer.json()
        assert record["kind"] == "rejected" and record["seq"] == 1 and "no.such_event" in record["raw"]
        retried = _post(client, {"conversation": "x", "time": "2026-11-22T10:00:00Z", "type": "no.such_event", "id": 9})
        assert retried.status_code == 422 and retried.json()["seq"] == 2  # a record rejected before is judged again
    assert served.stop() == 0
    assert answer.content in audit_lines(served.audit)


def test_bad_requests_get_a_json_error_and_change_nothing(served: Served) -> None:
    token_file = served.folder / "token"
    token_file.write_text("s3cret-token-0123456789\n")
    served.args = ("--token-file", str(token_file), "--max-body-bytes", "2000")
    served.start()
    good = {"authorization": "Bearer s3cret-token-0123456789"}
    event = json.dumps(sample_events(1)[0])
    with served.client() as client:
        before = folder_bytes(served.audit)
        cases = [
            (client.post("/v1/events", content=event, headers={"content-type": "application/json"}), 401),
            (client.post("/v1/events", content=event, headers={"content-type": "application/json", "authorization": "Bearer wrong"}), 401),
            (client.post("/v1/events", content='{"conversation": ', headers={**good, "content-type": "application/json"}), 400),
            (client.post("/v1/events", content=b"\xff\xfe", headers={**good, "content-type": "application/json"}), 400),
            (client.post("/v1/events", content=event + "\n{oops\n", headers={**good, "content-type": "application/x-ndjson"}), 400),
            (client.post("/v1/events", content="", headers={**good, "content-type": "application/json"}), 400),
            (client.post("/v1/events", content=event, headers={**good, "content-type": "text/plain"}), 415),
            (client.post("/v1/events", content=event, headers=good), 415),
            (client.post("/v1/events", content=" " * 3000, headers={**good, "content-type": "application/json"}), 413),
            (client.get("/v1/conversations/nobody", headers=good), 404),
            (client.get("/v1/conversations/nobody"), 401),
            (client.get("/no/such/route"), 404),
            (client.delete("/v1/events", headers=good), 405),
            (client.post("/v1/policy/reload"), 401),
        ]
        for response, status in cases:
            assert response.status_code == status, (status, response.text)
            body = response.json()
            assert set(body) == {"error", "reason"} and body["reason"], body
            assert "Traceback" not in response.text
        assert folder_bytes(served.audit) == before
        assert "escalation_decisions_total 0.0" in client.get("/metrics").text
        assert client.post("/v1/events", content=event, headers={**good, "content-type": "application/json"}).status_code == 200
    assert served.stop() == 0


def test_a_second_service_on_the_same_state_exits_2_with_a_sentence(served: Served, tmp_path: Path) -> None:
    served.start()
    second = subprocess.run(
        [*escalation_command(), "serve", str(POLICY), "--port", "0", "--state", f"sqlite:///{served.state}", "--audit", str(tmp_path / "other")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert second.returncode == 2
    assert "held by process" in second.stderr and "Traceback" not in second.stderr
    assert served.stop() == 0


def test_usage_errors_exit_2_and_an_invalid_policy_exits_1(tmp_path: Path) -> None:
    bad_policy = tmp_path / "bad.esc"
    bad_policy.write_text('policy "x" version "1"\nrule r {\n')
    base = [*escalation_command(), "serve"]
    invalid = subprocess.run([*base, str(bad_policy), "--state", f"sqlite:///{tmp_path}/s.db"], capture_output=True, text=True, timeout=60)
    assert invalid.returncode == 1 and "error" in invalid.stderr
    url = subprocess.run([*base, str(POLICY), "--state", "mysql://x"], capture_output=True, text=True, timeout=60)
    assert url.returncode == 2 and "is not a state URL" in url.stderr
    token = subprocess.run([*base, str(POLICY), "--state", f"sqlite:///{tmp_path}/s.db", "--token-file", str(tmp_path / "none")], capture_output=True, text=True, timeout=60)
    assert token.returncode == 2 and "cannot read the token file" in token.stderr
    for result in (invalid, url, token):
        assert "Traceback" not in result.stderr
