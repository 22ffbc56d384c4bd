"""escalation: a policy engine for handling angry and abusive customers."""

from __future__ import annotations

__version__ = "0.1.0"

from .audit import AuditWriter, verify_stream
from .checker import CheckedPolicy, CheckResult, check, check_source, load_checked
from .engine import Policy, Session, load, replay
from .errors import Diagnostic, EscalationError, EventError, PolicyError, SnapshotError, Span
from .evaluator import Decision, Obligation, Violation
from .parser import parse

__all__ = [
    "AuditWriter",
    "CheckResult",
    "CheckedPolicy",
    "Decision",
    "Diagnostic",
    "EscalationError",
    "EventError",
    "Obligation",
    "Policy",
    "PolicyError",
    "Session",
    "SnapshotError",
    "Span",
    "Violation",
    "__version__",
    "check",
    "check_source",
    "load",
    "load_checked",
    "parse",
    "replay",
    "verify_stream",
]
