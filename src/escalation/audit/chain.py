"""The hash-chained audit log (interfaces.md §2): canonical JSON, SHA-256 chain, verification."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Iterator
from typing import IO, Any, Protocol

import attrs

from ..errors import EXIT_TAMPERED, EscalationError

FORMAT = "escalation-audit/1"
GENESIS = "0" * 64
KINDS = ("forbidden_action", "missed_deadline", "unfulfilled")


def _stdlib_canonical(record: Any) -> bytes:
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
            return _stdlib_canonical(record)
        return _orjson_or_stdlib(record)

    def _orjson_or_stdlib(record: Any) -> bytes:
        try:
            return orjson.dumps(record, option=_OPT)
        except (orjson.JSONEncodeError, TypeError):  # integers beyond 64 bits, and the like
            return _stdlib_canonical(record)

    def engine_canonical(record: dict[str, Any]) -> bytes:
        """:func:`canonical` for records the engine builds: only the input `event` can hold a float."""
        event = record.get("event")
        if event is not None and (type(event) is not dict or not _PLAIN.issuperset(map(type, event.values()))) and _has_float(event):
            return _stdlib_canonical(record)
        return _orjson_or_stdlib(record)

except ImportError:  # pragma: no cover - exercised where orjson is absent
    canonical = _stdlib_canonical
    engine_canonical = _stdlib_canonical


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


@attrs.frozen(slots=True)
class VerifyResult:
    ok: bool
    message: str
    line: int | None = None  # the first bad line, 1-based
    header: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None


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
#: The longest idle horizon a header can hold, in seconds: the span of the times a log can write.
MAX_IDLE_HORIZON_S = 315_537_897_600
#: How much of a value a message quotes.
_SHOW_CHARS = 60
SEVERITIES = ("low", "medium", "high", "critical")


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


# ------------------------------------------------------------------ the shape of each record


def _is_sha256(value: Any) -> bool:
    return type(value) is str and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def is_time(value: Any) -> bool:
    """Whether ``value`` is a time as the log writes it (UTC, ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``)."""
    from ..lang.units import TimeError, format_time, parse_time

    if type(value) is not str or len(value) > 27:
        return False
    try:
        return format_time(parse_time(value)) == value
    except (TimeError, OverflowError, ValueError):
        return False


def _str_list(value: Any) -> bool:
    return type(value) is list and all(type(v) is str for v in value)


def _optional_str(value: Any) -> bool:
    return value is None or type(value) is str


def _violation(v: Any) -> bool:
    return (
        type(v) is dict
        and v.get("kind") in KINDS
        and type(v.get("rule")) is str
        and _str_list(v.get("rules"))
        and _optional_str(v.get("action"))
        and _optional_str(v.get("obligation"))
        and v.get("severity") in SEVERITIES
        and type(v.get("message")) is str
    )


def _obligation(o: Any) -> bool:
    return (
        type(o) is dict
        and type(o.get("id")) is str
        and type(o.get("rule")) is str
        and _str_list(o.get("actions"))
        and type(o.get("created_at")) is str
        and _optional_str(o.get("due"))
        and _optional_str(o.get("before"))
    )


def check_header(record: dict[str, Any], engine: str, number: int = 1) -> None:
    """BadLine unless ``record`` is a well-formed header of this engine's format and version."""
    if record.get("kind") != "header" or record.get("format") != FORMAT:
        raise BadLine(number, f"the first record is not an {FORMAT} header")
    if record.get("engine") != engine:
        raise BadLine(number, f"the log was written by {quote(record.get('engine'))}, and this is {engine!r}: verify it with that version")
    problem = option_problem(record)
    if problem is not None:
        raise BadLine(number, problem)


def option_problem(record: dict[str, Any], holder: str = "header") -> str | None:
    """What is wrong with the `policy`, `inputs`, `as_of` and `idle_horizon` of a header (or a manifest), or None."""
    policy = record.get("policy")
    if not (type(policy) is dict and type(policy.get("name")) is str and _optional_str(policy.get("version")) and _is_sha256(policy.get("sha256"))):
        return f"the {holder}'s `policy` is {quote(policy)}, not {{name, version, sha256}}"
    inputs = record.get("inputs")
    if not (type(inputs) is list and all(type(i) is dict and type(i.get("path")) is str and _is_sha256(i.get("sha256")) for i in inputs)):
        return f"the {holder}'s `inputs` is {quote(inputs)}, not a list of {{path, sha256}}"
    if "as_of" not in record or not (record["as_of"] is None or is_time(record["as_of"])):
        return f"the {holder}'s `as_of` is {quote(record.get('as_of'))}, neither null nor a time such as 2026-11-30T00:00:00Z"
    if "idle_horizon" in record:
        horizon = record["idle_horizon"]
        if type(horizon) is not int or not 1 <= horizon <= MAX_IDLE_HORIZON_S:
            return f"the {holder}'s `idle_horizon` is {quote(horizon)}, not a number of seconds from 1 to {MAX_IDLE_HORIZON_S}"
    return None


def check_record(record: dict[str, Any], number: int, header: dict[str, Any]) -> None:
    """BadLine unless a `decision`, `rejected` or `close` record has every field the log's readers use, of its type."""
    kind = record.get("kind")
    if kind == "decision":
        ok = (
            type(record.get("source")) is str
            and type(record.get("conversation")) is str
            and type(record.get("time")) is str
            and type(record.get("type")) is str
            and type(record.get("event")) is dict
            and type(record.get("violations")) is list
            and all(map(_violation, record["violations"]))
            and _str_list(record.get("fulfilled"))
            and type(record.get("created")) is list
            and all(map(_obligation, record["created"]))
            and _str_list(record.get("fired"))
            and _str_list(record.get("active"))
            and _str_list(record.get("permitted"))
            and _str_list(record.get("forbidden"))
        )
    elif kind == "rejected":
        ok = type(record.get("source")) is str and type(record.get("reason")) is str and type(record.get("raw")) is str
    elif kind == "close":
        if record.get("as_of") != header.get("as_of"):
            raise BadLine(number, f"the close record's `as_of` is {quote(record.get('as_of'))}, the header's {quote(header.get('as_of'))}")
        ok = (
            type(record.get("conversation")) is str
            and type(record.get("violations")) is list
            and all(map(_violation, record["violations"]))
            and type(record.get("open")) is list
            and all(map(_obligation, record["open"]))
        )
    else:
        raise BadLine(number, f"unknown record kind {quote(kind)}")
    if not ok:
        raise BadLine(number, f"a {kind} record lacks a field or holds one of the wrong type")


@attrs.define
class Tally:
    """What a log's records add up to, for checking its `summary` (a whole log, or one part of a partitioned one)."""

    decisions: int = 0
    rejected: int = 0
    violations: int = 0
    open_obligations: int = 0
    by_kind: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(KINDS, 0))
    conversations: set[str] = attrs.field(factory=set)

    def add(self, record: dict[str, Any]) -> None:
        """Count a `decision`, `rejected` or `close` record (checked by :func:`check_record`)."""
        kind = record.get("kind")
        if kind == "rejected":
            self.rejected += 1
            return
        if kind == "decision":
            self.decisions += 1
            self.conversations.add(record["conversation"])
        elif kind == "close":
            self.open_obligations += len(record.get("open", []))
        for v in record.get("violations", []):
            self.violations += 1
            self.by_kind[v["kind"]] = self.by_kind.get(v["kind"], 0) + 1

    def mismatch(self, summary: dict[str, Any], holder: str = "log") -> str | None:
        """Why ``summary`` does not match what was counted (values and JSON types), or None when it does."""
        expected = {
            "records": self.decisions + self.rejected,
            "events": self.decisions,
            "rejected": self.rejected,
            "conversations": len(self.conversations),
            "violations": self.violations,
            "by_kind": self.by_kind,
            "open_obligations": self.open_obligations,
        }
        for key, value in expected.items():
            if key not in summary or canonical(summary[key]) != canonical(value):  # `true` is not 1
                return f"the summary says {key}={quote(summary.get(key))}, but the {holder} holds {value!r}"
        return None


def verify_stream(lines: Iterable[bytes] | IO[bytes], engine: str, cap: int = MAX_RECORD_BYTES) -> VerifyResult:
    """Check the chain, the header, the record order, each record's fields and the summary's counts of an audit log.

    ``lines`` is a binary stream (read in bounded memory: a line longer than ``cap`` bytes
    is refused) or the log's lines. Never raises for what the log holds.
    """
    header: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    seq = 0
    tally = Tally()
    closing = False
    lines_read = 0
    try:
        for number, record in chained_records(lines, cap):
            lines_read = number
            if summary is not None:
                raise BadLine(number, "a record follows the summary")
            if header is None:
                check_header(record, engine, number)
                header = record
                continue
            kind = record.get("kind")
            if kind == "summary":
                problem = tally.mismatch(record)
                if problem is not None:
                    raise BadLine(number, problem)
                summary = record
                continue
            check_record(record, number, header)
            if kind in ("decision", "rejected"):
                if closing:
                    raise BadLine(number, f"a {kind} record follows the close records")
                seq += 1
                found = record.get("seq")
                if type(found) is not int or found != seq:
                    raise BadLine(number, f"expected seq {seq}, found {quote(found)} (records are missing or out of order)")
            else:
                closing = True
            tally.add(record)
    except BadLine as bad:
        return VerifyResult(False, bad.message, bad.line, header, summary)
    if header is None:
        return VerifyResult(False, "the log is empty", 1)
    if summary is None:
        return VerifyResult(False, "the log has no summary: it was cut short", lines_read + 1, header)
    return VerifyResult(True, "intact", None, header, summary)


# ------------------------------------------------------------------ comparing with a fresh replay, line by line


class Differs(EscalationError):
    """A line of an existing log that is not the line a fresh replay writes there."""

    exit_code = EXIT_TAMPERED

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class LineComparer:
    """Stands where a log would be written: each line written must be the next line of ``stream``.

    Holds one line of each at a time (lines of the stream are read with :func:`read_lines`);
    the first line that differs raises :class:`Differs`.
    """

    def __init__(self, stream: IO[bytes], cap: int = MAX_RECORD_BYTES) -> None:
        self._lines = read_lines(stream, cap)
        self.number = 0

    def _next(self) -> bytes | None:
        try:
            return next(self._lines, None)
        except BadLine:
            return b""  # a line too long to be one the replay writes

    def write(self, data: bytes) -> int:
        self.number += 1
        line = self._next()
        if line is None:
            raise Differs(self.number, "the log ends before a fresh replay does")
        if line != data:
            raise Differs(self.number, "differs from a fresh replay of the inputs")
        return len(data)

    def end(self) -> None:
        """Differs unless the stream ends where the fresh replay did."""
        if self._next() is not None:
            raise Differs(self.number + 1, "goes on after a fresh replay of the inputs ends")


def compare_log(stream: IO[bytes], records: Iterable[dict[str, Any]], cap: int = MAX_RECORD_BYTES) -> VerifyResult:
    """Chain ``records`` (a fresh replay, produced one at a time) and compare each line with the next of ``stream``.

    Memory is one line of each plus what producing ``records`` takes; the result names the
    first line that differs.
    """
    sink = LineComparer(stream, cap)
    try:
        AuditWriter(sink).write_all(records)
        sink.end()
    except Differs as diff:
        return VerifyResult(False, diff.message, diff.line)
    return VerifyResult(True, "identical to a fresh replay of its inputs")
