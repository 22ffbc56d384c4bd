"""`replay --jobs N`: the same audit log as a serial replay, computed by N processes.

The records are split by conversation: the ownership rule of :mod:`escalation.replay.partition`
(:func:`~escalation.replay.partition.slot` of the line's conversation key) decides which
process handles a record, so all of a conversation's records meet the same
state and each process's decisions are exactly the serial ones.

The parent is one of the N processes. It forks N - 1 workers, which read all the
inputs and handle the records they own. A worker sends its records to the parent a
block of :data:`BLOCK` input lines at a time, each encoded with placeholder ``prev``
and ``hash`` fields; worker 1 also sends, with each block, which process owns each
line, and the lines the parent owns, so that the parent reads and scans no input.
The parent replays its own records and writes every record in input order,
completing the hash chain of the workers' (a byte splice and one SHA-256 each): the
only sequential work. Since the chain costs it time, the parent owns fewer
conversations than a worker (:func:`~escalation.replay.partition.parent_share`). Close records are merged by each
conversation's first accepted record, as in a serial replay. Workers are forked, so
they share the compiled policy.

When the policy reads customer history (language.md §9), admission depends on other
conversations (a customer's time order) and a conversation may bind late, so the parent
first runs :func:`~escalation.replay.partition.admission_pass` over the whole input
(interfaces.md §2): every line's owner is then the slot of
:func:`~escalation.replay.partition.owner_key` (the customer's key for a bound
conversation), the forked workers inherit that table, and the parent writes the records
the first pass rejected (it owns them). Each customer's conversations meet one process,
whose own admission then accepts exactly the lines the first pass accepted.

Where a worker cannot see what the serial replay sees, the replay runs serially
instead, so the log is still the serial one: when the conversations of the run
reach the ``max_open_conversations`` limit (which counts every process's), and on
platforms without ``fork``.
"""

from __future__ import annotations

import array
import contextlib
import heapq
import multiprocessing
import os
import pickle
import queue
import signal
import struct
import threading
from typing import IO, Any

from ..audit import AuditWriter, Totals, engine_canonical, header_record, placeholder_record, rejected_record, write_log
from ..compile import CompiledPolicy
from ..errors import EXIT_USAGE, EscalationError
from ..lang import DEFAULT_LIMITS, Limits
from ..runtime import Line
from ..streams import Input, numbered_lines
from .core import Replayer
from .customers import reads_customer_history
from .partition import admission_pass, conversation_key, parent_share, slot
from .serial import replay_records

#: Input lines per message from a worker to the parent.
BLOCK = 1024
#: Blocks a worker may have replayed and not yet handed to the parent (besides what the pipe holds).
_AHEAD = 32
_HEAD = struct.Struct("<IQ")  # a block from worker 1: lines in the block, bytes of the parent's lines
_N = struct.Struct("<I")  # a block from another worker: lines in the block


class ParallelError(EscalationError):
    """A worker process of `--jobs` failed."""

    exit_code = EXIT_USAGE


_DIFFERENT = "the replay's processes read different input (was an input file changed during the replay?)"


# The policy and the job description reach forked workers through this global.
_JOB: dict[str, Any] = {}


def _widen(fd: int) -> None:
    """Give a pipe room for a few blocks (Linux), so that a worker seldom waits for the parent."""
    with contextlib.suppress(ImportError, OSError):
        import fcntl

        setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
        if setpipe is not None:
            fcntl.fcntl(fd, setpipe, 1 << 20)


def _send_all(outbox: queue.Queue[bytes | None], conn: Any) -> None:
    """A worker's sending thread: the worker goes on replaying while the parent is busy.

    If the parent is gone (the pipe is closed), there is no one to replay for: the
    worker process ends at once, rather than wait for ever on a full outbox.
    """
    while (message := outbox.get()) is not None:
        try:
            conn.send_bytes(message)
        except OSError:
            os._exit(EXIT_PARENT_GONE)


#: A worker's exit code when its parent went away during the replay.
EXIT_PARENT_GONE = 70


def _failure(index: int, err: BaseException) -> bytes:
    """The message that carries a worker's exception to the parent (wrapped unless it is one users expect)."""
    if not isinstance(err, (EscalationError, OSError, KeyboardInterrupt)):
        err = ParallelError(f"replay worker {index} failed: {type(err).__name__}: {err}")
    try:
        payload = pickle.dumps(err, pickle.HIGHEST_PROTOCOL)
        pickle.loads(payload)
    except Exception:
        payload = pickle.dumps(ParallelError(f"replay worker {index} failed: {type(err).__name__}: {err}"))
    return b"X" + payload


def _work(index: int, conn: Any) -> None:
    """A worker: replay the records it owns; send them a block at a time, then its closes and totals.

    Every block message starts with the number of lines in the block, which the parent
    checks. Worker 1 also reads for the parent: with each block it sends the slot of
    every line and the lines the parent owns (input index, line number, bytes), so that
    the parent neither reads nor scans the input. Everything is sent by one thread, the
    sender, so that messages never interleave.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent ends its workers with SIGTERM: at once, no clean-up to run
    for fd in _JOB.get("receivers", ()):  # so that a pipe has no reader left once the parent is gone
        with contextlib.suppress(OSError):
            os.close(fd)
    outbox: queue.Queue[bytes | None] = queue.Queue(maxsize=_AHEAD)
    sender = threading.Thread(target=_send_all, args=(outbox, conn), daemon=True)
    sender.start()
    send = outbox.put
    try:
        job = _JOB
        jobs: int = job["jobs"]
        share: int = job["share"]
        limits: Limits = job["limits"]
        r = Replayer(job["policy"], job["as_of"], limits=limits)
        reader = index == 1
        bodies: list[bytes] = []
        slots = bytearray()
        where = array.array("q")
        theirs: list[bytes] = []
        seq = 1
        in_block = 0

        def flush() -> None:
            body = b"\n".join(bodies)
            if reader:
                lines = b"\n".join(theirs)
                send(b"".join((b"B", _HEAD.pack(in_block, len(lines)), slots, where.tobytes(), lines, body)))
                slots.clear()
                del where[:]
                theirs.clear()
            else:
                send(b"B" + _N.pack(in_block) + body)
            bodies.clear()

        inputs: list[Input] = job["inputs"]
        paths = [i.path for i in inputs]
        routed: bytes | None = job["slots"]
        for k, number, data in numbered_lines(inputs, limits):  # the bytes digested for the header, or InputError at their end
            o = routed[seq - 1] if routed is not None else slot(conversation_key(data, seq), jobs, share)
            if o == index:
                bodies.append(engine_canonical(placeholder_record(r.record(Line(seq, f"{paths[k]}:{number}", data)))))
            if reader:
                slots.append(o)
                if o == 0:
                    where.append(k)
                    where.append(number)
                    theirs.append(data)
            seq += 1
            in_block += 1
            if in_block == BLOCK:
                flush()
                in_block = 0
        if in_block:
            flush()
        closes = [(order, engine_canonical(placeholder_record(record))) for order, record in r.keyed_closes()]
        send(b"E" + pickle.dumps((closes, r.totals()), pickle.HIGHEST_PROTOCOL))
    except BaseException as err:  # the parent raises it again
        send(_failure(index, err))
    finally:
        send(None)
        sender.join()
        conn.close()


def _receive(conn: Any, process: Any) -> bytes:
    try:
        message: bytes = conn.recv_bytes()
    except (EOFError, OSError):
        process.join(5)
        raise ParallelError(f"a replay worker process ended unexpectedly (exit code {process.exitcode})") from None
    if message[:1] == b"X":
        raise pickle.loads(message[1:])
    return message


def _serial(policy: CompiledPolicy, inputs: list[Input], as_of: int | None, out: IO[bytes], limits: Limits) -> Totals:
    r = Replayer(policy, as_of, limits=limits)
    write_log(replay_records(policy, inputs, as_of, replayer=r), out)
    return r.stats


def replay_parallel(
    policy: CompiledPolicy,
    inputs: list[Input],
    as_of: int | None,
    jobs: int,
    out: IO[bytes],
    spool_dir: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Totals:
    """Write the audit log of a replay to ``out`` (seekable) with ``jobs`` processes; returns the totals.

    ``spool_dir`` is accepted for compatibility: nothing is spooled to disk.
    """
    del spool_dir
    if jobs < 2 or not usable():
        return _serial(policy, inputs, as_of, out, limits)
    start = out.tell()
    share = parent_share(jobs)
    slots: bytes | None = None
    rejections: dict[int, str] = {}
    if reads_customer_history(policy):
        # interfaces.md §2: a first pass of admission over the whole input, then each customer's conversations together
        routing = admission_pass(policy, inputs, True, limits)
        if len(routing.conversations) >= limits.max_open_conversations:
            return _serial(policy, inputs, as_of, out, limits)  # the limit's rejections depend on what is open: serially
        slots = bytes(slot(key, jobs, share) if seq not in routing.rejections else 0 for seq, key in enumerate(routing.line_keys(), 1))
        rejections = routing.rejections
        del routing
    ctx = multiprocessing.get_context("fork")
    _JOB.clear()
    _JOB.update(policy=policy, jobs=jobs, share=share, as_of=as_of, limits=limits, inputs=list(inputs), slots=slots)
    conns: list[Any] = []
    processes: list[Any] = []
    r = Replayer(policy, as_of, limits=limits)
    try:
        for index in range(1, jobs):
            receiver, sender = ctx.Pipe(duplex=False)
            _widen(sender.fileno())
            # the read ends (its own and the earlier workers'): the worker closes its copies, so that a pipe
            # has no reader once the parent is gone, and its sends fail instead of waiting for ever
            _JOB["receivers"] = [c.fileno() for c in (*conns, receiver)]
            process = ctx.Process(target=_work, args=(index, sender), name=f"escalation-replay-{index}", daemon=True)
            process.start()
            sender.close()
            conns.append(receiver)
            processes.append(process)
        _JOB.clear()
        record = r.record
        writer = AuditWriter(out)
        write, write_encoded = writer.write, writer.write_encoded
        writer.write(header_record(policy, inputs, as_of))
        paths = [i.path for i in inputs]
        seq = 1
        while True:
            message = _receive(conns[0], processes[0])
            others = [_receive(c, p) for c, p in zip(conns[1:], processes[1:], strict=True)]
            if message[:1] == b"E" or any(m[:1] != b"B" for m in others):
                break
            n, size = _HEAD.unpack_from(message, 1)
            if any(_N.unpack_from(m, 1)[0] != n for m in others):
                raise ParallelError(_DIFFERENT)
            at = 1 + _HEAD.size
            slots = message[at : at + n]
            own = slots.count(0)
            where = array.array("q", message[at + n : at + n + 16 * own])
            at += n + 16 * own
            lines = iter(message[at : at + size].split(b"\n") if own else ()).__next__
            bodies = [message[at + size :]] + [m[1 + _N.size :] for m in others]
            nexts = [lines] + [iter(b.split(b"\n") if b else ()).__next__ for b in bodies]
            k = 0
            try:
                for o in slots:
                    if o == 0:
                        line = Line(seq, f"{paths[where[k]]}:{where[k + 1]}", lines())
                        reason = rejections.get(seq) if rejections else None
                        if reason is None:
                            write(record(line))
                        else:  # rejected by the first pass, which saw every conversation
                            r.stats.rejected_one()
                            write(rejected_record(line, reason))
                        k += 2
                    else:
                        write_encoded(nexts[o]())
                    seq += 1
            except (StopIteration, IndexError):
                raise ParallelError(_DIFFERENT) from None
            for leftover in nexts:  # every record of the block was placed
                with contextlib.suppress(StopIteration):
                    leftover()
                    raise ParallelError(_DIFFERENT)
        if message[:1] != b"E" or any(m[:1] != b"E" for m in others):
            raise ParallelError(_DIFFERENT)
        ends = [pickle.loads(message[1:])] + [pickle.loads(m[1:]) for m in others]
        for p in processes:
            p.join()
    except BaseException:
        r.close()
        raise
    finally:
        _JOB.clear()
        for c in conns:
            c.close()
        for p in processes:
            if p.is_alive():
                p.terminate()
                p.join()
    mine: list[tuple[int, bool, Any]] = [(order, False, record) for order, record in r.keyed_closes()]  # counts their violations
    total = Totals()
    for totals in [r.totals()] + [totals for _, totals in ends]:
        total.merge(totals)
    if total.conversations >= limits.max_open_conversations:
        # a serial replay may have reached the limit where no process alone did: do it serially
        out.seek(start)
        out.truncate()
        return _serial(policy, inputs, as_of, out, limits)
    theirs: list[list[tuple[int, bool, Any]]] = [[(order, True, body) for order, body in closes] for closes, _ in ends]
    for _, encoded, item in heapq.merge(mine, *theirs, key=lambda x: x[0]):
        if encoded:
            write_encoded(item)
        else:
            write(item)
    writer.write(total.summary())
    return total


def usable() -> bool:
    """Whether this platform can fork workers (elsewhere `--jobs` replays serially)."""
    return "fork" in multiprocessing.get_all_start_methods() and os.name == "posix"
