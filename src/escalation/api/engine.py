"""The :class:`Engine`: many conversations (and customers) under one policy, fed as a replay feeds them (interfaces.md §4).

Fed record by record it writes the records a replay of the same records writes: the
same admission (validation, the conversation's time order), the same `decision` and
`rejected` records, the same `close` records and summary (:meth:`Engine.finish`). Its
state is in memory or in an :class:`~escalation.state.EngineStore` (SQLite here; a
server store later), written through after every event.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import attrs

from ..audit import Totals, close_record, decision_record, rejected_record
from ..errors import EventError, SnapshotError
from ..lang import format_time, parse_time
from ..runtime import Interaction, Line, check_order, decode_line, validate
from ..state import EngineStore, StoredConversation
from .policy import Policy
from .results import Decision, Obligation, Permissions

__all__ = ["ENGINE_FORMAT", "ENGINE_SOURCE", "Engine", "RejectedEvent"]


#: The ``format`` of :meth:`Engine.snapshot`.
ENGINE_FORMAT = "escalation-engine/1"

#: The ``source`` an engine's records name when the caller gives none: ``"engine:<seq>"``.
ENGINE_SOURCE = "engine"


class RejectedEvent(EventError):
    """:meth:`Engine.feed` rejected a record (the message is the reason); ``record`` is the `rejected` record a replay writes."""

    def __init__(self, reason: str, record: dict[str, Any]) -> None:
        super().__init__(reason)
        self.record = record


def _line_bytes(record: dict[str, Any] | str | bytes) -> bytes:
    """A record as the bytes of one input line: a dict is written as JSON (NaN as `NaN`, so it is rejected as in a file)."""
    if isinstance(record, bytes):
        return record
    if isinstance(record, str):
        return record.encode("utf-8", "surrogatepass")
    try:
        return json.dumps(record, separators=(",", ":")).encode("ascii")
    except (TypeError, ValueError):  # not JSON data: its repr, which admission rejects as not a JSON object
        return repr(record).encode("utf-8", "backslashreplace")


def _totals_json(totals: Totals) -> dict[str, Any]:
    return {"counts": totals.counts(), "by_rule": dict(totals.by_rule)}


def _totals_of(doc: Any) -> Totals:
    try:
        return Totals.of_summary(doc["counts"], doc["by_rule"])
    except (KeyError, TypeError) as err:
        raise SnapshotError(f"the engine snapshot's `totals` are damaged ({err})") from None


class Engine:
    """Many conversations under one policy, fed as a replay feeds them: the same admission, the same records.

    :meth:`feed` takes one record (a dict, or a JSON line as read) of any conversation
    and returns its :class:`Decision`, whose ``record`` is the `decision` record a replay
    of the same records writes (``seq`` counts every record fed, rejected ones included;
    ``source`` is the one given, else ``"engine:<seq>"``); a rejected record raises
    :class:`RejectedEvent`, holding the `rejected` record. :meth:`permissions` answers
    what the agent may do in a conversation at a time without an event. State lives in
    memory (``store=None``) or in an :class:`~escalation.state.EngineStore` such as
    :class:`~escalation.state.SQLiteStore`, written through after every event, so an
    engine opened again on the same store carries on. :meth:`snapshot` and
    :meth:`resume` save and restore the whole state. Thread-safe: one lock serialises
    every call.
    """

    def __init__(self, policy: Policy, store: EngineStore | None = None) -> None:
        self.policy = policy
        self.store = store
        self._live: dict[str, tuple[int, Interaction]] = {}
        self._seq = 0
        self._seen = 0
        self._totals = Totals()
        self._lock = threading.RLock()
        if store is not None:
            meta = store.get_meta()
            if meta is None:
                self._save_meta()
                store.commit()
            else:
                self._restore_meta(meta, "store")

    # -- counters
    def _meta(self) -> dict[str, Any]:
        return {
            "format": ENGINE_FORMAT,
            "policy_digest": self.policy.digest,
            "seq": self._seq,
            "conversations": self._seen,
            "totals": _totals_json(self._totals),
        }

    def _save_meta(self) -> None:
        if self.store is not None:
            self.store.put_meta(self._meta())

    def _restore_meta(self, meta: Any, what: str) -> None:
        if not isinstance(meta, dict) or meta.get("format") != ENGINE_FORMAT:
            raise SnapshotError(f"this {what} is not an {ENGINE_FORMAT} engine state")
        if meta.get("policy_digest") != self.policy.digest:
            raise SnapshotError(f"this {what} was written under another policy (what it means differs)")
        seq, seen = meta.get("seq"), meta.get("conversations")
        if type(seq) is not int or type(seen) is not int or seq < 0 or seen < 0:
            raise SnapshotError(f"this {what}'s `seq` and `conversations` must be counts")
        self._seq, self._seen, self._totals = seq, seen, _totals_of(meta.get("totals"))

    # -- conversations
    def _find(self, conversation: str) -> tuple[int, Interaction] | None:
        if self.store is None:
            return self._live.get(conversation)
        entry = self.store.get_conversation(conversation)
        if entry is None:
            return None
        return entry.order, Interaction.resume(self.policy.compiled, self.policy.unseal(entry.snapshot))

    def _keep(self, conversation: str, order: int, inter: Interaction) -> None:
        if self.store is None:
            self._live[conversation] = (order, inter)
        else:
            self.store.put_conversation(conversation, StoredConversation(order, self.policy.seal(inter.snapshot())))

    def _held(self) -> Iterator[tuple[str, int, Interaction]]:
        """Every conversation, in the order of its first accepted event."""
        if self.store is None:
            for conversation, (order, inter) in sorted(self._live.items(), key=lambda kv: kv[1][0]):
                yield conversation, order, inter
        else:
            for conversation, entry in self.store.conversations():
                yield conversation, entry.order, Interaction.resume(self.policy.compiled, self.policy.unseal(entry.snapshot))

    # -- events
    def feed(self, record: dict[str, Any] | str | bytes, *, source: str | None = None) -> Decision:
        """Admit and apply one record; its Decision (``.record``: the audit record), or RejectedEvent (``.record``)."""
        compiled = self.policy.compiled
        with self._lock:
            seq = self._seq + 1
            self._seq = seq
            line = Line(seq, source if source is not None else f"{ENGINE_SOURCE}:{seq}", _line_bytes(record))
            try:
                obj = decode_line(line.data)
                event = validate(obj, compiled.vocabulary)
                found = self._find(event.conversation)
                check_order(event, None if found is None else found[1].last_time, name_conversation=True)
            except EventError as err:
                reason = str(err)
                self._totals.rejected_one()
                self._save_meta()
                if self.store is not None:
                    self.store.commit()
                raise RejectedEvent(reason, rejected_record(line, reason)) from None
            if found is None:
                order, inter = seq, Interaction(compiled, event.conversation)
                self._seen += 1
            else:
                order, inter = found
            raw = inter.feed(event)
            out = decision_record(line, event.conversation, obj, raw)
            self._totals.decision(out["violations"])
            self._keep(event.conversation, order, inter)
            self._save_meta()
            if self.store is not None:
                self.store.commit()
            return Decision(raw, compiled, event.conversation, out)

    def permissions(self, conversation: str, at: str | None = None) -> Permissions:
        """What the agent may do in ``conversation`` at ``at`` (RFC 3339; default: its latest event), with no event.

        Every action's permission (the ``while`` rules evaluated at ``at`` on the history so
        far), the pending obligations and those overdue at ``at``. A conversation with no
        event yet answers with the empty history. ``at`` may not be earlier than the
        conversation's latest event (EventError), as an event at that time would be rejected.
        """
        compiled = self.policy.compiled
        with self._lock:
            found = self._find(conversation)
        inter = Interaction(compiled, conversation) if found is None else found[1]
        last = inter.last_time
        now = parse_time(at) if at is not None else (last if last is not None else 0)
        if last is not None and now < last:
            raise EventError(
                f"`at` {format_time(now)} is earlier than the latest event of conversation {conversation!r} ({format_time(last)})"
            )
        permitted, forbidden = inter.permissions(now)
        pending = tuple(Obligation.of(ob) for ob in inter.pending)
        overdue = tuple(Obligation.of(ob) for ob in inter.pending if ob.due is not None and ob.due < now)
        return Permissions(conversation, format_time(now), permitted, forbidden, pending, overdue, compiled)

    def obligations(self, conversation: str) -> list[Obligation]:
        """The pending obligations of ``conversation`` (none before its first event)."""
        with self._lock:
            found = self._find(conversation)
        return [] if found is None else [Obligation.of(ob) for ob in found[1].pending]

    def finish(self, as_of: str | None = None) -> list[dict[str, Any]]:
        """The records a replay of what was fed ends with: its `close` records (``as_of``: RFC 3339 or None), then its `summary`.

        The engine is not changed: it may be fed more, and finished again.
        """
        cutoff = parse_time(as_of) if as_of is not None else None
        with self._lock:
            totals = attrs.evolve(self._totals, by_kind=dict(self._totals.by_kind), by_rule=dict(self._totals.by_rule))
            out: list[dict[str, Any]] = []
            for conversation, _, inter in self._held():
                violations, still_open = inter.close(cutoff)
                if violations or still_open:
                    record = close_record(conversation, cutoff, violations, still_open)
                    totals.closed(record["violations"], len(still_open))
                    out.append(record)
            totals.conversations = self._seen
            out.append(totals.summary())
            return out

    # -- the whole state
    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-serialisable data (every conversation, its order and state; the counters)."""
        with self._lock:
            snap = self._meta()
            snap["conversations_held"] = [
                {"conversation": c, "order": order, "state": self.policy.seal(inter.snapshot())}
                for c, order, inter in self._held()
            ]
            snap["customers"] = []
            return snap

    @classmethod
    def resume(cls, policy: Policy, snap: Any, store: EngineStore | None = None) -> Engine:
        """An engine from :meth:`snapshot`'s data (into ``store`` when given, which must be new); SnapshotError when it does not fit."""
        engine = cls(policy)
        engine._restore_meta(snap, "snapshot")
        held = snap.get("conversations_held")
        if not isinstance(held, list) or snap.get("customers") != []:
            raise SnapshotError("the engine snapshot's `conversations_held` must be a list (and `customers` an empty one)")
        for entry in held:
            if not isinstance(entry, dict) or set(entry) != {"conversation", "order", "state"} or type(entry["order"]) is not int:
                raise SnapshotError(f"the engine snapshot holds a damaged conversation entry: {str(entry)[:80]}")
            inter = Interaction.resume(policy.compiled, policy.unseal(entry["state"]))
            if inter.conversation != entry["conversation"]:
                raise SnapshotError(
                    f"the engine snapshot's entry for {entry['conversation']!r} holds conversation {inter.conversation!r}"
                )
            engine._live[inter.conversation] = (entry["order"], inter)
        if store is not None:
            if store.get_meta() is not None:
                raise SnapshotError("an engine is resumed only into a new store")
            engine.store = store
            for conversation, (order, inter) in engine._live.items():
                engine._keep(conversation, order, inter)
            engine._live = {}
            engine._save_meta()
            store.commit()
        return engine
