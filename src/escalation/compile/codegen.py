"""Generated Python for the hot path: one specialised step function per event type.

The closures of lower.py stay the reference form of each expression; this module
prints the same expressions as Python source (from the data lowering leaves, :class:`~.ir.Lowered`,
and each temporal operator's class in operators.py), so that a condition such as
``warnings >= max_warnings and abuse_since_warning >= 1`` runs as
``s[0] >= 2 and s[1] >= 1`` instead of seven nested calls. Each event type gets a
function that performs §6's steps for exactly the operators and rules that type can
touch. The source is compiled once per policy and registered in ``linecache`` under
``<escalation:POLICY>``, so tracebacks and debuggers show it; :func:`source_of`
returns it for inspection (`escalation compile --show`). The code is not run here: the
runtime's generated back end (runtime/backend.py) runs it in a namespace holding the
helpers it names (:data:`HELPERS`, the §6 steps of runtime/steps.py and the operators'
helpers), so that this layer never imports the runtime.

Nothing from outside the engine enters the source but through ``repr``: names, strings
and the file name are printed as Python string literals (or not at all), identifiers are
the engine's own (``feed_3``, ``let_0``, ``w2``, ``K5``), numbers are ints the checker
produced. A large ``let`` is printed once, as a function that stores its value in the
per-evaluation memo ``L``, and read as ``(L[j] if j in L else let_j(s, now, L))``, so that
the source, and the work per event, stay linear in the policy's size.
"""

from __future__ import annotations

import linecache
from typing import Any

from ..lang import US, ast
from .ir import CompiledPolicy, GeneratedCode, GroupEntry, Lowered, OnRule, WhileRule
from .operators import helpers as operator_helpers
from .operators import operator_for, operator_of
from .values import literal_value

__all__ = ["HELPERS", "INLINE_WHILE", "generate", "source_of"]

#: The names the generated code calls that the runtime provides (runtime/steps.py and backend.py), besides the
#: constants it is generated with and the operators' helpers: ``interpret`` is the closure back end's step.
HELPERS = frozenset({"expire", "fulfil", "break_before", "rewhile", "create", "judge", "interpret", "permissions", "Decision", "compress"})

#: The operators as printed: a fixed table, so that no text of the policy is pasted into the source.
_OPERATORS = {op: op for op in ("and", "or", "+", "-", "==", "!=", "<", "<=", ">", ">=")}


class _Printer:
    """Expressions -> Python source over ``s`` (state), ``a`` (event attributes), ``now``."""

    def __init__(self, lowered: Lowered, policy: CompiledPolicy) -> None:
        self.lowered = lowered
        self.vocab = policy.vocabulary
        self.consts: dict[str, Any] = {}
        self.const_ids: dict[Any, str] = {}
        self.let_src: dict[str, str] = {}
        self.let_funcs: list[str] = []
        self.while_funcs: dict[str, str] = {}
        self.rules = lowered.rules
        self.group_names: dict[tuple[tuple[int, bool, tuple[int, ...]], ...], str] = {}
        self.memo_reads = 0  # memo reads printed so far: a section that printed some needs `L = {}`

    def const(self, value: Any) -> str:
        key = (type(value), value) if not isinstance(value, frozenset) else ("set", value)
        name = self.const_ids.get(key)
        if name is None:
            name = f"K{len(self.consts)}"
            self.consts[name] = value
            self.const_ids[key] = name
        return name

    def let(self, name: str) -> str:
        """A read of a let: its expansion when small (as the compiler decided), else a read of the memo."""
        src = self.let_src.get(name)
        if src is None:
            body = self.expr(self.lowered.lets[name], None)
            j = self.lowered.memo_index.get(name)
            if j is None:
                src = f"({body})"
            else:
                self.let_funcs.append(f"def let_{j}(s, now, L):\n    v = L[{j}] = {body}\n    return v\n")
                src = f"(L[{j}] if {j} in L else let_{j}(s, now, L))"
            self.let_src[name] = src
        if name in self.lowered.memo_index:
            self.memo_reads += 1
        return src

    def last_fallback(self, e: ast.Last) -> str:
        """The source of ``last``'s value before its pattern happens: its ``else`` let, or a constant."""
        if isinstance(e.default, ast.NameRef) and e.default.name in self.lowered.lets:
            return self.let(e.default.name)
        field = self.vocab[e.pattern.event.text].field(e.attr.text)
        assert field is not None
        value = literal_value(e.default) if e.default is not None else field.default
        if field.type == "duration" and e.default is None and isinstance(value, int):
            value = value * US
        return self.const(value)

    def expr(self, e: ast.Expr, scope: Any) -> str:
        if isinstance(e, ast.BoolLit):
            return "True" if e.value else "False"
        if isinstance(e, ast.IntLit):
            return repr(int(e.value))
        if isinstance(e, ast.StringLit):
            return repr(str(e.value))
        if isinstance(e, ast.DurationLit):
            return repr(int(e.seconds * US))
        if isinstance(e, ast.NameRef):
            if scope is not None and scope.field(e.name) is not None:
                return f"a[{e.name!r}]"
            if e.name in self.lowered.lets:
                return self.let(e.name)
            return repr(str(e.name))
        if isinstance(e, ast.Group):
            return self.expr(e.expr, scope)
        if isinstance(e, ast.Not):
            return f"(not {self.expr(e.operand, scope)})"
        if isinstance(e, ast.BoolOp | ast.Arith | ast.Compare):
            return f"({self.expr(e.left, scope)} {_OPERATORS[e.op]} {self.expr(e.right, scope)})"
        if isinstance(e, ast.In):
            if all(not isinstance(m, ast.NameRef) or m.name not in self.lowered.lets for m in e.members):
                return f"({self.expr(e.left, scope)} in {self.const(frozenset(literal_value(m) for m in e.members))})"
            return f"({self.expr(e.left, scope)} in ({', '.join(self.expr(m, scope) for m in e.members)},))"
        operator = operator_for(e)
        if operator is not None:
            i = self.lowered.slots[operator.key(e)]
            fallback = ""
            if isinstance(e, ast.Last):
                fallback = self.last_fallback(e)
            return operator.read_source(i, e, fallback)
        raise AssertionError(f"cannot print {e!r}")  # pragma: no cover


def _cond(p: _Printer, pattern: Any, etype: str) -> str:
    """The source of a compiled pattern's bracket condition, or ``True``."""
    if pattern.source.cond is None:
        return "True"
    return p.expr(pattern.source.cond, p.vocab[etype])


#: Runs of more consecutive while rules than this are evaluated by a loop over generated functions,
#: so that the source stays linear in the policy's size however many event types share them.
INLINE_WHILE = 3


def _while_inline(p: _Printer, rule: WhileRule, specs: dict[int, str], indent: str, guarded: bool, watched: bool = False) -> list[str]:
    k = rule.position
    out: list[str] = []
    if watched:  # another event of the customer may have changed what it reads (its stamps), or its instant came
        test = " or ".join(f"stamps[{i}] > seen" for i in rule.watch)
        if rule.timer >= 0:
            test += f" or t >= wake[{rule.timer}]"
        out.append(f"{indent}if {test}:")
        indent += "    "
    if rule.timer >= 0:  # it reads the clock: its clock closure gives the value and when it may next change
        c = rule.timer
        if guarded:  # nothing it reads changed: only time can change it, and not before wake[c]
            out.append(f"{indent}if t >= wake[{c}]:")
            indent += "    "
        out += [
            f"{indent}v, n = {p.const(rule.clock)}(s, t)",
            f"{indent}wake[{c}] = n",
            f"{indent}if n < self.wake_at:",
            f"{indent}    self.wake_at = n",
        ]
    else:
        trig = p.rules[rule.index].trigger
        assert isinstance(trig, ast.While)
        out.append(f"{indent}v = {p.expr(trig.cond, None)}")
    out += [
        f"{indent}if v != flags[{k}]:",
        f"{indent}    if not changed:",
        f"{indent}        flags = flags[:]",
        f"{indent}        changed = True",
        f"{indent}    flags[{k}] = v",
    ]
    if rule.requires:
        out.append(f"{indent}    if v:")
        out.extend(f"{indent}        created.append(create(self, {specs[spec.index]}, t))" for spec in rule.requires)
    return out


def _while_group(p: _Printer, rules: list[WhileRule], guarded: frozenset[int], watched: frozenset[int], indent: str) -> list[str]:
    for rule in rules:
        fname = f"w{rule.position}"
        if rule.timer < 0 and fname not in p.while_funcs:
            trig = p.rules[rule.index].trigger
            assert isinstance(trig, ast.While)
            p.while_funcs[fname] = f"def {fname}(s, now, L):\n    return {p.expr(trig.cond, None)}\n"
    key = tuple((rule.position, rule.position in guarded, rule.watch if rule.position in watched else ()) for rule in rules)
    group = p.group_names.get(key)
    if group is None:  # built after the module runs (build()), so the source stays small
        group = f"G{len(p.group_names)}"
        p.group_names[key] = group
    return [
        f"{indent}flags = rewhile(self, {group}, s, t, flags, created, L)",
        f"{indent}changed = flags is not self.flags",
    ]


def _step5(
    p: _Printer, rules: tuple[OnRule | WhileRule, ...], specs: dict[int, str], indent: str, guarded: frozenset[int], watched: frozenset[int]
) -> tuple[list[str], bool]:
    """§6 step 5 for ``rules``; and whether it reads the memo ``L`` (memoised lets, or a loop over conditions)."""
    out: list[str] = []
    run: list[WhileRule] = []
    reads = p.memo_reads
    grouped = False

    def flush() -> None:
        nonlocal grouped
        if len(run) > INLINE_WHILE:
            out.extend(_while_group(p, run, guarded, watched, indent))
            grouped = True
        else:
            for rule in run:
                out.extend(_while_inline(p, rule, specs, indent, rule.position in guarded, rule.position in watched))
        run.clear()

    for rule in rules:
        if isinstance(rule, WhileRule):
            run.append(rule)
            continue
        flush()
        src = f"m{rule.index}"
        if rule.cond is not None:
            trig = p.rules[rule.index].trigger
            assert isinstance(trig, ast.On) and trig.cond is not None
            src += f" and {p.expr(trig.cond, None)}"
        out.append(f"{indent}if {src}:")
        out.append(f"{indent}    fired.append({rule.name!r})")
        out.extend(f"{indent}    created.append(create(self, {specs[spec.index]}, t))" for spec in rule.requires)
        if not rule.requires:
            out.append(f"{indent}    pass")
    flush()
    return out or [f"{indent}pass"], grouped or p.memo_reads != reads


def _source(lowered: Lowered, policy: CompiledPolicy) -> tuple[str, dict[str, Any], _Printer, dict[str, str]]:
    """The module source, its constants, the printer (for its groups) and each type's function name."""
    p = _Printer(lowered, policy)
    specs = {spec.index: p.const(spec) for spec in policy.requires}
    befores = {spec.before for spec in policy.requires if spec.before is not None}
    deadlines = any(spec.within is not None or spec.working_days is not None for spec in policy.requires)
    lines: list[str] = []
    names: dict[str, str] = {}
    for n, (etype, plan) in enumerate(policy.plans.items()):
        fname = f"feed_{n}"  # the type is data: it appears only as a string literal
        names[etype] = fname
        et = repr(etype)
        body = [
            f"def {fname}(self, event):",
            f"    # {et}",
            "    t = now = event.time",
            "    s = self.state",
            "    a = event.attrs",
            "    violations = []",
            "    fulfilled = []",
            "    if self.last_time is None:  # the first event evaluates every while rule: the closures do that",
            "        return interpret(self, event)",
            "    first = False",
            "    pending = self.pending",
        ]
        for i, window in plan.windows:  # windows forget what fell out of them before anything reads them
            body += [f"    w = s[{i}]", f"    while w and w[0] < t - {int(window)}:", "        w.popleft()"]
        if deadlines:
            body += ["    if pending and t > self.next_due:", "        pending = expire(self, pending, t, violations)"]
        if plan.is_action:
            if plan.judges or etype in policy.default_forbid:
                body += [
                    f"    v = judge(self, {et}, t, {p.const(plan.judges)}, first)",
                    "    if v is not None:",
                    "        violations.append(v)",
                ]
            if any(alt.event == etype for spec in policy.requires for alt in spec.alternatives):
                body += ["    if pending:", f"        pending = fulfil(pending, {et}, s, a, t, fulfilled)"]
        if etype in befores:
            body += ["    if pending:", f"        pending = break_before(pending, {et}, violations)"]
        reads = p.memo_reads
        matches: list[str] = []  # patterns are matched on the state before the event: one memo for them
        for rule in plan.on_rules:
            matches.append(f"    m{rule.index} = {_cond(p, rule.pattern, etype)}")
        for i, op in plan.ops:
            hit = _cond(p, op.pattern, etype) if op.pattern.event == etype else "False"
            if op.since is not None and op.since.event == etype:
                matches.append(f"    r{i} = {_cond(p, op.since, etype)}")
                matches.append(f"    h{i} = not r{i} and {hit}" if hit != "False" else f"    h{i} = False")
            else:
                matches.append(f"    r{i} = False")
                matches.append(f"    h{i} = {hit}")
        if p.memo_reads != reads:
            body.append("    L = {}")
        body += matches
        for i, op in plan.ops:
            body += operator_of(op).update_source(i, op)
        body += ["    fired = []", "    created = []", "    flags = self.flags", "    changed = False"]
        if policy.timers:
            body.append("    wake = self.wake")
        if plan.watched:
            body += ["    stamps = self.stamps", "    seen = self.seen"]
        if plan.guarded:  # timed rules this type does not touch: evaluated once their instant has come
            fast, memo_fast = _step5(p, plan.step5, specs, "        ", frozenset(), plan.watched)
            full, memo_full = _step5(p, plan.step5_full, specs, "        ", plan.guarded, plan.watched)
            if memo_fast:
                body.append("    L = {}")
            body += ["    if t < self.wake_at:", *fast, "    else:"]
            if memo_full and not memo_fast:
                body.append("        L = {}")
            body += [*full, "        self.wake_at = min(wake)"]
        else:
            step5, memo = _step5(p, plan.step5, specs, "    ", frozenset(), plan.watched)
            if memo:
                body.append("    L = {}")
            body += step5
        body += [
            "    if changed:",
            "        self.flags = flags",
            "        self.active = tuple(compress(range(len(flags)), flags))",  # in C: no Python line per while rule
            "    if created:",
            "        pending.extend(created)",
            "    self.pending = pending",
            "    self.last_time = t",
            "    if self.grants_for is not self.active:  # the permissions of these active rules, looked up once",
            "        self.grants = permissions(self.active)",
            "        self.grants_for = self.active",
            "    permitted, forbidden, names = self.grants",
            f"    return Decision(t, {et}, violations, fulfilled, created, fired, names, permitted, forbidden, tuple(pending))",
            "",
        ]
        lines += body
    header = [f"# generated from {policy.checked.path!r} (sha256 {policy.sha256[:12]})", ""]
    source = "\n".join(header + p.let_funcs + list(p.while_funcs.values()) + lines) + "\n"
    table = "FEEDERS = {" + ", ".join(f"{k!r}: {v}" for k, v in names.items()) + "}\n"
    return source + table, dict(p.consts), p, names


def generate(lowered: Lowered, policy: CompiledPolicy) -> GeneratedCode:
    """The step functions of ``policy`` as compiled Python, registered in ``linecache`` (not yet run)."""
    source, consts, p, _ = _source(lowered, policy)
    filename = f"<escalation:{policy.checked.path!r}:{policy.sha256[:12]}>"
    code = compile(source, filename, "exec")  # the source is ours, printed from a checked policy (outside data only through repr)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    groups = {name: tuple(GroupEntry(k, guarded, watch) for k, guarded, watch in key) for key, name in p.group_names.items()}
    return GeneratedCode(source, filename, code, {**operator_helpers(), **consts}, groups, HELPERS)


def source_of(policy: CompiledPolicy) -> str:
    """The generated Python of a compiled policy."""
    return policy.generated
