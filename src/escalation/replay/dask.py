"""Distributed replay on Dask: a partitioned, hash-chained audit (the optional extra ``escalation[dask]``).

The core never imports this module, and this module imports ``dask`` and ``fsspec``
only inside the functions that run a replay, so :func:`verify_manifest` and
:func:`compare_manifest` work without Dask installed. The manifest, and reading and
verifying a partitioned audit, are :mod:`escalation.audit.manifest`'s; which partition
owns a record is :mod:`escalation.replay.partition`'s rule.

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
   by :func:`~escalation.replay.partition.partition_of` (CRC-32 of the conversation id modulo the partition count;
   a record whose conversation cannot be read goes to ``seq mod count``). A block's
   records of one partition travel as one chunk: their seqs and line numbers as
   arrays, their lines joined by LF (no per-record objects to pickle).
3. **Replay** (one task per partition): the partition's chunks, taken in block order,
   are already in seq order. The worker compiles the policy from its source text
   (compiled policies hold closures and cannot be pickled), feeds every record to an
   :class:`escalation.replay.core.Replayer` (through :class:`~escalation.replay.core.PartWriter`), and writes ``part-NNNNN.jsonl``: a header (the
   serial header plus ``partition`` {index, count}), the partition's decision and
   rejected records in seq order, its close records (in order of first appearance
   within the partition), and its summary, chained like any audit log.
4. The client writes ``manifest.json`` (each part's record count, final hash and file
   SHA-256, the root hash over the final hashes, the totals) and renames the staging
   folder to ``out_dir``.

When the policy reads customer history (language.md §9) the partitions go by customer
(interfaces.md §2): after the scan, one task (:func:`~escalation.replay.dask_shards.first_pass`)
runs admission over every shard in input order (binding, the customers' time order,
``max_open_conversations`` over all conversations) and gives each line the partition of its
conversation's final binding (:func:`~escalation.replay.partition.owner_key`), 4 bytes a line.
It is a task, not the client, so that the routing stays on the cluster: each block task
receives only its block's slice (an array, and its rejected lines' reasons), and each
partition writes a line the first pass rejected with the first pass's reason (a partition
alone cannot see, say, a customer's clock from another partition) and must accept every
other. The manifest says ``"partition_by": "customer"`` and each part's header
``partition`` {index, count, ``by``}; :func:`verify_manifest` and :func:`compare_manifest`
follow the rule the manifest names.

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
import logging
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import attrs

from ..audit import (
    BY_CONVERSATION,
    BY_CUSTOMER,
    ENGINE,
    AuditFolderError,
    BadManifest,
    Differs,
    Digested,
    LineComparer,
    Manifest,
    PartResult,
    Sink,
    VerifyResult,
    check_audit_folder,
    check_manifest_shape,
    decisions_by_seq,
    header_record,
    install_audit_folder,
    is_manifest,
    is_time,
    iter_records,
    locate,
    manifest_record,
    part_name,
    part_partition,
    partition_rule,
    quote,
    read_manifest,
    rejected_record,
    root_hash,
    write_manifest,
)
from ..audit import verify_manifest as verify_manifest_owned
from ..compile import CompiledPolicy
from ..lang import DEFAULT_LIMITS, Limits, parse_time
from ..load import compile_source
from ..runtime import Line
from ..streams import Input, InputError
from ..syntax import read_source
from .core import PartWriter, Replayer, input_lines
from .customers import reads_customer_history
from .dask_shards import (
    CHANGED,
    Chunk,
    DistributedError,
    Scan,
    block_routing,
    chunk_lines,
    first_pass,
    read_block,
    require,
    scan_shard,
    worker_policy,
)
from .partition import admission_pass, owner_of, partition_of

__all__ = [
    "BLOCK_BYTES",
    "DistributedError",
    "Manifest",
    "compare_manifest",
    "decisions_by_seq",
    "default_partitions",
    "is_manifest",
    "iter_records",
    "part_name",
    "read_manifest",
    "replay_distributed",
    "root_hash",
    "verify_manifest",
]

#: Shards are read in blocks of about this many bytes (cut at line boundaries), one task each.
BLOCK_BYTES = 32 << 20
#: Without ``partitions``, one partition per this many input bytes (1 to ``MAX_DEFAULT_PARTITIONS``).
PARTITION_BYTES = 16 << 20
MAX_DEFAULT_PARTITIONS = 512
#: ``scheduler="local"`` starts this many single-threaded worker processes (``"local:N"`` for N).
LOCAL_WORKERS = 2


# ---------------------------------------------------------------------------------------------
# Writing one partition (on a worker, or in-process for compare_manifest)

class _HashingFile:
    """Writes through to a file, keeping the SHA-256 of everything written."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self._out.write(data)


@attrs.frozen
class _Named:
    """An input as the header names it (a worker has only the name and the digest)."""

    path: str
    sha256: str


def _part_writer(
    policy: CompiledPolicy, inputs: Sequence[Digested], as_of: int | None, index: int, count: int, out: Sink, by: str, limits: Limits
) -> PartWriter:
    """The writer of part ``index`` of ``count``: the serial header plus ``partition`` (with ``by`` for the customer rule), then the replay's records."""
    header = header_record(policy, inputs, as_of, partition=(index, count))
    header["partition"] = part_partition(index, count, by)
    return PartWriter(Replayer(policy, as_of, limits=limits), header, out)


def _feed(part: PartWriter, line: Line, reason: str | None, by: str) -> None:
    """One line into its part. Under the customer rule a line the first pass rejected is written with the first pass's
    reason (a partition alone cannot see every rejection: a customer's clock seen from another partition, the
    ``max_open_conversations`` limit), and the partition must accept every other line: it meets the same state."""
    if by == BY_CONVERSATION:
        part.feed(line)
    elif reason is not None:
        part.replayer.stats.rejected_one()
        part.writer.write(rejected_record(line, reason))
    else:
        record = part.replayer.record(line)
        if record["kind"] == "rejected":
            raise DistributedError(f"record {line.seq} passed the first pass but its partition rejects it ({record['reason']}): {CHANGED}")
        part.writer.write(record)


def _replay_part(
    index: int,
    count: int,
    policy_source: bytes,
    policy_path: str,
    inputs: list[tuple[str, str]],
    as_of: int | None,
    staging: str,
    groups: list[tuple[str, Chunk]],
    by: str,
    limits: Limits,
) -> PartResult:
    """Replay one partition and write its part into ``staging``; returns what the manifest needs."""
    policy = worker_policy(policy_source, policy_path)
    folder = Path(staging)
    if not folder.is_dir():
        raise DistributedError(f"the worker cannot see the output folder {staging}: put --out-dir on a filesystem the workers share")
    final = folder / part_name(index)
    tmp = folder / f".{final.name}.{uuid.uuid4().hex}.tmp"  # a retried task never meets a half-written part
    try:
        with open(tmp, "wb", buffering=1 << 20) as fh:
            out = _HashingFile(fh)
            part = _part_writer(policy, [_Named(p, d) for p, d in inputs], as_of, index, count, out, by, limits)
            last = 0
            for path, chunk in groups:
                for line in chunk_lines(path, chunk):
                    if line.seq <= last:  # pragma: no cover - the shuffle keeps seq order by construction
                        raise DistributedError(f"partition {index}: record {line.seq} arrived after record {last}")
                    last = line.seq
                    _feed(part, line, chunk.rejections.get(line.seq), by)
            totals = part.finish()
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return PartResult(index, final.name, part.writer.count, part.writer.prev, out.digest.hexdigest(), totals)


# ---------------------------------------------------------------------------------------------
# The client side


def default_partitions(total_bytes: int) -> int:
    """One partition per ``PARTITION_BYTES`` of input, at least 1 and at most ``MAX_DEFAULT_PARTITIONS``."""
    return max(1, min(MAX_DEFAULT_PARTITIONS, math.ceil(total_bytes / PARTITION_BYTES)))


@contextlib.contextmanager
def _scheduler(scheduler: str | None) -> Iterator[Callable[[list[Any]], list[Any]]]:
    """A function that computes a list of Delayed values on the chosen scheduler (closed on exit)."""
    dask = require("dask")
    if scheduler is None:  # Dask's current default: an active Client of this process, else its local scheduler
        yield lambda values: list(dask.compute(*values))
        return
    dd = require("dask.distributed")
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
    limits: Limits = DEFAULT_LIMITS,
) -> Manifest:
    """Replay JSONL ``shards`` (paths or fsspec URLs, in input order) on Dask into a partitioned audit at ``out_dir``.

    ``scheduler``: ``"local"`` (or ``"local:N"``) starts a local cluster of 2 (N) worker
    processes and closes it afterwards; another string is a scheduler address; None uses
    Dask's current default (an active ``Client`` of this process). ``as_of`` is in
    microseconds. ``partitions`` defaults to one per 16 MiB of input. ``names`` are the
    inputs' names for the header and for ``source`` (default: ``shards``), e.g. ``"-"``
    for a spooled standard input. ``limits`` are the replay's (``max_open_conversations``
    counts every partition's conversations when the policy reads customer history, each
    partition's alone otherwise: docs/scaling.md). ``out_dir`` appears whole or not at all; an
    earlier partitioned audit there is replaced. Raises PolicyError, InputError or DistributedError.
    """
    dask = require("dask")
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
    by = _rule(policy)
    target = Path(out_dir).absolute()
    if not target.parent.is_dir():
        raise DistributedError(f"the folder {target.parent} does not exist")
    try:
        check_audit_folder(target)
    except AuditFolderError as err:
        raise DistributedError(str(err)) from None
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        with _scheduler(scheduler) as compute:
            scan = dask.delayed(scan_shard, pure=False)
            scans: list[Scan] = compute([scan(loc, name, block_bytes, limits) for loc, name in zip(locations, names, strict=True)])
            count = partitions or default_partitions(sum(s.size for s in scans))
            inputs = [(name, s.sha256) for name, s in zip(names, scans, strict=True)]
            first: Any = None  # the customer rule: the first pass, one task that reads every shard in order
            if by == BY_CUSTOMER:
                first = dask.delayed(first_pass, pure=False)(
                    source, policy_path, locations, names, [(s.sha256, s.records) for s in scans], count, limits
                )
            splits: list[tuple[str, Any]] = []  # (shard name, a Delayed tuple of `count` chunks), in block order
            seq = 1
            for loc, name, s in zip(locations, names, scans, strict=True):
                cuts = s.blocks
                for k, (offset, lines_before, records_before) in enumerate(cuts):
                    end, records_after = (cuts[k + 1].offset, cuts[k + 1].records_before) if k + 1 < len(cuts) else (s.size, s.records)
                    routed = None if first is None else dask.delayed(block_routing)(first, seq + records_before - 1, records_after - records_before)
                    task = dask.delayed(read_block, nout=count, pure=False)
                    splits.append((name, task(loc, name, offset, end, lines_before, seq + records_before, count, limits, routed)))
                seq += s.records
            parts = [
                dask.delayed(_replay_part, pure=False)(
                    index, count, source, policy_path, inputs, as_of, str(staging), [(name, split[index]) for name, split in splits], by, limits
                )
                for index in range(count)
            ]
            results: list[PartResult] = sorted(compute(parts), key=lambda r: r.index)
        replayed = sum(r.totals.records for r in results)
        if replayed != seq - 1:
            raise DistributedError(f"the shards changed during the replay: {seq - 1} records were counted, {replayed} replayed")
        for r in results:
            if not (staging / r.file).is_file():
                raise DistributedError(f"{r.file} was written where the client cannot see it: put the output folder on a filesystem the workers share")
        manifest = manifest_record(policy, [_Named(p, d) for p, d in inputs], as_of, results, by)
        write_manifest(staging, manifest)
        try:
            install_audit_folder(staging, target)
        except AuditFolderError as err:
            raise DistributedError(str(err)) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    by_rule: dict[str, int] = {}
    for r in results:
        for rule, n in r.totals.by_rule.items():
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


def _rule(policy: CompiledPolicy) -> str:
    """How a replay of ``policy`` partitions: by customer when it reads customer history (interfaces.md §2), else by conversation."""
    return BY_CUSTOMER if reads_customer_history(policy) else BY_CONVERSATION


def _policy_or_error(source: bytes, path: str) -> CompiledPolicy:
    """Compile on the client first: a policy with errors raises PolicyError with every diagnostic."""
    return compile_source(source.decode("utf-8"), path)


def compare_manifest(path: str | os.PathLike[str], policy: CompiledPolicy, inputs: list[Input], limits: Limits = DEFAULT_LIMITS) -> VerifyResult:
    """Replay ``inputs`` in this process, partitioned as the manifest says, and compare every part byte for byte.

    The inputs are named as the manifest names them (so the bytes can match); their
    digests, the policy's and ``as_of`` must be the manifest's, and its partitioning rule
    the one a replay of the policy uses. Under the customer rule the lines are routed as
    the replay routed them: a first pass (:func:`~escalation.replay.partition.admission_pass`)
    over the inputs, then each line to its conversation's final owner. Memory is that of a
    serial replay (plus 8 bytes a line under the customer rule), plus one line of each part.
    Run :func:`verify_manifest` first; this names the first part and line that differ.
    """
    folder, file = locate(path)
    try:
        manifest = read_manifest(path)
        check_manifest_shape(manifest, None)
    except (ValueError, BadManifest) as err:
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
    by, expected = partition_rule(manifest), _rule(policy)
    if by != expected:
        return VerifyResult(False, f"{file}: the audit was partitioned by {by}, but a replay of this policy partitions by {expected}")
    named = [attrs.evolve(i, path=str(r["path"])) for r, i in zip(recorded, inputs, strict=True)]  # a spooled input keeps its copy
    as_of = parse_time(manifest["as_of"]) if manifest.get("as_of") else None
    count = len(manifest["partitions"])
    owners, rejections = array.array("I"), {}
    if by == BY_CUSTOMER:
        routing = admission_pass(policy, named, True, limits)
        owners, rejections = routing.partitions(count), routing.rejections
        del routing
    with contextlib.ExitStack() as stack:
        sinks = [LineComparer(stack.enter_context(open(folder / part_name(i), "rb"))) for i in range(count)]
        index = 0
        try:
            writers = []
            for index in range(count):
                writers.append(_part_writer(policy, named, as_of, index, count, sinks[index], by, limits))
            for line in input_lines(named, limits):
                if by == BY_CONVERSATION:
                    index = partition_of(line.data, line.seq, count)
                elif line.seq <= len(owners):
                    index = owners[line.seq - 1]
                else:
                    raise InputError(f"{line.source}: the inputs changed during the comparison")
                _feed(writers[index], line, rejections.get(line.seq), by)
            for index in range(count):
                writers[index].finish()
                sinks[index].end()
        except Differs as diff:
            return VerifyResult(False, f"{folder / part_name(index)}:{diff.line}: {diff.message}", diff.line)
    return VerifyResult(True, "identical to a fresh replay of its inputs", None, manifest, manifest.get("summary"))


def verify_manifest(path: str | os.PathLike[str], engine: str = ENGINE) -> VerifyResult:
    """:func:`escalation.audit.verify_manifest` with this replay's ownership rule (see that function)."""
    return verify_manifest_owned(path, owner_of, engine)
