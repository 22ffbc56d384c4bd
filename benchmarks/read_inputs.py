"""What checking the replayed bytes costs: reading an input as the replay does, with and without the check.

    python benchmarks/gen_events.py --events 200000 --conversations 5000 --seed 2026 > /tmp/events.jsonl
    python benchmarks/read_inputs.py /tmp/events.jsonl

The replay digests a regular file for the header, then reads it again through a reader
that digests what it reads and checks it at the end (docs/security.md, "Inputs and
outputs of a replay"). This times, in alternating rounds (best of each, as the machine may
be shared): the lines read from a plain file as before; the same through the checking
reader; and the header's digest, which both pay.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from escalation.replay import open_inputs
from escalation.runtime.events import iter_numbered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("events")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    path: str = args.events
    checked_input = open_inputs([path])[0]

    def plain() -> int:
        with open(path, "rb") as fh:
            return sum(1 for _ in iter_numbered(fh))

    def checked() -> int:
        with checked_input.open() as fh:
            return sum(1 for _ in iter_numbered(fh))

    def digest() -> int:
        return len(open_inputs([path]))

    variants: dict[str, Callable[[], int]] = {
        "plain read (before)": plain,
        "digesting, checked read (after)": checked,
        "header digest (both)": digest,
    }
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(args.rounds):
        for name, fn in variants.items():
            started = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - started)
    for name, seconds in best.items():
        print(f"{name}: {seconds * 1000:.0f} ms")


if __name__ == "__main__":
    main()
