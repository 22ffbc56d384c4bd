"""A loaded policy (:class:`Policy`), one interaction's handle (:class:`Session`), and loading from a file or a string.

Snapshots name the policy by :func:`policy_digest`, what it means, not its bytes: a
snapshot taken before a comment was added resumes after it; one taken under a policy
whose rules, names or values changed is refused (SnapshotError).
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import attrs

from ..compile import CompiledPolicy
from ..errors import EventError, SnapshotError
from ..lang import ast, parse_time
from ..load import compile_source, load_compiled
from ..runtime import Event, Interaction, admit_record, check_order, record_customer
from ..runtime.events import show_value
from .results import Decision, Obligation, UnknownActionError, unknown_action

__all__ = ["Policy", "Session", "load", "loads", "policy_digest"]


def _digest_value(value: Any) -> Any:
    """An AST value as plain JSON data: each node its class name and its fields that take part in equality (no spans)."""
    if attrs.has(type(value)):
        fields = {f.name: _digest_value(getattr(value, f.name)) for f in attrs.fields(type(value)) if f.eq}
        return [type(value).__name__, fields]
    if isinstance(value, tuple | list):
        return [_digest_value(v) for v in value]
    return value


def policy_digest(policy: ast.Policy) -> str:
    """The SHA-256 of what ``policy`` means: its tree without spans, comments, layout or `test` blocks.

    Two texts that format (``escalation fmt``) to the same policy, whatever their comments
    and tests, have the same digest; any change of a name, rule, effect or value changes it.
    """
    items = [item for item in policy.items if not isinstance(item, ast.Test)]
    doc = [_digest_value(policy.name), _digest_value(policy.version), _digest_value(items)]
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


class Session:
    """One interaction (the state of one conversation) under a policy. Feed it that conversation's events in time order.

    Each event goes through the one admission path (:mod:`escalation.runtime.admit`):
    it is bound to this conversation and validated, then checked against the time of
    the event applied before it. A record naming a ``customer`` binds the session to it
    (a stand-alone interaction: its customer history is its own, as if anonymous); a
    later record naming another customer is rejected (interfaces.md §4). A session may be shared between threads: a lock
    serialises :meth:`feed`, :meth:`permitted`, :attr:`obligations` and :meth:`snapshot`,
    so each event is checked against the time of the event applied just before it and
    applied whole before the next one starts, and a snapshot or a query never sees half
    an event. Events fed from several threads at once are applied in the order the lock
    admits them (one whose time is earlier than the previous one's is rejected, as always).
    """

    __slots__ = ("_inter", "_lock", "_policy")

    def __init__(self, policy: Policy, inter: Interaction) -> None:
        self._policy = policy
        self._inter = inter
        self._lock = threading.Lock()

    @property
    def conversation(self) -> str:
        """The conversation id this session's events belong to."""
        return self._inter.conversation

    def feed(self, event: dict[str, Any] | Event) -> Decision:
        """Apply one event (a dict as in an event stream; `conversation` may be left out); EventError leaves the state as it was."""
        inter = self._inter
        if not isinstance(event, Event):  # binding and validation read only the event and the (immutable) policy
            event = admit_record(event, inter.policy.vocabulary, inter.conversation)
        named = record_customer(event.raw) if "customer" in event.raw else None
        lock = self._lock
        lock.acquire()  # acquire/release rather than `with`: a third of the cost on CPython 3.11
        try:
            check_order(event, inter.last_time)
            if named is not None:
                bound = inter.customer
                if bound is not None and named != bound:
                    raise EventError(
                        f"the record names customer {show_value(named)}, "
                        f"but conversation {show_value(inter.conversation)} is bound to customer {show_value(bound)}"
                    )
            raw = inter.feed(event)
            if named is not None and inter.customer is None:
                inter.customer = named  # §4: a stand-alone interaction keeps its binding; its customer history is its own
        finally:
            lock.release()
        return Decision(raw, inter.policy, inter.conversation, None, inter.customer)

    def permitted(self, action: str, at: str | None = None) -> bool:
        """Whether ``action`` is permitted now (or at the later time ``at``, as §6 step 2 would judge it).

        Raises UnknownActionError when the policy has no action ``action``.
        """
        policy = self._inter.policy
        if action not in policy.actions:
            raise UnknownActionError(unknown_action(action, policy))
        now = parse_time(at) if at is not None else None
        with self._lock:
            return action in self._inter.permissions(now)[0]

    def forbidden(self, action: str, at: str | None = None) -> bool:
        """Whether ``action`` is forbidden now (or at ``at``); UnknownActionError for a name that is not an action."""
        return not self.permitted(action, at)

    @property
    def obligations(self) -> list[Obligation]:
        """The pending obligations."""
        with self._lock:
            return [Obligation.of(ob) for ob in self._inter.pending]

    def snapshot(self) -> dict[str, Any]:
        """The interaction's state as JSON-serialisable data; :meth:`Policy.resume` takes it back.

        It names the policy by :attr:`Policy.digest` (what the policy means), so it resumes
        under the same policy with other comments, layout or tests, and under no other.
        """
        with self._lock:
            snap = self._inter.snapshot()
        return self._policy.seal(snap)


class Policy:
    """A loaded, checked and compiled policy: immutable, safe to share between threads."""

    __slots__ = ("_digest", "compiled")

    def __init__(self, compiled: CompiledPolicy) -> None:
        self.compiled = compiled
        self._digest = policy_digest(compiled.checked.policy)

    def __repr__(self) -> str:
        return f"Policy({self.name!r}, version={self.version!r})"

    @property
    def name(self) -> str:
        """The name in the policy's header."""
        return self.compiled.name

    @property
    def version(self) -> str | None:
        """The version in the policy's header, or None when it gives none."""
        return self.compiled.version

    @property
    def actions(self) -> tuple[str, ...]:
        """Every action of the policy's vocabulary (standard and declared), sorted."""
        return self.compiled.actions

    @property
    def sha256(self) -> str:
        """The SHA-256 of the policy file's bytes (the one the audit header records)."""
        return self.compiled.sha256

    @property
    def digest(self) -> str:
        """The SHA-256 of what the policy means (:func:`policy_digest`): the same after a comment is added, not after a change."""
        return self._digest

    def start(self, conversation: str) -> Session:
        """A new session for ``conversation``, before its first event."""
        return Session(self, Interaction(self.compiled, conversation))

    def resume(self, snapshot: Any) -> Session:
        """A session from :meth:`Session.snapshot`'s data; raises SnapshotError for anything an interaction could not have written."""
        return Session(self, Interaction.resume(self.compiled, self.unseal(snapshot)))

    def seal(self, snap: dict[str, Any]) -> dict[str, Any]:
        """An interaction's snapshot named by this policy's digest instead of its file's SHA-256."""
        sealed = {k: v for k, v in snap.items() if k != "policy_sha256"}
        sealed["policy_digest"] = self._digest
        return sealed

    def unseal(self, snap: Any) -> Any:
        """What :meth:`seal` wrote, back in the runtime's form; SnapshotError when the digest is another policy's.

        A snapshot without ``policy_digest`` (written before it existed) is passed on as it is,
        and the runtime checks its ``policy_sha256``.
        """
        if not isinstance(snap, dict) or "policy_digest" not in snap:
            return snap
        if snap["policy_digest"] != self._digest:
            raise SnapshotError(
                "the snapshot was taken under another policy (what it means differs); replay the interaction instead"
            )
        unsealed = {k: v for k, v in snap.items() if k != "policy_digest"}
        unsealed["policy_sha256"] = self.compiled.sha256
        return unsealed


def load(path: str) -> Policy:
    """Read, check and compile a policy file; raises PolicyError listing every diagnostic."""
    return Policy(load_compiled(path))


def loads(text: str, path: str = "<string>") -> Policy:
    """Check and compile policy source ``text`` (``path`` names it in diagnostics); raises PolicyError."""
    return Policy(compile_source(text, path))
