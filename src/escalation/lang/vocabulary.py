"""The standard events and actions (language.md §4) and the policy's own declarations."""

from __future__ import annotations

from typing import Union

import attrs

#: Value types. Enums are :class:`EnumType` instances; the rest are these strings.
INT = "int"
BOOL = "bool"
STRING = "string"
DURATION = "duration"


@attrs.frozen(slots=True)
class EnumType:
    """The type of one enum field: ``owner`` is ``event.field``; two fields never share a type."""

    owner: str
    members: tuple[str, ...]
    #: The members as a set, for lookups in constant time (an enum may be large).
    member_set: frozenset[str] = attrs.field(init=False, eq=False, repr=False)

    @member_set.default
    def _member_set(self) -> frozenset[str]:
        return frozenset(self.members)

    def __str__(self) -> str:
        return f"`{self.owner}` ({' | '.join(self.members)})"

    def listed(self, most: int = 12) -> str:
        """The members for a message: all of them, or the first ``most`` and how many more."""
        if len(self.members) <= most:
            return ", ".join(self.members)
        return ", ".join(self.members[:most]) + f" and {len(self.members) - most} more"


Type = Union[str, EnumType]
Value = Union[int, bool, str]  # durations are ints (seconds), enum members strings


@attrs.frozen(slots=True)
class Field:
    name: str
    type: Type
    default: Value | None = None
    has_default: bool = False


@attrs.frozen(slots=True)
class EventType:
    """An event or action name with its fields; ``is_action`` for things an agent does."""

    name: str
    is_action: bool
    fields: tuple[Field, ...] = ()
    standard: bool = True

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


def _enum(owner: str, *members: str) -> EnumType:
    return EnumType(owner, members)


def _std() -> dict[str, EventType]:
    events = [
        EventType(
            "interaction.start",
            False,
            (
                Field("channel", _enum("interaction.start.channel", "phone", "chat", "email", "in_person"), "phone", True),
                Field("customer", STRING, "", True),
            ),
        ),
        EventType("interaction.end", False, (Field("by", _enum("interaction.end.by", "agent", "customer", "system"), "system", True),)),
        EventType(
            "customer.message",
            False,
            (
                Field(
                    "abuse",
                    _enum("customer.message.abuse", "none", "profanity", "insult", "harassment", "discrimination", "threat"),
                    "none",
                    True,
                ),
                Field("shouting", BOOL, False, True),
            ),
        ),
        EventType("customer.requests_supervisor", False),
        EventType(
            "fault.determined",
            False,
            (Field("party", _enum("fault.determined.party", "company", "employee", "customer", "third_party", "unknown")),),
        ),
        EventType("issue.resolved", False),
    ]
    actions = [
        EventType("agent.warn", True),
        EventType("agent.apologize", True),
        EventType("agent.summarize", True),
        EventType("agent.offer_solution", True),
        EventType("agent.offer_compensation", True),
        EventType("agent.escalate", True, (Field("to", _enum("agent.escalate.to", "supervisor", "manager", "security"), "supervisor", True),)),
        EventType("agent.hang_up", True),
        EventType("agent.follow_up", True),
        EventType("agent.take_break", True),
    ]
    return {e.name: e for e in events + actions}


STANDARD: dict[str, EventType] = _std()

#: Keys of an event record that are not attributes; declared fields may not use them.
RESERVED_FIELDS = frozenset({"conversation", "time", "type", "id", "customer"})


def type_name(t: Type) -> str:
    """How a type is named in messages."""
    if isinstance(t, EnumType):
        return f"a value of `{t.owner}`"
    return {INT: "a number", BOOL: "true or false", STRING: "a string", DURATION: "a duration"}.get(t, t)
