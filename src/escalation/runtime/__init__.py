"""One event at a time: validation and admission, the interaction's state and decisions, the §6 steps, the two
back ends (generated code and closures), the state codec. No file, process or network I/O."""

from .admit import Admission, Admitted, admit_conversation, admit_record, bind, check_order, record_customer
from .backend import BACKEND_NAMES, Backend, ClosureBackend, GeneratedBackend, interpret
from .codec import Frozen, FrozenCustomer, PendingRow
from .customer import CustomerState
from .events import Event, Line, decode_line, iter_lines, iter_numbered, validate
from .interaction import BACKEND_VARIABLE, DEFAULT_BACKEND, Decision, Interaction, Obligation, Violation, backend_name, step_table

__all__ = [
    "BACKEND_NAMES",
    "BACKEND_VARIABLE",
    "DEFAULT_BACKEND",
    "Admission",
    "Admitted",
    "Backend",
    "ClosureBackend",
    "CustomerState",
    "Decision",
    "Event",
    "Frozen",
    "FrozenCustomer",
    "GeneratedBackend",
    "Interaction",
    "Line",
    "Obligation",
    "PendingRow",
    "Violation",
    "admit_conversation",
    "admit_record",
    "backend_name",
    "bind",
    "check_order",
    "decode_line",
    "interpret",
    "iter_lines",
    "iter_numbered",
    "record_customer",
    "step_table",
    "validate",
]
