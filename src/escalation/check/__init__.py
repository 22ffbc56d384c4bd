"""AST -> CheckedPolicy: names, types, constant folding, rules, tests; every diagnostic has a stable code.

Modules: :mod:`.checker` (the entry points and the order of the passes), :mod:`.context` (the
state one check shares), :mod:`.names`, :mod:`.types`, :mod:`.fold`, and the passes in
:mod:`.declarations`, :mod:`.rules`, :mod:`.calendars` (calendars, bounds on deadlines, claims)
and :mod:`.tests`.
"""

from .checker import CheckedPolicy, CheckResult, check, check_source, check_test_file
from .context import SINCE
from .tests import check_tests

__all__ = [
    "SINCE",
    "CheckResult",
    "CheckedPolicy",
    "check",
    "check_source",
    "check_test_file",
    "check_tests",
]
