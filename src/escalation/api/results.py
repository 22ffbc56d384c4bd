"""What the library answers: decisions, obligations and permissions, with times as RFC 3339 strings (as the audit log writes them).

An action name asked about that the policy does not have raises
:class:`UnknownActionError` (a :class:`KeyError` too), never a silent False.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..compile import CompiledPolicy
from ..errors import EscalationError
from ..lang import format_time
from ..runtime import Decision as RuntimeDecision
from ..runtime import Obligation as RuntimeObligation
from ..runtime import Violation
from ..suggest import did_you_mean

__all__ = ["Customer", "Decision", "Obligation", "Permissions", "UnknownActionError", "unknown_action"]


class UnknownActionError(EscalationError, KeyError):
    """A name asked about (``permitted``, ``forbidden``) that is not an action of the policy: a typo, most often."""

    def __str__(self) -> str:  # KeyError would show the sentence quoted, as a key
        return str(self.args[0])


def unknown_action(name: str, policy: CompiledPolicy) -> str:
    """The sentence of an :class:`UnknownActionError` for ``name`` under ``policy`` (with a did-you-mean)."""
    hint = did_you_mean(name, policy.actions)
    also = f"; did you mean `{hint}`?" if hint else f" (its actions are {', '.join(f'`{a}`' for a in policy.actions)})"
    return f"`{name}` is not an action of policy {policy.name!r}{also}"


@attrs.frozen(slots=True)
class Obligation:
    """A pending (or newly created) obligation, as the library gives it: times as RFC 3339 strings, as in the audit log."""

    id: str  # "<conversation>#<n>"
    rule: str
    actions: tuple[str, ...]
    created_at: str
    due: str | None  # None: no deadline (a `before` obligation)
    before: str | None

    @classmethod
    def of(cls, ob: RuntimeObligation) -> Obligation:
        return cls(
            ob.id, ob.rule, ob.actions, format_time(ob.created_at), None if ob.due is None else format_time(ob.due), ob.before
        )

    def as_json(self) -> dict[str, Any]:
        """The obligation as audit records hold it."""
        return {
            "id": self.id,
            "rule": self.rule,
            "actions": list(self.actions),
            "created_at": self.created_at,
            "due": self.due,
            "before": self.before,
        }


class Decision:
    """What one event changed and what holds after it; times are RFC 3339 strings, as in the audit log.

    ``permitted(name)`` and ``forbidden(name)`` raise :class:`UnknownActionError` for a
    name that is not an action of the policy. From an :class:`Engine`, ``record`` is the
    audit record a replay writes for the event and ``customer`` the bound customer.
    """

    __slots__ = ("_policy", "conversation", "customer", "raw", "record")

    def __init__(
        self, raw: RuntimeDecision, policy: CompiledPolicy, conversation: str, record: dict[str, Any] | None = None, customer: str | None = None
    ) -> None:
        self.raw = raw  #: the runtime's decision (times in microseconds, obligations as the evaluator keeps them)
        self._policy = policy
        self.conversation = conversation
        self.record = record
        self.customer = customer  #: the customer the conversation is bound to after this event (an Engine's), or None

    def __repr__(self) -> str:
        return f"Decision({self.conversation!r}, {self.time}, {self.type!r}, permitted={list(self.permitted_actions)})"

    @property
    def time(self) -> str:
        return format_time(self.raw.time)

    @property
    def type(self) -> str:
        return self.raw.type

    @property
    def violations(self) -> tuple[Violation, ...]:
        return tuple(self.raw.violations)

    @property
    def fulfilled(self) -> tuple[str, ...]:
        return tuple(self.raw.fulfilled)

    @property
    def created(self) -> tuple[Obligation, ...]:
        return tuple(Obligation.of(ob) for ob in self.raw.created)

    @property
    def fired(self) -> tuple[str, ...]:
        return tuple(self.raw.fired)

    @property
    def active(self) -> tuple[str, ...]:
        return self.raw.active

    @property
    def permitted_actions(self) -> tuple[str, ...]:
        return self.raw.permitted_actions

    @property
    def forbidden_actions(self) -> tuple[str, ...]:
        return self.raw.forbidden_actions

    @property
    def obligations(self) -> tuple[Obligation, ...]:
        """The obligations pending after this event."""
        return tuple(Obligation.of(ob) for ob in self.raw.obligations)

    def permitted(self, action: str) -> bool:
        """Whether ``action`` is permitted after this event; UnknownActionError when the policy has no such action."""
        if action in self.raw.permitted_actions:
            return True
        if action not in self.raw.forbidden_actions and action not in self._policy.actions:
            raise UnknownActionError(unknown_action(action, self._policy))
        return False

    def forbidden(self, action: str) -> bool:
        """Whether ``action`` is forbidden after this event; UnknownActionError when the policy has no such action."""
        return not self.permitted(action)


@attrs.frozen(slots=True)
class Permissions:
    """What the agent may do in a conversation at a time, without an event (:meth:`Engine.permissions`).

    ``overdue`` are the pending obligations whose deadline is earlier than ``at``: the
    next event of the conversation (at ``at`` or later) reports each as a missed deadline.
    """

    conversation: str
    at: str
    permitted_actions: tuple[str, ...]
    forbidden_actions: tuple[str, ...]
    obligations: tuple[Obligation, ...]
    overdue: tuple[Obligation, ...]
    policy: CompiledPolicy = attrs.field(eq=False, repr=False)
    active: tuple[str, ...] = ()  # the names of the `while` rules active at ``at``, in source order
    customer: str | None = None  # the customer the conversation is bound to, or None

    def as_json(self) -> dict[str, Any]:
        """The answer of the service's ``GET /v1/conversations/{id}`` (interfaces.md §5)."""
        return {
            "conversation": self.conversation,
            "customer": self.customer,
            "at": self.at,
            "permitted": list(self.permitted_actions),
            "forbidden": list(self.forbidden_actions),
            "active": list(self.active),
            "obligations": [ob.as_json() for ob in self.obligations],
            "overdue": [ob.as_json() for ob in self.overdue],
        }

    def permitted(self, action: str) -> bool:
        """Whether ``action`` is permitted at ``at``; UnknownActionError when the policy has no such action."""
        if action not in self.policy.actions:
            raise UnknownActionError(unknown_action(action, self.policy))
        return action in self.permitted_actions

    def forbidden(self, action: str) -> bool:
        """Whether ``action`` is forbidden at ``at``; UnknownActionError when the policy has no such action."""
        return not self.permitted(action)


@attrs.frozen(slots=True)
class Customer:
    """What an :class:`Engine` holds of one customer (:meth:`Engine.customer`): the conversations bound to it, in the order
    they were bound, and the number of events in its customer history (language.md §9: from each binding event on)."""

    customer: str
    conversations: tuple[str, ...]
    events: int

    def as_json(self) -> dict[str, Any]:
        """The answer of the service's ``GET /v1/customers/{id}`` (interfaces.md §5)."""
        return {"customer": self.customer, "conversations": list(self.conversations), "events": self.events}
