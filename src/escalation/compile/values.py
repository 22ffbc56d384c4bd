"""Small facts lowering and codegen share: a literal's runtime value, and when a let is inlined."""

from __future__ import annotations

from typing import Any

from ..lang import US, ast

#: Lets whose expansion (lets they read inlined) has at most this many nodes are inlined; larger ones are memoised.
INLINE_NODES = 12


def literal_value(lit: ast.Literal) -> Any:
    """A literal's runtime value (durations in microseconds, enum members as strings)."""
    if isinstance(lit, ast.DurationLit):
        return lit.seconds * US
    if isinstance(lit, ast.NameRef):
        return lit.name
    return lit.value
