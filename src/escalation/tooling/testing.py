"""`test` blocks (language.md §7): scenarios replayed in fresh interactions of one customer, with expectations.

A test starts at its time 0 (``from "TIME"``, else :data:`DEFAULT_START`) with one
interaction; each ``contact`` step starts another interaction of the same customer
(``test``), numbered from 1 (:attr:`Played.contact`, :attr:`State.contact`), whose
events carry on the test's clock. Offsets in messages are from the test's time 0.

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
from ..lang import US, ast, format_time, parse_time
from ..runtime import CustomerState, Decision, Event, Interaction, Obligation, Violation
from ..syntax import parse_tests, read_source

#: A test's time 0 unless its header says ``from "TIME"`` (language.md §7): a Monday.
DEFAULT_START = parse_time("2026-01-05T09:00:00Z")

#: The customer every interaction of a test belongs to.
CUSTOMER = "test"


def conversation_of(contact: int) -> str:
    """The conversation id of a test's ``contact``-th interaction: ``test``, then ``test-2``, ``test-3``..."""
    return CUSTOMER if contact == 1 else f"{CUSTOMER}-{contact}"


@attrs.frozen(slots=True)
class State:
    """What held when an expectation was checked: the latest event and the interaction after it."""

    event: str | None  # the latest event's type in the current interaction; None before its first event
    offset: int | None  # its time, in microseconds from the test's time 0
    line: int | None  # the line of its step
    active: tuple[str, ...]  # the while rules active then
    permitted: tuple[str, ...]
    forbidden: tuple[str, ...]
    pending: tuple[str, ...]  # e.g. "agent.warn due 30s (warn_on_insult)"
    violations: tuple[str, ...]  # every violation so far, e.g. "missed_deadline at 31s (warn_on_insult)"
    contact: int | None = None  # the interaction the expectation is about (1, 2, ...) when the test has `contact` steps

    def to_json(self) -> dict[str, Any]:
        return {
            "contact": self.contact,
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
    contact: int = 1  # the test's interaction the event belongs to (1, then one more at each `contact` step)


@attrs.frozen(slots=True)
class TestResult:
    __test__ = False  # not a pytest test class

    name: str
    path: str
    line: int
    failures: tuple[Failure, ...]
    played: tuple[Played, ...] = ()
    initial_active: tuple[str, ...] = ()  # the while rules active before the first event (on the empty history)
    contacts: int = 1  # how many interactions the test has (one more per `contact` step)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def decisions(self) -> tuple[tuple[Event, Decision], ...]:
        return tuple((p.event, p.decision) for p in self.played)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "line": self.line, "passed": self.passed, "failures": [f.to_json() for f in self.failures]}


def offset_text(us: int) -> str:
    """An offset from a test's time 0 in hours, minutes and seconds, as durations are written: ``90s`` -> ``1m30s``."""
    whole, frac = divmod(us, US)
    parts: list[str] = []
    for unit, size in (("h", 3600), ("m", 60)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    if whole or frac or not parts:
        parts.append(f"{whole}.{frac:06d}".rstrip("0").rstrip(".") + "s")
    return "".join(parts)


def _event(policy: CompiledPolicy, step: ast.EventStep, time: int, conversation: str) -> Event:
    et = policy.vocabulary[step.event.text]
    given = {a.name.text: literal_value(a.value) for a in step.args}
    attrs_: dict[str, Any] = {}
    for field in et.fields:
        if field.name in given:
            attrs_[field.name] = given[field.name]
        else:
            default = field.default
            attrs_[field.name] = default * US if field.type == "duration" and isinstance(default, int) else default
    raw: dict[str, Any] = {"conversation": conversation, "time": format_time(time), "type": step.event.text}
    raw.update({k: (v / US if isinstance(v, int) and et.field(k) and et.field(k).type == "duration" else v) for k, v in given.items()})  # type: ignore[union-attr]
    return Event(conversation, time, step.event.text, attrs_, raw)


def step_text(step: ast.Step) -> str:
    """An expectation step as a policy author writes it."""
    if isinstance(step, ast.ExpectPermission):
        return f"expect {'permitted' if step.permitted else 'forbidden'} {step.action.text}"
    if isinstance(step, ast.ExpectObligation):
        return f"expect obligation {step.action.text}" + (f" due {_due_text(step.due)}" if step.due is not None else "")
    if isinstance(step, ast.ExpectViolation):
        return f"expect violation {step.kind}" + (f" {step.rule.text}" if step.rule is not None else "")
    if isinstance(step, ast.ExpectNoViolations):
        return "expect no violations"
    if isinstance(step, ast.ExpectFired):
        return f"expect fired {step.rule.text}"
    if isinstance(step, ast.ContactStep):
        return "contact"
    return step.event.text + "".join(f" {a.name.text}=…" for a in step.args)


def _due_text(due: ast.DurationLit | ast.StringLit) -> str:
    return due.text if isinstance(due, ast.DurationLit) else f'"{due.value}"'


def _due_at(due: ast.DurationLit | ast.StringLit, start: int) -> int:
    """An expected deadline: an offset from the test's time 0, or an RFC 3339 time."""
    return start + due.seconds * US if isinstance(due, ast.DurationLit) else parse_time(due.value)


def _obligation_text(ob: Obligation, start: int) -> str:
    limits = ([f"due {offset_text(ob.due - start)}"] if ob.due is not None else []) + ([f"before {ob.before}"] if ob.before else [])
    return f"{' or '.join(ob.actions)} {', '.join(limits)} ({ob.rule})"


def _violation_text(at: int, v: Violation, contact: int | None = None) -> str:
    """A violation found at offset ``at``; ``contact`` names its interaction when the test has more than one."""
    what = f"{v.kind} of {v.action}" if v.action else v.kind
    where = f" in contact {contact}" if contact is not None else ""
    return f"{what} at {offset_text(at)}{where} ({', '.join(v.rules)})"


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


class _Run:
    """One test being run: its interactions (one per contact), the clock, and what has been played."""

    def __init__(self, policy: CompiledPolicy, test: ast.Test, path: str) -> None:
        self.policy = policy
        self.path = path
        self.start = parse_time(test.start.value) if test.start is not None else DEFAULT_START
        self.names = tuple(r.name for r in policy.while_rules)
        self.contact = 1
        self.contacts = 1 + sum(isinstance(step, ast.ContactStep) for step in test.steps)
        self.customer = CustomerState(policy, CUSTOMER)  # no events before the test's first step
        self.inter = Interaction(policy, conversation_of(1))
        self.initial_active = tuple(self.names[i] for i in self.inter.active_at(self.start))
        self.time: int | None = None  # the time of the test's latest event, in any of its interactions
        self.last: Played | None = None  # the latest event of the current interaction
        self.played: list[Played] = []
        self.violations: list[tuple[int, int, Violation]] = []  # (offset, contact, violation), in every interaction
        self.failures: list[Failure] = []

    def new_contact(self) -> None:
        """``contact``: a new interaction of the same customer; the clock carries on."""
        self.contact += 1
        self.inter = Interaction(self.policy, conversation_of(self.contact))
        self.last = None

    def event(self, step: ast.EventStep) -> None:
        if step.at is not None:
            time = self.start + step.at.seconds * US
        else:
            time = self.start if self.time is None else self.time + US
        self.time = time
        event = _event(self.policy, step, time, self.inter.conversation)
        if self.inter.customer is None and self.policy.reads_customer_history:
            self.inter.bind(self.customer)  # bound at its first event (§7), before step 1 of it (§9)
        judged = tuple(self.names[i] for i in self.inter.active_at(time)) if self.policy.vocabulary[event.type].is_action else None
        self.last = Played(step.span.line, event, judged, self.inter.feed(event), self.contact)
        self.played.append(self.last)
        self.violations.extend((time - self.start, self.contact, v) for v in self.last.decision.violations)

    def violation_texts(self) -> str:
        several = self.contacts > 1
        return "; ".join(_violation_text(at, v, contact if several else None) for at, contact, v in self.violations)

    def state(self) -> State:
        last, inter = self.last, self.inter
        if last is None:
            active = self.initial_active if self.contact == 1 else tuple(self.names[i] for i in inter.active_at(self.time or self.start))
            permitted, forbidden = inter.permissions(self.time if self.time is not None else self.start)
        else:
            active = last.decision.active
            permitted, forbidden = last.decision.permitted_actions, last.decision.forbidden_actions
        several = self.contacts > 1
        return State(
            last.event.type if last else None,
            last.event.time - self.start if last else None,
            last.line if last else None,
            active,
            permitted,
            forbidden,
            tuple(_obligation_text(ob, self.start) for ob in inter.pending),
            tuple(_violation_text(at, v, contact if several else None) for at, contact, v in self.violations),
            self.contact if several else None,
        )

    def expect(self, step: ast.Step) -> None:
        state = self.state()
        inter, last = self.inter, self.last

        def fail(expected: str, found: str) -> None:
            self.failures.append(Failure(self.path, step.span.line, step_text(step), expected, found, state))

        if isinstance(step, ast.ExpectPermission):
            action = step.action.text
            is_permitted = action in state.permitted
            if is_permitted != step.permitted:
                fail(f"`{action}` {'permitted' if step.permitted else 'forbidden'}", _permission_found(self.policy, action, is_permitted, state.active))
        elif isinstance(step, ast.ExpectObligation):
            action = step.action.text
            due = _due_at(step.due, self.start) if step.due is not None else None
            if not any(action in ob.actions and (due is None or ob.due == due) for ob in inter.pending):
                want = f"a pending obligation that `{action}` fulfils" + (f", due at {_due_text(step.due)}" if step.due is not None else "")
                for_action = [_obligation_text(ob, self.start) for ob in inter.pending if action in ob.actions]
                if for_action:
                    found = "an obligation with another deadline: " + "; ".join(for_action)
                elif inter.pending:
                    found = f"no pending obligation that `{action}` fulfils"
                else:
                    found = "no pending obligations"
                fail(want, found)
        elif isinstance(step, ast.ExpectViolation):
            rule = step.rule.text if step.rule is not None else None
            if not any(v.kind == step.kind and (rule is None or rule in v.rules) for _, _, v in self.violations):
                want = f"a {step.kind} violation" + (f" naming `{rule}`" if rule else "") + " so far"
                fail(want, self.violation_texts() or "no violations so far")
        elif isinstance(step, ast.ExpectNoViolations):
            if self.violations:
                fail("no violations so far", self.violation_texts())
        elif isinstance(step, ast.ExpectFired):
            if last is None:
                fail(f"rule `{step.rule.text}` fired at the latest event", "no event yet" + (" in this contact" if self.contact > 1 else ""))
            elif step.rule.text not in last.decision.fired:
                fired = _and_list(last.decision.fired) if last.decision.fired else "no rule"
                fail(f"rule `{step.rule.text}` fired at the latest event", f"{fired} fired at `{last.event.type}` (line {last.line})")


def run_test(policy: CompiledPolicy, test: ast.Test, path: str) -> TestResult:
    """Replay one `test` block (a fresh interaction, and one more at each `contact`) and check its expectations."""
    run = _Run(policy, test, path)
    for step in test.steps:
        if isinstance(step, ast.EventStep):
            run.event(step)
        elif isinstance(step, ast.ContactStep):
            run.new_contact()
        else:
            run.expect(step)
    return TestResult(test.name.value, path, test.span.line, tuple(run.failures), tuple(run.played), run.initial_active, run.contacts)


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
