"""Plain values that cross the store boundary. All coordinates are WGS-84."""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime

from app.search.text import search_key as make_search_key
from app.stations import hours
from app.stations.hours import HoursState

DEFAULT_TIMEZONE = "Asia/Shanghai"
# Nearest-station searches look no farther than this (and ``max_distance`` may not ask
# for more): nobody walks or rides 50 km to a toilet, and an unbounded search from a
# point far from every station would have to read them all.
MAX_SEARCH_M = 50_000.0


def _column(doc: str, default=MISSING, *, public: str | None = "summary", wire: str = "plain",
            json: str | None = None):
    """A station field: its meaning, whether and where answers show it, and how it is written.

    ``public``: "summary" (every answer), "detail" (one station's page) or None (never).
    ``wire``: how the serializer writes it: "plain", "coordinate" (in the caller's system),
    "amenities" (a bit mask as a list of names), "time" (ISO 8601).
    ``json``: its name in answers, when not the field's own.
    """
    return field(default=default, metadata={"doc": doc, "public": public, "wire": wire, "json": json})


# The station declaration. Store columns, row mapping, the import's write list, JSON
# answers and the OpenAPI schema all follow from these fields; a new field needs a
# migration plus a line here.
@dataclass(frozen=True, slots=True)
class StationInput:
    """A validated station, ready to be written (keyed by source + source_id)."""

    source: str = _column("Data source the station was imported from.")
    source_id: str = _column("The station's id within its source.")
    name: str = _column("Name, as on the door.")
    kind: str = _column("What the station is (see /meta).")
    lat: float = _column("Latitude, in the answer's coordinate system.", wire="coordinate")
    lng: float = _column("Longitude, in the answer's coordinate system.", wire="coordinate")
    amenities_yes: int = _column("Amenities the station has.", 0, wire="amenities", json="amenities")
    amenities_no: int = _column("Amenities it is known not to have; the rest are unknown.", 0, wire="amenities")
    opening_hours: str | None = _column("Opening hours in OpenStreetMap syntax; null when unknown.", None)
    address: str | None = _column("Street address.", None)
    operator: str | None = _column("Who runs it.", None)
    access: str = _column("Who may use it (see /meta).", "public")
    fee: str | None = _column("'yes' or 'no'; null when unknown.", None)
    batteries_available: int | None = _column(
        "Charged batteries in a swap cabinet, when reported.", None)
    status: str = _column("active, closed or removed.", "active", public="detail")
    timezone: str = _column("Time zone its opening hours are in.", DEFAULT_TIMEZONE, public="detail")
    # Search (issue #10): the indexed search key of its name, address and operator, made here
    # and only here (app.search.text.search_key), so every way a station is built agrees.
    search_key: str | None = _column("Indexed search key (characters, pinyin, initials).", None, public=None)

    def __post_init__(self):
        if self.search_key is None:
            object.__setattr__(self, "search_key", make_search_key(self.name, self.address, self.operator))


@dataclass(frozen=True, slots=True)
class Station(StationInput):
    """A stored station."""

    id: int = _column("Yizhan's id (stable; printed on QR codes).", 0)
    created_at: datetime | None = _column("When it was first imported.", None, public="detail", wire="time")
    updated_at: datetime | None = _column("When its data last changed.", None, public="detail", wire="time")
    # Operations (issue #8): set by station staff, never by an import. A temporary closure
    # shows through ``open_state`` ("closed", with ``closed_reason``) rather than as fields.
    closure_reason: str | None = _column("Why staff closed it for now; null when not closed.", None, public=None)
    closure_until: datetime | None = _column("When a temporary closure ends; null: until reopened.", None,
                                             public=None, wire="time")
    out_of_order: int = _column("Amenities it has that are out of order until fixed.", 0, wire="amenities")
    last_inspected_at: datetime | None = _column("When its manager last inspected it (daily checklist).", None,
                                                 wire="time")
    # Ratings (issue #9): running totals kept with each rating (app.stations.ratings), so a
    # search reads them without a join; answers show the derived ``rating`` instead.
    rating_count: int = _column("How many ratings it has.", 0, public=None)
    rating_sum: int = _column("The sum of their stars.", 0, public=None)
    # Live status (issue #9 §3), pushed or polled from the operator (app.stations.live); answers
    # show the derived ``live`` (with its freshness) instead.
    live_reported_at: datetime | None = _column("When the operator last reported its status.", None,
                                                public=None, wire="time")
    live_batteries: int | None = _column("Charged batteries, as last reported.", None, public=None)
    live_battery_types: str | None = _column("JSON [{battery_type, count}], as last reported.", None, public=None)
    live_docks: int | None = _column("Empty docks, as last reported.", None, public=None)
    live_installed: bool | None = _column("Installed, as last reported.", None, public=None)
    live_renting: bool | None = _column("Swapping batteries, as last reported.", None, public=None)
    live_connectors: str | None = _column("JSON [{id, status}] (OCPI statuses), as last reported.", None,
                                          public=None)

    def closed_by_staff(self, at: datetime) -> bool:
        """Whether staff have closed it for now (a temporary closure not yet over at ``at``)."""
        return hours.closed_by_staff(self.closure_reason, self.closure_until, at)


STATION_FIELDS = fields(Station)
# Columns every store reads, in Station field order: Station(*row) builds one.
STATION_COLUMNS = tuple(f.name for f in STATION_FIELDS)
# Columns an import writes: everything but the id and the timestamps.
WRITE_COLUMNS = tuple(f.name for f in fields(StationInput))
# Written on import but never compared to decide whether a row changed.
KEY_COLUMNS = ("source", "source_id")


@dataclass(frozen=True)
class StationFilter:
    """What a person needs: any of ``kinds``, all of ``amenities``, open at a time; run by any of
    the organisations ``orgs`` (codes); taking ``battery_type``; with a charged battery now.

    ``available_now``: a status reported at or after ``fresh_since`` (so the edge decides what
    "now" and "fresh" are) saying the cabinet is installed and swapping, with a count > 0 of
    ``battery_type`` (or of any battery without one). ``battery_type`` alone: the cabinet's last
    status lists that type, whatever its age or count (which batteries a cabinet takes changes
    rarely; whether it has one charged is the fresh part).
    """

    kinds: tuple[str, ...] = ()
    amenities: tuple[str, ...] = ()
    open_only: bool = False
    include_unknown: bool = False
    orgs: tuple[str, ...] = ()
    battery_type: str | None = None
    available_now: bool = False
    fresh_since: datetime | None = None

    def __post_init__(self):
        if self.available_now and self.fresh_since is None:
            raise ValueError("available_now needs fresh_since: the instant a status must be newer than")

    @property
    def live(self) -> bool:
        """Whether it asks about operators or live status (conditions beyond kinds and amenities)."""
        return bool(self.orgs or self.battery_type or self.available_now)

    @property
    def narrowing(self) -> bool:
        """Whether the database must filter (so a nearest scan is kept inside its radius)."""
        return bool(self.kinds or self.amenities or self.live)


PLACE_TYPES = ("street", "place")


@dataclass(frozen=True, slots=True)
class Place:
    """A named street, square, neighbourhood or landmark from the OSM extract (search only).

    ``lat``/``lng``: a point on it (a street's middle vertex); ``line_wkb``: a street's
    (multi)line, WKB in lng/lat, None for other places.
    """

    osm_id: str
    type: str  # one of PLACE_TYPES
    kind: str  # street, square, neighbourhood, metro_station, hospital, park, …
    name: str
    lat: float
    lng: float
    line_wkb: bytes | None = None
    id: int = 0
    search_key: str | None = None

    def __post_init__(self):
        if self.search_key is None:
            object.__setattr__(self, "search_key", make_search_key(self.name))


@dataclass(frozen=True)
class SearchCandidates:
    """Active stations and places whose search key holds one of the query's patterns (nearest
    to the search point first, when there is one): what the search then checks and ranks."""

    stations: list  # [Station]
    places: list  # [Place]
    station_keys: list  # [str]: each station's search key (the same order)
    place_keys: list  # [str]


@dataclass(frozen=True)
class NearestQuery:
    lat: float
    lng: float
    at: datetime  # aware; open state is evaluated at this instant
    limit: int = 10
    filter: StationFilter = field(default_factory=StationFilter)
    max_distance_m: float | None = None

    @property
    def radius_m(self) -> float:
        """How far the search looks: ``max_distance_m``, never beyond MAX_SEARCH_M."""
        if self.max_distance_m is None:
            return MAX_SEARCH_M
        return min(self.max_distance_m, MAX_SEARCH_M)


@dataclass(frozen=True)
class Hit:
    """A station with its distance from the query point and its state at the query time."""

    station: Station
    distance_m: float
    hours: HoursState


@dataclass(frozen=True)
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class NetworkRecord:
    """A stored road network for one travel mode (the graph itself as bytes)."""

    mode: str
    token: str
    source: str
    node_count: int
    segment_count: int
    road_km: float
    graph: bytes = b""
    built_at: datetime | None = None


@dataclass(frozen=True)
class ServiceArea:
    """Where a station can be reached from within ``minutes`` by ``mode`` (geometry: shapely, lng/lat)."""

    station_id: int
    mode: str
    minutes: int
    network_token: str
    station_updated_at: datetime
    area_km2: float
    road_km: float
    geom: object
    speed_kmh: float | None = None
    computed_at: datetime | None = None
