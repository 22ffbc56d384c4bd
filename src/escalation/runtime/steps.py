"""The §6 steps both back ends share: deadlines, fulfilment, before-events, while rules re-evaluated in a loop.

The generated step functions (compile/codegen.py) call these by the names of
:data:`escalation.compile.HELPERS`; the closure back end (backend.py) calls them
directly. Each takes the interaction whose state it changes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..compile import RequireSpec
from .interaction import NEVER, Interaction, Obligation, Violation, missed_violation, unfulfilled_violation

__all__ = ["RunEntry", "break_before", "expire", "fulfil", "rewhile", "stale"]

class RunEntry(NamedTuple):
    """A while rule in a run :func:`rewhile` evaluates."""

    position: int
    cond: Any  # untimed: the generated condition ``(s, now, memo)``; timed: the rule's clock ``(s, now)``
    requires: tuple[RequireSpec, ...]
    timer: int  # -1 when untimed
    guarded: bool  # skipped until its instant has come
    watch: tuple[int, ...]  # watched (TypePlan.watched): skipped unless one of these customer slots changed, or its instant came


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
    violations.extend(unfulfilled_violation(ob) for ob in broken)
    return [ob for ob in pending if ob.spec.before != etype]


def stale(inter: Interaction, watch: tuple[int, ...]) -> bool:
    """Did an event of the customer change one of the slots ``watch`` since ``inter``'s last step?"""
    stamps, seen = inter.stamps, inter.seen
    return any(stamps[i] > seen for i in watch)


def rewhile(
    inter: Interaction,
    group: tuple[RunEntry, ...],
    s: list[Any],
    t: int,
    flags: list[bool],
    created: list[Obligation],
    memo: dict[int, Any],
) -> list[bool]:
    """§6 step 5 for a run of while rules; copies ``flags`` before the first change.

    Each entry is (position, condition, requires, timer, guarded, watch): an untimed rule's generated
    condition takes ``(s, now, memo)``; a timed one's is its clock, which also gives the instant
    it may next change (``inter.wake``); a guarded one is skipped until that instant has come; a
    watched one unless a slot of its ``watch`` has a stamp later than ``inter.seen`` (or its instant came).
    """
    wake = inter.wake
    for k, cond, specs, c, guarded, watch in group:
        if watch and not stale(inter, watch) and (c < 0 or t < wake[c]):
            continue
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
                    created.append(inter.create(spec, t))
    return flags
