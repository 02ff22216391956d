"""SLA clock (app/ops/clock.py): pure, no store, every expected time worked out by hand.

China's 2026 schedule (State Council notice of November 2025, as held by chinese-calendar
1.11.0 — checked against the library in test_library_holds_the_2026_schedule_used_here):

* New Year's Day: 1–3 Jan off; Sun 4 Jan is a make-up working day.
* Spring Festival: 15–23 Feb off (Sun–Mon, nine days); Sat 14 Feb and Sat 28 Feb are make-up
  working days.
* Mid-Autumn: Fri 25 – Sun 27 Sep off. National Day: Thu 1 – Wed 7 Oct off; Sun 20 Sep and
  Sat 10 Oct are make-up working days.

2027's schedule is not in chinese-calendar 1.11.0, so 2027 dates are estimates (weekends
only). When the pin moves to a release with 2027 data, the 2027 tests here must be revisited.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from app.ops.clock import Due, calendar_covers, due_at, is_overdue, remaining

SHANGHAI = "Asia/Shanghai"
CST = ZoneInfo(SHANGHAI)  # UTC+8 all year, no DST


def cst(year, month, day, hour=0, minute=0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=CST)


def test_library_holds_the_2026_schedule_used_here():
    """The oracle for the dates below: the library's data agree with the State Council notice."""
    make_up_days = [date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28),
                    date(2026, 9, 20), date(2026, 10, 10)]
    assert all(day.weekday() >= 5 and chinese_calendar.is_workday(day) for day in make_up_days)
    holidays = [date(2026, 2, 16), date(2026, 9, 25), date(2026, 10, 1), date(2026, 10, 7)]
    assert all(day.weekday() < 5 and chinese_calendar.is_holiday(day) for day in holidays)


# --- working days across holidays and make-up days ---------------------------------------

def test_working_days_skip_mid_autumn_and_national_day():
    """Wed 23 Sep 10:00 + 5 working days.

    Thu 24 (1); Fri 25 – Sun 27 Mid-Autumn off; Mon 28 (2), Tue 29 (3), Wed 30 (4);
    1–7 Oct National Day off; Thu 8 Oct (5) → 8 Oct 10:00. Weekends-only would say Wed 30 Sep.
    """
    due = due_at(cst(2026, 9, 23, 10), working_days=5, tz=SHANGHAI)
    assert due == Due(at=cst(2026, 10, 8, 10), estimated=False)


def test_working_days_skip_spring_festival_and_count_its_make_up_saturday():
    """Fri 13 Feb 09:00 + 2 working days: Sat 14 Feb is a make-up day (1); 15–23 Feb off;
    Tue 24 Feb (2) → 24 Feb 09:00."""
    due = due_at(cst(2026, 2, 13, 9), working_days=2, tz=SHANGHAI)
    assert due == Due(at=cst(2026, 2, 24, 9), estimated=False)


def test_make_up_saturday_counts_as_a_working_day():
    """Fri 9 Oct 10:00 + 1 working day: Sat 10 Oct is a make-up day → Sat 10 Oct 10:00
    (weekends-only would say Mon 12 Oct)."""
    due = due_at(cst(2026, 10, 9, 10), working_days=1, tz=SHANGHAI)
    assert due.at == cst(2026, 10, 10, 10)


def test_make_up_sunday_counts_as_a_working_day():
    """Fri 18 Sep 10:00 + 1 working day: Sat 19 off, Sun 20 Sep make-up → Sun 20 Sep 10:00."""
    due = due_at(cst(2026, 9, 18, 10), working_days=1, tz=SHANGHAI)
    assert due.at == cst(2026, 9, 20, 10)


def test_start_on_a_holiday_waits_for_the_next_working_day():
    """Sat 3 Oct 14:00 (National Day) + 3 working days: the clock starts Thu 8 Oct 00:00;
    Thu 8 (1), Fri 9 (2), Sat 10 make-up (3) → end of Sat 10 Oct = Sun 11 Oct 00:00."""
    due = due_at(cst(2026, 10, 3, 14), working_days=3, tz=SHANGHAI)
    assert due == Due(at=cst(2026, 10, 11), estimated=False)


def test_start_on_a_make_up_day_counts_from_that_day():
    """Sat 28 Feb 15:00 is a make-up working day, so the clock runs at once: + 1 working day
    → Sun 1 Mar off → Mon 2 Mar 15:00 (weekends-only would say end of Mon 2 Mar)."""
    due = due_at(cst(2026, 2, 28, 15), working_days=1, tz=SHANGHAI)
    assert due.at == cst(2026, 3, 2, 15)


def test_start_on_an_ordinary_weekend_is_due_at_the_end_of_monday():
    """Sat 28 Nov 11:00 + 1 working day: clock starts Mon 30 Nov 00:00, due at its end,
    Tue 1 Dec 00:00."""
    due = due_at(cst(2026, 11, 28, 11), working_days=1, tz=SHANGHAI)
    assert due.at == cst(2026, 12, 1)


def test_start_at_midnight_on_a_working_day_is_a_whole_day():
    """Mon 30 Nov 00:00 + 1 working day = end of Monday = Tue 1 Dec 00:00; a minute later the
    clock is due a minute later (Tue 00:01) — no jump at midnight."""
    assert due_at(cst(2026, 11, 30), working_days=1, tz=SHANGHAI).at == cst(2026, 12, 1)
    assert due_at(cst(2026, 11, 30, 0, 1), working_days=1, tz=SHANGHAI).at == cst(2026, 12, 1, 0, 1)


def test_a_later_start_is_never_due_earlier():
    """Every hour from 1 Sep to 31 Oct 2026 (both holiday blocks and three make-up days): the
    due time of a 2-working-day limit never moves backwards as the start moves forwards."""
    start, previous = cst(2026, 9, 1), None
    while start < cst(2026, 11, 1):
        due = due_at(start, working_days=2, tz=SHANGHAI).at
        assert previous is None or due >= previous, start
        assert due > start
        previous, start = due, start + timedelta(hours=1)


# --- the organisation's time zone decides the calendar date --------------------------------

def test_the_local_date_in_the_organisations_zone_decides():
    """The same instant, 7 Oct 16:30 UTC, is Thu 8 Oct 00:30 in Shanghai (a working day) but
    Wed 7 Oct 22:30 in Ürümqi (UTC+6, still National Day). + 1 working day:
    Shanghai → Fri 9 Oct 00:30 CST; Ürümqi → clock starts 8 Oct 00:00, due 9 Oct 00:00 local
    (= 9 Oct 02:00 CST)."""
    instant = datetime(2026, 10, 7, 16, 30, tzinfo=timezone.utc)
    in_shanghai = due_at(instant, working_days=1, tz=SHANGHAI).at
    in_urumqi = due_at(instant, working_days=1, tz="Asia/Urumqi").at
    assert in_shanghai == cst(2026, 10, 9, 0, 30)
    assert in_urumqi == datetime(2026, 10, 9, 0, 0, tzinfo=ZoneInfo("Asia/Urumqi"))
    assert in_urumqi == cst(2026, 10, 9, 2)
    assert in_urumqi.utcoffset() == timedelta(hours=6)


def test_results_are_in_the_organisations_zone():
    """A UTC start gives a due time expressed in the organisation's zone (same instant)."""
    due = due_at(datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc), minutes=20, tz=SHANGHAI).at
    assert due.tzinfo == CST
    assert (due.hour, due.minute) == (10, 20)


# --- minutes run day and night -------------------------------------------------------------

def test_minutes_run_across_midnight_into_a_holiday():
    """Wed 30 Sep 23:50 + 20 min → Thu 1 Oct 00:10: holidays do not stop an urgent clock."""
    due = due_at(cst(2026, 9, 30, 23, 50), minutes=20, tz=SHANGHAI)
    assert due == Due(at=cst(2026, 10, 1, 0, 10), estimated=False)


def test_minutes_over_a_full_day_are_wall_clock_hours():
    """Sat 3 Oct 12:00 + 24 h (1,440 min) → Sun 4 Oct 12:00 in Shanghai (no DST, no pauses)."""
    assert due_at(cst(2026, 10, 3, 12), minutes=1440, tz=SHANGHAI).at == cst(2026, 10, 4, 12)


def test_minutes_are_elapsed_time_even_where_clocks_change():
    """Berlin springs forward at 02:00 on Sun 29 Mar 2026: 01:50 CET + 20 min of real time is
    03:10 CEST (a wall-clock answer would wrongly say 02:10)."""
    berlin = ZoneInfo("Europe/Berlin")
    due = due_at(datetime(2026, 3, 29, 1, 50, tzinfo=berlin), minutes=20, tz="Europe/Berlin").at
    assert (due.hour, due.minute, due.utcoffset()) == (3, 10, timedelta(hours=2))


# --- years outside the library's data ------------------------------------------------------

def test_calendar_covers_only_published_years():
    assert calendar_covers(date(2026, 12, 31))
    assert not calendar_covers(date(2027, 1, 1))
    assert not calendar_covers(date(2003, 12, 31))


def test_unknown_year_falls_back_to_weekends_and_says_so():
    """Fri 5 Mar 2027 10:00 + 1 working day, weekends only → Mon 8 Mar 2027 10:00, estimated."""
    due = due_at(cst(2027, 3, 5, 10), working_days=1, tz=SHANGHAI)
    assert due == Due(at=cst(2027, 3, 8, 10), estimated=True)


def test_counting_into_an_unknown_year_is_an_estimate():
    """Thu 31 Dec 2026 10:00 + 1 working day: 1 Jan 2027 is a Friday, unknown to the library,
    so it counts as a working day → Fri 1 Jan 2027 10:00, estimated (it is surely a holiday)."""
    due = due_at(cst(2026, 12, 31, 10), working_days=1, tz=SHANGHAI)
    assert due == Due(at=cst(2027, 1, 1, 10), estimated=True)


def test_a_year_before_the_data_is_an_estimate_too():
    """Fri 3 Jan 2003 10:00 + 1 working day, weekends only → Mon 6 Jan 2003 10:00, estimated."""
    due = due_at(cst(2003, 1, 3, 10), working_days=1, tz=SHANGHAI)
    assert due == Due(at=cst(2003, 1, 6, 10), estimated=True)


# --- overdue and remaining -----------------------------------------------------------------

def test_remaining_and_overdue_around_the_due_instant():
    due = cst(2026, 10, 8, 10)
    assert remaining(due, cst(2026, 10, 8, 9, 30)) == timedelta(minutes=30)
    assert not is_overdue(due, cst(2026, 10, 8, 9, 30))
    assert remaining(due, due) == timedelta(0)
    assert not is_overdue(due, due)  # at the instant itself it is not late yet
    assert remaining(due, cst(2026, 10, 8, 10, 1)) == timedelta(minutes=-1)
    assert is_overdue(due, cst(2026, 10, 8, 10, 1))


def test_overdue_compares_instants_across_zones():
    """10:00 CST is 02:00 UTC: at 02:01 UTC it is a minute overdue."""
    now = datetime(2026, 10, 8, 2, 1, tzinfo=timezone.utc)
    assert remaining(cst(2026, 10, 8, 10), now) == timedelta(minutes=-1)
    assert is_overdue(cst(2026, 10, 8, 10), now)


# --- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("limits, message", [
    ({}, "exactly one"),
    ({"minutes": 20, "working_days": 1}, "exactly one"),
    ({"minutes": 0}, "between 1"),
    ({"working_days": -1}, "between 1"),
    ({"working_days": 10_000}, "between 1"),
    ({"minutes": 1.5}, "whole number"),
    ({"working_days": True}, "whole number"),
])
def test_bad_limits_are_refused(limits, message):
    with pytest.raises(ValueError, match=message):
        due_at(cst(2026, 10, 8, 10), tz=SHANGHAI, **limits)


def test_naive_times_and_unknown_zones_are_refused():
    with pytest.raises(ValueError, match="aware"):
        due_at(datetime(2026, 10, 8, 10), minutes=20, tz=SHANGHAI)
    with pytest.raises(ValueError, match="unknown time zone"):
        due_at(cst(2026, 10, 8, 10), minutes=20, tz="Asia/Beijing")
    with pytest.raises(ValueError, match="aware"):
        is_overdue(cst(2026, 10, 8, 10), datetime(2026, 10, 8, 10))
