"""RFC 3339 times <-> integer microseconds since the epoch (UTC)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
US = 1_000_000


class TimeError(ValueError):
    """A time that is not RFC 3339 with a zone, or is finer than a microsecond."""


def parse_time(text: str) -> int:
    """``2026-11-22T11:00:00.250+01:00`` -> microseconds since 1970-01-01T00:00:00Z."""
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


def format_time(us: int) -> str:
    """Microseconds since the epoch -> ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` in UTC."""
    dt = _EPOCH + timedelta(microseconds=us)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        return f"{base}.{dt.microsecond:06d}Z"
    return base + "Z"
