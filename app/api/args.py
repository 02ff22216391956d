"""Query parameters of every /api/v1 endpoint, declared once as pydantic models.

The limits come from the domain's own declarations (vocabulary, modes, search radius);
validation, the 400 answers and the OpenAPI parameters all follow from these models.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from app.api.contract import Args
from app.geo.coordsys import COORDSYS, WGS84, to_wgs84
from app.network.modes import DEFAULT_MINUTES, DEFAULT_MODE, MAX_MINUTES, MIN_MINUTES, MODE_NAMES
from app.numbers import is_plain_integer, is_plain_number
from app.ops.accounts import ORG_CODE_MAX_LENGTH, ORG_CODE_PATTERN
from app.ops.assessment import PERIOD_EXAMPLE, PERIOD_PATTERN
from app.ops.categories import CODE_MAX_LENGTH, CODE_PATTERN
from app.ops.workflow import STATES
from app.search.text import MAX_QUERY_CHARS, normalise
from app.stations.live import BATTERY_TYPE_MAX_LENGTH, BATTERY_TYPE_PATTERN
from app.stations.model import MAX_SEARCH_M, StationFilter
from app.stations.vocabulary import AMENITIES, KINDS

_FLAGS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
FIRST_YEAR, LAST_YEAR = 1900, 2200
ASSESSMENT_FORMATS = ("json", "csv", "xlsx")


def _ascii_number(value):
    if isinstance(value, str) and not is_plain_number(value):
        if value.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise PydanticCustomError("finite_number", "not a finite number")
        raise PydanticCustomError("float_parsing", "not a number")
    return value


def _ascii_integer(value):
    if isinstance(value, str) and not is_plain_integer(value):
        raise PydanticCustomError("int_parsing", "not a whole number")
    return value


def _comma_list(value):
    """'a,b,a' -> ('a', 'b'); items are taken as written (no spaces, no empty items)."""
    if isinstance(value, str):
        return tuple(dict.fromkeys(value.split(",")))
    return value


def _flag(value):
    if isinstance(value, str):
        if value not in _FLAGS:
            raise PydanticCustomError("literal_error", "must be 1 or 0", {"expected": "'1' or '0'"})
        return _FLAGS[value]
    return value


def _instant(value):
    """ISO 8601; a '+' in an offset often arrives as a space (unencoded query strings)."""
    if not isinstance(value, str):
        return value
    text = value.replace(" ", "+") if value.count(" ") == 1 and "T" in value else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PydanticCustomError(
            "invalid_parameter", "'at' must be an ISO 8601 time such as 2026-05-01T08:30:00+08:00.") from None
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        raise PydanticCustomError("out_of_range", f"'at' must be between the years {FIRST_YEAR} and {LAST_YEAR}.")
    return parsed


def _bbox(value):
    if not isinstance(value, str):
        return value
    parts = value.split(",")
    if len(parts) != 4:
        raise PydanticCustomError("invalid_parameter", "'bbox' must be minLng,minLat,maxLng,maxLat.")
    if not all(is_plain_number(p.strip()) for p in parts):
        raise PydanticCustomError("invalid_parameter", "'bbox' must be four numbers: minLng,minLat,maxLng,maxLat.")
    min_lng, min_lat, max_lng, max_lat = (float(p) for p in parts)
    if not (-180 <= min_lng <= 180 and -180 <= max_lng <= 180 and -90 <= min_lat <= 90 and -90 <= max_lat <= 90):
        raise PydanticCustomError(
            "out_of_range", "'bbox' longitudes must be within ±180 and latitudes within ±90.")
    if min_lng > max_lng or min_lat > max_lat:
        raise PydanticCustomError("invalid_parameter", "'bbox' is inverted: it must be minLng,minLat,maxLng,maxLat.")
    return min_lng, min_lat, max_lng, max_lat


# Constraints before the text check, so they land in the schema as minimum/maximum.
def _number(lo: float, hi: float, doc: str):
    return Annotated[float, Field(ge=lo, le=hi, description=doc), BeforeValidator(_ascii_number)]


def _integer(lo: int, hi: int, doc: str):
    return Annotated[int, Field(ge=lo, le=hi, description=doc), BeforeValidator(_ascii_integer)]


Latitude = _number(-90, 90, "Latitude, in `coordsys`.")
Longitude = _number(-180, 180, "Longitude, in `coordsys`.")
Coordsys = Annotated[Literal[COORDSYS], Field(description="Coordinate system of the question (and, by default, the answer).")]
OutCoordsys = Annotated[Literal[COORDSYS] | None, Field(
    description="Coordinate system of the answer, if not `coordsys` (e.g. a GCJ-02 position from WeChat shown on "
                "a WGS-84 map).")]
Kinds = Annotated[tuple[Literal[tuple(KINDS)], ...], Field(
    min_length=1, description="Comma list: stations of any of these kinds."), BeforeValidator(_comma_list)]
Amenities = Annotated[tuple[Literal[tuple(AMENITIES)], ...], Field(
    min_length=1, description="Comma list: stations that have all of these."), BeforeValidator(_comma_list)]
OrgCodes = Annotated[tuple[Annotated[str, Field(max_length=ORG_CODE_MAX_LENGTH, pattern=ORG_CODE_PATTERN.pattern)],
                           ...], Field(
    min_length=1, description="Comma list of organisation codes (e.g. a battery-swap brand): stations run by any "
                              "of them. The station's `operator` field is a display name, not this."),
                     BeforeValidator(_comma_list)]
BatteryType = Annotated[str | None, Field(
    max_length=BATTERY_TYPE_MAX_LENGTH, pattern=BATTERY_TYPE_PATTERN.pattern,
    description="Cabinets whose last status lists this battery type (e.g. `48V20Ah`); with `available_now=1`, "
                "a fresh status with a charged one of it.")]
# Documented as the strings a query carries; absent means "0".
Flag = Annotated[bool, BeforeValidator(_flag), WithJsonSchema({"type": "string", "enum": list(_FLAGS)}),
                 Field(json_schema_extra={"default": "0"})]
Instant = Annotated[datetime | None, BeforeValidator(_instant), WithJsonSchema({
    "type": "string", "format": "date-time",
    "pattern": rf"^(19[0-9][0-9]|2[01][0-9][0-9]|{LAST_YEAR})-",
    "description": f"ISO 8601 time for the open state (default now; no offset means the service's time zone); "
                   f"years {FIRST_YEAR}–{LAST_YEAR}.",
})]
BBox = Annotated[tuple[float, float, float, float], BeforeValidator(_bbox), WithJsonSchema({
    "type": "array", "minItems": 4, "maxItems": 4,
    "prefixItems": [
        {"type": "number", "minimum": -180, "maximum": 180}, {"type": "number", "minimum": -90, "maximum": 90},
        {"type": "number", "minimum": -180, "maximum": 180}, {"type": "number", "minimum": -90, "maximum": 90},
    ],
    "items": False,
    "description": "minLng,minLat,maxLng,maxLat in `coordsys` (min ≤ max).",
})]
Mode = Annotated[Literal[MODE_NAMES], Field(description="Travel mode; speeds are in /meta.")]
Minutes = _integer(MIN_MINUTES, MAX_MINUTES, "Travel time budget in minutes.")


# -- shared groups ---------------------------------------------------------------


class Answered(Args):
    coordsys: Coordsys = WGS84
    out_coordsys: OutCoordsys = None

    @property
    def answer_in(self) -> str:
        return self.out_coordsys or self.coordsys


class Located(Answered):
    lat: Latitude
    lng: Longitude

    @property
    def point(self) -> tuple[float, float]:
        """The question's point in WGS-84."""
        return to_wgs84(self.lat, self.lng, self.coordsys)


class Filtered(Args):
    kind: Kinds = ()
    amenity: Amenities = ()

    def station_filter(self, fresh_since: datetime | None = None) -> StationFilter:
        return StationFilter(kinds=self.kind, amenities=self.amenity)


class Operated(Filtered):
    """Who runs it, and its live status: for the finder's searches (nearest, bbox, service circle)."""

    org: OrgCodes = ()
    battery_type: BatteryType = None
    available_now: Annotated[Flag, Field(
        description="Only cabinets with a FRESH status (see `live`) that are installed and swapping and have a "
                    "charged battery: of `battery_type` when given, else of any type.")] = False

    def station_filter(self, fresh_since: datetime | None = None) -> StationFilter:
        """``fresh_since``: the instant a status must be newer than to count (needed with available_now)."""
        return StationFilter(kinds=self.kind, amenities=self.amenity, orgs=self.org,
                             battery_type=self.battery_type, available_now=self.available_now,
                             fresh_since=fresh_since if self.available_now else None)


class Dated(Args):
    at: Instant = None

    def instant(self, tz: str) -> datetime:
        """``at`` (read in ``tz`` when it has no offset), or now."""
        if self.at is None:
            return datetime.now(ZoneInfo(tz))
        return self.at if self.at.tzinfo else self.at.replace(tzinfo=ZoneInfo(tz))


class Timed(Operated, Dated):
    open_now: Annotated[Flag, Field(description="Only stations open at `at`.")] = False
    include_unknown: Annotated[Flag, Field(description="With open_now: also stations whose hours are unknown.")] = False

    def station_filter(self, fresh_since: datetime | None = None) -> StationFilter:
        return replace(super().station_filter(fresh_since), open_only=self.open_now,
                       include_unknown=self.include_unknown)


class Travel(Args):
    mode: Mode = DEFAULT_MODE
    minutes: Minutes = DEFAULT_MINUTES


class Boxed(Answered):
    bbox: BBox

    @property
    def box_wgs84(self):
        """The box's corners in WGS-84: (south, west, north, east)."""
        min_lng, min_lat, max_lng, max_lat = self.bbox
        south, west = to_wgs84(min_lat, min_lng, self.coordsys)
        north, east = to_wgs84(max_lat, max_lng, self.coordsys)
        return south, west, north, east


# -- per endpoint ------------------------------------------------------------------

MAX_NEAREST, MAX_BOX, MAX_CIRCLE = 100, 5000, 200


class NearestArgs(Located, Timed):
    limit: _integer(1, MAX_NEAREST, "How many stations.") = 10
    max_distance: _number(0, MAX_SEARCH_M, f"Metres; the search never looks farther than {MAX_SEARCH_M:,.0f} m.") | None = None


class BoxArgs(Boxed, Operated):
    limit: _integer(1, MAX_BOX, "At most this many features; `truncated` says when more matched.") = 500


class DetailArgs(Answered, Dated):
    pass


class CircleArgs(Located, Timed, Travel):
    limit: _integer(1, MAX_CIRCLE, "How many stations.") = 50


class ServiceAreaArgs(Answered, Travel):
    pass


class ServingArgs(Located, Filtered, Travel):
    pass


class CoverageArgs(Boxed, Filtered, Travel):
    pass


MAX_SEARCH_RESULTS, DEFAULT_SEARCH_RESULTS = 20, 8
# A query string longer than this is refused before it is even normalised.
MAX_RAW_QUERY_CHARS = 256


def _search_text(value: str) -> str:
    """The normalised query (app.search.text.normalise): not empty, at most MAX_QUERY_CHARS."""
    text = normalise(value)
    if not text:
        raise PydanticCustomError("invalid_parameter", "'q' has nothing to search for once spaces are removed.")
    if len(text) > MAX_QUERY_CHARS:
        raise PydanticCustomError("out_of_range", f"'q' must be at most {MAX_QUERY_CHARS} characters.")
    return text


def _lat_lng(value):
    """'LAT,LNG' as two plain numbers in range."""
    if not isinstance(value, str):
        return value
    parts = value.split(",")
    if len(parts) != 2 or not all(is_plain_number(p.strip()) for p in parts):
        raise PydanticCustomError("invalid_parameter", "'near' must be LAT,LNG: two numbers, e.g. 27.83,113.15.")
    lat, lng = (float(p) for p in parts)
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        raise PydanticCustomError("out_of_range", "'near' must have a latitude within ±90 and a longitude within ±180.")
    return lat, lng


SearchText = Annotated[str, Field(
    min_length=1, max_length=MAX_RAW_QUERY_CHARS,
    description=f"What to look for: Chinese characters, pinyin with or without tones and spaces, initials, or a "
                f"mix (人民g). Normalised (full-width to half-width, lower case, no spaces, no tone marks, ü as v) "
                f"to at most {MAX_QUERY_CHARS} characters. A single letter or digit finds nothing."),
    AfterValidator(_search_text)]
Near = Annotated[tuple[float, float] | None, BeforeValidator(_lat_lng), WithJsonSchema({
    "type": "array", "minItems": 2, "maxItems": 2,
    "prefixItems": [{"type": "number", "minimum": -90, "maximum": 90},
                    {"type": "number", "minimum": -180, "maximum": 180}],
    "items": False,
    "description": "LAT,LNG in `coordsys`, e.g. the map's centre: results are ranked by distance from it, and "
                   "a street is answered at its point nearest to it.",
})]


class SearchArgs(Answered):
    q: SearchText
    near: Near = None
    limit: _integer(1, MAX_SEARCH_RESULTS, "At most this many results.") = DEFAULT_SEARCH_RESULTS

    @property
    def near_wgs84(self) -> tuple[float, float] | None:
        return None if self.near is None else to_wgs84(self.near[0], self.near[1], self.coordsys)


# -- staff (operations) --------------------------------------------------------------

MAX_WORK_ORDERS = 500
# A state, or the group Open311 uses ('fixed' and 'closed' work orders are 'closed').
WorkOrderStatus = Literal[(*STATES, "open", "closed")]


class WorkOrderArgs(Args):
    status: Annotated[WorkOrderStatus | None, Field(
        description="A state, or the group `open` (new, confirmed, assigned, in_progress, reopened) or `closed` "
                    "(fixed, closed).")] = None
    station: _integer(0, 9223372036854775807, "Only work orders at this station (its id).") | None = None
    category: Annotated[str | None, Field(
        max_length=CODE_MAX_LENGTH, pattern=CODE_PATTERN.pattern,
        description="Only this problem category (its service code, e.g. `no_water`).")] = None
    overdue: Annotated[Flag, Field(description="Only open work orders past the clock that runs now "
                                               "(the response limit until someone responds, then the resolution "
                                               "limit).")] = False
    limit: _integer(1, MAX_WORK_ORDERS, "At most this many, soonest due first; `truncated` says when more "
                                        "matched.") = 100


class AssessmentArgs(Args):
    org: Annotated[str, Field(min_length=1, max_length=ORG_CODE_MAX_LENGTH, pattern=ORG_CODE_PATTERN.pattern,
                              description="The organisation's code (`flask --app wsgi orgs create CODE`).")]
    period: Annotated[str, Field(pattern=PERIOD_PATTERN.pattern,
                                 description=f"The period: {PERIOD_EXAMPLE}, in the organisation's time zone; "
                                             "compared with the period before it (2026Q3, 2026-10).")]
    format: Annotated[Literal[ASSESSMENT_FORMATS], Field(
        description="`json`, or a download: `csv` (UTF-8 with a byte-order mark, Chinese headers) or `xlsx`.")] = "json"
