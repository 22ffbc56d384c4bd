"""Partitioned audits (a distributed replay's folder): the manifest, reading it, verifying every part, installing the folder.

A partitioned audit is a folder holding ``part-NNNNN.jsonl`` files (each an audit log of
its own: a header with ``partition`` {index, count}, the partition's decision and
rejected records in seq order, its close records and its summary) and ``manifest.json``:
each part's record count, final hash and file SHA-256, the root hash over the final
hashes, and the totals. Nothing here needs Dask. Which partition owns a conversation is
the replay's rule (:mod:`escalation.replay.partition`); :func:`verify_manifest` is given it.

There are two rules, and the manifest names the one its replay used: a policy that reads
customer history is partitioned by customer (:data:`BY_CUSTOMER`: a conversation goes
where its final binding's customer goes, an anonymous one by its own id), which the
manifest records as ``"partition_by": "customer"`` and each part's header as
``partition`` {index, count, ``by``}; any other by conversation (:data:`BY_CONVERSATION`),
which a manifest without ``partition_by`` means (every manifest written before the
customer rule), so that those bytes never changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import attrs

from ..errors import EXIT_TAMPERED, EXIT_USAGE, EscalationError
from .chain import BadLine, canonical, loads_strict, quote, read_lines
from .records import ENGINE, Digested, PolicyFacts, inputs_json, policy_json, time_or_null
from .totals import Totals
from .verify import RecordChecker, VerifyResult, is_sha256, option_problem

MANIFEST_FORMAT = "escalation-audit-manifest/1"
MANIFEST = "manifest.json"
#: The longest manifest read; one this engine writes takes about 250 bytes per partition.
MAX_MANIFEST_BYTES = 64 << 20
#: The fewest bytes a decision or rejected record takes in a part (its `prev` and `hash` alone take 146).
_MIN_RECORD_BYTES = 128

#: The partitioning rules a manifest can name in ``partition_by`` (absent: :data:`BY_CONVERSATION`).
BY_CONVERSATION = "conversation"
BY_CUSTOMER = "customer"
PARTITION_BY = "partition_by"
RULES = (BY_CONVERSATION, BY_CUSTOMER)

#: Which partition of ``count`` owns a conversation bound (finally) to ``customer`` (or None) under the rule
#: ``by``: ``owner(conversation, customer, count, by)``.
Owner = Callable[[str, "str | None", int, str], int]


class AuditFolderError(EscalationError):
    """A folder that must not be replaced by a partitioned audit (one sentence; nothing was changed)."""

    exit_code = EXIT_USAGE


def part_name(index: int) -> str:
    """The file name of partition ``index`` inside the audit folder."""
    return f"part-{index:05d}.jsonl"


def root_hash(final_hashes: Iterable[str]) -> str:
    """SHA-256 of the parts' final hashes (lowercase hex, ASCII) concatenated in partition order."""
    return hashlib.sha256("".join(final_hashes).encode("ascii")).hexdigest()


@attrs.frozen
class PartResult:
    """What the manifest records of one written part, with the part's totals."""

    index: int
    file: str
    records: int
    final_hash: str
    sha256: str
    totals: Totals


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

    def stats(self) -> Totals:
        """The totals, with the violations by rule (for the command line's summary text)."""
        return Totals.of_summary(self.data["summary"], self.by_rule)




def partition_rule(manifest: dict[str, Any]) -> str:
    """The rule a manifest says its replay partitioned by (checked by :func:`check_manifest_shape`)."""
    return str(manifest.get(PARTITION_BY, BY_CONVERSATION))


def part_partition(index: int, count: int, by: str) -> dict[str, Any]:
    """A part header's ``partition``: {index, count}, and ``by`` for the customer rule (the conversation rule's parts never had it)."""
    partition: dict[str, Any] = {"index": index, "count": count}
    if by != BY_CONVERSATION:
        partition["by"] = by
    return partition


def manifest_record(
    policy: PolicyFacts, inputs: Sequence[Digested], as_of: int | None, parts: Sequence[PartResult], by: str = BY_CONVERSATION
) -> dict[str, Any]:
    """The manifest of a partitioned audit whose parts (in partition order) were written, partitioned by the rule ``by``.

    The totals merge the parts' (:meth:`Totals.merge`): a customer whose conversations two
    parts share (the conversation rule) counts once, as in a serial replay's summary.
    """
    totals = Totals()
    for part in parts:
        totals.merge(part.totals)
    extra = {PARTITION_BY: by} if by != BY_CONVERSATION else {}
    return {
        **extra,
        "format": MANIFEST_FORMAT,
        "policy": policy_json(policy),
        "engine": ENGINE,
        "inputs": inputs_json(inputs),
        "as_of": time_or_null(as_of),
        "partitions": [{"file": p.file, "records": p.records, "final_hash": p.final_hash, "sha256": p.sha256} for p in parts],
        "root_hash": root_hash(p.final_hash for p in parts),
        "summary": totals.counts(),
    }


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` into ``folder`` (sorted keys, indented), flushed to disk."""
    data = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    with open(folder / MANIFEST, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


# ---------------------------------------------------------------------------------------------
# Installing the folder


def earlier_audit(target: Path) -> list[str]:
    """The names of the files to remove when replacing ``target``: none when it does not exist or is an
    empty folder; a manifest and its parts when it holds an earlier partitioned audit and nothing else.

    Anything else is refused with AuditFolderError, and nothing is touched: a file, a symbolic
    link, a folder with other files or folders in it, a manifest that is not a valid
    escalation manifest (its format, its partitions, its root hash).
    """
    if not os.path.lexists(target):
        return []
    if target.is_symlink():
        raise AuditFolderError(f"{target} is a symbolic link: give the output folder itself (nothing was changed)")
    if not target.is_dir():
        raise AuditFolderError(f"{target} exists and is not a folder: choose another output folder (nothing was changed)")
    names = sorted(os.listdir(target))
    if not names:
        return []
    try:
        if not stat.S_ISREG(os.lstat(target / MANIFEST).st_mode):
            raise ValueError("the manifest is not a regular file")
        manifest = _parse_manifest(_manifest_bytes(target / MANIFEST))
        check_manifest_shape(manifest, None)  # an audit of another engine version may be replaced too
    except (OSError, ValueError, BadManifest):
        raise AuditFolderError(
            f"{target} is not a partitioned audit folder (it is not empty, and holds no valid {MANIFEST}), so it is not replaced: "
            "choose another output folder (nothing was changed)"
        ) from None
    listed = {MANIFEST, *(entry["file"] for entry in manifest["partitions"])}
    others = [n for n in names if n not in listed or not stat.S_ISREG(os.lstat(target / n).st_mode)]
    if others:
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise AuditFolderError(
            f"{target} holds {quote(others[0])}{more} besides its partitioned audit, so it is not replaced: "
            "choose another output folder (nothing was changed)"
        )
    return names


def check_audit_folder(target: Path) -> None:
    """Refuse, before any work, to replace anything but nothing, an empty folder or an earlier partitioned audit."""
    earlier_audit(target)


def install_audit_folder(staging: Path, target: Path) -> None:
    """Rename the finished staging folder to ``target``, replacing an earlier audit there.

    The folder at ``target`` is checked again (it may have changed during the replay); it is
    renamed aside, the staging folder renamed in its place, and then only the files its
    manifest listed are removed from it. Should anything else have appeared in it in the
    meantime, the renamed folder stays (``.NAME.*.old`` beside ``target``) with that in it.
    """
    fsync_dir(staging)
    names = earlier_audit(target)
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
    fsync_dir(target.parent)


def fsync_dir(folder: Path) -> None:
    """Make a folder's entries (a rename, a new file) durable, where the platform can fsync a folder."""
    with contextlib.suppress(OSError):  # not every platform can fsync a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)




# ---------------------------------------------------------------------------------------------
# Reading and verifying a partitioned audit


def locate(path: str | os.PathLike[str]) -> tuple[Path, Path]:
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
    _, file = locate(path)
    return _parse_manifest(_manifest_bytes(file))


def iter_records(out_dir: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(partition index, record) for every record of every part, in file order (no verification)."""
    folder, _ = locate(out_dir)
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


class BadManifest(EscalationError):
    """What is wrong with a partitioned audit: a sentence, and the line of the file it names (if any)."""

    exit_code = EXIT_TAMPERED

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


class PartChecker(RecordChecker):
    """The record checker for one part: its header names the partition and the manifest's options, its seqs
    ascend (each appearing in one part only), and each of its conversations is one the partition owns.

    Under the conversation rule a decision's own conversation id tells its owner. Under the
    customer rule the owner follows the conversation's final binding, which its first
    decisions may not name yet (it binds late): a conversation is checked at its first
    decision that names a customer, and one that never does at the end of the part, naming
    its first decision's line; ``places`` (shared by the parts) holds the part each
    conversation was first seen in, so that none has records in two parts.
    """

    def __init__(self, engine: str, index: int, manifest: dict[str, Any], seen: _Seen, owner: Owner, places: dict[str, int] | None = None) -> None:
        super().__init__(engine, "part")
        self.index = index
        self.count = len(manifest["partitions"])
        self.manifest = manifest
        self.seen = seen
        self.owner = owner
        self.by = partition_rule(manifest)
        self.places: dict[str, int] = {} if places is None else places
        self.unbound: dict[str, int] = {}  # customer rule: conversation -> the line of its first decision, until one names a customer

    def check_header(self, record: dict[str, Any], number: int) -> None:
        super().check_header(record, number)
        partition = record.get("partition")
        expected = part_partition(self.index, self.count, self.by)
        if not _same(partition, expected):
            raise BadLine(number, f"the header names partition {quote(partition)}, not {expected!r}")
        for key in ("policy", "inputs", "as_of", "idle_horizon"):
            if (key in record) != (key in self.manifest) or not _same(record.get(key), self.manifest.get(key)):
                raise BadLine(number, f"the header's `{key}` differs from the manifest's")

    def check_seq(self, seq: Any, number: int) -> None:
        if type(seq) is not int or seq <= self.seq:
            raise BadLine(number, f"seq {quote(seq)} does not follow seq {self.seq} (records are out of order)")
        self.seq = seq
        problem = self.seen.add(seq)
        if problem is not None:
            raise BadLine(number, problem)

    def check_decision(self, record: dict[str, Any], number: int) -> None:
        conversation = record["conversation"]
        if self.by == BY_CONVERSATION:
            owner = self.owner(conversation, None, self.count, self.by)
            if owner != self.index:
                raise BadLine(number, f"conversation {quote(conversation)} belongs to partition {owner}, not this one")
            return
        if conversation not in self.conversations:  # its first decision in this part
            place = self.places.setdefault(conversation, self.index)
            if place != self.index:
                raise BadLine(number, f"conversation {quote(conversation)} also has records in partition {place}: a conversation's records are all in one part")
            self.unbound[conversation] = number
        customer = record.get("customer")
        if customer is not None and self.unbound.pop(conversation, None) is not None:
            owner = self.owner(conversation, customer, self.count, self.by)
            if owner != self.index:
                raise BadLine(number, f"conversation {quote(conversation)} is bound to customer {quote(customer)}, whose conversations belong to partition {owner}, not this one")

    def finish(self) -> None:
        super().finish()
        for conversation, number in self.unbound.items():  # never bound: it goes by its own id
            owner = self.owner(conversation, None, self.count, self.by)
            if owner != self.index:
                raise BadLine(number, f"conversation {quote(conversation)} is bound to no customer and belongs to partition {owner}, not this one")


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON, types included (``true`` is not ``1``); both come from parsed, encodable JSON."""
    return canonical(a) == canonical(b)


def check_manifest_shape(m: dict[str, Any], engine: str | None) -> None:
    """BadManifest unless ``m`` has the shape of a manifest this engine writes (of version ``engine``, unless None)."""
    if m.get("format") != MANIFEST_FORMAT:
        raise BadManifest(f"not an {MANIFEST_FORMAT} manifest")
    if engine is not None and m.get("engine") != engine:
        raise BadManifest(f"the audit was written by {quote(m.get('engine'))}, and this is {engine!r}: verify it with that version")
    parts = m.get("partitions")
    if type(parts) is not list or not parts:
        raise BadManifest("the manifest lists no partitions")
    for i, entry in enumerate(parts):
        if type(entry) is not dict or entry.get("file") != part_name(i):
            raise BadManifest(f"partition {i} of the manifest is not {part_name(i)}")
        if type(entry.get("records")) is not int or not all(is_sha256(entry.get(k)) for k in ("final_hash", "sha256")):
            raise BadManifest(f"the manifest's entry for {part_name(i)} lacks `records`, `final_hash` or `sha256`")
    summary = m.get("summary")
    if type(summary) is not dict or type(summary.get("records")) is not int or summary["records"] < 0:
        raise BadManifest("the manifest has no summary with a record count")
    problem = option_problem(m, "manifest")
    if problem is not None:
        raise BadManifest(problem)
    if PARTITION_BY in m and m[PARTITION_BY] not in RULES:
        raise BadManifest(f"the manifest's `{PARTITION_BY}` is {quote(m[PARTITION_BY])}, neither {BY_CONVERSATION!r} nor {BY_CUSTOMER!r}")
    if "idle_horizon" in m:
        raise BadManifest("the manifest records an `idle_horizon`, which a distributed replay never uses")
    if not is_sha256(m.get("root_hash")):
        raise BadManifest("the manifest has no root hash")
    if root_hash(p["final_hash"] for p in parts) != m["root_hash"]:
        raise BadManifest("`root_hash` does not match the parts' final hashes (the manifest was edited)")


def verify_manifest(path: str | os.PathLike[str], owner: Owner, engine: str = ENGINE) -> VerifyResult:
    """Check a partitioned audit: the manifest's root hash, every part (chain, file SHA-256,
    final hash, header, seq order and ownership, fields, counts), that every input record
    appears in exactly one part, and the totals. ``path`` is the folder or its manifest;
    ``owner`` is the ownership rule of the replay, asked with the rule the manifest names
    (:func:`partition_rule`). The totals count a customer once however many parts hold
    its conversations (:meth:`Totals.merge` of the parts' counted names). A
    failure names the first bad part and line. ``header`` of the result is the manifest,
    ``summary`` its totals. Memory is bounded whatever the files hold (the manifest is read
    up to ``MAX_MANIFEST_BYTES``, each line of a part up to ``MAX_RECORD_BYTES``). Raises
    OSError when the manifest itself cannot be read."""
    folder, file = locate(path)
    where = str(file)
    try:
        try:
            manifest = _parse_manifest(_manifest_bytes(file))  # OSError goes to the caller
        except ValueError as err:
            raise BadManifest(str(err)) from None
        check_manifest_shape(manifest, engine)
        parts = manifest["partitions"]
        claimed = manifest["summary"]["records"]
        room = sum((folder / p["file"]).stat().st_size for p in parts if (folder / p["file"]).is_file())
        if claimed * _MIN_RECORD_BYTES > room:  # refuse before allocating for them
            raise BadManifest(f"the manifest counts {quote(claimed)} records, more than its parts can hold")
        seen = _Seen(claimed)
        places: dict[str, int] = {}  # the customer rule: each conversation's part
        sums = Totals()
        for index, entry in enumerate(parts):
            part = folder / entry["file"]
            where = str(part)
            if not part.is_file():
                raise BadManifest("the part is missing")
            with part.open("rb") as fh:
                lines = _Lines(fh)
                checker = PartChecker(engine, index, manifest, seen, owner, places)
                try:
                    checker.check_all(lines)
                    for _ in lines:  # unreachable after a summary, but keep the file hash honest
                        pass
                except BadLine as bad:
                    raise BadManifest(bad.message, bad.line) from None
            if checker.final != entry["final_hash"]:
                raise BadManifest(f"the part's final hash is {checker.final}, the manifest says {entry['final_hash']}")
            if checker.lines != entry["records"]:
                raise BadManifest(f"the part holds {checker.lines} records, the manifest says {entry['records']}")
            if lines.digest.hexdigest() != entry["sha256"]:
                raise BadManifest("the file's SHA-256 differs from the manifest's")
            sums.merge(checker.totals)
        where = str(file)
        totals = sums.counts()
        if not _same(totals, manifest["summary"]):
            bad_keys = sorted(k for k in totals if k not in manifest["summary"] or not _same(totals[k], manifest["summary"][k]))
            raise BadManifest(f"the manifest's summary differs from the parts' totals ({', '.join(bad_keys or sorted(set(manifest['summary']) - set(totals)))})")
        if seen.count != claimed:
            raise BadManifest(f"the parts hold {seen.count} input records, the manifest counts {claimed}: records are missing")
    except BadManifest as fail:
        prefix = f"{where}:{fail.line}: " if fail.line else f"{where}: "
        return VerifyResult(False, prefix + fail.message, fail.line)
    return VerifyResult(True, "intact", None, manifest, manifest["summary"])


