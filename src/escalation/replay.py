"""Event files -> audit records: the serial replay (interfaces.md §1–2)."""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import attrs

from . import __version__
from .compiler import CompiledPolicy
from .errors import EscalationError, EventError
from .evaluator import Decision, Interaction
from .events import Event, Line, admit_conversation, decode_line, iter_lines, validate
from .limits import DEFAULT_LIMITS, Limits
from .timefmt import US, format_time

ENGINE = f"escalation {__version__}"


class InputError(EscalationError):
    """An input file cannot be read."""


class StrictStop(EscalationError):
    """`--strict`: the first rejected record stops the replay."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: rejected: {reason}")
        self.source = source
        self.reason = reason


@attrs.define
class Input:
    """One input as given on the command line, spooled if it is standard input."""

    path: str
    file: Path
    sha256: str


def open_inputs(paths: list[str], spool_dir: str | None = None) -> list[Input]:
    """Digest every input first (the header needs them); standard input is spooled to a file."""
    out = []
    for path in paths:
        try:
            if path == "-":
                spool = tempfile.NamedTemporaryFile(prefix="escalation-stdin-", suffix=".jsonl", dir=spool_dir, delete=False)  # noqa: SIM115
                with spool:
                    shutil.copyfileobj(sys.stdin.buffer, spool)
                file = Path(spool.name)
            else:
                file = Path(path)
            digest = hashlib.sha256()
            with file.open("rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):  # type: ignore[misc]
                    digest.update(block)
        except OSError as err:
            raise InputError(f"cannot read {path}: {err.strerror or err}") from None
        out.append(Input(path, file, digest.hexdigest()))
    return out


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


def header_record(policy: CompiledPolicy, inputs: list[Input], as_of: int | None, idle_horizon: int | None = None) -> dict[str, Any]:
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

    def count(self, violations: list[dict[str, Any]]) -> None:
        for v in violations:
            self.violations += 1
            self.by_kind[v["kind"]] += 1
            self.by_rule[v["rule"]] = self.by_rule.get(v["rule"], 0) + 1


#: With --idle-horizon, idle conversations are looked for every this many accepted events.
_SWEEP_EVERY = 1024


class Replayer:
    """Feeds records to per-conversation state and yields audit records (without prev/hash)."""

    def __init__(
        self, policy: CompiledPolicy, as_of: int | None = None, strict: bool = False, idle_horizon: int | None = None, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self.policy = policy
        self.limits = limits
        self.as_of = as_of
        self.strict = strict
        self.idle_horizon = idle_horizon
        self.conversations: dict[str, Interaction] = {}
        self.stats = Stats()
        # conversation -> (position of first appearance, obligations numbered so far, last time): for --idle-horizon
        self.order: dict[str, int] = {}
        self.retired: dict[str, tuple[int, int]] = {}
        self.early_closes: list[tuple[int, int, dict[str, Any]]] = []
        self.latest = 0
        self.until_sweep = _SWEEP_EVERY

    def record(self, line: Line, before_feed: Callable[[Line, Event, Interaction], None] | None = None) -> dict[str, Any]:
        """One input line -> its decision or rejected record; ``before_feed`` sees the state an event meets."""
        self.stats.records += 1
        try:
            obj = decode_line(line.data, self.limits)
            event = validate(obj, self.policy.vocabulary)
            inter = self.conversations.get(event.conversation)
            if inter is None:
                admit_conversation(len(self.conversations), self.limits)
            last = inter.last_time if inter is not None else (self.retired[event.conversation][1] if event.conversation in self.retired else None)
            if last is not None and event.time < last:
                raise EventError(
                    f"`time` {format_time(event.time)} is earlier than the previous event of conversation {event.conversation!r} ({format_time(last)})"
                )
        except EventError as err:
            reason = str(err)
            if self.strict:
                raise StrictStop(line.source, reason) from None
            self.stats.rejected += 1
            return {"kind": "rejected", "seq": line.seq, "source": line.source, "reason": reason, "raw": line.data.decode("utf-8", errors="replace")}
        if inter is None:
            inter = Interaction(self.policy, event.conversation)
            self.conversations[event.conversation] = inter
            self.order.setdefault(event.conversation, len(self.order))
            if event.conversation in self.retired:  # back after --idle-horizon closed it: numbering goes on
                inter.next_n = self.retired.pop(event.conversation)[0]
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
        return record

    def sweep(self) -> None:
        """--idle-horizon: close and free the conversations with no event within the horizon of the latest time."""
        assert self.idle_horizon is not None
        cutoff = self.latest - self.idle_horizon
        idle = [c for c, inter in self.conversations.items() if inter.last_time is not None and inter.last_time < cutoff]
        for conversation in idle:
            inter = self.conversations.pop(conversation)
            record = self._close(conversation, inter)
            if record is not None:
                self.early_closes.append((self.order[conversation], len(self.early_closes), record))
            self.retired[conversation] = (inter.next_n, inter.last_time or 0)

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

    def closes(self) -> Iterator[dict[str, Any]]:
        """Close records in order of the conversations' first appearance (early ones from --idle-horizon first at a tie)."""
        if not self.early_closes:
            for conversation, inter in self.conversations.items():
                record = self._close(conversation, inter)
                if record is not None:
                    yield record
            return
        late = [(self.order[c], len(self.early_closes) + k, self._close(c, inter)) for k, (c, inter) in enumerate(self.conversations.items())]
        for _, _, record in sorted(self.early_closes + [x for x in late if x[2] is not None], key=lambda x: (x[0], x[1])):
            assert record is not None
            yield record

    def summary(self) -> dict[str, Any]:
        st = self.stats
        st.conversations = len(self.order)
        return {
            "kind": "summary",
            "records": st.records,
            "events": st.events,
            "rejected": st.rejected,
            "conversations": st.conversations,
            "violations": st.violations,
            "by_kind": dict(st.by_kind),
            "open_obligations": st.open_obligations,
        }


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
        with inp.file.open("rb") as fh:
            for line in iter_lines(inp.path, fh, seq):
                yield r.record(line)
                seq = line.seq + 1
                if progress is not None:
                    progress(len(line.data) + 1)
    yield from r.closes()
    yield r.summary()


def write_log(records: Iterator[dict[str, Any]], out: IO[bytes]) -> str:
    """Chain and write records; returns the last hash."""
    from .audit import AuditWriter

    writer = AuditWriter(out)
    for record in records:
        writer.write(record)
    return writer.prev
