"""Static checks (language.md §8): the entry points, and the order of the named passes.

The checker runs named passes over the whole policy and collects every diagnostic; it never
stops at the first. The passes live beside this module: :mod:`.declarations` (events and
actions, names, lets), :mod:`.rules` (defaults, rules, obligations), :mod:`.calendars` (the
calendar, bounds on durations and working days, claims), :mod:`.tests` (test blocks), over :mod:`.names` (resolution, did-you-mean), :mod:`.types` (expression typing) and
:mod:`.fold` (constant folding). The result carries what later stages need: the merged
vocabulary, the type and evaluation order of every ``let``, the policy's calendar, and whether
it reads customer history.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs

from ..errors import Diagnostic, PolicyError, Span
from ..lang import EventType, Type, ast
from ..lang.calendar import DEFAULT_CALENDAR, Calendar
from ..syntax import parse, parse_tests, read_source
from .calendars import calendar_pass, claim_pass, reads_customer_history, span_pass
from .context import CheckState
from .declarations import collect_names, declarations, let_dependencies, let_depth_pass, let_pass
from .rules import default_pass, obligation_pass, rule_pass
from .tests import check_tests, test_pass

__all__ = ["PASSES", "CheckResult", "CheckedPolicy", "check", "check_source", "check_test_file"]


@attrs.frozen(slots=True)
class CheckedPolicy:
    """A policy that passed the checker, with what the compiler and evaluator need."""

    policy: ast.Policy
    path: str
    source: str
    vocabulary: dict[str, EventType]
    let_types: dict[str, Type]
    let_order: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...]
    #: The policy's calendar (language.md §10), or the default one (UTC, Monday to Friday, no holidays).
    calendar: Calendar = DEFAULT_CALENDAR
    #: Whether `across contacts` appears outside a claim (language.md §9): then each customer's records must come in time order.
    reads_customer_history: bool = False


@attrs.frozen(slots=True)
class CheckResult:
    """Every diagnostic of a check, sorted by position, and the checked policy unless one is an error."""

    diagnostics: list[Diagnostic]
    checked: CheckedPolicy | None  # None when there are errors

    @property
    def ok(self) -> bool:
        return self.checked is not None


def unused_pass(c: CheckState) -> None:
    """A let that nothing read is a warning (W003): the last pass, once every reader has been seen."""
    for name, let in c.lets.items():
        if name not in c.used_lets:
            c.warning("W003", f"`{name}` is never used", let.name.span, "remove it, or use it in a rule")


#: The passes of a check, in order: each reads what those before it filled in.
PASSES: tuple[Callable[[CheckState], None], ...] = (
    declarations,
    collect_names,
    let_dependencies,
    let_depth_pass,
    let_pass,
    default_pass,
    calendar_pass,
    span_pass,
    rule_pass,
    obligation_pass,
    claim_pass,
    test_pass,
    unused_pass,
)


def check(policy: ast.Policy, path: str = "<policy>", source: str = "") -> CheckResult:
    """Run every check over ``policy``; diagnostics come sorted by position."""
    c = CheckState(policy, path, source)
    for run in PASSES:
        run(c)
    c.diagnostics.sort(key=Diagnostic.sort_key)
    if any(d.is_error for d in c.diagnostics):
        return CheckResult(c.diagnostics, None)
    checked = CheckedPolicy(
        c.policy,
        c.path,
        c.source,
        c.vocabulary,
        {k: v for k, v in c.let_types.items() if v is not None},
        tuple(c.let_order),
        tuple(c.diagnostics),
        c.calendar,
        reads_customer_history(c.policy),
    )
    return CheckResult(c.diagnostics, checked)


def check_source(text: str, path: str = "<policy>") -> CheckResult:
    """Parse and check policy source; a syntax error becomes the only diagnostic."""
    try:
        policy = parse(text, path)
    except PolicyError as err:
        return CheckResult(err.diagnostics, None)
    return check(policy, path, text)


def check_test_file(text: str, path: str) -> list[Diagnostic]:
    """Check a sibling ``NAME.test.esc`` against ``NAME.esc`` (which must itself check)."""
    name = Path(path).name
    policy_path = str(Path(path).with_name(name[: -len(".test.esc")] + ".esc"))
    try:
        tests = parse_tests(text, path)
    except PolicyError as err:
        return err.diagnostics
    try:
        policy_text = read_source(policy_path)
    except PolicyError:
        return [Diagnostic("E005", "error", f"a test file needs its policy beside it, and `{policy_path}` cannot be read", Span(1, 1, 1, 2), "name the file NAME.test.esc next to NAME.esc", path)]
    result = check_source(policy_text, policy_path)
    if result.checked is None:
        return [Diagnostic("E005", "error", f"the policy `{policy_path}` has errors; check it first", Span(1, 1, 1, 2), f"run `escalation check {policy_path}`", path)]
    return check_tests(result.checked.policy, tests, path)
