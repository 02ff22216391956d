"""Opening hours: open / closed / unknown, on the station's wall clock."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from app.stations.hours import CLOSED, OPEN, UNKNOWN, InvalidHours, evaluate, validate

SH = ZoneInfo("Asia/Shanghai")
THURSDAY_10 = datetime(2026, 11, 26, 10, 0, tzinfo=SH)
THURSDAY_23 = datetime(2026, 11, 26, 23, 0, tzinfo=SH)
SATURDAY_10 = datetime(2026, 11, 28, 10, 0, tzinfo=SH)


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


def test_unknown_is_not_closed():
    assert evaluate(None, THURSDAY_23, "Asia/Shanghai").state != CLOSED


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
