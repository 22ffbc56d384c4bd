"""Source text -> :class:`~escalation.lang.ast.Policy`, with syntax errors in plain words.

The entry points of the syntax package: :func:`read_source` (a policy file as text),
:func:`parse` (a policy) and :func:`parse_tests` (a sibling ``NAME.test.esc``). The text's
limits are checked first; then Lark's LALR parser (:mod:`.grammar`) builds a parse tree and
one Transformer (:mod:`.transform`) turns it into the AST. Every error, of either step,
becomes its diagnostic through :func:`.errors.fail`.
"""

from __future__ import annotations

import os
import stat

from lark.exceptions import UnexpectedInput

from ..errors import Span
from ..lang import MAX_SOURCE_CHARS, ast
from .errors import SyntaxProblem, fail
from .grammar import lark_parser
from .transform import to_ast

__all__ = ["MAX_LINE_MARKS", "parse", "parse_tests", "read_source"]

#: The most backslashes, and the most dots, one line may hold. Python's regular expressions keep
#: about 190 bytes for each escape of a string literal and each part of a dotted name while they
#: match it; a literal and a name sit on one line, so this bounds that memory at about 2 MB.
MAX_LINE_MARKS = 10_000


def parse(text: str, path: str = "<policy>") -> ast.Policy:
    """Parse policy source; raises :class:`PolicyError` with one syntax diagnostic on failure."""
    result = _parse(text, path, "start")
    assert isinstance(result, ast.Policy)
    return result


def parse_tests(text: str, path: str = "<tests>") -> tuple[ast.Test, ...]:
    """Parse a ``NAME.test.esc`` file: only `test` blocks."""
    if not text.strip():
        return ()
    result = _parse(text, path, "test_file")
    assert isinstance(result, tuple)
    return result


def _parse(text: str, path: str, start: str) -> ast.Policy | tuple[ast.Test, ...]:
    if text.startswith("\ufeff"):  # a byte-order mark is not part of the policy
        text = text[1:]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        line = text.count("\n", 0, err.start) + 1
        col = err.start - (text.rfind("\n", 0, err.start) + 1) + 1
        problem = SyntaxProblem("E005", "the policy holds a lone surrogate, which is not a character", Span(line, col, line, col + 1, err.start, err.start + 1), "save the policy as valid UTF-8")
        raise fail(problem, text.encode("utf-8", "replace").decode("utf-8"), path) from None
    try:
        _within_limits(text, start)
        return to_ast(lark_parser().parse(text, start=start))
    except (UnexpectedInput, SyntaxProblem) as err:
        raise fail(err, text, path) from None


def _within_limits(text: str, start: str) -> None:
    """Refuse, before lexing, a text too large, a line too crowded, or a policy with nothing in it."""
    if len(text) > MAX_SOURCE_CHARS:
        raise SyntaxProblem("E004", f"the policy is too large ({len(text)} characters)", Span(1, 1, 1, 2), f"policies may have at most {MAX_SOURCE_CHARS} characters; split it")
    crowded = _crowded_line(text)
    if crowded is not None:
        line, mark = crowded
        raise SyntaxProblem(
            "E004",
            f"line {line} holds more than {MAX_LINE_MARKS} {mark}",
            Span(line, 1, line, 2),
            f"a line may hold at most {MAX_LINE_MARKS} backslashes and {MAX_LINE_MARKS} dots; write characters instead of escapes, or spread the names over several lines",
        )
    if not text.strip() and start == "start":
        raise SyntaxProblem("E001", "the policy is empty", Span(1, 1, 1, 2), 'a policy starts with a header such as `policy "Name" version "1"`')


def _crowded_line(text: str) -> tuple[int, str] | None:
    """The first line with more than MAX_LINE_MARKS backslashes or dots, and which (counted in C, not per character)."""
    if text.count("\\") <= MAX_LINE_MARKS and text.count(".") <= MAX_LINE_MARKS:
        return None
    for number, line in enumerate(text.split("\n"), 1):
        if len(line) > MAX_LINE_MARKS:
            if line.count("\\") > MAX_LINE_MARKS:
                return number, "backslashes (escapes in strings)"
            if line.count(".") > MAX_LINE_MARKS:
                return number, "dots (parts of dotted names)"
    return None


def read_source(path: str) -> str:
    """Read a policy file as UTF-8; raises PolicyError for unreadable or undecodable files."""
    limit = MAX_SOURCE_CHARS * 4  # UTF-8 takes at most 4 bytes a character: more bytes are more characters
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            size = st.st_size if stat.S_ISREG(st.st_mode) else 0
            data = fh.read(limit + 1) if size <= limit else b""  # never more than the limit in memory
    except OSError as err:
        raise fail(SyntaxProblem("E005", f"cannot read the policy: {err.strerror or err}", Span(1, 1, 1, 1), "check the path"), None, path) from None
    if size > limit or len(data) > limit:
        told = f"{size} bytes" if size > limit else f"more than {limit} bytes"
        problem = SyntaxProblem("E004", f"the policy is too large ({told})", Span(1, 1, 1, 2), f"policies may have at most {MAX_SOURCE_CHARS} characters; split it")
        raise fail(problem, None, path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")) + 1
        problem = SyntaxProblem("E005", f"the policy is not valid UTF-8 (byte 0x{data[err.start]:02x})", Span(line, col, line, col + 1), "save the file as UTF-8")
        raise fail(problem, data.decode("utf-8", errors="replace"), path) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text
