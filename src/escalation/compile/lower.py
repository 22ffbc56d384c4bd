"""Checked AST -> the executable form the evaluator runs.

Expressions become closures ``fn(state, attrs, now)``: ``state`` is the list of
temporal-operator values of one conversation, ``attrs`` the attributes of the
event a pattern is matched against (inside brackets), ``now`` the time in
microseconds. Identical temporal expressions share one slot of state. Tables
indexed by event type let the evaluator touch only what an event can change.

A ``let`` is evaluated at most once per evaluation: inside, closures take a fourth
argument, a memo of the values of the lets already computed, so that lets reading
others several times (``let a2 = a1 + a1``) cost their size, not the size of their
expansion. A ``while`` rule that reads the clock (a window or a ``time since``) also
gets a *clock* closure that returns its value and the earliest instant at which that
value can change with time alone, so that events of other types skip it until then.
"""

from __future__ import annotations

import hashlib
import operator
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, cast

import attrs

from ..check import CheckedPolicy, load_checked
from ..lang import US, EventType, ast

Fn = Callable[[list[Any], dict[str, Any] | None, int], Any]
#: The inner form of a compiled expression: ``fn(state, attrs, now, memo)``; ``memo`` maps a let's index to its value
#: (it defaults to None, so that an expression that reads no memoised let is its own three-argument closure).
class Fn4(Protocol):
    def __call__(self, s: list[Any], a: dict[str, Any] | None, now: int, m: dict[int, Any] | None = None, /) -> Any: ...


#: A clock closure ``fn(state, now, memo) -> (value, slope, next)``: ``value`` changes with time alone at the
#: rate ``slope`` (per microsecond; numbers only) until ``next``, the earliest instant it may do otherwise.
Clock = Callable[[list[Any], int, dict[int, Any]], tuple[Any, int, float]]
INF = float("inf")
#: Lets whose expansion (lets they read inlined) has at most this many nodes are inlined; larger ones are memoised.
INLINE_NODES = 12
_UNSET: Any = object()
LEVEL_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@attrs.frozen(slots=True)
class PatternFn:
    """A compiled pattern: the event type, and the bracket condition (None: always)."""

    event: str
    cond: Fn | None
    source: ast.Pattern


@attrs.frozen(slots=True)
class Op:
    """One temporal operator's slot. kind: count | wcount | last | time."""

    kind: str
    pattern: PatternFn
    since: PatternFn | None = None
    window: int = 0  # microseconds, for wcount
    attr: str = ""  # for last
    source: ast.Expr | None = None

    def initial(self) -> Any:
        if self.kind == "count":
            return 0
        if self.kind == "wcount":
            return deque()
        return None


@attrs.frozen(slots=True)
class RequireSpec:
    index: int  # position in CompiledPolicy.requires (snapshots refer to it)
    rule: str
    alternatives: tuple[PatternFn, ...]
    actions: tuple[str, ...]
    within: int | None  # microseconds
    before: str | None
    severity: str
    message: str | None


@attrs.frozen(slots=True)
class OnRule:
    index: int  # source order among all rules
    name: str
    pattern: PatternFn
    cond: Fn | None
    requires: tuple[RequireSpec, ...]


@attrs.frozen(slots=True)
class WhileRule:
    index: int
    position: int  # among the while rules
    name: str
    cond: Fn
    permits: frozenset[str]
    forbids: frozenset[str]
    requires: tuple[RequireSpec, ...]
    severity: str
    message: str | None
    reads: frozenset[int] = frozenset()  # the operator slots its condition reads (through lets)
    timed: bool = False  # it reads a window or a `time since`, so its value changes with time alone
    timer: int = -1  # among the timed rules (Interaction.wake), -1 when not timed
    clock: Callable[[list[Any], int], tuple[Any, float]] | None = None  # timed: (value, next instant it may change)


@attrs.frozen(slots=True)
class TypePlan:
    """What an event of one type touches: the evaluator's dispatch table (§6)."""

    is_action: bool
    on_rules: tuple[OnRule, ...]
    ops: tuple[tuple[int, Op], ...]  # operators whose pattern or since-pattern has this type
    windows: tuple[tuple[int, int], ...]  # (slot, window) of every window the step reads outside clock closures: expired first
    step5: tuple[OnRule | WhileRule, ...]  # on rules of this type and the while rules whose inputs it changes, source order
    judges: tuple[WhileRule, ...]  # while rules that permit or forbid this action
    step5_full: tuple[OnRule | WhileRule, ...] = ()  # step5 and the other timed while rules, once one of them may have changed
    guarded: frozenset[int] = frozenset()  # positions of those other timed rules: re-evaluated only when their instant has come


@attrs.frozen(slots=True, eq=False)
class CompiledPolicy:
    """Everything the evaluator needs, immutable and safe to share between threads."""

    checked: CheckedPolicy
    name: str
    version: str | None
    sha256: str
    vocabulary: dict[str, EventType]
    actions: tuple[str, ...]  # sorted
    ops: tuple[Op, ...]
    ops_by_type: dict[str, tuple[int, ...]]  # event type -> ops whose pattern or since-pattern has that type
    while_rules: tuple[WhileRule, ...]
    on_rules_by_type: dict[str, tuple[OnRule, ...]]
    requires: tuple[RequireSpec, ...]
    rule_order: tuple[str, ...]  # every rule name in source order
    severity_of: dict[str, str]  # rule -> its severity (medium unless written)
    because_of: dict[str, str | None]
    default_forbid: dict[str, str]  # action -> severity of its default
    lets: dict[str, Fn]
    compile_expr: Callable[[ast.Expr, EventType | None], Fn]
    plans: dict[str, TypePlan] = attrs.field(factory=dict)
    feeders: dict[str, Callable[..., Any]] = attrs.field(factory=dict)  # generated step functions (codegen.py)
    generated: str = ""  # their source
    permission_cache: dict[tuple[int, ...], tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = attrs.field(factory=dict)
    step_rules_cache: dict[str, tuple[OnRule | WhileRule, ...]] = attrs.field(factory=dict)
    state_template: tuple[Any, ...] = ()
    window_slots: tuple[int, ...] = ()
    timers: int = 0  # how many while rules are timed (the length of Interaction.wake)

    def initial_state(self) -> list[Any]:
        """A new conversation's operator slots (windows get their own deques)."""
        state = list(self.state_template)
        for i in self.window_slots:
            state[i] = deque()
        return state

    def step_rules(self, etype: str) -> tuple[OnRule | WhileRule, ...]:
        """§6 step 5 at a first event: the on rules of ``etype`` and every while rule, in source order."""
        rules = self.step_rules_cache.get(etype)
        if rules is None:
            rules = tuple(sorted([*self.on_rules_by_type.get(etype, ()), *self.while_rules], key=lambda r: r.index))
            self.step_rules_cache[etype] = rules
        return rules

    def permissions(self, active: tuple[int, ...]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """(permitted, forbidden, active rule names) for the while rules at indexes ``active`` (§6 step 6)."""
        cached = self.permission_cache.get(active)
        if cached is not None:
            return cached
        forbidden: set[str] = set()
        permitted: set[str] = set()
        for i in active:
            rule = self.while_rules[i]
            forbidden |= rule.forbids
            permitted |= rule.permits
        allowed = tuple(a for a in self.actions if a not in forbidden and (a in permitted or a not in self.default_forbid))
        denied = tuple(a for a in self.actions if a not in allowed)
        result = (allowed, denied, tuple(self.while_rules[i].name for i in active))
        if len(self.permission_cache) < 65536:
            self.permission_cache[active] = result
        return result


class _Compiler:
    def __init__(self, checked: CheckedPolicy) -> None:
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
        if isinstance(e, ast.Count | ast.Seen):
            window = e.window.seconds * US if isinstance(e, ast.Count) and e.window is not None else None
            key: tuple[Any, ...] = ("count", e.pattern, e.since, window)
            kind = "wcount" if window is not None else "count"
            i = self.op(key, lambda: Op(kind, self.pattern(e.pattern), self.pattern(e.since) if e.since else None, window or 0, source=e))
            if isinstance(e, ast.Seen) and window is None:
                return lambda s, a, now, m=None: s[i] > 0
            if window is not None:
                return lambda s, a, now, m=None: _window_count(s[i], now - window)
            return lambda s, a, now, m=None: s[i]
        if isinstance(e, ast.Last):
            default = self.last_default(e)
            key = ("last", e.attr.text, e.pattern)
            i = self.op(key, lambda: Op("last", self.pattern(e.pattern), attr=e.attr.text, source=e))
            if isinstance(e.default, ast.NameRef) and e.default.name in self.lets_ast:  # `else` a let: its value
                fallback = self.let_ref(e.default.name)
                return lambda s, a, now, m=None: fallback(s, None, now, m) if s[i] is None else s[i]
            return lambda s, a, now, m=None: default if s[i] is None else s[i]
        if isinstance(e, ast.TimeSince):
            key = ("time", e.pattern)
            i = self.op(key, lambda: Op("time", self.pattern(e.pattern), source=e))
            return lambda s, a, now, m=None: INF if s[i] is None else now - s[i]
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
        if isinstance(e, ast.Count | ast.Seen):
            window = e.window.seconds * US if isinstance(e, ast.Count) and e.window is not None else None
            i = self.op_index[("count", e.pattern, e.since, window)]
            if window is None:
                if isinstance(e, ast.Seen):
                    return lambda s, now, m: (s[i] > 0, 0, INF)
                return lambda s, now, m: (s[i], 0, INF)
            span = window

            def wcount(s: list[Any], now: int, m: dict[int, Any]) -> tuple[Any, int, float]:
                w: deque[int] = s[i]
                low = now - span
                while w and w[0] < low:
                    w.popleft()
                return (len(w), 0, w[0] + span + 1 if w else INF)  # the oldest leaves at w[0] + span + 1

            return wcount
        if isinstance(e, ast.Last):
            i = self.op_index[("last", e.attr.text, e.pattern)]
            if isinstance(e.default, ast.NameRef) and e.default.name in self.lets_ast:
                fallback = self.let_clock(e.default.name)
                return lambda s, now, m: fallback(s, now, m) if s[i] is None else (s[i], 0, INF)
            default = self.last_default(e)
            return lambda s, now, m: (default if s[i] is None else s[i], 0, INF)
        if isinstance(e, ast.TimeSince):
            i = self.op_index[("time", e.pattern)]
            return lambda s, now, m: (INF, 0, INF) if s[i] is None else (now - s[i], 1, INF)
        raise AssertionError(f"cannot compile {e!r}")  # pragma: no cover

    # -- policy
    def requires(self, rule: ast.Rule) -> tuple[RequireSpec, ...]:
        out: list[RequireSpec] = []
        for effect in rule.effects:
            if isinstance(effect, ast.Require):
                out.append(
                    RequireSpec(
                        len(self.all_requires) + len(out),
                        rule.name.text,
                        tuple(self.pattern(p) for p in effect.patterns),
                        tuple(dict.fromkeys(p.event.text for p in effect.patterns)),
                        effect.within.seconds * US if effect.within is not None else None,
                        effect.before.text if effect.before is not None else None,
                        rule.severity or "medium",
                        rule.because,
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
            if isinstance(node, ast.Count | ast.Seen):
                window = node.window.seconds * US if isinstance(node, ast.Count) and node.window is not None else None
                out.add(self.op_index[("count", node.pattern, node.since, window)])
            elif isinstance(node, ast.Last):
                out.add(self.op_index[("last", node.attr.text, node.pattern)])
                if isinstance(node.default, ast.NameRef) and node.default.name in self.let_reads:
                    out |= self.let_reads[node.default.name]
            elif isinstance(node, ast.TimeSince):
                out.add(self.op_index[("time", node.pattern)])
            elif isinstance(node, ast.NameRef):
                out |= self.let_reads.get(node.name, frozenset())
            elif not isinstance(node, ast.Pattern):
                stack.extend(ast.children(node))
        return frozenset(out)

    def expired_windows(self, etype: str, judges: tuple[WhileRule, ...], on_rules: list[OnRule], ops: list[int]) -> tuple[tuple[int, int], ...]:
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
        return tuple(sorted((i, self.ops[i].window) for i in slots if self.ops[i].kind == "wcount"))

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
                timed = any(self.ops[i].kind in ("wcount", "time") for i in reads)
                timer, clock = -1, None
                if timed:
                    timer, clock = timers, _clock_outer(self.clock(trigger.cond))
                    timers += 1
                requires = self.requires(rule)
                while_rules.append(
                    WhileRule(index, len(while_rules), rule.name.text, cond, permits, forbids, requires, rule.severity or "medium", rule.because, reads, timed, timer, clock)
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
            later = [r for r in while_rules if r.timed and not r.reads & touched]  # only time changes them
            judges = tuple(r for r in while_rules if etype in r.permits or etype in r.forbids)
            by_order: Callable[[OnRule | WhileRule], int] = lambda r: r.index  # noqa: E731
            plans[etype] = TypePlan(
                et.is_action,
                tuple(on_rules.get(etype, ())),
                tuple((i, self.ops[i]) for i in ops_by_type.get(etype, ())),
                self.expired_windows(etype, judges, on_rules.get(etype, []), ops_by_type.get(etype, [])),
                tuple(sorted([*on_rules.get(etype, ()), *again], key=by_order)),
                judges,
                tuple(sorted([*on_rules.get(etype, ()), *again, *later], key=by_order)),
                frozenset(r.position for r in later),
            )
        source = self.checked.source.encode("utf-8")
        compiled = CompiledPolicy(
            checked=self.checked,
            name=policy.name.value,
            version=policy.version.value if policy.version is not None else None,
            sha256=hashlib.sha256(source).hexdigest(),
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
            state_template=tuple(None if op.kind == "wcount" else op.initial() for op in self.ops),
            window_slots=tuple(i for i, op in enumerate(self.ops) if op.kind == "wcount"),
            timers=timers,
        )
        from ..runtime.interaction import codegen_helpers
        from . import codegen

        feeders, generated = codegen.build(self, compiled, codegen_helpers(compiled))
        compiled.feeders.update(feeders)
        return attrs.evolve(compiled, generated=generated, feeders=compiled.feeders, permission_cache=compiled.permission_cache, step_rules_cache=compiled.step_rules_cache)


def literal_value(lit: ast.Literal) -> Any:
    """A literal's runtime value (durations in microseconds, enum members as strings)."""
    if isinstance(lit, ast.DurationLit):
        return lit.seconds * US
    if isinstance(lit, ast.NameRef):
        return lit.name
    return lit.value


def _outer(fn: Fn4) -> Fn:
    """The three-argument form of an inner closure: each call has a memo of its own."""
    return lambda s, a, now: fn(s, a, now, {})


def _clock_outer(fn: Clock) -> Callable[[list[Any], int], tuple[Any, float]]:
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


def _window_count(times: deque[int], low: int) -> int:
    """How many of the (ascending) ``times`` are at or after ``low``.

    In a step the window has just dropped what left it, so the first test answers; a query
    (a later ``now``, which must not change the state) bisects, in C, instead of walking.
    """
    if not times or times[0] >= low:
        return len(times)
    return len(times) - bisect_left(times, low)


def compile_policy(checked: CheckedPolicy, source_bytes: bytes | None = None) -> CompiledPolicy:
    """Compile a checked policy. ``source_bytes`` (the file's bytes) fixes the policy hash."""
    compiled = _Compiler(checked).run()
    if source_bytes is not None:
        compiled = attrs.evolve(compiled, sha256=hashlib.sha256(source_bytes).hexdigest())
    return compiled


def load_compiled(path: str) -> CompiledPolicy:
    """Read, check and compile a policy file (raises PolicyError)."""
    from pathlib import Path

    checked = load_checked(path)
    return compile_policy(checked, Path(path).read_bytes())
