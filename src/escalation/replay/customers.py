"""The customers of one replay (language.md §9): a history state per customer, in memory while one of its conversations is.

A customer's :class:`~escalation.runtime.customer.CustomerState` is needed only when the
policy reads customer history. It is in memory while at least one conversation bound to it
is; when the last of them is parked (after ``interaction.end``) or retired (``--idle-horizon``),
the customer is parked too: its snapshot goes to the replay's state store and it is freed,
to be resumed when one of its conversations has a later event or a new conversation binds
to it. Parking never changes the log. An idle horizon frees conversation state only: a
parked customer keeps its history and latest time (and its admission facts stay in
:class:`~escalation.runtime.admit.Admission`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import runtime
from ..compile import CompiledPolicy
from ..runtime import Interaction
from ..state import StateStore

#: l2-eval's names, read by name (not yet on this branch): replace with plain uses once merged.
_STATE_CLASS: str = "CustomerState"
_BIND: str = "bind"
_READS: str = "reads_customer_history"


def reads_customer_history(policy: CompiledPolicy) -> bool:
    """Whether ``policy`` reads customer history (``across contacts`` anywhere outside a claim).

    Read through ``getattr`` until l2-eval's ``CompiledPolicy.reads_customer_history`` is
    merged (a policy without it reads none).
    """
    return bool(getattr(policy, _READS, False))


def _state_class() -> Any:
    """``runtime.CustomerState`` (l2-eval's ``runtime/customer.py``), read by name until it is merged."""
    return getattr(runtime, _STATE_CLASS)


def bind(interaction: Interaction, state: Any) -> None:
    """``Interaction.bind(state)`` (l2-eval), just before the binding event is fed, and again when a bound conversation comes back into memory.

    Read by name until l2-eval's ``Interaction.bind`` is merged.
    """
    getattr(interaction, _BIND)(state)


class Customers:
    """The customers' history states of one replay: live ones in memory, the others parked in the state store."""

    def __init__(self, policy: CompiledPolicy, store: Callable[[], StateStore]) -> None:
        self.policy = policy
        self.store = store  # the replay's store, created when first needed
        self.live: dict[str, Any] = {}  # customer -> CustomerState, while a conversation of it is in memory
        self.open: dict[str, int] = {}  # customer -> its conversations in memory
        self.parked = 0  # customers parked so far (a customer may be parked more than once)

    def attach(self, customer: str) -> Any:
        """The state of ``customer`` for a conversation of it that comes into memory (binding, thawed or back fresh)."""
        state = self.live.get(customer)
        if state is None:
            store = self.store()
            saved = store.get_customer(customer)
            cls = _state_class()
            if saved is None:
                state = cls(self.policy, customer)
            else:
                store.delete_customer(customer)
                state = cls.resume(self.policy, saved)
            self.live[customer] = state
        self.open[customer] = self.open.get(customer, 0) + 1
        return state

    def detach(self, customer: str) -> None:
        """A conversation of ``customer`` left memory; the customer is parked when it was the last."""
        left = self.open[customer] - 1
        if left:
            self.open[customer] = left
            return
        del self.open[customer]
        state = self.live.pop(customer)
        self.store().put_customer(customer, state.snapshot())
        self.parked += 1
