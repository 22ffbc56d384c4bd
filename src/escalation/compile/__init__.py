"""CheckedPolicy -> CompiledPolicy: the IR as data (ir.py), temporal operators (operators.py), closures (lower.py), generated Python (codegen.py)."""

from .codegen import HELPERS, source_of
from .ir import (
    CUSTOMER,
    INF,
    INTERACTION,
    LEVEL_RANK,
    CompiledPolicy,
    GeneratedCode,
    GroupEntry,
    OnRule,
    Op,
    PatternFn,
    Permissions,
    PlannedOp,
    RequireSpec,
    Step,
    TypePlan,
    WhileRule,
    Window,
)
from .lower import compile_policy
from .operators import OPERATORS, Operator, SlotReader, operator_of, window_count
from .values import literal_value

__all__ = [
    "CUSTOMER",
    "HELPERS",
    "INF",
    "INTERACTION",
    "LEVEL_RANK",
    "OPERATORS",
    "CompiledPolicy",
    "GeneratedCode",
    "GroupEntry",
    "OnRule",
    "Op",
    "Operator",
    "PatternFn",
    "Permissions",
    "PlannedOp",
    "RequireSpec",
    "SlotReader",
    "Step",
    "TypePlan",
    "WhileRule",
    "Window",
    "compile_policy",
    "literal_value",
    "operator_of",
    "source_of",
    "window_count",
]
