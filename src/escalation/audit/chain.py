"""The hash chain of an audit log (interfaces.md §2): canonical JSON, SHA-256, the writer, and reading a chain back."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Iterator
from typing import IO, Any, Protocol

from ..errors import EXIT_TAMPERED, EscalationError

#: The ``prev`` of a log's first record.
GENESIS = "0" * 64


def stdlib_canonical(record: Any) -> bytes:
    """The canonical bytes as the contract defines them: Python's ``json.dumps`` (the reference :func:`canonical` matches)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


try:  # orjson writes the same bytes as the stdlib for everything but floats, and much faster
    import orjson

    _OPT = orjson.OPT_SORT_KEYS

    def _has_float(value: Any) -> bool:
        stack = [value]
        while stack:
            v = stack.pop()
            t = type(v)
            if t is float:
                return True
            if t is dict:
                stack.extend(v.values())
            elif t is list:
                stack.extend(v)
        return False

    _PLAIN = frozenset({str, int, bool, type(None)})

    def canonical(record: Any) -> bytes:
        """Keys sorted, no insignificant whitespace, non-ASCII as itself, UTF-8 (Python's json.dumps bytes)."""
        if _has_float(record):
            return stdlib_canonical(record)
        return _orjson_or_stdlib(record)

    def _orjson_or_stdlib(record: Any) -> bytes:
        try:
            return orjson.dumps(record, option=_OPT)
        except (orjson.JSONEncodeError, TypeError):  # integers beyond 64 bits, and the like
            return stdlib_canonical(record)

    def engine_canonical(record: dict[str, Any]) -> bytes:
        """:func:`canonical` for records the engine builds: only the input `event` can hold a float."""
        event = record.get("event")
        if event is not None and (type(event) is not dict or not _PLAIN.issuperset(map(type, event.values()))) and _has_float(event):
            return stdlib_canonical(record)
        return _orjson_or_stdlib(record)

except ImportError:  # pragma: no cover - exercised where orjson is absent
    canonical = stdlib_canonical
    engine_canonical = stdlib_canonical


#: A per-process placeholder for the hash while a record is encoded; nobody can predict it,
#: so no field of an input event can imitate it.
_NONCE = secrets.token_hex(32)
_NONCE_FIELD = b'"hash":"' + _NONCE.encode("ascii") + b'"'


def _splice_hash(line: bytes) -> tuple[bytes, str]:
    """Replace the placeholder hash field of an encoded record by the hash of the record without it."""
    at = line.find(_NONCE_FIELD)
    end = at + len(_NONCE_FIELD)
    if line[end : end + 1] == b",":
        without = line[:at] + line[end + 1 :]
    else:  # the last key: drop the comma before it
        without = line[: at - 1] + line[end:]
    digest = hashlib.sha256(without).hexdigest()
    return line[:at] + b'"hash":"' + digest.encode("ascii") + b'"' + line[end:], digest


def chained_line(body: dict[str, Any], prev: str) -> tuple[bytes, str]:
    """The canonical line of ``body`` with ``prev`` and ``hash`` set, and the hash; encodes once.

    The record is encoded with a placeholder hash; the hash is taken over those bytes
    without the placeholder field (exactly the canonical record without ``hash``), and
    the placeholder is then replaced by it.
    """
    body["prev"] = prev
    body["hash"] = _NONCE
    line = engine_canonical(body)
    del body["hash"]
    return _splice_hash(line)


#: Placeholders for records encoded before their place in the chain is known (parallel replay).
PREV_PLACEHOLDER = secrets.token_hex(32)  # random, so that no input can imitate it
_PREV_FIELD = b'"prev":"' + PREV_PLACEHOLDER.encode("ascii") + b'"'


def placeholder_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with placeholder ``prev`` and ``hash``, ready for :meth:`AuditWriter.write_encoded`."""
    record["prev"] = PREV_PLACEHOLDER
    record["hash"] = _NONCE
    return record


def complete_encoded(line: bytes, prev: str) -> tuple[bytes, str]:
    """Fill in ``prev`` and ``hash`` of a line encoded from :func:`placeholder_record`."""
    at = line.find(_PREV_FIELD)
    line = line[:at] + b'"prev":"' + prev.encode("ascii") + b'"' + line[at + len(_PREV_FIELD) :]
    return _splice_hash(line)


class Sink(Protocol):
    """Where an :class:`AuditWriter` writes: a binary file, or anything with its ``write``."""

    def write(self, data: bytes, /) -> int: ...


class AuditWriter:
    """Chains records (setting ``prev`` and ``hash``) and writes one canonical line each."""

    def __init__(self, out: Sink) -> None:
        self.out = out
        self.prev = GENESIS
        self.count = 0

    def write(self, record: dict[str, Any]) -> str:
        record.pop("hash", None)
        line, digest = chained_line(record, self.prev)
        record["hash"] = digest
        self.out.write(line + b"\n")
        self.prev = digest
        self.count += 1
        return digest

    def write_encoded(self, line: bytes) -> str:
        """Write a line encoded from :func:`placeholder_record`, completing its place in the chain."""
        line, digest = complete_encoded(line, self.prev)
        self.out.write(line + b"\n")
        self.prev = digest
        self.count += 1
        return digest

    def write_all(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.write(record)


def write_log(records: Iterable[dict[str, Any]], out: Sink) -> str:
    """Chain and write records; returns the last hash."""
    writer = AuditWriter(out)
    writer.write_all(records)
    return writer.prev


class BadLine(EscalationError):
    """A line of an audit log that breaks the chain or the format: its number and what is wrong."""

    exit_code = EXIT_TAMPERED

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


#: The longest line, without its LF, that verification reads from an audit log; a longer one is
#: refused after reading at most this many bytes of it, so that memory stays bounded whatever the
#: file holds. The engine's own records are far shorter at the default limits (a decision or
#: rejected record holds one input line of at most 1,000,000 bytes, at most 6 bytes per input
#: byte once escaped, plus lists bounded by the policy); only a close record of a conversation
#: with some 400,000 open obligations, or a decision meeting as many at once, would be longer
#: (docs/security.md, Known gaps).
MAX_RECORD_BYTES = 64 << 20
#: A line is first read this far; only one that begins as every record does (``{"``) is read on.
_FIRST_READ = 1 << 16
#: How much of a value a message quotes.
_SHOW_CHARS = 60


def quote(value: Any) -> str:
    """A short, one-line ``repr`` of a value read from a log, for a message."""
    text = repr(value)
    return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 1] + "…"


def read_lines(stream: IO[bytes], cap: int = MAX_RECORD_BYTES) -> Iterator[bytes]:
    """The lines of a binary stream, each with its LF (the last may lack it), each at most ``cap`` bytes
    before its LF; BadLine, at once, for a longer line (never more than ``cap + 1`` bytes of it are read)."""
    first = min(_FIRST_READ, cap + 1)
    readline = stream.readline
    number = 0
    while True:
        raw = readline(first)
        if not raw:
            return
        number += 1
        if len(raw) == first and not raw.endswith(b"\n"):
            if not raw.startswith(b'{"'):
                raise BadLine(number, "the line is not an audit record (every record is a JSON object)")
            buf = bytearray(raw)  # read on in pieces: a line refused never takes more than ``cap`` bytes of memory
            while len(buf) <= cap and not buf.endswith(b"\n"):
                piece = readline(min(1 << 20, cap + 1 - len(buf)))
                if not piece:
                    break
                buf += piece
            if len(buf) > cap and not buf.endswith(b"\n"):
                raise BadLine(number, f"the line is longer than {cap} bytes, longer than any record this engine writes")
            raw = bytes(buf)
        yield raw


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: Python's JSON parser without its extensions (NaN, Infinity): no log of the engine holds them.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def loads_strict(data: bytes) -> Any:
    """JSON from UTF-8 bytes, strictly (no NaN or Infinity); ValueError for anything else, deep nesting included."""
    try:
        return _DECODER.decode(data.decode("utf-8"))
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def _record_of(number: int, text: bytes) -> dict[str, Any]:
    """The record on one line (without its LF), which must be the canonical form of a JSON object."""
    try:
        record = loads_strict(text)
    except ValueError:  # UnicodeDecodeError is a ValueError
        raise BadLine(number, "the line is not JSON") from None
    if not isinstance(record, dict):
        raise BadLine(number, "the line is not a JSON object")
    try:
        form = canonical(record)
    except UnicodeEncodeError:
        raise BadLine(number, "the line holds a lone surrogate escape (such as \\udfff), which no log of this engine holds") from None
    except (RecursionError, ValueError):
        raise BadLine(number, "the line is not in canonical form (it was edited)") from None
    if form != text:
        raise BadLine(number, "the line is not in canonical form (it was edited)")
    return record


def chained_records(lines: Iterable[bytes] | IO[bytes], cap: int = MAX_RECORD_BYTES) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of an audit log's lines, each checked: whole, canonical, chained; BadLine at the first that is not.

    ``lines`` is a binary stream (read with :func:`read_lines`, each line at most ``cap``
    bytes) or the lines themselves.
    """
    prev = GENESIS
    source: Iterable[bytes] = read_lines(lines, cap) if hasattr(lines, "readline") else lines  # type: ignore[arg-type]
    for number, raw in enumerate(source, 1):
        if not raw.endswith(b"\n"):
            raise BadLine(number, "the line is not terminated: the log was cut short")
        record = _record_of(number, raw[:-1])
        if record.get("prev") != prev:
            raise BadLine(number, "`prev` does not match the previous record's hash (a record was removed, added or moved)")
        body = {k: v for k, v in record.items() if k != "hash"}
        digest = hashlib.sha256(canonical(body)).hexdigest()
        if record.get("hash") != digest:
            raise BadLine(number, "`hash` does not match the record's content (the record was changed)")
        prev = digest
        yield number, record


