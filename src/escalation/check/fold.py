"""Constant folding: the value of an expression that is the same at every event.

The checker uses it for warnings (a condition that can never hold) and for the
impossible-obligation check (an action forbidden whenever it could be owed). It reads only
the expression and the values of the constant lets, never the vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..lang import Value, ast

__all__ = ["fold"]


def fold(expr: ast.Expr | None, let_values: Mapping[str, Value | None]) -> Value | None:
    """The value of ``expr`` if it is the same at every event, else None.

    ``let_values`` holds the lets folded so far (None for one that is not a constant);
    any other name is not a constant.
    """
    if expr is None:
        return None
    if isinstance(expr, (ast.IntLit, ast.BoolLit, ast.StringLit)):
        return expr.value
    if isinstance(expr, ast.DurationLit):
        return expr.seconds
    if isinstance(expr, ast.Group):
        return fold(expr.expr, let_values)
    if isinstance(expr, ast.NameRef):
        return let_values.get(expr.name)
    if isinstance(expr, ast.Not):
        v = fold(expr.operand, let_values)
        return (not v) if isinstance(v, bool) else None
    if isinstance(expr, ast.BoolOp):
        a, b = fold(expr.left, let_values), fold(expr.right, let_values)
        if expr.op == "and":
            if a is False or b is False:
                return False
            return True if (a is True and b is True) else None
        if a is True or b is True:
            return True
        return False if (a is False and b is False) else None
    if isinstance(expr, ast.Arith):
        a, b = fold(expr.left, let_values), fold(expr.right, let_values)
        if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool) and not isinstance(b, bool):
            return a + b if expr.op == "+" else a - b
        return None
    if isinstance(expr, ast.Compare):
        a, b = fold(expr.left, let_values), fold(expr.right, let_values)
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
