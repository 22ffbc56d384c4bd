"""One partition's loop: admit each record, feed it to its conversation's state, park, sweep, close (interfaces.md §1–2).

:class:`Replayer` turns input lines into audit records (without ``prev`` and ``hash``) for
the conversations it is given; the drivers run it over every line of a serial replay
(:mod:`escalation.replay.serial`), over the lines one process of `--jobs` owns
(:mod:`escalation.replay.parallel`), or over one partition of a distributed replay
(:mod:`escalation.replay.dask`, through :class:`PartWriter`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from ..audit import AuditWriter, Sink, Totals, close_record, decision_record, rejected_record
from ..compile import CompiledPolicy
from ..errors import EXIT_REJECTED, EscalationError, EventError
from ..lang import DEFAULT_LIMITS, Limits
from ..runtime import Admission, Event, Interaction, Line, admit_conversation, check_order, decode_line, validate
from ..state import Parked, SpillStore, StateStore
from ..streams import Input, numbered_lines
from .customers import Customers, bind, reads_customer_history


class StrictStop(EscalationError):
    """`--strict`: the first rejected record stops the replay."""

    exit_code = EXIT_REJECTED

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: rejected: {reason}")
        self.source = source
        self.reason = reason


#: With --idle-horizon, idle conversations are looked for every this many accepted events (``Replayer(sweep_every=...)``).
SWEEP_EVERY = 1024

#: The event after which a conversation is written out of memory (parked), and after each later one.
END = "interaction.end"


def input_lines(inputs: Sequence[Input], limits: Limits = DEFAULT_LIMITS) -> Iterator[Line]:
    """Every non-blank line of the inputs, in order, with its seq (1, 2, ... across them) and ``path:line`` source."""
    paths = [i.path for i in inputs]
    for seq, (k, number, data) in enumerate(numbered_lines(inputs, limits), 1):
        yield Line(seq, f"{paths[k]}:{number}", data)


class Replayer:
    """Feeds records to per-conversation state and yields audit records (without prev/hash).

    Memory holds the conversations that are going on. A conversation that has seen
    ``interaction.end`` is parked after that event and after each later one: its state
    (pending obligations included) is handed to a :class:`~escalation.state.StateStore`
    (``store``; by default a :class:`~escalation.state.SpillStore` on disk, opened when
    first needed) and freed, taken back if the conversation has a later event, and its
    close record is computed from the store at the end, so the output is exactly that of
    keeping it (``park=False`` keeps everything in memory, for the tests that check this).
    ``--idle-horizon`` also frees idle conversations, and changes the output
    (docs/scaling.md). A conversation's order key is the ``seq`` of its first accepted
    event: close records are sorted by it.
    """

    def __init__(
        self,
        policy: CompiledPolicy,
        as_of: int | None = None,
        strict: bool = False,
        idle_horizon: int | None = None,
        limits: Limits = DEFAULT_LIMITS,
        park: bool = True,
        *,
        store: StateStore | None = None,
        sweep_every: int = SWEEP_EVERY,
    ) -> None:
        self.policy = policy
        self.limits = limits
        self.as_of = as_of
        self.strict = strict
        self.idle_horizon = idle_horizon
        self.park = park and END in policy.vocabulary
        self.conversations: dict[str, Interaction] = {}
        self.stats = Totals()
        self.order: dict[str, int] = {}  # conversation in memory -> seq of its first accepted event
        self.seen = 0  # conversations with at least one accepted event
        self.store: StateStore | None = store  # a SpillStore is created when first needed
        self.parked = 0  # conversations parked so far (a conversation may be parked more than once)
        self.parked_now = 0  # conversations parked and not retired: they count as open for max_open_conversations
        self.latest = 0
        self.sweep_every = sweep_every
        self.until_sweep = sweep_every
        self.finished = False
        #: The one admission (time order, bindings, the customers' time order); a driver's first pass may share its verdicts.
        self.admission = Admission(policy.vocabulary, reads_customer_history(policy))
        #: The customers' history states, when the policy reads customer history.
        self.customers = Customers(policy, self._store) if self.admission.reads_customer_history else None

    def _store(self) -> StateStore:
        if self.store is None:
            self.store = SpillStore()
        return self.store

    def record(self, line: Line, before_feed: Callable[[Line, Event, Interaction], None] | None = None) -> dict[str, Any]:
        """One input line -> its decision or rejected record; ``before_feed`` sees the state an event meets."""
        away: Parked | None = None
        try:
            obj = decode_line(line.data, self.limits)
            event = validate(obj, self.policy.vocabulary)
            inter = self.conversations.get(event.conversation)
            if inter is not None:
                last = inter.last_time
            else:
                away = self.store.get(event.conversation) if self.store is not None else None
                if away is None or away.state is None:  # new, or back after --idle-horizon closed it
                    admit_conversation(len(self.conversations) + self.parked_now, self.limits)
                last = None if away is None else away.last_time
            if last is not None and event.time < last:  # the time order, from the state itself (no second map of times)
                check_order(event, last, name_conversation=True)
            customer = self.admission.customer(event, obj)
        except EventError as err:
            reason = str(err)
            if self.strict:
                raise StrictStop(line.source, reason) from None
            self.stats.rejected_one()
            return rejected_record(line, reason)
        ended = event.type == END
        arrived = inter is None
        if inter is None:
            inter = self._bring_in(event.conversation, line.seq, away)
            ended = ended or (away is not None and away.state is not None)  # it had ended, and was parked
        if customer is not None:
            binds = self.admission.binds
            if binds:
                self.stats.bound(customer)
            if self.customers is not None and (binds or arrived):
                bind(inter, self.customers.attach(customer))  # §9: before step 1 of the binding event
        if before_feed is not None:
            before_feed(line, event, inter)
        decision = inter.feed(event)
        record = decision_record(line, event.conversation, obj, decision, customer)
        self.stats.decision(record["violations"])
        if self.idle_horizon is not None:
            self.latest = max(self.latest, event.time)
            self.until_sweep -= 1
            if self.until_sweep <= 0:
                self.until_sweep = self.sweep_every
                self.sweep()
        if ended and self.park and event.conversation in self.conversations:
            self._park(event.conversation, inter)
        return record

    def _bring_in(self, conversation: str, seq: int, away: Parked | None) -> Interaction:
        """The state of a conversation not in memory: new, parked or retired."""
        if away is None:
            inter = Interaction(self.policy, conversation)
            order = seq
            self.seen += 1
        else:
            assert self.store is not None
            self.store.delete(conversation)
            order = away.order
            if away.state is not None:
                inter = Interaction.thawed(self.policy, conversation, away.state)
                self.parked_now -= 1
            else:  # retired by --idle-horizon (in memory or while parked): fresh state, numbering goes on
                inter = Interaction(self.policy, conversation)
                inter.next_n = away.next_n
        self.conversations[conversation] = inter
        self.order[conversation] = order
        return inter

    def _leave(self, conversation: str) -> None:
        """A conversation left memory: its customer may be parked too."""
        if self.customers is not None:
            customer = self.admission.customer_of(conversation)
            if customer is not None:
                self.customers.detach(customer)

    def _park(self, conversation: str, inter: Interaction) -> None:
        del self.conversations[conversation]
        self._leave(conversation)
        order = self.order.pop(conversation)
        self._store().put(conversation, Parked(order, inter.next_n, inter.last_time or 0, bool(inter.pending), inter.frozen()))
        self.parked += 1
        self.parked_now += 1

    def _thawed(self, conversation: str, entry: Parked) -> Interaction:
        assert entry.state is not None
        return Interaction.thawed(self.policy, conversation, entry.state)

    def sweep(self) -> None:
        """--idle-horizon: close and free the conversations with no event within the horizon of the latest time."""
        assert self.idle_horizon is not None
        cutoff = self.latest - self.idle_horizon
        if self.store is not None and self.parked_now:  # parked ones are idle too: they would have been closed in memory
            for conversation, entry in self.store.owing_idle(cutoff):
                record = self._close(conversation, self._thawed(conversation, entry))
                if record is not None:
                    self.store.hold_close(entry.order, record)
            self.parked_now -= self.store.retire_idle(cutoff)
        idle = [c for c, inter in self.conversations.items() if inter.last_time is not None and inter.last_time < cutoff]
        if not idle:
            return
        store = self._store()
        for conversation in idle:
            inter = self.conversations.pop(conversation)
            self._leave(conversation)
            order = self.order.pop(conversation)
            record = self._close(conversation, inter)
            if record is not None:
                store.hold_close(order, record)
            store.put(conversation, Parked(order, inter.next_n, inter.last_time or 0, False, None))

    def _close(self, conversation: str, inter: Interaction) -> dict[str, Any] | None:
        violations, still_open = inter.close(self.as_of)
        if not violations and not still_open:
            return None
        record = close_record(conversation, self.as_of, violations, still_open)
        self.stats.closed(record["violations"], len(still_open))
        return record

    def keyed_closes(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(order key, close record) in order: by the conversations' first accepted event, early ones first at a tie.

        Conversations still parked at the end are closed from the store. The closes end
        the replay (they count their violations and open obligations): a second call
        raises RuntimeError.
        """
        if self.finished:
            raise RuntimeError("the close records of this replay were already taken")
        self.finished = True
        late = sorted(self.conversations.items(), key=lambda kv: self.order[kv[0]])
        late_closes = ((self.order[c], 1, record) for c, inter in late if (record := self._close(c, inter)) is not None)
        try:
            if self.store is None:
                for order, _, record in late_closes:
                    yield order, record
            else:
                store = self.store
                early = ((order, 0, record) for order, record in store.held_closes())
                parked = (
                    (entry.order, 1, record)
                    for c, entry in store.owing()
                    if (record := self._close(c, self._thawed(c, entry))) is not None
                )
                for order, _, record in heapq.merge(early, late_closes, parked, key=lambda x: (x[0], x[1])):
                    yield order, record
        finally:
            self.close()

    def close(self) -> None:
        """Release the state store (the replay needs it no more); safe to call again."""
        if self.store is not None:
            self.store.close()
            self.store = None

    def closes(self) -> Iterator[dict[str, Any]]:
        """Close records in order of the conversations' first appearance (early ones from --idle-horizon first at a tie)."""
        for _, record in self.keyed_closes():
            yield record

    def totals(self) -> Totals:
        """The totals so far, with the conversations seen."""
        self.stats.conversations = self.seen
        return self.stats

    def summary(self) -> dict[str, Any]:
        """The summary record (after the closes)."""
        return self.totals().summary()


def records_of(replayer: Replayer, header: dict[str, Any], lines: Iterable[Line]) -> Iterator[dict[str, Any]]:
    """The records of one replayed partition, in order: ``header``, one per line, the closes, the summary."""
    yield header
    record = replayer.record
    for line in lines:
        yield record(line)
    yield from replayer.closes()
    yield replayer.summary()


class PartWriter:
    """One partition's audit log written as its lines arrive (pushed, for a driver that splits one input among many)."""

    def __init__(self, replayer: Replayer, header: dict[str, Any], out: Sink) -> None:
        self.replayer = replayer
        self.writer = AuditWriter(out)
        self.writer.write(header)

    def feed(self, line: Line) -> None:
        self.writer.write(self.replayer.record(line))

    def finish(self) -> Totals:
        """Write the close records and the summary; returns the partition's totals."""
        for record in self.replayer.closes():
            self.writer.write(record)
        self.writer.write(self.replayer.summary())
        return self.replayer.stats
