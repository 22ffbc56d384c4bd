"""Hypothesis strategies for semantically valid policies (source text) and event streams for them.

Unlike ``strategies.py`` (trees the parser can produce, mostly meaningless),
:func:`policy_texts` writes policies that pass the checker: names resolve,
types agree, every `last` of an attribute without a default has an `else`, no
`time since` is added to anything, and no `require` can only be met by an
action that is forbidden by default and never permitted (E024). Conditions
outside brackets always read something that changes (a temporal operator or a
`let` built on one), so none folds to a constant. :func:`event_streams` writes
events that pass validation for a given vocabulary.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date
from functools import partial
from typing import Any, TypeVar

from hypothesis import strategies as st

from escalation.lang.units import US, format_time, parse_time
from escalation.lang.vocabulary import BOOL, DURATION, INT, STANDARD, STRING, EnumType, EventType, Field, Type

T = TypeVar("T")

#: The type of `time since P` in the generator: a duration that may only be compared.
SINCE = "since"
LEVELS = ("low", "medium", "high", "critical")
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
SMALL_DURATIONS = ("0s", "1s", "10s", "30s", "45s", "1m", "90s", "2m", "3m", "5m")
#: Windows and gaps between events share their sizes, so that events fall exactly on a window's edge.
WINDOWS = ("1s", "15s", "30s", "1m", "2m")
STRINGS = ("", "ann", "bob")
BECAUSE = ("Be kind.", 'Say "sorry".', "Escalate — politely.")
BASE_TIME = parse_time("2026-11-22T10:00:00Z")

_LEVEL = EnumType("ticket.note.level", ("lo", "mid", "hi"))
_QUEUE = EnumType("agent.transfer.queue", ("billing", "tech", "fraud"))

#: The declarations a generated policy may add, each field with and without a default.
DECLARABLE: dict[str, tuple[bool, tuple[Field, ...]]] = {
    "ticket.note": (
        False,
        (Field("n", INT, 0, True), Field("urgent", BOOL, False, True), Field("level", _LEVEL, "lo", True), Field("wait", DURATION, 30, True)),
    ),
    "agent.transfer": (True, (Field("queue", _QUEUE, "billing", True), Field("n", INT, 1, True))),
}


def _just(text: str) -> Callable[[], str]:
    return lambda: text


def _literal(value: Any, t: Type) -> str:
    """``value`` of type ``t`` as the policy writes it."""
    if isinstance(t, EnumType):
        return str(value)  # a bare member name
    if isinstance(value, bool):
        return "true" if value else "false"
    if t == DURATION:
        return f"{value}s"  # durations are held in seconds
    return json.dumps(value)


class _Writer:
    """Writes typed expressions for one policy; ``draw`` is the hypothesis draw function."""

    def __init__(self, draw: st.DrawFn, vocabulary: dict[str, EventType], nested: bool = True, language: int = 1) -> None:
        self.draw = draw
        self.nested = nested  # temporal operators inside a pattern's brackets
        self.language = language  # 2: also `across contacts`, `seen ... within`, working days
        self.vocab = vocabulary
        self.names = sorted(vocabulary)
        self.actions = sorted(n for n, e in vocabulary.items() if e.is_action)
        self.lets: list[tuple[str, Type, bool]] = []  # name, type, changes over time
        self.scopes: list[EventType] = []  # the events whose brackets are being written, innermost last

    # -- small helpers
    def across(self) -> str:
        """`` across contacts`` now and then in language 2 (nothing drawn in language 1)."""
        return " across contacts" if self.language >= 2 and self.chance(30) else ""

    def pick(self, options: Sequence[T]) -> T:
        return self.draw(st.sampled_from(options))

    def chance(self, percent: int) -> bool:
        return self.draw(st.integers(0, 99)) < percent

    def let_names(self, kind: Type, dynamic: bool) -> list[str]:
        return [n for n, t, d in self.lets if t == kind and d == dynamic]

    def fields_of(self, kind: Callable[[Type], bool]) -> list[tuple[str, Field]]:
        return [(name, f) for name in self.names for f in self.vocab[name].fields if kind(f.type)]

    # -- patterns
    def pattern(self, depth: int, names: Sequence[str] | None = None) -> str:
        """``event`` or ``event[cond]``; ``depth`` bounds temporal operators nested in brackets."""
        name = self.pick(names or self.names)
        et = self.vocab[name]
        inner = depth - 1 if self.nested else -1
        if self.chance(45 if et.fields else 10) and (et.fields or inner >= 0):
            self.scopes.append(et)
            cond = self.boolean(et, inner, 1)
            self.scopes.pop()
            return f"{name}[{cond}]"
        return name

    def members(self, t: EnumType) -> tuple[str, ...]:
        """The members of ``t`` that can be written here: inside brackets an attribute's name hides a member
        (`customer` in `interaction.start[...]` is the attribute, never `interaction.end.by`'s `customer`)."""
        hidden = {f.name for f in self.scopes[-1].fields} if self.scopes else set()
        return tuple(m for m in t.members if m not in hidden)

    def temporal_pattern(self, depth: int) -> str:
        return self.pattern(depth)

    # -- int
    def int_const(self) -> str:
        options = [str(self.draw(st.integers(0, 4)))]
        options += self.let_names(INT, False)
        if self.chance(10):
            return f"{self.draw(st.integers(0, 3))} + {self.draw(st.integers(0, 2))}"
        return self.pick(options)

    def int_dynamic(self, scope: EventType | None, depth: int) -> str:
        makers: list[Callable[[], str]] = []
        if scope is None or depth >= 0:
            makers += [lambda: self.count(depth)] * 3
            int_fields = self.fields_of(lambda t: t == INT)
            if int_fields:
                makers.append(lambda: self.last(self.pick(int_fields), depth))
        if scope is not None:
            makers += [_just(f.name) for f in scope.fields if f.type == INT] * 2
        makers += [_just(n) for n in self.let_names(INT, True)]
        if not makers:
            return self.count(0)
        made = self.pick(makers)()
        if self.chance(15):
            op = self.pick("+-")
            other = self.int_const() if self.chance(60) else self.int_dynamic(scope, depth - 1)
            return f"{made} {op} ({other})" if " " in other else f"{made} {op} {other}"
        return made

    def count(self, depth: int) -> str:
        text = f"count {self.temporal_pattern(depth)}"
        if self.chance(35):
            text += f" since {self.temporal_pattern(depth)}"
        if self.chance(30):
            text += f" within {self.pick(WINDOWS)}"
        return text + self.across()

    def last(self, owner_field: tuple[str, Field], depth: int, force_else: bool = False) -> str:
        owner, f = owner_field
        text = f"last {f.name} of {self.pattern(depth, [owner])}{self.across()}"
        lets = [n for n, t, _ in self.lets if t == f.type or (f.type == DURATION and t == SINCE)]
        if lets and self.chance(15):  # `else` a `let`: its value at that moment
            return f"{text} else {self.pick(lets)}"
        if not f.has_default or force_else or self.chance(50):
            text += f" else {_literal(self.value_of(f.type), f.type)}"
        return text

    def value_of(self, t: Type) -> Any:
        if isinstance(t, EnumType):
            return self.pick(self.members(t))
        if t == INT:
            return self.draw(st.integers(0, 4))
        if t == BOOL:
            return self.draw(st.booleans())
        if t == STRING:
            return self.pick(STRINGS)
        if t == DURATION:
            return self.pick((0, 10, 30, 60, 90))
        raise AssertionError(t)

    # -- durations
    def duration_const(self) -> str:
        options = [self.pick(SMALL_DURATIONS)] * 3 + self.let_names(DURATION, False)
        if self.chance(10):
            return f"{self.pick(SMALL_DURATIONS)} + {self.pick(SMALL_DURATIONS)}"
        return self.pick(options)

    def duration_dynamic(self, scope: EventType | None, depth: int) -> str | None:
        """A duration that changes (an attribute, a `last`, a `let`), None when the vocabulary has none."""
        makers: list[Callable[[], str]] = [_just(n) for n in self.let_names(DURATION, True)]
        if scope is None or depth >= 0:
            makers += [partial(self.last, of, depth) for of in self.fields_of(lambda t: t == DURATION)]
        if scope is not None:
            makers += [_just(f.name) for f in scope.fields if f.type == DURATION] * 2
        if not makers:
            return None
        made = self.pick(makers)()
        return f"{made} {self.pick('+-')} {self.pick(SMALL_DURATIONS)}" if self.chance(20) else made

    def since(self, depth: int) -> str:
        lets = self.let_names(SINCE, True)
        if lets and self.chance(40):
            return self.pick(lets)
        return f"time since {self.temporal_pattern(depth)}{self.across()}"

    # -- enums
    def enum_dynamic(self, scope: EventType | None, depth: int) -> tuple[str, EnumType]:
        """An enum value that changes (a `last`, an attribute, a `let`) and its type."""
        lasts: list[tuple[str, Field]] = self.fields_of(lambda t: isinstance(t, EnumType)) if scope is None or depth >= 0 else []
        names: list[tuple[str, Type]] = [(f.name, f.type) for f in (scope.fields if scope is not None else ())] * 4
        names += [(n, t) for n, t, dynamic in self.lets if dynamic]
        names = [(n, t) for n, t in names if isinstance(t, EnumType)]
        choice = self.draw(st.integers(0, len(lasts) + len(names) - 1))
        if choice < len(lasts):
            text, t = self.last(lasts[choice], depth), lasts[choice][1].type
        else:
            text, t = names[choice - len(lasts)]
        assert isinstance(t, EnumType)
        return text, t

    # -- booleans
    def boolean(self, scope: EventType | None, depth: int, size: int) -> str:
        """A condition that reads something that changes (never a constant)."""
        makers: list[Callable[[], str]] = []
        if scope is not None and scope.fields:
            makers += [lambda: self.attribute_condition(scope)] * 6
        if scope is None or depth >= 0:
            makers += [
                lambda: self.compare_ints(scope, depth),
                lambda: self.compare_ints(scope, depth),
                lambda: self.seen(depth),
                lambda: self.compare_durations(scope, depth),
                lambda: self.compare_enum(scope, depth),
                lambda: self.last_bool_or_string(depth),
            ]
        makers += [_just(n) for n in self.let_names(BOOL, True)]
        if size > 0:
            makers += [
                lambda: f"not ({self.boolean(scope, depth, size - 1)})",
                lambda: f"({self.boolean(scope, depth, size - 1)}) and ({self.boolean(scope, depth, size - 1)})",
                lambda: f"({self.boolean(scope, depth, size - 1)}) or ({self.boolean(scope, depth, size - 1)})",
            ]
        if not makers:  # brackets too deep for a temporal operator, on an event without attributes
            return self.seen(0)
        return self.pick(makers)()

    def attribute_condition(self, scope: EventType) -> str:
        f = self.pick(scope.fields)
        t = f.type
        if isinstance(t, EnumType):
            m = self.pick(self.members(t))
            shape = self.draw(st.integers(0, 3))
            if shape == 0:
                return f"{f.name} == {m}"
            if shape == 1:
                return f"{f.name} != {m}"
            if shape == 2:
                return f"{m} == {f.name}"
            members = self.draw(st.lists(st.sampled_from(self.members(t)), min_size=1, max_size=3, unique=True))
            return f"{f.name} in {{{', '.join(members)}}}"
        if t == BOOL:
            return self.pick([f.name, f"not {f.name}", f"{f.name} == {_literal(self.draw(st.booleans()), BOOL)}"])
        if t == INT:
            if self.chance(15):
                return f"{f.name} in {{{', '.join(map(str, self.draw(st.lists(st.integers(0, 4), min_size=1, max_size=3))))}}}"
            return f"{f.name} {self.pick(COMPARISONS)} {self.int_const()}"
        if t == STRING:
            return f"{f.name} {self.pick(('==', '!='))} {json.dumps(self.pick(STRINGS))}"
        if t == DURATION:
            left = f"{f.name} + {self.pick(SMALL_DURATIONS)}" if self.chance(20) else f.name
            return f"{left} {self.pick(COMPARISONS)} {self.duration_const()}"
        raise AssertionError(t)

    def compare_ints(self, scope: EventType | None, depth: int) -> str:
        left = self.int_dynamic(scope, depth)
        if self.chance(10):
            choices = [str(i) for i in range(5)] + self.let_names(INT, False) + self.let_names(INT, True)
            members = self.draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3))
            return f"{left} in {{{', '.join(members)}}}"
        right = self.int_const() if self.chance(75) else self.int_dynamic(scope, depth - 1)
        op = self.pick(COMPARISONS)
        return f"{right} {op} {left}" if self.chance(20) else f"{left} {op} {right}"

    def seen(self, depth: int) -> str:
        text = f"seen {self.temporal_pattern(depth)}"
        if self.chance(40):
            text += f" since {self.temporal_pattern(depth)}"
        if self.language >= 2 and self.chance(30):
            text += f" within {self.pick(WINDOWS)}"
        return text + self.across()

    def compare_durations(self, scope: EventType | None, depth: int) -> str:
        """`time since` and other durations compared; a `time since` is never added to anything."""
        dynamic = self.duration_dynamic(scope, depth)
        left = dynamic if dynamic is not None and self.chance(30) else self.since(depth)
        right = self.since(depth) if self.chance(10) else self.duration_const()
        if self.chance(5):
            return f"{left} in {{{', '.join(self.draw(st.lists(st.sampled_from(SMALL_DURATIONS), min_size=1, max_size=3)))}}}"
        return f"{left} {self.pick(COMPARISONS)} {right}"

    def compare_enum(self, scope: EventType | None, depth: int) -> str:
        text, t = self.enum_dynamic(scope, depth)
        shape = self.draw(st.integers(0, 3))
        if shape == 0:
            members = self.draw(st.lists(st.sampled_from(self.members(t)), min_size=1, max_size=3, unique=True))
            return f"{text} in {{{', '.join(members)}}}"
        m = self.pick(self.members(t))
        op = self.pick(("==", "!="))
        return f"{m} {op} {text}" if shape == 1 else f"{text} {op} {m}"

    def last_bool_or_string(self, depth: int) -> str:
        owner_field = self.pick(self.fields_of(lambda t: t in (BOOL, STRING)))
        text = self.last(owner_field, depth)
        if owner_field[1].type == BOOL:
            return text if self.chance(50) else f"{text} == {_literal(self.draw(st.booleans()), BOOL)}"
        return f"{text} {self.pick(('==', '!='))} {json.dumps(self.pick(STRINGS))}"

    # -- items
    def let(self, index: int) -> str:
        kind = self.pick(("int", "int", "bool", "bool", "enum", "since", "duration", "int_const", "duration_const"))
        name = f"v{index}"
        t: Type
        if kind == "int":
            expr, t, dynamic = self.int_dynamic(None, 1), INT, True
        elif kind == "bool":
            expr, t, dynamic = self.boolean(None, 1, 1), BOOL, True
        elif kind == "enum":
            expr, enum = self.enum_dynamic(None, 1)
            t, dynamic = enum, True
        elif kind == "duration" and self.fields_of(lambda t: t == DURATION):
            expr, t, dynamic = self.duration_dynamic(None, 1) or "", DURATION, True
        elif kind in ("since", "duration"):
            expr, t, dynamic = f"time since {self.pattern(1)}", SINCE, True
        elif kind == "int_const":
            expr, t, dynamic = str(self.draw(st.integers(0, 4))), INT, False
        else:
            expr, t, dynamic = self.pick(SMALL_DURATIONS), DURATION, False
        self.lets.append((name, t, dynamic))
        return f"let {name} = {expr}"

    def require(self) -> tuple[str, list[str]]:
        """A `require` effect and the actions it accepts."""
        count = self.pick((1, 1, 1, 2, 3))
        patterns = [self.pattern(1, self.actions) for _ in range(count)]
        shape = self.pick(("within", "within", "before", "both"))
        text = "require " + " or ".join(patterns)
        if shape != "before":
            if self.language >= 2 and self.chance(30):
                n = self.draw(st.integers(1, 20))
                text += f" within {n} working {'day' if n == 1 else 'days'}"
            else:
                text += f" within {self.pick(SMALL_DURATIONS)}"
        if shape != "within":
            text += f" before {self.pick(['interaction.end', 'interaction.end', *self.names])}"
        return text, [p.split("[")[0] for p in patterns]

    def notes(self) -> list[str]:
        notes = []
        if self.chance(30):
            notes.append("because " + json.dumps(self.pick(BECAUSE), ensure_ascii=False))
        if self.chance(40):
            notes.append(f"severity {self.pick(LEVELS)}")
        return self.draw(st.permutations(notes))


def _declaration(name: str, is_action: bool, fields: tuple[Field, ...]) -> str:
    parts = []
    for f in fields:
        t = " | ".join(f.type.members) if isinstance(f.type, EnumType) else str(f.type)
        parts.append(f"{f.name}: {t}" + (f" = {_literal(f.default, f.type)}" if f.has_default else ""))
    return f"{'action' if is_action else 'event'} {name} {{ {', '.join(parts)} }}"


#: Zones a generated calendar may name (links such as `GB` count).
ZONES = ("UTC", "Europe/London", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "GB")
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _calendar(draw: st.DrawFn) -> str:
    """A valid `calendar` block: each item optional, in any order; holidays are real, distinct dates."""
    items = []
    if draw(st.booleans()):
        items.append(f'zone "{draw(st.sampled_from(ZONES))}"')
    if draw(st.booleans()):
        days = draw(st.lists(st.sampled_from(WEEKDAY_NAMES), min_size=1, max_size=7, unique=True))
        items.append("week " + " ".join(days))
    for _ in range(draw(st.integers(0, 2))):
        dates = draw(st.lists(st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31)), min_size=1, max_size=3, unique=True))
        items.append("holidays " + ", ".join(f'"{d.isoformat()}"' for d in dates))
    items = draw(st.permutations(items))
    return "calendar {\n" + "".join(f"  {i}\n" for i in items) + "}"


@st.composite
def policy_texts(draw: st.DrawFn, max_rules: int = 5, max_lets: int = 4, nested: bool = True, language: int = 1) -> str:
    """A policy that passes the checker, over the standard vocabulary and up to two declarations.

    With ``nested=False`` no temporal operator is written inside a pattern's brackets
    (a `let` built on one may still be read there). With ``language=2`` operators may read
    the customer's history (`across contacts`), `seen` may have a window, deadlines may be in
    working days and a `calendar` may be declared (warnings W005, W006, W007 may then appear,
    never an error).
    """
    vocabulary = dict(STANDARD)
    lines = ['policy "Generated" version "1"']
    for name in draw(st.lists(st.sampled_from(sorted(DECLARABLE)), max_size=2, unique=True)):
        is_action, fields = DECLARABLE[name]
        chosen = tuple(
            f if draw(st.booleans()) else Field(f.name, f.type, None, False)
            for f in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=len(fields), unique=True))
        )
        vocabulary[name] = EventType(name, is_action, chosen, standard=False)
        lines.append(_declaration(name, is_action, chosen))
    w = _Writer(draw, vocabulary, nested, language)
    if language >= 2 and draw(st.booleans()):
        lines.append(_calendar(draw))

    defaults: dict[str, str] = {}
    for action in draw(st.lists(st.sampled_from(w.actions), max_size=3, unique=True)):
        effect = "forbid" if draw(st.integers(0, 4)) else "permit"
        defaults[action] = effect
        severity = f" severity {w.pick(LEVELS)}" if draw(st.booleans()) else ""
        lines.append(f"default {effect} {action}{severity}")

    lets = [w.let(i) for i in range(draw(st.integers(0, max_lets)))]
    lines += draw(st.permutations(lets))  # a `let` is visible in the whole file, in any order

    permitted: set[str] = set()
    required: list[list[str]] = []
    for index in range(draw(st.integers(1, max_rules))):
        effects: list[str] = []
        if draw(st.booleans()):
            trigger = f"while {w.boolean(None, 1, 2)}"
            for _ in range(draw(st.integers(1, 3))):
                kind = w.pick(("permit", "forbid", "require"))
                if kind == "require":
                    text, actions = w.require()
                    required.append(actions)
                    effects.append(text)
                else:
                    action = w.pick(w.actions)
                    if kind == "permit":
                        permitted.add(action)
                    effects.append(f"{kind} {action}")
        else:
            trigger = f"on {w.pattern(2)}"
            if draw(st.integers(0, 2)) == 0:
                trigger += f" if {w.boolean(None, 1, 1)}"
            for _ in range(draw(st.integers(1, 2))):
                text, actions = w.require()
                required.append(actions)
                effects.append(text)
        lines.append("\n".join([f"rule r{index} {{", f"  {trigger}", *(f"  {e}" for e in effects + w.notes()), "}"]))

    # E024: an obligation met only by actions forbidden by default needs a rule that permits one of them
    for actions in required:
        if all(defaults.get(a) == "forbid" and a not in permitted for a in actions):
            action = w.pick(actions)
            permitted.add(action)
            lines.append(f"rule allow_{action.replace('.', '_')} {{\n  while {w.boolean(None, 1, 1)}\n  permit {action}\n}}")
    return "\n\n".join(lines) + "\n"


# ---------------------------------------------------------------- events


def _attribute_value(draw: st.DrawFn, t: Type) -> Any:
    if isinstance(t, EnumType):
        return draw(st.sampled_from(t.members))
    if t == INT:
        return draw(st.integers(0, 5))
    if t == BOOL:
        return draw(st.booleans())
    if t == STRING:
        return draw(st.sampled_from(STRINGS))
    if t == DURATION:
        return draw(st.one_of(st.integers(0, 120), st.sampled_from((0.5, 29.999999, 30.25))))
    raise AssertionError(t)


@st.composite
def event_records(
    draw: st.DrawFn, vocabulary: dict[str, EventType], conversation: str, max_events: int = 20, prefer: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The events of one conversation as JSON objects, times never going backwards (often equal).

    Two thirds of the types are drawn from ``prefer`` (say, the names a policy mentions) when it is given.
    """
    names = sorted(vocabulary)
    types = st.one_of(st.sampled_from(names), st.sampled_from(sorted(prefer)), st.sampled_from(sorted(prefer))) if prefer else st.sampled_from(names)
    out: list[dict[str, Any]] = []
    now = BASE_TIME + draw(st.integers(0, 60)) * US
    tempo = draw(st.sampled_from((1, 15, 30, 60)))  # most gaps are 0, 1 or 2 beats: windows and deadlines end on events
    beats = st.sampled_from((0, tempo, tempo, 2 * tempo)).map(lambda s: s * US)
    seconds = st.integers(0, 120).map(lambda s: s * US)
    fractions = st.integers(0, 4 * US)
    for _ in range(draw(st.integers(0, max_events))):
        kind = draw(st.integers(0, 9))
        now += draw(fractions if kind == 0 else seconds if kind <= 2 else beats)
        et = vocabulary[draw(types)]
        record: dict[str, Any] = {"conversation": conversation, "time": format_time(now), "type": et.name}
        for f in et.fields:
            if not f.has_default or draw(st.booleans()):
                record[f.name] = _attribute_value(draw, f.type)
        out.append(record)
    return out


@st.composite
def event_streams(
    draw: st.DrawFn, vocabulary: dict[str, EventType], max_conversations: int = 3, max_events: int = 20, prefer: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Events of 1–``max_conversations`` conversations, interleaved; each conversation's times never go backwards."""
    count = draw(st.integers(1, max_conversations))
    per = [draw(event_records(vocabulary, f"c{i + 1}", max_events, prefer)) for i in range(count)]
    order = draw(st.permutations([i for i, events in enumerate(per) for _ in events]))
    cursors = [0] * len(per)
    stream = []
    for i in order:
        stream.append(per[i][cursors[i]])
        cursors[i] += 1
    return stream


def events_as_jsonl(events: Sequence[dict[str, Any]]) -> str:
    """The events as input lines (JSON Lines, one object per line, each ending in LF)."""
    return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events)


def mentioned(text: str, vocabulary: dict[str, EventType]) -> list[str]:
    """The event and action names that occur in a policy text."""
    return [name for name in sorted(vocabulary) if name in text]
