"""A :class:`~escalation.state.store.StateStore` in this process's memory: dicts and a list (for tests and small runs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .store import Parked


class MemoryStore:
    """Holds parked conversations as :meth:`Interaction.frozen` gave them (nothing is encoded)."""

    def __init__(self) -> None:
        self.entries: dict[str, Parked] = {}
        self.closes: list[tuple[int, int, dict[str, Any]]] = []
        self.customers: dict[str, dict[str, Any]] = {}

    def get(self, conversation: str) -> Parked | None:
        return self.entries.get(conversation)

    def put(self, conversation: str, entry: Parked) -> None:
        self.entries[conversation] = entry

    def delete(self, conversation: str) -> None:
        self.entries.pop(conversation, None)

    def owing(self) -> Iterator[tuple[str, Parked]]:
        owing = [(c, e) for c, e in self.entries.items() if e.state is not None and e.owing]
        yield from sorted(owing, key=lambda ce: ce[1].order)

    def owing_idle(self, cutoff: int) -> list[tuple[str, Parked]]:
        return [(c, e) for c, e in self.entries.items() if e.state is not None and e.owing and e.last_time < cutoff]

    def retire_idle(self, cutoff: int) -> int:
        idle = [c for c, e in self.entries.items() if e.state is not None and e.last_time < cutoff]
        for c in idle:
            self.entries[c] = self.entries[c]._replace(owing=False, state=None)
        return len(idle)

    def put_customer(self, customer: str, snapshot: dict[str, Any]) -> None:
        self.customers[customer] = snapshot

    def get_customer(self, customer: str) -> dict[str, Any] | None:
        return self.customers.get(customer)

    def delete_customer(self, customer: str) -> None:
        self.customers.pop(customer, None)

    def hold_close(self, order: int, record: dict[str, Any]) -> None:
        self.closes.append((order, len(self.closes), record))

    def held_closes(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for order, _, record in sorted(self.closes, key=lambda c: (c[0], c[1])):
            yield order, record

    def close(self) -> None:
        self.entries.clear()
        self.closes.clear()
        self.customers.clear()
