"""The escalation benchmarks: one command, a table, and benchmarks/RESULTS.md.

    python benchmarks/run.py                 # the full run (a few minutes), writes benchmarks/RESULTS.md
    python benchmarks/run.py --quick         # a small smoke run (seconds), writes benchmarks/.data/RESULTS-partial.md
    python benchmarks/run.py --only feed     # one section: replay, feed, decision, startup, profile, scale, customers, customer-scale, v1 (or 1-9)

Sections (every figure is a ratio taken side by side in one run, with the
contenders alternating, because the machines are shared and noisy):

1. replay   — `escalation replay POLICY EVENTS -o OUT` (a subprocess) against the I/O floor
              (benchmarks/floor.py: read, parse, write a hash-chained record of the same shape,
              no policy logic), with the standard json module and with orjson.
2. feed     — in-process `Session.feed` over the same stream against a hand-written plain-Python
              implementation of the same policy (benchmarks/handwritten.py), which must find the
              same violations.
3. decision — the cost of one "is agent.hang_up permitted now?" given the same state: ours, an
              if-expression, and the peers (benchmarks/peers.py; those not installed are noted).
4. startup  — load (parse + check + compile) time for 10, 100 and 1,000 rules, and the per-event
              cost as rules are added that listen to events that never occur, and as `while`
              rules are added.
5. profile  — cProfile of an in-process replay: the 15 functions with the most own time.
6. scale    — a million generated events over 40,000 conversations: serial `escalation replay` (wall
              time and peak RSS) against `--jobs 2` (same output, byte for byte), alternating, and the
              throughput of a Dask local cluster (`--dask local`) beside them when Dask is installed.
7. customers — a policy reading customer history (`across contacts`) against the same policy without,
              per event (benchmarks/bench_customers.py; target ≤ 1.3×).
8. customer-scale — peak RSS of a replay of 1M events / 200k conversations / 50k customers over 12
              months (benchmarks/bench_customer_scale.py; target < 400 MB; --quick: a small size).
9. v1       — a version-1 policy's replay under this tree against the tree before language 2
              (benchmarks/compare_revisions.py 9da0932; target within 5%; skipped without git history).

Generated inputs are cached in benchmarks/.data (git-ignored). The peers are not dependencies
of the project: `pip install -r benchmarks/requirements.txt` into the virtualenv to include them.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import datetime
import filecmp
import functools
import gc
import importlib.metadata
import importlib.util
import itertools
import json
import os
import platform
import pstats
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import timeit
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import gen_events  # noqa: E402
import handwritten  # noqa: E402
import peers  # noqa: E402
import run_customers  # noqa: E402

import escalation  # noqa: E402

SECTIONS = ("replay", "feed", "decision", "startup", "profile", "scale", "customers", "customer-scale", "v1")
ALIASES = {str(i): name for i, name in enumerate(SECTIONS, 1)}
POLICY = HERE / "three_strikes.esc"
SEED = 2026
HANG_UP = "agent.hang_up"


@dataclass(frozen=True)
class Config:
    quick: bool
    data: Path
    events: int
    conversations: int
    replay_rounds: int
    feed_rounds: int
    decision_rounds: int
    decision_seconds: float  # timed per contender and round
    startup_sizes: tuple[int, ...]
    startup_runs: int
    scale_sizes: tuple[int, ...]
    scale_events: int
    scale_rounds: int
    profile_events: int
    big_events: int = 1_000_000
    big_conversations: int = 40_000
    big_rounds: int = 3


def make_config(quick: bool, data: Path) -> Config:
    if quick:
        return Config(True, data, 2_000, 50, 1, 2, 2, 0.005, (10, 50), 1, (10, 50), 500, 1, 2_000, 20_000, 800, 1)
    return Config(False, data, 200_000, 5_000, 3, 3, 5, 0.2, (10, 100, 1000), 3, (10, 100, 1000), 5_000, 3, 50_000)


# -- tables ------------------------------------------------------------------------------------


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    title: str = ""

    def text(self) -> str:
        cells = [self.headers, *self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.headers))]

        def line(row: list[str]) -> str:
            return "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row))

        out = [line(self.headers), "  ".join("-" * w for w in widths), *(line(r) for r in self.rows)]
        return "\n".join(([self.title] if self.title else []) + out)

    def markdown(self) -> str:
        out = ["| " + " | ".join(self.headers) + " |", "|" + "|".join([":---"] + ["---:"] * (len(self.headers) - 1)) + "|"]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in self.rows]
        return "\n".join(([f"**{self.title}**", ""] if self.title else []) + out)


@dataclass
class Section:
    key: str
    title: str
    intro: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    headline: list[list[str]] = field(default_factory=list)  # rows of the summary table
    findings: list[str] = field(default_factory=list)  # sentences for the interpretation
    failed: str | None = None


SUMMARY_HEADERS = ["section", "measure", "escalation", "baseline", "ratio (time: ours / baseline)", "target"]


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b > 0 else "n/a"


def us(seconds: float) -> str:
    v = seconds * 1e6
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:,.0f}"


def per_s(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if seconds > 0 else "n/a"


def med(xs: Iterable[float]) -> float:
    return statistics.median(list(xs))


def rel(path: Path | str) -> str:
    p = Path(os.path.abspath(path))
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def escalation_command() -> list[str]:
    """The installed `escalation` beside this interpreter, else `python -m escalation`."""
    candidate = Path(sys.executable).with_name("escalation")
    if candidate.exists():
        return [str(candidate)]
    return [sys.executable, "-m", "escalation"]


def show_cmd(cmd: list[str]) -> str:
    return " ".join(shlex.quote(rel(c) if os.sep in c else c) for c in cmd)


def collect() -> None:
    gc.collect()


class BenchError(Exception):
    pass


# -- shared inputs -----------------------------------------------------------------------------


class Inputs:
    """The generated stream, its parsed records and facts found by one section for another."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._events: Path | None = None
        self._records: list[dict[str, Any]] | None = None
        self.replay_by_kind: dict[str, int] | None = None

    def events(self) -> Path:
        if self._events is None:
            started = time.perf_counter()
            self._events = gen_events.ensure(self.cfg.data, self.cfg.events, self.cfg.conversations, SEED)
            took = time.perf_counter() - started
            if took > 0.5:
                print(f"generated {rel(self._events)} in {took:.1f} s", file=sys.stderr)
        return self._events

    def records(self) -> list[dict[str, Any]]:
        if self._records is None:
            with self.events().open("rb") as fh:
                self._records = [json.loads(line) for line in fh]
        return self._records


# -- 1. full replay against the I/O floor ------------------------------------------------------


def run_process(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one subprocess, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise BenchError(f"`{show_cmd(cmd)}` exited {proc.returncode}: {proc.stderr.decode(errors='replace').strip()[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def has_orjson() -> bool:
    return importlib.util.find_spec("orjson") is not None


ENGINE_JSON_PROBE = """
import runpy, sys
sys.argv = ["escalation", "replay", *sys.argv[1:]]
try:
    runpy.run_module("escalation", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
print("engine-json:", "orjson" if "orjson" in sys.modules else "json")
"""


def engine_json(events: Path, out: Path) -> str:
    """Which JSON library a CLI replay loads ("orjson" or "json"), from a replay of a few events."""
    probe_in = out.with_name("probe-events.jsonl")
    with events.open("rb") as src, probe_in.open("wb") as dst:
        dst.writelines(itertools.islice(src, 20))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", ENGINE_JSON_PROBE, rel(POLICY), rel(probe_in), "-o", rel(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        probe_in.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
    for line in proc.stdout.splitlines():
        if line.startswith("engine-json:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def section_replay(cfg: Config, inputs: Inputs) -> Section:
    sec = Section(
        "replay",
        "1. Full replay against the I/O floor",
        f"`escalation replay` of {cfg.events:,} generated events over {cfg.conversations:,} interleaved conversations "
        "(three-strikes policy, JSON Lines in, hash-chained audit log out, as a subprocess: interpreter start-up and "
        "policy load included) against `benchmarks/floor.py`, which digests the input, reads and parses each line and "
        "writes one hash-chained record with the keys of a decision record (canonical JSON: sort_keys, compact "
        "separators, ensure_ascii=False; SHA-256 chain) and no policy logic. Runs alternate floor, ours, orjson floor "
        f"(when orjson is installed); {cfg.replay_rounds} round{'s' if cfg.replay_rounds != 1 else ''}. Wall times; "
        "CPU = user + system time of the process.",
    )
    events = inputs.events()
    out_floor, out_orjson, out_ours = (cfg.data / f"out-{n}.jsonl" for n in ("floor", "floor-orjson", "ours"))
    floor_cmd = [sys.executable, str(HERE / "floor.py"), rel(events), "-o", rel(out_floor)]
    contenders: list[tuple[str, list[str], Path]] = [("floor (json)", floor_cmd, out_floor)]
    contenders.append(
        ("escalation replay", [*escalation_command(), "replay", rel(POLICY), rel(events), "-o", rel(out_ours)], out_ours)
    )
    if has_orjson():
        contenders.append(("floor (orjson)", [*floor_cmd[:-1], rel(out_orjson), "--json", "orjson"], out_orjson))
    else:
        sec.notes.append(
            "orjson is not installed: the orjson floor was skipped (`pip install orjson`, the project's `fast` extra)."
        )
    walls: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
    cpus: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
    sizes: dict[str, int] = {}
    engine_lib = engine_json(events, out_ours)
    try:
        for r in range(cfg.replay_rounds):
            for name, cmd, out in contenders:
                collect()
                wall, cpu = run_process(cmd)
                walls[name].append(wall)
                cpus[name].append(cpu)
                sizes[name] = out.stat().st_size
            print(
                f"  replay round {r + 1}/{cfg.replay_rounds}: " + ", ".join(f"{n} {walls[n][-1]:.2f} s" for n in walls),
                file=sys.stderr,
            )
        # the replay did what it should: every event accepted, a summary at the end
        with out_ours.open("rb") as fh:
            fh.seek(max(0, sizes["escalation replay"] - 4096))
            summary = json.loads(fh.read().splitlines()[-1])
        if summary.get("kind") != "summary" or summary.get("events") != cfg.events or summary.get("rejected") != 0:
            raise BenchError(f"the replay's summary is not what the benchmark expects: {summary}")
        inputs.replay_by_kind = summary.get("by_kind")
        sec.notes.append(
            f"The replay accepted all {summary['events']:,} events ({summary['conversations']:,} conversations) and found "
            f"{summary['violations']:,} violations ({', '.join(f'{k} {v:,}' for k, v in summary['by_kind'].items())}); "
            f"{summary['open_obligations']:,} obligations stay open."
        )
        sec.notes.append(f"Commands: `{show_cmd(contenders[0][1])}`; `{show_cmd(contenders[1][1])}`.")
        extra = sizes["escalation replay"] / sizes["floor (json)"] - 1
        sec.notes.append(
            f"The replay's audit log is {100 * extra:.0f}% larger than the floor's (its records carry the violations, "
            "fulfilled and created obligations, fired and active rules that the floor leaves empty)."
        )
    finally:
        for _, _, out in contenders:
            out.unlink(missing_ok=True)

    n = cfg.events
    t = Table(["run", "best s", "median s", "events/s (best)", "median CPU s", "audit MB", "bytes/record"])
    for name, _, _ in contenders:
        t.rows.append(
            [
                name,
                f"{min(walls[name]):.2f}",
                f"{med(walls[name]):.2f}",
                per_s(n, min(walls[name])),
                f"{med(cpus[name]):.2f}",
                f"{sizes[name] / 1e6:.1f}",
                f"{sizes[name] / (n + 2):.0f}",
            ]
        )
    sec.tables.append(t)
    ours = "escalation replay"
    rt = Table(["ratio", "best (wall)", "median (wall)", "median of paired rounds", "median CPU"], title="Ratios")
    for floor in [name for name, _, _ in contenders if name != ours]:
        paired = med(o / f for o, f in zip(walls[ours], walls[floor], strict=True))
        cpu_ratio = med(cpus[ours]) / med(cpus[floor])
        rt.rows.append(
            [
                f"escalation / {floor}",
                ratio(min(walls[ours]), min(walls[floor])),
                ratio(med(walls[ours]), med(walls[floor])),
                f"{paired:.2f}×",
                ratio(med(cpus[ours]), med(cpus[floor])),
            ]
        )
        like = (floor == "floor (orjson)") == (engine_lib == "orjson")
        target = "≤ 2.0× (aim 1.3×)" + (", like for like" if like and "floor (orjson)" in walls else "")
        sec.headline.append(
            [
                "1 replay",
                f"events/s vs {floor}",
                per_s(n, med(walls[ours])),
                per_s(n, med(walls[floor])),
                f"{med(walls[ours]) / med(walls[floor]):.2f}× (CPU {cpu_ratio:.2f}×)",
                target,
            ]
        )
    sec.tables.append(rt)

    def verdict(r: float) -> str:
        return "meets the aim of 1.3×" if r <= 1.3 else "meets the target of 2.0×" if r <= 2.0 else "misses the target of 2.0×"

    floors = [name for name, _, _ in contenders if name != ours]
    parts = []
    for floor in floors:
        rw, rc = med(walls[ours]) / med(walls[floor]), med(cpus[ours]) / med(cpus[floor])
        parts.append(f"{rw:.2f}× the {floor} in median wall time ({rc:.2f}× in CPU time), which {verdict(max(rw, rc))}")
    like_floor = "floor (orjson)" if engine_lib == "orjson" and "floor (orjson)" in walls else "floor (json)"
    sec.findings.append(
        "Full replay: " + "; ".join(parts) + ". "
        f"The engine's replay loads {engine_lib} for its JSON here, so the like-for-like comparison is the {like_floor}."
        + (
            f" The floor itself is {med(walls['floor (json)']) / med(walls['floor (orjson)']):.1f}× faster with orjson than "
            "with the json module."
            if "floor (orjson)" in walls
            else ""
        )
    )
    sec.notes.append(f"A replay of a few events shows which JSON library the engine loads: {engine_lib}.")
    return sec


# -- 2. in-process feed against the hand-written implementation --------------------------------


def violation_key(v: Any) -> tuple[str, str]:
    return (v.kind, v.rule)


def ours_counts(policy: escalation.Policy, items: Iterable[tuple[str, Any]]) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    sessions: dict[str, escalation.Session] = {}
    for cid, event in items:
        s = sessions.get(cid)
        if s is None:
            s = sessions[cid] = policy.start(cid)
        for v in s.feed(event).violations:
            counts[violation_key(v)] += 1
    return counts


def handwritten_counts(records: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    replay = handwritten.Replay()
    for r in records:
        for kind, rule, _ in replay.feed_record(r)[0]:
            counts[(kind, rule)] += 1
    return counts


def validated_events(policy: escalation.Policy, records: list[dict[str, Any]]) -> list[Any]:
    """Pre-validated `escalation.runtime.events.Event` objects (internal API: the caller copes with its absence)."""
    from escalation.runtime.events import validate

    vocabulary = policy.compiled.vocabulary
    return [validate(r, vocabulary) for r in records]


def time_once(fn: Callable[[], object]) -> float:
    collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class Runs:
    """Wall and CPU seconds of repeated runs of one contender (divided by ``per`` when read)."""

    per: int = 1
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def run(self, fn: Callable[[], object], gc_off: bool = False) -> float:
        collect()
        if gc_off:
            gc.disable()
        try:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            fn()
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        finally:
            gc.enable()
        self.wall.append(wall)
        self.cpu.append(cpu)
        return wall / self.per

    @property
    def best(self) -> float:
        return min(self.wall) / self.per

    @property
    def median(self) -> float:
        return med(self.wall) / self.per

    @property
    def cpu_median(self) -> float:
        return med(self.cpu) / self.per

    def vs(self, other: Runs) -> tuple[float, float]:
        """(median wall ratio, median CPU ratio) of self to other."""
        return self.median / other.median, self.cpu_median / other.cpu_median


def section_feed(cfg: Config, inputs: Inputs) -> Section:
    n = cfg.events
    sec = Section(
        "feed",
        "2. In-process feed against hand-written Python",
        f"The same {n:,} events, parsed from JSON beforehand, fed to one state per conversation: ours through "
        "`Session.feed(dict)` (which validates the record and parses its time) and through `Session.feed(Event)` with "
        "events validated beforehand; the baseline `benchmarks/handwritten.py` (the three-strikes policy written "
        "directly with ints, flags, tuples and lists: the same state, the hang-up permission, obligations with "
        "deadlines and `before`, the same violations) fed the same dicts (parsing the time itself) and pre-parsed "
        f"`(conversation, time in µs, type, attrs)`. Both return what changed at each event. {cfg.feed_rounds} rounds, "
        "alternating; the garbage collector stays on, as in a service.",
    )
    policy = escalation.load(str(POLICY))
    records = inputs.records()
    pre = [(r["conversation"], handwritten.parse_time(r["time"]), r["type"], r) for r in records]
    try:
        events = validated_events(policy, records)
        event_items: list[tuple[str, Any]] | None = [(e.conversation, e) for e in events]
    except Exception as err:  # the internal API moved: report, do not fail
        event_items = None
        sec.notes.append(f"`Session.feed(Event)` was not measured: pre-validating events failed ({type(err).__name__}: {err}).")

    # the baseline must be right, or the ratio means nothing
    theirs = handwritten_counts(records)
    mine = ours_counts(policy, ((r["conversation"], r) for r in records))
    if mine != theirs:
        raise BenchError(
            f"the hand-written baseline disagrees with the engine on violations by kind and rule: engine {dict(mine)}, hand-written {dict(theirs)}"
        )
    if event_items is not None:  # the pre-validated path, on a prefix (it is the same evaluator)
        head = records[:20_000]
        if ours_counts(policy, event_items[: len(head)]) != ours_counts(policy, ((r["conversation"], r) for r in head)):
            raise BenchError("Session.feed(Event) finds other violations than Session.feed(dict)")
    by_kind = Counter[str]()
    for (kind, _rule), c in mine.items():
        by_kind[kind] += c
    sec.notes.append(
        "Checked before timing: both find the same violations by kind and rule over the whole stream ("
        + ", ".join(f"{k} {by_kind[k]:,}" for k in sorted(by_kind))
        + ")."
    )
    if inputs.replay_by_kind is not None:
        same = all(inputs.replay_by_kind.get(k, 0) == by_kind.get(k, 0) for k in set(inputs.replay_by_kind) | set(by_kind))
        sec.notes.append(
            "They agree with the summary of the replay in section 1."
            if same
            else f"They DIFFER from the replay's summary in section 1: {inputs.replay_by_kind}."
        )

    def hand_dicts() -> None:
        feed = handwritten.Replay().feed_record
        for r in records:
            feed(r)

    def hand_pre() -> None:
        feed = handwritten.Replay().feed
        for cid, t, etype, attrs in pre:
            feed(cid, t, etype, attrs)

    def ours_dicts() -> None:
        sessions: dict[str, escalation.Session] = {}
        start = policy.start
        for r in records:
            cid = r["conversation"]
            s = sessions.get(cid)
            if s is None:
                s = sessions[cid] = start(cid)
            s.feed(r)

    def ours_events() -> None:
        assert event_items is not None
        sessions: dict[str, escalation.Session] = {}
        start = policy.start
        for cid, e in event_items:
            s = sessions.get(cid)
            if s is None:
                s = sessions[cid] = start(cid)
            s.feed(e)

    runs: list[tuple[str, str, Callable[[], None]]] = [
        ("hand-written", "dicts (parses the time)", hand_dicts),
        ("escalation Session.feed", "dicts (validates)", ours_dicts),
        ("hand-written", "pre-parsed tuples", hand_pre),
    ]
    if event_items is not None:
        runs.append(("escalation Session.feed", "pre-validated Event", ours_events))
    times = [Runs(n) for _ in runs]
    for r in range(cfg.feed_rounds):
        took = [times[i].run(fn) for i, (_, _, fn) in enumerate(runs)]
        print(f"  feed round {r + 1}/{cfg.feed_rounds}: " + ", ".join(f"{us(x)} µs" for x in took), file=sys.stderr)

    def rel_to(i: int, j: int) -> str:
        w, c = times[i].vs(times[j])
        return f"{w:.2f}× / {c:.2f}×"

    t = Table(
        [
            "implementation",
            "input",
            "best µs/event",
            "median µs/event",
            "median CPU µs/event",
            "events/s (best)",
            "× hand-written, same input (median wall / CPU)",
        ]
    )
    for i, (name, inp, _) in enumerate(runs):
        baseline = {1: 0, 3: 2}.get(i)
        t.rows.append(
            [
                name,
                inp,
                us(times[i].best),
                us(times[i].median),
                us(times[i].cpu_median),
                per_s(1, times[i].best),
                rel_to(i, baseline) if baseline is not None else "1 (baseline)",
            ]
        )
    sec.tables.append(t)
    r_dict, c_dict = times[1].vs(times[0])
    sec.headline.append(
        ["2 feed", "µs/event, dicts", us(times[1].median), us(times[0].median), f"{r_dict:.2f}× (CPU {c_dict:.2f}×)", "≤ 3×"]
    )
    if event_items is not None:
        r_ev, c_ev = times[3].vs(times[2])
        sec.headline.append(
            [
                "2 feed",
                "µs/event, pre-validated",
                us(times[3].median),
                us(times[2].median),
                f"{r_ev:.2f}× (CPU {c_ev:.2f}×)",
                "≤ 3×",
            ]
        )
        sec.findings.append(
            f"In-process feed: {r_dict:.2f}× the hand-written code on dicts and {r_ev:.2f}× on pre-validated events "
            f"(target ≤ 3×: {'met' if max(r_dict, r_ev) <= 3 else 'met on ' + ('dicts' if r_dict <= 3 else 'pre-validated events') if min(r_dict, r_ev) <= 3 else 'not met'}). "
            f"Validation and time parsing cost {us(times[1].median - times[3].median)} µs of the {us(times[1].median)} µs per event."
        )
    else:
        sec.findings.append(
            f"In-process feed: {r_dict:.2f}× the hand-written code on dicts (target ≤ 3×: {'met' if r_dict <= 3 else 'not met'})."
        )
    return sec


# -- 3. per-decision cost against the peers ----------------------------------------------------


def events_for(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Events that bring the three-strikes policy's state to ``state``."""
    out: list[dict[str, Any]] = [{"type": "customer.message", "abuse": "threat"} for _ in range(state["threat_count"])]
    for _ in range(state["warnings"]):
        out += [{"type": "customer.message", "abuse": "insult"}, {"type": "agent.warn"}]
    since = state["abuse_since_warning"] - (state["threat_count"] if state["warnings"] == 0 else 0)
    out += [{"type": "customer.message", "abuse": "insult"} for _ in range(since)]
    if state["asked_for_supervisor"]:
        out.append({"type": "customer.requests_supervisor"})
    if state["escalated"]:
        out.append({"type": "agent.escalate", "to": "supervisor"})
    return [dict(e, time=f"2026-11-22T10:{i // 60:02d}:{i % 60:02d}Z") for i, e in enumerate(out)]


def session_in(policy: escalation.Policy, state: dict[str, Any], cid: str) -> tuple[escalation.Session, Any]:
    s = policy.start(cid)
    decision = None
    for e in events_for(state):
        decision = s.feed(e)
    return s, decision


def calls_for(timer: timeit.Timer, seconds: float) -> int:
    """How many calls take about ``seconds`` (doubling until a tenth of that is reached, then scaling)."""
    number = 1
    while True:
        took = timer.timeit(number)
        if took >= seconds / 10 or number >= 1 << 24:
            return max(1, round(number * seconds / max(took, 1e-9)))
        number *= 2


def section_decision(cfg: Config, inputs: Inputs) -> Section:
    sec = Section(
        "decision",
        "3. One decision against the peers",
        '"Is `agent.hang_up` permitted now?" given the same state (2 warnings, 1 abusive message since the last, '
        "the customer asked for a supervisor and was put through, no threat), so that every clause is looked at. "
        'Ours: a `Session` brought to that state by feeding events, then `session.permitted("agent.hang_up")` '
        "(evaluates the `while` rules at the current time), the answer already in the last `Decision`, and the cost "
        "of one more `feed` (a calm message, which changes no count). The peers express the same rule in their own "
        "language (benchmarks/peers.py), parsed or compiled once; every contender's answers are checked on five "
        f"states first. timeit, {cfg.decision_rounds} rounds of about {cfg.decision_seconds:g} s per contender, "
        "alternating; best and median per call.",
    )
    policy = escalation.load(str(POLICY))
    for k, (state, expected) in enumerate(peers.CHECKS):
        s, d = session_in(policy, state, f"check-{k}")
        if s.permitted(HANG_UP) != expected or d.permitted(HANG_UP) != expected:
            raise BenchError(f"the engine answers {s.permitted(HANG_UP)} for {state}, expected {expected}")
    session, decision = session_in(policy, peers.TIMED_STATE, "timed")
    last_time = events_for(peers.TIMED_STATE)[-1]["time"]
    calm = {"time": last_time, "type": "customer.message"}
    contenders: list[tuple[str, Callable[[], object]]] = [
        ("escalation: Session.permitted", lambda: session.permitted(HANG_UP)),
        ("escalation: Decision.permitted (last decision)", lambda: decision.permitted(HANG_UP)),
        ("escalation: one Session.feed(dict)", lambda: session.feed(calm)),
    ]
    try:
        calm_event = validated_events(policy, [dict(calm, conversation="timed")])[0]
        contenders.append(("escalation: one Session.feed(Event)", lambda: session.feed(calm_event)))
    except Exception as err:
        sec.notes.append(f"One `Session.feed(Event)` was not measured ({type(err).__name__}: {err}).")
    plain = peers.make_plain()
    state = dict(peers.TIMED_STATE)
    contenders.append(("plain Python (an if-expression)", lambda: plain(state)))
    versions: dict[str, str] = {}
    for name, package, make in peers.PEERS:
        try:
            versions[name] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            sec.notes.append(f"{name}: not installed (`pip install -r benchmarks/requirements.txt`).")
            continue
        try:
            decide = make()
            wrong = [(st, exp) for st, exp in peers.CHECKS if decide(dict(st)) is not exp]
        except Exception as err:
            sec.notes.append(f"{name} {versions[name]}: failed to set up or run: {type(err).__name__}: {err}".rstrip())
            continue
        if wrong:
            sec.notes.append(f"{name} {versions[name]}: gave wrong answers on {wrong}; left out of the table.")
            continue
        contenders.append((f"{name} {versions[name]}", functools.partial(decide, state)))

    timers = []
    for name, fn in contenders:
        timer = timeit.Timer(fn)
        timers.append((name, timer, calls_for(timer, cfg.decision_seconds)))
    times: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for r in range(cfg.decision_rounds):
        for name, timer, calls in timers:
            collect()
            times[name].append(timer.timeit(calls) / calls)
        print(f"  decision round {r + 1}/{cfg.decision_rounds}", file=sys.stderr)
    base = "escalation: Session.permitted"
    t = Table(["contender", "best µs/call", "median µs/call", "calls per round", "× ours (Session.permitted), median"])
    for name, _, calls in timers:
        t.rows.append([name, us(min(times[name])), us(med(times[name])), f"{calls:,}", ratio(med(times[name]), med(times[base]))])
    sec.tables.append(t)
    ours_us = med(times[base])
    peer_names = [name for name, _ in contenders if not name.startswith(("escalation", "plain"))]
    if peer_names:
        fastest = min(peer_names, key=lambda p: med(times[p]))
        slower = med(times[fastest]) / ours_us
        sec.headline.append(
            [
                "3 decision",
                f"µs/decision vs fastest peer ({fastest.split()[0]})",
                us(ours_us),
                us(med(times[fastest])),
                f"{ours_us / med(times[fastest]):.2f}×",
                "fastest by a wide margin",
            ]
        )
        sec.findings.append(
            f"One decision: {us(ours_us)} µs for `Session.permitted` against {us(med(times[fastest]))} µs for the fastest peer "
            f"({fastest}), which is {slower:.1f}× slower than ours; the answer kept in the last `Decision` costs "
            f"{us(med(times['escalation: Decision.permitted (last decision)']))} µs, the if-expression "
            f"{us(med(times['plain Python (an if-expression)']))} µs. One whole `feed` costs "
            f"{us(med(times['escalation: one Session.feed(dict)']))} µs."
        )
    else:
        sec.headline.append(["3 decision", "µs/decision (no peer installed)", us(ours_us), "", "", "fastest by a wide margin"])
        sec.findings.append(f"One decision: {us(ours_us)} µs; no peer could be measured.")
    return sec


# -- 4. start-up and scaling with the rule count -----------------------------------------------


def extra_on_rules(count: int) -> str:
    """``count`` `on` rules, each on its own declared event type, which the stream never holds."""
    out = []
    for g in range(count):
        out += [
            f"event ticket.update_{g} {{ priority: low | normal | high | urgent = normal, minutes: int = 0 }}",
            "",
            f"rule ticket_{g} {{",
            f"  on ticket.update_{g}[priority in {{high, urgent}} and minutes >= {g % 30}] if count ticket.update_{g} >= {1 + g % 3}",
            f"  require agent.summarize within {5 + g % 30}m",
            "  severity low",
            "}",
            "",
        ]
    return "\n".join(out)


def extra_while_rules(count: int) -> str:
    """``count`` `while` rules over the policy's own counts (true now and then, in a stream of this policy)."""
    out = []
    for g in range(count):
        out += [
            f"rule calm_down_{g} {{",
            f"  while abuse_since_warning >= {3 + g % 20} and warnings < {4 + g % 7}",
            "  forbid agent.offer_compensation",
            f'  because "Rule {g}: no compensation while the abuse goes on."',
            "}",
            "",
        ]
    return "\n".join(out)


def write_policy(cfg: Config, name: str, text: str) -> Path:
    path = cfg.data / name
    result = escalation.check_source(text, str(path))
    errors = [d for d in result.diagnostics if d.is_error]
    if result.checked is None or errors:
        rendered = "\n".join(d.render(text) for d in result.diagnostics)
        raise BenchError(f"the generated policy {name} does not check:\n{rendered}")
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


#: Above this ratio (CPU time, most rules against the base policy) per-event cost is "not flat", and is looked into.
FLAT_LIMIT = 1.25
#: Seconds of repeated loads per policy at most; a slow load is timed fewer times (at least once).
LOAD_BUDGET_S = 10.0


def start_cost(policy: escalation.Policy) -> float:
    """Seconds per ``policy.start()`` (a new conversation's state), best of 3."""
    return min(timeit.repeat(lambda: policy.start("c-start"), number=200, repeat=3)) / 200


def best_load(path: Path, runs: int) -> tuple[float, float, int]:
    """Best and median seconds of ``escalation.load(path)``, and how many loads were timed."""
    times: list[float] = []
    while len(times) < runs and (not times or sum(times) + min(times) <= LOAD_BUDGET_S):
        times.append(time_once(lambda: escalation.load(str(path))))
    return min(times), med(times), len(times)


def section_startup(cfg: Config, inputs: Inputs) -> Section:
    sec = Section(
        "startup",
        "4. Start-up and scaling with the rule count",
        "Load time is `escalation.load(file)`: read, parse, check and compile (the grammar is built once "
        "beforehand, as in a service; the cold CLI rows include it and the interpreter start). The policies of 10, "
        "100 and 1,000 rules are those of `benchmarks/bench_check.py`. Per-event cost: the first "
        f"{cfg.scale_events:,} events of the stream through `Session.feed(dict)`, under the three-strikes policy (8 "
        "rules) plus extra rules up to the given total — `on` rules on declared event types that never occur in the "
        "stream (should cost nothing per event when dispatch is by event type), or `while` rules over the policy's "
        f"own counts (evaluated at every event: expected to grow). Best of {cfg.scale_rounds} alternating round{'s' if cfg.scale_rounds != 1 else ''}.",
    )
    import bench_check

    collect()
    escalation.load(str(POLICY))  # builds the parser
    t = Table(
        ["policy", "rules", "source KB", "best ms", "median ms", "µs per rule", "loads timed"],
        title="Load (parse + check + compile)",
    )
    base_best, base_med, base_runs = best_load(POLICY, cfg.startup_runs if cfg.quick else 5)
    t.rows.append(
        [
            "three-strikes",
            "8",
            f"{POLICY.stat().st_size / 1024:.1f}",
            f"{base_best * 1e3:.2f}",
            f"{base_med * 1e3:.2f}",
            f"{base_best * 1e6 / 8:.0f}",
            str(base_runs),
        ]
    )
    loads: dict[int, float] = {}
    for size in cfg.startup_sizes:
        text = bench_check.generate_policy(size)
        path = write_policy(cfg, f"bench-{size}-rules.esc", text)
        best, median, runs = best_load(path, cfg.startup_runs if cfg.quick or size >= 1000 else 5)
        loads[size] = best
        t.rows.append(
            [
                f"bench_check, {size:,} rules",
                f"{size:,}",
                f"{len(text.encode()) / 1024:.1f}",
                f"{best * 1e3:.2f}",
                f"{median * 1e3:.2f}",
                f"{best * 1e6 / size:.0f}",
                str(runs),
            ]
        )
    sec.tables.append(t)

    cold = Table([f"cold process (best of {1 if cfg.quick else 3})", "best ms", "median ms"], title="Cold start of a process")
    for label, cmd in [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("python -c 'import escalation'", [sys.executable, "-c", "import escalation"]),
        ("escalation check three_strikes.esc", [*escalation_command(), "check", rel(POLICY)]),
    ]:
        walls = [run_process(cmd)[0] for _ in range(1 if cfg.quick else 3)]
        cold.rows.append([label, f"{min(walls) * 1e3:.0f}", f"{med(walls) * 1e3:.0f}"])
    sec.tables.append(cold)

    base_text = POLICY.read_text(encoding="utf-8")
    records = inputs.records()[: cfg.scale_events]
    n = len(records)
    variants: list[tuple[str, int, Path]] = [("base", 8, POLICY)]
    for size in cfg.scale_sizes:
        extra = size - 8
        variants.append(("on", size, write_policy(cfg, f"scale-on-{size}.esc", base_text + "\n" + extra_on_rules(extra) + "\n")))
        variants.append(
            ("while", size, write_policy(cfg, f"scale-while-{size}.esc", base_text + "\n" + extra_while_rules(extra) + "\n"))
        )
    loaded: list[tuple[str, int, escalation.Policy, float]] = []
    for kind, size, path in variants:
        started = time.perf_counter()
        policy = escalation.load(str(path))
        loaded.append((kind, size, policy, time.perf_counter() - started))

    def feeder(policy: escalation.Policy) -> Callable[[], None]:
        def run() -> None:
            sessions: dict[str, escalation.Session] = {}
            for r in records:
                cid = r["conversation"]
                s = sessions.get(cid)
                if s is None:
                    s = sessions[cid] = policy.start(cid)
                s.feed(r)

        return run

    times = [Runs(n) for _ in loaded]
    for r in range(cfg.scale_rounds):
        for i, (_, _, policy, _) in enumerate(loaded):
            times[i].run(feeder(policy))
        print(f"  scaling round {r + 1}/{cfg.scale_rounds}", file=sys.stderr)
    st = Table(
        [
            "extra rules",
            "rules in all",
            "load ms",
            "best µs/event",
            "median µs/event",
            "median CPU µs/event",
            "× base (median wall / CPU)",
            "µs per policy.start()",
        ],
        title="Per-event cost as rules are added",
    )
    starts = [start_cost(policy) for _, _, policy, _ in loaded]
    new_conversations = len({r["conversation"] for r in records})
    base_us = times[0].median
    for order in ("base", "on", "while"):
        for i, (kind, size, _, load_s) in enumerate(loaded):
            if kind != order:
                continue
            label = {"base": "none (three-strikes)", "on": "`on` rules, events absent", "while": "`while` rules"}[kind]
            w, c = times[i].vs(times[0])
            st.rows.append(
                [
                    label,
                    f"{size:,}",
                    f"{load_s * 1e3:.0f}",
                    us(times[i].best),
                    us(times[i].median),
                    us(times[i].cpu_median),
                    f"{w:.2f}× / {c:.2f}×",
                    us(starts[i]),
                ]
            )
    sec.tables.append(st)

    biggest, smallest = max(cfg.startup_sizes), min(cfg.startup_sizes)
    sec.headline.append(
        [
            "4 start-up",
            "load ms, " + " / ".join(f"{k:,}" for k in cfg.startup_sizes) + " rules",
            " / ".join(f"{loads[k] * 1e3:.0f}" for k in cfg.startup_sizes),
            "",
            f"{(loads[biggest] / biggest) / (loads[smallest] / smallest):.2f}× per rule ({biggest:,} vs {smallest:,})",
            "≈ linear",
        ]
    )
    top = max(cfg.scale_sizes)
    on_i = next(i for i, (k, s, _, _) in enumerate(loaded) if k == "on" and s == top)
    wh_i = next(i for i, (k, s, _, _) in enumerate(loaded) if k == "while" and s == top)
    (r_on, c_on), (r_wh, c_wh) = times[on_i].vs(times[0]), times[wh_i].vs(times[0])
    sec.headline.append(
        [
            "4 scaling",
            f"µs/event, {top:,} `on` rules (absent events)",
            us(times[on_i].median),
            us(base_us),
            f"{r_on:.2f}× (CPU {c_on:.2f}×)",
            "flat (≈ 1×)",
        ]
    )
    sec.headline.append(
        [
            "4 scaling",
            f"µs/event, {top:,} `while` rules",
            us(times[wh_i].median),
            us(base_us),
            f"{r_wh:.2f}× (CPU {c_wh:.2f}×)",
            "grows (reported)",
        ]
    )
    per_while = (times[wh_i].cpu_median - times[0].cpu_median) / (top - 8)
    flat = "flat: dispatch by event type works"
    if c_on > FLAT_LIMIT:  # why? the garbage collector walking a bigger policy, conversation starts, or the step itself
        off = [Runs(n), Runs(n)]
        for _ in range(cfg.scale_rounds):
            for timing, k in zip(off, (0, on_i), strict=True):
                timing.run(feeder(loaded[k][2]), gc_off=True)
        w_off, c_off = off[1].vs(off[0])
        st.rows.append(["none, collector off", "8", "", us(off[0].best), us(off[0].median), us(off[0].cpu_median), "(base)", ""])
        st.rows.append(
            [
                "`on` rules, events absent, collector off",
                f"{top:,}",
                "",
                us(off[1].best),
                us(off[1].median),
                us(off[1].cpu_median),
                f"{w_off:.2f}× / {c_off:.2f}×",
                "",
            ]
        )
        extra_us = times[on_i].cpu_median - times[0].cpu_median
        from_starts = (starts[on_i] - starts[0]) * new_conversations / n
        gc_share = (times[on_i].cpu_median - off[1].cpu_median) - (times[0].cpu_median - off[0].cpu_median)
        causes = [
            f"starting conversations: `policy.start()` takes {us(starts[on_i])} µs with {top:,} rules against "
            f"{us(starts[0])} µs (a new conversation gets a state slot for every operator of the policy, used or not), "
            f"and the {n:,} events start {new_conversations:,} conversations, about {us(from_starts)} µs per event",
            f"the garbage collector walking the bigger policy's objects, about {us(max(gc_share, 0.0))} µs per event "
            f"({c_off:.2f}× with the collector off)",
            f"the rest, about {us(max(extra_us - from_starts - max(gc_share, 0.0), 0.0))} µs per event, in feeding itself",
        ]
        flat = f"not flat: {us(extra_us)} µs more per event in CPU time"
        sec.notes.append(
            f"With {top:,} `on` rules on absent events the per-event cost was not flat ({c_on:.2f}× in CPU time, "
            f"{us(extra_us)} µs more per event). Where it goes: " + "; ".join(causes) + "."
        )
    growth = (loads[biggest] / biggest) / (loads[smallest] / smallest)
    shape = "about linear" if growth <= 2 else f"superlinear: {growth:.1f}× the cost per rule of {smallest:,} rules"
    sec.findings.append(
        f"Start-up: {loads[biggest] * 1e3:,.0f} ms to load {biggest:,} rules ({loads[biggest] * 1e6 / biggest:,.0f} µs per rule, "
        f"{shape}). "
        f"Per event, {top:,} rules on absent event types cost {c_on:.2f}× the 8-rule policy in CPU time ({flat}); "
        f"{top:,} `while` rules cost {c_wh:.2f}× (about {per_while * 1e9:,.0f} ns of CPU per `while` rule per event)."
    )
    return sec


# -- 5. profile ---------------------------------------------------------------------------------


def short_path(file_name: str) -> str:
    p = Path(file_name)
    parts = p.parts
    if "escalation" in parts:
        return "/".join(parts[parts.index("escalation") :])
    if "site-packages" in parts:
        return "/".join(parts[parts.index("site-packages") + 1 :])
    if file_name.startswith("~") or file_name.startswith("<"):
        return file_name
    return p.name


def issue13_section(key: str, title: str, fig: run_customers.Figures) -> Section:
    """A section of run_customers.py's figures."""
    sec = Section(key, f"{SECTIONS.index(key) + 1}. {title}", fig.intro, notes=fig.notes, headline=fig.headline, findings=fig.findings)
    sec.tables = [Table(headers, rows) for headers, rows in fig.tables]
    return sec


def section_profile(cfg: Config, inputs: Inputs) -> Section:
    sec = Section(
        "profile",
        "5. Where a replay spends its time",
        f"cProfile of an in-process replay of the first {min(cfg.profile_events, cfg.events):,} events of the stream: "
        "`escalation.replay(policy, [events])` with every "
        "record written through `escalation.AuditWriter` to a file, as the CLI does. The 15 functions with the most "
        "own time (tottime); cProfile's overhead inflates small, often-called functions.",
    )
    policy = escalation.load(str(POLICY))
    events = inputs.events()
    count = min(cfg.profile_events, cfg.events)
    if count < cfg.events:  # a prefix of the stream, written once
        prefix = cfg.data / f"{events.stem}-first-{count}.jsonl"
        if not prefix.exists():
            tmp = prefix.with_suffix(".tmp")
            with events.open("rb") as src, tmp.open("wb") as dst:
                dst.writelines(itertools.islice(src, count))
            tmp.replace(prefix)
        events = prefix
    out = cfg.data / "out-profile.jsonl"
    prof = cProfile.Profile()
    try:
        with out.open("wb") as fh:
            writer = escalation.AuditWriter(fh)
            collect()
            started = time.perf_counter()
            prof.enable()
            for record in escalation.replay(policy, [rel(events)]):
                writer.write(record)
            prof.disable()
            took = time.perf_counter() - started
    finally:
        out.unlink(missing_ok=True)
    stats = pstats.Stats(prof)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    rows = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:15]
    t = Table(["function", "where", "calls", "tottime s", "% of total", "cumtime s"])
    for (file_name, line, name), (cc, nc, tt, ct, _) in rows:
        calls = f"{nc:,}" if nc == cc else f"{nc:,}/{cc:,}"
        t.rows.append([name, f"{short_path(file_name)}:{line}", calls, f"{tt:.2f}", f"{100 * tt / total:.1f}", f"{ct:.2f}"])
    sec.tables.append(t)
    sec.notes.append(f"{took:.1f} s under the profiler ({total:.1f} s of profiled time), {took * 1e6 / count:.1f} µs per event.")
    top3 = ", ".join(f"`{key[2]}` ({100 * v[2] / total:.0f}%)" for key, v in rows[:3])
    sec.findings.append(f"Profile: the most own time goes to {top3}.")
    return sec


RUNNERS: dict[str, Callable[[Config, Inputs], Section]] = {
    "replay": section_replay,
    "feed": section_feed,
    "decision": section_decision,
    "startup": section_startup,
    "profile": section_profile,
    "customers": lambda cfg, inputs: issue13_section("customers", "Customer history against none", run_customers.customers(cfg.quick)),
    "customer-scale": lambda cfg, inputs: issue13_section(
        "customer-scale", "Customer scale: memory", run_customers.customer_scale(cfg.quick, cfg.data)
    ),
    "v1": lambda cfg, inputs: issue13_section("v1", "Version-1 replay against the tree before language 2", run_customers.v1_no_slower(cfg.quick)),
}


# -- the report ---------------------------------------------------------------------------------


# -- 6. a million events: serial, --jobs 2, Dask ------------------------------------------------

BIG_SEED = 5


#: Runs a command and reports its rusage. The command is started from this small process, not
#: from the benchmark's (which holds the generated inputs): a child's peak RSS counts the
#: memory of the process it was forked from until it execs.
RUSAGE_PROBE = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print("rusage:", usage.ru_utime + usage.ru_stime, usage.ru_maxrss, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, its worker processes included) and peak RSS in MB of a command.

    The peak is ``ru_maxrss`` from ``wait4``: that of the largest single process (the
    command, or the largest of the worker processes it waited for).
    """
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUSAGE_PROBE, *cmd], cwd=ROOT, capture_output=True, check=False)
    wall = time.perf_counter() - start
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"`{show_cmd(cmd)}` exited {proc.returncode}: {err.strip()[-2000:]}")
    cpu, maxrss = next(line.split()[1:] for line in err.splitlines() if line.startswith("rusage:"))
    kb = float(maxrss) / (1024 if sys.platform == "darwin" else 1)
    return wall, float(cpu), kb / 1024


def last_record(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - 4096))
        return json.loads(fh.read().splitlines()[-1])  # type: ignore[no-any-return]


def section_scale(cfg: Config, inputs: Inputs) -> Section:
    n, convs = cfg.big_events, cfg.big_conversations
    sec = Section(
        "scale",
        "6. Scale: a million events, --jobs and Dask",
        f"`escalation replay` of {n:,} generated events over {convs:,} conversations (`benchmarks/gen_events.py "
        f"--events {n} --conversations {convs} --seed {BIG_SEED}`, three-strikes policy) as a subprocess: serially, "
        f"and with `--jobs 2`, alternating, {cfg.big_rounds} round{'s' if cfg.big_rounds != 1 else ''}; every "
        "`--jobs 2` log is compared byte for byte with the serial one. Peak RSS is `ru_maxrss` of the process "
        "(for `--jobs 2`, the largest of its processes). Then, when Dask is installed, one replay on a Dask local "
        "cluster (`--dask local`: 2 worker processes, started by the command and included in its time), checked "
        "with `escalation verify` and against the serial totals.",
    )
    started = time.perf_counter()
    events = gen_events.ensure(cfg.data, n, convs, BIG_SEED)
    if time.perf_counter() - started > 0.5:
        print(f"generated {rel(events)} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    out_serial, out_jobs = cfg.data / "big-serial.jsonl", cfg.data / "big-jobs2.jsonl"
    base = [*escalation_command(), "replay", rel(POLICY), rel(events)]
    contenders = [("serial", [*base, "-o", rel(out_serial)]), ("--jobs 2", [*base, "--jobs", "2", "-o", rel(out_jobs)])]
    walls: dict[str, list[float]] = {name: [] for name, _ in contenders}
    cpus: dict[str, list[float]] = {name: [] for name, _ in contenders}
    rss: dict[str, list[float]] = {name: [] for name, _ in contenders}
    try:
        for r in range(cfg.big_rounds):
            for name, cmd in contenders:
                collect()
                wall, cpu, peak = run_measured(cmd)
                walls[name].append(wall)
                cpus[name].append(cpu)
                rss[name].append(peak)
            if not filecmp.cmp(out_serial, out_jobs, shallow=False):
                raise BenchError("the --jobs 2 audit log differs from the serial one")
            print(f"  scale round {r + 1}/{cfg.big_rounds}: " + ", ".join(f"{k} {walls[k][-1]:.2f} s" for k in walls), file=sys.stderr)
        summary = last_record(out_serial)
        if summary.get("events") != n or summary.get("conversations") != convs:
            raise BenchError(f"the replay's summary is not what the benchmark expects: {summary}")
    finally:
        out_jobs.unlink(missing_ok=True)
    t = Table(["run", "best s", "median s", "events/s (median)", "median CPU s", "peak RSS MB (max)", "identical to serial"])
    for name, _ in contenders:
        t.rows.append(
            [
                name,
                f"{min(walls[name]):.2f}",
                f"{med(walls[name]):.2f}",
                per_s(n, med(walls[name])),
                f"{med(cpus[name]):.2f}",
                f"{max(rss[name]):.1f}",
                "—" if name == "serial" else f"yes ({cfg.big_rounds}/{cfg.big_rounds} rounds)",
            ]
        )
    paired = med(s / j for s, j in zip(walls["serial"], walls["--jobs 2"], strict=True))
    speedup = med(walls["serial"]) / med(walls["--jobs 2"])
    dask_row: list[str] | None = None
    if importlib.util.find_spec("distributed") is None:
        sec.notes.append("Dask is not installed: the Dask local cluster was skipped (`pip install 'escalation[dask]'`).")
    else:
        out_dir = cfg.data / "big-dask"
        try:
            wall, cpu, peak = run_measured([*base, "--dask", "local", "--out-dir", rel(out_dir)])
            verified = subprocess.run([*escalation_command(), "verify", rel(out_dir)], cwd=ROOT, capture_output=True, check=False)
            manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
            totals = manifest["summary"]
            same = all(totals[k] == summary[k] for k in ("records", "events", "rejected", "conversations", "violations", "by_kind"))
            dask_row = [
                "Dask local (2 workers)",
                f"{wall:.2f}",
                f"{wall:.2f}",
                per_s(n, wall),
                f"{cpu:.2f} (all its processes)",
                f"{peak:.1f} (largest process)",
                f"{len(manifest['partitions'])} parts; verify exit {verified.returncode}; totals "
                + ("equal" if same else "DIFFER"),
            ]
            if verified.returncode != 0 or not same:
                raise BenchError(f"the Dask replay does not verify or its totals differ: {totals} vs {summary}")
            t.rows.append(dask_row)
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
    sec.tables.append(t)
    peak_serial = max(rss["serial"])
    sec.headline.append(["6 scale", f"peak RSS, {n:,} events, serial", f"{peak_serial:.0f} MB", "400 MB", f"{peak_serial / 400:.2f}×", "< 400 MB"])
    sec.headline.append(
        [
            "6 scale",
            "--jobs 2 vs serial (wall)",
            f"{med(walls['--jobs 2']):.2f} s",
            f"{med(walls['serial']):.2f} s",
            f"{1 / speedup:.2f}× ({speedup:.2f}× faster)",
            "≥ 1.4× faster",
        ]
    )
    if dask_row is not None:
        sec.headline.append(["6 scale", "Dask local, events/s", dask_row[3], per_s(n, med(walls["serial"])), f"{float(dask_row[1]) / med(walls['serial']):.2f}×", "reported"])
    sec.findings.append(
        f"{n:,} events: the serial replay peaked at {peak_serial:.0f} MB (target < 400 MB); `--jobs 2` was "
        f"{speedup:.2f}× faster than serial in median wall time (median of paired rounds {paired:.2f}×; target ≥ 1.4×), "
        "its log identical byte for byte"
        + (f"; a Dask local cluster replayed {dask_row[3]} events/s, start-up included." if dask_row else ".")
    )
    sec.notes.append(f"Commands: `{show_cmd(contenders[0][1])}`; `{show_cmd(contenders[1][1])}`.")
    sec.notes.append(
        f"The serial replay accepted {summary['events']:,} events of {summary['conversations']:,} conversations and found "
        f"{summary['violations']:,} violations; {summary['open_obligations']:,} obligations stay open."
    )
    out_serial.unlink(missing_ok=True)
    return sec


RUNNERS["scale"] = section_scale


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "unknown"


def summary_table(sections: list[Section]) -> Table:
    t = Table(list(SUMMARY_HEADERS))
    for sec in sections:
        if sec.failed:
            t.rows.append([sec.title.split(".")[0] + " " + sec.key, "FAILED", "", "", "", ""])
        t.rows.extend(sec.headline)
    return t


def peer_versions() -> list[str]:
    out = []
    for name, package, _ in peers.PEERS:
        try:
            out.append(f"{name} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{name} (not installed)")
    try:
        out.append(f"orjson {importlib.metadata.version('orjson')}")
    except importlib.metadata.PackageNotFoundError:
        out.append("orjson (not installed)")
    return out


def markdown(
    sections: list[Section], command: str, started: datetime.datetime, took: float, load_before: str, cfg: Config
) -> str:
    lines = [
        "# Benchmarks: replay, feed, decision, start-up, scale",
        "",
        f"Produced by `{command}` in {took / 60:.1f} minutes."
        + (" **A --quick smoke run: small inputs, few rounds; the figures are not meaningful.**" if cfg.quick else ""),
        "Every ratio compares contenders measured side by side in the same run, alternating, on a shared and",
        "noisy 2-core machine: read the ratios, not the absolute times.",
        "",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.platform()}, CPU {cpu_model()}, {os.cpu_count()} cores",
        f"- Python: {platform.python_implementation()} {platform.python_version()} ({rel(sys.executable)})",
        f"- escalation {escalation.__version__}; {', '.join(peer_versions())}",
        f"- load average (1, 5, 15 min) at the start: {load_before}; at the end: {load_average()}",
        f"- input: `benchmarks/gen_events.py --events {cfg.events} --conversations {cfg.conversations} --seed {SEED}` (cached in `{rel(cfg.data)}`)",
        "",
        "## Summary",
        "",
        summary_table(sections).markdown(),
        "",
        "## Interpretation",
        "",
    ]
    lines += [f"- {f}" for sec in sections for f in sec.findings] or ["- (no section finished)"]
    for sec in sections:
        lines += ["", f"## {sec.title}", "", sec.intro, ""]
        if sec.failed:
            lines += ["**The section failed:**", "", "```", sec.failed.rstrip(), "```", ""]
        for table in sec.tables:
            lines += [table.markdown(), ""]
        lines += [f"- {n}" for n in sec.notes]
    lines += [
        "",
        "## How to run",
        "",
        "```sh",
        ".venv/bin/pip install -r benchmarks/requirements.txt   # orjson and the peers, for the benchmark only",
        ".venv/bin/python benchmarks/run.py                     # the full run; --quick for a smoke run; --only NAME",
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]) if __doc__ else None,
    )
    ap.add_argument("--quick", action="store_true", help="a small smoke run: small inputs, few rounds (seconds, not minutes)")
    ap.add_argument(
        "--only", action="append", metavar="NAME", help=f"run only this section ({', '.join(SECTIONS)}, or 1-9); may be repeated"
    )
    ap.add_argument(
        "--output",
        help="where to write the markdown (default: benchmarks/RESULTS.md for a full run, else benchmarks/.data/RESULTS-partial.md)",
    )
    ap.add_argument(
        "--data-dir", default=str(HERE / ".data"), help="where generated inputs are cached (default: benchmarks/.data)"
    )
    ap.add_argument("--profile-events", type=int, help="events replayed under the profiler (default: 50,000; 2,000 with --quick)")
    args = ap.parse_args(argv)
    chosen = list(SECTIONS)
    if args.only:
        chosen = []
        for name in args.only:
            key = ALIASES.get(name, name)
            if key not in SECTIONS:
                ap.error(f"unknown section {name!r}: choose from {', '.join(SECTIONS)} or 1-{len(SECTIONS)}")
            if key not in chosen:
                chosen.append(key)
        chosen.sort(key=SECTIONS.index)
    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    cfg = make_config(args.quick, data)
    if args.profile_events is not None:
        cfg = dataclasses.replace(cfg, profile_events=args.profile_events)
    full = not args.quick and chosen == list(SECTIONS)
    output = Path(args.output) if args.output else (HERE / "RESULTS.md" if full else data / "RESULTS-partial.md")
    command = show_cmd([sys.executable, str(HERE / "run.py"), *(argv if argv is not None else sys.argv[1:])])
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = load_average()
    clock = time.perf_counter()
    inputs = Inputs(cfg)
    sections: list[Section] = []
    for key in chosen:
        print(f"== {key}", file=sys.stderr)
        t0 = time.perf_counter()
        try:
            sec = RUNNERS[key](cfg, inputs)
        except Exception:
            sec = Section(key, f"{SECTIONS.index(key) + 1}. {key}", "", failed=traceback.format_exc())
            print(sec.failed, file=sys.stderr)
        sections.append(sec)
        print(f"\n## {sec.title}  ({time.perf_counter() - t0:.0f} s)\n")
        if sec.failed:
            print(f"FAILED:\n{sec.failed}")
        for table in sec.tables:
            print(table.text() + "\n")
        for note in sec.notes:
            print(f"- {note}")
        sys.stdout.flush()
    took = time.perf_counter() - clock
    print("\n## Summary\n")
    print(summary_table(sections).text())
    print()
    for sec in sections:
        for f in sec.findings:
            print(f"- {f}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(markdown(sections, command, started, took, load_before, cfg), encoding="utf-8")
    print(f"\nwrote {rel(output)} ({took:.0f} s)")
    return 1 if any(sec.failed for sec in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
