"""Tools over a policy: format, tests, coverage, explain."""

from .coverage import Coverage, Evidence, compute
from .testing import Failure, TestResult, collect_tests, offset_text, run_tests

__all__ = [
    "Coverage",
    "Evidence",
    "Failure",
    "TestResult",
    "collect_tests",
    "compute",
    "offset_text",
    "run_tests",
]
