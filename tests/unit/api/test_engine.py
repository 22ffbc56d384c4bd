"""escalation.Engine: many conversations fed as a replay feeds them (interfaces.md §4).

Fed record by record it writes the records of a replay of the same records; a snapshot
taken anywhere resumes to the records of an uninterrupted run; the SQLite store gives
what the memory store gives, and survives closing and reopening; ``permissions`` answers
at a time without an event.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import escalation
from conftest import ROOT
from escalation import Engine, EventError, RejectedEvent, SnapshotError, SQLiteStore
from escalation.api import ENGINE_FORMAT
from escalation.audit import records, totals
from helpers.policy_strategies import event_streams, events_as_jsonl, mentioned, policy_texts

THREE_STRIKES = ROOT / "policies" / "three_strikes.esc"
_PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: Lines a replay rejects, mixed into the generated streams.
BAD_LINES = (
    "not json",
    "[1, 2]",
    '{"conversation": "c1", "type": "agent.warn"}',
    '{"conversation": "c1", "time": "2026-11-22T10:00:00Z", "type": "agent.shout"}',
    '{"conversation": "c2", "time": "1999-01-01T00:00:00Z", "type": "agent.warn"}',
)


def _lines(path: Path) -> list[tuple[str, str]]:
    """(source, line) of every non-blank line of ``path``, as a replay numbers them."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        line = line.removesuffix("\r")
        if line.strip(" \t"):
            out.append((f"{path}:{number}", line))
    return out


def _feed_all(engine: Engine, lines: list[tuple[str, str]]) -> list[dict[str, Any]]:
    out = []
    for source, line in lines:
        try:
            d = engine.feed(line, source=source)
        except RejectedEvent as err:
            out.append(err.record)
        else:
            assert d.record is not None
            out.append(d.record)
    return out


def _replayed(policy: escalation.Policy, path: Path, as_of: str | None) -> list[dict[str, Any]]:
    return list(escalation.replay(policy, [str(path)], as_of=as_of))[1:]  # without the header (it names the inputs)


@pytest.mark.parametrize("name", ["sample", "with_rejects", "council_procedure"])
def test_fed_line_by_line_it_writes_the_records_of_a_replay(name: str) -> None:
    path = ROOT / "examples" / f"{name}.jsonl"
    policy_path = ROOT / "policies" / ("council_procedure.esc" if name == "council_procedure" else "three_strikes.esc")
    policy = escalation.load(str(policy_path))
    engine = Engine(policy)
    fed = _feed_all(engine, _lines(path))
    for as_of in (None, "2026-12-31T00:00:00Z"):
        assert fed + engine.finish(as_of) == _replayed(policy, path, as_of)


def _three_strikes_lines() -> list[tuple[str, str]]:
    return _lines(ROOT / "examples" / "with_rejects.jsonl")


def test_the_sqlite_store_gives_what_memory_gives_and_survives_reopening(tmp_path: Path) -> None:
    policy = escalation.load(str(THREE_STRIKES))
    lines = _three_strikes_lines()
    expected = _feed_all(Engine(policy), lines)
    half = len(lines) // 2
    store = SQLiteStore(str(tmp_path / "engine.db"))
    first = _feed_all(Engine(policy, store), lines[:half])
    store.close()
    reopened = Engine(policy, SQLiteStore(str(tmp_path / "engine.db")))
    assert first + _feed_all(reopened, lines[half:]) == expected
    memory = Engine(policy)
    _feed_all(memory, lines)
    assert reopened.finish("2026-12-31T00:00:00Z") == memory.finish("2026-12-31T00:00:00Z")
    assert reopened.snapshot() == memory.snapshot()


def test_a_store_of_another_policy_is_refused(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "engine.db"))
    Engine(escalation.load(str(THREE_STRIKES)), store).feed({"conversation": "c", "time": "2026-11-22T10:00:00Z", "type": "agent.warn"})
    with pytest.raises(SnapshotError, match="another policy"):
        Engine(escalation.load(str(ROOT / "policies" / "standard.esc")), store)


def test_a_snapshot_resumes_mid_stream_to_the_records_of_an_uninterrupted_run(tmp_path: Path) -> None:
    policy = escalation.load(str(THREE_STRIKES))
    lines = _three_strikes_lines()
    expected = _feed_all(Engine(policy), lines)
    for cut in (0, 1, len(lines) // 3, len(lines) - 1, len(lines)):
        engine = Engine(policy)
        head = _feed_all(engine, lines[:cut])
        snap = json.loads(json.dumps(engine.snapshot()))
        assert snap["format"] == ENGINE_FORMAT
        assert head + _feed_all(Engine.resume(policy, snap), lines[cut:]) == expected
    resumed = Engine.resume(policy, snap, SQLiteStore(str(tmp_path / "x.db")))
    assert resumed.finish() == engine.finish()


def test_a_damaged_engine_snapshot_is_refused() -> None:
    policy = escalation.load(str(THREE_STRIKES))
    engine = Engine(policy)
    engine.feed({"conversation": "c", "time": "2026-11-22T10:00:00Z", "type": "agent.warn"})
    good = engine.snapshot()
    damaged: list[Callable[[dict[str, Any]], None]] = [
        lambda s: s.update(format="nope"),
        lambda s: s.update(policy_digest="0" * 64),
        lambda s: s.update(seq=-1),
        lambda s: s.update(conversations_held={}),
        lambda s: s["conversations_held"][0].update(order="1"),
        lambda s: s["conversations_held"][0]["state"].update(next_n=0),
        lambda s: s["conversations_held"][0].update(conversation="d"),
        lambda s: s["conversations_held"][0].update(customer="nobody"),
        lambda s: s.update(customers_held=[{"customer": 1, "state": None}]),
    ]
    for damage in damaged:
        snap = json.loads(json.dumps(good))
        damage(snap)
        with pytest.raises(SnapshotError):
            Engine.resume(policy, snap)


def test_permissions_at_a_time_without_an_event() -> None:
    policy = escalation.load(str(THREE_STRIKES))
    engine = Engine(policy)
    d = engine.feed({"conversation": "c", "time": "2026-11-22T10:00:00Z", "type": "customer.message", "abuse": "insult"})
    assert d.conversation == "c" and d.time == "2026-11-22T10:00:00Z"
    soon = engine.permissions("c", at="2026-11-22T10:00:10Z")
    assert soon.at == "2026-11-22T10:00:10Z"
    assert [ob.id for ob in soon.obligations] == ["c#1"] and soon.overdue == ()
    assert soon.forbidden("agent.hang_up") and soon.permitted_actions == d.permitted_actions
    late = engine.permissions("c", at="2026-11-22T10:00:31Z")
    assert [ob.id for ob in late.overdue] == ["c#1"] and late.overdue[0].due == "2026-11-22T10:00:30Z"
    assert engine.permissions("c").at == "2026-11-22T10:00:00Z"
    fresh = engine.permissions("nobody", at="2026-11-22T10:00:00Z")
    assert fresh.obligations == () and fresh.permitted_actions == Engine(policy).permissions("x").permitted_actions
    with pytest.raises(EventError, match="earlier than the latest event"):
        engine.permissions("c", at="2026-11-22T09:00:00Z")
    with pytest.raises(escalation.UnknownActionError):
        late.permitted("agent.hangup")


def test_a_rejected_record_raises_with_its_rejected_record_and_changes_nothing() -> None:
    engine = Engine(escalation.load(str(THREE_STRIKES)))
    engine.feed({"conversation": "c", "time": "2026-11-22T10:00:00Z", "type": "agent.warn"})
    before = engine.snapshot()
    for bad in ({"conversation": "c", "time": "2026-11-22T09:00:00Z", "type": "agent.warn"}, {"time": float("nan")}, "[", {"x": {1, 2}}):
        with pytest.raises(RejectedEvent) as err:
            engine.feed(bad)
        assert err.value.record["kind"] == "rejected" and err.value.record["reason"] == str(err.value)
    after = engine.snapshot()
    assert after["seq"] == before["seq"] + 4
    assert after["conversations_held"] == before["conversations_held"]


# -------------------------------------------------------------------------- properties


@st.composite
def _cases(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(policy_texts(), label="policy")
    vocabulary = escalation.loads(text).compiled.vocabulary
    events = draw(event_streams(vocabulary, prefer=mentioned(text, vocabulary)), label="events")
    lines = events_as_jsonl(events).splitlines()
    for bad in draw(st.lists(st.sampled_from(BAD_LINES), max_size=3), label="bad lines"):
        lines.insert(draw(st.integers(0, len(lines)), label="at"), bad)
    return text, lines


@_PROPERTY
@given(_cases(), st.data())
def test_fed_event_by_event_equals_replayed_resumed_equals_uninterrupted_sqlite_equals_memory(case: tuple[str, list[str]], data: st.DataObject) -> None:
    text, raw_lines = case
    policy = escalation.loads(text)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_text("".join(line + "\n" for line in raw_lines), encoding="utf-8")
        lines = _lines(path)
        as_of = data.draw(st.sampled_from([None, "2026-11-22T10:30:00Z", "2027-01-01T00:00:00Z"]), label="as_of")
        replayed = _replayed(policy, path, as_of)

        memory = Engine(policy)
        assert _feed_all(memory, lines) + memory.finish(as_of) == replayed

        cut = data.draw(st.integers(0, len(lines)), label="cut")
        first = Engine(policy)
        head = _feed_all(first, lines[:cut])
        resumed = Engine.resume(policy, json.loads(json.dumps(first.snapshot())))
        assert head + _feed_all(resumed, lines[cut:]) + resumed.finish(as_of) == replayed

        stored = Engine(policy, SQLiteStore(":memory:"))
        assert _feed_all(stored, lines) + stored.finish(as_of) == replayed
        assert stored.snapshot() == memory.snapshot()


# -------------------------------------------------------------------------- customers (format /2, admission of language.md §9)


#: three_strikes, reading customer history too (language.md §9).
ACROSS = THREE_STRIKES.read_text(encoding="utf-8") + """
let abusive_this_year = count customer.message[abuse != none] within 365d across contacts

rule repeat_abuse {
  while abusive_this_year >= 3 and time since agent.warn across contacts < 1h
  permit agent.hang_up
}
"""


@st.composite
def _customer_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Interleaved conversations, some binding late to one of a few customers, some anonymous; a few foreign or bad customers."""
    vocabulary = escalation.load(str(THREE_STRIKES)).compiled.vocabulary
    stream = draw(event_streams(vocabulary, max_conversations=5, max_events=8))
    plan = {c: (draw(st.sampled_from([None, "k1", "k2", "k3"])), draw(st.integers(0, 3))) for c in {e["conversation"] for e in stream}}
    seen: dict[str, int] = {}
    for e in stream:
        n = seen[e["conversation"]] = seen.get(e["conversation"], -1) + 1
        customer, at = plan[e["conversation"]]
        if customer is not None and n == at:
            e["customer"] = customer
        elif customer is not None and n > at and draw(st.integers(0, 4)) == 0:
            e["customer"] = draw(st.sampled_from([customer, "", "k9", 7]))
    return stream


@pytest.mark.parametrize("reads", [False, True])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(stream=_customer_streams(), cut=st.integers(0, 40))
def test_with_customers_the_engine_admits_binds_and_decides_as_a_replay(
    stream: list[dict[str, Any]], cut: int, reads: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records, "FORMAT", "escalation-audit/2")
    for module in (records, totals):
        monkeypatch.setattr(module, "WITH_CUSTOMERS", True)
    policy = escalation.loads(ACROSS) if reads else escalation.load(str(THREE_STRIKES))
    assert policy.compiled.reads_customer_history == reads
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_text(events_as_jsonl(stream), encoding="utf-8")
        lines = _lines(path)
        replayed = _replayed(policy, path, None)
        assert all("customer" in r for r in replayed if r["kind"] == "decision") and "customers" in replayed[-1]
        memory = Engine(policy)
        assert _feed_all(memory, lines) + memory.finish() == replayed
        cut = min(cut, len(lines))
        first = Engine(policy, SQLiteStore(":memory:"))
        head = _feed_all(first, lines[:cut])
        resumed = Engine.resume(policy, json.loads(json.dumps(first.snapshot())), SQLiteStore(":memory:"))
        assert head + _feed_all(resumed, lines[cut:]) + resumed.finish() == replayed
        in_memory = Engine.resume(policy, json.loads(json.dumps(first.snapshot())))
        assert head + _feed_all(in_memory, lines[cut:]) == replayed[:-1][: len(lines)]


def test_a_foreign_customer_and_a_customers_clock_going_backwards_are_rejected() -> None:
    engine = Engine(escalation.loads(ACROSS))
    engine.feed({"conversation": "a", "time": "2026-11-22T10:00:05Z", "type": "agent.warn", "customer": "k1"})
    assert engine.customer_of("a") == "k1" and engine.customer_of("b") is None
    with pytest.raises(RejectedEvent, match='bound to customer "k1"'):
        engine.feed({"conversation": "a", "time": "2026-11-22T10:00:06Z", "type": "agent.warn", "customer": "k2"})
    with pytest.raises(RejectedEvent, match='earlier than the latest event of customer "k1"'):
        engine.feed({"conversation": "b", "time": "2026-11-22T10:00:01Z", "type": "agent.warn", "customer": "k1"})
    d = engine.feed({"conversation": "b", "time": "2026-11-22T10:00:01Z", "type": "agent.warn"})
    assert d.customer is None
    assert engine.feed({"conversation": "b", "time": "2026-11-22T10:00:07Z", "type": "agent.warn", "customer": "k1"}).customer == "k1"
    assert [c["customer"] for c in engine.snapshot()["customers_held"]] == ["k1"]


def test_a_customers_history_is_read_from_its_other_contacts_and_survives_the_store(tmp_path: Path) -> None:
    policy = escalation.loads(ACROSS)
    insult = {"type": "customer.message", "abuse": "insult", "customer": "k1"}
    engine = Engine(policy, SQLiteStore(str(tmp_path / "e.db")))
    for i, conversation in enumerate("abc"):
        engine.feed({"conversation": conversation, "time": f"2026-11-22T10:0{i}:00Z", **insult})
    engine.feed({"conversation": "c", "time": "2026-11-22T10:03:00Z", "type": "agent.warn"})
    assert engine.permissions("c", at="2026-11-22T10:03:01Z").permitted("agent.hang_up")
    again = Engine(policy, SQLiteStore(str(tmp_path / "e.db")))
    d = again.feed({"conversation": "d", "time": "2026-11-22T10:04:00Z", "type": "agent.warn", "customer": "k1"})
    assert d.customer == "k1" and d.permitted("agent.hang_up")  # three abusive contacts before, and a warning in this one
    assert not again.permissions("e", at="2026-11-22T10:05:00Z").permitted("agent.hang_up")  # unbound: its own history
