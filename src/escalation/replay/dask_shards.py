"""The Dask replay's tasks that read shards (they run on the workers): the scan, the first pass, the blocks.

:func:`scan_shard` reads a shard once (its SHA-256, its records, cuts at line boundaries
every ``block_bytes``); :func:`read_block` splits one block's records into one
:class:`Chunk` per partition, by conversation (:func:`~escalation.replay.partition.partition_of`)
or, for a policy that reads customer history, as the first pass routed them;
:func:`first_pass` is that pass (:class:`~escalation.replay.partition.FirstPass` over every
shard in input order, one task), and :func:`block_routing` the slice of it one block
task receives. The orchestration is :mod:`escalation.replay.dask`'s.
"""

from __future__ import annotations

import array
import bisect
import contextlib
import hashlib
import importlib
import io
from collections.abc import Iterator
from typing import Any, NamedTuple

import attrs

from ..compile import CompiledPolicy
from ..errors import EXIT_USAGE, EscalationError, PolicyError
from ..lang import Limits
from ..load import compile_source
from ..runtime import Line, iter_lines, iter_numbered
from ..streams import InputError
from .partition import FirstPass, partition_of


class DistributedError(EscalationError):
    """A distributed replay could not run, or its output could not be installed."""

    exit_code = EXIT_USAGE


def require(module: str) -> Any:
    """Import a module of the `dask` extra (untyped here: Dask's typing is partial), or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DistributedError(f"distributed replay needs Dask ({module} is not installed): pip install 'escalation[dask]'") from None


class RawReader(io.RawIOBase):
    """A raw stream over any file-like object: at most ``limit`` bytes, each one fed to ``digest``."""

    def __init__(self, fh: Any, limit: int | None = None, digest: Any = None) -> None:
        self._fh = fh
        self._left = limit
        self._digest = digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = len(buffer) if self._left is None else min(len(buffer), self._left)
        if want <= 0:
            return 0
        data = self._fh.read(want)
        n = len(data)
        buffer[:n] = data
        if self._left is not None:
            self._left -= n
        if self._digest is not None:
            self._digest.update(data)
        return n


class LineTap:
    """Counts the bytes ``iter_lines`` consumes, so that block cuts fall on line boundaries."""

    __slots__ = ("_readline", "consumed")

    def __init__(self, stream: io.BufferedReader) -> None:
        self._readline = stream.readline
        self.consumed = 0

    def readline(self, size: int = -1) -> bytes:
        line = self._readline(size)
        self.consumed += len(line)
        return line


@contextlib.contextmanager
def open_shard(location: str, path: str) -> Iterator[Any]:
    """Open a shard (a local path or an fsspec URL) for binary reading, or raise InputError naming ``path``."""
    fsspec = require("fsspec")
    try:
        with fsspec.open(location, "rb") as fh:
            yield fh
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None


def line_number(line: Line) -> int:
    """The line number of a line read with the path ``""`` (its source is ``":N"``)."""
    return int(line.source[1:])


class Cut(NamedTuple):
    """Where a block of a shard begins: its byte offset, and the physical lines and records before it."""

    offset: int
    lines_before: int
    records_before: int


@attrs.frozen
class Scan:
    """What the scan of one shard found: its SHA-256, size, record count and block cuts."""

    sha256: str
    size: int
    records: int
    blocks: list[Cut]


def scan_shard(location: str, path: str, block_bytes: int, limits: Limits) -> Scan:
    """Scan a shard: its SHA-256, size, record count and block cuts."""
    digest = hashlib.sha256()
    blocks: list[Cut] = [Cut(0, 0, 0)]
    records = 0
    with open_shard(location, path) as fh:
        tap = LineTap(io.BufferedReader(RawReader(fh, None, digest), 1 << 20))
        cut = block_bytes
        for line in iter_lines("", tap, 1, limits):
            records += 1
            if tap.consumed >= cut:  # the line just read ends a block
                blocks.append(Cut(tap.consumed, line_number(line), records))
                cut = tap.consumed + block_bytes
        size = tap.consumed
    while len(blocks) > 1 and blocks[-1].offset >= size:
        blocks.pop()
    return Scan(digest.hexdigest(), size, records, blocks)


#: One block's records of one partition, compact for the shuffle: their seqs and line numbers
#: (``array("q")`` bytes) and their lines joined by LF (a line never holds an LF).
class Chunk(NamedTuple):
    """One block's records of one partition: seqs and line numbers as ``array("q")`` bytes, lines joined by LF.

    ``rejections`` (customer rule only): seq -> reason of the records among them that the first pass rejected.
    """

    seqs: bytes
    numbers: bytes
    data: bytes
    rejections: dict[int, str]


CHANGED = "the shards changed during the replay (the first pass read other records than the scan or the blocks)"


# ---------------------------------------------------------------------------------------------
# The first pass (one task, when the policy reads customer history)


@attrs.frozen
class FirstPassResult:
    """What the first pass hands on: the partition of every line (4 bytes each), and the rejected seqs (ascending) with their reasons."""

    partitions: array.array[int]
    rejected: array.array[int]
    reasons: list[str]


class RoutedBlock(NamedTuple):
    """One block's slice of the first pass: the partition of each of its lines (``array("I")`` bytes), its rejected seqs' reasons."""

    partitions: bytes
    rejections: dict[int, str]


def first_pass(
    policy_source: bytes, policy_path: str, locations: list[str], names: list[str], scans: list[tuple[str, int]], count: int, limits: Limits
) -> FirstPassResult:
    """Admission over every shard in input order (partition.FirstPass), then every line's partition of ``count``.

    ``scans`` are the (SHA-256, records) the scan found of each shard: a shard that reads
    otherwise now changed, and the replay stops.
    """
    policy = worker_policy(policy_source, policy_path)
    first = FirstPass(policy.vocabulary, True, limits)
    for location, name, (sha256, records) in zip(locations, names, scans, strict=True):
        digest = hashlib.sha256()
        before = first.lines
        with open_shard(location, name) as fh:
            first.feed_all(data for _, data in iter_numbered(io.BufferedReader(RawReader(fh, None, digest), 1 << 20), limits))
        if digest.hexdigest() != sha256 or first.lines - before != records:
            raise DistributedError(CHANGED)
    routing = first.routing()
    del first
    return FirstPassResult(routing.partitions(count), array.array("q", routing.rejections), list(routing.rejections.values()))


def block_routing(first: FirstPassResult, start: int, lines: int) -> RoutedBlock:
    """The slice of the first pass for the block of ``lines`` lines after the first ``start`` (seqs ``start + 1`` on)."""
    lo = bisect.bisect_right(first.rejected, start)
    hi = bisect.bisect_right(first.rejected, start + lines)
    return RoutedBlock(first.partitions[start : start + lines].tobytes(), dict(zip(first.rejected[lo:hi], first.reasons[lo:hi], strict=True)))


def read_block(
    location: str, path: str, offset: int, end: int, lines_before: int, first_seq: int, count: int, limits: Limits, routed: RoutedBlock | None
) -> tuple[Chunk, ...]:
    """The records of one block, split by partition, each in seq order: by conversation, or as the first pass ``routed`` them."""
    seqs = [array.array("q") for _ in range(count)]
    numbers = [array.array("q") for _ in range(count)]
    datas: list[list[bytes]] = [[] for _ in range(count)]
    rejections: list[dict[int, str]] = [{} for _ in range(count)]
    owners = array.array("I")
    if routed is not None:
        owners.frombytes(routed.partitions)
    n = 0
    with open_shard(location, path) as fh:
        if offset:
            fh.seek(offset)
        stream = io.BufferedReader(RawReader(fh, end - offset), 1 << 20)
        for line in iter_lines("", stream, first_seq, limits):
            if routed is None:
                p = partition_of(line.data, line.seq, count)
            elif n < len(owners):
                p = owners[n]
            else:
                raise DistributedError(CHANGED)
            n += 1
            seqs[p].append(line.seq)
            numbers[p].append(lines_before + line_number(line))
            datas[p].append(line.data)
    if routed is not None:
        if n != len(owners):
            raise DistributedError(CHANGED)
        for seq, reason in routed.rejections.items():
            rejections[owners[seq - first_seq]][seq] = reason
    return tuple(Chunk(seqs[p].tobytes(), numbers[p].tobytes(), b"\n".join(datas[p]), rejections[p]) for p in range(count))


def chunk_lines(path: str, chunk: Chunk) -> Iterator[Line]:
    """The lines of a chunk again, with their seqs and ``path:line`` sources."""
    seqs, numbers = array.array("q"), array.array("q")
    seqs.frombytes(chunk.seqs)
    numbers.frombytes(chunk.numbers)
    if not seqs:
        return
    for seq, number, data in zip(seqs, numbers, chunk.data.split(b"\n"), strict=True):
        yield Line(seq, f"{path}:{number}", data)



def worker_policy(source: bytes, path: str) -> CompiledPolicy:
    """Check and compile a policy from its source bytes on a worker (load.compile_source caches it by SHA-256)."""
    try:
        return compile_source(source.decode("utf-8"), path)
    except PolicyError as err:
        first = next((d for d in err.diagnostics if d.is_error), None)
        raise DistributedError(f"the policy {path} does not compile here: {first.message if first else 'errors'}") from None
