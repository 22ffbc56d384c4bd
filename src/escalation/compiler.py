"""Checked AST -> the executable form the evaluator runs.

Expressions become closures ``fn(state, attrs, now)``: ``state`` is the list of
temporal-operator values of one conversation, ``attrs`` the attributes of the
event a pattern is matched against (inside brackets), ``now`` the time in
microseconds. Identical temporal expressions share one slot of state. Tables
indexed by event type let the evaluator touch only what an event can change.
"""

from __future__ import annotations

import hashlib
import operator
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs

from . import ast
from .checker import CheckedPolicy, load_checked
from .timefmt import US
from .vocabulary import EventType

Fn = Callable[[list[Any], dict[str, Any] | None, int], Any]
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


@attrs.frozen(slots=True)
class TypePlan:
    """What an event of one type touches: the evaluator's dispatch table (§6)."""

    is_action: bool
    on_rules: tuple[OnRule, ...]
    ops: tuple[tuple[int, Op], ...]  # operators whose pattern or since-pattern has this type
    windows: tuple[tuple[int, int], ...]  # (slot, window) of the windowed ones among them
    step5: tuple[OnRule | WhileRule, ...]  # on rules of this type and the while rules to re-evaluate, source order
    judges: tuple[WhileRule, ...]  # while rules that permit or forbid this action


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
        fn = self.let_fns.get(name)
        if fn is None:
            # lets are compiled in dependency order, so this is only reached for forward references
            fn = self.expr(self.lets_ast[name].expr, None)
            self.let_fns[name] = fn
        return fn

    def expr(self, e: ast.Expr, scope: EventType | None) -> Fn:
        if isinstance(e, ast.IntLit | ast.StringLit | ast.BoolLit):
            value: Any = e.value
            return lambda s, a, now: value
        if isinstance(e, ast.DurationLit):
            micro = e.seconds * US
            return lambda s, a, now: micro
        if isinstance(e, ast.NameRef):
            name = e.name
            if scope is not None and scope.field(name) is not None:
                return lambda s, a, now: a[name]  # type: ignore[index]
            if name in self.lets_ast:
                return self.let_fn(name)
            return lambda s, a, now: name  # an enum member
        if isinstance(e, ast.Group):
            return self.expr(e.expr, scope)
        if isinstance(e, ast.Not):
            inner = self.expr(e.operand, scope)
            return lambda s, a, now: not inner(s, a, now)
        if isinstance(e, ast.BoolOp):
            left, right = self.expr(e.left, scope), self.expr(e.right, scope)
            if e.op == "and":
                return lambda s, a, now: left(s, a, now) and right(s, a, now)
            return lambda s, a, now: left(s, a, now) or right(s, a, now)
        if isinstance(e, ast.Arith):
            left, right = self.expr(e.left, scope), self.expr(e.right, scope)
            if e.op == "+":
                return lambda s, a, now: left(s, a, now) + right(s, a, now)
            return lambda s, a, now: left(s, a, now) - right(s, a, now)
        if isinstance(e, ast.Compare):
            left, right = self.expr(e.left, scope), self.expr(e.right, scope)
            cmp = _CMP[e.op]
            return lambda s, a, now: cmp(left(s, a, now), right(s, a, now))
        if isinstance(e, ast.In):
            left = self.expr(e.left, scope)
            members = [self.expr(m, scope) for m in e.members]
            try:
                constant = frozenset(m([], None, 0) for m in members)
            except (IndexError, TypeError, KeyError):
                return lambda s, a, now: left(s, a, now) in {m(s, a, now) for m in members}
            return lambda s, a, now: left(s, a, now) in constant
        if isinstance(e, ast.Count | ast.Seen):
            window = e.window.seconds * US if isinstance(e, ast.Count) and e.window is not None else None
            key: tuple[Any, ...] = ("count", e.pattern, e.since, window)
            kind = "wcount" if window is not None else "count"
            i = self.op(key, lambda: Op(kind, self.pattern(e.pattern), self.pattern(e.since) if e.since else None, window or 0, source=e))
            if isinstance(e, ast.Seen) and window is None:
                return lambda s, a, now: s[i] > 0
            if window is not None:
                return lambda s, a, now: _window_count(s[i], now - window)
            return lambda s, a, now: s[i]
        if isinstance(e, ast.Last):
            field = self.vocab[e.pattern.event.text].field(e.attr.text)
            assert field is not None
            default: Any = literal_value(e.default) if e.default is not None else field.default
            if field.type == "duration" and e.default is None and isinstance(default, int):
                default = default * US
            key = ("last", e.attr.text, e.pattern)
            i = self.op(key, lambda: Op("last", self.pattern(e.pattern), attr=e.attr.text, source=e))
            if isinstance(e.default, ast.NameRef) and e.default.name in self.lets_ast:  # `else` a let: its value
                fallback = self.let_fn(e.default.name)
                return lambda s, a, now: fallback(s, a, now) if s[i] is None else s[i]
            return lambda s, a, now: default if s[i] is None else s[i]
        if isinstance(e, ast.TimeSince):
            key = ("time", e.pattern)
            i = self.op(key, lambda: Op("time", self.pattern(e.pattern), source=e))
            return lambda s, a, now: INF if s[i] is None else now - s[i]
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

    def run(self) -> CompiledPolicy:
        policy = self.checked.policy
        self.let_reads: dict[str, frozenset[int]] = {}
        for name in self.checked.let_order:
            self.let_fns[name] = self.expr(self.lets_ast[name].expr, None)
            self.let_reads[name] = self.reads(self.lets_ast[name].expr)
        while_rules: list[WhileRule] = []
        on_rules: dict[str, list[OnRule]] = {}
        for index, rule in enumerate(policy.rules):
            trigger = rule.trigger
            if isinstance(trigger, ast.While):
                permits = frozenset(e.action.text for e in rule.effects if isinstance(e, ast.Permission) and e.effect == "permit")
                forbids = frozenset(e.action.text for e in rule.effects if isinstance(e, ast.Permission) and e.effect == "forbid")
                cond = self.expr(trigger.cond, None)
                reads = self.reads(trigger.cond)
                timed = any(self.ops[i].kind in ("wcount", "time") for i in reads)
                while_rules.append(
                    WhileRule(index, len(while_rules), rule.name.text, cond, permits, forbids, self.requires(rule), rule.severity or "medium", rule.because, reads, timed)
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
            again = [r for r in while_rules if r.timed or (r.reads & touched)]
            plans[etype] = TypePlan(
                et.is_action,
                tuple(on_rules.get(etype, ())),
                tuple((i, self.ops[i]) for i in ops_by_type.get(etype, ())),
                tuple((i, self.ops[i].window) for i in ops_by_type.get(etype, ()) if self.ops[i].kind == "wcount"),
                tuple(sorted([*on_rules.get(etype, ()), *again], key=lambda r: r.index)),
                tuple(r for r in while_rules if etype in r.permits or etype in r.forbids),
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
        )
        from . import codegen
        from .evaluator import codegen_helpers

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


def _window_count(times: deque[int], low: int) -> int:
    """How many of the (ascending) ``times`` are at or after ``low``."""
    n = len(times)
    for t in times:
        if t >= low:
            break
        n -= 1
    return n


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
