"""Positions in the source text: spans of tokens and tree nodes, lines as Lark counts them, comments.

These read the text or Lark's positions only; they know nothing of the grammar's rules.
"""

from __future__ import annotations

import re
from typing import Any

from lark import Token

from ..errors import Span
from ..lang import ast

__all__ = ["extract_comments", "lark_lines", "previous_token", "previous_token_start", "span_of_meta", "span_of_token"]


def span_of_token(tok: Token) -> Span:
    """Where ``tok`` stands in the text (Lark's positions, with 1-based defaults for a token that has none)."""
    return Span(
        tok.line or 1,
        tok.column or 1,
        tok.end_line or tok.line or 1,
        tok.end_column or (tok.column or 1) + len(tok),
        tok.start_pos or 0,
        tok.end_pos or 0,
    )


def span_of_meta(meta: Any) -> Span:
    """Where a tree node stands, from the ``meta`` that ``propagate_positions`` gives it (1:1 when empty)."""
    if getattr(meta, "empty", True):
        return Span(1, 1, 1, 1)
    return Span(meta.line, meta.column, meta.end_line, meta.end_column, meta.start_pos, meta.end_pos)


def lark_lines(text: str) -> list[str]:
    """Lines as Lark counts them: broken at LF only, a final empty one dropped."""
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines


def extract_comments(text: str) -> list[ast.Comment]:
    """Every ``#`` comment outside string literals, with its position."""
    comments: list[ast.Comment] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if "#" not in line:
            continue
        in_string = False
        i = 0
        while i < len(line):
            ch = line[i]
            if in_string:
                if ch == "\\":
                    i += 2
                    continue
                if ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "#":
                body = line[i:].rstrip("\r").rstrip()
                comments.append(ast.Comment(body, lineno, i + 1, not line[:i].strip()))
                break
            i += 1
    return comments


_LAST_TOKEN = re.compile(r'(==|!=|<=|>=|[<>+\-(){}\[\],=:|]|"(?:[^"\\]|\\.)*"|[A-Za-z0-9_.]+)$')


def previous_token(text: str, pos: int | None) -> str | None:
    """The token that ends just before ``pos``, skipping blanks and comments."""
    found = previous_token_start(text, pos)
    return found[0] if found else None


def previous_token_start(text: str, pos: int | None) -> tuple[str, int] | None:
    """The token that ends just before ``pos`` (blanks and comments skipped), and the offset it starts at."""
    before = text[: pos or 0]
    while True:
        stripped = before.rstrip()
        last_line_start = stripped.rfind("\n") + 1
        comments = extract_comments(stripped[last_line_start:])
        if comments:
            stripped = stripped[: last_line_start + comments[0].column - 1]
            before = stripped
            continue
        m = _LAST_TOKEN.search(stripped)
        return (m.group(1), m.start(1)) if m else None
