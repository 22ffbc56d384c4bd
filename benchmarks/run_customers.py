"""benchmarks/run.py's sections of issue 13 (language 2): customer history, customer scale, version 1 no slower.

Each function returns its :class:`Figures` (tables, notes, summary rows, findings), which
run.py turns into a section; they call the stand-alone benchmarks (bench_customers.py,
bench_customer_scale.py, compare_revisions.py), so that a figure here is the figure those print.
"""

from __future__ import annotations

import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import bench_customer_scale
import bench_customers
import compare_revisions

#: The tree before language 2: version-1 policies replay no slower than under it (within 5%).
BEFORE_LANGUAGE_2 = "9da0932"
V1_TARGET = 1.05


@dataclass
class Figures:
    """What a section shows: tables (headers, rows), notes, summary rows and findings."""

    intro: str
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    headline: list[list[str]] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)


def customers(quick: bool) -> Figures:
    """The per-event cost of a policy reading customer history against the same policy without `across contacts`."""
    events, customers_, rounds = (5_000, 200, 2) if quick else (200_000, 2_000, 5)
    times = bench_customers.measure(events=events, customers=customers_, rounds=rounds)
    plain, across = times[bench_customers.PLAIN], times[bench_customers.ACROSS]
    best = min(across) / min(plain)
    paired = bench_customers.paired(times)
    rows = [[name, f"{min(ts) / events * 1e6:.2f}", f"{statistics.median(ts) / events * 1e6:.2f}"] for name, ts in times.items()]
    command = f"python benchmarks/bench_customers.py --events {events} --customers {customers_} --rounds {rounds}"
    fig = Figures(
        f"One seeded stream of {customers_:,} customers × 4 conversations fed in process through interactions bound to their "
        "customers' states, under the same policy with and without `across contacts`, alternating round after round "
        f"(`{command}`). Target (issue 13): at most {bench_customers.TARGET}× per event."
    )
    fig.tables.append((["policy", "best µs/event", "median µs/event"], rows))
    fig.notes.append(f"ratio across/without: best {best:.3f}×, paired (median of the rounds' ratios) {paired:.3f}×")
    fig.headline.append(["7 customers", "µs/event, across contacts vs without", f"{min(across) / events * 1e6:.2f}", f"{min(plain) / events * 1e6:.2f}", f"{paired:.2f}×", f"≤ {bench_customers.TARGET}×"])
    verdict = "meets" if paired <= bench_customers.TARGET else "misses"
    fig.findings.append(f"Reading customer history costs {paired:.2f}× per event (paired; best/best {best:.2f}×): {verdict} the ≤ {bench_customers.TARGET}× target.")
    return fig


def customer_scale(quick: bool, data: Path) -> Figures:
    """Peak RSS of a replay at customer scale: 1M events / 200k conversations / 50k customers over 12 months (--quick: small)."""
    size = bench_customer_scale.QUICK if quick else (1_000_000, 200_000, 50_000)
    run = bench_customer_scale.run(*size, data_dir=data)
    command = "python benchmarks/bench_customer_scale.py" + (" --quick" if quick else "")
    fig = Figures(
        f"`escalation replay` (a child process; peak RSS from wait4) of {size[0]:,} events over {size[1]:,} conversations of "
        f"{size[2]:,} customers spread over 12 months, under a policy counting warnings `within 365d across contacts` (`{command}`). "
        f"Target: peak RSS under {bench_customer_scale.TARGET_MB} MB."
    )
    fig.tables.append((["events", "conversations", "customers", "exit", "wall s", "events/s", "peak RSS MB"], [[
        f"{run.events:,}", f"{run.conversations:,}", f"{run.customers:,}", str(run.code), f"{run.wall:.1f}", f"{run.events / run.wall:,.0f}", f"{run.mb:.0f}",
    ]]))
    fig.notes.append(run.line())
    fig.headline.append(["8 customer scale", f"peak RSS, {run.events:,} events", f"{run.mb:.0f} MB", "", "", f"< {bench_customer_scale.TARGET_MB} MB"])
    fig.findings.append(f"At customer scale ({run.events:,} events, {run.customers:,} customers) the replay peaks at {run.mb:.0f} MB ({'under' if run.ok else 'NOT under'} {bench_customer_scale.TARGET_MB} MB).")
    return fig


def has_revision(rev: str) -> bool:
    """Whether git history holding ``rev`` is here (a source archive has none)."""
    try:
        done = subprocess.run(["git", "-C", str(compare_revisions.ROOT), "cat-file", "-e", f"{rev}^{{commit}}"], capture_output=True, check=False)
    except OSError:
        return False
    return done.returncode == 0


def v1_no_slower(quick: bool) -> Figures:
    """A version-1 policy's replay under this tree against the tree before language 2 (compare_revisions.py)."""
    events, conversations, rounds = (2_000, 100, 1) if quick else (200_000, 5_000, 11)
    command = f"python benchmarks/compare_revisions.py {BEFORE_LANGUAGE_2} --events {events} --conversations {conversations} --rounds {rounds}"
    fig = Figures(
        f"`escalation replay` of benchmarks/three_strikes.esc (a version-1 policy) under {BEFORE_LANGUAGE_2} (the tree before "
        f"language 2) and under this tree, alternating, CPU seconds of each child (`{command}`). Target: within {V1_TARGET:.2f}×. "
        "The logs must match modulo what format /2 adds (each decision's `customer`, the summary's `customers`, the header's `format`)."
    )
    if not has_revision(BEFORE_LANGUAGE_2):
        reason = f"skipped: the git history holding {BEFORE_LANGUAGE_2} is not here"
        print(reason)
        fig.notes.append(reason)
        fig.headline.append(["9 v1 no slower", "replay CPU, new/old", "", "", "skipped", f"≤ {V1_TARGET:.2f}×"])
        return fig
    result = compare_revisions.compare(BEFORE_LANGUAGE_2, None, events=events, conversations=conversations, rounds=rounds)
    cpu = result.cpu
    fig.tables.append((["tree", "CPU best s", "CPU median s"], [
        [name, f"{min(cpu[key]):.2f}", f"{statistics.median(cpu[key]):.2f}"] for key, name in (("old", BEFORE_LANGUAGE_2), ("new", "this tree"))
    ]))
    fig.notes += result.lines()
    paired = result.cpu_paired()
    fig.headline.append(["9 v1 no slower", "replay CPU, this tree vs before language 2", f"{min(cpu['new']):.2f} s", f"{min(cpu['old']):.2f} s", f"{paired:.2f}×", f"≤ {V1_TARGET:.2f}×"])
    verdict = "within" if paired <= V1_TARGET else "NOT within"
    fig.findings.append(f"A version-1 policy replays at {paired:.3f}× the CPU of the tree before language 2 (paired median): {verdict} {V1_TARGET:.2f}×; logs {result.how}: {result.identical}.")
    if not result.identical:
        raise AssertionError(f"the logs of {BEFORE_LANGUAGE_2} and this tree differ beyond the /2 additions")
    return fig
