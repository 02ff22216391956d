"""SLA clocks: when a work order falls due, and whether it is overdue. Pure: no Flask, no database.

Two kinds of limit (issue #8):

* **Minutes** run day and night, holidays included (an urgent response or a cleaner on site
  does not wait for Monday). They are real elapsed minutes; the answer is shown in the
  organisation's time zone.
* **Working days** count only the working days of China's official calendar (the State
  Council's yearly schedule): weekends and public holidays are off, make-up working days
  (调休, a Saturday or Sunday declared a working day) are on. The calendar data come from
  ``chinese-calendar``; whether a day is a working day is decided by its *local date in the
  organisation's time zone* (a report at 23:30 in Ürümqi on 7 October is a holiday report
  even though it is already 8 October in Beijing).

The working-day rule, precisely: the clock is a stopwatch that runs only during working days
(local wall-clock time) and stops on every other day; a limit of N working days is due at the
first instant it has run N × 24 hours. In practice:

* a report made on a working day at time T is due at T on the N-th working day after that day
  (Friday 15:00 + 1 working day = Monday 15:00, or Saturday 15:00 if that is a make-up day);
* a report made on a non-working day (or at 00:00 sharp) starts the clock at 00:00 of the next
  working day and is due at the end (24:00) of the N-th working day counting that day as the
  first, written as 00:00 of the following date (Saturday + 1 working day = Tuesday 00:00,
  i.e. the end of Monday).

The library only knows the years the State Council has published (each December for the next
year). For a date outside its data the clock does not fail: it falls back to "weekends off"
for that date and marks the answer ``estimated``, so callers can show "about" and recompute
once the library is updated. ``calendar_covers`` tells whether a date is known.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar

# Longer limits are surely a typing error (7 working days is the longest in the standard).
MAX_MINUTES = 366 * 24 * 60
MAX_WORKING_DAYS = 250


@dataclass(frozen=True)
class Due:
    """When a limit runs out (aware, in the organisation's time zone).

    ``estimated`` is true when a day the clock counted lies outside the calendar data, so
    weekends-only was assumed for it and holidays / make-up days may move the real answer.
    """

    at: datetime
    estimated: bool


def calendar_covers(day: date) -> bool:
    """Whether China's official holiday schedule for ``day``'s year is in the library's data."""
    try:
        chinese_calendar.is_workday(day)
    except NotImplementedError:
        return False
    return True


def _is_working_day(day: date) -> tuple[bool, bool]:
    """(is a working day, known from the official calendar rather than weekends-only)."""
    try:
        return chinese_calendar.is_workday(day), True
    except NotImplementedError:
        return day.weekday() < 5, False


def due_at(
    start: datetime,
    *,
    minutes: int | None = None,
    working_days: int | None = None,
    tz: str,
) -> Due:
    """When a limit that started at ``start`` runs out; exactly one of ``minutes`` / ``working_days``.

    ``start`` must be aware; ``tz`` is the organisation's IANA time zone (e.g. "Asia/Shanghai").
    The rules are in the module docstring. Bad input raises ``ValueError``.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be an aware datetime (with a time zone)")
    zone = _zone(tz)
    if (minutes is None) == (working_days is None):
        raise ValueError("give exactly one of minutes or working_days")
    if minutes is not None:
        _check_limit("minutes", minutes, MAX_MINUTES)
        # Add in UTC: Python adds to an aware time on its own zone's wall clock, which would be
        # an hour off across a DST change; in UTC it is real elapsed time.
        due_utc = start.astimezone(timezone.utc) + timedelta(minutes=minutes)
        return Due(at=due_utc.astimezone(zone), estimated=False)
    _check_limit("working_days", working_days, MAX_WORKING_DAYS)
    return _due_after_working_days(start.astimezone(zone), working_days, zone)


def _due_after_working_days(local_start: datetime, count: int, zone: ZoneInfo) -> Due:
    all_known = True

    def working(day: date) -> bool:
        nonlocal all_known
        is_working, known = _is_working_day(day)
        all_known = all_known and known
        return is_working

    def next_working_day(day: date) -> date:
        day += timedelta(days=1)
        while not working(day):
            day += timedelta(days=1)
        return day

    day, time_of_day = local_start.date(), local_start.time().replace(tzinfo=None)
    if not working(day):
        # The stopwatch is stopped today; it starts at the next working day's 00:00.
        day, time_of_day = next_working_day(day), time(0)
    if time_of_day == time(0):
        # Whole days: due at the end of the count-th working day, counting `day` as the first.
        for _ in range(count - 1):
            day = next_working_day(day)
        due_local = datetime.combine(day + timedelta(days=1), time(0))
    else:
        for _ in range(count):
            day = next_working_day(day)
        due_local = datetime.combine(day, time_of_day)
    # Wall-clock time in the zone (China has no DST; elsewhere fold=0 picks the first reading).
    return Due(at=due_local.replace(tzinfo=zone), estimated=not all_known)


def is_overdue(due: datetime, now: datetime) -> bool:
    """True once ``now`` is past ``due`` (at the due instant itself it is not yet overdue)."""
    return remaining(due, now) < timedelta(0)


def remaining(due: datetime, now: datetime) -> timedelta:
    """Time left until ``due``; negative when overdue. Both must be aware (any time zones)."""
    for name, value in (("due", due), ("now", now)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be an aware datetime (with a time zone)")
    return due - now


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc


def _check_limit(name: str, value: object, maximum: int) -> None:
    # bool is an int subclass; True working days is a caller's mistake, not 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not 1 <= value <= maximum:
        raise ValueError(f"{name} must be between 1 and {maximum}, got {value}")
