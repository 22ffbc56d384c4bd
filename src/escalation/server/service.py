"""The decision service's core, without HTTP: one engine over a durable store, audit segments, retries, reloads.

Events are applied one at a time by a single writer task, in groups: every event waiting
when the writer comes round is admitted and applied (:meth:`Engine.feed`, not committed),
its input line and record appended to the open segment; then the segment is made durable
(fsync, input file first), then the store commits the group's state, and only then are
the answers given (interfaces.md §5: input and record before state). Reads
(:meth:`Service.permissions`, :meth:`Service.customer`) wait for the writer between groups.
A start first brings the state up to the last durable record (:meth:`Service.recover`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from ..api import Customer, Engine, Permissions, Policy, RejectedEvent, load
from ..audit import SegmentInput, SegmentWriter, Tail, canonical, repair_cut, segment_file, segment_inputs, segment_records
from ..errors import EscalationError, SnapshotError
from ..state import Position, SQLiteStore
from .metrics import Metrics

log = logging.getLogger("escalation.serve")


class ServiceUnavailable(EscalationError):
    """The service cannot take events now (its audit or store failed, or it is stopping): a 503."""


@attrs.frozen(slots=True)
class Outcome:
    """The answer to one input record: 200 with its decision, or 422 with its rejected record; ``line`` as in the audit log."""

    status: int
    line: bytes
    retry: bool = False  # answered from an earlier decision (not applied again)


@attrs.frozen(slots=True)
class ReloadStatus:
    """The last reload: its result (``ok`` or ``failed``), when, and why it failed."""

    result: str
    at: float
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"result": self.result, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at)), "error": self.error}


def event_key(data: bytes) -> tuple[str, str] | None:
    """(conversation, canonical JSON of ``id``) of an input line that names both validly, else None (no retry to look up)."""
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    conversation, event_id = obj.get("conversation"), obj.get("id")
    if not isinstance(conversation, str) or not conversation or isinstance(event_id, bool) or not isinstance(event_id, (str, int)):
        return None
    return conversation, canonical(event_id).decode("utf-8")


def feed_silently(engine: Engine, segments: Iterable[SegmentInput], done: dict[int, int] | None = None) -> None:
    """Feed ``engine`` every input line of ``segments`` (records discarded), each segment's numbered from 1.

    ``done`` (segment number -> lines fed) skips what was fed before and is kept up to date.
    """
    for seg in segments:
        start = 0 if done is None else done.get(seg.segment.number, 0)
        collections.deque(engine.records(seg.lines[start:], commit=False), maxlen=0)
        if done is not None:
            done[seg.segment.number] = max(start, len(seg.lines))


class Service:
    """One policy's engine over a :class:`~escalation.state.SQLiteStore`, writing audit segments into ``folder``."""

    def __init__(self, policy_path: str, policy: Policy, store: SQLiteStore, folder: Path, metrics: Metrics) -> None:
        self.policy_path = policy_path
        self.policy = policy
        self.store = store
        self.folder = folder
        self.metrics = metrics
        self.engine: Engine | None = None
        self.segment: SegmentWriter | None = None
        self.lock = asyncio.Lock()  # held by the writer for a group, by a read, by the switch of a reload
        self.queue: asyncio.Queue[tuple[list[bytes], asyncio.Future[list[Outcome]]]] | None = None
        self.writer: asyncio.Task[None] | None = None
        self.broken: str | None = None  # why the service stopped taking events
        self.stopping = False
        self.last_reload: ReloadStatus | None = None
        self.reloading = asyncio.Lock()

    # -- start and stop
    def recover(self) -> None:
        """Bring the state up to the last durable record of the folder, then open a new segment."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tail = repair_cut(self.folder)
        position = self.store.get_position()
        meta = self.store.get_meta()
        same_meaning = meta is not None and meta.get("policy_digest") == self.policy.digest
        if tail is None and position is None and meta is None:
            self.engine = Engine(self.policy, self.store)
        elif tail is not None and position is not None and same_meaning and self._can_catch_up(tail, position):
            self.engine = Engine(self.policy, self.store)
            self._catch_up(tail, position)
        else:
            self.engine = self._rebuild(tail)
        number = 1 if tail is None else tail.segment.number + 1
        self.segment = SegmentWriter(segment_file(self.folder, number), self.policy, None if tail is None else tail.last_hash)
        self.store.put_position(Position(number, 0))
        self.store.commit()
        log.info("segment opened", extra={"segment": self.segment.segment.log.name, "policy": self.policy.sha256})

    def _can_catch_up(self, tail: Tail, position: Position) -> bool:
        if position.segment != tail.segment.number or position.records > tail.records:
            return False
        return position.records == tail.records or tail.policy_sha256 == self.policy.sha256

    def _catch_up(self, tail: Tail, position: Position) -> None:
        """Apply the last segment's records that were durable but whose state was not committed (a kill came between)."""
        assert self.engine is not None
        seg = next(s for s in segment_inputs(self.folder, {tail.segment.number: tail.records}) if s.segment.number == tail.segment.number)
        lines = seg.lines[position.records :]
        collections.deque(self.engine.records(lines, commit=False), maxlen=0)
        self._keep_answers([tail.segment.number], position.records)
        self.store.put_position(Position(tail.segment.number, tail.records))
        self.store.commit()
        if lines:
            log.info("state caught up", extra={"segment": tail.segment.log.name, "records": len(lines)})

    def _keep_answers(self, numbers: list[int], after: int = 0) -> None:
        """Keep, for retries, the decisions with an ``id`` of the segments ``numbers`` (of the first, those after ``after``)."""
        for i, number in enumerate(numbers):
            for line, record in segment_records(segment_file(self.folder, number)):
                if record["kind"] == "decision" and (i > 0 or record["seq"] > after):
                    key = event_key(json.dumps(record["event"]).encode())
                    if key is not None:
                        self.store.put_answer(key[0], key[1], line)

    def _rebuild(self, tail: Tail | None) -> Engine:
        """The state from scratch: every segment's input replayed under this policy (another policy, a lost or new store)."""
        started = time.monotonic()
        memory = Engine(self.policy)
        upto = None if tail is None else {tail.segment.number: tail.records}
        segments = [s for s in segment_inputs(self.folder, upto) if tail is None or s.segment.number <= tail.segment.number]
        feed_silently(memory, segments)
        self.store.reset(answers=True)
        engine = Engine.resume(self.policy, memory.snapshot(), self.store, commit=False)
        self._keep_answers([s.segment.number for s in segments])
        if tail is not None:
            self.store.put_position(Position(tail.segment.number, tail.records))
        self.store.commit()
        log.info("state rebuilt from the audit folder", extra={"segments": len(segments), "seconds": round(time.monotonic() - started, 3)})
        return engine

    def start(self) -> None:
        """Start the writer task (in the running event loop)."""
        self.queue = asyncio.Queue()
        self.writer = asyncio.create_task(self._write_loop())

    async def stop(self) -> None:
        """Finish what was submitted, close the segment with its summary, release the store."""
        self.stopping = True
        if self.queue is not None and self.writer is not None:
            await self.queue.join()
            self.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.writer
        async with self.lock:
            if self.segment is not None and self.broken is None:
                self.segment.close()
                log.info("segment closed", extra={"segment": self.segment.segment.log.name, "records": self.segment.records})
            self.store.close()

    # -- events
    async def submit(self, lines: list[bytes]) -> list[Outcome]:
        """Apply input lines (one request's); their outcomes once they are durable. ServiceUnavailable when it cannot."""
        if self.broken is not None:
            raise ServiceUnavailable(f"the service stopped taking events: {self.broken}")
        if self.stopping or self.queue is None:
            raise ServiceUnavailable("the service is stopping")
        done: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((lines, done))
        return await done

    async def _write_loop(self) -> None:
        assert self.queue is not None
        while True:
            group = [await self.queue.get()]
            while not self.queue.empty():
                group.append(self.queue.get_nowait())
            try:
                await self._write_group(group)
            finally:
                for _ in group:
                    self.queue.task_done()

    async def _write_group(self, group: list[tuple[list[bytes], asyncio.Future[list[Outcome]]]]) -> None:
        async with self.lock:
            if self.broken is not None:
                for _, done in group:
                    if not done.done():
                        done.set_exception(ServiceUnavailable(f"the service stopped taking events: {self.broken}"))
                return
            try:
                outcomes = [[self._apply(data) for data in lines] for lines, _ in group]
                seg = self.segment
                assert seg is not None
                started = time.perf_counter()
                await asyncio.to_thread(seg.sync)
                self.metrics.store_seconds.labels("audit_sync").observe(time.perf_counter() - started)
                self.store.put_position(Position(seg.segment.number, seg.records))
                started = time.perf_counter()
                await asyncio.to_thread(self.store.commit)
                self.metrics.store_seconds.labels("state_commit").observe(time.perf_counter() - started)
            except Exception as err:  # a full disk, a failed store: nothing more is taken until a restart repairs
                self.broken = f"{type(err).__name__}: {err}"
                log.error("the service stopped taking events", extra={"error": self.broken})
                for _, done in group:
                    if not done.done():
                        done.set_exception(ServiceUnavailable(f"the service stopped taking events: {self.broken}"))
                return
        for (_, done), answers in zip(group, outcomes, strict=True):
            if not done.done():
                done.set_result(answers)

    def _apply(self, data: bytes) -> Outcome:
        """Admit and apply one input line (or answer a retry); appended to the segment, not yet durable."""
        assert self.engine is not None and self.segment is not None
        key = event_key(data)
        if key is not None:
            earlier = self.store.get_answer(*key)
            if earlier is not None:
                self.metrics.retries.inc()
                return Outcome(200, earlier, retry=True)
        seq = self.segment.records + 1
        try:
            record = self.engine.feed(data, source=self.segment.source(seq), seq=seq, commit=False).record
            status = 200
        except RejectedEvent as rejected:
            record, status = rejected.record, 422
        assert record is not None
        line = self.segment.append(data, record)
        if status == 200:
            self.metrics.decisions.inc()
            for violation in record["violations"]:
                self.metrics.violations.labels(violation["kind"]).inc()
            if key is not None:
                self.store.put_answer(key[0], key[1], line)
        else:
            self.metrics.rejections.inc()
        return Outcome(status, line)

    # -- reads
    async def permissions(self, conversation: str, at: str | None) -> Permissions | None:
        """What the agent may do in ``conversation`` at ``at`` (default: now, raised to its latest event); None if unknown.

        EventError for an ``at`` that is not a time, or earlier than the latest event.
        """
        async with self.lock:
            assert self.engine is not None
            if not self.engine.knows(conversation):
                return None
            return self.engine.permissions(conversation, at, clock=time.time())

    async def customer(self, customer: str) -> Customer | None:
        async with self.lock:
            assert self.engine is not None
            return self.engine.customer(customer)

    # -- health
    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether the service answers (policy loaded, store answering), and the body of ``/health``."""
        ok, reason = self.broken is None, self.broken
        if ok:
            try:
                self.store.get_position()
            except Exception as err:  # the store does not answer
                ok, reason = False, f"the state store does not answer: {err}"
        body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "policy": self.policy_json()}
        if reason is not None:
            body["reason"] = reason
        if self.segment is not None:
            body["segment"] = self.segment.segment.log.name
        if self.last_reload is not None:
            body["reload"] = self.last_reload.as_json()
        return ok, body

    def policy_json(self) -> dict[str, Any]:
        return {"name": self.policy.compiled.name, "version": self.policy.compiled.version, "sha256": self.policy.sha256}

    # -- reloads
    async def reload(self) -> ReloadStatus:
        """Load the policy file again; if it checks, replay the stored input under it, switch between two groups, open a segment."""
        async with self.reloading:
            try:
                status = await self._reload()
            except EscalationError as err:
                status = ReloadStatus("failed", time.time(), str(err) if not hasattr(err, "render") else err.render())
            except Exception as err:  # the old policy keeps answering whatever happened
                status = ReloadStatus("failed", time.time(), f"{type(err).__name__}: {err}")
            self.last_reload = status
            self.metrics.reloads.labels(status.result).inc()
            if status.result == "ok":
                log.info("policy reloaded", extra={"policy": self.policy.sha256, "segment": self.segment.segment.log.name if self.segment else None})
            else:
                log.error("policy reload failed; the old policy stays", extra={"error": status.error})
            return status

    async def _reload(self) -> ReloadStatus:
        policy = await asyncio.to_thread(load, self.policy_path)
        memory = Engine(policy)
        done: dict[int, int] = {}
        assert self.segment is not None
        upto = {self.segment.segment.number: self.segment.records}
        await asyncio.to_thread(feed_silently, memory, segment_inputs(self.folder, upto), done)
        async with self.lock:  # between two groups: the rest, then the switch
            if self.broken is not None:
                raise ServiceUnavailable(f"the service stopped taking events: {self.broken}")
            old = self.segment
            feed_silently(memory, segment_inputs(self.folder, {old.segment.number: old.records}), done)
            snap = memory.snapshot()
            try:
                self.store.reset(answers=False)
                engine = Engine.resume(policy, snap, self.store, commit=False)
            except (SnapshotError, EscalationError):
                self.store.rollback()
                raise
            old.close()
            number = old.segment.number + 1
            self.segment = SegmentWriter(segment_file(self.folder, number), policy, old.last_hash)
            self.store.put_position(Position(number, 0))
            self.store.commit()
            self.policy, self.engine = policy, engine
        return ReloadStatus("ok", time.time())

