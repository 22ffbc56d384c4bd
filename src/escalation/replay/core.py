"""Event files -> audit records: the serial replay (interfaces.md §1–2)."""

from __future__ import annotations

import functools
import hashlib
import heapq
import io
import os
import pickle
import sqlite3
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, ParamSpec, TypeVar

import attrs

from ..compile import CompiledPolicy
from ..errors import EXIT_REJECTED, EXIT_USAGE, EscalationError, EventError
from ..lang import DEFAULT_LIMITS, US, Limits, format_time
from ..runtime import Decision, Event, Interaction, Line, admit_conversation, decode_line, iter_lines, validate
from ..version import __version__

ENGINE = f"escalation {__version__}"


class InputError(EscalationError):
    """An input file cannot be read."""

    exit_code = EXIT_USAGE


class SpillError(EscalationError):
    """The on-disk store of ended conversations failed (a full disk, an unwritable temporary folder)."""

    exit_code = EXIT_USAGE


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _spill_error(err: BaseException) -> SpillError:
    where = os.environ.get("SQLITE_TMPDIR") or tempfile.gettempdir()
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return SpillError(f"the replay could not keep its ended conversations on disk in {where}: {reason}")


def _guarded(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """A :class:`Spill` method whose SQLite or OS errors become :class:`SpillError`."""

    @functools.wraps(method)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except (sqlite3.Error, OSError) as err:
            raise _spill_error(err) from None

    return guarded


def _guarded_iter(method: Callable[_P, Iterator[_R]]) -> Callable[_P, Iterator[_R]]:
    """A :class:`Spill` generator whose SQLite or OS errors, while it is iterated, become :class:`SpillError`."""

    @functools.wraps(method)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> Iterator[_R]:
        try:
            yield from method(*args, **kwargs)
        except (sqlite3.Error, OSError) as err:
            raise _spill_error(err) from None

    return guarded


class StrictStop(EscalationError):
    """`--strict`: the first rejected record stops the replay."""

    exit_code = EXIT_REJECTED

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: rejected: {reason}")
        self.source = source
        self.reason = reason


#: The read size when an input is digested or copied.
_BLOCK = 1 << 20
#: The buffer through which the replay reads an input (as fast as any larger one, and it stays in the cache).
_BUFFER = 1 << 16


@attrs.define
class Input:
    """One input as given on the command line: a regular file, or a private copy of anything else.

    ``sha256`` is the digest the header records. A regular file is read twice: once for
    the digest, and again by the replay (in each process of `--jobs`), which digests
    the bytes it reads and checks, when it reaches the end, that they are the bytes
    digested and that the file's identity, size and modification time are as they were
    (``stamp``); otherwise it raises :class:`InputError`, so that no log can name one
    content and hold the records of another. Anything else (standard input, a pipe such as
    ``<(zcat x.gz)`` or ``/dev/stdin``, a named FIFO, a device) can be read only once: it
    is copied to ``spool``, a private temporary file with no name (it disappears when it
    is closed or the process ends), and digested from the bytes copied.
    """

    path: str
    file: Path
    sha256: str
    size: int | None = None
    stamp: tuple[int, int, int, int] | None = None  # (st_dev, st_ino, st_size, st_mtime_ns) once digested
    spool: IO[bytes] | None = attrs.field(default=None, eq=False, repr=False)

    def open(self) -> io.BufferedReader:
        """A binary stream of the bytes to replay; at their end it raises InputError if they are not those digested."""
        if self.spool is not None:
            return io.BufferedReader(_CheckedReader(self, self.spool.fileno(), own=False), _BUFFER)
        try:
            fd = os.open(self.file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as err:
            raise InputError(f"cannot read {self.path}: {err.strerror or err}") from None
        if self.stamp is not None:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != self.stamp[:2]:
                os.close(fd)
                raise InputError(_changed(self.path))
        return io.BufferedReader(_CheckedReader(self, fd, own=True), _BUFFER)

    def finished(self, digest: str, size: int, fd: int) -> None:
        """The replay has read ``size`` bytes whose SHA-256 is ``digest``: they must be those digested."""
        if digest != self.sha256 or (self.size is not None and size != self.size):
            raise InputError(_changed(self.path))
        if self.stamp is not None:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != self.stamp:
                raise InputError(_changed(self.path))

    def discard(self) -> None:
        """Close (and so delete) the private copy, if there is one; safe to call again."""
        if self.spool is not None:
            self.spool.close()


def _changed(path: str) -> str:
    return f"{path} changed while it was being replayed: its bytes, size or modification time are no longer those digested for the header"


class _CheckedReader(io.RawIOBase):
    """Positional reads of a descriptor, digested; at the end, :meth:`Input.finished` checks them.

    Positional (``pread``), so that the processes of `--jobs`, which inherit a spool's
    descriptor, each read it from the start without sharing a file offset.
    """

    def __init__(self, inp: Input, fd: int, own: bool) -> None:
        super().__init__()
        self._inp = inp
        self._fd = fd
        self._own = own
        self._pos = 0
        self._digest = hashlib.sha256()
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        view = memoryview(buffer).cast("B")
        if _preadv is not None:
            n: int = _preadv(self._fd, [view], self._pos)
        else:  # pragma: no cover - platforms without preadv
            data = os.pread(self._fd, len(view), self._pos) if hasattr(os, "pread") else _seek_read(self._fd, len(view), self._pos)
            n = len(data)
            view[:n] = data
        if n:
            self._pos += n
            self._digest.update(view[:n])
        else:
            self._done = True
            self._inp.finished(self._digest.hexdigest(), self._pos, self._fd)
        return n

    def close(self) -> None:
        if not self.closed and self._own:
            os.close(self._fd)
        super().close()


_preadv = getattr(os, "preadv", None)


def _seek_read(fd: int, n: int, pos: int) -> bytes:  # pragma: no cover - platforms without pread
    os.lseek(fd, pos, os.SEEK_SET)
    return os.read(fd, n)


def _read_stdin() -> IO[bytes]:
    """Standard input as a binary stream, or InputError when it is closed (``<&-``)."""
    stream = getattr(sys.stdin, "buffer", None) if sys.stdin is not None else None
    if stream is None:
        raise InputError("cannot read standard input (`-`): it is closed")
    return stream  # type: ignore[no-any-return]


def _spool(source: IO[bytes] | int, path: str, spool_dir: str | None) -> Input:
    """Copy a stream (or descriptor) that can be read only once to a private nameless file, digesting it."""
    try:
        spool = tempfile.TemporaryFile(prefix="escalation-spool-", dir=spool_dir)  # noqa: SIM115
    except OSError as err:
        raise InputError(f"cannot copy {path} to a temporary file in {spool_dir or tempfile.gettempdir()}: {err.strerror or err}") from None
    digest = hashlib.sha256()
    size = 0
    try:
        while True:
            try:
                block = os.read(source, _BLOCK) if isinstance(source, int) else source.read(_BLOCK)
            except OSError as err:
                raise InputError(f"cannot read {path}: {err.strerror or err}") from None
            if not block:
                break
            digest.update(block)
            size += len(block)
            try:
                spool.write(block)
            except OSError as err:
                raise InputError(f"cannot copy {path} to a temporary file: {err.strerror or err}") from None
        try:
            spool.flush()
        except OSError as err:
            raise InputError(f"cannot copy {path} to a temporary file: {err.strerror or err}") from None
    except BaseException:
        spool.close()
        raise
    return Input(path, Path(path), digest.hexdigest(), size, None, spool)


def _digest_file(fd: int, path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    try:
        while block := os.read(fd, _BLOCK):
            digest.update(block)
            size += len(block)
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    return digest.hexdigest(), size


def open_input(path: str, spool_dir: str | None = None) -> Input:
    """Digest one input (``-`` is standard input); what is not a regular file is spooled, read once."""
    if path == "-":
        return _spool(_read_stdin(), path, spool_dir)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))  # a FIFO waits here for its writer
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"cannot read {path}: it is a folder, not a file of events")
        if not stat.S_ISREG(st.st_mode):
            return _spool(fd, path, spool_dir)
        digest, size = _digest_file(fd, path)
        st = os.fstat(fd)
        return Input(path, Path(path), digest, size, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    finally:
        os.close(fd)


def open_inputs(paths: list[str], spool_dir: str | None = None) -> list[Input]:
    """Digest every input first (the header needs them); what is not a regular file is spooled (see :class:`Input`)."""
    out: list[Input] = []
    try:
        for path in paths:
            out.append(open_input(path, spool_dir))
    except BaseException:
        discard_inputs(out)
        raise
    return out


def discard_inputs(inputs: list[Input]) -> None:
    """Delete the private copies of the inputs that have one."""
    for inp in inputs:
        inp.discard()


def decision_record(line: Line, conversation: str, raw: dict[str, Any], d: Decision) -> dict[str, Any]:
    """The audit record of one accepted event (sequences may be tuples; they encode as arrays)."""
    stamp = raw.get("time")
    if not (type(stamp) is str and len(stamp) == 20 and stamp[10] == "T" and stamp[19] == "Z"):  # already canonical UTC?
        stamp = format_time(d.time)
    return {
        "kind": "decision",
        "seq": line.seq,
        "source": line.source,
        "conversation": conversation,
        "time": stamp,
        "type": d.type,
        "event": raw,
        "violations": [v.to_json() for v in d.violations] if d.violations else [],
        "fulfilled": d.fulfilled,
        "created": [ob.to_json() for ob in d.created] if d.created else [],
        "fired": d.fired,
        "active": d.active,
        "permitted": d.permitted_actions,
        "forbidden": d.forbidden_actions,
    }


def header_record(
    policy: CompiledPolicy, inputs: list[Input], as_of: int | None, idle_horizon: int | None = None
) -> dict[str, Any]:
    """The first record; it names every option that changes the output (``idle_horizon`` only when used)."""
    header: dict[str, Any] = {
        "kind": "header",
        "format": "escalation-audit/1",
        "policy": {"name": policy.name, "version": policy.version, "sha256": policy.sha256},
        "engine": ENGINE,
        "inputs": [{"path": i.path, "sha256": i.sha256} for i in inputs],
        "as_of": format_time(as_of) if as_of is not None else None,
    }
    if idle_horizon is not None:
        header["idle_horizon"] = idle_horizon // US
    return header


@attrs.define
class Stats:
    records: int = 0
    events: int = 0
    rejected: int = 0
    violations: int = 0
    by_kind: dict[str, int] = attrs.field(factory=lambda: {"forbidden_action": 0, "missed_deadline": 0, "unfulfilled": 0})
    by_rule: dict[str, int] = attrs.field(factory=dict)
    open_obligations: int = 0
    conversations: int = 0

    def add(self, other: Stats) -> None:
        """Add another replay's totals (the processes of `--jobs` replay disjoint conversations)."""
        for key in ("records", "events", "rejected", "violations", "open_obligations", "conversations"):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        for kind, n in other.by_kind.items():
            self.by_kind[kind] = self.by_kind.get(kind, 0) + n
        for rule, n in other.by_rule.items():
            self.by_rule[rule] = self.by_rule.get(rule, 0) + n

    def summary(self) -> dict[str, Any]:
        """The `summary` record of these totals."""
        return {
            "kind": "summary",
            "records": self.records,
            "events": self.events,
            "rejected": self.rejected,
            "conversations": self.conversations,
            "violations": self.violations,
            "by_kind": dict(self.by_kind),
            "open_obligations": self.open_obligations,
        }

    def count(self, violations: list[dict[str, Any]]) -> None:
        for v in violations:
            self.violations += 1
            self.by_kind[v["kind"]] += 1
            self.by_rule[v["rule"]] = self.by_rule.get(v["rule"], 0) + 1


#: With --idle-horizon, idle conversations are looked for every this many accepted events.
_SWEEP_EVERY = 1024

#: The event after which a conversation is written out of memory (parked), and after each later one.
END = "interaction.end"


class Spill:
    """Conversations written out of memory, and early close records: a private SQLite database on disk.

    ``sqlite3.connect("")`` opens a temporary database that SQLite deletes when it is
    closed (on POSIX the file is unlinked as soon as it is opened), so nothing is left
    behind even if the process is killed. Rows hold pickles written and read by this
    process only.
    """

    @_guarded
    def __init__(self) -> None:
        self.db = sqlite3.connect("", check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        # parked: 1 while the state resumes as it was; 0 once retired (by --idle-horizon).
        # owing: 1 when a parked conversation has pending obligations (it has a close record to come).
        self.db.execute(
            "CREATE TABLE away (conversation TEXT PRIMARY KEY, parked INTEGER, owing INTEGER, ord INTEGER, last_time INTEGER, entry BLOB) WITHOUT ROWID"
        )
        self.db.execute("CREATE INDEX away_idle ON away (parked, last_time)")
        self.db.execute("CREATE INDEX away_owing ON away (parked, owing, ord)")
        self.db.execute("CREATE TABLE closes (ord INTEGER, k INTEGER, record BLOB, PRIMARY KEY (ord, k)) WITHOUT ROWID")
        self.closes = 0

    @_guarded
    def put(self, conversation: str, parked: bool, owing: bool, last_time: int, entry: tuple[Any, ...]) -> None:
        blob = pickle.dumps(entry, pickle.HIGHEST_PROTOCOL)
        row = (conversation, int(parked), int(owing), entry[0], last_time, blob)
        self.db.execute("INSERT OR REPLACE INTO away VALUES (?, ?, ?, ?, ?, ?)", row)

    @_guarded
    def get(self, conversation: str) -> tuple[bool, int, tuple[Any, ...]] | None:
        """(parked, last time, entry) of a conversation out of memory, or None."""
        row = self.db.execute("SELECT parked, last_time, entry FROM away WHERE conversation = ?", (conversation,)).fetchone()
        return None if row is None else (bool(row[0]), row[1], pickle.loads(row[2]))

    @_guarded
    def forget(self, conversation: str) -> None:
        """The conversation is back in memory: its row would only go stale (and be counted at the next sweep)."""
        self.db.execute("DELETE FROM away WHERE conversation = ?", (conversation,))

    @_guarded
    def owing_idle(self, cutoff: int) -> list[tuple[str, tuple[Any, ...]]]:
        """--idle-horizon: the parked conversations that owe something and have been idle since before ``cutoff``."""
        rows = self.db.execute("SELECT conversation, entry FROM away WHERE parked = 1 AND owing = 1 AND last_time < ?", (cutoff,))
        return [(c, pickle.loads(blob)) for c, blob in rows.fetchall()]

    @_guarded
    def retire_idle(self, cutoff: int) -> int:
        """--idle-horizon: parked conversations idle since before ``cutoff`` come back fresh; returns how many."""
        return self.db.execute("UPDATE away SET parked = 0, owing = 0 WHERE parked = 1 AND last_time < ?", (cutoff,)).rowcount

    @_guarded_iter
    def iter_owing(self) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """At the end: the parked conversations that owe something, in order of first appearance."""
        for conversation, blob in self.db.execute("SELECT conversation, entry FROM away WHERE parked = 1 AND owing = 1 ORDER BY ord"):
            yield conversation, pickle.loads(blob)

    @_guarded
    def add_close(self, order: int, record: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO closes VALUES (?, ?, ?)", (order, self.closes, pickle.dumps(record, pickle.HIGHEST_PROTOCOL))
        )
        self.closes += 1

    @_guarded_iter
    def iter_closes(self) -> Iterator[tuple[int, int, dict[str, Any]]]:
        for order, k, blob in self.db.execute("SELECT ord, k, record FROM closes ORDER BY ord, k"):
            yield order, k, pickle.loads(blob)

    @_guarded
    def close(self) -> None:
        self.db.close()


# What Spill.put stores for a conversation that is not in memory (``entry``):
#   (order, next_n, frozen)  ``frozen`` is ``Interaction.frozen()`` while it is parked, and it resumes as
#                            it was; None once retired by --idle-horizon (it comes back fresh, its
#                            obligation numbers going on from next_n). ``order``: its first accepted seq.


class Replayer:
    """Feeds records to per-conversation state and yields audit records (without prev/hash).

    Memory holds the conversations that are going on. A conversation that has seen
    ``interaction.end`` is parked after that event and after each later one: its state
    (pending obligations included) is written to a :class:`Spill` and freed, read back
    if the conversation has a later event, and its close record is computed from the
    spill at the end, so the output is exactly that of keeping it (``park=False`` keeps
    everything in memory, for the tests that check this). ``--idle-horizon`` also frees
    idle conversations, and changes the output (docs/scaling.md). A conversation's
    order key is the ``seq`` of its first accepted event: close records are sorted by it.
    """

    def __init__(
        self,
        policy: CompiledPolicy,
        as_of: int | None = None,
        strict: bool = False,
        idle_horizon: int | None = None,
        limits: Limits = DEFAULT_LIMITS,
        park: bool = True,
    ) -> None:
        self.policy = policy
        self.limits = limits
        self.as_of = as_of
        self.strict = strict
        self.idle_horizon = idle_horizon
        self.park = park and END in policy.vocabulary
        self.conversations: dict[str, Interaction] = {}
        self.stats = Stats()
        self.order: dict[str, int] = {}  # conversation in memory -> seq of its first accepted event
        self.seen = 0  # conversations with at least one accepted event
        self.spill: Spill | None = None  # created when first needed
        self.parked = 0  # conversations parked so far (a conversation may be parked more than once)
        self.parked_now = 0  # conversations parked and not retired: they count as open for max_open_conversations
        self.latest = 0
        self.until_sweep = _SWEEP_EVERY
        self.finished = False

    def _spill(self) -> Spill:
        if self.spill is None:
            self.spill = Spill()
        return self.spill

    def record(self, line: Line, before_feed: Callable[[Line, Event, Interaction], None] | None = None) -> dict[str, Any]:
        """One input line -> its decision or rejected record; ``before_feed`` sees the state an event meets."""
        self.stats.records += 1
        away: tuple[bool, int, tuple[Any, ...]] | None = None
        try:
            obj = decode_line(line.data, self.limits)
            event = validate(obj, self.policy.vocabulary)
            inter = self.conversations.get(event.conversation)
            if inter is not None:
                last = inter.last_time
            else:
                away = self.spill.get(event.conversation) if self.spill is not None else None
                if away is None or not away[0]:  # new, or back after --idle-horizon closed it
                    admit_conversation(len(self.conversations) + self.parked_now, self.limits)
                last = None if away is None else away[1]
            if last is not None and event.time < last:
                raise EventError(
                    f"`time` {format_time(event.time)} is earlier than the previous event of conversation {event.conversation!r} ({format_time(last)})"
                )
        except EventError as err:
            reason = str(err)
            if self.strict:
                raise StrictStop(line.source, reason) from None
            self.stats.rejected += 1
            return {
                "kind": "rejected",
                "seq": line.seq,
                "source": line.source,
                "reason": reason,
                "raw": line.data.decode("utf-8", errors="replace"),
            }
        ended = event.type == END
        if inter is None:
            inter = self._bring_in(event.conversation, line.seq, away)
            ended = ended or (away is not None and away[0])  # it had ended, and was parked
        if before_feed is not None:
            before_feed(line, event, inter)
        decision = inter.feed(event)
        self.stats.events += 1
        record = decision_record(line, event.conversation, obj, decision)
        if decision.violations:
            self.stats.count(record["violations"])
        if self.idle_horizon is not None:
            self.latest = max(self.latest, event.time)
            self.until_sweep -= 1
            if self.until_sweep <= 0:
                self.until_sweep = _SWEEP_EVERY
                self.sweep()
        if ended and self.park and event.conversation in self.conversations:
            self._park(event.conversation, inter)
        return record

    def _bring_in(self, conversation: str, seq: int, away: tuple[bool, int, tuple[Any, ...]] | None) -> Interaction:
        """The state of a conversation not in memory: new, parked or retired."""
        if away is None:
            inter = Interaction(self.policy, conversation)
            order = seq
            self.seen += 1
        else:
            assert self.spill is not None
            self.spill.forget(conversation)
            parked, _, (order, next_n, frozen) = away
            if parked:
                inter = Interaction.thawed(self.policy, conversation, frozen)
                self.parked_now -= 1
            else:  # retired by --idle-horizon (in memory or while parked): fresh state, numbering goes on
                inter = Interaction(self.policy, conversation)
                inter.next_n = next_n
        self.conversations[conversation] = inter
        self.order[conversation] = order
        return inter

    def _park(self, conversation: str, inter: Interaction) -> None:
        del self.conversations[conversation]
        order = self.order.pop(conversation)
        self._spill().put(conversation, True, bool(inter.pending), inter.last_time or 0, (order, inter.next_n, inter.frozen()))
        self.parked += 1
        self.parked_now += 1

    def sweep(self) -> None:
        """--idle-horizon: close and free the conversations with no event within the horizon of the latest time."""
        assert self.idle_horizon is not None
        cutoff = self.latest - self.idle_horizon
        if self.spill is not None and self.parked_now:  # parked ones are idle too: they would have been closed in memory
            for conversation, entry in self.spill.owing_idle(cutoff):
                record = self._close(conversation, Interaction.thawed(self.policy, conversation, entry[2]))
                if record is not None:
                    self.spill.add_close(entry[0], record)
            self.parked_now -= self.spill.retire_idle(cutoff)
        idle = [c for c, inter in self.conversations.items() if inter.last_time is not None and inter.last_time < cutoff]
        if not idle:
            return
        spill = self._spill()
        for conversation in idle:
            inter = self.conversations.pop(conversation)
            order = self.order.pop(conversation)
            record = self._close(conversation, inter)
            if record is not None:
                spill.add_close(order, record)
            spill.put(conversation, False, False, inter.last_time or 0, (order, inter.next_n, None))

    def _close(self, conversation: str, inter: Interaction) -> dict[str, Any] | None:
        violations, still_open = inter.close(self.as_of)
        if not violations and not still_open:
            return None
        record = {
            "kind": "close",
            "conversation": conversation,
            "as_of": format_time(self.as_of) if self.as_of is not None else None,
            "violations": [v.to_json() for v in violations],
            "open": [ob.to_json() for ob in still_open],
        }
        self.stats.count(record["violations"])  # type: ignore[arg-type]
        self.stats.open_obligations += len(still_open)
        return record

    def keyed_closes(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(order key, close record) in order: by the conversations' first accepted event, early ones first at a tie.

        Conversations still parked at the end are closed from the spill. The closes end
        the replay (they count their violations and open obligations): a second call
        raises RuntimeError.
        """
        if self.finished:
            raise RuntimeError("the close records of this replay were already taken")
        self.finished = True
        late = sorted(self.conversations.items(), key=lambda kv: self.order[kv[0]])
        late_closes = ((self.order[c], 1, record) for c, inter in late if (record := self._close(c, inter)) is not None)
        try:
            if self.spill is None:
                for order, _, record in late_closes:
                    yield order, record
            else:
                spill = self.spill
                early = ((order, 0, record) for order, _, record in spill.iter_closes())
                parked = (
                    (entry[0], 1, record)
                    for c, entry in spill.iter_owing()
                    if (record := self._close(c, Interaction.thawed(self.policy, c, entry[2]))) is not None
                )
                for order, _, record in heapq.merge(early, late_closes, parked, key=lambda x: (x[0], x[1])):
                    yield order, record
        finally:
            self.close()

    def close(self) -> None:
        """Release the spill database (the replay needs it no more); safe to call again."""
        if self.spill is not None:
            self.spill.close()
            self.spill = None

    def closes(self) -> Iterator[dict[str, Any]]:
        """Close records in order of the conversations' first appearance (early ones from --idle-horizon first at a tie)."""
        for _, record in self.keyed_closes():
            yield record

    def summary(self) -> dict[str, Any]:
        self.stats.conversations = self.seen
        return self.stats.summary()


def replay_records(
    policy: CompiledPolicy,
    inputs: list[Input],
    as_of: int | None = None,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
    replayer: Replayer | None = None,
    idle_horizon: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Every audit record of a replay, in order: header, one per input record, closes, summary."""
    r = replayer or Replayer(policy, as_of, strict, idle_horizon)
    yield header_record(policy, inputs, as_of, r.idle_horizon)
    seq = 1
    for inp in inputs:
        with inp.open() as fh:
            for line in iter_lines(inp.path, fh, seq, r.limits):
                yield r.record(line)
                seq = line.seq + 1
                if progress is not None:
                    progress(len(line.data) + 1)
    yield from r.closes()
    yield r.summary()


def write_log(records: Iterator[dict[str, Any]], out: IO[bytes]) -> str:
    """Chain and write records; returns the last hash."""
    from ..audit.chain import AuditWriter

    writer = AuditWriter(out)
    for record in records:
        writer.write(record)
    return writer.prev
