"""The limits that bound what hostile input can cost, with their defaults, in one place (docs/security.md).

Event limits are enforced by :mod:`escalation.runtime.events`, which takes a :class:`Limits`
(``Limits()`` when none is given); ``max_open_conversations`` is for the replay, which
rejects the events of further new conversations (:func:`escalation.runtime.events.admit_conversation`).
The policy limits are the constants :data:`MAX_SOURCE_CHARS` and :data:`MAX_DEPTH`, which the
parser imports from here; it does not read them from a ``Limits`` yet. A record refused by a
limit is rejected with a reason that names the limit and its value.
"""

from __future__ import annotations

from attrs import fields, frozen

__all__ = ["DEFAULT_LIMITS", "MAX_DEPTH", "MAX_DURATION_DAYS", "MAX_DURATION_SECONDS", "MAX_SOURCE_CHARS", "Limits"]

#: Parse-tree depth beyond which a policy is refused (keeps every later pass off Python's recursion limit).
MAX_DEPTH = 200
#: The largest policy source accepted, in characters.
MAX_SOURCE_CHARS = 4_000_000
#: The longest duration a policy may write, in days (language.md §10: a check error beyond), and in seconds.
#: The largest N of `within N working days` is ``lang.calendar.MAX_WORKING_DAYS``.
MAX_DURATION_DAYS = 36_500
MAX_DURATION_SECONDS = MAX_DURATION_DAYS * 86_400


@frozen(slots=True, kw_only=True)
class Limits:
    """Configurable bounds on input size and on replay state; every field is a positive integer."""

    #: The longest event line accepted, in bytes (without its LF and one CR). Longer lines are
    #: rejected; only their first ``max_line_bytes + 1`` bytes are kept in memory and in ``raw``.
    max_line_bytes: int = 1_000_000
    #: The deepest nesting of arrays and objects accepted in one event record (the record itself is level 1).
    max_json_depth: int = 64
    #: The most digits a JSON integer in an event may have (a leading minus sign is not counted).
    max_int_digits: int = 100
    #: The most conversations one replay keeps open; events of further new conversations are rejected.
    max_open_conversations: int = 1_000_000
    #: The largest policy source, in characters (the parser's limit).
    max_policy_chars: int = MAX_SOURCE_CHARS
    #: The deepest parse tree of a policy (the parser's limit; it keeps every pass off Python's recursion limit).
    max_policy_depth: int = MAX_DEPTH

    def __attrs_post_init__(self) -> None:
        for f in fields(Limits):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"the limit `{f.name}` must be a positive integer, not {value!r}")


#: The limits in force when none are given.
DEFAULT_LIMITS = Limits()
