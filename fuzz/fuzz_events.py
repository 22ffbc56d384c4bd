#!/usr/bin/env python3
"""Fuzz event streams: every input line becomes exactly one decision or rejected record, and the log verifies.

    pip install atheris
    python fuzz/fuzz_events.py /tmp/escalation-events-corpus examples -max_len=65536 -max_total_time=1800
    python fuzz/fuzz_events.py --hypothesis --minutes 30     # without atheris: the suite's strategies, time-boxed

An input's first byte picks the policy (three strikes, or a policy with every field
type, windows and deadlines); the rest is the event file. See fuzz/README.md.
"""

from __future__ import annotations

import sys

from runner import ROOT, parse_args, report_known, run_hypothesis


def main() -> None:
    args, rest = parse_args(__doc__ or "")
    if args.hypothesis:
        sys.path.insert(0, str(ROOT / "tests"))  # the helpers package
        sys.path.insert(0, str(ROOT / "tests" / "properties"))  # test_fuzz_events
        import outcomes
        from hypothesis import strategies as st
        from test_fuzz_events import hostile_files

        outcomes.strict = args.strict
        policies = outcomes.event_policies()
        run_hypothesis(
            args.minutes,
            st.tuples(st.sampled_from(range(len(policies))), hostile_files()),
            lambda case: outcomes.check_event_bytes(policies[case[0]], case[1]),
            report_known,
        )
        return

    import atheris

    with atheris.instrument_imports(include=["escalation", "outcomes"]):
        import outcomes

    outcomes.strict = args.strict
    policies = outcomes.event_policies()

    def test_one_input(data: bytes) -> None:
        if data:
            outcomes.check_event_bytes(policies[data[0] % len(policies)], data[1:])

    atheris.Setup([sys.argv[0], *rest], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
