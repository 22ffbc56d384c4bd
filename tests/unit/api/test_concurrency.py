"""One loaded policy shared by many threads gives the same decisions as a serial run.

A loaded :class:`escalation.Policy` is documented as immutable and safe to share; each
thread here feeds its own conversations (taken from one generated, interleaved stream)
while the interpreter switches threads as often as it can. Every decision, and every
final snapshot, must equal those of feeding the same events one conversation after
another in a single thread.
"""

from __future__ import annotations

import itertools
import random
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import escalation
from conftest import ROOT
from escalation.api import Policy
from escalation.audit import violation_json
from escalation.check.checker import check_source
from escalation.compile.lower import compile_policy
from helpers.policies import WINDOWED
from helpers.policy_strategies import event_streams, mentioned, policy_texts

THREADS = 8

_EVENTS = [
    {"type": "customer.message", "abuse": "insult"},
    {"type": "customer.message", "abuse": "threat"},
    {"type": "customer.message", "abuse": "none"},
    {"type": "customer.message", "abuse": "profanity", "shouting": True},
    {"type": "agent.warn"},
    {"type": "agent.hang_up"},
    {"type": "customer.requests_supervisor"},
    {"type": "agent.escalate", "to": "supervisor"},
    {"type": "agent.escalate", "to": "manager"},
    {"type": "fault.determined", "party": "company"},
    {"type": "agent.apologize"},
    {"type": "interaction.end"},
    {"type": "issue.resolved"},
    {"type": "agent.follow_up"},
]


def generated_stream(seed: int, conversations: int, events: int) -> list[dict[str, Any]]:
    """``events`` seeded events over ``conversations`` interleaved conversations, each one's times never going backwards."""
    rng = random.Random(seed)
    clock = dict.fromkeys((f"c{i}" for i in range(conversations)), 0)
    names = sorted(clock)
    out = []
    for _ in range(events):
        c = rng.choice(names)
        clock[c] += rng.choice([0, 1, 5, 10, 20, 21, 30, 61, 3600])
        t = clock[c]
        out.append({"conversation": c, "time": f"2026-11-{22 + t // 86400:02d}T{t // 3600 % 24:02d}:{t // 60 % 60:02d}:{t % 60:02d}Z", **rng.choice(_EVENTS)})
    return out


def decision_view(d: escalation.Decision) -> tuple[Any, ...]:
    """Everything a decision says, as plain values."""
    return (
        d.time,
        d.type,
        [violation_json(v) for v in d.violations],
        list(d.fulfilled),
        [o.as_json() for o in d.created],
        list(d.fired),
        list(d.active),
        list(d.permitted_actions),
        list(d.forbidden_actions),
        [o.as_json() for o in d.obligations],
    )


Outcome = dict[str, tuple[list[tuple[Any, ...]], dict[str, Any]]]


def feed_conversations(policy: Policy, stream: list[dict[str, Any]], conversations: set[str]) -> Outcome:
    """Feed the events of ``conversations`` (in stream order) to one session each: decisions and final snapshots."""
    sessions: dict[str, escalation.Session] = {}
    decisions: dict[str, list[tuple[Any, ...]]] = {}
    for event in stream:
        c = event["conversation"]
        if c not in conversations:
            continue
        if c not in sessions:
            sessions[c] = policy.start(c)
            decisions[c] = []
        try:
            decisions[c].append(decision_view(sessions[c].feed(event)))
        except escalation.EventError as err:
            decisions[c].append(("rejected", str(err)))
    return {c: (decisions[c], sessions[c].snapshot()) for c in sessions}


def serial(policy: Policy, stream: list[dict[str, Any]]) -> Outcome:
    return feed_conversations(policy, stream, {e["conversation"] for e in stream})


def threaded(policy: Policy, stream: list[dict[str, Any]], threads: int = THREADS) -> Outcome:
    """Conversation ``i`` goes to thread ``i % threads``; all threads start together and share ``policy``."""
    names = sorted({e["conversation"] for e in stream})
    shares = [set(names[i::threads]) for i in range(threads)]
    results: list[Outcome | BaseException] = [{} for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def work(i: int) -> None:
        try:
            barrier.wait()
            results[i] = feed_conversations(policy, stream, shares[i])
        except BaseException as err:  # reported below, in the main thread
            results[i] = err

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=600)
    merged: Outcome = {}
    for r in results:
        if isinstance(r, BaseException):
            raise r
        merged.update(r)
    return merged


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads every microsecond (instead of every 5 ms) so that their steps interleave finely."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@pytest.mark.parametrize("policy_name", ["three_strikes", "windowed"])
def test_eight_threads_sharing_one_loaded_policy_decide_as_a_serial_run(policy_name: str, tmp_path: Path, fast_switching: None) -> None:
    if policy_name == "three_strikes":
        path = ROOT / "policies" / "three_strikes.esc"
    else:
        path = tmp_path / "windowed.esc"
        path.write_text(WINDOWED, encoding="utf-8")
    policy = escalation.load(str(path))
    stream = generated_stream(seed=21, conversations=96, events=12_000)
    expected = serial(policy, stream)
    assert sum(len(d) for d, _ in expected.values()) == len(stream)
    assert any(view[2] for d, _ in expected.values() for view in d if view[0] != "rejected"), "the stream should cause violations"
    for _ in range(2):
        assert threaded(policy, stream) == expected


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_threads_sharing_a_generated_policy_decide_as_a_serial_run(fast_switching: None, data: st.DataObject) -> None:
    text = data.draw(policy_texts(), label="policy")
    result = check_source(text)
    assert result.checked is not None
    policy = Policy(compile_policy(result.checked))
    stream = data.draw(event_streams(policy.compiled.vocabulary, max_conversations=16, max_events=25, prefer=mentioned(text, policy.compiled.vocabulary)), label="events")
    assert threaded(policy, stream) == serial(policy, stream)


def test_one_session_fed_from_eight_threads_applies_whole_events_in_the_order_admitted(tmp_path: Path, fast_switching: None) -> None:
    """Eight threads feed one shared Session; a ninth snapshots and queries it meanwhile.

    The events have distinct, increasing times, and the threads take them from one shared
    counter, so they arrive out of order: an event whose time is earlier than the one
    applied before it is rejected. A session applies each event whole, one at a time, so
    the events it accepted were applied in increasing time, which is the order the lock
    admitted them; feeding exactly those, in that order, to a fresh session in one thread
    must give every decision and the final state. Every snapshot taken meanwhile resumes.
    """
    path = tmp_path / "windowed.esc"
    path.write_text(WINDOWED, encoding="utf-8")
    policy = escalation.load(str(path))
    rng = random.Random(11)
    events = [
        {"time": f"2026-11-22T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z", **rng.choice(_EVENTS)}
        for i in range(12_000)
    ]
    session = policy.start("c1")
    taken = itertools.count()
    applied: dict[int, escalation.Decision] = {}
    rejected: dict[int, str] = {}
    errors: list[BaseException] = []
    snapshots: list[dict[str, Any]] = []
    done = threading.Event()
    barrier = threading.Barrier(THREADS + 1)

    def feeder() -> None:
        try:
            barrier.wait()
            while (i := next(taken)) < len(events):
                try:
                    applied[i] = session.feed(events[i])
                except escalation.EventError as err:
                    rejected[i] = str(err)
        except BaseException as err:  # reported below, in the main thread
            errors.append(err)

    def reader() -> None:
        try:
            barrier.wait()
            while not done.is_set():
                snap = session.snapshot()
                assert policy.resume(snap).snapshot() == snap
                session.permitted("agent.hang_up")
                assert all(ob.id.startswith("c1#") for ob in session.obligations)
                snapshots.append(snap)
        except BaseException as err:
            errors.append(err)

    feeders = [threading.Thread(target=feeder) for _ in range(THREADS)]
    watcher = threading.Thread(target=reader)
    for t in [*feeders, watcher]:
        t.start()
    for t in feeders:
        t.join(timeout=600)
    done.set()
    watcher.join(timeout=600)
    if errors:
        raise errors[0]
    assert sorted([*applied, *rejected]) == list(range(len(events)))
    assert rejected, "the threads should have raced (some events arrive after a later one)"
    assert all("earlier than the previous event" in reason for reason in rejected.values())
    assert all(any(j > i for j in applied) for i in rejected), "a rejected event comes after a later one was applied"
    assert snapshots

    order = sorted(applied)  # increasing time: the order the lock admitted them
    alone = policy.start("c1")
    assert [decision_view(applied[i]) for i in order] == [decision_view(alone.feed(events[i])) for i in order]
    assert session.snapshot() == alone.snapshot()
