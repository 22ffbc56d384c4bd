"""Text -> AST: the grammar, the transformer, plain-word syntax errors (one ``fail()``), comments.

Modules: :mod:`.parser` (the entry points), :mod:`.grammar` (the grammar file, Lark's parser and
its per-user JSON cache), :mod:`.transform` (parse tree -> AST), :mod:`.errors` (syntax errors in
plain words), :mod:`.source` (spans, lines, comments), :mod:`.unparse` (expressions back to text).
"""

from .grammar import RESERVED, lark_parser
from .parser import MAX_LINE_MARKS, parse, parse_tests, read_source
from .source import extract_comments
from .transform import MAX_DURATION_SECONDS, MAX_INT

__all__ = [
    "MAX_DURATION_SECONDS",
    "MAX_INT",
    "MAX_LINE_MARKS",
    "RESERVED",
    "extract_comments",
    "lark_parser",
    "parse",
    "parse_tests",
    "read_source",
]
