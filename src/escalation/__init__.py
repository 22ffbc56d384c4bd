"""escalation: a policy engine for handling angry and abusive customers."""

from __future__ import annotations

__version__ = "0.1.0"

from .checker import CheckedPolicy, CheckResult, check, check_source, load_checked
from .errors import Diagnostic, EscalationError, EventError, PolicyError, SnapshotError, Span
from .parser import parse

__all__ = [
    "CheckResult",
    "CheckedPolicy",
    "Diagnostic",
    "EscalationError",
    "EventError",
    "PolicyError",
    "SnapshotError",
    "Span",
    "__version__",
    "check",
    "check_source",
    "load_checked",
    "parse",
]
