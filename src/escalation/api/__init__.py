"""The embedding API (interfaces.md §4): load a policy once, start sessions, feed events, snapshot and resume; an Engine
for many conversations and customers; replays.

Words, as everywhere in the code: a *conversation* is the id an event names (its
``conversation`` key); an *interaction* is the state the engine keeps for one
conversation (:class:`~escalation.runtime.Interaction`); a :class:`Session` is the
library's thread-safe handle on one interaction; an :class:`Engine` holds many
conversations and feeds them as a replay does.

Times in the library's results are RFC 3339 strings in UTC, written as the audit log
writes them (``Decision.time``, ``Obligation.created_at`` and ``due``, ``Permissions.at``).
"""

from .engine import ENGINE_FORMAT, Engine, RejectedEvent
from .policy import Policy, Session, load, loads, policy_digest
from .replaying import ReplayOptions, ReplayTotals, replay, replay_distributed, replay_inputs, uses_processes, write_replay
from .results import Customer, Decision, Obligation, Permissions, UnknownActionError

__all__ = [
    "ENGINE_FORMAT", "Customer", "Decision", "Engine", "Obligation", "Permissions", "Policy", "RejectedEvent", "ReplayOptions", "ReplayTotals", "Session",
    "UnknownActionError", "load", "loads", "policy_digest", "replay", "replay_distributed", "replay_inputs", "uses_processes", "write_replay",
]  # fmt: skip
