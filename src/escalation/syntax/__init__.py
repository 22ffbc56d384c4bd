"""Text -> AST: the grammar, the transformer, plain-word syntax errors."""

from .parser import parse, parse_tests, read_source

__all__ = [
    "parse",
    "parse_tests",
    "read_source",
]
