"""`test` blocks (language.md §7): scenarios replayed in a fresh interaction, with expectations."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from . import ast
from .compiler import CompiledPolicy, literal_value
from .evaluator import Decision, Interaction, Violation
from .events import Event
from .timefmt import US, format_time

#: Test scenarios start at this instant (offsets in messages are relative to it).
EPOCH = 0


@attrs.frozen(slots=True)
class Failure:
    path: str
    line: int
    expected: str
    found: str


@attrs.frozen(slots=True)
class TestResult:
    name: str
    path: str
    line: int
    failures: tuple[Failure, ...]
    decisions: tuple[tuple[Event, Decision], ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures


def _offset(us: int | None) -> str:
    if us is None:
        return "no deadline"
    secs = (us - EPOCH) / US
    return f"{secs:g}s"


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


def _violations_text(vs: list[Violation]) -> str:
    if not vs:
        return "no violations"
    return "; ".join(f"{v.kind} ({', '.join(v.rules)})" for v in vs)


def run_test(policy: CompiledPolicy, test: ast.Test, path: str) -> TestResult:
    inter = Interaction(policy, "test")
    failures: list[Failure] = []
    violations: list[Violation] = []
    last: Decision | None = None
    time = None
    decisions: list[tuple[Event, Decision]] = []
    for step in test.steps:
        line = step.span.line
        if isinstance(step, ast.EventStep):
            if step.at is not None:
                time = EPOCH + step.at.seconds * US
            else:
                time = EPOCH if time is None else time + US
            event = _event(policy, step, time)
            last = inter.feed(event)
            decisions.append((event, last))
            violations.extend(last.violations)
        elif isinstance(step, ast.ExpectPermission):
            permitted, forbidden = (last.permitted_actions, last.forbidden_actions) if last else inter.permissions(EPOCH)
            action = step.action.text
            is_permitted = action in permitted
            if is_permitted != step.permitted:
                want = "permitted" if step.permitted else "forbidden"
                now = "permitted" if is_permitted else "forbidden"
                failures.append(
                    Failure(path, line, f"`{action}` {want}", f"`{action}` {now}; permitted: {', '.join(permitted) or 'none'}; forbidden: {', '.join(forbidden) or 'none'}")
                )
        elif isinstance(step, ast.ExpectObligation):
            action = step.action.text
            due = EPOCH + step.due.seconds * US if step.due is not None else None
            pending = list(inter.pending)
            ok = any(action in ob.actions and (step.due is None or ob.due == due) for ob in pending)
            if not ok:
                found = "; ".join(f"{'/'.join(ob.actions)} due {_offset(ob.due)} ({ob.rule})" for ob in pending) or "no pending obligations"
                want = f"an obligation that `{action}` fulfils" + (f", due at {step.due.text}" if step.due is not None else "")
                failures.append(Failure(path, line, want, found))
        elif isinstance(step, ast.ExpectViolation):
            rule = step.rule.text if step.rule is not None else None
            ok = any(v.kind == step.kind and (rule is None or rule in v.rules) for v in violations)
            if not ok:
                want = f"a {step.kind} violation" + (f" naming `{rule}`" if rule else "")
                failures.append(Failure(path, line, want, _violations_text(violations)))
        elif isinstance(step, ast.ExpectNoViolations):
            if violations:
                failures.append(Failure(path, line, "no violations", _violations_text(violations)))
        elif isinstance(step, ast.ExpectFired):
            fired = last.fired if last else ()
            if step.rule.text not in fired:
                failures.append(Failure(path, line, f"rule `{step.rule.text}` fired at the latest event", "fired: " + (", ".join(fired) or "none")))
    return TestResult(test.name.value, path, test.span.line, tuple(failures), tuple(decisions))


def sibling_tests(policy_path: str) -> Path | None:
    """``NAME.test.esc`` beside ``NAME.esc``, if it exists."""
    p = Path(policy_path)
    candidate = p.with_name(p.stem + ".test.esc")
    return candidate if candidate.is_file() else None


def run_tests(policy: CompiledPolicy, tests: list[tuple[ast.Test, str]], pattern: str | None = None) -> Iterator[TestResult]:
    for test, path in tests:
        if pattern and not (fnmatch.fnmatch(test.name.value, pattern) or pattern.lower() in test.name.value.lower()):
            continue
        yield run_test(policy, test, path)
