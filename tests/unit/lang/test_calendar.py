"""Working-day deadlines (language.md §10): the spec's worked examples, and the closed form against a day-by-day count."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalation.lang.calendar import DEFAULT_CALENDAR, LATEST_DEADLINE, TZDATA_VERSION, Calendar, load_zone, zone_names
from escalation.lang.units import format_time, parse_time

LONDON = Calendar(zone="Europe/London", holidays=(date(2026, 12, 25), date(2026, 12, 28), date(2027, 1, 1)))
LONDON_PLAIN = Calendar(zone="Europe/London")


@pytest.mark.parametrize(
    ("calendar", "created", "n", "due"),
    [
        (LONDON, "2026-12-18T15:00:00Z", 3, "2026-12-24T00:00:00Z"),
        (LONDON, "2026-12-18T15:00:00Z", 5, "2026-12-30T00:00:00Z"),
        (LONDON_PLAIN, "2026-10-22T23:30:00Z", 1, "2026-10-27T00:00:00Z"),
        (LONDON_PLAIN, "2027-03-26T15:00:00Z", 1, "2027-03-29T23:00:00Z"),
    ],
)
def test_the_worked_examples_of_the_spec(calendar: Calendar, created: str, n: int, due: str) -> None:
    assert format_time(calendar.due(parse_time(created), n)) == due


def test_the_date_of_creation_never_counts_even_when_it_is_a_working_day() -> None:
    # Monday 2026-11-23 10:00 UTC, 1 working day: Tuesday is the day, due at the start of Wednesday.
    assert format_time(DEFAULT_CALENDAR.due(parse_time("2026-11-23T10:00:00Z"), 1)) == "2026-11-25T00:00:00Z"
    # Created on a Saturday: Monday is the first working day.
    assert format_time(DEFAULT_CALENDAR.due(parse_time("2026-11-21T10:00:00Z"), 1)) == "2026-11-24T00:00:00Z"


def test_a_deadline_past_the_last_representable_day_is_that_instant() -> None:
    assert DEFAULT_CALENDAR.due(parse_time("9999-12-30T10:00:00Z"), 3650) == LATEST_DEADLINE
    assert format_time(LATEST_DEADLINE) == "9999-12-31T23:59:59Z"


def test_zones_come_from_the_bundled_database_exactly_as_named() -> None:
    assert "Europe/London" in zone_names() and "GB" in zone_names()
    summer = datetime(2026, 7, 1, 12, tzinfo=timezone.utc)
    assert summer.astimezone(load_zone("GB")).utcoffset() == timedelta(hours=1)  # a link loads
    with pytest.raises(KeyError):
        load_zone("europe/london")
    assert TZDATA_VERSION[:4].isdigit()


def _slow_due_day(calendar: Calendar, start: date, n: int) -> date:
    day, seen = start, 0
    while seen < n:
        day += timedelta(days=1)
        seen += calendar.is_working(day)
    return day


@settings(max_examples=300, deadline=None)
@given(
    week=st.frozensets(st.integers(0, 6), min_size=1),
    holidays=st.lists(st.dates(date(2026, 1, 1), date(2028, 12, 31)), max_size=30),
    start=st.dates(date(2026, 1, 1), date(2027, 12, 31)),
    n=st.integers(1, 400),
)
def test_the_closed_form_agrees_with_counting_day_by_day(week: frozenset[int], holidays: list[date], start: date, n: int) -> None:
    calendar = Calendar(week=week, holidays=tuple(sorted(set(holidays))))
    assert calendar.nth_working_day_after(start, n) == _slow_due_day(calendar, start, n)


def test_a_day_whose_midnight_a_clock_change_skips_ends_at_the_change() -> None:
    # Santiago moves from 00:00 to 01:00 on Sunday 2026-09-06: Saturday 5 ends at 04:00Z, the first instant of the 6th.
    chile = Calendar(zone="America/Santiago", week=frozenset(range(7)))
    assert format_time(chile.due(parse_time("2026-09-04T15:00:00Z"), 1)) == "2026-09-06T04:00:00Z"
