"""AST -> CheckedPolicy: names, types, constant folding, rules, tests; every diagnostic has a stable code."""

from .checker import SINCE, CheckedPolicy, CheckResult, check, check_source, check_test_file, load_checked

__all__ = [
    "SINCE",
    "CheckResult",
    "CheckedPolicy",
    "check",
    "check_source",
    "check_test_file",
    "load_checked",
]
