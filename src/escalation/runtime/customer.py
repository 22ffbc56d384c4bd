"""A customer's history state (language.md §9): the slots of the operators written `across contacts`.

One :class:`CustomerState` per customer holds the slots of scope ``customer``
(compile/ir.py ``CUSTOMER``; ``CompiledPolicy.customer_slots``). An interaction bound
to the customer (:meth:`Interaction.bind`) reads them in place of its own at each of
its events when another event changed them since its last (``version``), and writes
back after each event those its type may update (stamping them), so the operators' code is the same for both
scopes and each event of the customer history updates them once, in its own step 4,
with its brackets evaluated on the state just before it of its interaction and of
the customer. Before binding, an interaction's customer slots hold its own history.
"""

from __future__ import annotations

from typing import Any

from ..compile import CompiledPolicy
from .codec import CUSTOMER_FORMAT, FrozenCustomer, check_customer, encode_customer

__all__ = ["CustomerState"]


class CustomerState:
    """The history state of one customer under one policy: shared by its interactions, not between threads."""

    __slots__ = ("customer", "latest", "policy", "stamps", "state", "version")

    def __init__(self, policy: CompiledPolicy, customer: str) -> None:
        """A customer with no event yet in its history."""
        self.policy = policy
        self.customer = customer
        self.state: list[Any] = policy.initial_customer_state()  # only policy.customer_slots are read
        self.latest: int | None = None  # the time of the latest event of its history
        # change stamps, not saved (a resumed or thawed customer starts again at 0, and binding re-reads everything): ``version``
        # counts the events of its history that may have updated a slot, ``stamps[i]`` is the version at which slot i last may
        # have; an interaction remembers the version of its own last step, so that its shared while rules are re-evaluated
        # only when a slot they read changed since (Interaction.seen, TypePlan.watched)
        self.version = 0
        self.stamps: list[int] = [0] * len(policy.ops)

    def __repr__(self) -> str:
        return f"CustomerState({self.customer!r}, latest={self.latest!r})"

    # -- the spill form (this process only)
    def frozen(self) -> FrozenCustomer:
        """This state as plain values for this process (a replay's spill); codec.pack_state packs it."""
        return FrozenCustomer(self.state, self.latest)

    @classmethod
    def thawed(cls, policy: CompiledPolicy, customer: str, frozen: FrozenCustomer) -> CustomerState:
        """The customer :meth:`frozen` wrote, under the same compiled policy."""
        state = cls(policy, customer)
        state.state, state.latest = frozen.state, frozen.latest
        return state

    # -- snapshots (a format, checked on the way back)
    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable copy of this state; :meth:`resume` restores it."""
        return {
            "format": CUSTOMER_FORMAT,
            "policy_sha256": self.policy.sha256,
            "customer": self.customer,
            "state": encode_customer(self.policy, self.state),
            "latest": self.latest,
        }

    @classmethod
    def resume(cls, policy: CompiledPolicy, snap: Any) -> CustomerState:
        """Rebuild a customer from :meth:`snapshot` output; SnapshotError (one sentence naming the field) when it does not fit."""
        checked = check_customer(policy, snap)
        state = cls(policy, checked.customer)
        state.state, state.latest = checked.state, checked.latest
        return state
