"""The hash-chained audit log (interfaces.md §2): canonical JSON, SHA-256 chain, verification."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Iterator
from typing import IO, Any

import attrs

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


class AuditWriter:
    """Chains records (setting ``prev`` and ``hash``) and writes one canonical line each."""

    def __init__(self, out: IO[bytes]) -> None:
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


class BadLine(Exception):
    """A line of an audit log that breaks the chain or the format: its number and what is wrong."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def chained_records(lines: Iterable[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of an audit log's lines, each checked: whole, canonical, chained; BadLine at the first that is not."""
    prev = GENESIS
    for number, raw in enumerate(lines, 1):
        if not raw.endswith(b"\n"):
            raise BadLine(number, "the line is not terminated: the log was cut short")
        text = raw[:-1]
        try:
            record = json.loads(text)
        except (ValueError, RecursionError):
            raise BadLine(number, "the line is not JSON") from None
        if not isinstance(record, dict):
            raise BadLine(number, "the line is not a JSON object")
        if canonical(record) != text:
            raise BadLine(number, "the line is not in canonical form (it was edited)")
        if record.get("prev") != prev:
            raise BadLine(number, "`prev` does not match the previous record's hash (a record was removed, added or moved)")
        body = {k: v for k, v in record.items() if k != "hash"}
        digest = hashlib.sha256(canonical(body)).hexdigest()
        if record.get("hash") != digest:
            raise BadLine(number, "`hash` does not match the record's content (the record was changed)")
        prev = digest
        yield number, record


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
        """Count a `decision`, `rejected` or `close` record."""
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
        """Why ``summary`` does not match what was counted, or None when it does."""
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
            if summary.get(key) != value:
                return f"the summary says {key}={summary.get(key)!r}, but the {holder} holds {value!r}"
        return None


def verify_stream(lines: Iterable[bytes], engine: str) -> VerifyResult:
    """Check the chain, the record order and the summary's counts of an audit log."""
    header: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    seq = 0
    tally = Tally()
    closing = False
    lines_read = 0
    try:
        for number, record in chained_records(lines):
            lines_read = number
            kind = record.get("kind")
            if summary is not None:
                raise BadLine(number, "a record follows the summary")
            if header is None:
                if kind != "header" or record.get("format") != FORMAT:
                    raise BadLine(number, f"the first record is not an {FORMAT} header")
                if record.get("engine") != engine:
                    raise BadLine(number, f"the log was written by {record.get('engine')!r}, and this is {engine!r}: verify it with that version")
                header = record
                continue
            if kind in ("decision", "rejected"):
                if closing:
                    raise BadLine(number, f"a {kind} record follows the close records")
                seq += 1
                if record.get("seq") != seq:
                    raise BadLine(number, f"expected seq {seq}, found {record.get('seq')!r} (records are missing or out of order)")
                tally.add(record)
            elif kind == "close":
                closing = True
                tally.add(record)
            elif kind == "summary":
                problem = tally.mismatch(record)
                if problem is not None:
                    raise BadLine(number, problem)
                summary = record
            else:
                raise BadLine(number, f"unknown record kind {kind!r}")
    except BadLine as bad:
        return VerifyResult(False, bad.message, bad.line, header, summary)
    except (KeyError, TypeError, AttributeError) as err:
        return VerifyResult(False, f"a record lacks a required field ({err})", None, header, summary)
    if header is None:
        return VerifyResult(False, "the log is empty", 1)
    if summary is None:
        return VerifyResult(False, "the log has no summary: it was cut short", lines_read + 1, header)
    return VerifyResult(True, "intact", None, header, summary)
