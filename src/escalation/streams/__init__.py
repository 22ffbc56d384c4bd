"""Bytes in and out: input framing and spooling, atomic write-then-rename of outputs."""

from .outputs import OutputError, check_target, temp_beside, write_atomically

__all__ = [
    "OutputError",
    "check_target",
    "temp_beside",
    "write_atomically",
]
