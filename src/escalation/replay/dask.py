"""Distributed replay on Dask: a partitioned, hash-chained audit (the optional extra ``escalation[dask]``).

The core never imports this module, and this module imports ``dask`` and ``fsspec``
only inside the functions that run a replay, so :func:`verify_manifest`,
:func:`compare_manifest` and :func:`decisions_by_seq` work without Dask installed.

How a replay runs (every step is a Dask task; the client only plans and writes
the manifest):

1. **Scan** (one task per shard): read the shard once through fsspec, computing its
   SHA-256 and counting its non-blank lines exactly as :func:`escalation.runtime.events.iter_lines`
   does (it is the very function used); every ``block_bytes`` a cut is noted at a line
   boundary with the number of physical lines and of records before it. The client
   turns the per-shard counts into global positions: the first record of shard *k*
   has seq ``1 + (records of shards 0..k-1)``.
2. **Read and split** (one task per block): seek to the block, run ``iter_lines`` over
   it with the block's first seq, and split its records into one list per partition
   by :func:`partition_of` (CRC-32 of the conversation id modulo the partition count;
   a record whose conversation cannot be read goes to ``seq mod count``). A block's
   records of one partition travel as one chunk: their seqs and line numbers as
   arrays, their lines joined by LF (no per-record objects to pickle).
3. **Replay** (one task per partition): the partition's chunks, taken in block order,
   are already in seq order. The worker compiles the policy from its source text
   (compiled policies hold closures and cannot be pickled), feeds every record to an
   :class:`escalation.replay.core.Replayer`, and writes ``part-NNNNN.jsonl``: a header (the
   serial header plus ``partition`` {index, count}), the partition's decision and
   rejected records in seq order, its close records (in order of first appearance
   within the partition), and its summary, chained like any audit log.
4. The client writes ``manifest.json`` (each part's record count, final hash and file
   SHA-256, the root hash over the final hashes, the totals) and renames the staging
   folder to ``out_dir``.

A conversation's records all land in one partition, so its decisions are exactly
those of a serial replay; only the layout differs. The layout depends on the policy,
the inputs, ``as_of`` and the partition count, never on the cluster: the same
arguments give byte-identical parts, which is how :func:`compare_manifest` checks a
partitioned audit against its inputs without Dask.

Workers read the shards and write the parts themselves: with a remote scheduler,
the shards must be paths or URLs the workers can open, and ``out_dir`` must be on a
filesystem the client and every worker share.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import importlib
import io
import json
import logging
import math
import os
import shutil
import stat
import tempfile
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import attrs

from ..audit import (
    GENESIS,
    KINDS,
    AuditWriter,
    BadLine,
    Differs,
    LineComparer,
    Tally,
    VerifyResult,
    canonical,
    chained_records,
    check_header,
    check_record,
    is_time,
    loads_strict,
    option_problem,
    quote,
    read_lines,
)
from ..check import check_source
from ..compile import CompiledPolicy, compile_policy
from ..errors import EXIT_USAGE, EscalationError, PolicyError
from ..lang import format_time, parse_time
from ..runtime import Line, iter_lines
from ..syntax import read_source
from .core import ENGINE, Input, InputError, Replayer, Stats, header_record
from .parallel import conversation_key

try:
    import orjson

    _loads: Any = orjson.loads
except ImportError:  # pragma: no cover
    _loads = json.loads

MANIFEST_FORMAT = "escalation-audit-manifest/1"
MANIFEST = "manifest.json"
#: Shards are read in blocks of about this many bytes (cut at line boundaries), one task each.
BLOCK_BYTES = 32 << 20
#: Without ``partitions``, one partition per this many input bytes (1 to ``MAX_DEFAULT_PARTITIONS``).
PARTITION_BYTES = 16 << 20
MAX_DEFAULT_PARTITIONS = 512
#: ``scheduler="local"`` starts this many single-threaded worker processes (``"local:N"`` for N).
LOCAL_WORKERS = 2
#: The longest manifest read; one this engine writes takes about 250 bytes per partition.
MAX_MANIFEST_BYTES = 64 << 20
_TOTALS = ("records", "events", "rejected", "conversations", "violations", "open_obligations")


class DistributedError(EscalationError):
    """A distributed replay could not run, or its output could not be installed."""

    exit_code = EXIT_USAGE


def _require(module: str) -> Any:
    """Import a module of the `dask` extra (untyped here: Dask's typing is partial), or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DistributedError(f"distributed replay needs Dask ({module} is not installed): pip install 'escalation[dask]'") from None


def part_name(index: int) -> str:
    """The file name of partition ``index`` inside the audit folder."""
    return f"part-{index:05d}.jsonl"


def partition_of(data: bytes, seq: int, count: int) -> int:
    """The partition of the record on this line: CRC-32 of its conversation mod ``count``, else ``seq mod count``."""
    return conversation_key(data, seq) % count


# ---------------------------------------------------------------------------------------------
# Reading shards (runs on the workers)


class _Raw(io.RawIOBase):
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


class _Tap:
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
def _open(location: str, path: str) -> Iterator[Any]:
    """Open a shard (a local path or an fsspec URL) for binary reading, or raise InputError naming ``path``."""
    fsspec = _require("fsspec")
    try:
        with fsspec.open(location, "rb") as fh:
            yield fh
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None


def _number(line: Line) -> int:
    """The line number of a line read with the path ``""`` (its source is ``":N"``)."""
    return int(line.source[1:])


def _scan(location: str, path: str, block_bytes: int) -> dict[str, Any]:
    """A shard's SHA-256, size, record count and block cuts [(offset, lines before, records before)]."""
    digest = hashlib.sha256()
    blocks: list[tuple[int, int, int]] = [(0, 0, 0)]
    records = 0
    with _open(location, path) as fh:
        tap = _Tap(io.BufferedReader(_Raw(fh, None, digest), 1 << 20))
        cut = block_bytes
        for line in iter_lines("", tap):
            records += 1
            if tap.consumed >= cut:  # the line just read ends a block
                blocks.append((tap.consumed, _number(line), records))
                cut = tap.consumed + block_bytes
        size = tap.consumed
    while len(blocks) > 1 and blocks[-1][0] >= size:
        blocks.pop()
    return {"sha256": digest.hexdigest(), "size": size, "records": records, "blocks": blocks}


#: One block's records of one partition, compact for the shuffle: their seqs and line numbers
#: (``array("q")`` bytes) and their lines joined by LF (a line never holds an LF).
Chunk = tuple[bytes, bytes, bytes]


def _read_block(location: str, path: str, offset: int, end: int, lines_before: int, first_seq: int, count: int) -> tuple[Chunk, ...]:
    """The records of one block, split by partition, each in seq order."""
    seqs = [array.array("q") for _ in range(count)]
    numbers = [array.array("q") for _ in range(count)]
    datas: list[list[bytes]] = [[] for _ in range(count)]
    with _open(location, path) as fh:
        if offset:
            fh.seek(offset)
        stream = io.BufferedReader(_Raw(fh, end - offset), 1 << 20)
        for line in iter_lines("", stream, first_seq):
            p = partition_of(line.data, line.seq, count)
            seqs[p].append(line.seq)
            numbers[p].append(lines_before + _number(line))
            datas[p].append(line.data)
    return tuple((seqs[p].tobytes(), numbers[p].tobytes(), b"\n".join(datas[p])) for p in range(count))


def _chunk_lines(path: str, chunk: Chunk) -> Iterator[Line]:
    """The lines of a chunk again, with their seqs and ``path:line`` sources."""
    seqs, numbers = array.array("q"), array.array("q")
    seqs.frombytes(chunk[0])
    numbers.frombytes(chunk[1])
    if not seqs:
        return
    for seq, number, data in zip(seqs, numbers, chunk[2].split(b"\n"), strict=True):
        yield Line(seq, f"{path}:{number}", data)


# ---------------------------------------------------------------------------------------------
# Writing one partition (on a worker, or in-process for compare_manifest)

_POLICIES: dict[str, CompiledPolicy] = {}


def _policy(source: bytes, path: str) -> CompiledPolicy:
    """Check and compile a policy from its source bytes (cached per process by their SHA-256)."""
    key = hashlib.sha256(source).hexdigest()
    compiled = _POLICIES.get(key)
    if compiled is None:
        result = check_source(source.decode("utf-8"), path)
        if result.checked is None:
            first = next((d for d in result.diagnostics if d.is_error), None)
            raise DistributedError(f"the policy {path} does not compile here: {first.message if first else 'errors'}")
        compiled = compile_policy(result.checked, source)
        _POLICIES[key] = compiled
    return compiled


class _HashingFile:
    """Writes through to a file, keeping the SHA-256 of everything written."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self._out.write(data)


class _PartWriter:
    """One partition's audit log: header (with ``partition``), records in seq order, closes, summary."""

    def __init__(self, policy: CompiledPolicy, inputs: list[Input], as_of: int | None, index: int, count: int, out: Any) -> None:
        self.replayer = Replayer(policy, as_of)
        self.writer = AuditWriter(out)
        header = header_record(policy, inputs, as_of)
        header["partition"] = {"index": index, "count": count}
        self.writer.write(header)

    def feed(self, line: Line) -> None:
        self.writer.write(self.replayer.record(line))

    def finish(self) -> dict[str, Any]:
        """Write the close records and the summary; returns the summary (without prev/hash)."""
        for record in self.replayer.closes():
            self.writer.write(record)
        summary = self.replayer.summary()
        self.writer.write(dict(summary))
        return summary


def _replay_part(
    index: int,
    count: int,
    policy_source: bytes,
    policy_path: str,
    inputs: list[tuple[str, str]],
    as_of: int | None,
    staging: str,
    groups: list[tuple[str, Chunk]],
) -> dict[str, Any]:
    """Replay one partition and write its part into ``staging``; returns what the manifest needs."""
    policy = _policy(policy_source, policy_path)
    folder = Path(staging)
    if not folder.is_dir():
        raise DistributedError(f"the worker cannot see the output folder {staging}: put --out-dir on a filesystem the workers share")
    final = folder / part_name(index)
    tmp = folder / f".{final.name}.{uuid.uuid4().hex}.tmp"  # a retried task never meets a half-written part
    try:
        with open(tmp, "wb", buffering=1 << 20) as fh:
            out = _HashingFile(fh)
            part = _PartWriter(policy, [Input(p, Path(p), d) for p, d in inputs], as_of, index, count, out)
            last = 0
            for path, chunk in groups:
                for line in _chunk_lines(path, chunk):
                    if line.seq <= last:  # pragma: no cover - the shuffle keeps seq order by construction
                        raise DistributedError(f"partition {index}: record {line.seq} arrived after record {last}")
                    last = line.seq
                    part.feed(line)
            summary = part.finish()
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return {
        "index": index,
        "file": final.name,
        "records": part.writer.count,
        "final_hash": part.writer.prev,
        "sha256": out.digest.hexdigest(),
        "summary": summary,
        "by_rule": dict(part.replayer.stats.by_rule),
    }


# ---------------------------------------------------------------------------------------------
# The client side


@attrs.frozen
class Manifest:
    """A written partitioned audit: its folder, the manifest's content, and per-rule totals."""

    path: str
    data: dict[str, Any]
    by_rule: dict[str, int] = attrs.field(factory=dict)

    @property
    def root_hash(self) -> str:
        return str(self.data["root_hash"])

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.data["summary"])

    @property
    def partitions(self) -> list[dict[str, Any]]:
        return list(self.data["partitions"])

    def stats(self) -> Stats:
        """The totals as :class:`escalation.replay.core.Stats` (for the command line's summary text)."""
        s = self.data["summary"]
        st = Stats(**{k: s[k] for k in _TOTALS})
        st.by_kind = dict(s["by_kind"])
        st.by_rule = dict(self.by_rule)
        return st


def root_hash(final_hashes: Iterable[str]) -> str:
    """SHA-256 of the parts' final hashes (lowercase hex, ASCII) concatenated in partition order."""
    return hashlib.sha256("".join(final_hashes).encode("ascii")).hexdigest()


def default_partitions(total_bytes: int) -> int:
    """One partition per ``PARTITION_BYTES`` of input, at least 1 and at most ``MAX_DEFAULT_PARTITIONS``."""
    return max(1, min(MAX_DEFAULT_PARTITIONS, math.ceil(total_bytes / PARTITION_BYTES)))


@contextlib.contextmanager
def _scheduler(scheduler: str | None) -> Iterator[Callable[[list[Any]], list[Any]]]:
    """A function that computes a list of Delayed values on the chosen scheduler (closed on exit)."""
    dask = _require("dask")
    if scheduler is None:  # Dask's current default: an active Client of this process, else its local scheduler
        yield lambda values: list(dask.compute(*values))
        return
    dd = _require("dask.distributed")
    cluster: Any = None
    if scheduler == "local" or scheduler.startswith("local:"):
        workers = scheduler.partition(":")[2] or str(LOCAL_WORKERS)
        if not (workers.isdigit() and int(workers) > 0):
            raise DistributedError(f"{scheduler!r}: write local:N with N a positive number of workers")
        try:
            # the cluster's own log lines (a failed task's traceback) stay quiet: the error reaches the caller
            cluster = dd.LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.CRITICAL)
            client = dd.Client(cluster)
        except (OSError, RuntimeError) as err:
            if cluster is not None:
                cluster.close()
            raise DistributedError(f"cannot start a local Dask cluster: {err}") from None
    else:
        try:
            client = dd.Client(scheduler, timeout="30s")
        except (OSError, ValueError) as err:  # TimeoutError is an OSError
            raise DistributedError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from None
    try:
        yield lambda values: list(client.gather(client.compute(values)))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _earlier_audit(target: Path) -> list[str]:
    """The names of the files to remove when replacing ``target``: none when it does not exist or is an
    empty folder; a manifest and its parts when it holds an earlier partitioned audit and nothing else.

    Anything else is refused with DistributedError, and nothing is touched: a file, a symbolic
    link, a folder with other files or folders in it, a manifest that is not a valid
    escalation manifest (its format, its partitions, its root hash).
    """
    if not os.path.lexists(target):
        return []
    if target.is_symlink():
        raise DistributedError(f"{target} is a symbolic link: give the output folder itself (nothing was changed)")
    if not target.is_dir():
        raise DistributedError(f"{target} exists and is not a folder: choose another output folder (nothing was changed)")
    names = sorted(os.listdir(target))
    if not names:
        return []
    try:
        if not stat.S_ISREG(os.lstat(target / MANIFEST).st_mode):
            raise ValueError("the manifest is not a regular file")
        manifest = _parse_manifest(_manifest_bytes(target / MANIFEST))
        _check_manifest_shape(manifest, None)  # an audit of another engine version may be replaced too
    except (OSError, ValueError, _Fail):
        raise DistributedError(
            f"{target} is not a partitioned audit folder (it is not empty, and holds no valid {MANIFEST}), so it is not replaced: "
            "choose another output folder (nothing was changed)"
        ) from None
    listed = {MANIFEST, *(entry["file"] for entry in manifest["partitions"])}
    others = [n for n in names if n not in listed or not stat.S_ISREG(os.lstat(target / n).st_mode)]
    if others:
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise DistributedError(
            f"{target} holds {quote(others[0])}{more} besides its partitioned audit, so it is not replaced: "
            "choose another output folder (nothing was changed)"
        )
    return names


def _check_target(target: Path) -> None:
    """Refuse, before any work, to replace anything but nothing, an empty folder or an earlier partitioned audit."""
    _earlier_audit(target)


def _install(staging: Path, target: Path) -> None:
    """Rename the finished staging folder to ``target``, replacing an earlier audit there.

    The folder at ``target`` is checked again (it may have changed during the replay); it is
    renamed aside, the staging folder renamed in its place, and then only the files its
    manifest listed are removed from it. Should anything else have appeared in it in the
    meantime, the renamed folder stays (``.NAME.*.old`` beside ``target``) with that in it.
    """
    _fsync_dir(staging)
    names = _earlier_audit(target)
    if not os.path.lexists(target):
        os.replace(staging, target)  # fails, changing nothing, if a folder that is not empty appeared there
    else:
        old = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
        os.replace(target, old)
        try:
            os.replace(staging, target)
        except BaseException:
            os.replace(old, target)
            raise
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (old / name).unlink()
        with contextlib.suppress(OSError):  # not empty: something the manifest does not list appeared; keep it
            old.rmdir()
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can fsync a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replay_distributed(
    policy_path: str,
    shards: list[str],
    out_dir: str,
    scheduler: str | None = "local",
    as_of: int | None = None,
    partitions: int | None = None,
    *,
    names: list[str] | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> Manifest:
    """Replay JSONL ``shards`` (paths or fsspec URLs, in input order) on Dask into a partitioned audit at ``out_dir``.

    ``scheduler``: ``"local"`` (or ``"local:N"``) starts a local cluster of 2 (N) worker
    processes and closes it afterwards; another string is a scheduler address; None uses
    Dask's current default (an active ``Client`` of this process). ``as_of`` is in
    microseconds. ``partitions`` defaults to one per 16 MiB of input. ``names`` are the
    inputs' names for the header and for ``source`` (default: ``shards``), e.g. ``"-"``
    for a spooled standard input. ``out_dir`` appears whole or not at all; an earlier
    partitioned audit there is replaced. Raises PolicyError, InputError or DistributedError.
    """
    dask = _require("dask")
    names = list(shards) if names is None else list(names)
    if len(names) != len(shards):
        raise ValueError("names must name every shard")
    if partitions is not None and partitions < 1:
        raise ValueError("partitions must be at least 1")
    if block_bytes < 1:
        raise ValueError("block_bytes must be at least 1")
    locations = [_location(shard, name) for shard, name in zip(shards, names, strict=True)]
    source = read_source(policy_path).encode("utf-8")  # the file's bytes (read_source decodes them strictly)
    policy = _policy_or_error(source, policy_path)
    target = Path(out_dir).absolute()
    if not target.parent.is_dir():
        raise DistributedError(f"the folder {target.parent} does not exist")
    _check_target(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        with _scheduler(scheduler) as compute:
            scans: list[dict[str, Any]] = compute([dask.delayed(_scan, pure=False)(loc, name, block_bytes) for loc, name in zip(locations, names, strict=True)])
            count = partitions or default_partitions(sum(s["size"] for s in scans))
            inputs = [(name, s["sha256"]) for name, s in zip(names, scans, strict=True)]
            splits: list[tuple[str, Any]] = []  # (shard name, a Delayed tuple of `count` chunks), in block order
            seq = 1
            for loc, name, s in zip(locations, names, scans, strict=True):
                cuts = s["blocks"]
                for k, (offset, lines_before, records_before) in enumerate(cuts):
                    end = cuts[k + 1][0] if k + 1 < len(cuts) else s["size"]
                    task = dask.delayed(_read_block, nout=count, pure=False)
                    splits.append((name, task(loc, name, offset, end, lines_before, seq + records_before, count)))
                seq += s["records"]
            parts = [
                dask.delayed(_replay_part, pure=False)(
                    index, count, source, policy_path, inputs, as_of, str(staging), [(name, split[index]) for name, split in splits]
                )
                for index in range(count)
            ]
            results: list[dict[str, Any]] = sorted(compute(parts), key=lambda r: int(r["index"]))
        if sum(r["summary"]["records"] for r in results) != seq - 1:
            raise DistributedError(f"the shards changed during the replay: {seq - 1} records were counted, {sum(r['summary']['records'] for r in results)} replayed")
        for r in results:
            if not (staging / r["file"]).is_file():
                raise DistributedError(f"{r['file']} was written where the client cannot see it: put the output folder on a filesystem the workers share")
        manifest = _manifest(policy, inputs, as_of, results)
        data = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
        with open(staging / MANIFEST, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _install(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    by_rule: dict[str, int] = {}
    for r in results:
        for rule, n in r["by_rule"].items():
            by_rule[rule] = by_rule.get(rule, 0) + n
    return Manifest(str(target), manifest, by_rule)


def _location(shard: str, name: str) -> str:
    """Where the workers open a shard: a URL as given; a local path made absolute, after checking it can be read here."""
    if "://" in shard or "::" in shard:
        return shard
    path = os.path.abspath(shard)
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise InputError(f"cannot read {name}: {err.strerror or err}") from None
    return path


def _policy_or_error(source: bytes, path: str) -> CompiledPolicy:
    """Compile on the client first: a policy with errors raises PolicyError with every diagnostic."""
    text = source.decode("utf-8")
    result = check_source(text, path)
    if result.checked is None:
        raise PolicyError(result.diagnostics, text)
    compiled = compile_policy(result.checked, source)
    _POLICIES.setdefault(hashlib.sha256(source).hexdigest(), compiled)
    return compiled


def _manifest(policy: CompiledPolicy, inputs: list[tuple[str, str]], as_of: int | None, results: list[dict[str, Any]]) -> dict[str, Any]:
    totals: dict[str, Any] = dict.fromkeys(_TOTALS, 0)
    totals["by_kind"] = dict.fromkeys(KINDS, 0)
    for r in results:
        for key in _TOTALS:
            totals[key] += r["summary"][key]
        for kind, n in r["summary"]["by_kind"].items():
            totals["by_kind"][kind] = totals["by_kind"].get(kind, 0) + n
    return {
        "format": MANIFEST_FORMAT,
        "policy": {"name": policy.name, "version": policy.version, "sha256": policy.sha256},
        "engine": ENGINE,
        "inputs": [{"path": p, "sha256": d} for p, d in inputs],
        "as_of": format_time(as_of) if as_of is not None else None,
        "partitions": [{"file": r["file"], "records": r["records"], "final_hash": r["final_hash"], "sha256": r["sha256"]} for r in results],
        "root_hash": root_hash(r["final_hash"] for r in results),
        "summary": totals,
    }


# ---------------------------------------------------------------------------------------------
# Reading and verifying a partitioned audit (no Dask needed)


def _locate(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(the audit folder, its manifest file) from either of them."""
    p = Path(path)
    if p.is_dir():
        return p, p / MANIFEST
    return p.parent, p


def is_manifest(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a partitioned audit: its folder, or its ``manifest.json`` (never a cut-down log)."""
    p = Path(path)
    return p.is_dir() or (p.name == "manifest.json" and p.is_file())


def _manifest_bytes(file: Path) -> bytes:
    """The bytes of a manifest file, at most ``MAX_MANIFEST_BYTES`` of them (ValueError beyond; OSError when unreadable)."""
    too_long = f"the manifest is longer than {MAX_MANIFEST_BYTES} bytes, longer than any this engine writes"
    with open(file, "rb") as fh:
        if os.fstat(fh.fileno()).st_size > MAX_MANIFEST_BYTES:
            raise ValueError(too_long)
        data = fh.read(MAX_MANIFEST_BYTES + 1)  # not a regular file (a pipe): read no further than the limit
    if len(data) > MAX_MANIFEST_BYTES:
        raise ValueError(too_long)
    return data


def _parse_manifest(data: bytes) -> dict[str, Any]:
    """The manifest's JSON object; ValueError (a sentence) when it is not one this engine could have written."""
    try:
        manifest = loads_strict(data)
    except ValueError:
        raise ValueError("the manifest is not JSON") from None
    if not isinstance(manifest, dict):
        raise ValueError("the manifest is not a JSON object")
    try:
        canonical(manifest)
    except UnicodeEncodeError:
        raise ValueError("the manifest holds a lone surrogate escape (such as \\udfff), which no manifest of this engine holds") from None
    return manifest


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest as a dict (raises OSError when unreadable, ValueError when it is not a JSON object)."""
    _, file = _locate(path)
    return _parse_manifest(_manifest_bytes(file))


def iter_records(out_dir: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(partition index, record) for every record of every part, in file order (no verification)."""
    folder, _ = _locate(out_dir)
    for index in range(len(read_manifest(out_dir)["partitions"])):
        with open(folder / part_name(index), "rb") as fh:
            for raw in read_lines(fh):
                yield index, json.loads(raw)


def decisions_by_seq(out_dir: str | os.PathLike[str]) -> dict[int, dict[str, Any]]:
    """seq -> the decision or rejected record of that input record, without ``prev`` and ``hash``."""
    out: dict[int, dict[str, Any]] = {}
    for _, record in iter_records(out_dir):
        if record.get("kind") in ("decision", "rejected"):
            out[record["seq"]] = {k: v for k, v in record.items() if k not in ("prev", "hash")}
    return out


class _Fail(Exception):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class _Lines:
    """The lines of a part file (read with :func:`escalation.audit.chain.read_lines`), hashing every byte read."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self.digest = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        for raw in read_lines(self._fh):
            self.digest.update(raw)
            yield raw


class _Seen:
    """Which seqs the parts hold: each at most once, none beyond the total."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bits = bytearray((total >> 3) + 1)
        self.count = 0

    def add(self, seq: int) -> str | None:
        if not 1 <= seq <= self.total:
            return f"seq {seq} is outside 1..{self.total}, the records the manifest counts"
        byte, bit = seq >> 3, 1 << (seq & 7)
        if self.bits[byte] & bit:
            return f"seq {seq} appears in more than one part"
        self.bits[byte] |= bit
        self.count += 1
        return None


def _verify_part(lines: Iterable[bytes], engine: str, index: int, manifest: dict[str, Any], seen: _Seen) -> tuple[int, str, dict[str, Any]]:
    """Check one part's chain, header, order, ownership, fields and counts; returns (records, final hash, summary)."""
    count = len(manifest["partitions"])
    header: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    last_seq = records = 0
    final = GENESIS
    tally = Tally()
    closing = False
    for number, record in chained_records(lines):
        records = number
        final = record["hash"]
        kind = record.get("kind")
        if summary is not None:
            raise _Fail("a record follows the summary", number)
        if header is None:
            check_header(record, engine, number)
            partition = record.get("partition")
            if not _same(partition, {"index": index, "count": count}):
                raise _Fail(f"the header names partition {quote(partition)}, not {{'index': {index}, 'count': {count}}}", number)
            for key in ("policy", "inputs", "as_of", "idle_horizon"):
                if (key in record) != (key in manifest) or not _same(record.get(key), manifest.get(key)):
                    raise _Fail(f"the header's `{key}` differs from the manifest's", number)
            header = record
            continue
        if kind == "summary":
            problem = tally.mismatch(record, "part")
            if problem is not None:
                raise _Fail(problem, number)
            summary = record
            continue
        check_record(record, number, header)
        if kind in ("decision", "rejected"):
            if closing:
                raise _Fail(f"a {kind} record follows the close records", number)
            seq = record.get("seq")
            if type(seq) is not int or seq <= last_seq:
                raise _Fail(f"seq {quote(seq)} does not follow seq {last_seq} (records are out of order)", number)
            last_seq = seq
            problem = seen.add(seq)
            if problem is not None:
                raise _Fail(problem, number)
            if kind == "decision":
                conversation = record["conversation"]
                owner = zlib.crc32(conversation.encode("utf-8")) % count
                if owner != index:
                    raise _Fail(f"conversation {quote(conversation)} belongs to partition {owner}, not this one", number)
        else:
            closing = True
        tally.add(record)
    if header is None:
        raise _Fail("the part is empty", 1)
    if summary is None:
        raise _Fail("the part has no summary: it was cut short", records + 1)
    return records, final, summary


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON, types included (``true`` is not ``1``); both come from parsed, encodable JSON."""
    return canonical(a) == canonical(b)


def _check_manifest_shape(m: dict[str, Any], engine: str | None) -> None:
    """_Fail unless ``m`` has the shape of a manifest this engine writes (of version ``engine``, unless None)."""
    if m.get("format") != MANIFEST_FORMAT:
        raise _Fail(f"not an {MANIFEST_FORMAT} manifest")
    if engine is not None and m.get("engine") != engine:
        raise _Fail(f"the audit was written by {quote(m.get('engine'))}, and this is {engine!r}: verify it with that version")
    parts = m.get("partitions")
    if type(parts) is not list or not parts:
        raise _Fail("the manifest lists no partitions")
    for i, entry in enumerate(parts):
        if type(entry) is not dict or entry.get("file") != part_name(i):
            raise _Fail(f"partition {i} of the manifest is not {part_name(i)}")
        if type(entry.get("records")) is not int or not all(_is_sha256(entry.get(k)) for k in ("final_hash", "sha256")):
            raise _Fail(f"the manifest's entry for {part_name(i)} lacks `records`, `final_hash` or `sha256`")
    summary = m.get("summary")
    if type(summary) is not dict or type(summary.get("records")) is not int or summary["records"] < 0:
        raise _Fail("the manifest has no summary with a record count")
    problem = option_problem(m, "manifest")
    if problem is not None:
        raise _Fail(problem)
    if "idle_horizon" in m:
        raise _Fail("the manifest records an `idle_horizon`, which a distributed replay never uses")
    if not _is_sha256(m.get("root_hash")):
        raise _Fail("the manifest has no root hash")
    if root_hash(p["final_hash"] for p in parts) != m["root_hash"]:
        raise _Fail("`root_hash` does not match the parts' final hashes (the manifest was edited)")


def _is_sha256(value: Any) -> bool:
    return type(value) is str and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


#: The fewest bytes a decision or rejected record takes in a part (its `prev` and `hash` alone take 146).
_MIN_RECORD_BYTES = 128


def verify_manifest(path: str | os.PathLike[str], engine: str = ENGINE) -> VerifyResult:
    """Check a partitioned audit: the manifest's root hash, every part (chain, file SHA-256,
    final hash, header, seq order and ownership, fields, counts), that every input record
    appears in exactly one part, and the totals. ``path`` is the folder or its manifest; a
    failure names the first bad part and line. ``header`` of the result is the manifest,
    ``summary`` its totals. Memory is bounded whatever the files hold (the manifest is read
    up to ``MAX_MANIFEST_BYTES``, each line of a part up to ``MAX_RECORD_BYTES``). Raises
    OSError when the manifest itself cannot be read."""
    folder, file = _locate(path)
    where = str(file)
    try:
        try:
            manifest = _parse_manifest(_manifest_bytes(file))  # OSError goes to the caller
        except ValueError as err:
            raise _Fail(str(err)) from None
        _check_manifest_shape(manifest, engine)
        parts = manifest["partitions"]
        claimed = manifest["summary"]["records"]
        room = sum((folder / p["file"]).stat().st_size for p in parts if (folder / p["file"]).is_file())
        if claimed * _MIN_RECORD_BYTES > room:  # refuse before allocating for them
            raise _Fail(f"the manifest counts {quote(claimed)} records, more than its parts can hold")
        seen = _Seen(claimed)
        totals: dict[str, Any] = dict.fromkeys(_TOTALS, 0)
        totals["by_kind"] = dict.fromkeys(KINDS, 0)
        for index, entry in enumerate(parts):
            part = folder / entry["file"]
            where = str(part)
            if not part.is_file():
                raise _Fail("the part is missing")
            with part.open("rb") as fh:
                lines = _Lines(fh)
                try:
                    records, final, summary = _verify_part(lines, engine, index, manifest, seen)
                    for _ in lines:  # unreachable after a summary, but keep the file hash honest
                        pass
                except BadLine as bad:
                    raise _Fail(bad.message, bad.line) from None
            if final != entry["final_hash"]:
                raise _Fail(f"the part's final hash is {final}, the manifest says {entry['final_hash']}")
            if records != entry["records"]:
                raise _Fail(f"the part holds {records} records, the manifest says {entry['records']}")
            if lines.digest.hexdigest() != entry["sha256"]:
                raise _Fail("the file's SHA-256 differs from the manifest's")
            for key in _TOTALS:
                totals[key] += summary[key]
            for kind, n in summary["by_kind"].items():
                totals["by_kind"][kind] = totals["by_kind"].get(kind, 0) + n
        where = str(file)
        if not _same(totals, manifest["summary"]):
            bad_keys = sorted(k for k in totals if k not in manifest["summary"] or not _same(totals[k], manifest["summary"][k]))
            raise _Fail(f"the manifest's summary differs from the parts' totals ({', '.join(bad_keys or sorted(set(manifest['summary']) - set(totals)))})")
        if seen.count != claimed:
            raise _Fail(f"the parts hold {seen.count} input records, the manifest counts {claimed}: records are missing")
    except _Fail as fail:
        prefix = f"{where}:{fail.line}: " if fail.line else f"{where}: "
        return VerifyResult(False, prefix + fail.message, fail.line)
    return VerifyResult(True, "intact", None, manifest, manifest["summary"])


def compare_manifest(path: str | os.PathLike[str], policy: CompiledPolicy, inputs: list[Input]) -> VerifyResult:
    """Replay ``inputs`` in this process, partitioned as the manifest says, and compare every part byte for byte.

    The inputs are named as the manifest names them (so the bytes can match); their
    digests, the policy's and ``as_of`` must be the manifest's. Memory is that of a serial
    replay, plus one line of each part. Run :func:`verify_manifest` first; this names the
    first part and line that differ.
    """
    folder, file = _locate(path)
    try:
        manifest = read_manifest(path)
        _check_manifest_shape(manifest, None)
    except (ValueError, _Fail) as err:
        return VerifyResult(False, f"{file}: {err}")
    recorded_policy = manifest.get("policy")
    if type(recorded_policy) is not dict or recorded_policy.get("sha256") != policy.sha256:
        shown = recorded_policy.get("sha256") if type(recorded_policy) is dict else None
        return VerifyResult(False, f"{file}: the audit was made with another policy (sha256 {quote(shown)})")
    recorded = manifest.get("inputs")
    if type(recorded) is not list or not all(type(i) is dict and type(i.get("path")) is str for i in recorded):
        return VerifyResult(False, f"{file}: the manifest's `inputs` is not a list of {{path, sha256}}")
    if [i.get("sha256") for i in recorded] != [i.sha256 for i in inputs]:
        return VerifyResult(False, f"{file}: the audit was made from other inputs ({', '.join(str(i.get('path')) for i in recorded)}) than those given")
    if not (manifest.get("as_of") is None or is_time(manifest.get("as_of"))):
        return VerifyResult(False, f"{file}: the manifest's `as_of` is {quote(manifest.get('as_of'))}, neither null nor a time")
    named = [attrs.evolve(i, path=str(r["path"])) for r, i in zip(recorded, inputs, strict=True)]  # a spooled input keeps its copy
    as_of = parse_time(manifest["as_of"]) if manifest.get("as_of") else None
    count = len(manifest["partitions"])
    with contextlib.ExitStack() as stack:
        sinks = [LineComparer(stack.enter_context(open(folder / part_name(i), "rb"))) for i in range(count)]
        index = 0
        try:
            writers = []
            for index in range(count):
                writers.append(_PartWriter(policy, named, as_of, index, count, sinks[index]))
            seq = 1
            for inp in named:
                with inp.open() as fh:
                    for line in iter_lines(inp.path, fh, seq):
                        seq = line.seq + 1
                        index = partition_of(line.data, line.seq, count)
                        writers[index].feed(line)
            for index in range(count):
                writers[index].finish()
                sinks[index].end()
        except Differs as diff:
            return VerifyResult(False, f"{folder / part_name(index)}:{diff.line}: {diff.message}", diff.line)
    return VerifyResult(True, "identical to a fresh replay of its inputs", None, manifest, manifest.get("summary"))
