"""Command-line plumbing shared by the two harnesses: atheris when asked, else a time-boxed hypothesis run."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def parse_args(description: str) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=description, add_help=False)
    parser.add_argument("--hypothesis", action="store_true", help="generate inputs with the test suite's hypothesis strategies instead of atheris")
    parser.add_argument("--minutes", type=float, default=30.0, help="with --hypothesis: how long to run (default 30)")
    parser.add_argument("--strict", action="store_true", help="fail on the known bugs too (see fuzz/outcomes.py KNOWN)")
    parser.add_argument("-h", "--help", action="store_true")
    args, rest = parser.parse_known_args()
    if args.help:
        parser.print_help()
        print("\nAny other arguments go to libFuzzer (atheris mode): corpus folders, -max_total_time=SECONDS, -max_len=N, ...")
        sys.exit(0)
    return args, rest


def run_hypothesis(minutes: float, strategy: Any, check: Callable[[Any], None], report: Callable[[], str]) -> None:
    """Run ``check`` on examples of ``strategy`` in batches of fresh random examples until ``minutes`` have passed."""
    from hypothesis import HealthCheck, Phase, given, settings

    examples = 0

    @settings(max_examples=200, deadline=None, phases=[Phase.generate], database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def batch(value: Any) -> None:
        nonlocal examples
        examples += 1
        check(value)

    began = time.monotonic()
    end = began + minutes * 60
    while time.monotonic() < end:
        batch()
        elapsed = time.monotonic() - began
        print(f"[{elapsed:7.0f} s] {examples} examples, no finding; {report()}", flush=True)
    print(f"done: {examples} examples in {time.monotonic() - began:.0f} s, no finding; {report()}", flush=True)


def report_known() -> str:
    import outcomes

    if not outcomes.seen_known:
        return "no known bug met"
    return "known bugs met (tolerated): " + ", ".join(f"{name} x{n}" for name, n in sorted(outcomes.seen_known.items()))
