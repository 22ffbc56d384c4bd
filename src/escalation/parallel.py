"""`replay --jobs N`: the same audit log as a serial replay, computed by N worker processes.

Every worker reads all inputs but handles only the records it owns: those of the
conversations that hash to it (CRC-32 of the conversation id, modulo N; a record
whose conversation cannot be read belongs to worker ``seq mod N``). A conversation's
records all go to one worker, so its state is exactly the serial one. Each worker
writes its records, encoded with placeholder ``prev`` and ``hash`` fields, in seq
order to a spool file; the parent merges the spools by seq and completes the
chain, which is the only sequential work left (a byte splice and one SHA-256 per
record). Close records are ordered by each conversation's first accepted record,
as in a serial replay. Workers are forked, so they share the compiled policy.
"""

from __future__ import annotations

import heapq
import json
import multiprocessing
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .audit import AuditWriter, engine_canonical, placeholder_record
from .compiler import CompiledPolicy
from .events import iter_lines
from .replay import Input, Replayer, Stats, header_record

try:
    import orjson

    _loads: Any = orjson.loads
except ImportError:  # pragma: no cover
    _loads = json.loads


def owner(data: bytes, seq: int, jobs: int) -> int:
    """The worker that handles the record on this line."""
    try:
        obj = _loads(data)
    except (ValueError, TypeError):
        return seq % jobs
    conversation = obj.get("conversation") if type(obj) is dict else None
    if type(conversation) is str and conversation:
        try:
            return zlib.crc32(conversation.encode("utf-8")) % jobs
        except UnicodeEncodeError:
            return seq % jobs
    return seq % jobs


# The policy and the job description reach forked workers through these globals.
_JOB: dict[str, Any] = {}


def _work(index: int) -> str:
    job = _JOB
    policy: CompiledPolicy = job["policy"]
    jobs: int = job["jobs"]
    spool = Path(job["dir"]) / f"part-{index}"
    r = Replayer(policy, job["as_of"])
    first_seq: dict[str, int] = {}
    with open(spool.with_suffix(".body"), "wb", buffering=1 << 20) as out:
        seq = 1
        for path, file in job["inputs"]:
            with open(file, "rb") as fh:
                for line in iter_lines(path, fh, seq):
                    seq = line.seq + 1
                    if owner(line.data, line.seq, jobs) != index:
                        continue
                    record = r.record(line)
                    if record["kind"] == "decision":
                        first_seq.setdefault(record["conversation"], line.seq)
                    out.write(b"%d " % line.seq + engine_canonical(placeholder_record(record)) + b"\n")
    with open(spool.with_suffix(".close"), "wb") as out:
        for record in r.closes():
            out.write(b"%d " % first_seq[record["conversation"]] + engine_canonical(placeholder_record(record)) + b"\n")
    st = r.stats
    stats = {k: getattr(st, k) for k in ("records", "events", "rejected", "violations", "by_kind", "by_rule", "open_obligations")}
    stats["conversations"] = len(r.order)
    spool.with_suffix(".stats").write_text(json.dumps(stats), encoding="utf-8")
    return str(spool)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:
        for raw in fh:
            seq, _, body = raw.partition(b" ")
            yield int(seq), body[:-1]


def replay_parallel(policy: CompiledPolicy, inputs: list[Input], as_of: int | None, jobs: int, out: IO[bytes], spool_dir: str | None = None) -> Stats:
    """Write the audit log of a replay to ``out`` using ``jobs`` processes; returns the totals."""
    with tempfile.TemporaryDirectory(prefix=".escalation-jobs-", dir=spool_dir) as tmp:
        _JOB.clear()
        _JOB.update(policy=policy, jobs=jobs, dir=tmp, as_of=as_of, inputs=[(i.path, str(i.file)) for i in inputs])
        ctx = multiprocessing.get_context("fork")
        try:
            with ctx.Pool(jobs) as pool:
                spools = [Path(p) for p in pool.map(_work, range(jobs))]
        finally:
            _JOB.clear()
        writer = AuditWriter(out)
        writer.write(header_record(policy, inputs, as_of))
        for _, body in heapq.merge(*(_lines(p.with_suffix(".body")) for p in spools)):
            writer.write_encoded(body)
        for _, body in heapq.merge(*(_lines(p.with_suffix(".close")) for p in spools)):
            writer.write_encoded(body)
        total = Stats()
        for p in spools:
            part = json.loads(p.with_suffix(".stats").read_text(encoding="utf-8"))
            for key in ("records", "events", "rejected", "violations", "open_obligations", "conversations"):
                setattr(total, key, getattr(total, key) + part[key])
            for kind, n in part["by_kind"].items():
                total.by_kind[kind] += n
            for rule, n in part["by_rule"].items():
                total.by_rule[rule] = total.by_rule.get(rule, 0) + n
        writer.write(
            {
                "kind": "summary",
                "records": total.records,
                "events": total.events,
                "rejected": total.rejected,
                "conversations": total.conversations,
                "violations": total.violations,
                "by_kind": dict(total.by_kind),
                "open_obligations": total.open_obligations,
            }
        )
        return total


def usable() -> bool:
    """Whether this platform can fork workers (elsewhere `--jobs` replays serially)."""
    return "fork" in multiprocessing.get_all_start_methods() and os.name == "posix"
