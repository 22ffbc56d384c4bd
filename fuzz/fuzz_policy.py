#!/usr/bin/env python3
"""Fuzz the policy front end: check_source, parse, format_source, and the evaluation of whatever passes the checker.

    pip install atheris
    python fuzz/fuzz_policy.py /tmp/escalation-policy-corpus policies ../shared/conformance -max_total_time=1800
    python fuzz/fuzz_policy.py --hypothesis --minutes 30     # without atheris: the suite's strategies, time-boxed

The first folder collects the inputs atheris finds interesting (it must be writable);
the others seed it. A finding stops the run with the input saved as ``crash-*``.
See fuzz/README.md.
"""

from __future__ import annotations

import sys

from runner import ROOT, parse_args, report_known, run_hypothesis


def main() -> None:
    args, rest = parse_args(__doc__ or "")
    if args.hypothesis:
        sys.path.insert(0, str(ROOT / "tests"))  # for the helpers package
        import outcomes
        from hypothesis import strategies as st
        from test_fuzz_policy import _tokens, mutated

        from escalation.tooling.format import format_policy
        from helpers.strategies import policies

        outcomes.strict = args.strict
        soup = st.lists(st.tuples(_tokens, st.sampled_from([" ", "\n", "", "\t"])), max_size=60).map(lambda s: 'policy "p"\n' + "".join(a + b for a, b in s))
        texts = st.one_of(
            mutated().map(lambda b: b.decode("utf-8", errors="replace")),
            policies(max_items=8).map(lambda p: format_policy(p, [])),
            soup,
        )
        run_hypothesis(args.minutes, texts, outcomes.check_policy_text, report_known)
        return

    import atheris

    with atheris.instrument_imports(include=["escalation", "lark", "outcomes"]):
        import outcomes

    outcomes.strict = args.strict

    def test_one_input(data: bytes) -> None:
        outcomes.check_policy_text(data.decode("utf-8", errors="replace"))

    atheris.Setup([sys.argv[0], *rest], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
