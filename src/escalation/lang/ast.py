"""The abstract syntax tree of a policy: frozen, slotted attrs classes.

Every node carries the :class:`~escalation.errors.Span` it was parsed from.
Spans take no part in equality, so two trees compare equal when they say the
same thing, wherever it was written (the formatter relies on this).
"""

from __future__ import annotations

from typing import Union

import attrs

from ..errors import NO_SPAN, Span


def _span() -> Span:
    return attrs.field(default=NO_SPAN, eq=False, repr=False)


@attrs.frozen(slots=True)
class Name:
    """A name as written: a plain identifier, a dotted event or action name, a level."""

    text: str
    span: Span = _span()


# ---------------------------------------------------------------- expressions


@attrs.frozen(slots=True)
class IntLit:
    value: int
    span: Span = _span()


@attrs.frozen(slots=True)
class DurationLit:
    """A duration as written (``text`` keeps ``2m`` distinct from ``120s``)."""

    text: str
    span: Span = _span()

    @property
    def seconds(self) -> int:
        return int(self.text[:-1]) * _UNIT_SECONDS[self.text[-1]]


_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@attrs.frozen(slots=True)
class StringLit:
    value: str
    span: Span = _span()


@attrs.frozen(slots=True)
class BoolLit:
    value: bool
    span: Span = _span()


@attrs.frozen(slots=True)
class NameRef:
    """A bare name in an expression: an attribute, a ``let``, or an enum member."""

    name: str
    span: Span = _span()


Literal = Union[IntLit, DurationLit, StringLit, BoolLit, NameRef]


@attrs.frozen(slots=True)
class Group:
    """Parentheses the author wrote."""

    expr: Expr
    span: Span = _span()


@attrs.frozen(slots=True)
class Not:
    operand: Expr
    span: Span = _span()


@attrs.frozen(slots=True)
class BoolOp:
    op: str  # "and" | "or"
    left: Expr
    right: Expr
    span: Span = _span()


@attrs.frozen(slots=True)
class Compare:
    op: str  # == != < <= > >=
    left: Expr
    right: Expr
    span: Span = _span()


@attrs.frozen(slots=True)
class Arith:
    op: str  # + -
    left: Expr
    right: Expr
    span: Span = _span()


@attrs.frozen(slots=True)
class In:
    left: Expr
    members: tuple[Literal, ...]
    span: Span = _span()


@attrs.frozen(slots=True)
class Pattern:
    """``event[cond]``: events of one type whose attributes satisfy ``cond``."""

    event: Name
    cond: Expr | None = None
    span: Span = _span()


# ``across`` (language.md §9): the operator ends with ``across contacts`` and reads the
# customer history instead of the interaction's own.


@attrs.frozen(slots=True)
class Count:
    pattern: Pattern
    since: Pattern | None = None
    window: DurationLit | None = None
    across: bool = False
    span: Span = _span()


@attrs.frozen(slots=True)
class Seen:
    pattern: Pattern
    since: Pattern | None = None
    window: DurationLit | None = None
    across: bool = False
    span: Span = _span()


@attrs.frozen(slots=True)
class Last:
    attr: Name
    pattern: Pattern
    default: Literal | None = None
    across: bool = False
    span: Span = _span()


@attrs.frozen(slots=True)
class TimeSince:
    pattern: Pattern
    across: bool = False
    span: Span = _span()


@attrs.frozen(slots=True)
class PermittedAtom:
    """``permitted A`` or ``forbidden A``: the permission of an action, only inside a claim (language.md §11)."""

    permitted: bool
    action: Name
    span: Span = _span()


Temporal = Union[Count, Seen, Last, TimeSince]
Expr = Union[IntLit, DurationLit, StringLit, BoolLit, NameRef, Group, Not, BoolOp, Compare, Arith, In, Count, Seen, Last, TimeSince, PermittedAtom]

# ---------------------------------------------------------------- declarations


@attrs.frozen(slots=True)
class TypeRef:
    """``int``, ``bool``, ``string``, ``duration``, or an enum ``a | b | c``."""

    base: str  # "int" | "bool" | "string" | "duration" | "enum"
    members: tuple[Name, ...] = ()
    span: Span = _span()


@attrs.frozen(slots=True)
class FieldDecl:
    name: Name
    type: TypeRef
    default: Literal | None = None
    span: Span = _span()


@attrs.frozen(slots=True)
class Decl:
    """``event NAME { fields }`` or ``action NAME { fields }``."""

    kind: str  # "event" | "action"
    name: Name
    fields: tuple[FieldDecl, ...] = ()
    span: Span = _span()


@attrs.frozen(slots=True)
class Let:
    name: Name
    expr: Expr
    span: Span = _span()


@attrs.frozen(slots=True)
class Default:
    effect: str  # "permit" | "forbid"
    action: Name
    severity: Name | None = None
    span: Span = _span()


# ---------------------------------------------------------------- rules


@attrs.frozen(slots=True)
class On:
    pattern: Pattern
    cond: Expr | None = None
    span: Span = _span()


@attrs.frozen(slots=True)
class While:
    cond: Expr
    span: Span = _span()


Trigger = Union[On, While]


@attrs.frozen(slots=True)
class Permission:
    effect: str  # "permit" | "forbid"
    action: Name
    span: Span = _span()


@attrs.frozen(slots=True)
class WorkingDays:
    """``N working days`` (or ``1 working day``): a deadline counted in the policy's calendar (language.md §10).

    ``day`` and ``days`` mean the same after any N, so ``unit`` takes no part in equality
    (``fmt`` writes ``day`` after 1 and ``days`` otherwise).
    """

    count: IntLit
    unit: str = attrs.field(eq=False)  # "day" | "days", as written
    span: Span = _span()


@attrs.frozen(slots=True)
class Require:
    """``require P or Q within D before E``: an obligation owed by the agent."""

    patterns: tuple[Pattern, ...]
    within: DurationLit | WorkingDays | None = None
    before: Name | None = None
    span: Span = _span()


Effect = Union[Permission, Require]


@attrs.frozen(slots=True)
class Because:
    text: StringLit
    span: Span = _span()


@attrs.frozen(slots=True)
class SeverityNote:
    level: Name
    span: Span = _span()


Note = Union[Because, SeverityNote]


@attrs.frozen(slots=True)
class Rule:
    name: Name
    trigger: Trigger
    effects: tuple[Effect, ...]
    notes: tuple[Note, ...] = ()
    span: Span = _span()

    @property
    def because(self) -> str | None:
        for note in self.notes:
            if isinstance(note, Because):
                return note.text.value
        return None

    @property
    def severity(self) -> str | None:
        for note in self.notes:
            if isinstance(note, SeverityNote):
                return note.level.text
        return None


# ---------------------------------------------------------------- tests


@attrs.frozen(slots=True)
class Arg:
    name: Name
    value: Literal
    span: Span = _span()


@attrs.frozen(slots=True)
class EventStep:
    event: Name
    args: tuple[Arg, ...] = ()
    at: DurationLit | None = None
    span: Span = _span()


@attrs.frozen(slots=True)
class ExpectPermission:
    permitted: bool
    action: Name
    span: Span = _span()


@attrs.frozen(slots=True)
class ContactStep:
    """``contact``: later steps belong to a new interaction of the same customer (language.md §7, §9)."""

    span: Span = _span()


@attrs.frozen(slots=True)
class ExpectObligation:
    action: Name
    due: DurationLit | StringLit | None = None  # an offset from the test's time 0, or an RFC 3339 time
    span: Span = _span()


@attrs.frozen(slots=True)
class ExpectViolation:
    kind: str  # forbidden_action | missed_deadline | unfulfilled
    rule: Name | None = None  # a rule name, or "default"
    span: Span = _span()


@attrs.frozen(slots=True)
class ExpectNoViolations:
    span: Span = _span()


@attrs.frozen(slots=True)
class ExpectFired:
    rule: Name
    span: Span = _span()


Step = Union[EventStep, ContactStep, ExpectPermission, ExpectObligation, ExpectViolation, ExpectNoViolations, ExpectFired]


@attrs.frozen(slots=True)
class Test:
    name: StringLit
    steps: tuple[Step, ...] = ()
    start: StringLit | None = None  # `from "TIME"`: the test's time 0 (2026-01-05T09:00:00Z when None)
    span: Span = _span()


# ---------------------------------------------------------------- calendars and claims


@attrs.frozen(slots=True)
class CalendarZone:
    """``zone "Europe/London"``."""

    name: StringLit
    span: Span = _span()


@attrs.frozen(slots=True)
class CalendarWeek:
    """``week mon tue wed thu fri``: the working days of the week."""

    days: tuple[Name, ...]
    span: Span = _span()


@attrs.frozen(slots=True)
class CalendarHolidays:
    """``holidays "2026-12-25", "2026-12-28"``: dates that are not working days."""

    dates: tuple[StringLit, ...]
    span: Span = _span()


CalendarItem = Union[CalendarZone, CalendarWeek, CalendarHolidays]


@attrs.frozen(slots=True)
class Calendar:
    """``calendar { ... }``: the policy's calendar for deadlines in working days (language.md §10)."""

    items: tuple[CalendarItem, ...] = ()
    span: Span = _span()


@attrs.frozen(slots=True)
class Claim:
    """``claim "name" { always expr }``: something that must hold in every interaction (language.md §11)."""

    name: StringLit
    expr: Expr
    span: Span = _span()


Item = Union[Let, Default, Decl, Calendar, Rule, Test, Claim]


@attrs.frozen(slots=True)
class Comment:
    """A ``#`` comment; kept beside the tree (not in it) for the formatter."""

    text: str  # including the leading '#'
    line: int
    column: int
    own_line: bool  # nothing but blanks before it on its line


@attrs.frozen(slots=True)
class Policy:
    name: StringLit
    version: StringLit | None
    items: tuple[Item, ...]
    span: Span = _span()

    @property
    def lets(self) -> list[Let]:
        return [i for i in self.items if isinstance(i, Let)]

    @property
    def rules(self) -> list[Rule]:
        return [i for i in self.items if isinstance(i, Rule)]

    @property
    def defaults(self) -> list[Default]:
        return [i for i in self.items if isinstance(i, Default)]

    @property
    def decls(self) -> list[Decl]:
        return [i for i in self.items if isinstance(i, Decl)]

    @property
    def tests(self) -> list[Test]:
        return [i for i in self.items if isinstance(i, Test)]

    @property
    def calendars(self) -> list[Calendar]:
        """Every `calendar` item (a policy may have at most one; the checker reports a second)."""
        return [i for i in self.items if isinstance(i, Calendar)]

    @property
    def claims(self) -> list[Claim]:
        return [i for i in self.items if isinstance(i, Claim)]


def children(node: object) -> list[object]:
    """The child nodes of ``node`` in source order (for generic walks)."""
    out: list[object] = []
    for f in attrs.fields(type(node)):  # type: ignore[arg-type]
        if f.name == "span":
            continue
        value = getattr(node, f.name)
        if isinstance(value, tuple):
            out.extend(v for v in value if attrs.has(type(v)))
        elif value is not None and attrs.has(type(value)):
            out.append(value)
    return out


def walk(node: object) -> list[object]:
    """Every node below and including ``node``, pre-order, without recursion."""
    out: list[object] = []
    stack = [node]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(reversed(children(current)))
    return out
