"""Where a conversation's state lives between its events, when it is not in memory: one protocol, several stores.

(:class:`ServiceStore`, at the end, is what the decision service needs besides the engine's store.)

A replay keeps the conversations that are going on in memory and hands the others to a
:class:`StateStore`: a conversation parked after ``interaction.end`` (its state, to be
taken back if it has a later event, and closed from the store at the end), or one retired
by ``--idle-horizon`` (only what it needs to come back fresh). It also holds a customer none
of whose conversations is in memory (language.md §9: its history state's snapshot). The store also holds the
close records written early by ``--idle-horizon`` until the end of the replay.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol

from ..runtime import Frozen


class Parked(NamedTuple):
    """What a store holds for one conversation out of memory."""

    order: int  # the seq of its first accepted event: close records are sorted by it
    next_n: int  # the number of its next obligation
    last_time: int  # the time of its latest event
    owing: bool  # it has pending obligations, so a close record to come
    state: Frozen | None  # ``Interaction.frozen()`` while parked; None once retired (it comes back fresh)


class StateStore(Protocol):
    """The conversations out of memory, by id, and the close records held for the end of the replay."""

    def get(self, conversation: str) -> Parked | None:
        """What the store holds for ``conversation``, or None."""
        ...

    def put(self, conversation: str, entry: Parked) -> None:
        """Hold ``entry`` for ``conversation`` (replacing what was held)."""
        ...

    def delete(self, conversation: str) -> None:
        """Forget ``conversation`` (it is back in memory)."""
        ...

    def owing(self) -> Iterator[tuple[str, Parked]]:
        """The final sweep: the parked conversations that owe something, in ``order``."""
        ...

    def owing_idle(self, cutoff: int) -> list[tuple[str, Parked]]:
        """The parked conversations that owe something and have had no event since before ``cutoff``."""
        ...

    def retire_idle(self, cutoff: int) -> int:
        """Retire the parked conversations with no event since before ``cutoff`` (their state goes); returns how many."""
        ...

    def put_customer(self, customer: str, snapshot: dict[str, Any]) -> None:
        """Hold a parked customer's history state (``CustomerState.snapshot()``, JSON-able), replacing what was held."""
        ...

    def get_customer(self, customer: str) -> dict[str, Any] | None:
        """The snapshot held for ``customer``, or None."""
        ...

    def delete_customer(self, customer: str) -> None:
        """Forget ``customer`` (it is back in memory)."""
        ...

    def hold_close(self, order: int, record: dict[str, Any]) -> None:
        """Keep a close record written early (in the order held, among those of one ``order``)."""
        ...

    def held_closes(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """The close records held, by ``order`` and then as they were held."""
        ...

    def close(self) -> None:
        """Release what the store holds; safe to call again."""
        ...


class Position(NamedTuple):
    """How far a service's state has been committed: ``records`` decision and rejected records of segment ``segment``."""

    segment: int  # the number of the audit segment (1, 2, ...)
    records: int  # its input records whose state is committed


class ServiceStore(Protocol):
    """What `escalation serve` needs of a store besides :class:`~escalation.state.EngineStore` (/work/wt/SERVE_CONTRACT.md).

    The answers to idempotent retries (a conversation's event ``id`` -> the decision line
    as written to the audit log), the :class:`Position` the state has been committed to,
    and a reset for a rebuild. Everything put since the last ``commit`` becomes durable
    with it, together with the engine's own puts.
    """

    def get_answer(self, conversation: str, event_id: str) -> bytes | None:
        """The audit line of the decision of the event ``event_id`` (canonical JSON of the id) of ``conversation``, or None."""
        ...

    def put_answer(self, conversation: str, event_id: str, line: bytes) -> None:
        """Keep the audit line answering later retries of that event."""
        ...

    def get_position(self) -> Position | None:
        """Where the committed state stands, or None for a new (or reset) store."""
        ...

    def put_position(self, position: Position) -> None:
        """Record where the state stands (committed with the state it describes)."""
        ...

    def reset(self, *, answers: bool) -> None:
        """Forget every conversation, customer, the engine's counters and the position (and the answers, with ``answers``)."""
        ...
