"""What every pass of the checker shares: the state of one check, its reporting, and type helpers.

A check is one :class:`CheckState`, filled in by the passes in order (declarations and lets,
then defaults, rules, obligations, tests). Each pass is a function of the state in its own
module; none keeps state of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ..errors import Diagnostic, Span
from ..lang import DURATION, STANDARD, EnumType, EventType, Type, Value, ast, type_name
from ..lang.calendar import DEFAULT_CALENDAR, Calendar

__all__ = ["MAX_LISTED", "MAX_SUGGESTIONS", "SINCE", "CheckState", "Scope", "is_duration", "listing", "same_type", "show"]

#: The type of ``time since P``: a duration that may be compared but not added to.
SINCE = "since"
#: One check makes at most this many suggestions; later diagnostics keep their plain hint.
MAX_SUGGESTIONS = 100
#: Hints list at most this many names (values of an enum, attributes of an event).
MAX_LISTED = 12


def listing(names: Sequence[str]) -> str:
    """`a`, `b`, `c` — at most MAX_LISTED of them, then how many more."""
    shown = ", ".join(f"`{n}`" for n in names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def show(t: Type | None) -> str:
    """A type in the words of a message (`time since` is a duration of its own kind)."""
    if t == SINCE:
        return "a duration (`time since`)"
    return type_name(t) if t is not None else "unknown"


def is_duration(t: Type | None) -> bool:
    """A duration, written or measured by `time since`."""
    return t in (DURATION, SINCE)


def same_type(a: Type, b: Type) -> bool:
    """Whether values of ``a`` and ``b`` may be compared with `==` (every duration is one type here)."""
    if a is b:  # an enum type compared with itself: no walk over its members
        return True
    if is_duration(a) and is_duration(b):
        return True
    return a == b


@attrs.define
class Scope:
    """Where an expression stands: inside a pattern's brackets (``event``) or not; in a claim or not."""

    event: EventType | None = None
    #: In a claim's expression (outside any brackets), where `permitted A` and `forbidden A` may stand.
    claim: bool = False


class CheckState:
    """One check of one policy: what the passes have learnt so far, and every diagnostic found."""

    def __init__(self, policy: ast.Policy, path: str, source: str) -> None:
        self.policy = policy
        self.path = path
        self.source = source
        self.diagnostics: list[Diagnostic] = []
        #: The standard vocabulary and the policy's own `event` and `action` declarations.
        self.vocabulary: dict[str, EventType] = dict(STANDARD)
        self.lets: dict[str, ast.Let] = {}
        #: Each let's type (None: unknown, already reported), and its value where it is a constant.
        self.let_types: dict[str, Type | None] = {}
        self.let_values: dict[str, Value | None] = {}
        #: The lets, each after those it reads, and for each let the lets it reads.
        self.let_order: list[str] = []
        self.let_deps: dict[str, list[str]] = {}
        self.used_lets: set[str] = set()
        self.rules: dict[str, ast.Rule] = {}
        #: The first `default` line of each action.
        self.defaults: dict[str, ast.Default] = {}
        #: The policy's calendar (filled in by the calendar pass), or the default one.
        self.calendar: Calendar = DEFAULT_CALENDAR
        #: How many more "did you mean" hints this check may compute.
        self.suggestions_left = MAX_SUGGESTIONS
        self._member_sets: dict[int, tuple[EnumType, frozenset[str]]] = {}

    def members(self, t: EnumType) -> frozenset[str]:
        """The values of an enum type as a set (an enum may have 100,000 of them)."""
        entry = self._member_sets.get(id(t))
        if entry is None or entry[0] is not t:
            entry = (t, frozenset(t.members))
            self._member_sets[id(t)] = entry
        return entry[1]

    def error(self, code: str, message: str, span: Span, hint: str = "") -> None:
        """Report an error at ``span``."""
        self.diagnostics.append(Diagnostic(code, "error", message, span, hint, self.path))

    def warning(self, code: str, message: str, span: Span, hint: str = "") -> None:
        """Report a warning at ``span``."""
        self.diagnostics.append(Diagnostic(code, "warning", message, span, hint, self.path))
