"""Plain values that cross the store boundary. All coordinates are WGS-84."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app.stations.hours import HoursState

DEFAULT_TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class StationInput:
    """A validated station, ready to be written (keyed by source + source_id)."""

    source: str
    source_id: str
    name: str
    kind: str
    lat: float
    lng: float
    amenities_yes: int = 0
    amenities_no: int = 0
    opening_hours: str | None = None
    address: str | None = None
    operator: str | None = None
    access: str = "public"
    fee: str | None = None  # "yes" | "no" | None (unknown)
    batteries_available: int | None = None  # charged batteries in a swap cabinet, when reported
    status: str = "active"
    timezone: str = DEFAULT_TIMEZONE


@dataclass(frozen=True, slots=True)
class Station(StationInput):
    """A stored station."""

    id: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class StationFilter:
    """What a person needs: any of ``kinds``, all of ``amenities``, open at a time."""

    kinds: tuple[str, ...] = ()
    amenities: tuple[str, ...] = ()
    open_only: bool = False
    include_unknown: bool = False


@dataclass(frozen=True)
class NearestQuery:
    lat: float
    lng: float
    at: datetime  # aware; open state is evaluated at this instant
    limit: int = 10
    filter: StationFilter = field(default_factory=StationFilter)
    max_distance_m: float | None = None


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
