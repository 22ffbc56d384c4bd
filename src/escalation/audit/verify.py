"""Verifying an audit log: the shape of each record, one record checker, and the comparison with a fresh replay.

:class:`RecordChecker` reads a log's records in order (header, decision and rejected
records in seq order, close records, summary) and checks each one's fields and the
summary's counts; :func:`verify_stream` runs it over a whole log, and the partitioned
audits of :mod:`escalation.audit.manifest` run it, with their own header and seq rules,
over each part. :func:`compare_log` compares a log line by line with a fresh replay.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any

import attrs

from ..errors import EXIT_TAMPERED, EscalationError
from ..lang import TimeError, format_time, parse_time
from .chain import GENESIS, MAX_RECORD_BYTES, AuditWriter, BadLine, chained_records, quote, read_lines
from .records import FORMAT, KINDS, SEVERITIES, WITH_CUSTOMERS
from .totals import Totals

#: The longest idle horizon a header can hold, in seconds: the span of the times a log can write.
MAX_IDLE_HORIZON_S = 315_537_897_600


@attrs.frozen(slots=True)
class VerifyResult:
    """What verifying a log (or a partitioned audit) found: intact or not, why, and where."""

    ok: bool
    message: str
    line: int | None = None  # the first bad line, 1-based
    header: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None


# ------------------------------------------------------------------ the shape of each record


def is_sha256(value: Any) -> bool:
    """Whether ``value`` is a SHA-256 as the log writes it (64 lowercase hex digits)."""
    return type(value) is str and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def is_time(value: Any) -> bool:
    """Whether ``value`` is a time as the log writes it (UTC, ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``)."""
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
    if not (type(policy) is dict and type(policy.get("name")) is str and _optional_str(policy.get("version")) and is_sha256(policy.get("sha256"))):
        return f"the {holder}'s `policy` is {quote(policy)}, not {{name, version, sha256}}"
    inputs = record.get("inputs")
    if not (type(inputs) is list and all(type(i) is dict and type(i.get("path")) is str and is_sha256(i.get("sha256")) for i in inputs)):
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
            and (not WITH_CUSTOMERS or _customer(record))
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


def _customer(record: dict[str, Any]) -> bool:
    """Format /2: a decision names its conversation's customer, a non-empty string, or null."""
    if "customer" not in record:
        return False
    customer = record["customer"]
    return customer is None or (type(customer) is str and customer != "")


# ------------------------------------------------------------------ one record checker


class RecordChecker:
    """Checks the records of one log as they come, in order; BadLine at the first that is wrong.

    A serial log's decision and rejected records carry the seqs 1, 2, 3...; a subclass
    (one part of a partitioned audit) overrides :meth:`check_seq`, and :meth:`check_header`
    or :meth:`check_decision`, for its own rules. ``holder`` names the log in messages.
    """

    def __init__(self, engine: str, holder: str = "log") -> None:
        self.engine = engine
        self.holder = holder
        self.header: dict[str, Any] | None = None
        self.summary: dict[str, Any] | None = None
        self.totals = Totals()
        self.conversations: set[str] = set()
        self.bindings: dict[str, str] = {}  # format /2: conversation -> the customer its decisions name
        self.seq = 0  # the seq of the last decision or rejected record
        self.closing = False
        self.lines = 0  # the lines read so far
        self.final = GENESIS  # the hash of the last record read

    def check_all(self, lines: Iterable[bytes] | IO[bytes], cap: int = MAX_RECORD_BYTES) -> None:
        """Check every record of ``lines`` (see :func:`escalation.audit.chain.chained_records`), then that the log is whole."""
        for number, record in chained_records(lines, cap):
            self.check(number, record)
        self.finish()

    def check(self, number: int, record: dict[str, Any]) -> None:
        """Check the record on line ``number`` (chained already)."""
        self.lines = number
        self.final = record["hash"]
        if self.summary is not None:
            raise BadLine(number, "a record follows the summary")
        if self.header is None:
            self.check_header(record, number)
            self.header = record
            return
        kind = record.get("kind")
        if kind == "summary":
            problem = self.totals.mismatch(record, self.holder)
            if problem is not None:
                raise BadLine(number, problem)
            self.summary = record
            return
        check_record(record, number, self.header)
        if kind in ("decision", "rejected"):
            if self.closing:
                raise BadLine(number, f"a {kind} record follows the close records")
            self.check_seq(record.get("seq"), number)
            if kind == "decision":
                if WITH_CUSTOMERS:
                    self.check_binding(record, number)
                self.check_decision(record, number)
        else:
            self.closing = True
        self.totals.add(record, self.conversations)

    def check_header(self, record: dict[str, Any], number: int) -> None:
        """The first record: a header of this engine's format and version."""
        check_header(record, self.engine, number)

    def check_seq(self, seq: Any, number: int) -> None:
        """A serial log numbers its input records 1, 2, 3... without a gap."""
        expected = self.seq + 1
        if type(seq) is not int or seq != expected:
            raise BadLine(number, f"expected seq {expected}, found {quote(seq)} (records are missing or out of order)")
        self.seq = seq

    def check_binding(self, record: dict[str, Any], number: int) -> None:
        """Format /2: once a conversation's decisions name a customer, every later one names the same (language.md §9)."""
        conversation, customer = record["conversation"], record["customer"]
        bound = self.bindings.get(conversation)
        if bound is None:
            if customer is not None:
                self.bindings[conversation] = customer
        elif customer != bound:
            raise BadLine(number, f"conversation {quote(conversation)} is bound to customer {quote(bound)}, but this decision names {quote(customer)}")

    def check_decision(self, record: dict[str, Any], number: int) -> None:
        """Anything a decision record must satisfy besides its fields (nothing, in a serial log)."""

    def finish(self) -> None:
        """BadLine unless the log had a header and ends with its summary."""
        if self.header is None:
            raise BadLine(1, f"the {self.holder} is empty")
        if self.summary is None:
            raise BadLine(self.lines + 1, f"the {self.holder} has no summary: it was cut short")


def verify_stream(lines: Iterable[bytes] | IO[bytes], engine: str, cap: int = MAX_RECORD_BYTES) -> VerifyResult:
    """Check the chain, the header, the record order, each record's fields and the summary's counts of an audit log.

    ``lines`` is a binary stream (read in bounded memory: a line longer than ``cap`` bytes
    is refused) or the log's lines. Never raises for what the log holds.
    """
    checker = RecordChecker(engine)
    try:
        checker.check_all(lines, cap)
    except BadLine as bad:
        return VerifyResult(False, bad.message, bad.line, checker.header, checker.summary)
    return VerifyResult(True, "intact", None, checker.header, checker.summary)


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
