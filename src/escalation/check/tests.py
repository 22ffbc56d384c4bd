"""The pass over `test` blocks, and the check of a sibling ``NAME.test.esc`` against its policy.

A step's event must be declared and given its attributes with the right types; offsets run
forwards; an expectation names an action, or a rule of the policy.
"""

from __future__ import annotations

import itertools

import attrs

from ..errors import Diagnostic
from ..lang import EnumType, TimeError, ast, parse_time
from .calendars import duration_bounds
from .context import CheckState, Scope, same_type, show
from .declarations import collect_names, declarations, let_dependencies, let_pass
from .names import event_type, no_attribute, suggest
from .rules import default_pass
from .types import infer

__all__ = ["check_tests", "test_pass"]


def test_pass(c: CheckState) -> None:
    """Each `test` block's steps against the vocabulary and the rules (E011, E014, E022, E029–E032, E041, E042)."""
    on_rules = {n for n, r in c.rules.items() if isinstance(r.trigger, ast.On)}
    for test in c.policy.tests:
        if test.start is not None:
            _time(c, test.start, "the `from` of a test")
        last_at = 0
        time = -1
        for step in test.steps:
            if isinstance(step, ast.EventStep):
                time = step.at.seconds if step.at is not None else (time + 1 if time >= 0 else 0)
                if step.at is not None and step.at.seconds < last_at:
                    c.error("E031", f"`at {step.at.text}` is earlier than the step before it", step.at.span, "steps run forwards in time; order them by their offsets")
                last_at = max(last_at, time)
                et = event_type(c, step.event)
                if et is None:
                    continue
                given = set()
                for arg in step.args:
                    if arg.name.text == "customer":
                        c.error(
                            "E041",
                            "a test step cannot set `customer`",
                            arg.name.span,
                            "every interaction of a test belongs to the customer `test`; write `contact` to start another contact of that customer",
                        )
                        continue
                    f = et.field(arg.name.text)
                    if f is None:
                        no_attribute(c, et, arg.name)
                        continue
                    if arg.name.text in given:
                        c.error("E029", f"`{arg.name.text}` is given twice", arg.name.span, "give each attribute once")
                    given.add(arg.name.text)
                    t = infer(c, arg.value, Scope(), f.type) if not (isinstance(arg.value, ast.NameRef) and not isinstance(f.type, EnumType) and arg.value.name not in c.lets) else None
                    if isinstance(arg.value, ast.NameRef) and not isinstance(f.type, EnumType):
                        c.error("E014", f"`{arg.name.text}` takes {show(f.type)}, not a name", arg.value.span)
                    elif t is not None and not same_type(t, f.type):
                        c.error("E014", f"`{arg.name.text}` takes {show(f.type)}, not {show(t)}", arg.value.span)
                for f in et.fields:
                    if not f.has_default and f.name not in given:
                        c.error("E030", f"`{et.name}` needs the attribute `{f.name}`", step.event.span, f"add `{f.name}=<value>`")
            elif isinstance(step, (ast.ExpectPermission, ast.ExpectObligation)):
                event_type(c, step.action, actions_only=True, what="only actions are permitted, forbidden or owed")
                if isinstance(step, ast.ExpectObligation) and isinstance(step.due, ast.StringLit):
                    _time(c, step.due, "`due`")
            elif isinstance(step, ast.ExpectViolation):
                if step.rule is not None and step.rule.text != "default" and step.rule.text not in c.rules:
                    c.error("E011", f"unknown rule `{step.rule.text}`", step.rule.span, suggest(c, step.rule.text, itertools.chain(c.rules, ["default"]), "name a rule of this policy, or `default`"))
            elif isinstance(step, ast.ExpectFired):
                if step.rule.text not in c.rules:
                    c.error("E011", f"unknown rule `{step.rule.text}`", step.rule.span, suggest(c, step.rule.text, c.rules, "name an `on` rule of this policy"))
                elif step.rule.text not in on_rules:
                    c.error("E032", f"`{step.rule.text}` is a `while` rule; only `on` rules fire", step.rule.span, "test a `while` rule through the permissions or obligations it causes")


def _time(c: CheckState, text: ast.StringLit, what: str) -> None:
    """A string that must be an RFC 3339 time, as in events (E042)."""
    try:
        parse_time(text.value)
    except TimeError:
        c.error("E042", f"{what} is not a time: {text.value!r}", text.span, 'write an RFC 3339 time with its zone, such as "2026-01-05T09:00:00Z"')


def check_tests(policy: ast.Policy, tests: tuple[ast.Test, ...], path: str) -> list[Diagnostic]:
    """Check `test` blocks from a sibling ``NAME.test.esc`` against ``policy``; diagnostics name ``path``."""
    c = CheckState(attrs.evolve(policy, items=tuple(i for i in policy.items if not isinstance(i, ast.Test)) + tests), path, "")
    declarations(c)
    collect_names(c)
    let_dependencies(c)
    let_pass(c)
    default_pass(c)
    c.diagnostics = []  # the policy's own findings are reported when it is checked
    test_pass(c)
    for test in tests:
        duration_bounds(c, test)
    c.diagnostics.sort(key=Diagnostic.sort_key)
    return c.diagnostics
