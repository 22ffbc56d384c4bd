"""Compile time and per-event cost of lets that read the previous one twice, and two other per-event bounds.

    python benchmarks/bench_lets.py                      # prints the tables (markdown)
    python benchmarks/bench_lets.py --write              # and puts them in benchmarks/RESULTS.md (section 7)
    python benchmarks/bench_lets.py --sizes 5,10,15      # other sizes (e.g. to time an older engine)

1. Doubling lets: ``let a1 = a0 + a0``, ``let a2 = a1 + a1``, ... read by a `while` rule and an
   `on` rule's condition. Each let is evaluated once per evaluation (memoised), so the
   generated source, the compile time and the cost per event grow linearly with their number
   (they doubled with each let: 22 such lets needed over 3 GB to compile). A chain of more
   than 64 lets is refused (E004), so 80 lets are two chains of 40.
2. A burst: N messages at one instant, then N other events once they have left a
   `count ... within 10s` window. Each event leaves the window once, so the second half costs
   the same per event whatever N is (it rescanned the window: O(N²) in all).
3. Timed `while` rules about another event type (`time since ticket.note[...] < 10m and count
   ... within 1h >= 1`): an event re-evaluates them only once the instant at which one may
   change has come, so they cost an `agent.warn` nothing however many there are.

Times are the best of several runs with ``time.perf_counter`` on a shared machine: read the
growth, not the absolute figures. Standard library and escalation only.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import escalation
from escalation import check_source
from escalation.compile.lower import CompiledPolicy, compile_policy
from escalation.lang.units import US, format_time, parse_time
from escalation.runtime.events import Event, validate
from escalation.runtime.interaction import Interaction

HERE = Path(__file__).resolve().parent
BASE = parse_time("2026-11-22T10:00:00Z")
CHAIN = 40  # lets per chain (the checker refuses chains of more than 64)
MARK = "<!-- bench_lets.py: the section below is written by benchmarks/bench_lets.py --write -->"


def doubling(n: int) -> str:
    """``n`` doubling lets in chains of at most CHAIN, read by a while rule and an on rule's condition."""
    chains = (n + CHAIN - 1) // CHAIN
    lets: list[str] = []
    ends: list[str] = []
    left = n
    for c in range(chains):
        size = left // (chains - c)
        left -= size
        lets.append(f"let c{c}_0 = count agent.warn")
        lets += [f"let c{c}_{i} = c{c}_{i - 1} + c{c}_{i - 1}" for i in range(1, size)]
        ends.append(f"c{c}_{size - 1}")
    total = " + ".join(ends)
    return (
        f'policy "Doubling {n}" version "1"\ndefault forbid agent.hang_up\n' + "\n".join(lets) + "\n"
        f"rule r {{\n  while {total} >= 2\n  permit agent.hang_up\n}}\n"
        f"rule o {{\n  on agent.warn if {total} >= 1\n  require agent.summarize within 1m\n}}\n"
    )


def best(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def _events(policy: CompiledPolicy, specs: list[tuple[int, str, dict[str, Any]]]) -> list[Event]:
    return [validate({"conversation": "c", "time": format_time(BASE + t), "type": e, **a}, policy.vocabulary) for t, e, a in specs]


def per_event_us(policy: CompiledPolicy, events: list[Event], back_end: str, prefix: list[Event] | None = None, runs: int = 5) -> float:
    """Best µs per event to feed ``events`` (after ``prefix``, untimed) to a fresh interaction."""

    def once() -> float:
        inter = Interaction(policy, "c")
        feed = getattr(inter, back_end)
        for event in prefix or ():
            feed(event)
        started = time.perf_counter()
        for event in events:
            feed(event)
        return time.perf_counter() - started

    return min(once() for _ in range(runs)) / len(events) * 1e6


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def lets_table(sizes: list[int]) -> str:
    rows = []
    for n in sizes:
        text = doubling(n)
        result = check_source(text)
        assert result.checked is not None, [d.message for d in result.diagnostics]
        checked = result.checked
        compile_s = best(lambda: compile_policy(checked), 3)  # noqa: B023
        policy = compile_policy(checked)
        kinds = ["agent.warn", "agent.summarize", "agent.hang_up", "customer.message"]  # each obligation is met at once
        events = _events(policy, [(i * US, kinds[i % 4], {}) for i in range(4_000)])
        rows.append(
            [
                f"{n}",
                f"{len(text):,}",
                f"{len(getattr(policy, 'generated', '')):,}",
                f"{compile_s * 1e3:.1f}",
                f"{per_event_us(policy, events, 'feed'):.2f}",
                f"{per_event_us(policy, events, 'feed_interpreted'):.2f}" if hasattr(Interaction, "feed_interpreted") else "",
            ]
        )
    head = ["doubling lets", "policy bytes", "generated chars", "compile ms (best of 3)", "µs/event, generated", "µs/event, closures"]
    return table(head, rows)


BURST_POLICY = """policy "Burst" version "1"
default forbid agent.hang_up
rule busy { while count customer.message within 10s >= 3 forbid agent.hang_up }
rule warned { on agent.warn if count customer.message within 10s >= 1 require agent.summarize within 1m }
"""


def burst_table(sizes: list[int]) -> str:
    result = check_source(BURST_POLICY)
    assert result.checked is not None
    policy = compile_policy(result.checked)
    rows = []
    for n in sizes:
        burst = _events(policy, [(0, "customer.message", {})] * n)
        after = _events(policy, [(11 * US + i, "agent.warn" if i % 2 else "agent.hang_up", {}) for i in range(n)])
        us = per_event_us(policy, after, "feed", prefix=burst, runs=3)
        rows.append([f"{n:,}", f"{us:.2f}", f"{us * n / 1e6:.3f}"])
    return table(["burst N", "µs/event after it, generated", "s for the N events after it"], rows)


TIMED_BASE = """policy "Timed" version "1"
event ticket.note { n: int = 0 }
default forbid agent.hang_up
let warnings = count agent.warn
rule hang_up_after_warnings { while warnings >= 2 permit agent.hang_up }
"""


def timed_table(sizes: list[int]) -> str:
    rows = []
    for n in sizes:
        rules = "".join(
            f"rule quiet_{i} {{ while time since ticket.note[n == {i}] < 10m and count ticket.note[n == {i}] within 1h >= 1 "
            "forbid agent.offer_compensation }\n"
            for i in range(n)
        )
        result = check_source(TIMED_BASE + rules)
        assert result.checked is not None, [d.message for d in result.diagnostics]
        policy = compile_policy(result.checked)
        notes = _events(policy, [(i, "ticket.note", {"n": i}) for i in range(n)])
        warns = _events(policy, [(US + i * 1000, "agent.warn", {}) for i in range(3_000)])
        rows.append([f"{n}", f"{per_event_us(policy, warns, 'feed', prefix=notes):.2f}", f"{per_event_us(policy, warns, 'feed_interpreted', prefix=notes):.2f}"])
    return table(["timed while rules about ticket.note", "µs per agent.warn, generated", "µs per agent.warn, closures"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="5,10,20,40,80", help="numbers of doubling lets (default 5,10,20,40,80)")
    parser.add_argument("--bursts", default="1000,5000,20000", help="burst sizes (default 1000,5000,20000)")
    parser.add_argument("--timed", default="1,30,300", help="numbers of timed while rules (default 1,30,300)")
    parser.add_argument("--write", action="store_true", help="replace section 7 of benchmarks/RESULTS.md with the tables")
    args = parser.parse_args()
    started = time.perf_counter()
    parts = [
        "## 7. Lets read twice, windows after a burst, clocks of other event types",
        "",
        f"Produced by `.venv/bin/python benchmarks/bench_lets.py{' --write' if args.write else ''}` in "
        "{took:.0f} s (not by run.py). "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {platform.platform()}, {os.cpu_count()} cores; "
        f"Python {platform.python_version()}; escalation {escalation.__version__}. Best of several runs; a shared machine.",
        "",
        "**Doubling lets** (`let c0_1 = c0_0 + c0_0`, ...; chains of at most 40, as more than 64 is refused): each let is "
        "evaluated once per evaluation, so source, compile time and cost per event grow linearly. Per event: 4,000 events "
        "(`agent.warn`, `agent.summarize`, `agent.hang_up`, `customer.message` in turn) in one conversation.",
        "",
        lets_table([int(x) for x in args.sizes.split(",")]),
        "",
        "**A burst, then other events** (`count customer.message within 10s`): N messages at one instant, then N "
        "`agent.warn`/`agent.hang_up` 11 s later. Each event leaves the window once: flat per event.",
        "",
        burst_table([int(x) for x in args.bursts.split(",")]),
        "",
        "**Timed `while` rules about another event type**: one `ticket.note` per rule, then 3,000 `agent.warn` within "
        "the next 4 s. No rule's instant comes, so none is evaluated: flat per event.",
        "",
        timed_table([int(x) for x in args.timed.split(",")]),
        "",
    ]
    text = "\n".join(parts).replace("{took:.0f}", f"{time.perf_counter() - started:.0f}")
    print(text)
    if args.write:
        results = HERE / "RESULTS.md"
        current = results.read_text(encoding="utf-8")
        section = f"{MARK}\n{text}"
        if MARK in current:
            head, _, rest = current.partition(MARK)
            tail = rest[rest.find("\n## How to run") :] if "\n## How to run" in rest else ""
            current = head + section + tail
        elif "\n## How to run" in current:
            head, _, rest = current.partition("\n## How to run")
            current = head.rstrip("\n") + "\n\n" + section + "\n## How to run" + rest
        else:
            current = current.rstrip("\n") + "\n\n" + section
        results.write_text(current, encoding="utf-8")
        print(f"wrote {results.relative_to(Path.cwd()) if results.is_relative_to(Path.cwd()) else results}", file=sys.stderr)


if __name__ == "__main__":
    main()
