"""Opening hours in OpenStreetMap syntax, evaluated with a real parser.

"unknown" (no hours recorded, or hours that say ``unknown``) is never folded into
"closed": a person with a child will still walk to a toilet whose hours are unknown,
but not to one known to be shut.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import opening_hours

OPEN, CLOSED, UNKNOWN = "open", "closed", "unknown"


class InvalidHours(ValueError):
    """The text is not valid OSM opening_hours syntax."""


@dataclass(frozen=True)
class HoursState:
    state: str  # open | closed | unknown
    next_change: datetime | None  # aware, in the station's time zone; None if never/unknown


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
    zone = _zone(tz)
    local = at.astimezone(zone).replace(tzinfo=None)
    try:
        parsed = _parse(text)
    except InvalidHours:
        return HoursState(UNKNOWN, None)
    state, _comment = parsed.state(local)
    change = parsed.next_change(local)
    return HoursState(str(state), change.replace(tzinfo=zone) if change else None)
