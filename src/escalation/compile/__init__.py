"""CheckedPolicy -> CompiledPolicy: slots and plans, closures, and the generated Python of the step functions."""

from .lower import (
    INF,
    LEVEL_RANK,
    CompiledPolicy,
    OnRule,
    Op,
    PatternFn,
    RequireSpec,
    WhileRule,
    compile_policy,
    literal_value,
    load_compiled,
)

__all__ = [
    "INF",
    "LEVEL_RANK",
    "CompiledPolicy",
    "OnRule",
    "Op",
    "PatternFn",
    "RequireSpec",
    "WhileRule",
    "compile_policy",
    "literal_value",
    "load_compiled",
]
