"""Properties of the evaluator, the replay and the audit log that hold for every policy and stream.

A replay equals feeding the events by hand; a snapshot taken anywhere resumes
to the same decisions; replays are deterministic to the byte; `verify` accepts
an intact log and rejects every small tampering; the state of a conversation
does not grow with its length when the policy has no windows.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from escalation import EventError, SnapshotError, check_source, load_checked
from escalation.audit import AuditWriter, obligation_json, verify_stream, violation_json
from escalation.compile import CompiledPolicy, compile_policy
from escalation.lang.units import US, format_time
from escalation.load import load_compiled
from escalation.replay import ENGINE, open_inputs, replay_records
from escalation.runtime import CustomerState, Frozen, PendingRow
from escalation.runtime.codec import pack_state, unpack_customer, unpack_state
from escalation.runtime.events import Event, validate
from escalation.runtime.interaction import Decision, Interaction
from helpers.customer_streams import customer_streams
from helpers.policy_strategies import BASE_TIME, event_records, event_streams, events_as_jsonl, mentioned, policy_texts

THREE_STRIKES = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "three_strikes.esc"

_PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: Lines a replay must reject (each becomes a `rejected` record and changes no state).
BAD_LINES = (
    "not json",
    "[1, 2]",
    '{"conversation": "c1", "type": "agent.warn"}',
    '{"conversation": "c1", "time": "2026-11-22T10:00:00Z", "type": "agent.shout"}',
    '{"conversation": "c1", "time": "2026-11-22T10:00:00Z", "type": "customer.message", "abuse": "rude"}',
    '{"conversation": "c2", "time": "1999-01-01T00:00:00Z", "type": "agent.warn"}',
)


# -------------------------------------------------------------------------- helpers


def _policy(text: str) -> CompiledPolicy:
    result = check_source(text)
    assert result.checked is not None, [d.message for d in result.diagnostics]
    return compile_policy(result.checked, text.encode("utf-8"))


@st.composite
def _policies_and_streams(draw: st.DrawFn, max_events: int = 20) -> tuple[str, list[dict[str, Any]]]:
    text = draw(policy_texts(), label="policy")
    vocabulary = _policy(text).vocabulary
    return text, draw(event_streams(vocabulary, max_events=max_events, prefer=mentioned(text, vocabulary)), label="events")


def _replay(policy: CompiledPolicy, path: Path, as_of: int | None) -> bytes:
    """The audit log of replaying the input file ``path``."""
    out = io.BytesIO()
    AuditWriter(out).write_all(replay_records(policy, open_inputs([str(path)]), as_of))
    return out.getvalue()


def _replay_text(policy: CompiledPolicy, text: str, as_of: int | None) -> tuple[bytes, str]:
    """The audit log of replaying ``text`` as one input file, and that file's path (gone on return)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_text(text, encoding="utf-8")
        return _replay(policy, path, as_of), str(path)


def _decision_json(d: Decision) -> dict[str, Any]:
    return {
        "violations": [violation_json(v) for v in d.violations],
        "fulfilled": list(d.fulfilled),
        "created": [obligation_json(ob) for ob in d.created],
        "fired": list(d.fired),
        "active": list(d.active),
        "permitted": list(d.permitted_actions),
        "forbidden": list(d.forbidden_actions),
    }


def _lines(log: bytes) -> list[bytes]:
    """The log's lines as ``verify`` reads a file: split at LF only, each keeping its LF."""
    return list(io.BytesIO(log))


def _rejected(lines: list[bytes]) -> bool:
    return not verify_stream(lines, ENGINE).ok


# -------------------------------------------------------------------------- replay == feeding by hand


@_PROPERTY
@given(_policies_and_streams(), st.data())
def test_a_replay_records_the_decisions_of_feeding_the_events_one_by_one(case: tuple[str, list[dict[str, Any]]], data: st.DataObject) -> None:
    text, records = case
    policy = _policy(text)
    lines = events_as_jsonl(records).splitlines()
    for bad in data.draw(st.lists(st.sampled_from(BAD_LINES), max_size=3), label="bad lines"):
        lines.insert(data.draw(st.integers(0, len(lines)), label="at"), bad)
    as_of = data.draw(st.one_of(st.none(), st.integers(0, 3600).map(lambda s: BASE_TIME + s * US)), label="as_of")
    log, path = _replay_text(policy, "\n".join(lines) + "\n", as_of)
    written = [json.loads(line) for line in log.splitlines()]

    interactions: dict[str, Interaction] = {}
    bindings: dict[str, str] = {}  # conversation -> the customer it is bound to (interfaces.md §1)
    expected: list[dict[str, Any]] = []
    for seq, line in enumerate(lines, 1):
        source = f"{path}:{seq}"
        try:
            obj = json.loads(line)
            event = validate(obj, policy.vocabulary)
            inter = interactions.get(event.conversation)
            assert inter is None or inter.last_time is None or event.time >= inter.last_time
            assert "customer" not in obj or isinstance(obj["customer"], str)  # a customer is a string (null is not)
            customer = obj.get("customer")
            assert not customer or bindings.get(event.conversation, customer) == customer  # never another customer
        except (ValueError, EventError, AssertionError):
            expected.append({"kind": "rejected", "seq": seq, "source": source})
            continue
        if customer:
            bindings.setdefault(event.conversation, customer)
        inter = interactions.setdefault(event.conversation, Interaction(policy, event.conversation))
        d = inter.feed(event)
        expected.append(
            {"kind": "decision", "seq": seq, "source": source, "conversation": event.conversation, "time": format_time(event.time), "type": event.type, "event": obj}
            | _decision_json(d)
        )
    for conversation, inter in interactions.items():
        violations, still_open = inter.close(as_of)
        if violations or still_open:
            as_of_text = format_time(as_of) if as_of is not None else None
            expected.append(
                {"kind": "close", "conversation": conversation, "as_of": as_of_text, "violations": [violation_json(v) for v in violations], "open": [obligation_json(o) for o in still_open]}
            )

    assert written[0]["kind"] == "header" and written[-1]["kind"] == "summary"
    body = written[1:-1]
    assert [r["kind"] for r in body] == [r["kind"] for r in expected]
    for got, want in zip(body, expected, strict=True):
        assert {k: got[k] for k in want} == want
    summary = written[-1]
    assert (summary["records"], summary["events"], summary["rejected"]) == (len(lines), sum(r["kind"] == "decision" for r in expected), sum(r["kind"] == "rejected" for r in expected))
    assert summary["conversations"] == len(interactions)


@_PROPERTY
@given(_policies_and_streams(), st.one_of(st.none(), st.integers(0, 3600)))
def test_two_replays_write_byte_identical_logs(case: tuple[str, list[dict[str, Any]]], as_of_offset: int | None) -> None:
    text, records = case
    as_of = None if as_of_offset is None else BASE_TIME + as_of_offset * US
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_text(events_as_jsonl(records), encoding="utf-8")
        first = _replay(_policy(text), path, as_of)
        second = _replay(_policy(text), path, as_of)  # a fresh compile, as after a restart
    assert first == second


# -------------------------------------------------------------------------- snapshots


@_PROPERTY
@given(st.data())
def test_a_snapshot_taken_anywhere_resumes_to_the_same_decisions(data: st.DataObject) -> None:
    text = data.draw(policy_texts(), label="policy")
    policy = _policy(text)
    records = data.draw(event_records(policy.vocabulary, "c1", max_events=25, prefer=mentioned(text, policy.vocabulary)), label="events")
    events = [validate(r, policy.vocabulary) for r in records]
    cut = data.draw(st.integers(0, len(events)), label="snapshot after")

    whole = Interaction(policy, "c1")
    decisions = [_decision_json(whole.feed(e)) for e in events]

    first = Interaction(policy, "c1")
    assert [_decision_json(first.feed(e)) for e in events[:cut]] == decisions[:cut]
    taken = first.snapshot()
    saved = json.loads(json.dumps(taken))
    assert saved == taken
    restarted = _policy(text)  # another process: the same policy, compiled again
    resumed = Interaction.resume(restarted, saved)
    assert resumed.snapshot() == taken
    assert [_decision_json(resumed.feed(e)) for e in events[cut:]] == decisions[cut:]
    assert resumed.snapshot() == whole.snapshot()
    other = compile_policy(restarted.checked, text.encode("utf-8"), backend="closures")  # and on the other back end
    on_closures = Interaction.resume(other, saved)
    assert [_decision_json(on_closures.feed(e)) for e in events[cut:]] == decisions[cut:]
    as_of = events[-1].time + 60 * US if events else None
    assert [violation_json(v) for v in resumed.close(as_of)[0]] == [violation_json(v) for v in whole.close(as_of)[0]]
    assert [obligation_json(o) for o in resumed.close(as_of)[1]] == [obligation_json(o) for o in whole.close(as_of)[1]]


@_PROPERTY
@given(st.data())
def test_a_frozen_interaction_thaws_to_the_same_decisions(data: st.DataObject) -> None:
    """The spill's form (a Frozen record, pickled) resumes exactly where the interaction was."""
    text = data.draw(policy_texts(), label="policy")
    policy = _policy(text)
    records = data.draw(event_records(policy.vocabulary, "c1", max_events=25, prefer=mentioned(text, policy.vocabulary)), label="events")
    events = [validate(r, policy.vocabulary) for r in records]
    cut = data.draw(st.integers(0, len(events)), label="frozen after")
    whole = Interaction(policy, "c1")
    decisions = [_decision_json(whole.feed(e)) for e in events]
    first = Interaction(policy, "c1")
    for e in events[:cut]:
        first.feed(e)
    frozen = first.frozen()
    assert isinstance(frozen, Frozen) and all(isinstance(row, PendingRow) for row in frozen.pending)
    thawed = Interaction.thawed(policy, "c1", pickle.loads(pickle.dumps(frozen)))
    assert thawed.snapshot() == first.snapshot()
    assert [_decision_json(thawed.feed(e)) for e in events[cut:]] == decisions[cut:]


def test_a_policy_file_is_compiled_once_per_content(tmp_path: Path) -> None:
    """load_compiled caches by the file's SHA-256 (the hash the audit log records): edited bytes compile again."""
    path = tmp_path / "p.esc"
    path.write_text('policy "p"\nrule r { on agent.warn require agent.summarize within 1m }\n', encoding="utf-8")
    first = load_compiled(str(path))
    assert load_compiled(str(path)) is first
    assert first.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_compiled(str(path), backend="closures") is not first
    path.write_text('policy "p"\nrule r { on agent.warn require agent.summarize within 2m }\n', encoding="utf-8")
    again = load_compiled(str(path))
    assert again is not first and again.requires[0].within == 120 * US


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_texts(), policy_texts())
def test_a_snapshot_of_another_policy_is_refused(text: str, other: str) -> None:
    assume(text != other)
    policy = _policy(text)
    inter = Interaction(policy, "c1")
    inter.feed(validate({"conversation": "c1", "time": format_time(BASE_TIME), "type": "agent.warn"}, policy.vocabulary))
    snap = json.loads(json.dumps(inter.snapshot()))
    with pytest.raises(SnapshotError):
        Interaction.resume(_policy(other), snap)


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: [],
        lambda s: {**s, "format": "escalation-snapshot/0"},
        lambda s: {k: v for k, v in s.items() if k != "pending"},
        lambda s: {**s, "state": s["state"] + [0]},
        lambda s: {**s, "active": ["no_such_rule"]},
        lambda s: {**s, "pending": [["x", 0, 0, None]]},
    ],
    ids=["not-a-dict", "format", "no-pending", "state-size", "unknown-rule", "bad-obligation"],
)
def test_a_damaged_snapshot_is_refused(damage: Any) -> None:
    policy = _policy('policy "p"\nrule r { while seen agent.warn require agent.apologize within 1m }\n')
    inter = Interaction(policy, "c1")
    inter.feed(validate({"conversation": "c1", "time": format_time(BASE_TIME), "type": "agent.warn"}, policy.vocabulary))
    with pytest.raises(SnapshotError):
        Interaction.resume(policy, damage(inter.snapshot()))


# -------------------------------------------------------------------------- verify


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_policies_and_streams(max_events=8), st.data())
def test_verify_accepts_the_log_and_rejects_every_small_tampering(case: tuple[str, list[dict[str, Any]]], data: st.DataObject) -> None:
    text, records = case
    log, _ = _replay_text(_policy(text), events_as_jsonl(records), None)
    lines = _lines(log)
    assert verify_stream(lines, ENGINE).ok

    # any single byte changed, anywhere
    for position, mask in data.draw(st.lists(st.tuples(st.integers(0, len(log) - 1), st.integers(1, 255)), min_size=1, max_size=25), label="flips"):
        flipped = bytearray(log)
        flipped[position] ^= mask
        assert _rejected(_lines(bytes(flipped))), f"byte {position} ^ {mask:#x} went unnoticed"

    n = len(lines)
    deleted = data.draw(st.integers(0, n - 1), label="delete")
    assert _rejected(lines[:deleted] + lines[deleted + 1 :])
    copied, at = data.draw(st.integers(0, n - 1), label="copy"), data.draw(st.integers(0, n), label="insert at")
    assert _rejected([*lines[:at], lines[copied], *lines[at:]])
    swapped = data.draw(st.integers(0, n - 2), label="swap")
    assert _rejected([*lines[:swapped], lines[swapped + 1], lines[swapped], *lines[swapped + 2 :]])
    for cut in range(n):  # truncation at every line boundary
        assert _rejected(lines[:cut]), f"the log cut after {cut} of {n} lines was accepted"


# -------------------------------------------------------------------------- bounded state


@pytest.mark.skipif(not THREE_STRIKES.exists(), reason=f"the conformance policy {THREE_STRIKES} is absent")
def test_the_state_of_a_long_conversation_does_not_grow() -> None:
    """Three strikes has no `within` windows: its state is the same size after 1,000 events as after 100,000."""
    policy = compile_policy(load_checked(str(THREE_STRIKES)))
    inter = Interaction(policy, "c1")
    templates = [
        validate({"conversation": "c1", "time": format_time(BASE_TIME), "type": "customer.message", "abuse": "insult"}, policy.vocabulary),
        validate({"conversation": "c1", "time": format_time(BASE_TIME), "type": "agent.warn"}, policy.vocabulary),
    ]
    sizes: dict[int, tuple[int, int, int]] = {}
    for i in range(100_000):
        template = templates[i % 2]
        inter.feed(Event("c1", BASE_TIME + i * US, template.type, template.attrs))
        if i + 1 in (1_000, 100_000):
            snap = inter.snapshot()
            sizes[i + 1] = (len(snap["state"]), len(snap["pending"]), len(json.dumps(snap)))
    (state_1k, pending_1k, bytes_1k), (state_100k, pending_100k, bytes_100k) = sizes[1_000], sizes[100_000]
    assert state_100k == state_1k
    assert pending_100k == pending_1k
    assert abs(bytes_100k - bytes_1k) <= 64, f"{bytes_1k} bytes after 1,000 events, {bytes_100k} after 100,000"


# ---------------------------------------------------------------- customers (language.md §9)


def _feed_customers(
    policy: CompiledPolicy, records: list[dict[str, Any]], cut: int | None, how: str
) -> list[dict[str, Any]]:
    """Decisions of a multi-customer stream fed as a replay binds; at ``cut`` every interaction and customer is saved
    (``how``: "snapshot" through JSON, or "spill" through the packed frozen form), restored, re-bound, and fed on."""
    inters: dict[str, Interaction] = {}
    customers: dict[str, CustomerState] = {}
    out: list[dict[str, Any]] = []
    for k, raw in enumerate(records):
        if k == cut:
            if how == "snapshot":
                customers = {c: CustomerState.resume(policy, json.loads(json.dumps(s.snapshot()))) for c, s in customers.items()}
                inters = {c: Interaction.resume(policy, json.loads(json.dumps(i.snapshot()))) for c, i in inters.items()}
            else:
                customers = {c: CustomerState.thawed(policy, c, unpack_customer(pack_state(s.frozen()))) for c, s in customers.items()}
                inters = {c: Interaction.thawed(policy, c, unpack_state(pack_state(i.frozen()))) for c, i in inters.items()}
            for inter in inters.values():
                if inter.customer is not None:
                    inter.bind(customers[inter.customer])
        record = dict(raw)
        customer = record.pop("customer", "")
        event = validate(record, policy.vocabulary)
        inter = inters.setdefault(event.conversation, Interaction(policy, event.conversation))
        if customer and inter.customer is None:
            inter.bind(customers.setdefault(customer, CustomerState(policy, customer)))
        out.append(_decision_json(inter.feed(event)))
    return out


@_PROPERTY
@given(st.data())
def test_saving_every_interaction_and_customer_anywhere_resumes_to_the_same_decisions(data: st.DataObject) -> None:
    text = data.draw(policy_texts(language=2), label="policy")
    policy = _policy(text)
    records = data.draw(customer_streams(policy.vocabulary, prefer=mentioned(text, policy.vocabulary)), label="events")
    cut = data.draw(st.integers(0, len(records)), label="cut")
    how = data.draw(st.sampled_from(("snapshot", "spill")), label="how")
    assert _feed_customers(policy, records, cut, how) == _feed_customers(policy, records, None, how)
