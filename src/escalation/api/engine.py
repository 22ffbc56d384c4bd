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
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import attrs

from ..audit import Totals, close_record, decision_record, rejected_record
from ..errors import EventError, SnapshotError
from ..lang import format_time, parse_time
from ..replay.customers import reads_customer_history
from ..runtime import Admission, CustomerState, Interaction, Line, decode_line, record_customer, validate
from ..state import EngineStore, StoredConversation
from .policy import Policy
from .results import Customer, Decision, Obligation, Permissions

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


@attrs.define
class CustomerFacts:
    """What an engine counts of a customer for :meth:`Engine.customer`: its conversations in binding order, its history's events."""

    conversations: list[str] = attrs.field(factory=list)
    events: int = 0

    @classmethod
    def of(cls, saved: dict[str, Any]) -> CustomerFacts:
        """The facts a stored customer entry (or a snapshot's) holds; none for an entry written before they were kept."""
        conversations, events = saved.get("conversations", []), saved.get("events", 0)
        if not (isinstance(conversations, list) and all(isinstance(c, str) for c in conversations) and type(events) is int and events >= 0):
            raise SnapshotError("a customer entry's `conversations` and `events` are damaged")
        return cls(list(conversations), events)


class Held(NamedTuple):
    """One conversation as an engine holds it."""

    order: int  # the seq of its first accepted event (close records are in this order)
    inter: Interaction
    customer: str | None  # the customer it is bound to, or None


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
    :class:`RejectedEvent`, holding the `rejected` record. Admission is the replay's
    (:class:`~escalation.runtime.Admission`: validation, each conversation's time order,
    its binding to a customer, each customer's time order when the policy reads customer
    history). :meth:`permissions` answers what the agent may do in a conversation at a
    time without an event. State lives in memory (``store=None``) or in an
    :class:`~escalation.state.EngineStore` such as :class:`~escalation.state.SQLiteStore`,
    written through after every event, so an engine opened again on the same store
    carries on. :meth:`snapshot` and :meth:`resume` save and restore the whole state.
    Thread-safe: one lock serialises every call.
    """

    def __init__(self, policy: Policy, store: EngineStore | None = None) -> None:
        self.policy = policy
        self.store = store
        self.reads_customer_history = reads_customer_history(policy.compiled)
        self._live: dict[str, Held] = {}
        self._customers: dict[str, CustomerState | None] = {}  # customer -> its history state (None unless history is read)
        self._facts: dict[str, CustomerFacts] = {}  # customer -> its conversations and events (memory only)
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
            "customers": self._totals.customers,
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
        counts: list[int] = [n for n in (meta.get(k) for k in ("seq", "conversations", "customers")) if type(n) is int and n >= 0]
        if len(counts) != 3:
            raise SnapshotError(f"this {what}'s `seq`, `conversations` and `customers` must be counts")
        self._seq, self._seen, customers = counts
        self._totals = _totals_of(meta.get("totals"))
        self._totals.customers = customers  # Totals.bound is called only for a customer new to this engine

    # -- conversations and customers
    def _find(self, conversation: str) -> Held | None:
        if self.store is None:
            return self._live.get(conversation)
        entry = self.store.get_conversation(conversation)
        if entry is None:
            return None
        return Held(entry.order, Interaction.resume(self.policy.compiled, self.policy.unseal(entry.snapshot)), entry.customer)

    def _keep(self, conversation: str, held: Held) -> None:
        if self.store is None:
            self._live[conversation] = held
        else:
            snap = self.policy.seal(held.inter.snapshot())
            self.store.put_conversation(conversation, StoredConversation(held.order, snap, held.customer))

    def _held(self) -> Iterator[tuple[str, Held]]:
        """Every conversation, in the order of its first accepted event."""
        if self.store is None:
            yield from sorted(self._live.items(), key=lambda kv: kv[1].order)
        else:
            for conversation, entry in self.store.conversations():
                inter = Interaction.resume(self.policy.compiled, self.policy.unseal(entry.snapshot))
                yield conversation, Held(entry.order, inter, entry.customer)

    def _customer(self, customer: str) -> tuple[bool, CustomerState | None]:
        """Whether this engine knows ``customer``, and its history state (None unless the policy reads customer history)."""
        if self.store is None:
            return customer in self._customers, self._customers.get(customer)
        saved = self.store.get_customer(customer)
        if saved is None:
            return False, None
        snap = saved.get("state")
        return True, None if snap is None else CustomerState.resume(self.policy.compiled, self.policy.unseal(snap))

    def _facts_of(self, customer: str) -> CustomerFacts:
        """The facts kept of ``customer`` (new and empty when it is not known)."""
        if self.store is None:
            return self._facts.get(customer) or CustomerFacts()
        saved = self.store.get_customer(customer)
        return CustomerFacts() if saved is None else CustomerFacts.of(saved)

    def _customer_state(self, customer: str) -> CustomerState:
        """The history state of ``customer`` (new when it has none yet); the policy reads customer history."""
        state = self._customer(customer)[1]
        return state if state is not None else CustomerState(self.policy.compiled, customer)

    def _keep_customer(self, customer: str, state: CustomerState | None, facts: CustomerFacts) -> None:
        if self.store is None:
            self._customers[customer] = state
            self._facts[customer] = facts
        else:
            snap = None if state is None else self.policy.seal(state.snapshot())
            self.store.put_customer(customer, {"state": snap, "conversations": facts.conversations, "events": facts.events})

    def _bound(self, held: Held) -> Interaction:
        """``held``'s interaction, bound to its customer's history state when it has one and the policy reads it (§9)."""
        inter = held.inter
        if held.customer is not None and self.reads_customer_history and (self.store is not None or inter.bound is None):
            inter.bind(self._customer_state(held.customer))
        return inter

    def _admission(self, conversation: str, found: Held | None, record: dict[str, Any]) -> Admission:
        """An :class:`Admission` holding what this record's admission reads: its conversation's and its customer's facts."""
        admission = Admission(self.policy.compiled.vocabulary, self.reads_customer_history)
        customer = None
        if found is not None:
            if found.inter.last_time is not None:
                admission.last[conversation] = found.inter.last_time
            if found.customer is not None:
                admission.bindings[conversation] = customer = found.customer
        if customer is None:
            try:
                customer = record_customer(record)
            except EventError:  # Admission.accept rejects it, after the time order
                customer = None
        if customer is not None and self.reads_customer_history:
            state = self._customer(customer)[1]
            if state is not None and state.latest is not None:
                admission.latest[customer] = state.latest
        return admission

    # -- events
    def feed(self, record: dict[str, Any] | str | bytes, *, source: str | None = None, seq: int | None = None, commit: bool = True) -> Decision:
        """Admit and apply one record; its Decision (``.record``: the audit record), or RejectedEvent (``.record``).

        ``seq`` numbers the record (default: one more than the last); the service numbers
        each audit segment's records from 1. ``commit=False`` leaves the store's commit to
        the caller (the service commits a group of events once their records are durable).
        """
        compiled = self.policy.compiled
        with self._lock:
            seq = self._seq + 1 if seq is None else seq
            self._seq = seq
            line = Line(seq, source if source is not None else f"{ENGINE_SOURCE}:{seq}", _line_bytes(record))
            try:
                obj = decode_line(line.data)
                event = validate(obj, compiled.vocabulary)
                found = self._find(event.conversation)
                admitted = self._admission(event.conversation, found, obj).accept(event, obj)
            except EventError as err:
                reason = str(err)
                self._totals.rejected_one()
                self._save_meta()
                if self.store is not None and commit:
                    self.store.commit()
                raise RejectedEvent(reason, rejected_record(line, reason)) from None
            customer = admitted.customer
            if found is None:
                found = Held(seq, Interaction(compiled, event.conversation), customer)
                self._seen += 1
            found = found._replace(customer=customer)
            inter = found.inter
            facts = None
            if customer is not None:
                known, state = self._customer(customer)
                facts = self._facts_of(customer)
                if admitted.binds:
                    facts.conversations.append(event.conversation)
                facts.events += 1
                if admitted.binds and not known:
                    self._totals.bound(customer)
                if self.reads_customer_history:
                    if state is None:
                        state = CustomerState(compiled, customer)
                    if admitted.binds or self.store is not None or inter.bound is not state:
                        inter.bind(state)  # §9: before step 1 of the binding event (again after a resume)
            raw = inter.feed(event)
            if customer is not None and facts is not None:
                self._keep_customer(customer, inter.bound, facts)
            out = decision_record(line, event.conversation, obj, raw, customer)
            self._totals.decision(out["violations"])
            self._keep(event.conversation, found)
            self._save_meta()
            if self.store is not None and commit:
                self.store.commit()
            return Decision(raw, compiled, event.conversation, out, customer)

    def records(self, lines: Iterable[Line], *, commit: bool = True) -> Iterator[dict[str, Any]]:
        """Feed input lines in order (each with its own ``seq`` and ``source``); the record of each, decision or rejected.

        What a replay writes for the same lines after the same earlier ones (a service's
        segment, replayed by ``escalation verify DIR --policy``).
        """
        for line in lines:
            try:
                decision = self.feed(line.data, source=line.source, seq=line.seq, commit=commit)
            except RejectedEvent as rejected:
                yield rejected.record
            else:
                assert decision.record is not None
                yield decision.record

    def permissions(self, conversation: str, at: str | None = None, *, clock: float | None = None) -> Permissions:
        """What the agent may do in ``conversation`` at ``at`` (RFC 3339; default: its latest event), with no event.

        Every action's permission (the ``while`` rules evaluated at ``at`` on the history so
        far), the pending obligations and those overdue at ``at``. A conversation with no
        event yet answers with the empty history. ``at`` may not be earlier than the
        conversation's latest event, nor (when the policy reads customer history) than its
        customer's (EventError), as an event at that time would be rejected. Without ``at``,
        ``clock`` (seconds since the epoch, a service's clock) raised to those latest times
        is the time judged at.
        """
        compiled = self.policy.compiled
        with self._lock:
            found = self._find(conversation)
            inter = Interaction(compiled, conversation) if found is None else self._bound(found)
        last, whose = inter.last_time, f"the latest event of conversation {conversation!r}"
        bound = inter.bound if self.reads_customer_history else None
        if bound is not None and bound.latest is not None and (last is None or bound.latest > last):
            last, whose = bound.latest, f"the latest event of customer {bound.customer!r}"
        if at is not None:
            now = parse_time(at)
        elif clock is not None:
            now = max(int(clock * 1_000_000), last if last is not None else 0)
        else:
            now = last if last is not None else 0
        if last is not None and now < last:
            raise EventError(f"`at` {format_time(now)} is earlier than {whose} ({format_time(last)})")
        permitted, forbidden, names = compiled.permissions(inter.active_at(now))
        pending = tuple(Obligation.of(ob) for ob in inter.pending)
        overdue = tuple(Obligation.of(ob) for ob in inter.pending if ob.due is not None and ob.due < now)
        customer = None if found is None else found.customer
        return Permissions(conversation, format_time(now), permitted, forbidden, pending, overdue, compiled, tuple(names), customer)

    def knows(self, conversation: str) -> bool:
        """Whether ``conversation`` has had an accepted event."""
        with self._lock:
            return self._find(conversation) is not None

    def customer_of(self, conversation: str) -> str | None:
        """The customer ``conversation`` is bound to, or None (unbound, or never seen)."""
        with self._lock:
            found = self._find(conversation)
        return None if found is None else found.customer

    def customer(self, customer: str) -> Customer | None:
        """What this engine holds of ``customer``: its conversations in binding order and its history's events; None if unknown."""
        with self._lock:
            if self.store is None:
                if customer not in self._customers:
                    return None
                facts = self._facts.get(customer) or CustomerFacts()
            else:
                saved = self.store.get_customer(customer)
                if saved is None:
                    return None
                facts = CustomerFacts.of(saved)
        return Customer(customer, tuple(facts.conversations), facts.events)

    def finish(self, as_of: str | None = None) -> list[dict[str, Any]]:
        """The records a replay of what was fed ends with: its `close` records (``as_of``: RFC 3339 or None), then its `summary`.

        The engine is not changed: it may be fed more, and finished again.
        """
        cutoff = parse_time(as_of) if as_of is not None else None
        with self._lock:
            totals = attrs.evolve(self._totals, by_kind=dict(self._totals.by_kind), by_rule=dict(self._totals.by_rule))
            out: list[dict[str, Any]] = []
            for conversation, held in self._held():
                violations, still_open = held.inter.close(cutoff)
                if violations or still_open:
                    record = close_record(conversation, cutoff, violations, still_open)
                    totals.closed(record["violations"], len(still_open))
                    out.append(record)
            totals.conversations = self._seen
            out.append(totals.summary())
            return out

    # -- the whole state
    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-serialisable data: every conversation (order, binding, state), every customer, the counters."""
        with self._lock:
            snap = self._meta()
            snap["conversations_held"] = [
                {"conversation": c, "order": held.order, "customer": held.customer, "state": self.policy.seal(held.inter.snapshot())}
                for c, held in self._held()
            ]
            if self.store is None:
                customers = [
                    (c, None if state is None else self.policy.seal(state.snapshot()), self._facts.get(c) or CustomerFacts())
                    for c, state in sorted(self._customers.items())
                ]
            else:
                customers = [(c, saved.get("state"), CustomerFacts.of(saved)) for c, saved in self.store.customers()]
            snap["customers_held"] = [
                {"customer": c, "state": state, "conversations": facts.conversations, "events": facts.events} for c, state, facts in customers
            ]
            return snap

    @classmethod
    def resume(cls, policy: Policy, snap: Any, store: EngineStore | None = None, *, commit: bool = True) -> Engine:
        """An engine from :meth:`snapshot`'s data (into ``store`` when given, which must be new); SnapshotError when it does not fit.

        ``commit=False`` leaves the store's commit to the caller (the service switching policies).
        """
        engine = cls(policy)
        engine._restore_meta(snap, "snapshot")
        held, customers = snap.get("conversations_held"), snap.get("customers_held")
        if not isinstance(held, list) or not isinstance(customers, list):
            raise SnapshotError("the engine snapshot's `conversations_held` and `customers_held` must be lists")
        for entry in customers:
            if not isinstance(entry, dict) or set(entry) - {"conversations", "events"} != {"customer", "state"} or not isinstance(entry["customer"], str):
                raise SnapshotError(f"the engine snapshot holds a damaged customer entry: {str(entry)[:80]}")
            state = None
            if entry["state"] is not None or engine.reads_customer_history:
                state = CustomerState.resume(policy.compiled, policy.unseal(entry["state"]))
                if state.customer != entry["customer"]:
                    raise SnapshotError(f"the engine snapshot's entry for customer {entry['customer']!r} holds customer {state.customer!r}")
            engine._customers[entry["customer"]] = state
            engine._facts[entry["customer"]] = CustomerFacts.of(entry)
        for entry in held:
            if not isinstance(entry, dict) or set(entry) != {"conversation", "order", "customer", "state"} or type(entry["order"]) is not int:
                raise SnapshotError(f"the engine snapshot holds a damaged conversation entry: {str(entry)[:80]}")
            customer = entry["customer"]
            if customer is not None and customer not in engine._customers:
                raise SnapshotError(f"the engine snapshot binds conversation {entry['conversation']!r} to a customer it does not hold")
            inter = Interaction.resume(policy.compiled, policy.unseal(entry["state"]))
            if inter.conversation != entry["conversation"] or (engine.reads_customer_history and inter.customer != customer):
                raise SnapshotError(f"the engine snapshot's entry for {entry['conversation']!r} holds another conversation or binding")
            engine._live[inter.conversation] = Held(entry["order"], inter, customer)
            engine._bound(engine._live[inter.conversation])
        if store is not None:
            if store.get_meta() is not None:
                raise SnapshotError("an engine is resumed only into a new store")
            engine.store = store
            for conversation, kept in engine._live.items():
                engine._keep(conversation, kept)
            for customer, state in engine._customers.items():
                engine._keep_customer(customer, state, engine._facts.get(customer) or CustomerFacts())
            engine._live, engine._customers, engine._facts = {}, {}, {}
            engine._save_meta()
            if commit:
                store.commit()
        return engine
