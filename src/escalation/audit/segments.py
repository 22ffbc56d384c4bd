"""A decision service's audit folder (interfaces.md §5): segments, each a log of §2 with its input file, linked in a chain.

The service opens a segment at each start and at each policy reload:
``segment-NNNNNN.jsonl`` (a header naming ``previous_segment``, the last hash of the
segment before, and the input file with ``sha256`` null; one `decision` or `rejected`
record per input record; at a clean end a `summary` of its records with
``inputs_sha256``) and ``segment-NNNNNN.input.jsonl`` (every record it wrote a record for,
one JSON line each; a record's ``source`` is that file's name and its line). A segment cut
by a kill has no summary; it is accepted only when the next segment links to its last
record. :class:`SegmentWriter` writes one, :func:`repair_cut` trims a cut one's torn tail
at a restart, :func:`verify_segments` checks a folder, :func:`segment_inputs` reads the
inputs back for a replay.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import attrs

from ..errors import EXIT_USAGE, EscalationError
from ..runtime import Line
from .chain import GENESIS, AuditWriter, BadLine, chained_records, quote, read_lines
from .manifest import fsync_dir
from .records import header_record
from .totals import Totals
from .verify import RecordChecker, VerifyResult, is_sha256

__all__ = [
    "INPUTS_SHA256",
    "PREVIOUS_SEGMENT",
    "SegmentError",
    "SegmentFile",
    "SegmentInput",
    "SegmentWriter",
    "SegmentsResult",
    "Tail",
    "input_digest",
    "is_segment_folder",
    "list_segments",
    "repair_cut",
    "segment_closed",
    "segment_file",
    "segment_header",
    "segment_inputs",
    "segment_records",
    "segment_summary",
    "verify_segments",
]

#: The header's link to the segment before (its last hash), null for the first.
PREVIOUS_SEGMENT = "previous_segment"
#: The summary's digest of the segment's input file.
INPUTS_SHA256 = "inputs_sha256"
_NAME = re.compile(r"segment-([0-9]{6})\.jsonl")


class SegmentError(EscalationError):
    """An audit folder a service cannot write to (one sentence; nothing was changed)."""

    exit_code = EXIT_USAGE


@attrs.frozen(slots=True)
class SegmentFile:
    """One segment of a folder: its number, and its log's and input's paths."""

    number: int
    log: Path
    input: Path

    @property
    def input_name(self) -> str:
        """The input file's name relative to the folder, as the records' ``source`` names it."""
        return self.input.name


def segment_file(folder: Path, number: int) -> SegmentFile:
    """Segment ``number`` of ``folder`` (whether or not it exists)."""
    return SegmentFile(number, folder / f"segment-{number:06d}.jsonl", folder / f"segment-{number:06d}.input.jsonl")


def list_segments(folder: Path) -> list[SegmentFile]:
    """The segments of ``folder``, by number (a folder that does not exist has none)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    numbers = sorted(int(m.group(1)) for m in map(_NAME.fullmatch, names) if m is not None)
    return [segment_file(folder, n) for n in numbers]


def is_segment_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder holding service segments (and no partitioned audit's manifest)."""
    p = Path(path)
    return p.is_dir() and not (p / "manifest.json").exists() and bool(list_segments(p))


def segment_header(policy: Any, segment: SegmentFile, previous: str | None) -> dict[str, Any]:
    """The header of ``segment``: a §2 header naming its input file (``sha256`` null) and ``previous_segment``."""
    header = header_record(policy, [], None)
    header["inputs"] = [{"path": segment.input_name, "sha256": None}]
    header[PREVIOUS_SEGMENT] = previous
    return header


def segment_summary(totals: Totals, inputs_sha256: str) -> dict[str, Any]:
    """The summary that closes a segment: the counts of its records and the digest of its input file."""
    summary = totals.summary()
    summary[INPUTS_SHA256] = inputs_sha256
    return summary


def _fsync(fh: IO[bytes]) -> None:
    fh.flush()
    os.fsync(fh.fileno())


class _LastLine:
    """The sink of a segment's :class:`AuditWriter`: writes to the file and keeps the last line written."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.last = b""

    def write(self, data: bytes, /) -> int:
        self.last = data
        return self.fh.write(data)


class SegmentWriter:
    """Writes one segment: its header at once, then each input line with its record, then (at a clean end) its summary.

    :meth:`append` writes (buffered) and returns the record's line; :meth:`sync` makes
    everything appended durable, the input file first; :meth:`close` writes the summary.
    """

    def __init__(self, segment: SegmentFile, policy: Any, previous: str | None) -> None:
        self.segment = segment
        try:
            self._input = open(segment.input, "xb")  # noqa: SIM115 - open for the segment's life
            self._log = open(segment.log, "xb")  # noqa: SIM115
        except OSError as err:
            raise SegmentError(f"cannot create the audit segment {segment.log}: {err.strerror or err}") from None
        self._sink = _LastLine(self._log)
        self._writer = AuditWriter(self._sink)
        self._digest = hashlib.sha256()
        self.totals = Totals()
        self._seen: set[str] = set()
        self.records = 0  # decision and rejected records appended
        self.closed = False
        self.header = segment_header(policy, segment, previous)
        self._writer.write(self.header)
        _fsync(self._log)
        fsync_dir(segment.log.parent)

    @property
    def last_hash(self) -> str:
        """The hash of the last record written (what the next segment's ``previous_segment`` names)."""
        return self._writer.prev

    def source(self, seq: int) -> str:
        """The ``source`` of the record numbered ``seq``: the input file's name and its line."""
        return f"{self.segment.input_name}:{seq}"

    def append(self, data: bytes, record: dict[str, Any]) -> bytes:
        """Write one input line (``data``, without its LF) and its record; the record's line (without LF), chained."""
        line = data + b"\n"
        self._input.write(line)
        self._digest.update(line)
        self._writer.write(record)
        self.totals.add(record, self._seen)
        self.records += 1
        return self._sink.last[:-1]

    def sync(self) -> None:
        """Make every line appended so far durable: the input file first, then the log."""
        _fsync(self._input)
        _fsync(self._log)

    def close(self) -> None:
        """End the segment cleanly: its summary (with the input file's digest), on disk."""
        if self.closed:
            return
        self._writer.write(segment_summary(self.totals, self._digest.hexdigest()))
        self.sync()
        self._input.close()
        self._log.close()
        self.closed = True

    def abandon(self) -> None:
        """Close the files without a summary (the segment stays cut, as after a kill)."""
        if not self.closed:
            self._input.close()
            self._log.close()
            self.closed = True


# ---------------------------------------------------------------------------------------------
# A restart: the last segment as it was left


@attrs.frozen(slots=True)
class Tail:
    """The last segment of a folder as a restart finds it (after :func:`repair_cut`)."""

    segment: SegmentFile
    records: int  # its decision and rejected records
    last_hash: str  # the hash of its last record (the next segment links to it)
    policy_sha256: str
    cut: bool  # it has no summary


def _good_prefix(path: Path) -> list[dict[str, Any]]:
    """The records of the longest run of whole, chained records at the start of ``path``."""
    kept: list[dict[str, Any]] = []
    with open(path, "rb") as fh:
        try:
            for _, record in chained_records(fh):
                kept.append(record)
        except BadLine:
            pass
    return kept


def _line_ends(path: Path, most: int) -> int:
    """The length of the first ``most`` whole lines of ``path``."""
    size = 0
    with open(path, "rb") as fh:
        for n, raw in enumerate(read_lines(fh)):
            if n >= most or not raw.endswith(b"\n"):
                break
            size += len(raw)
    return size


def repair_cut(folder: Path) -> Tail | None:
    """The last segment of ``folder``; one cut by a kill is first trimmed to what was whole in both of its files.

    A record or input line that was not whole (or not matched by the other file) was never
    answered: it goes. A segment without even a whole header is removed (nothing of it was
    answered), and the one before is looked at. None for a folder without segments.
    """
    while True:
        segments = list_segments(folder)
        if not segments:
            return None
        last = segments[-1]
        kept = _good_prefix(last.log)
        if not kept or kept[0].get("kind") != "header":
            for path in (last.log, last.input):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            continue
        policy_sha = str((kept[0].get("policy") or {}).get("sha256"))
        if kept[-1].get("kind") == "summary":
            return Tail(last, len(kept) - 2, kept[-1]["hash"], policy_sha, cut=False)
        inputs = 0
        if last.input.exists():
            with open(last.input, "rb") as fh:
                inputs = sum(1 for raw in read_lines(fh) if raw.endswith(b"\n"))
        records = min(len(kept) - 1, inputs)
        kept = kept[: records + 1]
        with open(last.log, "r+b") as fh:
            fh.truncate(_line_ends(last.log, records + 1))
            _fsync(fh)
        with open(last.input, "ab") as fh:  # creates it, empty, if the kill came before it existed
            fh.truncate(_line_ends(last.input, records))
            _fsync(fh)
        return Tail(last, records, kept[-1]["hash"], policy_sha, cut=True)


# ---------------------------------------------------------------------------------------------
# Reading the inputs back


@attrs.frozen(slots=True)
class SegmentInput:
    """One segment's header and input lines, for a replay (the service's rebuild and reload, `verify --policy`)."""

    segment: SegmentFile
    header: dict[str, Any]
    lines: tuple[Line, ...]

    @property
    def policy_sha256(self) -> str:
        return str(self.header["policy"]["sha256"])


def segment_inputs(folder: Path, upto: dict[int, int] | None = None) -> Iterator[SegmentInput]:
    """Every segment's header and input lines, in order (``upto``: segment number -> at most that many lines of it; the
    segments it does not name are read whole)."""
    for segment in list_segments(folder):
        with open(segment.log, "rb") as fh:
            header = json.loads(fh.readline())
        most = None if upto is None else upto.get(segment.number)
        lines: list[Line] = []
        with open(segment.input, "rb") as fh:
            for seq, raw in enumerate(read_lines(fh), 1):
                if (most is not None and seq > most) or not raw.endswith(b"\n"):
                    break
                lines.append(Line(seq, f"{segment.input_name}:{seq}", raw[:-1]))
        yield SegmentInput(segment, header, tuple(lines))


def segment_closed(segment: SegmentFile) -> bool:
    """Whether a segment's log ends with its summary (it was closed cleanly)."""
    last = b""
    with open(segment.log, "rb") as fh:
        for raw in read_lines(fh):
            last = raw
    try:
        return bool(last.endswith(b"\n") and json.loads(last).get("kind") == "summary")
    except (ValueError, AttributeError):
        return False


def input_digest(segment: SegmentFile) -> str:
    """The SHA-256 of a segment's input file."""
    digest = hashlib.sha256()
    with open(segment.input, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def segment_records(segment: SegmentFile) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """(line without LF, record) of each decision and rejected record of a segment's log (no verification)."""
    with open(segment.log, "rb") as fh:
        for raw in read_lines(fh):
            if raw.endswith(b"\n"):
                record = json.loads(raw)
                if record.get("kind") in ("decision", "rejected"):
                    yield raw[:-1], record


# ---------------------------------------------------------------------------------------------
# Verifying a folder


class SegmentChecker(RecordChecker):
    """The record checker of one segment: its header links to the segment before, its records name its input file
    and match its lines, it holds no close record, and its summary (if any) holds the input file's digest."""

    def __init__(self, engine: str, segment: SegmentFile, previous: str | None, inputs: list[bytes]) -> None:
        super().__init__(engine, "segment")
        self.segment = segment
        self.previous = previous
        self.inputs = inputs

    def check_header(self, record: dict[str, Any], number: int) -> None:
        expected = [{"path": self.segment.input_name, "sha256": None}]
        if record.get("inputs") != expected:
            raise BadLine(number, f"the header's `inputs` is {quote(record.get('inputs'))}, not {expected!r}")
        as_if = dict(record, inputs=[{"path": self.segment.input_name, "sha256": GENESIS}])
        super().check_header(as_if, number)
        if PREVIOUS_SEGMENT not in record or record[PREVIOUS_SEGMENT] != self.previous:
            want = "null (it is the first segment)" if self.previous is None else f"{self.previous} (the last hash of the segment before)"
            raise BadLine(number, f"the header's `{PREVIOUS_SEGMENT}` is {quote(record.get(PREVIOUS_SEGMENT))}, not {want}")

    def check(self, number: int, record: dict[str, Any]) -> None:
        kind = record.get("kind")
        if kind == "close":
            raise BadLine(number, "a segment holds no close records")
        if kind == "summary" and self.header is not None:
            digest = hashlib.sha256(b"".join(self.inputs)).hexdigest()
            if not is_sha256(record.get(INPUTS_SHA256)) or record[INPUTS_SHA256] != digest:
                raise BadLine(number, f"the summary's `{INPUTS_SHA256}` is not the digest of {self.segment.input_name} ({digest})")
            if self.seq != len(self.inputs):
                raise BadLine(number, f"{self.segment.input_name} holds {len(self.inputs)} lines, the segment {self.seq} records")
        super().check(number, record)
        if kind in ("decision", "rejected"):
            self._check_input(record, number)

    def _check_input(self, record: dict[str, Any], number: int) -> None:
        seq = record["seq"]
        if record["source"] != f"{self.segment.input_name}:{seq}":
            raise BadLine(number, f"the record's `source` is {quote(record['source'])}, not {self.segment.input_name}:{seq}")
        if seq > len(self.inputs):
            raise BadLine(number, f"{self.segment.input_name} has no line {seq} for this record")
        data = self.inputs[seq - 1][:-1]
        if record["kind"] == "rejected":
            same = record["raw"] == data.decode("utf-8", errors="replace")
        else:
            try:
                same = json.loads(data) == record["event"]
            except ValueError:
                same = False
        if not same:
            raise BadLine(number, f"the record does not hold line {seq} of {self.segment.input_name} (one of them was changed)")


@attrs.frozen(slots=True)
class SegmentsResult:
    """What :func:`verify_segments` found: the verdict, and how many segments and records."""

    result: VerifyResult
    segments: int = 0
    records: int = 0
    violations: int = 0


def _input_lines(segment: SegmentFile) -> list[bytes]:
    try:
        with open(segment.input, "rb") as fh:
            lines = list(read_lines(fh))
    except FileNotFoundError:
        raise BadLine(None, f"{segment.input_name} is missing") from None
    if lines and not lines[-1].endswith(b"\n"):
        raise BadLine(len(lines), f"the last line of {segment.input_name} is not terminated: the file was cut short")
    return lines


def verify_segments(folder: Path, engine: str) -> SegmentsResult:
    """Check every segment of a service's audit folder (chain, order, counts, input lines) and the links between them.

    A segment without a summary is accepted only when the next one links to its last
    record. Never raises for what the folder holds.
    """
    segments = list_segments(folder)
    previous: str | None = None
    records = violations = 0
    cut: SegmentFile | None = None
    for index, segment in enumerate(segments, 1):
        where = str(segment.log)
        if segment.number != index:
            return SegmentsResult(VerifyResult(False, f"{where}: expected segment {index} here: a segment is missing"))
        checker = SegmentChecker(engine, segment, previous, [])
        try:
            checker.inputs = _input_lines(segment)
            with open(segment.log, "rb") as fh:
                for number, record in chained_records(fh):
                    checker.check(number, record)
            if checker.header is None:
                raise BadLine(1, "the segment is empty")
        except BadLine as bad:
            line = f":{bad.line}" if bad.line else ""
            return SegmentsResult(VerifyResult(False, f"{where}{line}: {bad.message}", bad.line))
        except OSError as err:
            return SegmentsResult(VerifyResult(False, f"{where}: cannot read it: {err.strerror or err}"))
        if checker.summary is None and checker.seq != len(checker.inputs):
            return SegmentsResult(VerifyResult(False, f"{where}: {segment.input_name} holds {len(checker.inputs)} lines, the segment {checker.seq} records"))
        cut = segment if checker.summary is None else None
        previous = checker.final
        records += checker.totals.records
        violations += checker.totals.violations
    if not segments:
        return SegmentsResult(VerifyResult(False, f"{folder}: holds no audit segment"))
    if cut is not None:
        message = f"{cut.log}: the segment has no summary and no later segment links to it: it was cut (start the service again to close it)"
        return SegmentsResult(VerifyResult(False, message), len(segments), records, violations)
    return SegmentsResult(VerifyResult(True, "intact"), len(segments), records, violations)
