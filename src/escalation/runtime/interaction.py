"""Per-interaction state: feed one event, get a Decision (language.md §6); snapshot and resume.

An interaction runs its events on one back end (backend.py: the generated step functions or
the closures), chosen when it is created; the back ends register their step tables in
:data:`BACKENDS` when the runtime package is imported, so that this module, which they
build on, needs none of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from ..compile import LEVEL_RANK, CompiledPolicy, Permissions, RequireSpec, WhileRule
from ..errors import EscalationError
from ..lang import format_time
from .codec import SNAPSHOT_FORMAT, Frozen, PendingRow, check_snapshot, encode_state
from .customer import CustomerState
from .events import Event


class Obligation:
    """An action owed by the agent (§6): fulfilled by a matching action, violated by its deadline or its `before` event."""

    __slots__ = ("created_at", "due", "id", "n", "spec")

    def __init__(self, id: str, n: int, spec: RequireSpec, created_at: int, due: int | None) -> None:
        self.id = id
        self.n = n
        self.spec = spec
        self.created_at = created_at
        self.due = due

    def __repr__(self) -> str:
        return f"Obligation({self.id!r}, rule={self.spec.rule!r}, due={self.due!r})"

    @property
    def rule(self) -> str:
        return self.spec.rule

    @property
    def actions(self) -> tuple[str, ...]:
        return self.spec.actions

    @property
    def before(self) -> str | None:
        return self.spec.before


class Violation(NamedTuple):
    """A forbidden action, a missed deadline or an unfulfilled obligation (interfaces.md §2)."""

    kind: str  # forbidden_action | missed_deadline | unfulfilled
    rule: str
    rules: tuple[str, ...]
    action: str | None
    obligation: str | None
    severity: str
    message: str


class Decision(NamedTuple):
    """What one event changed and what holds after it."""

    time: int
    type: str
    violations: Sequence[Violation]
    fulfilled: Sequence[str]
    created: Sequence[Obligation]
    fired: Sequence[str]
    active: tuple[str, ...]
    permitted_actions: tuple[str, ...]
    forbidden_actions: tuple[str, ...]
    obligations: tuple[Obligation, ...]  # pending after this event

    def permitted(self, action: str) -> bool:
        return action in self.permitted_actions

    def forbidden(self, action: str) -> bool:
        return action in self.forbidden_actions


def _actions_text(actions: tuple[str, ...]) -> str:
    return " or ".join(f"`{a}`" for a in actions)


def missed_violation(ob: Obligation) -> Violation:
    spec = ob.spec
    message = spec.message or f"rule `{spec.rule}` required {_actions_text(spec.actions)} by {format_time(ob.due or 0)}, and it did not happen in time"
    return Violation("missed_deadline", spec.rule, (spec.rule,), None, ob.id, spec.severity, message)


def unfulfilled_violation(ob: Obligation) -> Violation:
    """The violation of an obligation whose `before` event came first."""
    spec = ob.spec
    message = spec.message or f"rule `{spec.rule}` required {_actions_text(spec.actions)} before `{spec.before}`, and `{spec.before}` came first"
    return Violation("unfulfilled", spec.rule, (spec.rule,), None, ob.id, spec.severity, message)


#: ``Interaction.next_due`` when nothing pending has a deadline (later than any event time).
NEVER = 2**63

#: ``Interaction.wake`` of a timed rule not evaluated yet: earlier than any event time.
DUE = -(2**63)

#: A back end's step function: apply one validated event to an interaction.
StepFn = Callable[["Interaction", Event], Decision]
#: The back ends by name: each builds (once per policy) the step function of every event type.
BACKENDS: dict[str, Callable[[CompiledPolicy], Mapping[str, StepFn]]] = {}
#: The environment variable that picks the back end of policies loaded without one; unset: :data:`DEFAULT_BACKEND`.
BACKEND_VARIABLE = "ESCALATION_BACKEND"
DEFAULT_BACKEND = "generated"


def backend_name(policy: CompiledPolicy, name: str | None = None) -> str:
    """The back end an interaction under ``policy`` runs on: ``name``, the policy's, the environment's, or the default."""
    chosen = name or policy.backend or os.environ.get(BACKEND_VARIABLE) or DEFAULT_BACKEND
    if chosen not in BACKENDS:
        known = ", ".join(f"`{n}`" for n in sorted(BACKENDS))
        raise EscalationError(f"there is no back end `{chosen}` (the back ends are {known})")
    return chosen


def step_table(policy: CompiledPolicy, name: str | None = None) -> Mapping[str, StepFn]:
    """The step functions of back end ``name`` (see :func:`backend_name`) for ``policy``, built once per policy."""
    chosen = backend_name(policy, name)
    table = policy.steps.get(chosen)
    if table is None:
        table = policy.steps[chosen] = BACKENDS[chosen](policy)
    return table


_UNSTAMPED: dict[int, list[int]] = {}


def _unstamped(n: int) -> list[int]:
    """``n`` zero stamps, one list per length shared by the unbound interactions (never written: only a customer's are)."""
    stamps = _UNSTAMPED.get(n)
    if stamps is None:
        stamps = _UNSTAMPED[n] = [0] * n
    return stamps


class Interaction:
    """The state of one interaction (conversation) under one policy. Not shared between threads."""

    __slots__ = (
        "active", "bound", "conversation", "customer", "flags", "grants", "grants_for", "last_time", "next_due", "next_n", "pending", "policy",
        "seen", "stamps", "state", "steps", "wake", "wake_at",
    )  # fmt: skip

    def __init__(self, policy: CompiledPolicy, conversation: str, backend: str | None = None) -> None:
        """A new interaction, before any event; ``backend`` names its back end (see :func:`backend_name`)."""
        self.policy = policy
        self.steps = step_table(policy, backend)
        self.conversation = conversation
        self.customer: str | None = None  # the bound customer (language.md §9), None while unbound
        self.bound: CustomerState | None = None  # its state, once bind() gave it (after resume(): bind again)
        # the bound customer's stamps and its version after this interaction's last step (CustomerState): a watched while
        # rule (TypePlan.watched) is re-evaluated when a slot it reads has a later stamp; unbound, no stamp is later
        self.stamps: list[int] = _unstamped(len(policy.ops))
        self.seen = 0
        self.state: list[Any] = policy.initial_state()
        self.active: tuple[int, ...] = ()  # indexes of the while rules active after the last event
        self.flags: list[bool] = [False] * len(policy.while_rules)  # the same, one flag per while rule
        self.pending: list[Obligation] = []
        self.next_due = NEVER  # no pending deadline is earlier (it may be later: fulfilled ones are not subtracted)
        self.next_n = 1
        self.last_time: int | None = None
        # per timed while rule, an instant before which time alone cannot change it (DUE: evaluate it at the next event);
        # wake_at is at most the least of them. Not part of snapshots: a resumed interaction evaluates them all once.
        self.wake: list[float] = [DUE] * policy.timers
        self.wake_at: float = DUE
        # policy.permissions(active) for the tuple ``grants_for``: an event whose rules left ``active`` as it was (the
        # same object) reuses it instead of hashing the tuple again; any other tuple, assigned by anyone, is looked up
        self.grants = Permissions((), (), ())
        self.grants_for: tuple[int, ...] | None = None

    # -- the customer (language.md §9)
    def bind(self, state: CustomerState) -> None:
        """Bind this interaction to ``state``'s customer, just before feeding the binding event (§9).

        From then on its operators written `across contacts` read and update the customer's
        slots instead of its own (whose pre-binding history they drop). Called again with the
        customer's state after :meth:`resume` or :meth:`thawed`, which keep the binding only;
        binding to another customer is a ValueError (the driver rejects such an event first).
        """
        if self.customer is not None and state.customer != self.customer:
            raise ValueError(f"conversation `{self.conversation}` is bound to customer `{self.customer}`, not `{state.customer}`")
        self.customer = state.customer
        self.bound = state
        self.stamps = state.stamps
        self.seen = -1  # every stamp is later: the next step re-evaluates every shared rule on the customer's slots
        self.sync()

    def sync(self) -> None:
        """Read the bound customer's slots into this interaction's state (its queries then see the customer history)."""
        bound = self.bound
        if bound is not None:
            s, c = self.state, bound.state
            for i in self.policy.customer_slots:
                s[i] = c[i]

    # -- queries
    def active_at(self, now: int) -> tuple[int, ...]:
        """The while rules whose condition holds on the current history, at time ``now``."""
        self.sync()
        s = self.state
        return tuple(i for i, r in enumerate(self.policy.while_rules) if r.cond(s, None, now))

    def permissions(self, now: int | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(permitted, forbidden) now; before any event, with every while rule on the empty history."""
        when = now if now is not None else (self.last_time or 0)
        permitted, forbidden, _ = self.policy.permissions(self.active_at(when))
        return permitted, forbidden

    # -- the step (§6)
    def feed(self, event: Event) -> Decision:
        """Apply one validated event of this interaction; time must not go backwards (the caller checks).

        Runs the step function of this interaction's back end for the event's type
        (backend.py); :meth:`feed_interpreted` runs the closure back end's. Once bound, the
        customer's slots are read in before the step when another event of the customer may
        have changed them, and those the event's type may update are stamped and written back (§9).
        """
        if self.bound is None:
            return self.steps[event.type](self, event)
        return self._feed_bound(self.steps, event)

    def feed_interpreted(self, event: Event) -> Decision:
        """:meth:`feed` on the closure back end, whatever this interaction's own (for differential tests)."""
        steps = step_table(self.policy, "closures")
        if self.bound is None:
            return steps[event.type](self, event)
        return self._feed_bound(steps, event)

    def _feed_bound(self, steps: Mapping[str, StepFn], event: Event) -> Decision:
        bound = self.bound
        assert bound is not None
        s = self.state
        if bound.version != self.seen:  # another event of the customer may have changed its slots since our last step
            c = bound.state
            for i in self.policy.customer_slots:
                s[i] = c[i]
        touched = self.policy.plans[event.type].customer_touched
        if touched:  # stamped before the step, so that its while rules see them changed
            version = bound.version = bound.version + 1
            stamps = bound.stamps
            for i in touched:
                stamps[i] = version
        decision = steps[event.type](self, event)
        if touched:
            c = bound.state
            for i in touched:
                c[i] = s[i]
        self.seen = bound.version
        bound.latest = event.time
        return decision

    def judge(self, action: str, t: int, rules: tuple[WhileRule, ...] | None = None, evaluate_all: bool = True) -> Violation | None:
        """§6 step 2: is ``action`` at time ``t`` forbidden, on the history before it?

        ``rules`` are the while rules that permit or forbid it (its plan's judges when None);
        unless ``evaluate_all``, an untimed rule's flag stands for its condition.
        """
        policy = self.policy
        s = self.state
        if rules is None:
            rules = policy.plans[action].judges
        forbidders: list[WhileRule] = []
        permitted = False
        flags = self.flags
        for rule in rules:
            holds = rule.cond(s, None, t) if (evaluate_all or rule.timed or rule.shared) else flags[rule.position]
            if holds:
                if action in rule.forbids:
                    forbidders.append(rule)
                else:
                    permitted = True
        if forbidders:
            names = tuple(r.name for r in forbidders)
            severity = max((r.severity for r in forbidders), key=LEVEL_RANK.__getitem__)
            message = next((r.message for r in forbidders if r.message), None) or (
                f"`{action}` was taken while rule `{names[0]}` forbade it"
            )
            return Violation("forbidden_action", names[0], names, action, None, severity, message)
        if not permitted and action in policy.default_forbid:
            message = f"`{action}` is forbidden by default and no rule permitted it at that moment"
            return Violation("forbidden_action", "default", ("default",), action, None, policy.default_forbid[action], message)
        return None

    #: The name tooling/explain.py still calls; :meth:`judge` is the public step.

    def create(self, spec: RequireSpec, t: int) -> Obligation:
        """A new obligation of ``spec`` created at ``t``, numbered in this interaction (§6 step 5)."""
        n = self.next_n
        self.next_n += 1
        if spec.working_days is not None:
            due: int | None = self.policy.calendar.due(t, spec.working_days)
        else:
            due = t + spec.within if spec.within is not None else None
        if due is not None and due < self.next_due:
            self.next_due = due
        return Obligation(f"{self.conversation}#{n}", n, spec, t, due)

    def close(self, as_of: int | None) -> tuple[list[Violation], list[Obligation]]:
        """At the end of the input: obligations overdue at ``as_of`` become violations; the rest stay open."""
        if as_of is None:
            return [], list(self.pending)
        missed = sorted((ob for ob in self.pending if ob.due is not None and ob.due < as_of), key=lambda ob: (ob.due, ob.n))
        gone = {id(ob) for ob in missed}
        return [missed_violation(ob) for ob in missed], [ob for ob in self.pending if id(ob) not in gone]

    # -- snapshots
    def own_state(self) -> list[Any]:
        """The slots this interaction saves: once bound, its customer's slots at their initial values (saved with the customer)."""
        policy = self.policy
        if self.customer is None or not policy.customer_slots:
            return self.state
        state = list(self.state)
        fresh = policy.initial_customer_state()
        for i in policy.customer_slots:
            state[i] = fresh[i]
        return state

    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable copy of this state; :meth:`resume` restores it after a restart."""
        return {
            "format": SNAPSHOT_FORMAT,
            "policy_sha256": self.policy.sha256,
            "conversation": self.conversation,
            "customer": self.customer,
            "state": encode_state(self.policy, self.own_state()),
            "active": [self.policy.while_rules[k].name for k in self.active],
            "pending": [[ob.n, ob.spec.index, ob.created_at, ob.due] for ob in self.pending],
            "next_n": self.next_n,
            "last_time": self.last_time,
        }

    def _set_pending(self, rows: Sequence[tuple[int, int, int, int | None]]) -> None:
        """Pending obligations from (n, spec index, created_at, due) rows, as :meth:`snapshot` and :meth:`frozen` write them."""
        requires = self.policy.requires
        self.pending = [Obligation(f"{self.conversation}#{n}", n, requires[spec], created, due) for n, spec, created, due in rows]
        self.next_due = min((ob.due for ob in self.pending if ob.due is not None), default=NEVER)

    def frozen(self) -> Frozen:
        """This state as plain values for this process (a replay's spill): cheaper than :meth:`snapshot`, not a format."""
        pending = [PendingRow(ob.n, ob.spec.index, ob.created_at, ob.due) for ob in self.pending]
        return Frozen(self.own_state(), self.active, self.flags, self.next_n, self.last_time, pending, self.customer)

    @classmethod
    def thawed(cls, policy: CompiledPolicy, conversation: str, frozen: Frozen) -> Interaction:
        """The interaction :meth:`frozen` wrote, under the same compiled policy."""
        inter = cls(policy, conversation)
        inter.state, inter.active, inter.flags = frozen.state, frozen.active, frozen.flags
        inter.next_n, inter.last_time = frozen.next_n, frozen.last_time
        inter.customer = frozen.customer
        inter._set_pending(frozen.pending)
        return inter

    @classmethod
    def resume(cls, policy: CompiledPolicy, snap: Any) -> Interaction:
        """Rebuild an interaction from :meth:`snapshot` output; SnapshotError when it does not fit.

        The snapshot is untrusted: codec.py checks every field against ``policy``
        (and recomputes which while rules are active from the state) before anything
        is built, and the result is a fresh interaction that shares nothing with ``snap``.
        """
        checked = check_snapshot(policy, snap)
        inter = cls(policy, checked.conversation)
        inter.state = checked.state
        inter.active = checked.active
        inter.flags = checked.flags
        inter._set_pending(checked.pending)
        inter.next_n = checked.next_n
        inter.last_time = checked.last_time
        inter.customer = checked.customer
        return inter
