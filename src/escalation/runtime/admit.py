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
4. :func:`check_order` — no earlier than the previous event of the same conversation.

Words: a *conversation* is the id an event names; an *interaction* is the state kept
for one conversation (:class:`~escalation.runtime.interaction.Interaction`).
"""

from __future__ import annotations

from typing import Any

from ..errors import EventError
from ..lang import DEFAULT_LIMITS, EventType, Limits, format_time
from .events import Event, validate


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
