"""Bytes in and out: the inputs of a replay (digests, spooling, the one input loop), atomic write-then-rename of outputs."""

from .inputs import Input, InputError, Inputs, discard_inputs, numbered_lines, open_input, open_inputs
from .outputs import OutputError, check_target, temp_beside, write_atomically

__all__ = [
    "Input",
    "InputError",
    "Inputs",
    "OutputError",
    "check_target",
    "discard_inputs",
    "numbered_lines",
    "open_input",
    "open_inputs",
    "temp_beside",
    "write_atomically",
]
