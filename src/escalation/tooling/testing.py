"""`test` blocks (language.md §7): scenarios replayed in a fresh interaction, with expectations.

A run keeps, besides the failures, what the evaluator did at every step
(:class:`Played`), so that :mod:`escalation.tooling.coverage` can tell which rules and
effects the tests exercised without running anything again.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs

from ..check import check_tests
from ..compile import CompiledPolicy, literal_value
from ..errors import PolicyError
from ..lang import US, ast, format_time
from ..runtime import Decision, Event, Interaction, Obligation, Violation
from ..syntax import parse_tests, read_source

#: Test scenarios start at this instant (offsets in messages are relative to it).
EPOCH = 0


@attrs.frozen(slots=True)
class State:
    """What held when an expectation was checked: the latest event and the interaction after it."""

    event: str | None  # the latest event's type; None before the first event
    offset: int | None  # its time, in microseconds from the start of the test
    line: int | None  # the line of its step
    active: tuple[str, ...]  # the while rules active then
    permitted: tuple[str, ...]
    forbidden: tuple[str, ...]
    pending: tuple[str, ...]  # e.g. "agent.warn due 30s (warn_on_insult)"
    violations: tuple[str, ...]  # every violation so far, e.g. "missed_deadline at 31s (warn_on_insult)"

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "at": offset_text(self.offset) if self.offset is not None else None,
            "line": self.line,
            "active": list(self.active),
            "permitted": list(self.permitted),
            "forbidden": list(self.forbidden),
            "pending": list(self.pending),
            "violations": list(self.violations),
        }


@attrs.frozen(slots=True)
class Failure:
    """An expectation that did not hold: where it is, what it wanted, what there was instead."""

    path: str
    line: int
    step: str  # the expectation as written, e.g. "expect permitted agent.hang_up"
    expected: str
    found: str
    state: State

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "step": self.step, "expected": self.expected, "found": self.found, "state": self.state.to_json()}


@attrs.frozen(slots=True)
class Played:
    """One event step as the evaluator saw it.

    ``judged`` is set for an action: the while rules active when the action itself
    was judged (§6 step 2: on the history before it, at its own time).
    """

    line: int
    event: Event
    judged: tuple[str, ...] | None
    decision: Decision


@attrs.frozen(slots=True)
class TestResult:
    __test__ = False  # not a pytest test class

    name: str
    path: str
    line: int
    failures: tuple[Failure, ...]
    played: tuple[Played, ...] = ()
    initial_active: tuple[str, ...] = ()  # the while rules active before the first event (on the empty history)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def decisions(self) -> tuple[tuple[Event, Decision], ...]:
        return tuple((p.event, p.decision) for p in self.played)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "line": self.line, "passed": self.passed, "failures": [f.to_json() for f in self.failures]}


def offset_text(us: int) -> str:
    """An offset from the start of a test in hours, minutes and seconds, as durations are written: ``90s`` -> ``1m30s``."""
    whole, frac = divmod(us - EPOCH, US)
    parts: list[str] = []
    for unit, size in (("h", 3600), ("m", 60)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    if whole or frac or not parts:
        parts.append(f"{whole}.{frac:06d}".rstrip("0").rstrip(".") + "s")
    return "".join(parts)


def _event(policy: CompiledPolicy, step: ast.EventStep, time: int) -> Event:
    et = policy.vocabulary[step.event.text]
    given = {a.name.text: literal_value(a.value) for a in step.args}
    attrs_: dict[str, Any] = {}
    for field in et.fields:
        if field.name in given:
            attrs_[field.name] = given[field.name]
        else:
            default = field.default
            attrs_[field.name] = default * US if field.type == "duration" and isinstance(default, int) else default
    raw: dict[str, Any] = {"conversation": "test", "time": format_time(time), "type": step.event.text}
    raw.update({k: (v / US if isinstance(v, int) and et.field(k) and et.field(k).type == "duration" else v) for k, v in given.items()})  # type: ignore[union-attr]
    return Event("test", time, step.event.text, attrs_, raw)


def step_text(step: ast.Step) -> str:
    """An expectation step as a policy author writes it."""
    if isinstance(step, ast.ExpectPermission):
        return f"expect {'permitted' if step.permitted else 'forbidden'} {step.action.text}"
    if isinstance(step, ast.ExpectObligation):
        return f"expect obligation {step.action.text}" + (f" due {step.due.text}" if step.due is not None else "")
    if isinstance(step, ast.ExpectViolation):
        return f"expect violation {step.kind}" + (f" {step.rule.text}" if step.rule is not None else "")
    if isinstance(step, ast.ExpectNoViolations):
        return "expect no violations"
    if isinstance(step, ast.ExpectFired):
        return f"expect fired {step.rule.text}"
    return step.event.text + "".join(f" {a.name.text}=…" for a in step.args)


def _obligation_text(ob: Obligation) -> str:
    limits = ([f"due {offset_text(ob.due)}"] if ob.due is not None else []) + ([f"before {ob.before}"] if ob.before else [])
    return f"{' or '.join(ob.actions)} {', '.join(limits)} ({ob.rule})"


def _violation_text(at: int, v: Violation) -> str:
    what = f"{v.kind} of {v.action}" if v.action else v.kind
    return f"{what} at {offset_text(at)} ({', '.join(v.rules)})"


def _and_list(names: Iterable[str]) -> str:
    items = [f"`{n}`" for n in names]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _permission_found(policy: CompiledPolicy, action: str, permitted: bool, active: tuple[str, ...]) -> str:
    """Why ``action`` is permitted or forbidden under the active while rules (§6 step 6)."""
    rules = {r.name: r for r in policy.while_rules}
    forbidders = [n for n in active if action in rules[n].forbids]
    permitters = [n for n in active if action in rules[n].permits]
    head = f"`{action}` {'permitted' if permitted else 'forbidden'}"
    if forbidders:
        noun = "rule" if len(forbidders) == 1 else "rules"
        return f"{head}: active {noun} {_and_list(forbidders)} {'forbids' if len(forbidders) == 1 else 'forbid'} it"
    if permitters:
        noun = "rule" if len(permitters) == 1 else "rules"
        return f"{head}: active {noun} {_and_list(permitters)} {'permits' if len(permitters) == 1 else 'permit'} it"
    if action in policy.default_forbid:
        return f"{head}: it has `default forbid` and no active rule permits it"
    return f"{head}: no active rule forbids it and it has no `default forbid`"


def run_test(policy: CompiledPolicy, test: ast.Test, path: str) -> TestResult:
    """Replay one `test` block in a fresh interaction and check its expectations."""
    inter = Interaction(policy, "test")
    names = tuple(r.name for r in policy.while_rules)
    initial_active = tuple(names[i] for i in inter.active_at(EPOCH))
    failures: list[Failure] = []
    violations: list[tuple[int, Violation]] = []
    last: Played | None = None
    time: int | None = None
    played: list[Played] = []
    for step in test.steps:
        line = step.span.line
        if isinstance(step, ast.EventStep):
            if step.at is not None:
                time = EPOCH + step.at.seconds * US
            else:
                time = EPOCH if time is None else time + US
            event = _event(policy, step, time)
            judged = tuple(names[i] for i in inter.active_at(time)) if policy.vocabulary[event.type].is_action else None
            last = Played(line, event, judged, inter.feed(event))
            played.append(last)
            violations.extend((time, v) for v in last.decision.violations)
            continue

        if last is None:
            active = initial_active
            permitted, forbidden = inter.permissions(EPOCH)
        else:
            active = last.decision.active
            permitted, forbidden = last.decision.permitted_actions, last.decision.forbidden_actions
        state = State(
            last.event.type if last else None,
            last.event.time - EPOCH if last else None,
            last.line if last else None,
            active,
            permitted,
            forbidden,
            tuple(_obligation_text(ob) for ob in inter.pending),
            tuple(_violation_text(at, v) for at, v in violations),
        )

        def fail(expected: str, found: str, step: ast.Step = step, state: State = state) -> None:
            failures.append(Failure(path, step.span.line, step_text(step), expected, found, state))

        if isinstance(step, ast.ExpectPermission):
            action = step.action.text
            is_permitted = action in permitted
            if is_permitted != step.permitted:
                fail(f"`{action}` {'permitted' if step.permitted else 'forbidden'}", _permission_found(policy, action, is_permitted, active))
        elif isinstance(step, ast.ExpectObligation):
            action = step.action.text
            due = EPOCH + step.due.seconds * US if step.due is not None else None
            if not any(action in ob.actions and (due is None or ob.due == due) for ob in inter.pending):
                want = f"a pending obligation that `{action}` fulfils" + (f", due at {step.due.text}" if step.due is not None else "")
                for_action = [_obligation_text(ob) for ob in inter.pending if action in ob.actions]
                if for_action:
                    found = "an obligation with another deadline: " + "; ".join(for_action)
                elif inter.pending:
                    found = f"no pending obligation that `{action}` fulfils"
                else:
                    found = "no pending obligations"
                fail(want, found)
        elif isinstance(step, ast.ExpectViolation):
            rule = step.rule.text if step.rule is not None else None
            if not any(v.kind == step.kind and (rule is None or rule in v.rules) for _, v in violations):
                want = f"a {step.kind} violation" + (f" naming `{rule}`" if rule else "") + " so far"
                fail(want, "; ".join(_violation_text(at, v) for at, v in violations) or "no violations so far")
        elif isinstance(step, ast.ExpectNoViolations):
            if violations:
                fail("no violations so far", "; ".join(_violation_text(at, v) for at, v in violations))
        elif isinstance(step, ast.ExpectFired):
            if last is None:
                fail(f"rule `{step.rule.text}` fired at the latest event", "no event yet")
            elif step.rule.text not in last.decision.fired:
                fired = _and_list(last.decision.fired) if last.decision.fired else "no rule"
                fail(f"rule `{step.rule.text}` fired at the latest event", f"{fired} fired at `{last.event.type}` (line {last.line})")
    return TestResult(test.name.value, path, test.span.line, tuple(failures), tuple(played), initial_active)


def sibling_tests(policy_path: str) -> Path | None:
    """``NAME.test.esc`` beside ``NAME.esc``, if it exists."""
    p = Path(policy_path)
    candidate = p.with_name(p.stem + ".test.esc")
    return candidate if candidate.is_file() else None


def collect_tests(policy: CompiledPolicy, policy_path: str) -> tuple[list[tuple[ast.Test, str]], PolicyError | None]:
    """The policy's own tests and those of its sibling ``NAME.test.esc``, each with its file.

    A sibling that does not parse or check is returned as a PolicyError whose
    diagnostics name the sibling's path (its tests are then left out).
    """
    tests: list[tuple[ast.Test, str]] = [(t, policy_path) for t in policy.checked.policy.tests]
    sibling = sibling_tests(policy_path)
    if sibling is None:
        return tests, None
    try:
        text = read_source(str(sibling))
        extra = parse_tests(text, str(sibling))
    except PolicyError as err:
        return tests, err
    diags = check_tests(policy.checked.policy, extra, str(sibling))
    if any(d.is_error for d in diags):
        return tests, PolicyError(diags, text)
    tests.extend((t, str(sibling)) for t in extra)
    return tests, None


def selected(name: str, pattern: str | None) -> bool:
    """``-k``: no pattern, a case-insensitive substring of the name, or a case-insensitive glob matching all of it."""
    if not pattern:
        return True
    return pattern.lower() in name.lower() or fnmatch.fnmatchcase(name.lower(), pattern.lower())


def run_tests(policy: CompiledPolicy, tests: list[tuple[ast.Test, str]], pattern: str | None = None) -> Iterator[TestResult]:
    for test, path in tests:
        if selected(test.name.value, pattern):
            yield run_test(policy, test, path)
