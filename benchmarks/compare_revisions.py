"""Replay speed of two revisions of the engine, side by side in one run.

    python benchmarks/compare_revisions.py OLD_REV [NEW_REV] [--events N] [--rounds R] [--jobs J]

Exports each revision's ``src/`` from git into a temporary folder (nothing is
installed; the working tree is not touched), generates one seeded event stream
(benchmarks/gen_events.py) and times ``python -m escalation replay POLICY EVENTS
-o OUT`` under each revision, alternating old and new round after round because
the machines are shared and noisy. Prints the best and median wall time of each
and the ratios new/old (best over best, median over median, and the paired one: the median
of each round's new/old, the robust figure on a noisy machine), and checks that both
logs say the same thing. A log of format ``escalation-audit/1`` against one of ``/2``
(language 2 writes /2: each decision's ``customer``, the summary's ``customers``) is
compared modulo those additions: both are read back, the /2 fields, the header's ``format`` and the chain's ``prev``/``hash``
are set aside, and every other byte of every record must match. NEW_REV defaults to
the working tree.
"""

from __future__ import annotations

import argparse
import filecmp
import io
import json
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "benchmarks" / "three_strikes.esc"


def export_src(rev: str, dest: Path) -> Path:
    """``src/`` and ``grammar/`` of ``rev`` under ``dest`` (via ``git archive``); returns the folder to put on PYTHONPATH."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src", "grammar"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def replay_seconds(src: Path, events: Path, out: Path, jobs: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the replay's processes: user + system, children included)."""
    command = [sys.executable, "-m", "escalation", "replay", str(POLICY), str(events), "-o", str(out)]
    if jobs > 1:
        command += ["--jobs", str(jobs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}, cwd=src.parent, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


#: What format /2 adds to /1 (interfaces.md §2): set aside, with the chain fields, when comparing a /1 log with a /2 one.
V2_FIELDS = {"decision": ("customer",), "summary": ("customers",)}
CHAIN_FIELDS = ("prev", "hash")


def comparable(line: bytes, drop_v2: bool) -> str:
    """One audit line as compared across formats: without its chain fields and (``drop_v2``) the /2 additions."""
    record = json.loads(line)
    for key in CHAIN_FIELDS:
        record.pop(key, None)
    if drop_v2:
        if record.get("kind") == "header":
            record.pop("format", None)
        for key in V2_FIELDS.get(record.get("kind", ""), ()):
            record.pop(key, None)
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def logs_match(old: Path, new: Path) -> tuple[bool, str]:
    """(same, how compared): byte for byte when both logs have one format, else modulo the /2 additions."""
    if filecmp.cmp(old, new, shallow=False):
        return True, "byte-identical"
    a, b = old.read_bytes().splitlines(), new.read_bytes().splitlines()
    formats = {json.loads(lines[0]).get("format") for lines in (a, b) if lines}
    if len(formats) < 2:
        return False, "same format, bytes differ"
    same = len(a) == len(b) and all(comparable(x, True) == comparable(y, True) for x, y in zip(a, b, strict=True))
    return same, f"identical modulo the /2 additions ({' vs '.join(sorted(f or '?' for f in formats))}; chain fields set aside)"


def paired(new: list[float], old: list[float]) -> float:
    """The median of each round's new/old: robust to a round that the machine slowed for both."""
    return statistics.median(n / o for n, o in zip(new, old, strict=True))


@dataclass(frozen=True)
class Comparison:
    """The figures of one side-by-side run: per revision the wall and CPU seconds of each round."""

    old: str
    new: str
    events: int
    conversations: int
    jobs: int
    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]
    identical: bool
    how: str

    def cpu_paired(self) -> float:
        return paired(self.cpu["new"], self.cpu["old"])

    def lines(self) -> list[str]:
        times, cpu = self.wall, self.cpu
        out = [f"replay of {self.events:,} events over {self.conversations:,} conversations, --jobs {self.jobs}, {len(times['old'])} rounds alternating"]
        for name, label in (("old", self.old), ("new", self.new)):
            out.append(
                f"  {label:>14}: wall best {min(times[name]):.2f} s, median {statistics.median(times[name]):.2f} s;"
                f" CPU best {min(cpu[name]):.2f} s, median {statistics.median(cpu[name]):.2f} s"
            )
        ratio_best = min(times["new"]) / min(times["old"])
        ratio_median = statistics.median(times["new"]) / statistics.median(times["old"])
        cpu_best = min(cpu["new"]) / min(cpu["old"])
        cpu_median = statistics.median(cpu["new"]) / statistics.median(cpu["old"])
        out.append(f"  new/old wall: best {ratio_best:.3f}, median {ratio_median:.3f}; CPU: best {cpu_best:.3f}, median {cpu_median:.3f}")
        out.append(f"  new/old paired (median of the rounds' ratios): wall {paired(times['new'], times['old']):.3f}, CPU {self.cpu_paired():.3f}")
        out.append(f"  logs {self.how}: {self.identical}")
        return out


def compare(old: str, new: str | None, events: int = 200_000, conversations: int = 5_000, rounds: int = 5, jobs: int = 1) -> Comparison:
    """Replay one generated stream under ``old`` and ``new`` (None: the working tree), alternating, ``rounds`` times."""
    with tempfile.TemporaryDirectory(prefix="escalation-revs-") as tmp_name:
        tmp = Path(tmp_name)
        old_src = export_src(old, tmp / "old")
        new_src = export_src(new, tmp / "new") if new else ROOT / "src"
        stream = tmp / "events.jsonl"
        with stream.open("wb") as handle:
            subprocess.run(
                [sys.executable, str(ROOT / "benchmarks" / "gen_events.py"), "--events", str(events), "--conversations", str(conversations)],
                check=True,
                stdout=handle,
            )
        times: dict[str, list[float]] = {"old": [], "new": []}
        cpu: dict[str, list[float]] = {"old": [], "new": []}
        for r in range(rounds):
            pair = (("old", old_src), ("new", new_src))
            for name, src in pair if r % 2 == 0 else pair[::-1]:  # alternate which goes first
                wall, used = replay_seconds(src, stream, tmp / f"{name}.jsonl", jobs)
                times[name].append(wall)
                cpu[name].append(used)
        identical, how = logs_match(tmp / "old.jsonl", tmp / "new.jsonl")
    return Comparison(old, new or "working tree", events, conversations, jobs, times, cpu, identical, how)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("old")
    ap.add_argument("new", nargs="?", default=None, help="a revision (default: the working tree)")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--conversations", type=int, default=5_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)
    result = compare(args.old, args.new, args.events, args.conversations, args.rounds, args.jobs)
    print("\n".join(result.lines()))
    return 0 if result.identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
