"""escalation: a policy engine for handling angry and abusive customers."""

from __future__ import annotations

from .api import Policy, ReplayOptions, Session, load, replay
from .audit import AuditWriter, verify_stream
from .check import CheckedPolicy, CheckResult, check, check_source
from .errors import Diagnostic, EscalationError, EventError, PolicyError, SnapshotError, Span
from .load import load_checked
from .runtime import Decision, Obligation, Violation
from .syntax import parse
from .version import __version__

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
    "ReplayOptions",
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
