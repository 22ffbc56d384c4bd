"""Name resolution: events and actions, attributes, lets and enum values, with "did you mean".

Each lookup reports what it cannot find (E010, E011, E012, E013, E016, E022) and returns
None, so that the passes above it go on and report every other problem too.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from ..lang import EnumType, EventType, Type, ast
from ..suggest import did_you_mean
from .context import CheckState, Scope, listing

__all__ = ["event_type", "no_attribute", "resolve_name", "suggest"]


def suggest(c: CheckState, name: str, candidates: Iterable[str], fallback: str) -> str:
    """A "did you mean" hint, or ``fallback``; only the first MAX_SUGGESTIONS diagnostics get one."""
    if c.suggestions_left <= 0:
        return fallback
    c.suggestions_left -= 1
    match = did_you_mean(name, candidates)
    return f"did you mean `{match}`?" if match else fallback


def event_type(c: CheckState, name: ast.Name, actions_only: bool = False, what: str = "") -> EventType | None:
    """The declared event or action ``name``; with ``actions_only``, an event is refused (E022) with ``what``."""
    et = c.vocabulary.get(name.text)
    if et is None:
        kinds = (n for n, e in c.vocabulary.items() if e.is_action) if actions_only else iter(c.vocabulary)
        noun = "action" if actions_only else "event or action"
        c.error(
            "E010",
            f"unknown {noun} `{name.text}`",
            name.span,
            suggest(c, name.text, kinds, "declare it with `event` or `action`, or check the spelling"),
        )
        return None
    if actions_only and not et.is_action:
        c.error(
            "E022",
            f"`{name.text}` is an event, not an action; {what or 'only actions may stand here'}",
            name.span,
            "permissions and obligations are about what the agent does (`agent.warn`, `agent.hang_up`, …)",
        )
        return None
    return et


def no_attribute(c: CheckState, et: EventType, name: ast.Name) -> None:
    """Report that ``et`` has no attribute ``name`` (E012), listing those it has."""
    names = [x.name for x in et.fields]
    listed = listing(names) or "no attributes"
    c.error("E012", f"`{et.name}` has no attribute `{name.text}`", name.span, suggest(c, name.text, names, f"`{et.name}` has {listed}"))


def resolve_name(c: CheckState, ref: ast.NameRef, scope: Scope, expected: Type | None) -> Type | None:
    """The type of a bare name: an attribute inside brackets, else a let, else a value of the ``expected`` enum."""
    name = ref.name
    if scope.event is not None:
        f = scope.event.field(name)
        if f is not None:
            return f.type
    if name in c.lets:
        if isinstance(expected, EnumType) and name in c.members(expected):
            c.error(
                "E016",
                f"`{name}` is both a `let` and a value of `{expected.owner}`",
                ref.span,
                f"rename the `let` `{name}` so that the value is unambiguous",
            )
            return None
        c.used_lets.add(name)
        if name not in c.let_types:  # not yet typed: a let read before it was inferred (cycle or order)
            return None
        return c.let_types[name]
    if isinstance(expected, EnumType):
        if name in c.members(expected):
            return expected
        c.error(
            "E013",
            f"`{name}` is not a value of `{expected.owner}`",
            ref.span,
            suggest(c, name, expected.members, "its values are " + listing(expected.members)),
        )
        return None
    candidates = itertools.chain(c.lets, (f.name for f in scope.event.fields) if scope.event is not None else ())
    fallback = "define it with `let`" + (f", or use an attribute of `{scope.event.name}`" if scope.event is not None and scope.event.name != "?" else "")
    c.error("E011", f"unknown name `{name}`", ref.span, suggest(c, name, candidates, fallback))
    return None
