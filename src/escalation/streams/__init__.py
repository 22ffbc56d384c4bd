"""Bytes in and out: input framing and spooling, atomic write-then-rename of outputs."""
