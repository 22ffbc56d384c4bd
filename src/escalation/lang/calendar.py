"""Working-day arithmetic (language.md §10): a policy's calendar and the deadline of `within N working days`.

An obligation created at ``t`` with ``within N working days`` is due at the end
of the N-th working day after the date of ``t`` in the calendar's zone (the date
of ``t`` never counts); the end of a day is the first instant of the next date in
that zone. A working day is a date whose weekday is in ``week`` and that is not
one of ``holidays``.

Zones come only from the ``tzdata`` package the engine pins (never the
machine's own database), so a replay gives the same deadlines on every machine;
:data:`TZDATA_VERSION` names that database. A zone name must be one of its names
exactly, case included (links such as ``GB`` count).

:meth:`Calendar.due` costs O(log H) for H holidays, whatever N is: working days
are counted in closed form per week and holidays by bisection, and the N-th
working day is found by a bisection over dates.
"""

from __future__ import annotations

import bisect
import functools
import importlib
import importlib.resources
from datetime import date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import attrs

__all__ = [
    "DEFAULT_CALENDAR",
    "LATEST_DEADLINE",
    "MAX_WORKING_DAYS",
    "TZDATA_VERSION",
    "WEEKDAYS",
    "Calendar",
    "load_zone",
    "zone_names",
]

#: The names of the days of the week as a `week` item writes them, Monday first (``date.weekday()`` order).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: The largest N of ``within N working days`` (a check error beyond).
MAX_WORKING_DAYS = 3650
#: A deadline that would fall later is recorded as this instant: 9999-12-31T23:59:59Z.
LATEST_DEADLINE = (datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(
    microseconds=1
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ORDINAL_EPOCH = date(1970, 1, 1).toordinal()


def _tzdata_version() -> str:
    """The IANA release of the pinned ``tzdata`` package (a dependency of the core; it ships no type hints)."""
    return str(importlib.import_module("tzdata").IANA_VERSION)


TZDATA_VERSION = _tzdata_version()


@functools.cache
def zone_names() -> frozenset[str]:
    """Every zone name (and link) of the bundled database, exactly as written there."""
    text = importlib.resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(text.split())


@functools.cache
def load_zone(name: str) -> tzinfo:
    """The zone called ``name`` in the bundled database; ``KeyError`` for a name it does not have (case counts)."""
    if name == "UTC":
        return timezone.utc
    if name not in zone_names():
        raise KeyError(name)
    resource = importlib.resources.files("tzdata.zoneinfo").joinpath(*name.split("/"))
    with resource.open("rb") as handle:
        return ZoneInfo.from_file(handle, key=name)


def _local_date(us: int, zone: tzinfo) -> date:
    return (_EPOCH + timedelta(microseconds=us)).astimezone(zone).date()


def _day_start(day: date, zone: tzinfo) -> int:
    """The first instant whose date in ``zone`` is ``day``, in microseconds since the epoch.

    With ``fold=0`` a local midnight that a clock change skips maps to the
    instant of the change, which is the first instant of that date; a repeated
    midnight maps to its first occurrence.
    """
    local = datetime(day.year, day.month, day.day, tzinfo=zone)
    return (local.astimezone(timezone.utc) - _EPOCH) // timedelta(microseconds=1)


@attrs.frozen
class Calendar:
    """A policy's calendar: its zone, its working weekdays (0 = Monday) and its holidays (sorted, unique)."""

    zone: str = "UTC"
    week: frozenset[int] = frozenset(range(5))
    holidays: tuple[date, ...] = ()

    @functools.cached_property
    def _tz(self) -> tzinfo:
        return load_zone(self.zone)

    @functools.cached_property
    def _holiday_ordinals(self) -> tuple[int, ...]:
        """Ordinals of the holidays that fall on a working weekday (the others change nothing)."""
        return tuple(sorted({h.toordinal() for h in self.holidays if h.weekday() in self.week}))

    @functools.cached_property
    def _prefix(self) -> tuple[int, ...]:
        """``_prefix[k]``: how many working weekdays among the first k days of a week starting on Monday."""
        counts = [0]
        for day in range(7):
            counts.append(counts[-1] + (day in self.week))
        return tuple(counts)

    def is_working(self, day: date) -> bool:
        """Whether ``day`` is a working day."""
        if day.weekday() not in self.week:
            return False
        i = bisect.bisect_left(self._holiday_ordinals, day.toordinal())
        return not (i < len(self._holiday_ordinals) and self._holiday_ordinals[i] == day.toordinal())

    def _weekdays_through(self, ordinal: int) -> int:
        """Working weekdays (holidays ignored) among the days with ordinals 1 .. ``ordinal`` (ordinal 1 is a Monday)."""
        weeks, rest = divmod(ordinal, 7)
        return weeks * self._prefix[7] + self._prefix[rest]

    def working_days_between(self, after: date, through: date) -> int:
        """Working days d with ``after < d <= through``."""
        a, b = after.toordinal(), through.toordinal()
        if b <= a:
            return 0
        weekdays = self._weekdays_through(b) - self._weekdays_through(a)
        hol = self._holiday_ordinals
        return weekdays - (bisect.bisect_right(hol, b) - bisect.bisect_right(hol, a))

    def nth_working_day_after(self, day: date, n: int) -> date | None:
        """The n-th working day after ``day`` (n >= 1), or None past 9999-12-31 or for a week with no day."""
        per_week = self._prefix[7]
        if per_week == 0 or n < 1:
            return None
        start = day.toordinal()
        # Every 7 days hold per_week weekdays, of which at most len(holidays) are holidays in all.
        hi = start + (n + len(self._holiday_ordinals) + per_week - 1) // per_week * 7 + 7
        lo = start + 1
        last = date.max.toordinal()
        if self.working_days_between(day, date.fromordinal(min(hi, last))) < n:
            return None
        hi = min(hi, last)
        while lo < hi:  # the smallest ordinal with n working days in (start, ordinal]
            mid = (lo + hi) // 2
            if self.working_days_between(day, date.fromordinal(mid)) >= n:
                hi = mid
            else:
                lo = mid + 1
        return date.fromordinal(lo)

    def due(self, created: int, n: int) -> int:
        """The deadline, in microseconds since the epoch, of ``within n working days`` for an obligation created at ``created``."""
        day = self.nth_working_day_after(_local_date(created, self._tz), n)
        if day is None or day >= date.max:
            return LATEST_DEADLINE
        return min(_day_start(day + timedelta(days=1), self._tz), LATEST_DEADLINE)


#: The calendar of a policy that declares none: UTC, Monday to Friday, no holidays.
DEFAULT_CALENDAR = Calendar()

