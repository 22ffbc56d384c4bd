"""Memory at customer scale (issue 13): a million events over 200,000 conversations of 50,000 customers, 12 months.

    python benchmarks/bench_customer_scale.py                     # generate, replay, print the peak RSS
    python benchmarks/bench_customer_scale.py --policy plain      # the same policy without `across contacts`
    python benchmarks/bench_customer_scale.py --events 100000 --conversations 20000 --customers 5000
    python benchmarks/bench_customer_scale.py --quick             # a small size (seconds): 20,000 / 4,000 / 1,000

The generator spreads the conversations' starts over 365 days; each conversation has
``events / conversations`` events ten seconds apart and belongs to a customer drawn at
random (so a customer has several contacts over the year). Most conversations name their
customer on their first event, some bind late (on their second), some stay anonymous. The
events are written in time order, so that no customer's clock goes backwards (a policy
that reads customer history would reject such records). The replay runs as a child
process (``escalation replay``), and its peak RSS is its own ``ru_maxrss`` from
``os.wait4`` (Linux reports kilobytes). The target is under 400 MB.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: The policy read with customer history (``--policy across``): the charity helpline's strikes across 12 months.
ACROSS = """policy "Customer scale" version "1"

default forbid agent.hang_up

let warned_this_call = seen agent.warn
let warnings_this_year = count agent.warn within 365d across contacts

rule end_after_warning {
  while warned_this_call and count customer.message[abuse != none] since agent.warn >= 1
  permit agent.hang_up
}

rule second_contact {
  while warnings_this_year >= 1 and not warned_this_call and seen customer.message[abuse != none]
  permit agent.hang_up
}
"""
#: The same policy reading only each conversation's own history (``--policy plain``).
PLAIN = ACROSS.replace(" across contacts", "")

START = 1_795_341_600  # 2026-11-22T10:00:00Z, in seconds
YEAR = 365 * 86_400
TARGET_MB = 400


def stamp(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def conversation_events(rng: random.Random, name: str, customer: str | None, late: bool, start: int, count: int) -> list[dict[str, object]]:
    """One conversation's events, ten seconds apart: a start, messages and warnings, an end."""
    events: list[dict[str, object]] = []
    for k in range(count):
        t = start + 10 * k
        if k == 0:
            event: dict[str, object] = {"type": "interaction.start", "channel": rng.choice(["phone", "chat"])}
        elif k == count - 1:
            event = {"type": "interaction.end", "by": "agent"}
        elif rng.random() < 0.3:
            event = {"type": "agent.warn"}
        else:
            event = {"type": "customer.message", "abuse": rng.choice(["none", "none", "insult", "profanity"])}
        record: dict[str, object] = {"conversation": name, "time": stamp(t), **event}
        if customer is not None and k == (1 if late else 0):
            record["customer"] = customer
        events.append(record)
    return events


def generate(path: Path, events: int, conversations: int, customers: int, seed: int) -> None:
    """Write the stream in time order (conversations interleave where they overlap)."""
    rng = random.Random(seed)
    per = max(2, events // conversations)
    starts = sorted(START + rng.randrange(YEAR) for _ in range(conversations))

    heap: list[tuple[int, int, int, str]] = []  # (time, conversation, k, line) of the conversations going on
    n = written = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < events and (n < conversations or heap):
            if n < conversations and (not heap or starts[n] <= heap[0][0]):  # conversations start in order
                r = rng.random()
                customer = None if r < 0.1 else f"cust-{rng.randrange(customers)}"
                for k, record in enumerate(conversation_events(rng, f"conv-{n}", customer, 0.1 <= r < 0.2, starts[n], per)):
                    heapq.heappush(heap, (starts[n] + 10 * k, n, k, json.dumps(record)))
                n += 1
            else:
                out.write(heapq.heappop(heap)[3] + "\n")
                written += 1


def escalation_command() -> list[str]:
    candidate = Path(sys.executable).with_name("escalation")
    if candidate.exists():
        return [str(candidate)]
    found = shutil.which("escalation")
    return [found] if found else [sys.executable, "-m", "escalation"]


def replay(policy: Path, events: Path, out: Path, extra: list[str]) -> tuple[int, float, float]:
    """Run the replay as a child; its exit code, wall seconds and peak RSS in MB (its own, from wait4)."""
    began = time.perf_counter()
    child = subprocess.Popen([*escalation_command(), "replay", str(policy), str(events), "-o", str(out), *extra], stderr=subprocess.PIPE)
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - began
    if child.returncode not in (0, 3, 4):
        sys.stderr.write(err.decode(errors="replace"))
    kb = usage.ru_maxrss / (1024 if sys.platform == "darwin" else 1)
    return child.returncode, wall, kb / 1024


#: --quick: events, conversations, customers of a smoke run.
QUICK = (20_000, 4_000, 1_000)


@dataclass(frozen=True)
class ScaleRun:
    """One replay at customer scale: its size, exit code, wall seconds and peak RSS (MB)."""

    events: int
    conversations: int
    customers: int
    policy: str
    jobs: int
    code: int
    wall: float
    mb: float

    @property
    def ok(self) -> bool:
        return self.code in (0, 3) and self.mb < TARGET_MB

    def line(self) -> str:
        verdict = "under" if self.mb < TARGET_MB else "OVER"
        return (
            f"{self.events} events, {self.conversations} conversations, {self.customers} customers, policy {self.policy}"
            f"{' --jobs ' + str(self.jobs) if self.jobs > 1 else ''}: exit {self.code}, {self.wall:.1f}s, "
            f"{self.events / self.wall:,.0f} events/s, peak RSS {self.mb:.0f} MB ({verdict} the {TARGET_MB} MB target)"
        )


def run(
    events: int = 1_000_000, conversations: int = 200_000, customers: int = 50_000, seed: int = 2026, policy: str = "across",
    jobs: int = 1, data_dir: Path | None = None,
) -> ScaleRun:
    """Generate (or reuse, in ``data_dir``) the stream and replay it as a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = data_dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        stream = folder / f"customers-{events}-{conversations}-{customers}-{seed}.jsonl"
        if not stream.exists():
            began = time.perf_counter()
            generate(stream, events, conversations, customers, seed)
            print(f"generated {stream.name} in {time.perf_counter() - began:.1f}s", file=sys.stderr)
        path = folder / f"customer_scale_{policy}.esc"
        path.write_text(ACROSS if policy == "across" else PLAIN, encoding="utf-8")
        extra = ["--jobs", str(jobs)] if jobs > 1 else []
        code, wall, mb = replay(path, stream, Path(tmp) / "audit.jsonl", extra)
    return ScaleRun(events, conversations, customers, policy, jobs, code, wall, mb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--quick", action="store_true", help="a small size: {} events, {} conversations, {} customers".format(*QUICK))
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--policy", choices=["across", "plain"], default="across")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--data-dir", help="keep the generated events here (default: a temporary folder)")
    args = parser.parse_args(argv)
    events, conversations, customers = QUICK if args.quick else (args.events, args.conversations, args.customers)
    result = run(events, conversations, customers, args.seed, args.policy, args.jobs, Path(args.data_dir) if args.data_dir else None)
    if result.code in (1, 2):
        print(f"the replay failed (exit {result.code}): the policy {args.policy!r} does not load here, or an input could not be read", file=sys.stderr)
        return 1
    print(result.line())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
