"""A seeded generator of synthetic contact-centre event streams (JSON Lines), for demos and benchmarks.

    python examples/generate.py --conversations 40 --seed 7 > examples/sample.jsonl

The same seed always gives the same bytes. Conversations interleave in time order;
with ``--bad N`` that many malformed records are mixed in, so replays show rejections.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

START = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
ABUSE = ["none"] * 6 + ["profanity", "insult", "insult", "harassment", "discrimination", "threat"]


def _time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def conversation(rng: random.Random, cid: str, start: datetime) -> Iterator[tuple[datetime, dict[str, object]]]:
    """One interaction: a start, some messages and agent reactions, maybe escalation, an end, aftercare."""
    t = start
    yield t, {"type": "interaction.start", "channel": rng.choice(["phone", "phone", "chat", "email"]), "customer": f"cust-{rng.randrange(10_000):04d}"}
    warnings = 0
    for _ in range(rng.randint(2, 12)):
        t += timedelta(seconds=rng.randint(3, 40))
        abuse = rng.choice(ABUSE)
        yield t, {"type": "customer.message", "abuse": abuse, "shouting": rng.random() < 0.2}
        if abuse != "none" and rng.random() < 0.85:  # most agents warn in time; some are late
            t += timedelta(seconds=rng.choice([5, 10, 20, 25, 45]))
            yield t, {"type": "agent.warn"}
            warnings += 1
        if rng.random() < 0.08:
            t += timedelta(seconds=rng.randint(1, 10))
            yield t, {"type": "customer.requests_supervisor"}
            t += timedelta(seconds=rng.choice([30, 60, 90, 200]))
            yield t, {"type": "agent.escalate", "to": rng.choice(["supervisor", "supervisor", "manager"])}
        if rng.random() < 0.1:
            t += timedelta(seconds=rng.randint(1, 20))
            yield t, {"type": "fault.determined", "party": rng.choice(["company", "employee", "customer", "third_party"])}
            if rng.random() < 0.6:
                t += timedelta(seconds=rng.randint(1, 20))
                yield t, {"type": "agent.apologize"}
    if warnings >= 2 or rng.random() < 0.15:
        t += timedelta(seconds=rng.randint(1, 10))
        yield t, {"type": "agent.hang_up"}
        yield t, {"type": "interaction.end", "by": "agent"}
    else:
        if rng.random() < 0.5:
            t += timedelta(seconds=rng.randint(5, 60))
            yield t, {"type": "issue.resolved"}
        t += timedelta(seconds=rng.randint(5, 60))
        yield t, {"type": "interaction.end", "by": rng.choice(["customer", "system"])}
    if rng.random() < 0.7:
        t += timedelta(minutes=rng.choice([2, 5, 10, 20]))
        yield t, {"type": "agent.take_break"}


BAD = [
    "this line is not JSON",
    '{"conversation": "c-bad", "time": "yesterday", "type": "agent.warn"}',
    '{"conversation": "c-bad", "time": "2026-11-02T09:00:00Z", "type": "customer.shout"}',
    '{"conversation": "c-bad", "time": "2026-11-02T09:00:00Z", "type": "customer.message", "abuse": "rude"}',
    '{"time": "2026-11-02T09:00:00Z", "type": "agent.warn"}',
    '{"conversation": "c-bad", "time": "2026-11-02T09:00:00Z", "type": "fault.determined"}',
]


def generate(conversations: int, seed: int, bad: int, spread_s: int) -> Iterator[str]:
    rng = random.Random(seed)
    streams = []
    for n in range(conversations):
        cid = f"c-{seed}-{n:05d}"
        start = START + timedelta(seconds=rng.randint(0, spread_s))
        streams.append([(t, cid, k, ev) for k, (t, ev) in enumerate(conversation(rng, cid, start))])
    bad_at = set(rng.sample(range(1, 1 + conversations * 8), bad)) if bad else set()
    for i, (t, cid, _k, ev) in enumerate(heapq.merge(*streams), 1):
        if i in bad_at:
            yield rng.choice(BAD)
        yield json.dumps({"conversation": cid, "time": _time(t), **ev})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversations", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--bad", type=int, default=0, help="malformed records to mix in")
    ap.add_argument("--spread", type=int, default=3600, help="conversations start within this many seconds")
    args = ap.parse_args(argv)
    out = sys.stdout
    for line in generate(args.conversations, args.seed, args.bad, args.spread):
        out.write(line + "\n")


if __name__ == "__main__":
    main()
