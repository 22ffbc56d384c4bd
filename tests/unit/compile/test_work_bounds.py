"""Work bounds of the compiler and the per-event evaluation, measured in lines executed and bytes, not time.

- A ``let`` is evaluated once per evaluation however often it is read, so lets that read
  the previous one twice (``let a1 = a0 + a0``, ...) compile to source, and cost work per
  event, linear in their number (they were exponential: 22 such lets needed over 3 GB).
- A ``within`` window drops the events that left it before anything reads it, so a burst
  of N events followed by N others costs the same per event whatever N is (it was O(N)
  per event, O(N²) in all).
- A ``while`` rule that reads the clock is evaluated again only when an event changes what
  it reads or the instant at which its value may change has come: timed rules about other
  event types cost an event nothing.

Every back end is measured: the generated step functions (``feed``), the closures
(``feed_interpreted``) and, for the lets, the reference interpreter.
"""

from __future__ import annotations

import sys
import tracemalloc
from typing import Any

import pytest

from escalation import check_source
from escalation.compile import CompiledPolicy
from escalation.lang.units import US, format_time, parse_time
from escalation.reference import ReferenceInteraction
from escalation.runtime.events import Event, validate
from escalation.runtime.interaction import Interaction
from helpers.policies import WORK_POLICY
from helpers.work_counting import compiled as _compiled
from helpers.work_counting import lines_executed as _lines_executed

BASE = parse_time("2026-11-22T10:00:00Z")
BACK_ENDS = ("feed", "feed_interpreted")


def _event(policy: CompiledPolicy, micros: int, etype: str, **attrs: Any) -> Event:
    return validate({"conversation": "c", "time": format_time(BASE + micros), "type": etype, **attrs}, policy.vocabulary)


# ------------------------------------------------------------------ lets read twice


def doubling(n: int) -> str:
    """``n`` lets, each the previous added to itself, read by a while rule and an on rule's condition."""
    lets = "let a0 = count agent.warn\n" + "".join(f"let a{i} = a{i - 1} + a{i - 1}\n" for i in range(1, n + 1))
    return (
        f'policy "Doubling" version "1"\ndefault forbid agent.hang_up\n{lets}'
        f"rule r {{\n  while a{n} >= 2\n  permit agent.hang_up\n}}\n"
        f"rule o {{\n  on agent.warn if a{n} >= 1\n  require agent.summarize within 1m\n}}\n"
    )


def test_doubling_lets_compile_to_source_linear_in_their_number() -> None:
    size = {n: len(_compiled(doubling(n)).generated) for n in (5, 10, 15)}
    per_let = (size[15] - size[5]) / 10
    assert per_let <= 300, size  # each let adds a bounded amount of source (it doubled it)
    for n in (22, 60):
        tracemalloc.start()
        try:
            policy = _compiled(doubling(n))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(policy.generated) <= size[5] + (n - 5) * 300, (n, len(policy.generated))
        assert peak < 32 * 2**20, f"compiling {n} doubling lets took a peak of {peak / 2**20:.1f} MB"


def _let_work(n: int, back_end: str) -> int:
    """Lines to feed one `agent.warn` (and so evaluate a{n} twice) after one earlier warning."""
    policy = _compiled(doubling(n))
    if back_end == "reference":
        checked = check_source(doubling(n)).checked
        assert checked is not None
        ref = ReferenceInteraction(checked, "c")
        ref.feed(_event(policy, 0, "agent.warn"))
        warning = _event(policy, US, "agent.warn")
        return _lines_executed(lambda: ref.feed(warning))
    assert len(policy.generated) < 100_000, f"{len(policy.generated):,} characters of source for {n} lets"
    inter = Interaction(policy, "c")
    getattr(inter, back_end)(_event(policy, 0, "agent.warn"))
    warning = _event(policy, US, "agent.warn")
    return _lines_executed(lambda: getattr(inter, back_end)(warning))


@pytest.mark.parametrize("back_end", [*BACK_ENDS, "reference"])
def test_doubling_lets_cost_work_per_event_linear_in_their_number(back_end: str) -> None:
    work = {n: _let_work(n, back_end) for n in (4, 8, 16)}
    assert work[16] - work[8] <= 2.5 * (work[8] - work[4]) + 10, work  # linear doubles the difference; exponential squares it
    work.update({n: _let_work(n, back_end) for n in (30, 60)})
    per_let = (work[16] - work[4]) / 12
    assert work[60] - work[30] <= 1.25 * 30 * per_let + 10, work


# ------------------------------------------------------------------ windows after a burst

BURST_POLICY = """policy "Burst" version "1"
default forbid agent.hang_up
rule busy {
  while count customer.message within 10s >= 3
  forbid agent.hang_up
}
rule calm {
  while count customer.message within 10s == 0
  permit agent.hang_up
}
rule warned {
  on agent.warn if count customer.message within 10s >= 1
  require agent.summarize within 1m
}
rule noted {
  on agent.apologize[count customer.message within 10s >= 1]
  require agent.follow_up within 1m
}
"""


def _after_a_burst(policy: CompiledPolicy, back_end: str, n: int) -> dict[str, int]:
    """N messages at one instant, then, 11 s later when they have all left the window, N other events;
    the lines executed by one more event of each type."""
    inter = Interaction(policy, "c")
    feed = getattr(inter, back_end)
    message = _event(policy, 0, "customer.message")
    for _ in range(n):
        feed(message)
    later = ["agent.warn", "agent.hang_up", "agent.apologize", "agent.summarize"]
    for i in range(n):
        feed(_event(policy, 11 * US + i, later[i % len(later)]))
    work = {}
    for k, etype in enumerate(later):
        event = _event(policy, 12 * US + k, etype)
        work[etype] = _lines_executed(lambda: feed(event))  # noqa: B023
    return work


@pytest.mark.parametrize("back_end", BACK_ENDS)
def test_work_per_event_after_a_burst_does_not_grow_with_the_burst(back_end: str) -> None:
    policy = _compiled(BURST_POLICY)
    few, many = _after_a_burst(policy, back_end, 100), _after_a_burst(policy, back_end, 2_000)
    assert few == many, f"{few} lines after a burst of 100, {many} after 2,000"


# ------------------------------------------------------------------ timed while rules about other events

TIMED_BASE = WORK_POLICY


def _timed_rules(n: int) -> str:
    """``n`` while rules reading the clock through `ticket.note` only."""
    return "".join(
        f"rule quiet_{i} {{\n  while time since ticket.note[n == {i}] < 10m and count ticket.note[n == {i}] within 1h >= 1\n"
        f"  forbid agent.offer_compensation\n}}\n"
        for i in range(n)
    )


def _work_of_a_warning(policy: CompiledPolicy, back_end: str, rules: int) -> int:
    inter = Interaction(policy, "c")
    feed = getattr(inter, back_end)
    for i in range(rules):  # each timed rule has a note: its clock is running
        feed(_event(policy, i, "ticket.note", n=i))
    for i in range(10):
        feed(_event(policy, (i + 1) * US, "customer.message" if i % 2 else "agent.warn", **({"abuse": "profanity"} if i % 2 else {})))
    assert len(inter.active) == rules + 1  # every quiet_i holds, and the hang-up rule
    warning = _event(policy, 60 * US, "agent.warn")
    return _lines_executed(lambda: feed(warning))


@pytest.mark.parametrize("back_end", BACK_ENDS)
def test_work_per_event_does_not_depend_on_timed_rules_about_other_events(back_end: str) -> None:
    few = _work_of_a_warning(_compiled(TIMED_BASE + _timed_rules(1)), back_end, 1)
    many = _work_of_a_warning(_compiled(TIMED_BASE + _timed_rules(300)), back_end, 300)
    assert few == many, f"{few} lines with 1 timed rule about ticket.note, {many} with 300"


def test_timed_rules_are_evaluated_again_once_their_instant_has_come() -> None:
    """After 10 minutes `time since ticket.note < 10m` turns false: the next event, of any type, sees it."""
    policy = _compiled(TIMED_BASE + _timed_rules(3))
    for back_end in BACK_ENDS:
        inter = Interaction(policy, "c")
        feed = getattr(inter, back_end)
        feed(_event(policy, 0, "ticket.note", n=1))
        assert "quiet_1" in feed(_event(policy, 600 * US - 1, "agent.warn")).active
        assert "quiet_1" not in feed(_event(policy, 600 * US, "agent.warn")).active


def test_the_lets_benchmark_runs() -> None:
    """benchmarks/bench_lets.py (the figures of benchmarks/RESULTS.md section 7) runs and prints its three tables."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    args = ["--sizes", "5,10", "--bursts", "100", "--timed", "1,2"]
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_lets.py"), *args], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for head in ("| doubling lets |", "| burst N |", "| timed while rules about ticket.note |"):
        assert head in proc.stdout


@pytest.mark.parametrize("back_end", BACK_ENDS)
def test_a_query_after_a_burst_neither_walks_nor_changes_the_window(back_end: str) -> None:
    """`permissions(now)` later than the last event reads the window without dropping from it, and without walking it."""
    policy = _compiled(BURST_POLICY)

    def query(n: int) -> tuple[int, int, tuple[tuple[str, ...], tuple[str, ...]]]:
        inter = Interaction(policy, "c")
        message = _event(policy, 0, "customer.message")
        for _ in range(n):
            getattr(inter, back_end)(message)
        answer: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        inter.permissions(BASE + 11 * US)  # fills the policy's cache of permissions
        lines = _lines_executed(lambda: answer.append(inter.permissions(BASE + 11 * US)))
        assert len(inter.state[0]) == n  # a query leaves the state as it was
        return lines, len(answer), answer[0]

    few, many = query(100), query(2_000)
    assert few == many and "agent.hang_up" in few[2][0], (few, many)
