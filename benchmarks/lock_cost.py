"""What the per-Session lock costs a feed: locked and unlocked sessions, alternating, in one run.

    .venv/bin/python benchmarks/lock_cost.py [--events 100000] [--rounds 7]

Feeds the same events of the three-strikes benchmark stream (gen_events.py, 5,000
conversations) through ``Session.feed`` (which takes the session's lock) and through a
copy of the same method without the lock, switching between the two every few hundred
events so that both run under the same load, as dicts (each event validated) and as
pre-validated events (the least work per feed, so the largest share for the lock).
Prints the median CPU time per feed of each, the difference, and each round's ratio.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import escalation
from escalation.api import Session
from escalation.errors import EventError
from escalation.lang.units import format_time
from escalation.runtime.events import Event, validate
from escalation.runtime.interaction import Decision, Interaction

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gen_events  # noqa: E402


class UnlockedSession(Session):
    """``Session.feed`` as it was before the lock, for comparison only."""

    __slots__ = ()

    def feed(self, event: dict[str, Any] | Event) -> Decision:
        inter = self._inter
        if not isinstance(event, Event):
            record = dict(event)
            record.setdefault("conversation", inter.conversation)
            if record["conversation"] != inter.conversation:
                raise EventError(f"the event belongs to conversation {record['conversation']!r}, not {inter.conversation!r}")
            event = validate(record, inter.policy.vocabulary)
        if inter.last_time is not None and event.time < inter.last_time:
            raise EventError(f"`time` {format_time(event.time)} is earlier than the previous event ({format_time(inter.last_time)})")
        return inter.feed(event)


def sessions(policy: escalation.Policy, items: list[tuple[str, Any]], session_type: type[Session]) -> dict[str, Session]:
    return {cid: session_type(Interaction(policy.compiled, cid)) for cid, _ in items}


def one_round(policy: escalation.Policy, items: list[tuple[str, Any]], chunk: int) -> tuple[float, float]:
    """CPU seconds (locked, unlocked) to feed ``items`` to fresh sessions, alternating every ``chunk`` events.

    Fine alternation puts both under the same load on a busy machine; session creation
    is not timed, and the collector is off while feeding (the same for both).
    """
    both = (sessions(policy, items, Session), sessions(policy, items, UnlockedSession))
    spent = [0.0, 0.0]
    clock = time.process_time
    gc.collect()
    gc.disable()
    try:
        for n, at in enumerate(range(0, len(items), chunk)):
            part = items[at : at + chunk]
            for k in (0, 1) if n % 2 == 0 else (1, 0):
                table = both[k]
                start = clock()
                for cid, event in part:
                    table[cid].feed(event)
                spent[k] += clock() - start
    finally:
        gc.enable()
    return spent[0], spent[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=500, help="events fed to one kind of session before switching to the other")
    args = parser.parse_args(argv)
    policy = escalation.load(str(HERE / "three_strikes.esc"))
    records = [json.loads(line) for line in gen_events.generate(args.events, args.conversations, seed=2026)]
    vocabulary = policy.compiled.vocabulary
    inputs = {
        "dicts": [(r["conversation"], r) for r in records],
        "events": [(r["conversation"], validate(r, vocabulary)) for r in records],
    }
    print(f"{args.events} events over {args.conversations} conversations, {args.rounds} rounds, alternating every {args.chunk} events")
    for name, items in inputs.items():
        rounds = [one_round(policy, items, args.chunk) for _ in range(args.rounds)]
        locked = statistics.median(a for a, _ in rounds) / len(items) * 1e6
        unlocked = statistics.median(b for _, b in rounds) / len(items) * 1e6
        ratios = sorted(a / b for a, b in rounds)
        print(
            f"  {name:6s} CPU per feed, median: with the lock {locked:6.2f} µs, without {unlocked:6.2f} µs "
            f"({locked - unlocked:+.2f} µs, {100 * (locked / unlocked - 1):+.1f}%; rounds {', '.join(f'{100 * (r - 1):+.1f}%' for r in ratios)})"
        )


if __name__ == "__main__":
    main()
