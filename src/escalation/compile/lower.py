"""Checked AST -> the executable form the evaluator runs (the records of ir.py).

Expressions become closures ``fn(state, attrs, now)``: ``state`` is the list of
temporal-operator values of one conversation, ``attrs`` the attributes of the
event a pattern is matched against (inside brackets), ``now`` the time in
microseconds. Identical temporal expressions share one slot of state; what a slot
holds and how it is read is its operator's class (operators.py). Tables indexed by
event type let the evaluator touch only what an event can change.

A ``let`` is evaluated at most once per evaluation: inside, closures take a fourth
argument, a memo of the values of the lets already computed, so that lets reading
others several times (``let a2 = a1 + a1``) cost their size, not the size of their
expansion. A ``while`` rule that reads the clock (a window or a ``time since``) also
gets a *clock* closure that returns its value and the earliest instant at which that
value can change with time alone, so that events of other types skip it until then.

:func:`compile_policy` lowers a checked policy and has codegen.py print its step functions.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable
from typing import Any, cast

import attrs

from ..check import CheckedPolicy
from ..lang import US, EventType, ast
from . import codegen
from .ir import (
    CUSTOMER,
    INF,
    Clock,
    CompiledPolicy,
    Fn,
    Fn4,
    Lowered,
    OnRule,
    Op,
    PatternFn,
    PlannedOp,
    RequireSpec,
    RuleClock,
    TypePlan,
    WhileRule,
    Window,
)
from .operators import Operator, WindowCount, operator_for, operator_of
from .values import INLINE_NODES, literal_value

_UNSET: Any = object()

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class Lowerer:
    """A checked policy -> the records of ir.py, its expressions as closures (one lowering per policy)."""

    def __init__(self, checked: CheckedPolicy, sha256: str, backend: str | None = None) -> None:
        self.sha256 = sha256
        self.backend = backend
        self.checked = checked
        self.vocab = checked.vocabulary
        self.lets_ast = {let.name.text: let for let in checked.policy.lets}
        self.let_fns: dict[str, Fn] = {}
        self.let_refs: dict[str, Fn4] = {}  # a let's value, inlined or memoised
        self.let_clocks: dict[str, Clock] = {}
        self.let_cost: dict[str, int] = {}  # nodes of its expansion (a memoised let read counts 1)
        self.memo_index: dict[str, int] = {}  # the memoised lets: their index in a memo
        self.let_memo_use: dict[str, bool] = {}
        self.ops: list[Op] = []
        self.op_index: dict[tuple[Any, ...], int] = {}
        self.all_requires: list[RequireSpec] = []

    # -- expressions
    def pattern(self, p: ast.Pattern) -> PatternFn:
        et = self.vocab[p.event.text]
        return PatternFn(p.event.text, self.expr(p.cond, et) if p.cond is not None else None, p)

    def op(self, key: tuple[Any, ...], make: Callable[[], Op]) -> int:
        index = self.op_index.get(key)
        if index is None:
            made = make()  # may register operators nested in its brackets first
            index = len(self.ops)
            self.ops.append(made)
            self.op_index[key] = index
        return index

    def slot(self, node: ast.Expr, operator: Operator) -> int:
        """The slot of a temporal operator's expression (registered on first sight)."""
        return self.op(operator.key(node), lambda: operator.make(node, self.pattern))

    def let_fn(self, name: str) -> Fn:
        """A let's value as a closure of three arguments (each call has its own memo, if it needs one)."""
        fn = self.let_fns.get(name)
        if fn is None:
            ref = self.let_ref(name)
            fn = self.let_fns[name] = _outer(ref) if self.let_uses_memo(name) else cast(Fn, ref)
        return fn

    def let_uses_memo(self, name: str) -> bool:
        """Does reading this let read a memoised one (itself, or one it reads)?"""
        uses = self.let_memo_use.get(name)
        if uses is None:
            self.let_ref(name)
            uses = self.let_memo_use[name] = name in self.memo_index or self.uses_memo(self.lets_ast[name].expr, None)
        return uses

    def uses_memo(self, e: ast.Expr, scope: EventType | None) -> bool:
        """Does evaluating ``e`` read a memoised let? (If not, its inner closure runs without a memo.)"""
        stack: list[Any] = [e]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.NameRef):
                if (scope is None or scope.field(node.name) is None) and node.name in self.lets_ast and self.let_uses_memo(node.name):
                    return True
            elif isinstance(node, ast.Last):
                default = node.default
                if isinstance(default, ast.NameRef) and default.name in self.lets_ast and self.let_uses_memo(default.name):
                    return True
            elif not isinstance(node, ast.Pattern):
                stack.extend(ast.children(node))
        return False

    def cost(self, e: ast.Expr) -> int:
        """How many nodes ``e`` evaluates, lets expanded as the compiler inlines them (brackets of patterns excluded)."""
        n = 0
        stack: list[Any] = [e]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.NameRef) and node.name in self.lets_ast:
                self.let_ref(node.name)
                n += 1 if node.name in self.memo_index else self.let_cost[node.name]
            elif not isinstance(node, ast.Pattern):
                n += 1
                stack.extend(ast.children(node))
        return n

    def let_ref(self, name: str) -> Fn4:
        """A let read: its body itself when its expansion is small, else a read of the memo that computes it once."""
        ref = self.let_refs.get(name)
        if ref is None:
            expr = self.lets_ast[name].expr
            body = self.expr4(expr, None)  # compiles the lets it reads first
            cost = self.cost(expr)
            self.let_cost[name] = cost
            if cost <= INLINE_NODES:
                ref = body
            else:
                j = self.memo_index[name] = len(self.memo_index)

                def ref(s: list[Any], a: dict[str, Any] | None, now: int, m: dict[int, Any] | None = None, /) -> Any:
                    v = m.get(j, _UNSET)  # type: ignore[union-attr]  # a memoised let is only read with a memo
                    if v is _UNSET:
                        v = m[j] = body(s, None, now, m)  # type: ignore[index]
                    return v

            self.let_refs[name] = ref
        return ref

    def last_default(self, e: ast.Last) -> Any:
        """The value of ``last a of P`` before P happens, when its ``else`` is not a let."""
        field = self.vocab[e.pattern.event.text].field(e.attr.text)
        assert field is not None
        default: Any = literal_value(e.default) if e.default is not None else field.default
        if field.type == "duration" and e.default is None and isinstance(default, int):
            default = default * US
        return default

    def expr(self, e: ast.Expr, scope: EventType | None) -> Fn:
        """``e`` as a closure ``fn(state, attrs, now)``: the inner one itself, or with a memo of its own when it needs one."""
        inner = self.expr4(e, scope)
        return _outer(inner) if self.uses_memo(e, scope) else cast(Fn, inner)

    def expr4(self, e: ast.Expr, scope: EventType | None) -> Fn4:
        if isinstance(e, ast.IntLit | ast.StringLit | ast.BoolLit):
            value: Any = e.value
            return lambda s, a, now, m=None: value
        if isinstance(e, ast.DurationLit):
            micro = e.seconds * US
            return lambda s, a, now, m=None: micro
        if isinstance(e, ast.NameRef):
            name = e.name
            if scope is not None and scope.field(name) is not None:
                return lambda s, a, now, m=None: a[name]
            if name in self.lets_ast:
                return self.let_ref(name)
            return lambda s, a, now, m=None: name  # an enum member
        if isinstance(e, ast.Group):
            return self.expr4(e.expr, scope)
        if isinstance(e, ast.Not):
            inner = self.expr4(e.operand, scope)
            return lambda s, a, now, m=None: not inner(s, a, now, m)
        if isinstance(e, ast.BoolOp):
            left, right = self.expr4(e.left, scope), self.expr4(e.right, scope)
            if e.op == "and":
                return lambda s, a, now, m=None: left(s, a, now, m) and right(s, a, now, m)
            return lambda s, a, now, m=None: left(s, a, now, m) or right(s, a, now, m)
        if isinstance(e, ast.Arith):
            left, right = self.expr4(e.left, scope), self.expr4(e.right, scope)
            if e.op == "+":
                return lambda s, a, now, m=None: left(s, a, now, m) + right(s, a, now, m)
            return lambda s, a, now, m=None: left(s, a, now, m) - right(s, a, now, m)
        if isinstance(e, ast.Compare):
            left, right = self.expr4(e.left, scope), self.expr4(e.right, scope)
            cmp = _CMP[e.op]
            return lambda s, a, now, m=None: cmp(left(s, a, now, m), right(s, a, now, m))
        if isinstance(e, ast.In):
            left = self.expr4(e.left, scope)
            members = [self.expr4(m, scope) for m in e.members]
            try:
                constant = frozenset(m([], None, 0, {}) for m in members)
            except (IndexError, TypeError, KeyError):
                return lambda s, a, now, m=None: left(s, a, now, m) in {f(s, a, now, m) for f in members}
            return lambda s, a, now, m=None: left(s, a, now, m) in constant
        operator = operator_for(e)
        if operator is not None:
            i = self.slot(e, operator)
            if isinstance(e, ast.Last):
                if isinstance(e.default, ast.NameRef) and e.default.name in self.lets_ast:  # `else` a let: its value
                    return operator.read(i, e, self.let_ref(e.default.name), None)
                return operator.read(i, e, None, self.last_default(e))
            return operator.read(i, e, None, None)
        raise AssertionError(f"cannot compile {e!r}")  # pragma: no cover

    # -- clocks: a value with the instant it may next change with time alone (compiled after expr4)
    def let_clock(self, name: str) -> Clock:
        clock = self.let_clocks.get(name)
        if clock is None:
            body = self.clock(self.lets_ast[name].expr)
            j = self.memo_index.get(name)
            if j is None:
                clock = body
            else:

                def clock(s: list[Any], now: int, m: dict[int, Any]) -> tuple[Any, int, float]:
                    r: tuple[Any, int, float] | None = m.get(j)
                    if r is None:
                        r = m[j] = body(s, now, m)
                    return r

            self.let_clocks[name] = clock
        return clock

    def clock(self, e: ast.Expr) -> Clock:
        """``e`` (outside brackets) as a :data:`Clock`: same value as :meth:`expr4`, with its slope and next change.

        Only windows and ``time since`` change with time alone. A window's count drops when its
        oldest event leaves it; ``time since`` grows by one per microsecond; a comparison of two
        sides growing at different rates changes no earlier than where the lines cross. So a
        comparison's next instant is a lower bound of the true one: evaluating again before it
        is never wrong, only wasted. Windows read here are expired at ``now`` (the step's time).
        """
        if isinstance(e, ast.IntLit | ast.StringLit | ast.BoolLit | ast.DurationLit) or (
            isinstance(e, ast.NameRef) and e.name not in self.lets_ast
        ):
            value = self.expr4(e, None)([], None, 0, {})
            return lambda s, now, m: (value, 0, INF)
        if isinstance(e, ast.NameRef):
            return self.let_clock(e.name)
        if isinstance(e, ast.Group):
            return self.clock(e.expr)
        if isinstance(e, ast.Not):
            inner = self.clock(e.operand)

            def not_(s: list[Any], now: int, m: dict[int, Any]) -> tuple[Any, int, float]:
                v, _, n = inner(s, now, m)
                return (not v, 0, n)

            return not_
        if isinstance(e, ast.BoolOp):
            left, right = self.clock(e.left), self.clock(e.right)
            is_and = e.op == "and"

            def boolop(s: list[Any], now: int, m: dict[int, Any]) -> tuple[Any, int, float]:
                v, _, n = left(s, now, m)
                if (not v) if is_and else v:  # decided by the left side until it changes
                    return (v, 0, n)
                w, _, n2 = right(s, now, m)
                return (w, 0, n if n < n2 else n2)

            return boolop
        if isinstance(e, ast.Arith):
            left, right = self.clock(e.left), self.clock(e.right)
            sign = 1 if e.op == "+" else -1

            def arith(s: list[Any], now: int, m: dict[int, Any]) -> tuple[Any, int, float]:
                a, ka, na = left(s, now, m)
                b, kb, nb = right(s, now, m)
                v = a + b if sign == 1 else a - b
                k = ka + sign * kb if -INF < v < INF else 0  # INF (never happened) and NaN stay as they are
                return (v, k, na if na < nb else nb)

            return arith
        if isinstance(e, ast.Compare):
            left, right = self.clock(e.left), self.clock(e.right)
            cmp = _CMP[e.op]

            def compare(s: list[Any], now: int, m: dict[int, Any]) -> tuple[Any, int, float]:
                a, ka, na = left(s, now, m)
                b, kb, nb = right(s, now, m)
                n = na if na < nb else nb
                if ka != kb:
                    c = _crossing(a - b, ka - kb, now)
                    n = c if c < n else n
                return (cmp(a, b), 0, n)

            return compare
        if isinstance(e, ast.In):
            left = self.clock(e.left)
            members = [self.clock(x) for x in e.members]

            def in_(s: list[Any], now: int, m: dict[int, Any]) -> tuple[Any, int, float]:
                a, ka, n = left(s, now, m)
                values = set()
                for member in members:
                    b, kb, nb = member(s, now, m)
                    values.add(b)
                    n = nb if nb < n else n
                    if ka != kb:
                        c = _crossing(a - b, ka - kb, now)
                        n = c if c < n else n
                return (a in values, 0, n)

            return in_
        operator = operator_for(e)
        if operator is not None:
            i = self.op_index[operator.key(e)]
            if isinstance(e, ast.Last):
                if isinstance(e.default, ast.NameRef) and e.default.name in self.lets_ast:
                    return operator.clock(i, e, self.let_clock(e.default.name), None)
                return operator.clock(i, e, None, self.last_default(e))
            return operator.clock(i, e, None, None)
        raise AssertionError(f"cannot compile {e!r}")  # pragma: no cover

    # -- policy
    def requires(self, rule: ast.Rule) -> tuple[RequireSpec, ...]:
        out: list[RequireSpec] = []
        for effect in rule.effects:
            if isinstance(effect, ast.Require):
                within = effect.within
                out.append(
                    RequireSpec(
                        len(self.all_requires) + len(out),
                        rule.name.text,
                        tuple(self.pattern(p) for p in effect.patterns),
                        tuple(dict.fromkeys(p.event.text for p in effect.patterns)),
                        within.seconds * US if isinstance(within, ast.DurationLit) else None,
                        effect.before.text if effect.before is not None else None,
                        rule.severity or "medium",
                        rule.because,
                        within.count.value if isinstance(within, ast.WorkingDays) else None,
                    )
                )
        self.all_requires.extend(out)
        return tuple(out)

    def reads(self, e: ast.Expr) -> frozenset[int]:
        """The operator slots ``e`` reads (not those inside patterns' brackets), through lets."""
        out: set[int] = set()
        stack: list[Any] = [e]
        while stack:
            node = stack.pop()
            operator = operator_for(node)
            if operator is not None:
                out.add(self.op_index[operator.key(node)])
                if isinstance(node, ast.Last) and isinstance(node.default, ast.NameRef) and node.default.name in self.let_reads:
                    out |= self.let_reads[node.default.name]
            elif isinstance(node, ast.NameRef):
                out |= self.let_reads.get(node.name, frozenset())
            elif not isinstance(node, ast.Pattern):
                stack.extend(ast.children(node))
        return frozenset(out)

    def expired_windows(self, etype: str, judges: tuple[WhileRule, ...], on_rules: list[OnRule], ops: list[int]) -> tuple[Window, ...]:
        """(slot, window) of the windows an event of ``etype`` reads outside clock closures, or appends to.

        The step expires them at the event's time before it reads any, so a count over a window
        never walks past events that have left it: each event leaves its window once.
        """
        slots: set[int] = set(ops)
        conds: list[ast.Expr | None] = [self.rules_ast[r.index].trigger.cond for r in judges]
        for rule in on_rules:
            conds += [rule.pattern.source.cond, self.rules_ast[rule.index].trigger.cond]
        for i in ops:
            op = self.ops[i]
            conds += [p.source.cond for p in (op.pattern, op.since) if p is not None and p.event == etype]
        conds += [p.source.cond for spec in self.all_requires for p in spec.alternatives if p.event == etype]
        for cond in conds:
            if cond is not None:
                slots |= self.reads(cond)
        return tuple(sorted(Window(i, self.ops[i].window) for i in slots if self.ops[i].kind == WindowCount.kind))

    def run(self) -> CompiledPolicy:
        policy = self.checked.policy
        self.rules_ast = policy.rules  # a property that rebuilds the list: read it once
        self.let_reads: dict[str, frozenset[int]] = {}
        for name in self.checked.let_order:
            self.let_fn(name)
            self.let_reads[name] = self.reads(self.lets_ast[name].expr)
        while_rules: list[WhileRule] = []
        timers = 0
        on_rules: dict[str, list[OnRule]] = {}
        for index, rule in enumerate(policy.rules):
            trigger = rule.trigger
            if isinstance(trigger, ast.While):
                permits = frozenset(e.action.text for e in rule.effects if isinstance(e, ast.Permission) and e.effect == "permit")
                forbids = frozenset(e.action.text for e in rule.effects if isinstance(e, ast.Permission) and e.effect == "forbid")
                cond = self.expr(trigger.cond, None)
                reads = self.reads(trigger.cond)
                timed = any(operator_of(self.ops[i]).timed for i in reads)
                timer, clock = -1, None
                if timed:
                    timer, clock = timers, _clock_outer(self.clock(trigger.cond))
                    timers += 1
                requires = self.requires(rule)
                watch = tuple(sorted(i for i in reads if self.ops[i].scope == CUSTOMER))
                severity = rule.severity or "medium"
                position = len(while_rules)
                while_rules.append(
                    WhileRule(index, position, rule.name.text, cond, permits, forbids, requires, severity, rule.because, reads, timed, timer, clock, bool(watch), watch)
                )
            else:
                on = OnRule(
                    index,
                    rule.name.text,
                    self.pattern(trigger.pattern),
                    self.expr(trigger.cond, None) if trigger.cond is not None else None,
                    self.requires(rule),
                )
                on_rules.setdefault(on.pattern.event, []).append(on)
        ops_by_type: dict[str, list[int]] = {}
        for i, op in enumerate(self.ops):
            ops_by_type.setdefault(op.pattern.event, []).append(i)
            if op.since is not None and op.since.event != op.pattern.event:
                ops_by_type.setdefault(op.since.event, []).append(i)
        plans: dict[str, TypePlan] = {}
        for etype, et in self.vocab.items():
            touched = set(ops_by_type.get(etype, ()))
            again = [r for r in while_rules if r.reads & touched]  # their inputs change
            # a customer-scope input may have been changed by another interaction since: checked at each event (TypePlan.watched)
            watched = [r for r in while_rules if r.shared and not r.reads & touched]
            later = [r for r in while_rules if r.timed and not r.shared and not r.reads & touched]  # only time changes them
            judges = tuple(r for r in while_rules if etype in r.permits or etype in r.forbids)
            by_order: Callable[[OnRule | WhileRule], int] = lambda r: r.index  # noqa: E731
            plans[etype] = TypePlan(
                et.is_action,
                tuple(on_rules.get(etype, ())),
                tuple(PlannedOp(i, self.ops[i]) for i in ops_by_type.get(etype, ())),
                self.expired_windows(etype, judges, on_rules.get(etype, []), ops_by_type.get(etype, [])),
                tuple(sorted([*on_rules.get(etype, ()), *again, *watched], key=by_order)),
                judges,
                tuple(sorted([*on_rules.get(etype, ()), *again, *watched, *later], key=by_order)),
                frozenset(r.position for r in later),
                frozenset(r.position for r in watched),
                tuple(sorted(i for i in touched if self.ops[i].scope == CUSTOMER)),
            )
        compiled = CompiledPolicy(
            checked=self.checked,
            name=policy.name.value,
            version=policy.version.value if policy.version is not None else None,
            sha256=self.sha256,
            backend=self.backend,
            vocabulary=self.vocab,
            actions=tuple(sorted(n for n, e in self.vocab.items() if e.is_action)),
            ops=tuple(self.ops),
            ops_by_type={k: tuple(v) for k, v in ops_by_type.items()},
            while_rules=tuple(while_rules),
            on_rules_by_type={k: tuple(v) for k, v in on_rules.items()},
            requires=tuple(self.all_requires),
            rule_order=tuple(r.name.text for r in policy.rules),
            severity_of={r.name.text: r.severity or "medium" for r in policy.rules},
            because_of={r.name.text: r.because for r in policy.rules},
            default_forbid={d.action.text: (d.severity.text if d.severity else "medium") for d in policy.defaults if d.effect == "forbid"},
            lets=dict(self.let_fns),
            compile_expr=self.expr,
            plans=plans,
            state_template=tuple(None if operator_of(op).fresh else operator_of(op).initial() for op in self.ops),
            window_slots=tuple(i for i, op in enumerate(self.ops) if operator_of(op).fresh),
            timers=timers,
            reads_customer_history=self.checked.reads_customer_history,
            calendar=self.checked.calendar,
            customer_slots=tuple(i for i, op in enumerate(self.ops) if op.scope == CUSTOMER),
        )
        lowered = Lowered(dict((name, let.expr) for name, let in self.lets_ast.items()), dict(self.memo_index), dict(self.op_index), tuple(self.rules_ast))
        return attrs.evolve(compiled, code=codegen.generate(lowered, compiled))


def _outer(fn: Fn4) -> Fn:
    """The three-argument form of an inner closure: each call has a memo of its own."""
    return lambda s, a, now: fn(s, a, now, {})


def _clock_outer(fn: Clock) -> RuleClock:
    """A rule's clock: (its value, the earliest instant after ``now`` at which it may change), with a memo of its own."""

    def clock(s: list[Any], now: int) -> tuple[Any, float]:
        v, _, n = fn(s, now, {})
        return v, n

    return clock


def _crossing(d: Any, k: int, now: int) -> float:
    """The earliest instant after ``now`` at which ``d + k * (t - now)`` (k != 0) can reach or leave zero."""
    if not -INF < d < INF:  # never happened (INF) or undefined (NaN): constant
        return INF
    if d == 0:
        return now + 1
    if (d > 0) == (k > 0):  # moving away from zero
        return INF
    return now + max(1, int(abs(d) // abs(k)))


def compile_policy(checked: CheckedPolicy, source_bytes: bytes | None = None, backend: str | None = None) -> CompiledPolicy:
    """Compile a checked policy. ``source_bytes`` (the file's bytes) fixes the policy hash (else its text's UTF-8);
    ``backend`` names the back end its interactions run on (runtime/backend.py; None: the environment's choice)."""
    source = source_bytes if source_bytes is not None else checked.source.encode("utf-8")
    return Lowerer(checked, hashlib.sha256(source).hexdigest(), backend).run()
