"""escalation: a policy engine for handling angry and abusive customers."""

from __future__ import annotations

from .api import (
    Decision,
    Engine,
    Obligation,
    Permissions,
    Policy,
    RejectedEvent,
    ReplayOptions,
    Session,
    UnknownActionError,
    load,
    loads,
    replay,
)
from .audit import AuditWriter, verify_stream
from .check import CheckedPolicy, CheckResult, check, check_source
from .errors import Diagnostic, EscalationError, EventError, PolicyError, SnapshotError, Span
from .load import load_checked
from .runtime import Violation
from .state import EngineStore, SQLiteStore
from .syntax import parse
from .version import __version__

__all__ = [
    "AuditWriter",
    "CheckResult",
    "CheckedPolicy",
    "Decision",
    "Diagnostic",
    "Engine",
    "EngineStore",
    "EscalationError",
    "EventError",
    "Obligation",
    "Permissions",
    "Policy",
    "PolicyError",
    "RejectedEvent",
    "ReplayOptions",
    "SQLiteStore",
    "Session",
    "SnapshotError",
    "Span",
    "UnknownActionError",
    "Violation",
    "__version__",
    "check",
    "check_source",
    "load",
    "load_checked",
    "loads",
    "parse",
    "replay",
    "verify_stream",
]
