"""A reference interpreter: language.md §4–§6 read literally, slow and plain on purpose.

It keeps the whole history of one interaction and answers every expression by
walking the AST and rescanning that history; nothing is incremental. It shares
no code with the compiler or the evaluator, so the two can be checked against
each other (tests/properties/test_differential.py). Only the results of matching a pattern
against an event already in the history, and the value of a ``let`` on the first
``upto`` events at a time, are remembered: they never change (without the second,
lets that read others twice, ``let a2 = a1 + a1``, would cost exponential time).

Customers (§9), the obvious slow way: a :class:`ReferenceCustomer` keeps its whole
history as (event, interaction) entries. An operator written `across contacts`
reads the interaction's own history while it is unbound and the customer history
once it is bound; each own event remembers how far the customer history went and
whether the interaction was bound just before it, so that an expression "on the
first ``upto`` events" reads the matching prefix of both. The brackets of every
`across contacts` pattern are matched once, when an event enters the customer
history, by the interaction it belongs to.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import attrs

from .check import CheckedPolicy
from .lang import DURATION, US, EventType, ast
from .runtime import Event

#: ``time since`` a pattern that never matched: larger than every duration.
INF = float("inf")
LEVEL_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

Record = dict[str, Any]


@attrs.define(eq=False)
class _Obligation:
    """A pending obligation: what §6 step 5 created, with the rule and `require` it came from."""

    n: int
    id: str
    rule: ast.Rule
    require: ast.Require
    created_at: int
    due: int | None

    @property
    def actions(self) -> list[str]:
        return list(dict.fromkeys(p.event.text for p in self.require.patterns))

    @property
    def before(self) -> str | None:
        return self.require.before.text if self.require.before is not None else None

    def to_dict(self) -> Record:
        return {
            "id": self.id,
            "rule": self.rule.name.text,
            "actions": self.actions,
            "created_at": self.created_at,
            "due": self.due,
            "before": self.before,
        }

    def violation(self, kind: str) -> Record:
        name = self.rule.name.text
        return _violation(kind, name, [name], None, self.id, self.rule.severity or "medium", self.rule.because or f"rule `{name}`: {kind}")


def _violation(kind: str, rule: str, rules: list[str], action: str | None, obligation: str | None, severity: str, message: str) -> Record:
    return {"kind": kind, "rule": rule, "rules": rules, "action": action, "obligation": obligation, "severity": severity, "message": message}


class CustomerEntry(NamedTuple):
    """An event of a customer history, the interaction it belongs to, and its bracket matches (pattern id -> bool)."""

    event: Event
    owner: ReferenceInteraction
    matched: dict[int, bool]


class ReferenceCustomer:
    """A customer's history: every event of its bound interactions from their binding event on, in input order."""

    def __init__(self, checked: CheckedPolicy, customer: str) -> None:
        self.customer = customer
        self.history: list[CustomerEntry] = []
        self.patterns: list[ast.Pattern] = _across_patterns(checked)


def _across_patterns(checked: CheckedPolicy) -> list[ast.Pattern]:
    """The patterns (and since patterns) of every operator written `across contacts`, wherever it stands."""
    out: dict[int, ast.Pattern] = {}
    roots: list[object] = [*checked.policy.lets, *checked.policy.rules]
    for root in roots:
        for node in ast.walk(root):
            if isinstance(node, ast.Count | ast.Seen | ast.Last | ast.TimeSince) and node.across:
                out[id(node.pattern)] = node.pattern
                since = getattr(node, "since", None)
                if since is not None:
                    out[id(since)] = since
    return list(out.values())


def _matched(matched: dict[int, bool], pattern: ast.Pattern) -> bool:
    return matched[id(pattern)]


class Context(NamedTuple):
    """Just before an own event (or now): was the interaction bound, and how long was its customer history."""

    bound: bool
    customer_len: int


class ReferenceInteraction:
    """One interaction under one checked policy; :meth:`feed` follows §6 steps 1–6 one by one."""

    def __init__(self, checked: CheckedPolicy, conversation: str) -> None:
        self.conversation = conversation
        self.calendar = checked.calendar
        self.customer: ReferenceCustomer | None = None
        self.contexts: list[Context] = []  # per own event: the context just before it
        self.last_active: set[str] = set()
        self.vocabulary: dict[str, EventType] = checked.vocabulary
        self.lets: dict[str, ast.Expr] = {let.name.text: let.expr for let in checked.policy.lets}
        self.rules: list[ast.Rule] = checked.policy.rules
        self.while_rules = [r for r in self.rules if isinstance(r.trigger, ast.While)]
        self.defaults: dict[str, ast.Default] = {d.action.text: d for d in checked.policy.defaults}
        self.actions = sorted(name for name, et in self.vocabulary.items() if et.is_action)
        self.history: list[Event] = []
        self.pending: list[_Obligation] = []
        self.created = 0
        self._match_memo: dict[tuple[int, int], bool] = {}
        self._let_memo: dict[tuple[str, int, int], Any] = {}  # (let, upto, now) -> value; emptied at each event

    def bind(self, customer: ReferenceCustomer) -> None:
        """Bind to ``customer`` just before feeding the binding event (§9)."""
        self.customer = customer

    def context(self, upto: int) -> Context:
        """The context of "the first ``upto`` events": before own event ``upto``, or now."""
        if upto < len(self.contexts):
            return self.contexts[upto]
        return Context(self.customer is not None, len(self.customer.history) if self.customer is not None else 0)

    def across_entries(self, upto: int) -> list[tuple[Event, Callable[[ast.Pattern], bool]]] | None:
        """The customer history an `across contacts` operator reads at ``upto`` (None: the own history)."""
        ctx = self.context(upto)
        if not ctx.bound or self.customer is None:
            return None
        return [(e.event, partial(_matched, e.matched)) for e in self.customer.history[: ctx.customer_len]]

    def own_entries(self, upto: int) -> list[tuple[Event, Callable[[ast.Pattern], bool]]]:
        """The interaction's own first ``upto`` events, each with its (remembered) matching."""
        return [(self.history[k], partial(self.matches_at, k)) for k in range(upto)]

    def matches_at(self, k: int, pattern: ast.Pattern) -> bool:
        """:meth:`matches` with the event first."""
        return self.matches(pattern, k)

    def entries(self, node: ast.Count | ast.Seen | ast.Last | ast.TimeSince, upto: int) -> list[tuple[Event, Callable[[ast.Pattern], bool]]]:
        """The history an operator reads: the customer's (across contacts, bound) or the interaction's own."""
        if node.across:
            found = self.across_entries(upto)
            if found is not None:
                return found
        return self.own_entries(upto)

    # ------------------------------------------------------------ expressions

    def value(self, expr: ast.Expr, upto: int, now: int, subject: Event | None = None) -> Any:
        """``expr`` on the first ``upto`` events of the history at time ``now``.

        ``subject`` is the event whose pattern brackets ``expr`` stands in: its
        attributes come first when a bare name is resolved.
        """
        if isinstance(expr, ast.IntLit | ast.StringLit | ast.BoolLit):
            return expr.value
        if isinstance(expr, ast.DurationLit):
            return expr.seconds * US
        if isinstance(expr, ast.NameRef):
            if subject is not None and self.vocabulary[subject.type].field(expr.name) is not None:
                return subject.attrs[expr.name]
            if expr.name in self.lets:
                key = (expr.name, upto, now)
                if key not in self._let_memo:
                    self._let_memo[key] = self.value(self.lets[expr.name], upto, now)
                return self._let_memo[key]
            return expr.name  # an enum member
        if isinstance(expr, ast.Group):
            return self.value(expr.expr, upto, now, subject)
        if isinstance(expr, ast.Not):
            return not self.value(expr.operand, upto, now, subject)
        if isinstance(expr, ast.BoolOp):
            left = bool(self.value(expr.left, upto, now, subject))
            right = bool(self.value(expr.right, upto, now, subject))
            return (left and right) if expr.op == "and" else (left or right)
        if isinstance(expr, ast.Compare):
            return _CMP[expr.op](self.value(expr.left, upto, now, subject), self.value(expr.right, upto, now, subject))
        if isinstance(expr, ast.Arith):
            left, right = self.value(expr.left, upto, now, subject), self.value(expr.right, upto, now, subject)
            return left + right if expr.op == "+" else left - right
        if isinstance(expr, ast.In):
            members = [self.value(m, upto, now, subject) for m in expr.members]
            return self.value(expr.left, upto, now, subject) in members
        if isinstance(expr, ast.Count):
            return self.count(expr.pattern, expr.since, expr.window, self.entries(expr, upto), now)
        if isinstance(expr, ast.Seen):
            return self.count(expr.pattern, expr.since, expr.window, self.entries(expr, upto), now) >= 1
        if isinstance(expr, ast.Last):
            for event, hit in reversed(self.entries(expr, upto)):
                if hit(expr.pattern):
                    return event.attrs[expr.attr.text]
            return self.last_default(expr, upto, now, subject)
        if isinstance(expr, ast.TimeSince):
            for event, hit in reversed(self.entries(expr, upto)):
                if hit(expr.pattern):
                    return now - event.time
            return INF
        raise AssertionError(f"unknown expression {expr!r}")  # pragma: no cover

    @staticmethod
    def count(
        pattern: ast.Pattern, since: ast.Pattern | None, window: ast.DurationLit | None, entries: list[tuple[Event, Callable[[ast.Pattern], bool]]], now: int
    ) -> int:
        """§5 `count P [since Q] [within D]` over ``entries``: an event matching Q resets the count and is not counted."""
        n = 0
        for event, hit in entries:
            if since is not None and hit(since):
                n = 0
            elif hit(pattern) and (window is None or now - window.seconds * US <= event.time <= now):
                n += 1
        return n

    def last_default(self, expr: ast.Last, upto: int, now: int, subject: Event | None) -> Any:
        """`last a of P`'s value until P happens: its `else` (a literal, or a `let` read now), or the attribute's default."""
        if expr.default is not None:
            return self.value(expr.default, upto, now, subject)
        field = self.vocabulary[expr.pattern.event.text].field(expr.attr.text)
        assert field is not None and field.has_default
        if field.type == DURATION and isinstance(field.default, int):
            return field.default * US
        return field.default

    def match(self, pattern: ast.Pattern, event: Event, upto: int) -> bool:
        """Does ``event`` match ``pattern``? Its brackets read the first ``upto`` events, at the event's time."""
        if pattern.event.text != event.type:
            return False
        return pattern.cond is None or bool(self.value(pattern.cond, upto, event.time, event))

    def matches(self, pattern: ast.Pattern, k: int) -> bool:
        """``match`` for the ``k``-th event of the history, on the history before it (remembered: it never changes)."""
        key = (id(pattern), k)
        hit = self._match_memo.get(key)
        if hit is None:
            hit = self._match_memo[key] = self.match(pattern, self.history[k], k)
        return hit

    # ------------------------------------------------------------ rules and permissions

    def active(self, upto: int, now: int) -> list[ast.Rule]:
        """The `while` rules whose condition holds on the first ``upto`` events at ``now``, in source order."""
        return [r for r in self.while_rules if isinstance(r.trigger, ast.While) and self.value(r.trigger.cond, upto, now)]

    def permissions(self, active: list[ast.Rule]) -> tuple[list[str], list[str]]:
        """§6 step 6: (permitted, forbidden), sorted, given the active `while` rules."""
        permitted: list[str] = []
        forbidden: list[str] = []
        for action in self.actions:
            forbids = [r for r in active if _effects(r, "forbid", action)]
            permits = [r for r in active if _effects(r, "permit", action)]
            default = self.defaults.get(action)
            if forbids or (not permits and default is not None and default.effect == "forbid"):
                forbidden.append(action)
            else:
                permitted.append(action)
        return permitted, forbidden

    def initial_permissions(self) -> tuple[list[str], list[str]]:
        """The permissions before the first event: every `while` rule on the empty history."""
        return self.permissions(self.active(0, 0))

    def judge(self, action: str, upto: int, now: int) -> Record | None:
        """§6 step 2: is ``action`` at ``now`` forbidden on the first ``upto`` events?"""
        active = self.active(upto, now)
        forbids = [r for r in active if _effects(r, "forbid", action)]
        if forbids:
            names = [r.name.text for r in forbids]
            severity = max((r.severity or "medium" for r in forbids), key=LEVEL_RANK.__getitem__)
            message = next((r.because for r in forbids if r.because), None) or f"`{action}` was forbidden by `{names[0]}`"
            return _violation("forbidden_action", names[0], names, action, None, severity, message)
        default = self.defaults.get(action)
        if default is not None and default.effect == "forbid" and not any(_effects(r, "permit", action) for r in active):
            severity = default.severity.text if default.severity is not None else "medium"
            return _violation("forbidden_action", "default", ["default"], action, None, severity, f"`{action}` is forbidden by default")
        return None

    def create(self, rule: ast.Rule, require: ast.Require, t: int) -> _Obligation:
        self.created += 1
        within = require.within
        if isinstance(within, ast.WorkingDays):
            due: int | None = self.calendar.due(t, within.count.value)
        else:
            due = t + within.seconds * US if within is not None else None
        return _Obligation(self.created, f"{self.conversation}#{self.created}", rule, require, t, due)

    # ------------------------------------------------------------ one event

    def feed(self, event: Event) -> Record:
        """§6 for one validated event of this interaction (times must not go backwards)."""
        t = event.time
        before = len(self.history)
        violations: list[Record] = []
        self._let_memo.clear()

        # 1. deadlines strictly earlier than t, by deadline then creation
        missed = sorted((ob for ob in self.pending if ob.due is not None and ob.due < t), key=lambda ob: (ob.due, ob.n))
        self.pending = [ob for ob in self.pending if ob not in missed]
        violations += [ob.violation("missed_deadline") for ob in missed]

        # 2. the action, judged at t on the history before it; then what it fulfils
        fulfilled: list[str] = []
        if self.vocabulary[event.type].is_action:
            judged = self.judge(event.type, before, t)
            if judged is not None:
                violations.append(judged)
            done = [ob for ob in self.pending if any(self.match(p, event, before) for p in ob.require.patterns)]
            self.pending = [ob for ob in self.pending if ob not in done]
            fulfilled = [ob.id for ob in done]

        # 3. before-events
        broken = [ob for ob in self.pending if ob.before == event.type]
        self.pending = [ob for ob in self.pending if ob not in broken]
        violations += [ob.violation("unfulfilled") for ob in broken]

        # the while rules as they stood after step 5 of the previous event (all inactive before the first)
        was_active = self.last_active

        # 4. state: the event enters this history, and (bound) the customer's, its across brackets matched once
        self.contexts.append(self.context(before))
        if self.customer is not None:
            matched = {id(p): self.match(p, event, before) for p in self.customer.patterns}
            self.customer.history.append(CustomerEntry(event, self, matched))
        self.history.append(event)

        # 5. rules in source order: patterns on the history before the event, conditions after it
        fired: list[str] = []
        created: list[_Obligation] = []
        active: list[ast.Rule] = []
        for rule in self.rules:
            trigger = rule.trigger
            if isinstance(trigger, ast.On):
                if not self.match(trigger.pattern, event, before):
                    continue
                if trigger.cond is not None and not self.value(trigger.cond, before + 1, t):
                    continue
                fired.append(rule.name.text)
            else:
                if not self.value(trigger.cond, before + 1, t):
                    continue
                active.append(rule)
                if rule.name.text in was_active:
                    continue
            created += [self.create(rule, e, t) for e in rule.effects if isinstance(e, ast.Require)]
        self.pending += created

        self.last_active = {r.name.text for r in active}

        # 6. permissions
        permitted, forbidden = self.permissions(active)
        return {
            "violations": violations,
            "fulfilled": fulfilled,
            "created": [ob.to_dict() for ob in created],
            "fired": fired,
            "active": [r.name.text for r in active],
            "permitted": permitted,
            "forbidden": forbidden,
        }

    def close(self, as_of: int | None) -> tuple[list[Record], list[Record]]:
        """The end of the input: (violations of obligations due before ``as_of``, the obligations still open)."""
        if as_of is None:
            return [], [ob.to_dict() for ob in self.pending]
        missed = sorted((ob for ob in self.pending if ob.due is not None and ob.due < as_of), key=lambda ob: (ob.due, ob.n))
        return [ob.violation("missed_deadline") for ob in missed], [ob.to_dict() for ob in self.pending if ob not in missed]


def _effects(rule: ast.Rule, effect: str, action: str) -> bool:
    """Does ``rule`` say ``permit action`` (or ``forbid action``)?"""
    return any(isinstance(e, ast.Permission) and e.effect == effect and e.action.text == action for e in rule.effects)
