"""Facts of the language shared by every phase: the AST, the vocabulary, units of time, the limits.

These modules import nothing else of the package except :mod:`escalation.errors`
(for :class:`~escalation.errors.Span`), so every phase can use them without a cycle.
"""

from .limits import DEFAULT_LIMITS, MAX_DEPTH, MAX_DURATION_DAYS, MAX_DURATION_SECONDS, MAX_SOURCE_CHARS, Limits
from .units import US, TimeError, format_time, parse_time
from .vocabulary import BOOL, DURATION, INT, RESERVED_FIELDS, STANDARD, STRING, EnumType, EventType, Field, Type, Value, type_name

__all__ = [
    "BOOL",
    "DEFAULT_LIMITS",
    "DURATION",
    "INT",
    "MAX_DEPTH",
    "MAX_DURATION_DAYS",
    "MAX_DURATION_SECONDS",
    "MAX_SOURCE_CHARS",
    "RESERVED_FIELDS",
    "STANDARD",
    "STRING",
    "US",
    "EnumType",
    "EventType",
    "Field",
    "Limits",
    "TimeError",
    "Type",
    "Value",
    "format_time",
    "parse_time",
    "type_name",
]
