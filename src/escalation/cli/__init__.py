"""The command line: one module per verb, thin over the library; exit codes come from the error classes."""

from .app import main

__all__ = ["main"]
