"""Opening hours in OpenStreetMap syntax, evaluated with a real parser.

"unknown" (no hours recorded, or hours that say ``unknown``) is never folded into
"closed": a person with a child will still walk to a toilet whose hours are unknown,
but not to one known to be shut.

Evaluation is cheap and bounded: the parser is asked only for the state intervals
between the instant and ``NEXT_CHANGE_HORIZON`` later (its own ``next_change`` searches
years ahead when the state never changes, taking most of a second for
``Mo-Su 00:00-24:00``), and results are kept per (hours, time zone, local minute), since
every station sharing those hours has the same answer all minute long.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import opening_hours

OPEN, CLOSED, UNKNOWN = "open", "closed", "unknown"

# How far ahead a next change is looked for. Any weekly timetable changes within 7 days,
# so 8 covers every weekly change; rarer ones (a holiday, "Su[1]") further away are not reported.
NEXT_CHANGE_HORIZON = timedelta(days=8)
# OSM hours have minute resolution: the parser is asked up to and including the horizon's minute.
_MINUTE = timedelta(minutes=1)


class InvalidHours(ValueError):
    """The text is not valid OSM opening_hours syntax."""


@dataclass(frozen=True)
class HoursState:
    state: str  # open | closed | unknown
    # When ``state`` next changes: aware, in the station's time zone. None means no change
    # within NEXT_CHANGE_HORIZON (e.g. "24/7"), or hours that are unknown or unreadable.
    next_change: datetime | None
    # Why staff closed the station for now (a temporary closure overrides its hours); else None.
    reason: str | None = None


@lru_cache(maxsize=4096)
def _parse(text: str) -> opening_hours.OpeningHours:
    try:
        return opening_hours.OpeningHours(text)
    except (opening_hours.ParserError, SyntaxError, ValueError) as exc:
        raise InvalidHours(str(exc).strip().splitlines()[0]) from None


def validate(text: str) -> None:
    """Raise InvalidHours unless ``text`` parses."""
    _parse(text)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def evaluate(text: str | None, at: datetime, tz: str) -> HoursState:
    """State of the hours ``text`` at the aware instant ``at``, in the station's zone ``tz``.

    Evaluation happens on the station's local wall clock, because that is what
    "Mo-Fr 08:00-18:00" on its door means.
    """
    if not text:
        return HoursState(UNKNOWN, None)
    local = at.astimezone(_zone(tz)).replace(tzinfo=None)
    return _evaluate_local_minute(text, tz, local.replace(second=0, microsecond=0))


def closed_by_staff(closure_reason: str | None, closure_until: datetime | None, at: datetime) -> bool:
    """Whether a staff closure holds at ``at`` (``closure_until`` None: until someone reopens it)."""
    return closure_reason is not None and (closure_until is None or at < closure_until)


def evaluate_station(text: str | None, at: datetime, tz: str, closure_reason: str | None = None,
                     closure_until: datetime | None = None) -> HoursState:
    """``evaluate``, unless staff have closed the station for now: then "closed" with the reason,
    changing when the closure ends."""
    if closed_by_staff(closure_reason, closure_until, at):
        return HoursState(CLOSED, closure_until.astimezone(_zone(tz)) if closure_until else None, closure_reason)
    return evaluate(text, at, tz)


# lru_cache keeps its table coherent under threads (gthread workers); at worst two threads
# compute the same entry once each. 16,384 entries of ~300 bytes: a few MB per worker.
@lru_cache(maxsize=16384)
def _evaluate_local_minute(text: str, tz: str, local: datetime) -> HoursState:
    """``evaluate`` for the naive local wall-clock minute ``local``: the same all minute long."""
    try:
        parsed = _parse(text)
    except InvalidHours:
        return HoursState(UNKNOWN, None)
    # Intervals come split by comment as well as by state; the first one of another state
    # is the change. The window ends one minute past the horizon, so that a change exactly
    # at the horizon is seen, and nothing beyond it.
    state = None
    for start, _end, interval_state, _comment in parsed.intervals(local, local + NEXT_CHANGE_HORIZON + _MINUTE):
        if state is None:
            state = str(interval_state)
        elif str(interval_state) != state:
            if start - local > NEXT_CHANGE_HORIZON:
                break
            return HoursState(state, start.replace(tzinfo=_zone(tz)))
    return HoursState(state or UNKNOWN, None)  # the window is never empty; unknown, never closed, if it were
