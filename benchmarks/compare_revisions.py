"""Replay speed of two revisions of the engine, side by side in one run.

    python benchmarks/compare_revisions.py OLD_REV [NEW_REV] [--events N] [--rounds R] [--jobs J]

Exports each revision's ``src/`` from git into a temporary folder (nothing is
installed; the working tree is not touched), generates one seeded event stream
(benchmarks/gen_events.py) and times ``python -m escalation replay POLICY EVENTS
-o OUT`` under each revision, alternating old and new round after round because
the machines are shared and noisy. Prints the best and median wall time of each
and the ratio new/old, and checks that both logs are byte-identical. NEW_REV
defaults to the working tree.
"""

from __future__ import annotations

import argparse
import filecmp
import io
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("old")
    ap.add_argument("new", nargs="?", default=None, help="a revision (default: the working tree)")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--conversations", type=int, default=5_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="escalation-revs-") as tmp_name:
        tmp = Path(tmp_name)
        old_src = export_src(args.old, tmp / "old")
        new_src = export_src(args.new, tmp / "new") if args.new else ROOT / "src"
        events = tmp / "events.jsonl"
        with events.open("wb") as handle:
            subprocess.run(
                [sys.executable, str(ROOT / "benchmarks" / "gen_events.py"), "--events", str(args.events), "--conversations", str(args.conversations)],
                check=True,
                stdout=handle,
            )
        times: dict[str, list[float]] = {"old": [], "new": []}
        cpu: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(args.rounds):
            for name, src in (("old", old_src), ("new", new_src)):
                wall, used = replay_seconds(src, events, tmp / f"{name}.jsonl", args.jobs)
                times[name].append(wall)
                cpu[name].append(used)
        identical = filecmp.cmp(tmp / "old.jsonl", tmp / "new.jsonl", shallow=False)
    label_new = args.new or "working tree"
    print(f"replay of {args.events:,} events over {args.conversations:,} conversations, --jobs {args.jobs}, {args.rounds} rounds alternating")
    for name, label in (("old", args.old), ("new", label_new)):
        print(
            f"  {label:>14}: wall best {min(times[name]):.2f} s, median {statistics.median(times[name]):.2f} s;"
            f" CPU best {min(cpu[name]):.2f} s, median {statistics.median(cpu[name]):.2f} s"
        )
    ratio_best = min(times["new"]) / min(times["old"])
    ratio_median = statistics.median(times["new"]) / statistics.median(times["old"])
    cpu_best = min(cpu["new"]) / min(cpu["old"])
    cpu_median = statistics.median(cpu["new"]) / statistics.median(cpu["old"])
    print(f"  new/old wall: best {ratio_best:.3f}, median {ratio_median:.3f}; CPU: best {cpu_best:.3f}, median {cpu_median:.3f}")
    print(f"  logs byte-identical: {identical}")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
