"""Source text -> :class:`~escalation.lang.ast.Policy`, with syntax errors in plain words.

The grammar lives in ``grammar/escalation.lark`` (shipped inside the package).
Lark's LALR parser builds a parse tree; one Transformer turns it into the AST.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import secrets
import stat
from importlib import resources
from pathlib import Path
from typing import Any

import lark
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ..errors import Diagnostic, PolicyError, Span
from ..lang import MAX_DEPTH, MAX_SOURCE_CHARS, ast
from ..suggest import did_you_mean

RESERVED = frozenset(
    ["policy", "version", "default", "permit", "forbid", "let", "event", "action", "rule", "on", "if", "while", "require", "or", "and", "not", "in", "within", "before", "since", "count", "seen", "last", "of", "else", "time", "true", "false", "because", "severity", "test", "at", "expect"]
)

#: The largest integer literal accepted.
MAX_INT = 2**53
#: The most backslashes, and the most dots, one line may hold. Python's regular expressions keep
#: about 190 bytes for each escape of a string literal and each part of a dotted name while they
#: match it; a literal and a name sit on one line, so this bounds that memory at about 2 MB.
MAX_LINE_MARKS = 10_000


def _grammar_text() -> str:
    packaged = resources.files("escalation").joinpath("grammar/escalation.lark")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    # An editable install or a source checkout: the top-level grammar/ folder.
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "grammar" / "escalation.lark"
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise FileNotFoundError("grammar/escalation.lark is missing from the installation")


_KEYWORD_TYPES: dict[str, str] = {}

#: The options the shared parser is built with (the analysed tables depend on them).
_LARK_OPTIONS: dict[str, Any] = {
    "parser": "lalr",
    "lexer": "contextual",
    "propagate_positions": True,
    "maybe_placeholders": True,
    "start": ["start", "test_file"],
}
#: The format of the analysed-grammar cache. It is JSON, never pickle: reading it runs no code.
_CACHE_FORMAT = "escalation-parser-tables/1"
#: A cache file larger than this is not read (the real one is about 100 kB).
_CACHE_MAX_BYTES = 8 << 20


def _cache_key(grammar: str) -> str:
    """What the analysed tables depend on: the grammar, the options and Lark's version."""
    import hashlib

    text = "\n".join([_CACHE_FORMAT, lark.__version__, json.dumps(_LARK_OPTIONS, sort_keys=True), grammar])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_dir() -> Path | None:
    """The per-user cache folder: ``$XDG_CACHE_HOME/escalation``, else ``~/.cache/escalation``.

    None where the platform cannot open files without following links (no ``O_NOFOLLOW``,
    no ``dir_fd``) or there is no home folder: the parser is then built at every start.
    """
    if not (hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY") and hasattr(os, "getuid") and os.open in os.supports_dir_fd):
        return None
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG rule: a relative value is ignored
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return Path(base) / "escalation"


def _private(st: os.stat_result) -> bool:
    """Owned by this user and writable by nobody else."""
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _open_cache_dir() -> int | None:
    """A descriptor of the cache folder, created 0700 if missing; None unless it is the user's own.

    The folder is opened without following a link and checked through the descriptor, so
    it cannot be swapped between the check and its use; files are then opened relative to it.
    """
    path = cache_dir()
    if path is None:
        return None
    try:
        os.makedirs(path.parent, mode=0o700, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if _private(os.fstat(fd)):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _cache_name(key: str) -> str:
    return f"parser-{key[:32]}.json"


def _read_cache(dir_fd: int, key: str) -> dict[str, Any] | None:
    """The cached tables, or None: a link, a file of another user, a stale or damaged file are all ignored."""
    try:
        fd = os.open(_cache_name(key), os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0), dir_fd=dir_fd)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode) or not _private(st) or st.st_size > _CACHE_MAX_BYTES:
                return None
            document = json.loads(fh.read(_CACHE_MAX_BYTES + 1), object_hook=_int_keys)
    except (OSError, ValueError, TypeError, RecursionError):
        return None
    if not isinstance(document, dict) or document.get("format") != _CACHE_FORMAT or document.get("key") != key:
        return None
    tables = document.get("tables")
    return tables if isinstance(tables, dict) and isinstance(tables.get("data"), dict) and isinstance(tables.get("memo"), dict) else None


def _write_cache(dir_fd: int, key: str, parser: Lark) -> None:
    """Write the analysed tables beside their final name and rename them into place (whole or not at all)."""
    data, memo = parser.memo_serialize([lark.lexer.TerminalDef, lark.grammar.Rule])
    data["options"] = {k: v for k, v in data["options"].items() if k in _STORED_OPTIONS}
    document = {"format": _CACHE_FORMAT, "key": key, "tables": _to_json({"data": data, "memo": memo})}
    payload = json.dumps(document, separators=(",", ":")).encode("utf-8")
    name = _cache_name(key)
    tmp = f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # replaces a link at `name`, never its target
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)


#: The options kept in the cache (plain values); the callbacks are given again when it is loaded.
_STORED_OPTIONS = frozenset(
    ["debug", "strict", "keep_all_tokens", "cache", "cache_grammar", "parser", "lexer", "start", "priority", "ambiguity", "regex", "propagate_positions", "maybe_placeholders", "g_regex_flags", "use_bytes", "ordered_sets"]
)


def _to_json(value: Any) -> Any:
    """Lark's serialized tables as JSON: dicts with integer keys become ``{"#int": [[k, v], ...]}``."""
    if isinstance(value, dict):
        if value and all(isinstance(k, int) for k in value):
            return {"#int": [[k, _to_json(v)] for k, v in value.items()]}
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    return value


def _int_keys(obj: dict[str, Any]) -> Any:
    """The ``object_hook`` that undoes :func:`_to_json` while the JSON is decoded."""
    pairs = obj.get("#int")
    if len(obj) == 1 and isinstance(pairs, list):
        return {int(k): v for k, v in pairs}
    return obj


def _build_parser() -> Lark:
    """Lark's parser for the grammar: from the user's own cache when it holds these tables, else analysed afresh."""
    grammar = _grammar_text()
    callbacks = {"NAME": _reserved_as_keyword}
    key = _cache_key(grammar)
    dir_fd = _open_cache_dir()
    try:
        if dir_fd is not None:
            tables = _read_cache(dir_fd, key)
            if tables is not None:
                try:
                    loaded: Lark = Lark._load_from_dict(tables["data"], tables["memo"], lexer_callbacks=callbacks, propagate_positions=True)  # type: ignore[no-untyped-call]
                    return loaded
                except Exception:  # a damaged cache is only a slower start
                    pass
        parser = Lark(grammar, lexer_callbacks=callbacks, **_LARK_OPTIONS)
        if dir_fd is not None:
            _write_cache(dir_fd, key, parser)
        return parser
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def _reserved_as_keyword(tok: Token) -> Token:
    """Lex a reserved word as its keyword everywhere, even where only a name could follow.

    Lark's contextual lexer would otherwise read ``permit`` as a name in a place
    where no keyword is expected, and the syntax error would surface one token late.
    """
    kind = _KEYWORD_TYPES.get(str(tok))
    return Token.new_borrow_pos(kind, str(tok), tok) if kind else tok


@functools.cache
def lark_parser() -> Lark:
    """The shared LALR parser (thread-safe: each parse keeps its own state)."""
    parser = _build_parser()
    for terminal in parser.terminals:
        if isinstance(terminal.pattern, lark.lexer.PatternStr) and terminal.pattern.value in RESERVED:
            _KEYWORD_TYPES[terminal.pattern.value] = terminal.name
    return parser


def _span_of_token(tok: Token) -> Span:
    return Span(
        tok.line or 1,
        tok.column or 1,
        tok.end_line or tok.line or 1,
        tok.end_column or (tok.column or 1) + len(tok),
        tok.start_pos or 0,
        tok.end_pos or 0,
    )


def _span_of_meta(meta: Any) -> Span:
    if getattr(meta, "empty", True):
        return Span(1, 1, 1, 1)
    return Span(meta.line, meta.column, meta.end_line, meta.end_column, meta.start_pos, meta.end_pos)


class _SyntaxProblem(Exception):
    def __init__(self, diagnostic_args: tuple[str, str, Span, str]) -> None:
        self.args_ = diagnostic_args


def _name(tok: Token) -> ast.Name:
    return ast.Name(str(tok), _span_of_token(tok))


def _plain_name(tok: Token) -> ast.Name:
    """A NAME that the author chose: reserved words are refused here."""
    if str(tok) in RESERVED:
        raise _SyntaxProblem(
            (
                "E002",
                f"`{tok}` is a reserved word and cannot be used as a name",
                _span_of_token(tok),
                f"choose another name, such as `{tok}_value`",
            )
        )
    return _name(tok)


#: The longest duration accepted (100 years), so that every deadline stays a date the audit log can write.
MAX_DURATION_SECONDS = 100 * 366 * 86400


def _string(tok: Token) -> ast.StringLit:
    value = json.loads(str(tok))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _SyntaxProblem(("E002", "this string holds a lone surrogate escape (such as \\ud800), which is not a character", _span_of_token(tok), "write the character itself, or a complete surrogate pair")) from None
    return ast.StringLit(value, _span_of_token(tok))


def _duration(tok: Token) -> ast.DurationLit:
    digits = str(tok)[:-1]
    if len(digits) > 12 or ast.DurationLit(str(tok)).seconds > MAX_DURATION_SECONDS:
        raise _SyntaxProblem(("E003", f"the duration {str(tok)[:20]} is too long", _span_of_token(tok), "durations go up to 100 years (36600d)"))
    return ast.DurationLit(str(tok), _span_of_token(tok))


@v_args(meta=True, inline=True)
class _ToAst(Transformer[Token, ast.Policy]):
    """Parse tree -> AST. Rule names follow grammar/escalation.lark."""

    # -- literals and names
    def int_lit(self, meta: Any, tok: Token) -> ast.IntLit:
        if len(tok) > 16 or int(str(tok)) > MAX_INT:
            raise _SyntaxProblem(("E003", f"the number {str(tok)[:20]} is too large", _span_of_token(tok), f"numbers go up to {MAX_INT}"))
        return ast.IntLit(int(str(tok)), _span_of_token(tok))

    def duration_lit(self, meta: Any, tok: Token) -> ast.DurationLit:
        return _duration(tok)

    def string_lit(self, meta: Any, tok: Token) -> ast.StringLit:
        return _string(tok)

    def true_lit(self, meta: Any) -> ast.BoolLit:
        return ast.BoolLit(True, _span_of_meta(meta))

    def false_lit(self, meta: Any) -> ast.BoolLit:
        return ast.BoolLit(False, _span_of_meta(meta))

    def name_ref(self, meta: Any, tok: Token) -> ast.NameRef:
        return ast.NameRef(_plain_name(tok).text, _span_of_token(tok))

    # -- expressions
    def group(self, meta: Any, expr: ast.Expr) -> ast.Group:
        return ast.Group(expr, _span_of_meta(meta))

    def not_(self, meta: Any, operand: ast.Expr) -> ast.Not:
        return ast.Not(operand, _span_of_meta(meta))

    def or_(self, meta: Any, left: ast.Expr, right: ast.Expr) -> ast.BoolOp:
        return ast.BoolOp("or", left, right, _span_of_meta(meta))

    def and_(self, meta: Any, left: ast.Expr, right: ast.Expr) -> ast.BoolOp:
        return ast.BoolOp("and", left, right, _span_of_meta(meta))

    def compare(self, meta: Any, left: ast.Expr, op: Token, right: ast.Expr) -> ast.Compare:
        return ast.Compare(str(op), left, right, _span_of_meta(meta))

    def arith(self, meta: Any, left: ast.Expr, op: Token, right: ast.Expr) -> ast.Arith:
        return ast.Arith(str(op), left, right, _span_of_meta(meta))

    def in_(self, meta: Any, left: ast.Expr, members: tuple[ast.Literal, ...]) -> ast.In:
        return ast.In(left, members, _span_of_meta(meta))

    def set(self, meta: Any, *members: ast.Literal) -> tuple[ast.Literal, ...]:
        return members

    def pattern(self, meta: Any, event: Token, cond: ast.Expr | None) -> ast.Pattern:
        return ast.Pattern(_name(event), cond, _span_of_meta(meta))

    def since(self, meta: Any, pattern: ast.Pattern) -> ast.Pattern:
        return pattern

    def window(self, meta: Any, tok: Token) -> ast.DurationLit:
        return self.duration_lit(meta, tok)

    def count(self, meta: Any, pattern: ast.Pattern, since: ast.Pattern | None, window: ast.DurationLit | None) -> ast.Count:
        return ast.Count(pattern, since, window, _span_of_meta(meta))

    def seen(self, meta: Any, pattern: ast.Pattern, since: ast.Pattern | None) -> ast.Seen:
        return ast.Seen(pattern, since, _span_of_meta(meta))

    def last(self, meta: Any, attr: Token, pattern: ast.Pattern, default: ast.Literal | None) -> ast.Last:
        return ast.Last(_plain_name(attr), pattern, default, _span_of_meta(meta))

    def time_since(self, meta: Any, pattern: ast.Pattern) -> ast.TimeSince:
        return ast.TimeSince(pattern, _span_of_meta(meta))

    # -- items
    def header(self, meta: Any, name: Token, version: Token | None) -> tuple[ast.StringLit, ast.StringLit | None]:
        return _string(name), (_string(version) if version is not None else None)

    def let(self, meta: Any, name: Token, expr: ast.Expr) -> ast.Let:
        return ast.Let(_plain_name(name), expr, _span_of_meta(meta))

    def effect_kw(self, meta: Any, tok: Token) -> Token:
        return tok

    def level(self, meta: Any, tok: Token) -> ast.Name:
        return _name(tok)

    def action(self, meta: Any, tok: Token) -> ast.Name:
        return _name(tok)

    def default(self, meta: Any, effect: Token, action: ast.Name, level: ast.Name | None) -> ast.Default:
        return ast.Default(str(effect), action, level, _span_of_meta(meta))

    def base_type(self, meta: Any, tok: Token) -> ast.TypeRef:
        return ast.TypeRef(str(tok), (), _span_of_meta(meta))

    def enum_type(self, meta: Any, *members: Token) -> ast.TypeRef:
        return ast.TypeRef("enum", tuple(_plain_name(m) for m in members), _span_of_meta(meta))

    def type(self, meta: Any, t: ast.TypeRef) -> ast.TypeRef:
        return t

    def field(self, meta: Any, name: Token, type_: ast.TypeRef, default: ast.Literal | None) -> ast.FieldDecl:
        return ast.FieldDecl(_plain_name(name), type_, default, _span_of_meta(meta))

    def event_decl(self, meta: Any, name: Token, *fields: ast.FieldDecl | None) -> ast.Decl:
        return ast.Decl("event", _name(name), tuple(f for f in fields if f is not None), _span_of_meta(meta))

    def action_decl(self, meta: Any, name: Token, *fields: ast.FieldDecl | None) -> ast.Decl:
        return ast.Decl("action", _name(name), tuple(f for f in fields if f is not None), _span_of_meta(meta))

    # -- rules
    def on_trigger(self, meta: Any, pattern: ast.Pattern, cond: ast.Expr | None) -> ast.On:
        return ast.On(pattern, cond, _span_of_meta(meta))

    def while_trigger(self, meta: Any, cond: ast.Expr) -> ast.While:
        return ast.While(cond, _span_of_meta(meta))

    def permission(self, meta: Any, effect: Token, action: ast.Name) -> ast.Permission:
        return ast.Permission(str(effect), action, _span_of_meta(meta))

    def require(self, meta: Any, *parts: Any) -> ast.Require:
        patterns = tuple(p for p in parts if isinstance(p, ast.Pattern))
        rest = [p for p in parts if not isinstance(p, ast.Pattern)]
        within: ast.DurationLit | None = None
        before: ast.Name | None = None
        if len(rest) == 2:  # within DURATION [before DOTTED]
            within = _duration(rest[0])
            before = _name(rest[1]) if rest[1] is not None else None
        elif len(rest) == 1:  # before DOTTED
            before = _name(rest[0])
        return ast.Require(patterns, within, before, _span_of_meta(meta))

    def because(self, meta: Any, tok: Token) -> ast.Because:
        return ast.Because(_string(tok), _span_of_meta(meta))

    def severity(self, meta: Any, level: ast.Name) -> ast.SeverityNote:
        return ast.SeverityNote(level, _span_of_meta(meta))

    def rule(self, meta: Any, name: Token, trigger: ast.Trigger, *rest: Any) -> ast.Rule:
        effects = tuple(r for r in rest if isinstance(r, (ast.Permission, ast.Require)))
        notes = tuple(r for r in rest if isinstance(r, (ast.Because, ast.SeverityNote)))
        return ast.Rule(_plain_name(name), trigger, effects, notes, _span_of_meta(meta))

    # -- tests
    def arg(self, meta: Any, name: Token, value: ast.Literal) -> ast.Arg:
        return ast.Arg(_plain_name(name), value, _span_of_meta(meta))

    def event_step(self, meta: Any, at: Token | None, event: Token, *args: ast.Arg) -> ast.EventStep:
        return ast.EventStep(_name(event), tuple(args), _duration(at) if at is not None else None, _span_of_meta(meta))

    def permission_kw(self, meta: Any, tok: Token) -> Token:
        return tok

    def expect_permission(self, meta: Any, kw: Token, action: ast.Name) -> ast.ExpectPermission:
        return ast.ExpectPermission(str(kw) == "permitted", action, _span_of_meta(meta))

    def expect_obligation(self, meta: Any, action: ast.Name, due: Token | None) -> ast.ExpectObligation:
        return ast.ExpectObligation(action, _duration(due) if due is not None else None, _span_of_meta(meta))

    def violation_kind(self, meta: Any, tok: Token) -> Token:
        return tok

    def default_kw(self, meta: Any, tok: Token) -> ast.Name:
        return _name(tok)

    def violation_rule(self, meta: Any, tok: Token | ast.Name) -> ast.Name:
        return tok if isinstance(tok, ast.Name) else _name(tok)

    def expect_violation(self, meta: Any, kind: Token, rule: ast.Name | None) -> ast.ExpectViolation:
        return ast.ExpectViolation(str(kind), rule, _span_of_meta(meta))

    def expect_no_violations(self, meta: Any) -> ast.ExpectNoViolations:
        return ast.ExpectNoViolations(_span_of_meta(meta))

    def expect_fired(self, meta: Any, rule: Token) -> ast.ExpectFired:
        return ast.ExpectFired(_name(rule), _span_of_meta(meta))

    def test(self, meta: Any, name: Token, *steps: ast.Step) -> ast.Test:
        return ast.Test(_string(name), tuple(steps), _span_of_meta(meta))

    def test_file(self, meta: Any, *tests: ast.Test) -> tuple[ast.Test, ...]:
        return tests

    def start(self, meta: Any, header: tuple[ast.StringLit, ast.StringLit | None], *items: ast.Item) -> ast.Policy:
        return ast.Policy(header[0], header[1], tuple(items), _span_of_meta(meta))


_TRANSFORMER = _ToAst()

# ---------------------------------------------------------------- syntax errors in words

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
_EXPR_START = {"INT", "DURATION", "STRING", "NAME", "LPAR", "COUNT", "SEEN", "LAST", "TIME", "TRUE", "FALSE", "NOT"}
_ITEM_START = {"LET", "DEFAULT", "EVENT", "ACTION", "RULE", "TEST"}


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
        words.append("`let`, `default`, `event`, `action`, `rule` or `test`")
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
    if found in RESERVED and "NAME" in expected and "INT" not in expected:
        return f"`{found}` is a reserved word; choose another name"
    if "DOTTED" in expected and found and "." not in found:
        return "event and action names have a dot, such as `customer.message` or `agent.warn`"
    if "RBRACE" in expected and found in ("permit", "forbid", "require") :
        return "each rule has one trigger (`on` or `while`), then its effects"
    if prev in ("==", "!=", "<", "<=", ">", ">=", "+", "-", "and", "or", "not", "in"):
        return f"`{prev}` needs something on its right-hand side"
    return "see docs/language.md for the shape of each construct"


_LAST_TOKEN = re.compile(r'(==|!=|<=|>=|[<>+\-(){}\[\],=:|]|"(?:[^"\\]|\\.)*"|[A-Za-z0-9_.]+)$')


def _previous_token(text: str, pos: int | None) -> str | None:
    """The token that ends just before ``pos``, skipping blanks and comments."""
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
        return m.group(1) if m else None


def _lines(text: str) -> list[str]:
    """Lines as Lark counts them: broken at LF only, a final empty one dropped."""
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines


def _syntax_diagnostic(err: UnexpectedInput, text: str, path: str) -> Diagnostic:
    if isinstance(err, UnexpectedToken):
        tok = err.token
        found_text = str(tok)
        prev = _previous_token(text, tok.start_pos if tok.type != "$END" else len(text))
        found = "the end of the file" if tok.type == "$END" else f"`{found_text}`"
        expected = set(err.accepts or err.expected)
        message = f"expected {_describe_expected(expected)}"
        if prev is not None:
            message += f" after `{prev}`"
        message += f", found {found}"
        if tok.type == "$END":
            lines = _lines(text)
            line = len(lines)
            col = len(lines[-1]) + 1
            span = Span(line, col, line, col + 1, len(text), len(text))
        else:
            span = _span_of_token(tok)
        if found_text in RESERVED and "NAME" in expected and "INT" not in expected:
            message = f"`{found_text}` is a reserved word and cannot be used as a name here"
        hint = _hint_for(expected, found_text, prev)
        if tok.type in ("NAME", "DOTTED"):
            keywords = [w.strip("`") for w in (_describe_terminal(e) for e in expected) if w.startswith("`") and w.strip("`").isidentifier()]
            guess = did_you_mean(found_text, keywords)
            if guess is not None:
                hint = f"did you mean `{guess}`?"
        return Diagnostic("E001", "error", message, span, hint, path)
    if isinstance(err, UnexpectedCharacters):
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
        allowed = getattr(err, "allowed", None) or set()
        message = f"unexpected character `{char}`" if char.strip() else "unexpected character"
        if allowed and len(allowed) <= 4:
            message += f"; expected {_describe_expected(set(allowed))}"
        hint = "comments start with `#`" if char in ("/", ";") else "check for a typo at this position"
        return Diagnostic("E001", "error", message, span, hint, path)
    if isinstance(err, UnexpectedEOF):  # pragma: no cover - LALR reports $END as a token
        lines = _lines(text)
        span = Span(len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
        return Diagnostic("E001", "error", "the file ends too early", span, "", path)
    return Diagnostic("E001", "error", str(err).splitlines()[0], Span(1, 1, 1, 2), "", path)  # pragma: no cover


def _too_deep(tree: lark.Tree[Token]) -> lark.Tree[Token] | None:
    """The first subtree deeper than MAX_DEPTH, found without recursion."""
    stack: list[tuple[lark.Tree[Token], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return node
        for child in node.children:
            if isinstance(child, lark.Tree):
                stack.append((child, depth + 1))
    return None


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
        raise PolicyError(
            [Diagnostic("E005", "error", "the policy holds a lone surrogate, which is not a character", Span(line, col, line, col + 1, err.start, err.start + 1), "save the policy as valid UTF-8", path)],
            text.encode("utf-8", "replace").decode("utf-8"),
        ) from None
    if len(text) > MAX_SOURCE_CHARS:
        raise PolicyError(
            [Diagnostic("E004", "error", f"the policy is too large ({len(text)} characters)", Span(1, 1, 1, 2), f"policies may have at most {MAX_SOURCE_CHARS} characters; split it", path)],
            text,
        )
    crowded = _crowded_line(text)
    if crowded is not None:
        line, mark = crowded
        raise PolicyError(
            [Diagnostic("E004", "error", f"line {line} holds more than {MAX_LINE_MARKS} {mark}", Span(line, 1, line, 2), f"a line may hold at most {MAX_LINE_MARKS} backslashes and {MAX_LINE_MARKS} dots; write characters instead of escapes, or spread the names over several lines", path)],
            text,
        )
    if not text.strip() and start == "start":
        raise PolicyError(
            [Diagnostic("E001", "error", "the policy is empty", Span(1, 1, 1, 2), 'a policy starts with a header such as `policy "Name" version "1"`', path)],
            text,
        )
    try:
        tree = lark_parser().parse(text, start=start)
    except UnexpectedInput as err:
        raise PolicyError([_syntax_diagnostic(err, text, path)], text) from None
    deep = _too_deep(tree)
    if deep is not None:
        span = _span_of_meta(deep.meta)
        raise PolicyError(
            [Diagnostic("E004", "error", f"this expression is nested too deeply (more than {MAX_DEPTH} levels)", span, "split it into several `let`s", path)],
            text,
        )
    try:
        return _TRANSFORMER.transform(tree)
    except VisitError as err:
        orig = err.orig_exc
        if isinstance(orig, _SyntaxProblem):
            code, message, span, hint = orig.args_
            raise PolicyError([Diagnostic(code, "error", message, span, hint, path)], text) from None
        raise


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
        raise PolicyError([Diagnostic("E005", "error", f"cannot read the policy: {err.strerror or err}", Span(1, 1, 1, 1), "check the path", path)]) from None
    if size > limit or len(data) > limit:
        told = f"{size} bytes" if size > limit else f"more than {limit} bytes"
        raise PolicyError(
            [Diagnostic("E004", "error", f"the policy is too large ({told})", Span(1, 1, 1, 2), f"policies may have at most {MAX_SOURCE_CHARS} characters; split it", path)],
            None,
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")) + 1
        raise PolicyError(
            [Diagnostic("E005", "error", f"the policy is not valid UTF-8 (byte 0x{data[err.start]:02x})", Span(line, col, line, col + 1), "save the file as UTF-8", path)],
            data.decode("utf-8", errors="replace"),
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text
