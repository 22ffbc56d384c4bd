"""The passes of language 2's new forms: the calendar, the bounds on deadlines and durations, claims.

:func:`calendar_pass` checks the one ``calendar`` item (E033–E036, E038, W006) and builds the
policy's :class:`~escalation.lang.calendar.Calendar`; :func:`span_pass` bounds every duration and
every ``within N working days`` (E037, E039) and says when a calendar is missing or unused (W005,
W007); :func:`claim_pass` checks each claim's expression as a condition (E014).
"""

from __future__ import annotations

import re
from datetime import date

from ..lang import BOOL, MAX_DURATION_DAYS, MAX_DURATION_SECONDS, ast
from ..lang.calendar import DEFAULT_CALENDAR, MAX_WORKING_DAYS, WEEKDAYS, Calendar, zone_names
from .context import CheckState, Scope, show
from .names import suggest
from .types import infer

__all__ = ["calendar_pass", "claim_pass", "duration_bounds", "reads_customer_history", "span_pass"]

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _holiday(text: str) -> date | None:
    """The date ``YYYY-MM-DD``, or None for text that is not one (a wrong shape or an impossible date)."""
    if not _DATE.match(text):
        return None
    try:
        return date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return None


def _zone_hint(c: CheckState, name: str) -> str:
    """"Did you mean" for a zone: the same name in another case, else the nearest name, those of the same area first."""
    fallback = 'write an IANA zone name such as "Europe/London" (case counts)'
    folded = {z.lower(): z for z in sorted(zone_names())}
    if name.lower() in folded:
        return f"did you mean `{folded[name.lower()]}`? (case counts)"
    area = name.split("/", 1)[0].lower()
    ordered = sorted(zone_names(), key=lambda z: (z.split("/", 1)[0].lower() != area, z))
    return suggest(c, name, ordered, fallback)


def calendar_pass(c: CheckState) -> None:
    """The policy's calendar (language.md §10): one at most, a known zone, real weekdays and dates."""
    calendars = c.policy.calendars
    for extra in calendars[1:]:
        c.error("E033", "the policy has a second `calendar`", extra.span, f"a policy has one calendar (the first is on line {calendars[0].span.line}); merge them")
    if not calendars:
        c.calendar = DEFAULT_CALENDAR
        return
    cal = calendars[0]
    zone = "UTC"
    week: set[int] | None = None
    holidays: list[tuple[date, ast.StringLit]] = []
    zone_item: ast.CalendarZone | None = None
    week_item: ast.CalendarWeek | None = None
    for item in cal.items:
        if isinstance(item, ast.CalendarZone):
            if zone_item is not None:
                c.error("E038", "the calendar has a second `zone`", item.span, f"a calendar has one zone (the first is on line {zone_item.span.line})")
                continue
            zone_item = item
            name = item.name.value
            if name != "UTC" and name not in zone_names():
                c.error("E034", f"`{name}` is not a time zone of the bundled database", item.name.span, _zone_hint(c, name))
            else:
                zone = name
        elif isinstance(item, ast.CalendarWeek):
            if week_item is not None:
                c.error("E038", "the calendar has a second `week`", item.span, f"a calendar has one week (the first is on line {week_item.span.line}); list every working day in it")
                continue
            week_item = item
            week = set()
            for day in item.days:
                if day.text not in WEEKDAYS:
                    c.error("E035", f"`{day.text}` is not a day of the week", day.span, suggest(c, day.text, WEEKDAYS, "the days are " + " ".join(WEEKDAYS)))
                    continue
                number = WEEKDAYS.index(day.text)
                if number in week:
                    c.error("E038", f"the week names `{day.text}` twice", day.span, "name each working day once")
                week.add(number)
        else:
            for text in item.dates:
                day_ = _holiday(text.value)
                if day_ is None:
                    c.error("E036", f"the holiday {text.value!r} is not a date", text.span, 'write holidays as "YYYY-MM-DD", such as "2026-12-25"')
                else:
                    holidays.append((day_, text))
    working = week if week is not None else set(range(5))
    listed: dict[date, ast.StringLit] = {}
    for day_, text in holidays:
        if day_ in listed:
            c.warning("W006", f"the holiday {text.value} is listed twice", text.span, f"it is already listed on line {listed[day_].span.line}; remove one")
            continue
        listed[day_] = text
        if day_.weekday() not in working:
            c.warning("W006", f"the holiday {text.value} is a {_DAY_NAMES[day_.weekday()]}, which is not a working day anyway", text.span, "remove it, or add its weekday to `week`")
    c.calendar = Calendar(zone, frozenset(working), tuple(sorted(listed)))


def duration_bounds(c: CheckState, root: object) -> list[ast.WorkingDays]:
    """Report every duration over 36500d below ``root`` (E039); returns the `N working days` found there."""
    working: list[ast.WorkingDays] = []
    for node in ast.walk(root):
        if isinstance(node, ast.DurationLit) and node.seconds > MAX_DURATION_SECONDS:
            c.error("E039", f"the duration {node.text} is longer than {MAX_DURATION_DAYS}d", node.span, f"durations go up to 100 years ({MAX_DURATION_DAYS}d)")
        elif isinstance(node, ast.WorkingDays):
            working.append(node)
    return working


def span_pass(c: CheckState) -> None:
    """Durations up to 36500d, working days from 1 to 3650 (E037, E039); a calendar missing or unused (W005, W007)."""
    working = duration_bounds(c, c.policy)
    for node in working:
        n = node.count.value
        if n == 0:
            c.error("E037", "a deadline of 0 working days can never be met", node.span, "write at least `within 1 working day`, or a plain duration such as `within 0s`")
        elif n > MAX_WORKING_DAYS:
            c.error("E039", f"{n} working days is more than {MAX_WORKING_DAYS}", node.span, f"deadlines go up to {MAX_WORKING_DAYS} working days")
    calendars = c.policy.calendars
    if working and not calendars:
        first = working[0]
        more = f" (and {len(working) - 1} more)" if len(working) > 1 else ""
        c.warning(
            "W005",
            f"this deadline is in working days{more}, but the policy declares no calendar: the default calendar (UTC, Monday to Friday, no holidays) is used",
            first.span,
            'declare the calendar you work to: `calendar { zone "Europe/London" week mon tue wed thu fri holidays "2026-12-25" }`',
        )
    if calendars and not working:
        c.warning("W007", "the calendar is never used: no deadline of this policy is in working days", calendars[0].span, "remove it, or write a deadline such as `within 10 working days`")


def claim_pass(c: CheckState) -> None:
    """Each claim's expression is a condition, true or false (E014); `permitted A` and `forbidden A` may stand in it."""
    for claim in c.policy.claims:
        t = infer(c, claim.expr, Scope(claim=True), BOOL)
        if t is not None and t != BOOL:
            c.error("E014", f"the claim {claim.name.value!r} must be true or false, not {show(t)}", claim.expr.span, "state a condition: `always not (permitted agent.hang_up and not seen agent.warn)`")


def reads_customer_history(policy: ast.Policy) -> bool:
    """Whether `across contacts` appears anywhere outside a claim (language.md §9; an unused let counts)."""
    for item in policy.items:
        if isinstance(item, (ast.Claim, ast.Test)):
            continue
        for node in ast.walk(item):
            if isinstance(node, (ast.Count, ast.Seen, ast.Last, ast.TimeSince)) and node.across:
                return True
    return False
