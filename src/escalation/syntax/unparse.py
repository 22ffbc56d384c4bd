"""AST -> text for expressions and patterns: the inverse of the parser, shared by the formatter and by messages that quote a policy."""

from __future__ import annotations

import json
import re

from ..lang import ast

__all__ = ["format_expr", "format_pattern", "format_span", "format_string"]

# ---------------------------------------------------------------- expressions

# Binding strength, loosest first, as in the grammar: or, and, not, comparison and `in`, `+ -`, atoms.
_OR, _AND, _NOT, _CMP, _SUM, _ATOM = range(1, 7)

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _precedence(expr: ast.Expr) -> int:
    if isinstance(expr, ast.BoolOp):
        return _OR if expr.op == "or" else _AND
    if isinstance(expr, ast.Not):
        return _NOT
    if isinstance(expr, (ast.Compare, ast.In)):
        return _CMP
    if isinstance(expr, ast.Arith):
        return _SUM
    return _ATOM


def _operand(expr: ast.Expr, minimum: int) -> str:
    """``expr`` printed as an operand that must bind at least as tightly as ``minimum``.

    Parsed trees already hold a :class:`ast.Group` wherever one is needed; the
    parentheses added here only keep hand-built trees from printing as something else.
    """
    text = format_expr(expr)
    return f"({text})" if _precedence(expr) < minimum else text


def format_string(value: str) -> str:
    """A string literal as JSON, except that lone surrogates (not storable as UTF-8) stay escaped."""
    text = json.dumps(value, ensure_ascii=False)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def format_expr(expr: ast.Expr) -> str:
    """One expression on one line, in canonical spacing (also used to show conditions in messages)."""
    if isinstance(expr, ast.IntLit):
        return str(expr.value)
    if isinstance(expr, ast.DurationLit):
        return expr.text
    if isinstance(expr, ast.StringLit):
        return format_string(expr.value)
    if isinstance(expr, ast.BoolLit):
        return "true" if expr.value else "false"
    if isinstance(expr, ast.NameRef):
        return expr.name
    if isinstance(expr, ast.Group):
        return f"({format_expr(expr.expr)})"
    if isinstance(expr, ast.Not):
        return f"not {_operand(expr.operand, _NOT)}"
    if isinstance(expr, ast.BoolOp):
        level = _precedence(expr)
        return f"{_operand(expr.left, level)} {expr.op} {_operand(expr.right, level + 1)}"
    if isinstance(expr, ast.Compare):
        return f"{_operand(expr.left, _SUM)} {expr.op} {_operand(expr.right, _SUM)}"
    if isinstance(expr, ast.Arith):
        return f"{_operand(expr.left, _SUM)} {expr.op} {_operand(expr.right, _ATOM)}"
    if isinstance(expr, ast.In):
        members = ", ".join(format_expr(m) for m in expr.members)
        return f"{_operand(expr.left, _SUM)} in {{{members}}}"
    if isinstance(expr, (ast.Count, ast.Seen)):
        text = f"{'count' if isinstance(expr, ast.Count) else 'seen'} {format_pattern(expr.pattern)}"
        if expr.since is not None:
            text += f" since {format_pattern(expr.since)}"
        if expr.window is not None:
            text += f" within {expr.window.text}"
        return text + _ACROSS[expr.across]
    if isinstance(expr, ast.Last):
        text = f"last {expr.attr.text} of {format_pattern(expr.pattern)}{_ACROSS[expr.across]}"
        if expr.default is not None:
            text += f" else {format_expr(expr.default)}"
        return text
    if isinstance(expr, ast.TimeSince):
        return f"time since {format_pattern(expr.pattern)}{_ACROSS[expr.across]}"
    if isinstance(expr, ast.PermittedAtom):
        return f"{'permitted' if expr.permitted else 'forbidden'} {expr.action.text}"
    raise TypeError(f"not an expression node: {type(expr).__name__}")  # pragma: no cover - the union is closed


_ACROSS = {False: "", True: " across contacts"}


def format_span(span: ast.DurationLit | ast.WorkingDays) -> str:
    """A deadline's length: ``30s``, or ``N working days`` with ``day`` after 1 and ``days`` otherwise (language.md §10)."""
    if isinstance(span, ast.DurationLit):
        return span.text
    return f"{span.count.value} working {'day' if span.count.value == 1 else 'days'}"


def format_pattern(pattern: ast.Pattern) -> str:
    if pattern.cond is None:
        return pattern.event.text
    return f"{pattern.event.text}[{format_expr(pattern.cond)}]"


# ---------------------------------------------------------------- one line per construct
