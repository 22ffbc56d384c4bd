"""escalation: a policy engine for handling angry and abusive customers."""

from __future__ import annotations

__version__ = "0.1.0"

from .audit import AuditWriter, verify_stream
from .checker import CheckedPolicy, CheckResult, check, check_source, load_checked
from .errors import Diagnostic, EscalationError, EventError, PolicyError, SnapshotError, Span
from .engine import Policy, Session, load, replay
from .evaluator import Decision, Obligation, Violation
from .parser import parse

__all__ = [
    "AuditWriter",
    "Decision",
    "Obligation",
    "Policy",
    "Session",
    "Violation",
    "load",
    "replay",
    "verify_stream",
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
