"""The one admission path of an event record: validation, binding, time order (interfaces.md §1, §4).

Every event an interaction is fed passes these checks in this order, whoever feeds
it: the library's :class:`~escalation.api.Session`, a replay (``replay/core.py``), and
the decision service. Each check raises :class:`~escalation.errors.EventError` with
the reason, and none of them changes any state, so a rejected record leaves the
interaction as it was.

1. :func:`~escalation.runtime.events.validate` — the reserved keys, the time, the
   type and the attributes against the policy's vocabulary;
2. :func:`bind` — the record belongs to the interaction it is fed to (a session
   fills in its own ``conversation`` when the record leaves it out);
3. :func:`admit_conversation` — a replay may open another conversation
   (``max_open_conversations``);
4. :func:`check_order` — no earlier than the previous event of the same conversation;
5. the customer (:class:`Admission`, language.md §9): a string, the conversation's own
   binding, and (when the policy reads customer history) no earlier than the latest
   event of that customer's history.

A replay (and its first pass under `--jobs` or Dask) runs steps 1, 4 and 5 through one
:class:`Admission`, which holds the bindings and the latest times.

Words: a *conversation* is the id an event names; an *interaction* is the state kept
for one conversation (:class:`~escalation.runtime.interaction.Interaction`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from ..errors import EventError
from ..lang import DEFAULT_LIMITS, EventType, Limits, format_time
from .events import Event, show_value, validate


def bind(record: dict[str, Any], conversation: str) -> dict[str, Any]:
    """A copy of ``record`` as an event of ``conversation``: its ``conversation`` filled in when missing, else it must match."""
    bound = dict(record)
    given = bound.setdefault("conversation", conversation)
    if given != conversation:
        raise EventError(f"the event belongs to conversation {given!r}, not {conversation!r}")
    return bound


def admit_record(record: dict[str, Any], vocabulary: dict[str, EventType], conversation: str) -> Event:
    """Steps 1 and 2 for one interaction's record: bound to ``conversation``, then validated.

    These read only the record and the (immutable) policy, so a caller may run them
    outside any lock; the time order (:func:`check_order`) needs the interaction's state.
    """
    return validate(bind(record, conversation), vocabulary)


def admit_conversation(open_conversations: int, limits: Limits = DEFAULT_LIMITS) -> None:
    """Raise EventError when a replay holding ``open_conversations`` may not open another (``max_open_conversations``)."""
    if open_conversations >= limits.max_open_conversations:
        raise EventError(
            f"the replay already holds {limits.max_open_conversations} open conversations (the `max_open_conversations` limit); "
            "events of new conversations are rejected"
        )


def check_order(event: Event, last_time: int | None, *, name_conversation: bool = False) -> None:
    """Raise EventError when ``event`` is earlier than ``last_time``, the previous event of its conversation.

    ``name_conversation``: say which conversation in the reason, as a replay does (its
    input interleaves many conversations); a session holds one and need not.
    """
    if last_time is not None and event.time < last_time:
        of = f" of conversation {event.conversation!r}" if name_conversation else ""
        raise EventError(f"`time` {format_time(event.time)} is earlier than the previous event{of} ({format_time(last_time)})")


class Admitted(NamedTuple):
    """An accepted record: its event, the customer its conversation is bound to after it (or None), and whether it binds."""

    event: Event
    customer: str | None
    binds: bool


#: What ``record.get`` returns for a record without the key (a value no JSON record holds).
_ABSENT: Any = object()


def record_customer(record: dict[str, Any]) -> str | None:
    """The customer a record names (``""`` and absence are None), or EventError for a value that is not a string."""
    value = record.get("customer")
    if value is None and "customer" not in record:
        return None
    if not isinstance(value, str):
        raise EventError(f"`customer` must be a string naming the customer, not {show_value(value)}")
    return value or None


class Admission:
    """The one admission of a replay, a first pass of `--jobs` or Dask, or an engine (interfaces.md §1, language.md §9).

    It holds what admission reads besides the record: each conversation's latest accepted
    time, its binding (conversation -> customer, set at its binding event and never
    changed), and, when the policy reads customer history, each customer's latest accepted
    time. :meth:`admit` checks a record against them and, when it is accepted, records it;
    a rejected record (EventError, one sentence) changes nothing.
    """

    def __init__(self, vocabulary: dict[str, EventType], reads_customer_history: bool) -> None:
        self.vocabulary = vocabulary
        self.reads_customer_history = reads_customer_history
        self.last: dict[str, int] = {}  # conversation -> time of its latest accepted event
        self.bindings: dict[str, str] = {}  # conversation -> customer
        self.latest: dict[str, int] = {}  # customer -> time of the latest event of its history (reads_customer_history)
        self.binds = False  # whether the record :meth:`check` accepted last bound its conversation

    def admit(self, record: dict[str, Any], opening: Callable[[Event], None] | None = None) -> Admitted:
        """Validate ``record`` and check its order and customer; record it when accepted, else EventError.

        ``opening`` is called with the validated event before the order checks, so that a
        caller may refuse a new conversation (a replay's ``max_open_conversations``).
        """
        event = validate(record, self.vocabulary)
        if opening is not None:
            opening(event)
        return self.accept(event, record)

    def accept(self, event: Event, record: dict[str, Any]) -> Admitted:
        """The checks after validation: the conversation's time order, then the customer's (type, binding, time order)."""
        customer = self.check(event, record)
        return Admitted(event, customer, self.binds)

    def check(self, event: Event, record: dict[str, Any]) -> str | None:
        """:meth:`accept` without its record: the customer (or None); :attr:`binds` says whether this record bound it.

        The conversation's time order against :attr:`last`, then :meth:`customer`; EventError as :meth:`accept`.
        """
        conversation = event.conversation
        previous = self.last.get(conversation)
        if previous is not None and event.time < previous:
            check_order(event, previous, name_conversation=True)
        customer = self.customer(event, record)
        self.last[conversation] = event.time
        return customer

    def customer(self, event: Event, record: dict[str, Any]) -> str | None:
        """Step 5 alone, for a caller that checked the conversation's time order itself (a replay reads it from the interaction).

        Returns the customer (or None) and sets :attr:`binds`; a rejected record (EventError) changes nothing.
        A replay calls this once per event, so the common record (no ``customer`` key, its
        conversation unbound) costs one look-up.
        """
        named: str | None = record.get("customer", _ABSENT)
        bindings = self.bindings
        bound = bindings.get(event.conversation) if bindings else None
        if named is _ABSENT:
            if bound is None:  # unbound, and this record does not bind it: nothing more to check
                self.binds = False
                return None
            named = None
        else:
            named = record_customer(record)
        if bound is None:
            if named is None:
                self.binds = False
                return None
            customer = named
        elif named is not None and named != bound:
            raise EventError(
                f"the record names customer {show_value(named)}, but conversation {show_value(event.conversation)} is bound to customer {show_value(bound)}"
            )
        else:
            customer = bound
        if self.reads_customer_history:
            t = event.time
            latest = self.latest.get(customer)
            if latest is not None and t < latest:
                raise EventError(
                    f"`time` {format_time(t)} is earlier than the latest event of customer {show_value(customer)} ({format_time(latest)})"
                )
            self.latest[customer] = t
        self.binds = bound is None
        if bound is None:
            bindings[event.conversation] = customer
        return customer

    def customer_of(self, conversation: str) -> str | None:
        """The customer ``conversation`` is bound to, or None (unbound, or never seen)."""
        return self.bindings.get(conversation)

    def customers(self) -> int:
        """How many distinct customers are bound."""
        return len(set(self.bindings.values()))
