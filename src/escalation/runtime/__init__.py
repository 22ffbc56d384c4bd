"""One event at a time: validation and admission, the interaction's state and decisions, the state codec. No file, process or network I/O."""

from .events import Event, Line, admit_conversation, decode_line, iter_lines, iter_numbered, validate
from .interaction import Decision, Interaction, Obligation, Violation

__all__ = [
    "Decision",
    "Event",
    "Interaction",
    "Line",
    "Obligation",
    "Violation",
    "admit_conversation",
    "decode_line",
    "iter_lines",
    "iter_numbered",
    "validate",
]
