"""Expression typing: the type of every expression, and every type error below it.

:func:`infer` walks an expression once, resolving names through :mod:`.names`, and reports
each problem (E014, E025, E028, W002) where it is; it returns None for a type it cannot know,
so that a problem is reported once, not again by every expression above it.
"""

from __future__ import annotations

from ..lang import BOOL, DURATION, INT, STRING, EnumType, EventType, Type, ast
from .context import SINCE, CheckState, Scope, is_duration, same_type, show
from .fold import fold
from .names import event_type, no_attribute, resolve_name

__all__ = ["check_pattern", "infer"]


def check_pattern(c: CheckState, pattern: ast.Pattern, actions_only: bool = False, what: str = "") -> EventType | None:
    """The event or action of ``pattern`` (None if unknown), its bracketed condition checked against its attributes."""
    et = event_type(c, pattern.event, actions_only, what)
    known = c.vocabulary.get(pattern.event.text)
    if pattern.cond is not None and known is not None:  # an unknown event's brackets would only add noise
        scope = Scope(known)
        t = infer(c, pattern.cond, scope, BOOL)
        if t is not None and t != BOOL:
            c.error("E014", f"a pattern's condition must be true or false, not {show(t)}", pattern.cond.span)
        if fold(pattern.cond, c.let_values) is False:
            c.warning("W002", f"this pattern can never match `{pattern.event.text}`: its condition is always false", pattern.cond.span, "check the condition")
    return et


def _unresolved_bare(c: CheckState, expr: ast.Expr, scope: Scope) -> bool:
    """A bare name that only an expected enum type can give meaning to."""
    if not isinstance(expr, ast.NameRef):
        return False
    if scope.event is not None and scope.event.field(expr.name) is not None:
        return False
    return expr.name not in c.lets


def infer(c: CheckState, expr: ast.Expr, scope: Scope, expected: Type | None) -> Type | None:
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
        return resolve_name(c, expr, scope, expected)
    if isinstance(expr, ast.Group):
        return infer(c, expr.expr, scope, expected)
    if isinstance(expr, ast.Not):
        t = infer(c, expr.operand, scope, BOOL)
        _want_bool(c, t, expr.operand, "`not`")
        return BOOL
    if isinstance(expr, ast.BoolOp):
        for side in (expr.left, expr.right):
            _want_bool(c, infer(c, side, scope, BOOL), side, f"`{expr.op}`")
        return BOOL
    if isinstance(expr, ast.Arith):
        lt = infer(c, expr.left, scope, None)
        rt = infer(c, expr.right, scope, None)
        for side, t in ((expr.left, lt), (expr.right, rt)):
            if t == SINCE:
                c.error("E028", f"a `time since` cannot be used with `{expr.op}`", side.span, "compare it instead: `time since agent.warn >= 5m`")
                return None
        if lt is None or rt is None:
            return None
        if lt == rt and lt in (INT, DURATION):
            return lt
        c.error(
            "E014",
            f"`{expr.op}` needs two numbers or two durations, not {show(lt)} and {show(rt)}",
            expr.span,
            "write durations with a unit (30s, 2m) and numbers without one",
        )
        return None
    if isinstance(expr, ast.Compare):
        if _unresolved_bare(c, expr.left, scope) and not _unresolved_bare(c, expr.right, scope):
            rt = infer(c, expr.right, scope, None)
            if rt is None:  # already reported; the bare name cannot be judged
                return BOOL
            lt = infer(c, expr.left, scope, rt)
        else:
            lt = infer(c, expr.left, scope, None)
            if lt is None and _unresolved_bare(c, expr.right, scope):
                return BOOL
            rt = infer(c, expr.right, scope, lt)
        if lt is None or rt is None:
            return BOOL
        if expr.op in ("==", "!="):
            if not same_type(lt, rt):
                hint = "each enum attribute has its own values; compare like with like" if isinstance(lt, EnumType) and isinstance(rt, EnumType) else ""
                c.error("E014", f"`{expr.op}` compares {show(lt)} with {show(rt)}", expr.span, hint)
        elif not ((lt == INT and rt == INT) or (is_duration(lt) and is_duration(rt))):
            c.error(
                "E014",
                f"`{expr.op}` needs two numbers or two durations, not {show(lt)} and {show(rt)}",
                expr.span,
                "durations are written with a unit (30s, 2m, 48h); counts are plain numbers",
            )
        return BOOL
    if isinstance(expr, ast.In):
        lt = infer(c, expr.left, scope, None)
        for member in expr.members:
            mt = infer(c, member, scope, lt)
            if lt is not None and mt is not None and not same_type(lt, mt):
                c.error("E014", f"the set holds {show(mt)}, but the left side of `in` is {show(lt)}", member.span)
        return BOOL
    if isinstance(expr, ast.Count):
        check_pattern(c, expr.pattern)
        if expr.since is not None:
            check_pattern(c, expr.since)
        return INT
    if isinstance(expr, ast.Seen):
        check_pattern(c, expr.pattern)
        if expr.since is not None:
            check_pattern(c, expr.since)
        return BOOL
    if isinstance(expr, ast.TimeSince):
        check_pattern(c, expr.pattern)
        return SINCE
    if isinstance(expr, ast.PermittedAtom):
        word = "permitted" if expr.permitted else "forbidden"
        if not scope.claim:
            c.error(
                "E040",
                f"`{word} {expr.action.text}` can only be used in a claim",
                expr.span,
                "rules decide permissions; read them in a `claim \"...\" { always ... }`, or state the condition that decides them",
            )
        event_type(c, expr.action, actions_only=True, what=f"only actions are {word}")
        return BOOL
    if isinstance(expr, ast.Last):
        et = check_pattern(c, expr.pattern)
        if et is None:
            return None
        f = et.field(expr.attr.text)
        if f is None:
            no_attribute(c, et, expr.attr)
            return None
        if expr.default is not None:
            dt = infer(c, expr.default, scope, f.type)
            if dt is not None and not same_type(dt, f.type):
                c.error("E014", f"the `else` value is {show(dt)}, but `{f.name}` holds {show(f.type)}", expr.default.span)
        elif not f.has_default:
            c.error(
                "E025",
                f"`last {f.name} of {et.name}` needs an `else` value: `{f.name}` has no default",
                expr.span,
                f"add `else <value>`, for example `else {f.type.members[-1]}`" if isinstance(f.type, EnumType) else "add `else <value>`",
            )
        return f.type
    raise AssertionError(f"unknown expression {expr!r}")  # pragma: no cover


def _want_bool(c: CheckState, t: Type | None, expr: ast.Expr, where: str) -> None:
    if t is not None and t != BOOL:
        c.error("E014", f"{where} needs true or false, not {show(t)}", expr.span, "compare it: `count agent.warn >= 2`")
