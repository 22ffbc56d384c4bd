"""Event records (interfaces.md §1): JSON Lines in, validated events out, reasons for every rejection.

Every bound on what one record may cost comes from a :class:`~escalation.lang.limits.Limits`
(``DEFAULT_LIMITS`` when none is given); a record that exceeds one is rejected with a
reason naming the limit and its value.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from attrs import define, field

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency, but the stdlib path stands alone
    _orjson = None  # type: ignore[assignment]
from ..errors import EventError
from ..lang import BOOL, DEFAULT_LIMITS, DURATION, INT, STRING, US, EnumType, EventType, Limits, TimeError, parse_time
from ..suggest import did_you_mean

#: Deepest JSON nesting accepted in one record by default (``Limits.max_json_depth``).
MAX_JSON_DEPTH = DEFAULT_LIMITS.max_json_depth
#: Longest line accepted by default, in bytes (``Limits.max_line_bytes``).
MAX_LINE_BYTES = DEFAULT_LIMITS.max_line_bytes
#: The earliest and latest times the audit log can write (0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z).
MIN_TIME = -62_135_596_800 * US
MAX_TIME = parse_time("9800-12-31T23:59:59.999999Z")  # deadlines (at most 100 years later) stay writable
#: Values longer than this get no "did you mean" (edit distance costs their length times the candidates').
_SUGGEST_MAX_CHARS = 64
#: The longest `time` string that can be RFC 3339 (a fraction of a microsecond padded with zeros is allowed).
_TIME_MAX_CHARS = 64


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


_NON_FINITE = "the record holds a non-finite number (NaN or Infinity, or a number too large for a double such as 1e999)"


def _no_constant(name: str) -> Any:
    raise EventError(_NON_FINITE)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise EventError(_NON_FINITE)
    return value


def _int_parser(limits: Limits) -> Callable[[str], int]:
    most = limits.max_int_digits

    def parse_int(text: str) -> int:
        digits = len(text) - (text[0] == "-")
        if digits > most:
            raise EventError(f"the record holds an integer of {digits} digits, more than the {most} the `max_int_digits` limit allows")
        return int(text)

    return parse_int


@functools.lru_cache(maxsize=16)
def _decoder(limits: Limits) -> json.JSONDecoder:
    """The JSON decoder for ``limits``: duplicate keys, non-finite numbers and long integers refused."""
    return json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float, parse_int=_int_parser(limits), object_pairs_hook=_pairs)


def _too_deep(limits: Limits) -> EventError:
    return EventError(f"the record is nested more than {limits.max_json_depth} levels deep (the `max_json_depth` limit)")


def _check_depth_and_unicode(obj: Any, limits: Limits) -> None:
    stack: list[tuple[Any, int]] = [(obj, 1)]
    most = limits.max_json_depth
    while stack:
        value, depth = stack.pop()
        if depth > most:
            raise _too_deep(limits)
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


def _fast_decode(line: bytes) -> dict[str, Any] | None:
    """The common case, a flat object without escapes, decoded by orjson; None when unsure.

    Anything unusual (escapes, nesting, a duplicate key, a non-finite number, an integer
    beyond 64 bits, bad UTF-8) returns None and goes the careful way, which gives the reason.
    """
    if _orjson is None or b"\\" in line or b"[" in line or line.count(b"{") != 1:
        return None
    try:
        obj = _orjson.loads(line)
    except _orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    strings = len(obj)  # string tokens: every key, and the values that are strings
    for value in obj.values():
        t = type(value)
        if t is str:
            strings += 1
        elif t is float:  # orjson reads huge integers as floats: let the careful path decide
            return None
    # Without escapes a quote only delimits a string, so the line holds exactly these tokens
    # when it has twice as many quotes: a key given twice would be one token more.
    if line.count(b'"') != 2 * strings:
        return None
    return obj


def decode_line(line: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """One input line -> a JSON object, or EventError with the reason."""
    if len(line) > limits.max_line_bytes:
        raise EventError(f"the line is longer than {limits.max_line_bytes} bytes (the `max_line_bytes` limit)")
    fast = _fast_decode(line)
    if fast is not None:
        return fast
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise EventError("the line is not valid UTF-8") from None
    if text.count("[") + text.count("{") > limits.max_json_depth and _depth_exceeds(text, limits.max_json_depth):
        raise _too_deep(limits)
    try:
        obj = _decoder(limits).decode(text)
    except _Duplicate as dup:
        raise EventError(f"the record has the key {show_value(str(dup))} twice") from None
    except EventError:
        raise
    except RecursionError:
        raise _too_deep(limits) from None
    except ValueError as err:
        raise EventError(f"the line is not valid JSON ({str(err).split(':')[0]})") from None
    if not isinstance(obj, dict):
        raise EventError(f"the line is JSON but not an object (it is {_json_kind(obj)})")
    if "\\u" in text or "\\U" in text or text.count("{") + text.count("[") > 1:
        _check_depth_and_unicode(obj, limits)
    return obj


def _depth_exceeds(text: str, most: int) -> bool:
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
            if depth > most:
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


def show_value(value: Any) -> str:
    """A value as JSON for a reason: at most 60 characters, lone surrogates escaped (the log must stay UTF-8)."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):  # not JSON: a value handed in by a library caller
        text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _name(text: str) -> str:
    """A name from the input, in backticks, cut to 60 characters and with lone surrogates escaped."""
    if len(text) > 60:
        text = text[:57] + "..."
    return "`" + text.encode("utf-8", "backslashreplace").decode("utf-8") + "`"


def convert_attribute(event: EventType, name: str, value: Any) -> Any:
    """A JSON attribute value -> the evaluator's value for that field, or EventError."""
    spec = event.field(name)
    assert spec is not None
    t = spec.type
    if isinstance(t, EnumType):
        if isinstance(value, str) and value in t.member_set:
            return value
        if isinstance(value, str):
            guess = did_you_mean(value, t.members) if len(value) <= _SUGGEST_MAX_CHARS else None
            extra = f" (did you mean {guess!r}?)" if guess else ""
            raise EventError(f"`{name}` of `{event.name}` is {show_value(value)}, which is not one of {t.listed()}{extra}")
        raise EventError(f"`{name}` of `{event.name}` must be one of {t.listed()} as a string, not {show_value(value)}")
    if t == INT:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise EventError(f"`{name}` of `{event.name}` must be an integer, not {show_value(value)}")
    if t == BOOL:
        if isinstance(value, bool):
            return value
        raise EventError(f"`{name}` of `{event.name}` must be true or false, not {show_value(value)}")
    if t == STRING:
        if isinstance(value, str):
            return value
        raise EventError(f"`{name}` of `{event.name}` must be a string, not {show_value(value)}")
    if t == DURATION:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            micro = value * US
            if not isinstance(micro, float) or math.isfinite(micro):
                return round(micro)
        raise EventError(f"`{name}` of `{event.name}` must be a non-negative finite number of seconds, not {show_value(value)}")
    raise AssertionError(t)  # pragma: no cover


def parse_event_time(time: str) -> int:
    """An event's `time` -> microseconds, or EventError: RFC 3339 in ASCII, and a time the audit log can write."""
    if len(time) > _TIME_MAX_CHARS or not time.isascii():
        raise EventError(f"`time` {show_value(time)} is not an RFC 3339 date-time with a zone, such as 2026-11-22T10:00:00Z")
    try:
        when = parse_time(time)
    except TimeError as err:
        raise EventError(str(err)) from None
    if not MIN_TIME <= when <= MAX_TIME:
        raise EventError(f"`time` {show_value(time)} is outside the years 0001 to 9800 in UTC (the audit log must be able to write its deadlines)")
    return when


def validate(obj: dict[str, Any], vocabulary: dict[str, EventType]) -> Event:
    """Check the reserved keys and the attributes against the vocabulary (not the time order)."""
    try:
        conversation, time, etype = obj["conversation"], obj["time"], obj["type"]
    except (KeyError, TypeError):  # a key missing, or not an object (a library caller's list)
        for key in ("conversation", "time", "type"):
            if key not in obj:
                raise EventError(f"the record has no `{key}`") from None
        raise  # pragma: no cover - one of the three is missing
    if not isinstance(conversation, str) or not conversation:
        raise EventError(f"`conversation` must be a non-empty string, not {show_value(conversation)}")
    if not isinstance(time, str):
        raise EventError(f"`time` must be an RFC 3339 string, not {show_value(time)}")
    if not isinstance(etype, str):
        raise EventError(f"`type` must be a string, not {show_value(etype)}")
    if "id" in obj and (not isinstance(obj["id"], (str, int)) or isinstance(obj["id"], bool)):
        raise EventError(f"`id` must be a string or an integer, not {show_value(obj['id'])}")
    when = parse_event_time(time)
    et = vocabulary.get(etype)
    if et is None:
        guess = did_you_mean(etype, list(vocabulary)) if len(etype) <= _SUGGEST_MAX_CHARS else None
        extra = f" (did you mean `{guess}`?)" if guess else ""
        raise EventError(f"{_name(etype)} is not an event or action of this policy{extra}")
    values: dict[str, Any] = {}
    for spec in et.fields:
        name = spec.name
        if name in obj:
            value = obj[name]
            t = spec.type
            # The common values need no conversion: a string for a string field, a member for an enum.
            if type(value) is str and (t == STRING or (type(t) is EnumType and value in t.member_set)):
                values[name] = value
            else:
                values[name] = convert_attribute(et, name, value)
        elif spec.has_default:
            default = spec.default
            values[name] = default * US if spec.type == DURATION and isinstance(default, int) else default
        else:
            raise EventError(f"`{etype}` needs the attribute `{name}`")
    return Event(conversation, when, etype, values, obj)


class Line(NamedTuple):
    """One non-blank input line: its position and bytes (one trailing CR removed).

    A NamedTuple rather than a frozen attrs class: one is made per input line, and a
    tuple is made several times faster.
    """

    seq: int
    source: str  # "path:line"
    data: bytes


def iter_lines(path: str, stream: Any, start_seq: int = 1, limits: Limits = DEFAULT_LIMITS) -> Iterator[Line]:
    """The non-blank lines of a binary stream; blank ones count in line numbers but take no seq.

    A line longer than ``limits.max_line_bytes`` is never held whole: its first
    ``max_line_bytes + 1`` bytes stand for it (enough for :func:`decode_line` to
    reject it), and the rest is read past in blocks.
    """
    seq = start_seq
    for number, data in iter_numbered(stream, limits):
        yield Line(seq, f"{path}:{number}", data)
        seq += 1


def iter_numbered(stream: Any, limits: Limits = DEFAULT_LIMITS) -> Iterator[tuple[int, bytes]]:
    """(line number, data) of the non-blank lines of a binary stream, as :func:`iter_lines` reads them."""
    cap = limits.max_line_bytes + 2  # the longest acceptable line with its CR and LF
    readline = stream.readline
    number = 0
    while True:
        raw = readline(cap)
        if not raw:
            return
        number += 1
        if len(raw) == cap and not raw.endswith(b"\n"):  # longer than any acceptable line: skip to its end
            if _drain_is_blank(readline, raw):
                continue
            data = raw[: cap - 1]  # a prefix of the line (its CR may be the last byte read), still too long
        else:
            data = raw[:-1] if raw.endswith(b"\n") else raw
            if data.endswith(b"\r"):
                data = data[:-1]
            if not data.strip(b" \t"):
                continue
        yield number, data


def _drain_is_blank(readline: Callable[[int], bytes], chunk: bytes) -> bool:
    """Read past the rest of a line that begins with ``chunk``; whether the whole line was blank.

    Blank means spaces and tabs only, after one trailing CR is removed (as for any line).
    """
    ok = True  # every byte before the last one seen is a space or a tab
    last = b""
    while chunk:
        end = chunk.endswith(b"\n")
        if end:
            chunk = chunk[:-1]
        if ok and chunk:
            ok = not (last + chunk[:-1]).strip(b" \t")
            last = chunk[-1:]
        if end:
            break
        chunk = readline(1 << 16)
    return ok and last in (b"", b" ", b"\t", b"\r")
