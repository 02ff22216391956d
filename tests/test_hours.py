"""Opening hours: open / closed / unknown, on the station's wall clock.

Calendar used below (checked with `cal 11 2026`, `cal 12 2026`): 26 Nov 2026 is a Thursday,
28 Nov a Saturday, 30 Nov a Monday, 6 Dec the first Sunday of December, 25 Dec a Friday.
"""
import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import opening_hours
import pytest

from app.stations import hours
from app.stations.hours import (
    CLOSED, NEXT_CHANGE_HORIZON, OPEN, UNKNOWN, HoursState, InvalidHours, evaluate, validate,
)
from app.stations.model import NearestQuery
from tests.helpers import station

SH = ZoneInfo("Asia/Shanghai")
THURSDAY_10 = datetime(2026, 11, 26, 10, 0, tzinfo=SH)
THURSDAY_23 = datetime(2026, 11, 26, 23, 0, tzinfo=SH)
SATURDAY_10 = datetime(2026, 11, 28, 10, 0, tzinfo=SH)
ALWAYS_OPEN = ("24/7", "Mo-Su 00:00-24:00", "Mo-Su 00:00-24:00; PH off")


def sh(month, day, hour, minute=0, second=0):
    return datetime(2026, month, day, hour, minute, second, tzinfo=SH)


@pytest.mark.parametrize("text,at,state", [
    ("24/7", THURSDAY_23, OPEN),
    ("06:00-22:00", THURSDAY_10, OPEN),
    ("06:00-22:00", THURSDAY_23, CLOSED),
    ("Mo-Fr 08:00-18:00", SATURDAY_10, CLOSED),
    ("Mo-Fr 08:00-18:00", THURSDAY_10, OPEN),
    ("Mo-Fr 08:00-18:00 unknown", THURSDAY_10, UNKNOWN),
    (None, THURSDAY_10, UNKNOWN),
    ("", THURSDAY_10, UNKNOWN),
])
def test_state(text, at, state):
    assert evaluate(text, at, "Asia/Shanghai").state == state


@pytest.mark.parametrize("text,at,state,next_change", [
    # Open all the time: nothing changes within the horizon.
    ("24/7", THURSDAY_23, OPEN, None),
    ("Mo-Su 00:00-24:00", THURSDAY_10, OPEN, None),
    # No country is given to the parser, so it knows no public holiday: "PH off" never applies.
    ("Mo-Su 00:00-24:00; PH off", THURSDAY_10, OPEN, None),
    # A later rule overrides an earlier one for the days it names: open on Christmas Day too.
    ("Dec 25 off; Mo-Su 08:00-20:00", sh(12, 25, 10), OPEN, sh(12, 25, 20)),
    # ... and the other way round, shut all Christmas Day, open again on the 26th at 08:00.
    ("Mo-Su 08:00-20:00; Dec 25 off", sh(12, 24, 21), CLOSED, sh(12, 26, 8)),
    ("Mo-Su 08:00-20:00; Dec 25 off", sh(12, 25, 10), CLOSED, sh(12, 26, 8)),
    # Across midnight: Thursday 22:00 to Friday 02:00.
    ("22:00-02:00", THURSDAY_23, OPEN, sh(11, 27, 2)),
    ("22:00-02:00", sh(11, 27, 1), OPEN, sh(11, 27, 2)),
    ("22:00-02:00", sh(11, 27, 3), CLOSED, sh(11, 27, 22)),
    # Saturday: closed until Monday 08:00.
    ("Mo-Fr 08:00-18:00", SATURDAY_10, CLOSED, sh(11, 30, 8)),
    # Monday noon: the next opening is a week less four hours away, within the horizon.
    ("Mo 08:00-12:00", sh(11, 30, 12), CLOSED, sh(12, 7, 8)),
    # First Sunday of December is 6 Dec, ten days after Thursday: beyond the horizon.
    ("Su[1] 10:00-12:00", THURSDAY_10, CLOSED, None),
    # The comment changing at 12:00 is not a change of state; closing at 18:00 is.
    ('08:00-12:00 "morning", 12:00-18:00 "afternoon"', sh(11, 26, 9), OPEN, sh(11, 26, 18)),
    ("Mo-Fr 08:00-18:00 unknown", THURSDAY_10, UNKNOWN, sh(11, 26, 18)),
    # Seconds do not matter: 21:59:59 is still open, closing at 22:00.
    ("06:00-22:00", sh(11, 26, 21, 59, 59), OPEN, sh(11, 26, 22)),
])
def test_state_and_next_change_by_hand(text, at, state, next_change):
    assert evaluate(text, at, "Asia/Shanghai") == HoursState(state, next_change)


def test_next_change_horizon_is_eight_days():
    """Eight days: every weekly timetable changes within seven, so its change is always reported."""
    assert NEXT_CHANGE_HORIZON == timedelta(days=8)


def test_change_beyond_the_horizon_is_not_reported():
    """Open every day but Christmas: on 10 Dec the change (25 Dec 00:00) is 15 days away."""
    text = "Mo-Su 00:00-24:00; Dec 25 off"
    assert evaluate(text, sh(12, 10, 10), "Asia/Shanghai") == HoursState(OPEN, None)
    assert evaluate(text, sh(12, 20, 10), "Asia/Shanghai") == HoursState(OPEN, sh(12, 25, 0))


def test_change_exactly_at_the_horizon_edge_is_reported():
    """25 Dec 00:00 is exactly 8 days after 17 Dec 00:00, and 8 days and a minute after 16 Dec 23:59."""
    text = "Mo-Su 00:00-24:00; Dec 25 off"
    assert evaluate(text, sh(12, 17, 0), "Asia/Shanghai") == HoursState(OPEN, sh(12, 25, 0))
    assert evaluate(text, sh(12, 16, 23, 59), "Asia/Shanghai") == HoursState(OPEN, None)


@pytest.mark.parametrize("text", [
    "06:00-22:00",
    "Mo-Fr 08:00-18:00; PH off",
    "22:00-02:00",
    "Mo-Sa 07:30-12:00,13:30-19:00; Su off",
    "Mo-Fr 08:00-18:00; Sa 09:00-12:00 unknown",
])
def test_agrees_with_the_librarys_unbounded_search(text):
    """Where changes come at least weekly, the bounded answer is the library's own, at 300 seeded instants."""
    rng = random.Random(7)
    parsed = opening_hours.OpeningHours(text)
    for _ in range(300):
        at = sh(11, 1, 0) + timedelta(minutes=rng.randrange(60 * 24 * 60))
        local = at.replace(tzinfo=None)
        expected_change = parsed.next_change(local)
        assert evaluate(text, at, "Asia/Shanghai") == HoursState(
            str(parsed.state(local)[0]), expected_change.replace(tzinfo=SH)
        ), at


@pytest.mark.parametrize("text", [None, "", "unknown", "open when the caretaker is in", "Mo-Fr 25:00-26:00"])
def test_unknown_and_unreadable_hours_are_unknown_never_closed(text):
    assert evaluate(text, THURSDAY_23, "Asia/Shanghai") == HoursState(UNKNOWN, None)


def test_instant_is_read_on_the_stations_clock():
    # 02:00 UTC is 10:00 in Shanghai (open) but 04:00 in Helsinki (closed).
    at = datetime(2026, 11, 26, 2, 0, tzinfo=timezone.utc)
    assert evaluate("08:00-18:00", at, "Asia/Shanghai").state == OPEN
    assert evaluate("08:00-18:00", at, "Europe/Helsinki").state == CLOSED


def test_next_change_is_aware_local_time():
    result = evaluate("06:00-22:00", THURSDAY_10, "Asia/Shanghai")
    assert result.next_change == datetime(2026, 11, 26, 22, 0, tzinfo=SH)
    assert evaluate("24/7", THURSDAY_10, "Asia/Shanghai").next_change is None


def test_invalid_hours_are_rejected_by_validate():
    with pytest.raises(InvalidHours):
        validate("open when the caretaker is in")
    validate("Mo-Fr 08:00-18:00; PH off")


# -- what is asked of the library ----------------------------------------------

class _RecordingOpeningHours:
    """Stands in for opening_hours.OpeningHours: passes each evaluation through and records it."""

    def __init__(self, calls, text):
        self._calls = calls
        self._real = _REAL_OPENING_HOURS(text)

    def state(self, time=None):
        self._calls.append(("state", time))
        return self._real.state(time)

    def next_change(self, time=None):
        self._calls.append(("next_change", time))
        return self._real.next_change(time)

    def intervals(self, start=None, end=None):
        self._calls.append(("intervals", start, end))
        return self._real.intervals(start, end)


_REAL_OPENING_HOURS = opening_hours.OpeningHours


def _clear_hours_caches():
    for value in vars(hours).values():
        if hasattr(value, "cache_clear"):
            value.cache_clear()


@pytest.fixture
def library_calls(monkeypatch):
    """Every evaluation call made into the opening_hours library during the test."""
    calls = []
    monkeypatch.setattr(opening_hours, "OpeningHours", lambda text: _RecordingOpeningHours(calls, text))
    _clear_hours_caches()  # parsed and evaluated results made before the stand-in was in place
    yield calls
    _clear_hours_caches()  # results holding the stand-in


def test_one_minute_of_one_expression_is_evaluated_once(library_calls):
    """10:00:00 and 10:00:45 Shanghai, and 02:00:20 UTC (10:00:20 Shanghai), share one evaluation."""
    first = evaluate("Mo-Fr 08:00-18:00", THURSDAY_10, "Asia/Shanghai")
    assert evaluate("Mo-Fr 08:00-18:00", sh(11, 26, 10, 0, 45), "Asia/Shanghai") == first
    assert evaluate("Mo-Fr 08:00-18:00", datetime(2026, 11, 26, 2, 0, 20, tzinfo=timezone.utc), "Asia/Shanghai") == first
    assert first == HoursState(OPEN, sh(11, 26, 18))
    assert len(library_calls) == 1


def test_another_minute_zone_or_expression_is_evaluated_anew(library_calls):
    evaluate("Mo-Fr 08:00-18:00", THURSDAY_10, "Asia/Shanghai")
    evaluate("Mo-Fr 08:00-18:00", sh(11, 26, 10, 1), "Asia/Shanghai")
    evaluate("Mo-Fr 08:00-18:00", THURSDAY_10, "Europe/Helsinki")
    evaluate("Mo-Fr 08:00-19:00", THURSDAY_10, "Asia/Shanghai")
    assert len(library_calls) == 4


@pytest.mark.parametrize("text", ALWAYS_OPEN + ("Mo-Su 00:00-24:00; Dec 25 off", "Su[1] 10:00-12:00"))
def test_library_searches_no_further_than_the_horizon(library_calls, text):
    """The unbounded next_change (most of a second for "Mo-Su 00:00-24:00") is never used."""
    evaluate(text, THURSDAY_10, "Asia/Shanghai")
    assert library_calls == [("intervals", datetime(2026, 11, 26, 10, 0), datetime(2026, 12, 4, 10, 1))]


def test_nearest_over_always_open_stations_evaluates_each_expression_once(store, library_calls):
    """Issue #7: six stations open round the clock, the common OSM spelling; one question.

    Each distinct (hours, zone, minute) reaches the library once, through a bounded search:
    three spellings here, so three calls, whatever the store does with the six stations.
    """
    store.upsert([station(f"s{i}", 27.83 + 0.001 * i, 113.15, hours=ALWAYS_OPEN[i % 3]) for i in range(6)])
    hits = store.nearest(NearestQuery(27.83, 113.15, at=THURSDAY_10, limit=10))
    assert [(h.station.source_id, h.hours) for h in hits] == [(f"s{i}", HoursState(OPEN, None)) for i in range(6)]
    assert library_calls == [("intervals", datetime(2026, 11, 26, 10, 0), datetime(2026, 12, 4, 10, 1))] * 3
