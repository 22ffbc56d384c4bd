"""A seeded generator of benchmark event streams for the three-strikes policy (JSON Lines).

    python benchmarks/gen_events.py --events 200000 --conversations 5000 --seed 2026 > events.jsonl

The same arguments always give the same bytes. Every conversation gets a fixed
number of events (drawn around events/conversations, the total exactly
``--events``), made of the same moves as ``examples/generate.py``: abusive and
calm messages, warnings (mostly in time, sometimes late or missing), requests
for a supervisor and escalations, faults and apologies, resolutions and
follow-ups, hang-ups (permitted or not) and breaks. Conversations start spread
over a working day and interleave in time order. Every record is valid: the
benchmark measures evaluation, not rejection.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

#: Bump when the output for the same arguments changes (cached files are keyed by it).
VERSION = 1
START = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
ABUSE = ["none"] * 7 + ["profanity", "insult", "insult", "harassment", "discrimination", "threat"]


def _time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _lengths(rng: random.Random, events: int, conversations: int) -> list[int]:
    """``conversations`` lengths, each at least 5, that add up to exactly ``events``."""
    if events < 5 * conversations:
        raise SystemExit(f"{events} events are too few for {conversations} conversations (at least 5 each)")
    mean = events / conversations
    spread = max(0, int(mean) - 5)
    lengths = [max(5, int(mean) + rng.randint(-spread, spread) // 2) for _ in range(conversations)]
    diff = events - sum(lengths)
    i = 0
    while diff:
        k = i % conversations
        if diff > 0:
            lengths[k] += 1
            diff -= 1
        elif lengths[k] > 5:
            lengths[k] -= 1
            diff += 1
        i += 1
    return lengths


def _body(rng: random.Random, t: datetime, size: int) -> Iterator[tuple[datetime, dict[str, object]]]:
    """The middle of an interaction: endless messages and reactions (the caller takes ``size`` of them)."""
    while True:
        t += timedelta(seconds=rng.randint(3, 40))
        abuse = rng.choice(ABUSE)
        message: dict[str, object] = {"type": "customer.message", "abuse": abuse}
        if rng.random() < 0.2:
            message["shouting"] = True
        yield t, message
        if abuse != "none" and rng.random() < 0.85:  # most agents warn in time; some are late
            t += timedelta(seconds=rng.choice([5, 10, 20, 25, 45]))
            yield t, {"type": "agent.warn"}
        r = rng.random()
        if r < 0.04:
            t += timedelta(seconds=rng.randint(1, 10))
            yield t, {"type": "customer.requests_supervisor"}
            t += timedelta(seconds=rng.choice([30, 60, 90, 200]))
            yield t, {"type": "agent.escalate", "to": rng.choice(["supervisor", "supervisor", "manager"])}
        elif r < 0.08:
            t += timedelta(seconds=rng.randint(1, 20))
            yield t, {"type": "fault.determined", "party": rng.choice(["company", "employee", "customer", "third_party"])}
            if rng.random() < 0.6:
                t += timedelta(seconds=rng.randint(1, 20))
                yield t, {"type": "agent.apologize"}
        elif r < 0.12:
            t += timedelta(seconds=rng.randint(5, 60))
            yield t, {"type": rng.choice(["agent.offer_solution", "agent.summarize", "agent.offer_compensation"])}
        elif r < 0.14:
            t += timedelta(seconds=rng.randint(5, 60))
            yield t, {"type": "issue.resolved"}


def conversation(rng: random.Random, start: datetime, length: int) -> list[tuple[datetime, dict[str, object]]]:
    """One interaction of exactly ``length`` events: start, body, an end (maybe a hang-up), maybe a break and a follow-up."""
    hang_up = rng.random() < 0.35
    take_break = rng.random() < 0.6
    follow_up = rng.random() < 0.2
    closing = 1 + hang_up + take_break + follow_up
    first: dict[str, object] = {
        "type": "interaction.start",
        "channel": rng.choice(["phone", "phone", "chat", "email"]),
        "customer": f"cust-{rng.randrange(100_000):05d}",
    }
    out: list[tuple[datetime, dict[str, object]]] = [(start, first)]
    body = _body(rng, start, length)
    while len(out) < length - closing:
        out.append(next(body))
    t = out[-1][0]
    t += timedelta(seconds=rng.randint(1, 10))
    if hang_up:
        out.append((t, {"type": "agent.hang_up"}))
        out.append((t, {"type": "interaction.end", "by": "agent"}))
    else:
        out.append((t, {"type": "interaction.end", "by": rng.choice(["customer", "system"])}))
    if take_break:
        out.append((t + timedelta(minutes=rng.choice([2, 5, 10, 20])), {"type": "agent.take_break"}))
    if follow_up:  # the next day or two; the policy wants it within 48h of a resolution
        out.append((t + timedelta(hours=rng.choice([1, 24, 47, 50])), {"type": "agent.follow_up"}))
    return out


def generate(events: int, conversations: int, seed: int, spread_s: int = 8 * 3600) -> Iterator[str]:
    """The lines (without newlines) of a stream of exactly ``events`` records."""
    rng = random.Random(seed)
    lengths = _lengths(rng, events, conversations)
    streams = []
    for n, length in enumerate(lengths):
        cid = f"c-{seed}-{n:05d}"
        start = START + timedelta(seconds=rng.randint(0, spread_s))
        streams.append([(t, cid, k, ev) for k, (t, ev) in enumerate(conversation(rng, start, length))])
    for t, cid, _k, ev in heapq.merge(*streams, key=lambda x: (x[0], x[1], x[2])):
        yield json.dumps({"conversation": cid, "time": _time(t), **ev})


def ensure(folder: Path, events: int, conversations: int, seed: int) -> Path:
    """The cached stream for these arguments in ``folder``, generated (atomically) if missing."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"events-v{VERSION}-{events}-{conversations}-{seed}.jsonl"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8", newline="\n") as out:
            for line in generate(events, conversations, seed):
                out.write(line + "\n")
        tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--conversations", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    write = sys.stdout.write
    for line in generate(args.events, args.conversations, args.seed):
        write(line + "\n")


if __name__ == "__main__":
    main()
