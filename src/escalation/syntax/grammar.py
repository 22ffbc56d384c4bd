"""The grammar and Lark's parser for it, with the per-user cache of the analysed grammar.

The grammar lives in ``grammar/escalation.lark`` (shipped inside the package). Analysing
it into LALR tables takes a while, so the tables are kept in the user's own cache folder
as JSON, never as a pickle: reading the cache runs no code, and a cache that is a link,
belongs to another user, is writable by others, stale or damaged is ignored and rebuilt.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import lark
from lark import Lark, Token

__all__ = ["CACHE_FORMAT", "RESERVED", "build_parser", "cache_dir", "cache_key", "cache_name", "grammar_text", "lark_parser"]

#: The reserved words: keywords everywhere, never names (language.md §3; the last seven are new in version 2).
RESERVED = frozenset(
    ["policy", "version", "default", "permit", "forbid", "let", "event", "action", "rule", "on", "if", "while", "require", "or", "and", "not", "in", "within", "before", "since", "count", "seen", "last", "of", "else", "time", "true", "false", "because", "severity", "test", "at", "expect",
     "across", "calendar", "working", "claim", "always", "permitted", "forbidden"]
)

#: The format of the analysed-grammar cache. It is JSON, never pickle: reading it runs no code.
CACHE_FORMAT = "escalation-parser-tables/1"
#: A cache file larger than this is not read (the real one is about 100 kB).
_CACHE_MAX_BYTES = 8 << 20

#: The options the shared parser is built with (the analysed tables depend on them).
_LARK_OPTIONS: dict[str, Any] = {
    "parser": "lalr",
    "lexer": "contextual",
    "propagate_positions": True,
    "maybe_placeholders": True,
    "start": ["start", "test_file"],
}

#: The options kept in the cache (plain values); the callbacks are given again when it is loaded.
_STORED_OPTIONS = frozenset(
    ["debug", "strict", "keep_all_tokens", "cache", "cache_grammar", "parser", "lexer", "start", "priority", "ambiguity", "regex", "propagate_positions", "maybe_placeholders", "g_regex_flags", "use_bytes", "ordered_sets"]
)

#: Each reserved word's terminal name, filled in when the shared parser is built.
_KEYWORD_TYPES: dict[str, str] = {}


def grammar_text() -> str:
    """The text of ``grammar/escalation.lark``: from the installed package, else from a source checkout."""
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


def cache_key(grammar: str) -> str:
    """What the analysed tables depend on: the grammar, the options and Lark's version."""
    text = "\n".join([CACHE_FORMAT, lark.__version__, json.dumps(_LARK_OPTIONS, sort_keys=True), "always_accept=NAME", grammar])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_name(key: str) -> str:
    """The file name, inside :func:`cache_dir`, of the tables for ``key`` (from :func:`cache_key`)."""
    return f"parser-{key[:32]}.json"


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


def _read_cache(dir_fd: int, key: str) -> dict[str, Any] | None:
    """The cached tables, or None: a link, a file of another user, a stale or damaged file are all ignored."""
    try:
        fd = os.open(cache_name(key), os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0), dir_fd=dir_fd)
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
    if not isinstance(document, dict) or document.get("format") != CACHE_FORMAT or document.get("key") != key:
        return None
    tables = document.get("tables")
    return tables if isinstance(tables, dict) and isinstance(tables.get("data"), dict) and isinstance(tables.get("memo"), dict) else None


def _write_cache(dir_fd: int, key: str, parser: Lark) -> None:
    """Write the analysed tables beside their final name and rename them into place (whole or not at all)."""
    data, memo = parser.memo_serialize([lark.lexer.TerminalDef, lark.grammar.Rule])
    data["options"] = {k: v for k, v in data["options"].items() if k in _STORED_OPTIONS}
    document = {"format": CACHE_FORMAT, "key": key, "tables": _to_json({"data": data, "memo": memo})}
    payload = json.dumps(document, separators=(",", ":")).encode("utf-8")
    name = cache_name(key)
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


class _WholeWords(lark.lark.PostLex):
    """Keep keywords whole: every state of the contextual lexer also reads a NAME.

    Without it, a state that expects only keywords would read ``weeks mon`` as ``week s mon``
    and ``workingdays`` as ``working days``; with it ``weeks`` is one word, which the parser
    then refuses with a "did you mean `week`". A NAME that is exactly a keyword of the state
    is still that keyword (Lark's own rule), so no valid policy parses differently.
    """

    always_accept = ("NAME",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        return stream


def build_parser() -> Lark:
    """Lark's parser for the grammar: from the user's own cache when it holds these tables, else analysed afresh.

    Each call builds a new parser (and writes the cache when it analysed the grammar);
    everything else uses the one shared :func:`lark_parser`.
    """
    grammar = grammar_text()
    callbacks = {"NAME": _reserved_as_keyword}
    key = cache_key(grammar)
    dir_fd = _open_cache_dir()
    try:
        if dir_fd is not None:
            tables = _read_cache(dir_fd, key)
            if tables is not None:
                try:
                    loaded: Lark = Lark._load_from_dict(tables["data"], tables["memo"], lexer_callbacks=callbacks, propagate_positions=True, postlex=_WholeWords())  # type: ignore[no-untyped-call]
                    return loaded
                except Exception:  # a damaged cache is only a slower start
                    pass
        parser = Lark(grammar, lexer_callbacks=callbacks, postlex=_WholeWords(), **_LARK_OPTIONS)
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
    parser = build_parser()
    for terminal in parser.terminals:
        if isinstance(terminal.pattern, lark.lexer.PatternStr) and terminal.pattern.value in RESERVED:
            _KEYWORD_TYPES[terminal.pattern.value] = terminal.name
    return parser
