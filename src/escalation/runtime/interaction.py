"""Per-interaction state: feed one event, get a Decision (language.md §6); snapshot and resume."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from itertools import compress
from typing import Any, NamedTuple

from ..compile import LEVEL_RANK, CompiledPolicy, OnRule, PatternFn, RequireSpec, WhileRule
from ..lang import format_time
from .codec import SNAPSHOT_FORMAT, check_snapshot
from .events import Event


class Obligation:
    """An action owed by the agent (§6): fulfilled by a matching action, violated by its deadline or its `before` event."""

    __slots__ = ("_json", "created_at", "due", "id", "n", "spec")

    def __init__(self, id: str, n: int, spec: RequireSpec, created_at: int, due: int | None) -> None:
        self.id = id
        self.n = n
        self.spec = spec
        self.created_at = created_at
        self.due = due
        self._json: dict[str, Any] | None = None

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

    def to_json(self) -> dict[str, Any]:
        """The audit log's form of the obligation (built once; treat it as read-only)."""
        if self._json is None:
            self._json = {
                "id": self.id,
                "rule": self.spec.rule,
                "actions": list(self.spec.actions),
                "created_at": format_time(self.created_at),
                "due": format_time(self.due) if self.due is not None else None,
                "before": self.spec.before,
            }
        return self._json


class Violation(NamedTuple):
    """A forbidden action, a missed deadline or an unfulfilled obligation (interfaces.md §2)."""

    kind: str  # forbidden_action | missed_deadline | unfulfilled
    rule: str
    rules: tuple[str, ...]
    action: str | None
    obligation: str | None
    severity: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rule": self.rule,
            "rules": list(self.rules),
            "action": self.action,
            "obligation": self.obligation,
            "severity": self.severity,
            "message": self.message,
        }


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


def _unfulfilled_violation(ob: Obligation) -> Violation:
    spec = ob.spec
    message = spec.message or f"rule `{spec.rule}` required {_actions_text(spec.actions)} before `{spec.before}`, and `{spec.before}` came first"
    return Violation("unfulfilled", spec.rule, (spec.rule,), None, ob.id, spec.severity, message)


def _matches(p: PatternFn, event: Event, state: list[Any], now: int) -> bool:
    return p.event == event.type and (p.cond is None or bool(p.cond(state, event.attrs, now)))


#: ``Interaction.next_due`` when nothing pending has a deadline (later than any event time).
NEVER = 2**63


def expire(inter: Interaction, pending: list[Obligation], t: int, violations: list[Violation]) -> list[Obligation]:
    """§6 step 1: obligations whose deadline is earlier than ``t`` become violations.

    Called only when ``t`` is past ``inter.next_due`` (no deadline can have passed
    before it), so that an event costs nothing per pending obligation until one is
    due; ``next_due`` is then set to the earliest deadline left.
    """
    missed = [ob for ob in pending if ob.due is not None and ob.due < t]
    if missed:
        missed.sort(key=lambda ob: (ob.due, ob.n))
        violations.extend(missed_violation(ob) for ob in missed)
        pending = [ob for ob in pending if ob.due is None or ob.due >= t]
    inter.next_due = min((ob.due for ob in pending if ob.due is not None), default=NEVER)
    return pending


def fulfil(pending: list[Obligation], etype: str, s: list[Any], a: dict[str, Any], t: int, fulfilled: list[str]) -> list[Obligation]:
    """§6 step 2: the action fulfils every pending obligation it matches (brackets on the state before it)."""
    keep: list[Obligation] = []
    for ob in pending:
        for p in ob.spec.alternatives:
            if p.event == etype and (p.cond is None or p.cond(s, a, t)):
                fulfilled.append(ob.id)
                break
        else:
            keep.append(ob)
    return keep if len(keep) != len(pending) else pending


def break_before(pending: list[Obligation], etype: str, violations: list[Violation]) -> list[Obligation]:
    """§6 step 3: obligations owed before an event of this type are violated by it."""
    broken = [ob for ob in pending if ob.spec.before == etype]
    if not broken:
        return pending
    violations.extend(_unfulfilled_violation(ob) for ob in broken)
    return [ob for ob in pending if ob.spec.before != etype]


#: ``Interaction.wake`` of a timed rule not evaluated yet: earlier than any event time.
DUE = -(2**63)


def rewhile(
    inter: Interaction,
    group: tuple[tuple[int, Any, tuple[RequireSpec, ...], int, bool], ...],
    s: list[Any],
    t: int,
    flags: list[bool],
    created: list[Obligation],
    memo: dict[int, Any],
) -> list[bool]:
    """Re-evaluate a run of while rules; copies ``flags`` before the first change.

    Each entry is (position, condition, requires, timer, guarded): an untimed rule's generated
    condition takes ``(s, now, memo)``; a timed one's is its clock, which also gives the instant
    it may next change (``inter.wake``); a guarded one is skipped until that instant has come.
    """
    wake = inter.wake
    for k, cond, specs, c, guarded in group:
        if c < 0:
            v = cond(s, t, memo)
        else:
            if guarded and t < wake[c]:
                continue
            v, n = cond(s, t)
            wake[c] = n
            if n < inter.wake_at:
                inter.wake_at = n
        if v != flags[k]:
            if flags is inter.flags:
                flags = flags[:]
            flags[k] = v
            if v:
                for spec in specs:
                    created.append(inter._create(spec, t))
    return flags


def codegen_helpers(policy: CompiledPolicy) -> dict[str, Any]:
    """The names the generated step functions use."""
    from ..compile.lower import INF, _window_count

    return {
        "expire": expire,
        "fulfil": fulfil,
        "break_before": break_before,
        "rewhile": rewhile,
        "create": Interaction._create,
        "permissions": policy.permissions,
        "Decision": Decision,
        "window_count": _window_count,
        "INF": INF,
        "compress": compress,
    }


class Interaction:
    """The state of one interaction (conversation) under one policy. Not shared between threads."""

    __slots__ = (
        "active", "conversation", "flags", "grants", "grants_for", "last_time", "next_due", "next_n", "pending", "policy", "state", "wake", "wake_at",
    )  # fmt: skip

    def __init__(self, policy: CompiledPolicy, conversation: str) -> None:
        self.policy = policy
        self.conversation = conversation
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
        self.grants: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] = ((), (), ())
        self.grants_for: tuple[int, ...] | None = None

    # -- queries
    def active_at(self, now: int) -> tuple[int, ...]:
        """The while rules whose condition holds on the current history, at time ``now``."""
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

        Runs the step function generated for the event's type (codegen.py);
        :meth:`feed_interpreted` does the same with the compiled closures.
        """
        result: Decision = self.policy.feeders[event.type](self, event)
        return result

    def feed_interpreted(self, event: Event) -> Decision:
        """:meth:`feed` over the closures of compiler.py, kept as a second back end for differential tests."""
        policy = self.policy
        t = event.time
        s = self.state
        etype = event.type
        attrs_ = event.attrs
        plan = policy.plans[etype]
        first = self.last_time is None
        violations: list[Violation] = []
        fulfilled: list[str] = []
        pending = self.pending

        for i, window in plan.windows:  # windows forget what fell out of them, before anything reads them
            w: deque[int] = s[i]
            low = t - window
            while w and w[0] < low:
                w.popleft()

        # 1. deadlines
        if pending and t > self.next_due:
            pending = expire(self, pending, t, violations)

        # 2. the action itself, judged on the history before it, at its own time
        if plan.is_action:
            if plan.judges or etype in policy.default_forbid:
                violation = self._judge(etype, t, plan.judges, first)
                if violation is not None:
                    violations.append(violation)
            if pending:
                pending = fulfil(pending, etype, s, attrs_, t, fulfilled)

        # 3. before-events
        if pending:
            pending = break_before(pending, etype, violations)

        # patterns are matched on the state before the event is applied
        fires = {id(r) for r in plan.on_rules if r.pattern.cond is None or r.pattern.cond(s, attrs_, t)} if plan.on_rules else set()
        updates = []
        for i, op in plan.ops:
            since = op.since
            if since is not None and since.event == etype and (since.cond is None or since.cond(s, attrs_, t)):
                updates.append((i, op, True))
            elif op.pattern.event == etype and (op.pattern.cond is None or op.pattern.cond(s, attrs_, t)):
                updates.append((i, op, False))

        # 4. state
        for i, op, reset in updates:
            kind = op.kind
            if kind == "count":
                s[i] = 0 if reset else s[i] + 1
            elif kind == "wcount":
                if reset:
                    s[i].clear()
                else:
                    s[i].append(t)
            elif kind == "last":
                s[i] = attrs_[op.attr]
            else:  # time
                s[i] = t

        # 5. rules, in source order: a while rule is re-evaluated when what it reads changed, or when it reads
        # the clock and the instant at which it may change has come
        fired: list[str] = []
        created: list[Obligation] = []
        flags = self.flags
        changed = False
        wake = self.wake
        full = first or t >= self.wake_at
        guarded = frozenset() if first else plan.guarded
        for rule in (policy.step_rules(etype) if first else plan.step5_full if full else plan.step5):
            if isinstance(rule, OnRule):
                if id(rule) in fires and (rule.cond is None or rule.cond(s, None, t)):
                    fired.append(rule.name)
                    for spec in rule.requires:
                        created.append(self._create(spec, t))
            else:
                k = rule.position
                c = rule.timer
                if c < 0:
                    now_on = bool(rule.cond(s, None, t))
                else:
                    if k in guarded and t < wake[c]:
                        continue
                    assert rule.clock is not None
                    value, n = rule.clock(s, t)
                    now_on = bool(value)
                    wake[c] = n
                    if n < self.wake_at:
                        self.wake_at = n
                if now_on != flags[k]:
                    if not changed:
                        flags = list(flags)
                        changed = True
                    flags[k] = now_on
                    if now_on:
                        for spec in rule.requires:
                            created.append(self._create(spec, t))
        if full and wake:
            self.wake_at = min(wake)
        if changed:
            self.flags = flags
            self.active = tuple(compress(range(len(flags)), flags))
        if created:
            pending.extend(created)
        self.pending = pending
        self.last_time = t

        # 6. permissions
        if self.grants_for is not self.active:
            self.grants = policy.permissions(self.active)
            self.grants_for = self.active
        permitted, forbidden, names = self.grants
        return Decision(
            t,
            etype,
            violations,
            fulfilled,
            created,
            fired,
            names,
            permitted,
            forbidden,
            tuple(self.pending),
        )

    def _judge(self, action: str, t: int, rules: tuple[WhileRule, ...] | None = None, evaluate_all: bool = True) -> Violation | None:
        """§6 step 2: is ``action`` at time ``t`` forbidden, on the history before it?"""
        policy = self.policy
        s = self.state
        if rules is None:
            rules = policy.plans[action].judges
        forbidders: list[WhileRule] = []
        permitted = False
        flags = self.flags
        for rule in rules:
            holds = rule.cond(s, None, t) if (evaluate_all or rule.timed) else flags[rule.position]
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

    def _create(self, spec: RequireSpec, t: int) -> Obligation:
        n = self.next_n
        self.next_n += 1
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
    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable copy of this state; :meth:`resume` restores it after a restart."""
        return {
            "format": SNAPSHOT_FORMAT,
            "policy_sha256": self.policy.sha256,
            "conversation": self.conversation,
            "state": [list(v) if isinstance(v, deque) else v for v in self.state],
            "active": [self.policy.while_rules[k].name for k in self.active],
            "pending": [[ob.n, ob.spec.index, ob.created_at, ob.due] for ob in self.pending],
            "next_n": self.next_n,
            "last_time": self.last_time,
        }

    def _set_pending(self, rows: list[tuple[int, int, int, int | None]]) -> None:
        """Pending obligations from (n, spec index, created_at, due) rows, as :meth:`snapshot` and :meth:`frozen` write them."""
        requires = self.policy.requires
        self.pending = [Obligation(f"{self.conversation}#{n}", n, requires[spec], created, due) for n, spec, created, due in rows]
        self.next_due = min((ob.due for ob in self.pending if ob.due is not None), default=NEVER)

    def frozen(self) -> tuple[Any, ...]:
        """This state as plain values for this process (a replay's spill): cheaper than :meth:`snapshot`, not a format."""
        pending = [(ob.n, ob.spec.index, ob.created_at, ob.due) for ob in self.pending]
        return (self.state, self.active, self.flags, self.next_n, self.last_time, pending)

    @classmethod
    def thawed(cls, policy: CompiledPolicy, conversation: str, frozen: tuple[Any, ...]) -> Interaction:
        """The interaction :meth:`frozen` wrote, under the same compiled policy."""
        inter = cls(policy, conversation)
        inter.state, inter.active, inter.flags, inter.next_n, inter.last_time, pending = frozen
        inter._set_pending(pending)
        return inter

    @classmethod
    def resume(cls, policy: CompiledPolicy, snap: Any) -> Interaction:
        """Rebuild an interaction from :meth:`snapshot` output; SnapshotError when it does not fit.

        The snapshot is untrusted: snapshots.py checks every field against ``policy``
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
        return inter
