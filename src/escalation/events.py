"""Event records (interfaces.md §1): JSON Lines in, validated events out, reasons for every rejection."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from attrs import define, field, frozen

from .checker import did_you_mean
from .errors import EventError
from .timefmt import US, TimeError, parse_time
from .vocabulary import BOOL, DURATION, INT, STRING, EnumType, EventType

#: Deepest JSON nesting accepted in one record.
MAX_JSON_DEPTH = 64
#: Longest line accepted, in bytes.
MAX_LINE_BYTES = 1_000_000


@define(slots=True)
class Event:
    """A validated event: ``time`` in microseconds, ``attrs`` with every declared field (defaults filled)."""

    conversation: str
    time: int
    type: str
    attrs: dict[str, Any]
    raw: dict[str, Any] = field(factory=dict)


class _Duplicate(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _Duplicate(k)
            seen.add(k)
    return d


def _no_constant(name: str) -> Any:
    raise EventError("the record holds a non-finite number (NaN or Infinity)")


def _check_depth_and_unicode(obj: Any) -> None:
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise EventError(f"the record is nested more than {MAX_JSON_DEPTH} levels deep")
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise EventError("the record holds a string that is not valid Unicode (a lone surrogate)") from None
        elif isinstance(value, dict):
            for k, v in value.items():
                stack.append((k, depth))
                stack.append((v, depth + 1))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def decode_line(line: bytes) -> dict[str, Any]:
    """One input line -> a JSON object, or EventError with the reason."""
    if len(line) > MAX_LINE_BYTES:
        raise EventError(f"the line is longer than {MAX_LINE_BYTES} bytes")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise EventError("the line is not valid UTF-8") from None
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _depth_exceeds(text):
        raise EventError(f"the record is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        obj = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_pairs)
    except _Duplicate as dup:
        raise EventError(f"the record has the key {json.dumps(str(dup), ensure_ascii=False)} twice") from None
    except EventError:
        raise
    except RecursionError:
        raise EventError(f"the record is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as err:
        raise EventError(f"the line is not valid JSON ({str(err).split(':')[0]})") from None
    if not isinstance(obj, dict):
        raise EventError(f"the line is JSON but not an object (it is {_json_kind(obj)})")
    if "\\u" in text or "\\U" in text or text.count("{") + text.count("[") > 1:
        _check_depth_and_unicode(obj)
    return obj


def _depth_exceeds(text: str) -> bool:
    depth = 0
    in_string = escape = False
    for ch in text:
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def convert_attribute(event: EventType, name: str, value: Any) -> Any:
    """A JSON attribute value -> the evaluator's value for that field, or EventError."""
    spec = event.field(name)
    assert spec is not None
    t = spec.type
    if isinstance(t, EnumType):
        if isinstance(value, str) and value in t.members:
            return value
        if isinstance(value, str):
            guess = did_you_mean(value, t.members)
            extra = f" (did you mean {guess!r}?)" if guess else ""
            raise EventError(f"`{name}` of `{event.name}` is {_show(value)}, which is not one of {', '.join(t.members)}{extra}")
        raise EventError(f"`{name}` of `{event.name}` must be one of {', '.join(t.members)} as a string, not {_show(value)}")
    if t == INT:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise EventError(f"`{name}` of `{event.name}` must be an integer, not {_show(value)}")
    if t == BOOL:
        if isinstance(value, bool):
            return value
        raise EventError(f"`{name}` of `{event.name}` must be true or false, not {_show(value)}")
    if t == STRING:
        if isinstance(value, str):
            return value
        raise EventError(f"`{name}` of `{event.name}` must be a string, not {_show(value)}")
    if t == DURATION:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
            return round(value * US)
        raise EventError(f"`{name}` of `{event.name}` must be a non-negative number of seconds, not {_show(value)}")
    raise AssertionError(t)  # pragma: no cover


def validate(obj: dict[str, Any], vocabulary: dict[str, EventType]) -> Event:
    """Check the reserved keys and the attributes against the vocabulary (not the time order)."""
    for key in ("conversation", "time", "type"):
        if key not in obj:
            raise EventError(f"the record has no `{key}`")
    conversation, time, etype = obj["conversation"], obj["time"], obj["type"]
    if not isinstance(conversation, str) or not conversation:
        raise EventError(f"`conversation` must be a non-empty string, not {_show(conversation)}")
    if not isinstance(time, str):
        raise EventError(f"`time` must be an RFC 3339 string, not {_show(time)}")
    if not isinstance(etype, str):
        raise EventError(f"`type` must be a string, not {_show(etype)}")
    if "id" in obj and (not isinstance(obj["id"], (str, int)) or isinstance(obj["id"], bool)):
        raise EventError(f"`id` must be a string or an integer, not {_show(obj['id'])}")
    try:
        when = parse_time(time)
    except TimeError as err:
        raise EventError(str(err)) from None
    et = vocabulary.get(etype)
    if et is None:
        guess = did_you_mean(etype, list(vocabulary))
        extra = f" (did you mean `{guess}`?)" if guess else ""
        raise EventError(f"`{etype}` is not an event or action of this policy{extra}")
    values: dict[str, Any] = {}
    for spec in et.fields:
        if spec.name in obj:
            values[spec.name] = convert_attribute(et, spec.name, obj[spec.name])
        elif spec.has_default:
            default = spec.default
            values[spec.name] = default * US if spec.type == DURATION and isinstance(default, int) else default
        else:
            raise EventError(f"`{etype}` needs the attribute `{spec.name}`")
    return Event(conversation, when, etype, values, obj)


@frozen(slots=True)
class Line:
    """One non-blank input line: its position and bytes (one trailing CR removed)."""

    seq: int
    source: str  # "path:line"
    data: bytes


def iter_lines(path: str, stream: Any, start_seq: int = 1) -> Iterator[Line]:
    """The non-blank lines of a binary stream; blank ones count in line numbers but take no seq."""
    seq = start_seq
    for number, raw in enumerate(stream, 1):
        data = raw[:-1] if raw.endswith(b"\n") else raw
        if data.endswith(b"\r"):
            data = data[:-1]
        if not data.strip(b" \t"):
            continue
        yield Line(seq, f"{path}:{number}", data)
        seq += 1
