"""Static checks (language.md §8): names, types, lets, rules, tests.

The checker runs named passes over the whole policy and collects every
diagnostic; it never stops at the first. The result carries what later stages
need: the merged vocabulary, the type and evaluation order of every ``let``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import attrs

from ..errors import Diagnostic, PolicyError, Span
from ..lang import (
    BOOL,
    DURATION,
    INT,
    RESERVED_FIELDS,
    STANDARD,
    STRING,
    EnumType,
    EventType,
    Field,
    Type,
    Value,
    ast,
    type_name,
)
from ..suggest import did_you_mean
from ..syntax import parse, parse_tests, read_source

#: The type of ``time since P``: a duration that may be compared but not added to.
SINCE = "since"
#: The longest chain of lets each reading the next (deeper chains would nest past what evaluation supports).
MAX_LET_CHAIN = 64
LEVELS = ("low", "medium", "high", "critical")


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


@attrs.frozen(slots=True)
class CheckResult:
    diagnostics: list[Diagnostic]
    checked: CheckedPolicy | None  # None when there are errors

    @property
    def ok(self) -> bool:
        return self.checked is not None


#: One check makes at most this many suggestions; later diagnostics keep their plain hint.
MAX_SUGGESTIONS = 100
#: Hints list at most this many names (values of an enum, attributes of an event).
MAX_LISTED = 12


def _listing(names: Sequence[str]) -> str:
    """`a`, `b`, `c` — at most MAX_LISTED of them, then how many more."""
    shown = ", ".join(f"`{n}`" for n in names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def _show(t: Type | None) -> str:
    if t == SINCE:
        return "a duration (`time since`)"
    return type_name(t) if t is not None else "unknown"


def _is_duration(t: Type | None) -> bool:
    return t in (DURATION, SINCE)


def _same_type(a: Type, b: Type) -> bool:
    if a is b:  # an enum type compared with itself: no walk over its members
        return True
    if _is_duration(a) and _is_duration(b):
        return True
    return a == b


@attrs.define
class _Scope:
    """Where an expression stands: inside a pattern's brackets (``event``) or not."""

    event: EventType | None = None


class _Checker:
    def __init__(self, policy: ast.Policy, path: str, source: str) -> None:
        self.policy = policy
        self.path = path
        self.source = source
        self.diagnostics: list[Diagnostic] = []
        self.vocabulary: dict[str, EventType] = dict(STANDARD)
        self.lets: dict[str, ast.Let] = {}
        self.let_types: dict[str, Type | None] = {}
        self.let_values: dict[str, Value | None] = {}
        self.let_order: list[str] = []
        self.used_lets: set[str] = set()
        self.rules: dict[str, ast.Rule] = {}
        self.suggestions_left = MAX_SUGGESTIONS
        self._member_sets: dict[int, tuple[EnumType, frozenset[str]]] = {}

    # -- reporting
    def suggest(self, name: str, candidates: Iterable[str], fallback: str) -> str:
        """A "did you mean" hint, or ``fallback``; only the first MAX_SUGGESTIONS diagnostics get one."""
        if self.suggestions_left <= 0:
            return fallback
        self.suggestions_left -= 1
        match = did_you_mean(name, candidates)
        return f"did you mean `{match}`?" if match else fallback

    def members(self, t: EnumType) -> frozenset[str]:
        """The values of an enum type as a set (an enum may have 100,000 of them)."""
        entry = self._member_sets.get(id(t))
        if entry is None or entry[0] is not t:
            entry = (t, frozenset(t.members))
            self._member_sets[id(t)] = entry
        return entry[1]
    def error(self, code: str, message: str, span: Span, hint: str = "") -> None:
        self.diagnostics.append(Diagnostic(code, "error", message, span, hint, self.path))

    def warning(self, code: str, message: str, span: Span, hint: str = "") -> None:
        self.diagnostics.append(Diagnostic(code, "warning", message, span, hint, self.path))

    # -- passes
    def run(self) -> CheckResult:
        self.declarations()
        self.collect_names()
        self.let_dependencies()
        self.let_depth_pass(self.let_deps)
        self.let_pass()
        self.default_pass()
        self.rule_pass()
        self.obligation_pass()
        self.test_pass()
        self.unused_pass()
        self.diagnostics.sort(key=Diagnostic.sort_key)
        if any(d.is_error for d in self.diagnostics):
            return CheckResult(self.diagnostics, None)
        checked = CheckedPolicy(
            self.policy,
            self.path,
            self.source,
            self.vocabulary,
            {k: v for k, v in self.let_types.items() if v is not None},
            tuple(self.let_order),
            tuple(self.diagnostics),
        )
        return CheckResult(self.diagnostics, checked)

    def declarations(self) -> None:
        """`event` and `action` declarations add to the vocabulary."""
        for decl in self.policy.decls:
            name = decl.name.text
            if name in self.vocabulary:
                where = "the standard vocabulary" if self.vocabulary[name].standard else "an earlier declaration"
                self.error("E021", f"`{name}` is already declared by {where}", decl.name.span, "use the existing name, or choose a new one")
                continue
            fields: list[Field] = []
            seen: set[str] = set()
            for f in decl.fields:
                fname = f.name.text
                if fname in RESERVED_FIELDS:
                    self.error("E026", f"a field may not be named `{fname}`", f.name.span, "`conversation`, `time`, `type` and `id` are keys of every event record")
                    continue
                if fname in seen:
                    self.error("E029", f"the field `{fname}` is declared twice", f.name.span, "remove one of them")
                    continue
                seen.add(fname)
                ftype: Type
                if f.type.base == "enum":
                    members: list[str] = []
                    listed: set[str] = set()
                    for m in f.type.members:
                        if m.text in listed:
                            self.error("E029", f"the value `{m.text}` is listed twice", m.span, "remove one of them")
                        else:
                            listed.add(m.text)
                            members.append(m.text)
                    ftype = EnumType(f"{name}.{fname}", tuple(members))
                else:
                    ftype = f.type.base
                default: Value | None = None
                if f.default is not None:
                    t = self.infer(f.default, _Scope(), ftype)
                    if t is not None and not _same_type(t, ftype):
                        self.error("E014", f"the default of `{fname}` is {_show(t)}, but the field holds {_show(ftype)}", f.default.span)
                    default = _literal_value(f.default)
                fields.append(Field(fname, ftype, default, f.default is not None))
            self.vocabulary[name] = EventType(name, decl.kind == "action", tuple(fields), standard=False)

    def collect_names(self) -> None:
        for item in self.policy.items:
            if isinstance(item, ast.Let):
                if item.name.text in self.lets:
                    self.error("E018", f"`{item.name.text}` is defined twice", item.name.span, "rename one of the two `let`s")
                else:
                    self.lets[item.name.text] = item
            elif isinstance(item, ast.Rule):
                if item.name.text in self.rules:
                    self.error("E017", f"there is already a rule named `{item.name.text}`", item.name.span, "rule names must be unique; rename one")
                else:
                    self.rules[item.name.text] = item

    def let_dependencies(self) -> None:
        """Order the lets so each comes after those it reads; report cycles."""
        deps: dict[str, list[str]] = {}
        for name, let in self.lets.items():
            deps[name] = [n for n in self.let_refs(let.expr, _Scope()) if n in self.lets]
        self.let_deps = deps
        state: dict[str, int] = {}  # 1 visiting, 2 done
        for root in self.lets:
            if state.get(root):
                continue
            stack: list[tuple[str, Iterator[str]]] = [(root, iter(deps[root]))]
            path = [root]
            state[root] = 1
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    stack.pop()
                    path.pop()
                    state[node] = 2
                    self.let_order.append(node)
                    continue
                if state.get(nxt) == 1:
                    cycle = path[path.index(nxt) :] + [nxt]
                    let = self.lets[nxt]
                    if len(cycle) == 2:
                        msg = f"`{nxt}` depends on itself"
                    else:
                        msg = f"`{nxt}` depends on itself through " + " -> ".join(f"`{c}`" for c in cycle)
                    self.error("E015", msg, let.name.span, "a `let` cannot use its own value; count or look back with a temporal operator instead")
                    self.let_types[nxt] = None
                    self.used_lets.update(cycle)
                elif not state.get(nxt):
                    state[nxt] = 1
                    path.append(nxt)
                    stack.append((nxt, iter(deps[nxt])))

    def let_refs(self, expr: ast.Expr | None, scope: _Scope) -> Iterator[str]:
        """Names in ``expr`` that would resolve to a `let` (attributes inside brackets win)."""
        if expr is None:
            return
        todo: list[tuple[object, EventType | None]] = [(expr, scope.event)]
        while todo:
            node, event = todo.pop()
            if isinstance(node, ast.NameRef):
                if event is None or event.field(node.name) is None:
                    yield node.name
            elif isinstance(node, ast.Pattern):
                inner = self.vocabulary.get(node.event.text)
                if node.cond is not None:
                    todo.append((node.cond, inner if inner is not None else EventType("?", False)))
            else:
                for child in ast.children(node):
                    todo.append((child, event))

    def let_depth_pass(self, deps: dict[str, list[str]]) -> None:
        """A chain of lets each reading the next nests as deeply as one long expression (E004)."""
        depth: dict[str, int] = {}
        for name in self.let_order:
            depth[name] = 1 + max((depth.get(d, 0) for d in deps.get(name, ())), default=0)
            if depth[name] > MAX_LET_CHAIN:
                self.error(
                    "E004",
                    f"`{name}` sits at the end of a chain of more than {MAX_LET_CHAIN} lets, each reading the next",
                    self.lets[name].name.span,
                    "shorten the chain: a let can read several others directly",
                )
                self.let_types[name] = None
                return

    def let_pass(self) -> None:
        for name in self.let_order:
            let = self.lets[name]
            if name in self.let_types:  # part of a cycle
                continue
            self.let_types[name] = self.infer(let.expr, _Scope(), None)
            self.let_values[name] = self.fold(let.expr)
        for name in self.lets:
            self.let_types.setdefault(name, None)

    # -- resolution and types
    def event_type(self, name: ast.Name, actions_only: bool = False, what: str = "") -> EventType | None:
        et = self.vocabulary.get(name.text)
        if et is None:
            kinds = (n for n, e in self.vocabulary.items() if e.is_action) if actions_only else iter(self.vocabulary)
            noun = "action" if actions_only else "event or action"
            self.error(
                "E010",
                f"unknown {noun} `{name.text}`",
                name.span,
                self.suggest(name.text, kinds, "declare it with `event` or `action`, or check the spelling"),
            )
            return None
        if actions_only and not et.is_action:
            self.error(
                "E022",
                f"`{name.text}` is an event, not an action; {what or 'only actions may stand here'}",
                name.span,
                "permissions and obligations are about what the agent does (`agent.warn`, `agent.hang_up`, …)",
            )
            return None
        return et

    def check_pattern(self, pattern: ast.Pattern, actions_only: bool = False, what: str = "") -> EventType | None:
        et = self.event_type(pattern.event, actions_only, what)
        known = self.vocabulary.get(pattern.event.text)
        if pattern.cond is not None and known is not None:  # an unknown event's brackets would only add noise
            scope = _Scope(known)
            t = self.infer(pattern.cond, scope, BOOL)
            if t is not None and t != BOOL:
                self.error("E014", f"a pattern's condition must be true or false, not {_show(t)}", pattern.cond.span)
            if self.fold(pattern.cond) is False:
                self.warning("W002", f"this pattern can never match `{pattern.event.text}`: its condition is always false", pattern.cond.span, "check the condition")
        return et

    def resolve_name(self, ref: ast.NameRef, scope: _Scope, expected: Type | None) -> Type | None:
        name = ref.name
        if scope.event is not None:
            f = scope.event.field(name)
            if f is not None:
                return f.type
        if name in self.lets:
            if isinstance(expected, EnumType) and name in self.members(expected):
                self.error(
                    "E016",
                    f"`{name}` is both a `let` and a value of `{expected.owner}`",
                    ref.span,
                    f"rename the `let` `{name}` so that the value is unambiguous",
                )
                return None
            self.used_lets.add(name)
            if name not in self.let_types:  # not yet typed: a let read before it was inferred (cycle or order)
                return None
            return self.let_types[name]
        if isinstance(expected, EnumType):
            if name in self.members(expected):
                return expected
            self.error(
                "E013",
                f"`{name}` is not a value of `{expected.owner}`",
                ref.span,
                self.suggest(name, expected.members, "its values are " + _listing(expected.members)),
            )
            return None
        candidates = itertools.chain(self.lets, (f.name for f in scope.event.fields) if scope.event is not None else ())
        fallback = "define it with `let`" + (f", or use an attribute of `{scope.event.name}`" if scope.event is not None and scope.event.name != "?" else "")
        self.error("E011", f"unknown name `{name}`", ref.span, self.suggest(name, candidates, fallback))
        return None

    def _unresolved_bare(self, expr: ast.Expr, scope: _Scope) -> bool:
        """A bare name that only an expected enum type can give meaning to."""
        if not isinstance(expr, ast.NameRef):
            return False
        if scope.event is not None and scope.event.field(expr.name) is not None:
            return False
        return expr.name not in self.lets

    def infer(self, expr: ast.Expr, scope: _Scope, expected: Type | None) -> Type | None:
        """The type of ``expr``, reporting every problem found below it; None if unknown."""
        if isinstance(expr, ast.IntLit):
            return INT
        if isinstance(expr, ast.DurationLit):
            return DURATION
        if isinstance(expr, ast.StringLit):
            return STRING
        if isinstance(expr, ast.BoolLit):
            return BOOL
        if isinstance(expr, ast.NameRef):
            return self.resolve_name(expr, scope, expected)
        if isinstance(expr, ast.Group):
            return self.infer(expr.expr, scope, expected)
        if isinstance(expr, ast.Not):
            t = self.infer(expr.operand, scope, BOOL)
            self._want_bool(t, expr.operand, "`not`")
            return BOOL
        if isinstance(expr, ast.BoolOp):
            for side in (expr.left, expr.right):
                self._want_bool(self.infer(side, scope, BOOL), side, f"`{expr.op}`")
            return BOOL
        if isinstance(expr, ast.Arith):
            lt = self.infer(expr.left, scope, None)
            rt = self.infer(expr.right, scope, None)
            for side, t in ((expr.left, lt), (expr.right, rt)):
                if t == SINCE:
                    self.error("E028", f"a `time since` cannot be used with `{expr.op}`", side.span, "compare it instead: `time since agent.warn >= 5m`")
                    return None
            if lt is None or rt is None:
                return None
            if lt == rt and lt in (INT, DURATION):
                return lt
            self.error(
                "E014",
                f"`{expr.op}` needs two numbers or two durations, not {_show(lt)} and {_show(rt)}",
                expr.span,
                "write durations with a unit (30s, 2m) and numbers without one",
            )
            return None
        if isinstance(expr, ast.Compare):
            if self._unresolved_bare(expr.left, scope) and not self._unresolved_bare(expr.right, scope):
                rt = self.infer(expr.right, scope, None)
                if rt is None:  # already reported; the bare name cannot be judged
                    return BOOL
                lt = self.infer(expr.left, scope, rt)
            else:
                lt = self.infer(expr.left, scope, None)
                if lt is None and self._unresolved_bare(expr.right, scope):
                    return BOOL
                rt = self.infer(expr.right, scope, lt)
            if lt is None or rt is None:
                return BOOL
            if expr.op in ("==", "!="):
                if not _same_type(lt, rt):
                    hint = "each enum attribute has its own values; compare like with like" if isinstance(lt, EnumType) and isinstance(rt, EnumType) else ""
                    self.error("E014", f"`{expr.op}` compares {_show(lt)} with {_show(rt)}", expr.span, hint)
            elif not ((lt == INT and rt == INT) or (_is_duration(lt) and _is_duration(rt))):
                self.error(
                    "E014",
                    f"`{expr.op}` needs two numbers or two durations, not {_show(lt)} and {_show(rt)}",
                    expr.span,
                    "durations are written with a unit (30s, 2m, 48h); counts are plain numbers",
                )
            return BOOL
        if isinstance(expr, ast.In):
            lt = self.infer(expr.left, scope, None)
            for member in expr.members:
                mt = self.infer(member, scope, lt)
                if lt is not None and mt is not None and not _same_type(lt, mt):
                    self.error("E014", f"the set holds {_show(mt)}, but the left side of `in` is {_show(lt)}", member.span)
            return BOOL
        if isinstance(expr, ast.Count):
            self.check_pattern(expr.pattern)
            if expr.since is not None:
                self.check_pattern(expr.since)
            return INT
        if isinstance(expr, ast.Seen):
            self.check_pattern(expr.pattern)
            if expr.since is not None:
                self.check_pattern(expr.since)
            return BOOL
        if isinstance(expr, ast.TimeSince):
            self.check_pattern(expr.pattern)
            return SINCE
        if isinstance(expr, ast.Last):
            et = self.check_pattern(expr.pattern)
            if et is None:
                return None
            f = et.field(expr.attr.text)
            if f is None:
                self.no_attribute(et, expr.attr)
                return None
            if expr.default is not None:
                dt = self.infer(expr.default, scope, f.type)
                if dt is not None and not _same_type(dt, f.type):
                    self.error("E014", f"the `else` value is {_show(dt)}, but `{f.name}` holds {_show(f.type)}", expr.default.span)
            elif not f.has_default:
                self.error(
                    "E025",
                    f"`last {f.name} of {et.name}` needs an `else` value: `{f.name}` has no default",
                    expr.span,
                    f"add `else <value>`, for example `else {f.type.members[-1]}`" if isinstance(f.type, EnumType) else "add `else <value>`",
                )
            return f.type
        raise AssertionError(f"unknown expression {expr!r}")  # pragma: no cover

    def no_attribute(self, et: EventType, name: ast.Name) -> None:
        names = [x.name for x in et.fields]
        listed = _listing(names) or "no attributes"
        self.error("E012", f"`{et.name}` has no attribute `{name.text}`", name.span, self.suggest(name.text, names, f"`{et.name}` has {listed}"))

    def _want_bool(self, t: Type | None, expr: ast.Expr, where: str) -> None:
        if t is not None and t != BOOL:
            self.error("E014", f"{where} needs true or false, not {_show(t)}", expr.span, "compare it: `count agent.warn >= 2`")

    # -- constant folding (for warnings and the impossible-obligation check)
    def fold(self, expr: ast.Expr | None) -> Value | None:
        """The value of ``expr`` if it is the same at every event, else None."""
        if expr is None:
            return None
        if isinstance(expr, (ast.IntLit, ast.BoolLit, ast.StringLit)):
            return expr.value
        if isinstance(expr, ast.DurationLit):
            return expr.seconds
        if isinstance(expr, ast.Group):
            return self.fold(expr.expr)
        if isinstance(expr, ast.NameRef):
            return self.let_values.get(expr.name) if expr.name in self.lets else None
        if isinstance(expr, ast.Not):
            v = self.fold(expr.operand)
            return (not v) if isinstance(v, bool) else None
        if isinstance(expr, ast.BoolOp):
            a, b = self.fold(expr.left), self.fold(expr.right)
            if expr.op == "and":
                if a is False or b is False:
                    return False
                return True if (a is True and b is True) else None
            if a is True or b is True:
                return True
            return False if (a is False and b is False) else None
        if isinstance(expr, ast.Arith):
            a, b = self.fold(expr.left), self.fold(expr.right)
            if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool) and not isinstance(b, bool):
                return a + b if expr.op == "+" else a - b
            return None
        if isinstance(expr, ast.Compare):
            a, b = self.fold(expr.left), self.fold(expr.right)
            if a is None or b is None or isinstance(a, str) != isinstance(b, str):
                return None
            try:
                return bool(
                    {
                        "==": a == b,
                        "!=": a != b,
                        "<": a < b,  # type: ignore[operator]
                        "<=": a <= b,  # type: ignore[operator]
                        ">": a > b,  # type: ignore[operator]
                        ">=": a >= b,  # type: ignore[operator]
                    }[expr.op]
                )
            except TypeError:
                return None
        return None

    # -- items
    def default_pass(self) -> None:
        seen: dict[str, ast.Default] = {}
        for d in self.policy.defaults:
            if self.event_type(d.action, actions_only=True, what="only actions have defaults") is None:
                continue
            if d.action.text in seen:
                self.error("E019", f"`{d.action.text}` already has a default (line {seen[d.action.text].span.line})", d.span, "keep one `default` line per action")
                continue
            seen[d.action.text] = d
            if d.severity is not None and d.effect == "permit":
                self.warning("W004", "a severity on `default permit` has no effect", d.severity.span, "severities apply to violations; a permitted action is never one")
        self.defaults = seen

    def rule_pass(self) -> None:
        for rule in self.policy.rules:
            trigger = rule.trigger
            if isinstance(trigger, ast.On):
                self.check_pattern(trigger.pattern)
                if trigger.cond is not None:
                    self._condition(trigger.cond, rule, "`if`")
            else:
                self._condition(trigger.cond, rule, "`while`")
            for effect in rule.effects:
                if isinstance(effect, ast.Permission):
                    if isinstance(trigger, ast.On):
                        self.error(
                            "E023",
                            f"`{effect.effect}` in an `on` rule has no effect: permissions hold while a condition holds",
                            effect.span,
                            f"write `while <condition>` instead of `on …`, or use `require` for something owed after `{trigger.pattern.event.text}`",
                        )
                    verb = "permitted" if effect.effect == "permit" else "forbidden"
                    et = self.event_type(effect.action, actions_only=True, what=f"only actions can be {verb}")
                    if et is not None and effect.effect == "permit" and not self._default_forbidden(effect.action.text):
                        self.warning(
                            "W001",
                            f"`{effect.action.text}` is permitted by default, so this `permit` has no effect",
                            effect.span,
                            f"add `default forbid {effect.action.text}` if it should be forbidden until a rule permits it",
                        )
                else:
                    for pattern in effect.patterns:
                        self.check_pattern(pattern, actions_only=True, what="only actions can be required")
                    if effect.before is not None:
                        self.event_type(effect.before)
            notes: dict[type, ast.Note] = {}
            for note in rule.notes:
                if type(note) in notes:
                    word = "because" if isinstance(note, ast.Because) else "severity"
                    self.error("E020", f"rule `{rule.name.text}` has a second `{word}`", note.span, f"a rule has at most one `{word}`; merge them")
                notes.setdefault(type(note), note)

    def _default_forbidden(self, action: str) -> bool:
        d = self.defaults.get(action)
        return d is not None and d.effect == "forbid"

    def _condition(self, cond: ast.Expr, rule: ast.Rule, where: str) -> None:
        t = self.infer(cond, _Scope(), BOOL)
        if t is not None and t != BOOL:
            self.error("E014", f"the {where} condition of `{rule.name.text}` must be true or false, not {_show(t)}", cond.span, "compare it: `count agent.warn >= 2`")
        elif self.fold(cond) is False:
            self.warning("W002", f"the condition of rule `{rule.name.text}` can never hold", cond.span, "check the comparison and the `let`s it reads")

    def obligation_pass(self) -> None:
        """A `require` all of whose actions are forbidden whenever it is created is an error."""
        permitted_somewhere: set[str] = set()
        always_forbidden: set[str] = set()
        for rule in self.policy.rules:
            if not isinstance(rule.trigger, ast.While):
                continue
            value = self.fold(rule.trigger.cond)
            for effect in rule.effects:
                if isinstance(effect, ast.Permission):
                    if effect.effect == "permit" and value is not False:
                        permitted_somewhere.add(effect.action.text)
                    if effect.effect == "forbid" and value is True:
                        always_forbidden.add(effect.action.text)
        for action, d in self.defaults.items():
            if d.effect == "forbid" and action not in permitted_somewhere:
                always_forbidden.add(action)
        for rule in self.policy.rules:
            for effect in rule.effects:
                if not isinstance(effect, ast.Require) or not effect.patterns:
                    continue
                actions = [p.event.text for p in effect.patterns]
                if all(a in always_forbidden for a in actions):
                    names = ", ".join(f"`{a}`" for a in dict.fromkeys(actions))
                    self.error(
                        "E024",
                        f"this obligation can only be met by a forbidden action ({names}), so meeting it is itself a violation",
                        effect.span,
                        "permit the action in a `while` rule, or require another action",
                    )

    def test_pass(self) -> None:
        on_rules = {n for n, r in self.rules.items() if isinstance(r.trigger, ast.On)}
        for test in self.policy.tests:
            last_at = 0
            time = -1
            for step in test.steps:
                if isinstance(step, ast.EventStep):
                    time = step.at.seconds if step.at is not None else (time + 1 if time >= 0 else 0)
                    if step.at is not None and step.at.seconds < last_at:
                        self.error("E031", f"`at {step.at.text}` is earlier than the step before it", step.at.span, "steps run forwards in time; order them by their offsets")
                    last_at = max(last_at, time)
                    et = self.event_type(step.event)
                    if et is None:
                        continue
                    given = set()
                    for arg in step.args:
                        f = et.field(arg.name.text)
                        if f is None:
                            self.no_attribute(et, arg.name)
                            continue
                        if arg.name.text in given:
                            self.error("E029", f"`{arg.name.text}` is given twice", arg.name.span, "give each attribute once")
                        given.add(arg.name.text)
                        t = self.infer(arg.value, _Scope(), f.type) if not (isinstance(arg.value, ast.NameRef) and not isinstance(f.type, EnumType) and arg.value.name not in self.lets) else None
                        if isinstance(arg.value, ast.NameRef) and not isinstance(f.type, EnumType):
                            self.error("E014", f"`{arg.name.text}` takes {_show(f.type)}, not a name", arg.value.span)
                        elif t is not None and not _same_type(t, f.type):
                            self.error("E014", f"`{arg.name.text}` takes {_show(f.type)}, not {_show(t)}", arg.value.span)
                    for f in et.fields:
                        if not f.has_default and f.name not in given:
                            self.error("E030", f"`{et.name}` needs the attribute `{f.name}`", step.event.span, f"add `{f.name}=<value>`")
                elif isinstance(step, (ast.ExpectPermission, ast.ExpectObligation)):
                    self.event_type(step.action, actions_only=True, what="only actions are permitted, forbidden or owed")
                elif isinstance(step, ast.ExpectViolation):
                    if step.rule is not None and step.rule.text != "default" and step.rule.text not in self.rules:
                        self.error("E011", f"unknown rule `{step.rule.text}`", step.rule.span, self.suggest(step.rule.text, itertools.chain(self.rules, ["default"]), "name a rule of this policy, or `default`"))
                elif isinstance(step, ast.ExpectFired):
                    if step.rule.text not in self.rules:
                        self.error("E011", f"unknown rule `{step.rule.text}`", step.rule.span, self.suggest(step.rule.text, self.rules, "name an `on` rule of this policy"))
                    elif step.rule.text not in on_rules:
                        self.error("E032", f"`{step.rule.text}` is a `while` rule; only `on` rules fire", step.rule.span, "test a `while` rule through the permissions or obligations it causes")

    def unused_pass(self) -> None:
        for name, let in self.lets.items():
            if name not in self.used_lets:
                self.warning("W003", f"`{name}` is never used", let.name.span, "remove it, or use it in a rule")


def _literal_value(lit: ast.Literal) -> Value:
    if isinstance(lit, ast.DurationLit):
        return lit.seconds
    if isinstance(lit, ast.NameRef):
        return lit.name
    return lit.value


def check(policy: ast.Policy, path: str = "<policy>", source: str = "") -> CheckResult:
    """Run every check over ``policy``; diagnostics come sorted by position."""
    return _Checker(policy, path, source).run()


def check_source(text: str, path: str = "<policy>") -> CheckResult:
    """Parse and check policy source; a syntax error becomes the only diagnostic."""
    try:
        policy = parse(text, path)
    except PolicyError as err:
        return CheckResult(err.diagnostics, None)
    return check(policy, path, text)


def load_checked(path: str) -> CheckedPolicy:
    """Read, parse and check a policy file; raises PolicyError listing every diagnostic."""
    text = read_source(path)
    result = check_source(text, path)
    if result.checked is None:
        raise PolicyError(result.diagnostics, text)
    return result.checked


def check_tests(policy: ast.Policy, tests: tuple[ast.Test, ...], path: str) -> list[Diagnostic]:
    """Check `test` blocks from a sibling ``NAME.test.esc`` against ``policy``; diagnostics name ``path``."""
    c = _Checker(attrs.evolve(policy, items=tuple(i for i in policy.items if not isinstance(i, ast.Test)) + tests), path, "")
    c.declarations()
    c.collect_names()
    c.let_dependencies()
    c.let_pass()
    c.default_pass()
    c.diagnostics = []  # the policy's own findings are reported when it is checked
    c.test_pass()
    c.diagnostics.sort(key=Diagnostic.sort_key)
    return c.diagnostics


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
