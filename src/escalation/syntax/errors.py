"""Syntax errors in plain words, all built by one :func:`fail`.

Every diagnostic of the syntax package comes from :func:`fail`: from Lark's
``UnexpectedInput`` (what was expected at that point, what was found, and a hint), or from
a :class:`SyntaxProblem` that the transformer or the parser's limits raise (a number too
large, a reserved word as a name, a policy too large or nested too deeply, text that is not
UTF-8). Messages use the language's words, never Lark's terminal names.

Why the hand-written classification below, and not Lark's ``UnexpectedInput.match_examples``:
it was tried (lark 1.3.1), labelled by the six E001/E002 examples of docs/diagnostics.md
(duration, reserved word twice, digit-led word, open string, ``//`` comment), and did not pay.

- It keys on the LALR state (and the accepted terminals). The special messages here key on
  what was found, in whatever state: a reserved word where a name may stand (27 of the 226
  states: ``let``, ``rule``, fields, enum values, arguments, ``last``, ``fired``...), a word
  that starts with a digit, a quote, a slash. Of the 35 errors in test_parser.py's cases and
  their variants, it labelled 22 as the shipped messages do (63%): it missed six of the eight
  reserved words, the three digit-led words (``let x = 30x``; one it took for a missing
  duration), two of the three open strings and one missing duration, and it labelled
  ``let = 1`` (a plain missing name) as a reserved word. Of 2957 errors from random token
  soups after a header it agreed on 8%: 2600 were labelled "comment", because they stop in
  the state after the header, where the ``//`` example stops. ``token_type_match_fallback`` changed none of these.
- A label only chooses a template: the message still names what was expected (from the
  accepted terminals), what was found and the token before it, so the code below stays.
- Each call parses every example again: 0.44 ms per error, against 0.17 ms for the whole
  parse and diagnostic of a small policy.

So the examples stay where they are useful, as documentation checked by
tests/project/test_docs_examples.py, and the classification stays here, behind one ``fail()``.
"""

from __future__ import annotations

import re

import lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..errors import EXIT_POLICY, Diagnostic, EscalationError, PolicyError, Span
from ..suggest import did_you_mean
from .grammar import RESERVED, lark_parser
from .source import lark_lines, previous_token, previous_token_start, span_of_token

__all__ = ["SyntaxProblem", "fail"]


class SyntaxProblem(EscalationError):
    """A syntax error found outside Lark's parser: the code, message, place and hint of its diagnostic.

    It stays inside the syntax package: :func:`fail` turns it into a PolicyError (its exit code is the same).
    """

    exit_code = EXIT_POLICY

    def __init__(self, code: str, message: str, span: Span, hint: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.span = span
        self.hint = hint


def fail(err: UnexpectedInput | SyntaxProblem, text: str | None, path: str) -> PolicyError:
    """The PolicyError, with its one diagnostic, for a syntax error in ``text`` (the source shown with it).

    The callers raise it: ``raise fail(err, text, path) from None``.
    """
    if isinstance(err, SyntaxProblem):
        diagnostic = Diagnostic(err.code, "error", err.message, err.span, err.hint, path)
    else:
        diagnostic = _unexpected_input(err, text or "", path)
    return PolicyError([diagnostic], text)


_TERMINAL_WORDS = {
    "DURATION": "a duration such as 30s",
    "INT": "a number",
    "NAME": "a name",
    "DOTTED": "an event or action name such as customer.message",
    "STRING": 'a quoted string such as "text"',
    "CMP": "a comparison (==, !=, <, <=, >, >=)",
    "ADDOP": "`+` or `-`",
    "$END": "the end of the file",
}
_EXPR_START = {"INT", "DURATION", "STRING", "NAME", "LPAR", "COUNT", "SEEN", "LAST", "TIME", "TRUE", "FALSE", "NOT", "PERMITTED", "FORBIDDEN"}
_ITEM_START = {"LET", "DEFAULT", "EVENT", "ACTION", "CALENDAR", "RULE", "TEST", "CLAIM"}
_CALENDAR_ITEMS = {"ZONE", "WEEK", "HOLIDAYS"}
#: Hints for the words of language 2 that must be followed by one thing only.
_HINT_AFTER = {
    "week": "list the working days of the week: `week mon tue wed thu fri`",
    "zone": 'a zone is a quoted IANA name: `zone "Europe/London"`',
    "holidays": 'holidays are quoted dates: `holidays "2026-12-25", "2027-01-01"`',
    "from": 'a test may start at an RFC 3339 time: `test "name" from "2026-01-05T09:00:00Z" {`',
    "due": 'an obligation is due at an offset such as `due 3d`, or at a quoted time such as `due "2026-01-06T00:00:00Z"`',
}
_OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "+", "-", "and", "or", "not", "in")


def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        pattern = lark_parser().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    if isinstance(pattern, lark.lexer.PatternStr):
        return f"`{pattern.value}`"
    return name.lower()


def _describe_expected(expected: set[str]) -> str:
    expected = {e for e in expected if not e.startswith("__")}
    words: list[str] = []
    if expected >= _EXPR_START or {"INT", "NAME", "LPAR", "COUNT"} <= expected:
        words.append("a value or expression (a number, a duration, a name, `count`, `seen`, `last`, `time since`, `(`…)")
        expected -= _EXPR_START
    if expected >= _ITEM_START:
        words.append("`let`, `default`, `event`, `action`, `calendar`, `rule`, `test` or `claim`")
        expected -= _ITEM_START
    words.extend(sorted(_describe_terminal(e) for e in expected))
    if not words:
        return "something else"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _hint_for(expected: set[str], found: str, prev: str | None) -> str:
    if expected == {"DURATION"} or ("DURATION" in expected and prev == "within"):
        return "durations are a number and a unit: 30s, 2m, 48h, 7d"
    if prev == "working":
        return "a deadline in working days is written `within 10 working days` (or `within 1 working day`)"
    if prev == "across":
        return "`across contacts` makes an operator read the customer's history over every contact"
    if expected & _CALENDAR_ITEMS:
        return 'a calendar holds `zone "Europe/London"`, `week mon tue wed thu fri` and `holidays "2026-12-25", ...`'
    if prev in _HINT_AFTER:
        return _HINT_AFTER[prev]
    if "ALWAYS" in expected:
        return "a claim is written `claim \"name\" { always <condition> }`"
    if found in RESERVED and "NAME" in expected and "INT" not in expected:
        return f"`{found}` is a reserved word; choose another name"
    if "DOTTED" in expected and found and "." not in found:
        return "event and action names have a dot, such as `customer.message` or `agent.warn`"
    if "RBRACE" in expected and found in ("permit", "forbid", "require"):
        return "each rule has one trigger (`on` or `while`), then its effects"
    if prev in _OPERATORS:
        return f"`{prev}` needs something on its right-hand side"
    return "see docs/language.md for the shape of each construct"


def _end_of_text(text: str) -> Span:
    """The place just after the last character, as Lark counts lines."""
    lines = lark_lines(text)
    line = len(lines)
    col = len(lines[-1]) + 1
    return Span(line, col, line, col + 1, len(text), len(text))


def _unexpected_token(err: UnexpectedToken, text: str, path: str) -> Diagnostic:
    """What was expected where the parser stopped, what was found, and the likeliest fix."""
    tok = err.token
    found_text = str(tok)
    at_end = tok.type == "$END"
    prev = previous_token(text, len(text) if at_end else tok.start_pos)
    expected = set(err.accepts or err.expected)
    if expected == {"WORKING"}:  # `within 30`: a number with no unit, where a deadline is written
        return _number_without_unit(text, len(text) if at_end else tok.start_pos, path)
    message = f"expected {_describe_expected(expected)}"
    if prev is not None:
        message += f" after `{prev}`"
    message += ", found " + ("the end of the file" if at_end else f"`{found_text}`")
    span = _end_of_text(text) if at_end else span_of_token(tok)
    if found_text in RESERVED and "NAME" in expected and "INT" not in expected:
        message = f"`{found_text}` is a reserved word and cannot be used as a name here"
    elif prev == "week" and expected == {"NAME"}:
        message = "expected a day of the week such as `mon` after `week`, found " + ("the end of the file" if at_end else f"`{found_text}`")
    hint = _hint_for(expected, found_text, prev)
    if tok.type in ("NAME", "DOTTED"):
        keywords = [w.strip("`") for w in (_describe_terminal(e) for e in expected) if w.startswith("`") and w.strip("`").isidentifier()]
        guess = did_you_mean(found_text, keywords)
        if guess is not None:
            hint = f"did you mean `{guess}`?"
    return Diagnostic("E001", "error", message, span, hint, path)


def _number_without_unit(text: str, pos: int | None, path: str) -> Diagnostic:
    """``within 30`` followed by something else than ``working``: the number needs a unit."""
    found = previous_token_start(text, pos)
    number, start = found if found else ("30", pos or 0)
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    span = Span(line, col, line, col + len(number), start, start + len(number))
    message = f"expected a duration such as 30s after `within`, found `{number}` without a unit"
    hint = f"durations are a number and a unit: 30s, 2m, 48h, 7d; or write `{number} working days`"
    return Diagnostic("E001", "error", message, span, hint, path)


def _unexpected_characters(err: UnexpectedCharacters, text: str, path: str) -> Diagnostic:
    """A character no token can start with here: a unit typo, an unclosed string, a `//` comment, or a stray mark."""
    pos = err.pos_in_stream or 0
    line, col = err.line, err.column
    span = Span(line, col, line, col + 1, pos, pos + 1)
    rest = text[pos : pos + 40]
    if re.match(r"[0-9]+[A-Za-z_]", rest):
        m = re.match(r"[0-9]+[A-Za-z0-9_]*", rest)
        word = m.group(0) if m else rest
        span = Span(line, col, line, col + len(word), pos, pos + len(word))
        return Diagnostic(
            "E001", "error", f"`{word}` is neither a number nor a duration", span,
            "a duration is a number and one of s, m, h, d (30s, 2m, 48h, 7d); names cannot start with a digit", path,
        )
    if rest.startswith('"'):
        return Diagnostic(
            "E001", "error", "this string is not closed on its line, or has an escape JSON does not know", span,
            'strings are written on one line in double quotes; escapes are \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX', path,
        )
    char = text[pos] if pos < len(text) else ""
    allowed = _accepted_terminals(err)
    message = f"unexpected character `{char}`" if char.strip() else "unexpected character"
    if allowed and len(allowed) <= 4:
        message += f"; expected {_describe_expected(set(allowed))}"
    hint = "comments start with `#`" if char in ("/", ";") else "check for a typo at this position"
    return Diagnostic("E001", "error", message, span, hint, path)


def _accepted_terminals(err: UnexpectedCharacters) -> set[str]:
    """What the parser accepted where the lexer stopped: from the parse table when the state is known.

    The lexer's own ``allowed`` set holds NAME in every state (keywords are kept whole, see
    :mod:`.grammar`) and folds name-like keywords into it, so it says less than the table.
    """
    state = getattr(err, "state", None)
    try:
        return {t for t in state.parse_conf.parse_table.states[state.position] if t.isupper() and t != "$END"}  # type: ignore[union-attr]
    except (AttributeError, KeyError, TypeError):
        return set(getattr(err, "allowed", None) or ())


def _unexpected_input(err: UnexpectedInput, text: str, path: str) -> Diagnostic:
    if isinstance(err, UnexpectedToken):
        return _unexpected_token(err, text, path)
    if isinstance(err, UnexpectedCharacters):
        return _unexpected_characters(err, text, path)
    if isinstance(err, UnexpectedEOF):  # pragma: no cover - LALR reports $END as a token
        lines = lark_lines(text)
        span = Span(len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
        return Diagnostic("E001", "error", "the file ends too early", span, "", path)
    return Diagnostic("E001", "error", str(err).splitlines()[0], Span(1, 1, 1, 2), "", path)  # pragma: no cover
