"""One interface, two back ends: the generated step functions and the closures (as cel-python's runners).

A back end turns a compiled policy into a step function per event type,
``step(interaction, event) -> Decision``, built once per policy:

- ``generated`` (the default): the Python that compile/codegen.py printed, run here in a
  namespace of the §6 steps (steps.py) and the operators' helpers;
- ``closures``: :func:`interpret`, the §6 steps over the closures of compile/lower.py.

Both give the same decisions (tests/properties/test_differential.py and the conformance suite run
each by name). An interaction's back end is, in order: the ``backend`` it is created
with, its policy's (``escalation.load.load_compiled(path, backend=...)``), the
environment variable ``ESCALATION_BACKEND``, else ``generated``. Importing the runtime
package registers both in :data:`~.interaction.BACKENDS`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from itertools import compress
from typing import Any, ClassVar, Protocol

from ..compile import CompiledPolicy, OnRule, operator_of
from .events import Event
from .interaction import BACKENDS, Decision, Interaction, Obligation, StepFn, Violation
from .steps import RunEntry, break_before, expire, fulfil, rewhile, stale

__all__ = ["BACKEND_NAMES", "Backend", "ClosureBackend", "GeneratedBackend", "interpret"]


class Backend(Protocol):
    """A way to run a compiled policy: its step function for every event type."""

    @property
    def name(self) -> str:
        """The name that selects it (``ESCALATION_BACKEND``, ``load_compiled(..., backend=)``)."""
        ...

    def steps(self, policy: CompiledPolicy) -> Mapping[str, StepFn]:
        """The step function of each event type of ``policy``'s vocabulary."""
        ...


def interpret(inter: Interaction, event: Event) -> Decision:
    """§6 for one event over the compiled closures: the closure back end (and every back end's first event)."""
    policy = inter.policy
    t = event.time
    s = inter.state
    etype = event.type
    attrs_ = event.attrs
    plan = policy.plans[etype]
    first = inter.last_time is None
    violations: list[Violation] = []
    fulfilled: list[str] = []
    pending = inter.pending

    for i, window in plan.windows:  # windows forget what fell out of them, before anything reads them
        w: deque[int] = s[i]
        low = t - window
        while w and w[0] < low:
            w.popleft()

    # 1. deadlines
    if pending and t > inter.next_due:
        pending = expire(inter, pending, t, violations)

    # 2. the action itself, judged on the history before it, at its own time
    if plan.is_action:
        if plan.judges or etype in policy.default_forbid:
            violation = inter.judge(etype, t, plan.judges, first)
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

    # 4. state, each slot by its operator
    for i, op, reset in updates:
        operator_of(op).update(s, i, op, reset, t, attrs_)

    # 5. rules, in source order: a while rule is re-evaluated when what it reads changed, or when it reads
    # the clock and the instant at which it may change has come
    fired: list[str] = []
    created: list[Obligation] = []
    flags = inter.flags
    changed = False
    wake = inter.wake
    full = first or t >= inter.wake_at
    guarded = frozenset() if first else plan.guarded
    watched = frozenset() if first else plan.watched
    for rule in policy.step_rules(etype) if first else plan.step5_full if full else plan.step5:
        if isinstance(rule, OnRule):
            if id(rule) in fires and (rule.cond is None or rule.cond(s, None, t)):
                fired.append(rule.name)
                for spec in rule.requires:
                    created.append(inter.create(spec, t))
        else:
            k = rule.position
            c = rule.timer
            if k in watched and not stale(inter, rule.watch) and (c < 0 or t < wake[c]):
                continue
            if c < 0:
                now_on = bool(rule.cond(s, None, t))
            else:
                if k in guarded and t < wake[c]:
                    continue
                assert rule.clock is not None
                value, n = rule.clock(s, t)
                now_on = bool(value)
                wake[c] = n
                if n < inter.wake_at:
                    inter.wake_at = n
            if now_on != flags[k]:
                if not changed:
                    flags = list(flags)
                    changed = True
                flags[k] = now_on
                if now_on:
                    for spec in rule.requires:
                        created.append(inter.create(spec, t))
    if full and wake:
        inter.wake_at = min(wake)
    if changed:
        inter.flags = flags
        inter.active = tuple(compress(range(len(flags)), flags))
    if created:
        pending.extend(created)
    inter.pending = pending
    inter.last_time = t

    # 6. permissions
    if inter.grants_for is not inter.active:
        inter.grants = policy.permissions(inter.active)
        inter.grants_for = inter.active
    permitted, forbidden, names = inter.grants
    return Decision(t, etype, violations, fulfilled, created, fired, names, permitted, forbidden, tuple(inter.pending))


class ClosureBackend:
    """The closure interpreter: :func:`interpret` for every event type."""

    name: ClassVar[str] = "closures"

    def steps(self, policy: CompiledPolicy) -> Mapping[str, StepFn]:
        return dict.fromkeys(policy.plans, interpret)


class GeneratedBackend:
    """The generated step functions: codegen's module, run in a namespace of the steps it calls."""

    name: ClassVar[str] = "generated"

    def helpers(self, policy: CompiledPolicy) -> dict[str, Any]:
        """The runtime's names of :data:`escalation.compile.HELPERS`, for ``policy``."""
        return {
            "expire": expire,
            "fulfil": fulfil,
            "break_before": break_before,
            "rewhile": rewhile,
            "create": Interaction.create,
            "judge": Interaction.judge,
            "interpret": interpret,
            "permissions": policy.permissions,
            "Decision": Decision,
            "compress": compress,
        }

    def steps(self, policy: CompiledPolicy) -> Mapping[str, StepFn]:
        code = policy.code
        if code is None:  # pragma: no cover - compile_policy always generates
            raise ValueError(f"the policy `{policy.name}` was compiled without its generated code")
        helpers = self.helpers(policy)
        missing = code.helpers - helpers.keys()
        assert not missing, f"the generated code needs {sorted(missing)}"
        namespace: dict[str, Any] = {**helpers, **code.consts}
        exec(code.code, namespace)  # the source is ours, printed from a checked policy (outside data only through repr)
        rules = policy.while_rules
        for name, entries in code.groups.items():  # runs of while rules the code evaluates by a loop (rewhile)
            namespace[name] = tuple(
                RunEntry(
                    e.position,
                    namespace[f"w{e.position}"] if rules[e.position].timer < 0 else rules[e.position].clock,
                    rules[e.position].requires,
                    rules[e.position].timer,
                    e.guarded,
                    e.watch,
                )
                for e in entries
            )
        feeders: dict[str, StepFn] = namespace["FEEDERS"]
        return feeders


#: Every back end, by name.
BACK_ENDS: tuple[Backend, ...] = (GeneratedBackend(), ClosureBackend())
BACKEND_NAMES = tuple(b.name for b in BACK_ENDS)
for _backend in BACK_ENDS:
    BACKENDS[_backend.name] = _backend.steps
