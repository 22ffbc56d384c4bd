"""One event at a time: validation and admission, the interaction's state and decisions, the state codec. No file, process or network I/O."""

from .admit import admit_conversation, admit_record, bind, check_order
from .events import Event, Line, decode_line, iter_lines, iter_numbered, validate
from .interaction import Decision, Interaction, Obligation, Violation

__all__ = [
    "Decision",
    "Event",
    "Interaction",
    "Line",
    "Obligation",
    "Violation",
    "admit_conversation",
    "admit_record",
    "bind",
    "check_order",
    "decode_line",
    "iter_lines",
    "iter_numbered",
    "validate",
]
