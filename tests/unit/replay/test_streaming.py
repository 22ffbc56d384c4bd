"""Streaming: ended conversations leave memory (owing something or not), and the log does not change."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalation import check_source
from escalation.compile.lower import compile_policy
from escalation.lang.limits import DEFAULT_LIMITS, Limits
from escalation.replay import Replayer, open_inputs, replay_records, write_log
from escalation.replay.core import SWEEP_EVERY
from escalation.state import MemoryStore, SpillStore, StateStore
from helpers.log_compare import same_log
from helpers.policy_strategies import event_streams, mentioned

POLICY = (Path(__file__).resolve().parents[3] / "policies" / "three_strikes.esc").read_text(encoding="utf-8")
_CHECKED = check_source(POLICY).checked
assert _CHECKED is not None
_COMPILED = compile_policy(_CHECKED, POLICY.encode("utf-8"))
US = 1_000_000



def _log(
    path: Path,
    park: bool,
    as_of: int | None = None,
    horizon: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    sweep_every: int = SWEEP_EVERY,
    store: StateStore | None = None,
) -> tuple[bytes, Replayer]:
    r = Replayer(_COMPILED, as_of, idle_horizon=horizon, park=park, limits=limits, sweep_every=sweep_every, store=store)
    out = io.BytesIO()
    write_log(replay_records(_COMPILED, open_inputs([str(path)]), as_of, replayer=r), out)
    return out.getvalue(), r


# More conversations that end, and come back after their end.
_PREFER = [*mentioned(POLICY, _CHECKED.vocabulary), "interaction.end", "interaction.end", "agent.take_break", "agent.follow_up"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_streams(_CHECKED.vocabulary, max_conversations=6, max_events=25, prefer=_PREFER),
    st.none() | st.integers(0, 10**7),
    st.sampled_from([None, 1, 20, 90, 600]),
    st.integers(1, 5),
    st.none() | st.integers(1, 4),
)
def test_parking_never_changes_the_log(
    records: list[dict[str, object]], as_of: int | None, horizon_s: int | None, sweep_every: int, most_open: int | None
) -> None:
    """Parked or kept in memory, with or without an idle horizon (swept often, so that it acts) and a limit on open conversations."""
    as_of_us = None if as_of is None else 1795341600000000 + as_of * 1000
    horizon = None if horizon_s is None else horizon_s * US
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        limits = DEFAULT_LIMITS if most_open is None else Limits(max_open_conversations=most_open)
        parked, _ = _log(path, True, as_of_us, horizon, limits, sweep_every)
        in_memory, _ = _log(path, True, as_of_us, horizon, limits, sweep_every, MemoryStore())
        kept, r = _log(path, False, as_of_us, horizon, limits, sweep_every)
        assert r.parked == 0
        same_log(parked, kept)
        same_log(in_memory, kept)


def _call(c: str, minute: int) -> list[dict[str, object]]:
    t = f"2026-11-22T10:{minute:02d}"
    return [
        {"conversation": c, "time": f"{t}:00Z", "type": "interaction.start"},
        {"conversation": c, "time": f"{t}:01Z", "type": "customer.message", "abuse": "none"},
        {"conversation": c, "time": f"{t}:02Z", "type": "interaction.end"},
    ]


def test_memory_holds_only_the_open_conversations(tmp_path: Path) -> None:
    records = [e for n in range(3000) for e in _call(f"c{n}", n % 60)]
    records.sort(key=lambda e: str(e["time"]))  # many calls at once, interleaved
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    r = Replayer(_COMPILED)
    most = 0
    for _ in replay_records(_COMPILED, open_inputs([str(path)]), replayer=r):
        most = max(most, len(r.conversations))
    assert r.parked == 3000 and len(r.conversations) == 0
    assert most <= 3000 / 60 + 1  # the calls of one minute at most
    assert r.summary()["conversations"] == 3000


def test_a_conversation_that_comes_back_after_its_end_meets_its_whole_history(tmp_path: Path) -> None:
    c = "c-7"
    events = [
        {"conversation": c, "time": "2026-11-22T10:00:00Z", "type": "customer.message", "abuse": "insult"},
        {"conversation": c, "time": "2026-11-22T10:00:05Z", "type": "agent.warn"},
        {"conversation": c, "time": "2026-11-22T10:00:10Z", "type": "customer.message", "abuse": "insult"},
        {"conversation": c, "time": "2026-11-22T10:00:15Z", "type": "agent.warn"},
        {"conversation": c, "time": "2026-11-22T10:00:20Z", "type": "customer.message", "abuse": "insult"},
        {"conversation": c, "time": "2026-11-22T10:00:25Z", "type": "agent.hang_up"},
        {"conversation": c, "time": "2026-11-22T10:00:25Z", "type": "interaction.end", "by": "agent"},
        {"conversation": c, "time": "2026-11-22T10:10:00Z", "type": "agent.take_break"},
        # the next day: the hang-up is still permitted by the warnings of yesterday
        {"conversation": c, "time": "2026-11-23T09:00:00Z", "type": "agent.hang_up"},
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    log, r = _log(path, True)
    assert r.parked == 3  # after the end (owing a break), after the break, and after the late hang-up
    decisions = [json.loads(line) for line in log.splitlines() if b'"kind":"decision"' in line]
    assert decisions[-1]["violations"] == []
    assert "agent.hang_up" in decisions[-1]["permitted"]
    same_log(log, _log(path, False)[0])


def test_a_late_event_earlier_than_the_parked_end_is_rejected(tmp_path: Path) -> None:
    events = [*_call("c-1", 5), {"conversation": "c-1", "time": "2026-11-22T10:04:00Z", "type": "agent.follow_up"}]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    log, r = _log(path, True)
    assert r.parked == 1
    assert b"is earlier than the previous event" in log.splitlines()[-2]
    same_log(log, _log(path, False)[0])


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd (Linux)")
def test_the_spill_is_a_deleted_file_and_is_closed_at_the_end(tmp_path: Path) -> None:
    """SQLite unlinks the spill as soon as it opens it, so even a killed replay leaves nothing behind.

    (SQLite holds the first couple of MB in its page cache; enough conversations make it write.)
    """
    import os

    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for n in range(30000) for e in _call(f"c{n}", n % 60)))
    r = Replayer(_COMPILED)
    records = replay_records(_COMPILED, open_inputs([str(path)]), replayer=r)
    for _ in range(60000):  # two thirds: 20,000 conversations parked
        next(records)
    assert isinstance(r.store, SpillStore) and r.parked >= 19999

    def files() -> list[str]:
        out = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                out.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                continue
        return [f for f in out if f.startswith("/") and not f.startswith("/dev/") and not f.startswith("/proc/")]

    spilled = [f for f in files() if "etilqs_" in f]  # SQLite's name for its temporary files
    assert spilled and all(f.endswith("(deleted)") for f in spilled), files()
    for _ in records:
        pass
    assert r.store is None
    assert not [f for f in files() if f in spilled]


def test_parked_conversations_count_against_the_open_conversation_limit(tmp_path: Path) -> None:
    events = [e for c in "abc" for e in _call(c, 1)]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    limits = Limits(max_open_conversations=2)
    parked, r = _log(path, True, limits=limits)
    assert r.parked == 2
    assert parked.count(b"max_open_conversations") == 3  # c is refused, parked a and b being still kept
    same_log(parked, _log(path, False, limits=limits)[0])


def test_the_closes_end_a_replay() -> None:
    r = Replayer(_COMPILED)
    assert list(r.closes()) == []
    with pytest.raises(RuntimeError, match="already taken"):
        list(r.closes())


def test_a_conversation_back_from_parking_is_not_retired_twice(tmp_path: Path) -> None:
    """Regression (found by the property test): a sweep in the very event that brought a parked conversation back
    counted its stale row as retired, so the replay held one conversation more than the limit allowed."""
    t = "2026-11-22T10:00:{:02d}Z".format
    events = [
        {"conversation": "a", "time": t(0), "type": "interaction.end"},  # parked
        {"conversation": "z", "time": t(0), "type": "interaction.end"},  # parked
        {"conversation": "a", "time": t(2), "type": "agent.summarize"},  # back; this event's sweep closes z; a parked again
        {"conversation": "b", "time": t(2), "type": "agent.summarize"},  # a (parked) and b: two open
        {"conversation": "c", "time": t(2), "type": "agent.summarize"},  # a third: refused
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    limits = Limits(max_open_conversations=2)
    parked, r = _log(path, True, horizon=1 * US, limits=limits, sweep_every=1)
    same_log(parked, _log(path, False, horizon=1 * US, limits=limits, sweep_every=1)[0])
    assert r.parked == 3
    assert parked.count(b"max_open_conversations") == 1


def test_a_conversation_that_ends_owing_something_leaves_memory_and_is_closed_from_the_spill(tmp_path: Path) -> None:
    events = []
    for n in range(200):  # every call ends abusive: each owes a break, and none takes it
        c = f"c{n}"
        events += [
            {"conversation": c, "time": "2026-11-22T10:00:00Z", "type": "customer.message", "abuse": "insult"},
            {"conversation": c, "time": "2026-11-22T10:00:05Z", "type": "agent.warn"},
            {"conversation": c, "time": "2026-11-22T10:00:06Z", "type": "interaction.end"},
        ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    for as_of in (None, 1795341600000000 + 3600 * US):
        log, r = _log(path, True, as_of)
        assert r.parked == 200 and not r.conversations
        closes = [json.loads(line) for line in log.splitlines() if b'"kind":"close"' in line]
        assert [c["conversation"] for c in closes] == [f"c{n}" for n in range(200)]
        assert all(c["open" if as_of is None else "violations"] for c in closes)
        same_log(log, _log(path, False, as_of)[0])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams(_CHECKED.vocabulary, max_conversations=3, max_events=20, prefer=_PREFER))
def test_the_spill_form_gives_back_the_state_it_packed(records: list[dict[str, object]]) -> None:
    """pack_state / unpack_state (no pickle) round-trip every state a replay can park, windows and pending obligations included."""
    from escalation.runtime import Interaction, validate
    from escalation.runtime.codec import pack_state, unpack_state

    inters: dict[str, Interaction] = {}
    for raw in records:
        try:
            event = validate(dict(raw), _COMPILED.vocabulary)
        except Exception:
            continue
        inter = inters.setdefault(event.conversation, Interaction(_COMPILED, event.conversation))
        if inter.last_time is not None and event.time < inter.last_time:
            continue
        inter.feed(event)
        frozen = inter.frozen()
        assert unpack_state(pack_state(frozen)) == tuple(frozen)
        back = Interaction.thawed(_COMPILED, event.conversation, unpack_state(pack_state(frozen)))
        assert back.snapshot() == inter.snapshot()


def test_the_spill_form_keeps_integers_beyond_64_bits() -> None:
    from collections import deque

    from escalation.runtime.codec import Frozen, PendingRow, pack_state, unpack_state

    frozen = Frozen([3, deque([1, 2]), 2**80, None, "x"], (0, 2), [True, False], 4, 10, [PendingRow(1, 0, 5, None), PendingRow(2, 1, 6, 9)])
    packed = pack_state(frozen)
    assert packed.startswith(b"J") and b"pickle" not in packed
    assert unpack_state(packed) == frozen
    assert type(unpack_state(packed)[0][1]) is deque
