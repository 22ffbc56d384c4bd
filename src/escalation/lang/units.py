"""Units of time: durations as integer microseconds (`US` to a second); RFC 3339 times <-> integer microseconds since the epoch (UTC)."""

from __future__ import annotations

import functools
import re
from datetime import datetime, timedelta, timezone

from ..errors import EXIT_USAGE, EscalationError

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))\Z"
)
_SIMPLE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}[Zz]\Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NAIVE_EPOCH = datetime(1970, 1, 1)
US = 1_000_000


class TimeError(EscalationError, ValueError):
    """A time that is not RFC 3339 with a zone, or is finer than a microsecond."""

    exit_code = EXIT_USAGE


@functools.lru_cache(maxsize=4096)
def _days(date: str) -> int:
    """``YYYY-MM-DD`` -> days since 1970-01-01 (ValueError for an impossible date)."""
    return (datetime(int(date[0:4]), int(date[5:7]), int(date[8:10])) - _NAIVE_EPOCH).days


def parse_time(text: str) -> int:
    """``2026-11-22T11:00:00.250+01:00`` -> microseconds since 1970-01-01T00:00:00Z."""
    if len(text) == 20 and text[19] in "Zz" and text[10] in "Tt" and _SIMPLE.match(text):  # the common case, fast
        try:
            days = _days(text[:10])
        except ValueError as err:
            raise TimeError(f"`time` {text!r} is not a valid date-time ({err})") from None
        hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
        if hour < 24 and minute < 60 and second < 60:
            return ((days * 24 + hour) * 60 + minute) * 3_600_000_000 // 60 + second * US
    m = _RFC3339.match(text)
    if m is None:
        raise TimeError(f"`time` {text!r} is not an RFC 3339 date-time with a zone, such as 2026-11-22T10:00:00Z")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    if len(frac) > 6 and frac[6:].strip("0"):
        raise TimeError(f"`time` {text!r} is finer than a microsecond")
    micro = int((frac[:6]).ljust(6, "0")) if frac else 0
    try:
        if m.group(8):
            tz = timezone.utc
        else:
            off_h, off_m = int(m.group(10)), int(m.group(11))
            if off_h > 23 or off_m > 59:
                raise ValueError("offset out of range")
            sign = -1 if m.group(9) == "-" else 1
            tz = timezone(sign * timedelta(hours=off_h, minutes=off_m))
        dt = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError as err:
        raise TimeError(f"`time` {text!r} is not a valid date-time ({err})") from None
    return (dt - _EPOCH) // timedelta(microseconds=1)


@functools.lru_cache(maxsize=65536)
def _second(seconds: int) -> str:
    d = _EPOCH + timedelta(seconds=seconds)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"


def format_time(us: int) -> str:
    """Microseconds since the epoch -> ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` in UTC."""
    seconds, micro = divmod(us, US)
    if micro:
        return f"{_second(seconds)}.{micro:06d}Z"
    return _second(seconds) + "Z"
