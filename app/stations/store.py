"""The station store interface, and what its two implementations share.

A store speaks WGS-84 plain values (app.stations.model). It never sees Flask or
HTTP, and never converts coordinate systems: that happens at the edges.

Nearest-neighbour search is exact in both stores: the database proposes candidates
through its spatial index, Python measures true ellipsoidal distances, and the
search only stops once a bounding-box argument (app.geo.geodesic.boxes_within)
proves no unseen station can be nearer than the k-th result.
"""
from __future__ import annotations

import bisect
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone

import shapely
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection, Engine

from app.geo.geodesic import Box, distance_m, lower_bound
from app.stations import hours
from app.stations.model import (
    Hit, NearestQuery, NetworkRecord, ServiceArea, Station, StationFilter, StationInput, UpsertCounts,
)
from app.stations.vocabulary import amenity_mask

Progress = Callable[[int], None]

# Columns every store reads, in Station field order (minus id/timestamps).
STATION_COLUMNS = (
    "id", "source", "source_id", "name", "kind", "lat", "lng", "amenities_yes",
    "amenities_no", "opening_hours", "address", "operator", "access", "fee", "batteries_available",
    "status", "timezone", "created_at", "updated_at",
)
# Columns an import writes (everything but the id and timestamps).
WRITE_COLUMNS = STATION_COLUMNS[1:-2]

BOX_BATCH = 1000


class StationStore(ABC):
    """Stations, searchable by distance and by map area. See PostgisStore, SqliteStore."""

    def __init__(self, bind: Engine | Connection):
        # A Connection (tests) is used inside savepoints so the caller can roll back.
        self._bind = bind
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A transaction; nested calls join the outer one (as a savepoint), so
        several store calls can be made atomic together."""
        outer = getattr(self._local, "conn", None)
        if outer is not None:
            with outer.begin_nested():
                yield outer
            return
        if isinstance(self._bind, Connection):
            with self._bind.begin_nested():
                self._local.conn = self._bind
                try:
                    yield self._bind
                finally:
                    self._local.conn = None
            return
        with self._bind.begin() as conn:
            self._local.conn = conn
            try:
                yield conn
            finally:
                self._local.conn = None

    # -- reads -------------------------------------------------------------

    @abstractmethod
    def nearest(self, query: NearestQuery) -> list[Hit]:
        """Active stations matching ``query.filter``, nearest first, ties by id."""

    def within(
        self,
        box: Box,
        flt: StationFilter,
        limit: int,
        keep: Callable[[Station], bool] | None = None,
    ) -> tuple[list[Station], bool]:
        """Active stations inside ``box`` (by id), at most ``limit``; True if more matched.

        ``keep`` is an exact test applied after the index (e.g. the box in the
        caller's coordinate system, which is not a rectangle in WGS-84).
        """
        found: list[Station] = []
        after_id = 0
        with self.transaction() as conn:
            while True:
                batch = self._box_batch(conn, box, flt, after_id, BOX_BATCH)
                for station in batch:
                    if keep is None or keep(station):
                        if len(found) == limit:
                            return found, True
                        found.append(station)
                if len(batch) < BOX_BATCH:
                    return found, False
                after_id = batch[-1].id

    def get(self, station_id: int) -> Station | None:
        with self.transaction() as conn:
            row = conn.execute(
                text(f"SELECT {', '.join(STATION_COLUMNS)} FROM station WHERE id = :id"),
                {"id": station_id},
            ).first()
        return row_to_station(row) if row else None

    def count(self) -> int:
        with self.transaction() as conn:
            return conn.execute(text("SELECT count(*) FROM station")).scalar_one()

    @abstractmethod
    def _box_batch(self, conn, box: Box, flt: StationFilter, after_id: int, n: int) -> list[Station]:
        """Up to ``n`` active matching stations in ``box`` with id > after_id, by id."""

    # -- writes ------------------------------------------------------------

    @abstractmethod
    def upsert(self, stations: Sequence[StationInput], progress: Progress | None = None) -> UpsertCounts:
        """Insert or update by (source, source_id), all in one transaction."""

    # -- road networks -------------------------------------------------------

    def replace_networks(self, networks: Sequence[NetworkRecord]) -> None:
        """Swap in new graphs for their modes, all in one transaction (readers see old or new)."""
        with self.transaction() as conn:
            for net in networks:
                conn.execute(text("DELETE FROM network WHERE mode = :mode"), {"mode": net.mode})
                conn.execute(
                    text(
                        "INSERT INTO network (mode, token, source, node_count, segment_count, road_km, graph)"
                        " VALUES (:mode, :token, :source, :node_count, :segment_count, :road_km, :graph)"
                    ),
                    {
                        "mode": net.mode, "token": net.token, "source": net.source, "node_count": net.node_count,
                        "segment_count": net.segment_count, "road_km": net.road_km, "graph": net.graph,
                    },
                )

    def network_token(self, mode: str) -> str | None:
        with self.transaction() as conn:
            return conn.execute(text("SELECT token FROM network WHERE mode = :mode"), {"mode": mode}).scalar()

    def load_network(self, mode: str) -> NetworkRecord | None:
        with self.transaction() as conn:
            row = conn.execute(
                text(
                    "SELECT mode, token, source, node_count, segment_count, road_km, graph, built_at"
                    " FROM network WHERE mode = :mode"
                ),
                {"mode": mode},
            ).first()
        if row is None:
            return None
        m = row._mapping
        return NetworkRecord(
            mode=m["mode"], token=m["token"], source=m["source"], node_count=m["node_count"],
            segment_count=m["segment_count"], road_km=m["road_km"], graph=bytes(m["graph"]),
            built_at=_as_utc(m["built_at"]),
        )

    # -- service areas -------------------------------------------------------

    def stations_needing_service_area(self, mode: str, minutes: int, token: str, speed_kmh: float) -> list[Station]:
        """Active stations whose service area is missing, or older than the station, the network or the speed."""
        cols = ", ".join(f"s.{c}" for c in STATION_COLUMNS)
        with self.transaction() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {cols} FROM station s LEFT JOIN service_area a"
                    " ON a.station_id = s.id AND a.mode = :mode AND a.minutes = :minutes"
                    " WHERE s.status = 'active' AND (a.station_id IS NULL OR a.network_token <> :token"
                    " OR a.station_updated_at <> s.updated_at OR a.speed_kmh IS NULL OR a.speed_kmh <> :speed)"
                    " ORDER BY s.id"
                ),
                {"mode": mode, "minutes": minutes, "token": token, "speed": speed_kmh},
            )
            return [row_to_station(r) for r in rows]

    def drop_inactive_service_areas(self) -> int:
        """Forget the areas of stations that are no longer active."""
        with self.transaction() as conn:
            return conn.execute(text(
                "DELETE FROM service_area WHERE station_id IN (SELECT id FROM station WHERE status <> 'active')"
            )).rowcount

    @abstractmethod
    def save_service_areas(self, areas: Sequence[ServiceArea]) -> None:
        """Insert or replace service areas by (station, mode, minutes)."""

    _area_wkb_sql: str  # SQL for the area's geometry as WKB, per backend

    def _areas(self, where: str, params: dict, binds=()) -> list[tuple[Station, ServiceArea]]:
        """(station, service area) pairs for the condition ``where`` on ``a`` (area) and ``s`` (station)."""
        cols = ", ".join(f"s.{c}" for c in STATION_COLUMNS)
        area_cols = ", ".join(f"a.{c}" for c in SERVICE_AREA_COLUMNS)
        sql = text(
            f"SELECT {cols}, {area_cols}, {self._area_wkb_sql} AS wkb"
            f" FROM service_area a JOIN station s ON s.id = a.station_id WHERE {where} ORDER BY s.id"
        ).bindparams(*binds)
        with self.transaction() as conn:
            rows = conn.execute(sql, params).all()
        return [(row_to_station(r), row_to_service_area(r, shapely.from_wkb(bytes(r.wkb)))) for r in rows]

    def service_area(self, station_id: int, mode: str, minutes: int) -> ServiceArea | None:
        """One station's stored service area."""
        found = self._areas(
            "a.station_id = :id AND a.mode = :mode AND a.minutes = :minutes",
            {"id": station_id, "mode": mode, "minutes": minutes},
        )
        return found[0][1] if found else None

    @abstractmethod
    def service_areas_in_box(
        self, box: Box, mode: str, minutes: int, flt: StationFilter
    ) -> list[tuple[Station, ServiceArea]]:
        """Active matching stations whose service area's bounding box meets ``box``."""

    @abstractmethod
    def stations_serving(
        self, lat: float, lng: float, mode: str, minutes: int, flt: StationFilter
    ) -> list[tuple[Station, ServiceArea]]:
        """Active matching stations whose service area contains the point (a spatial-index lookup)."""


# -- helpers shared by the implementations -----------------------------------


def filter_sql(flt: StationFilter, prefix: str = "") -> tuple[str, dict, list]:
    """SQL conditions (ANDed, leading ' AND'), their parameters and expanding bind params."""
    sql = f" AND {prefix}status = 'active'"
    params: dict = {}
    binds = []
    if flt.kinds:
        sql += f" AND {prefix}kind IN :kinds"
        params["kinds"] = list(flt.kinds)
        binds.append(bindparam("kinds", expanding=True))
    if flt.amenities:
        sql += f" AND ({prefix}amenities_yes & :amask) = :amask"
        params["amask"] = amenity_mask(flt.amenities)
    return sql, params, binds


def _as_utc(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def row_to_service_area(row, geom) -> ServiceArea:
    m = row._mapping
    return ServiceArea(
        station_id=m["station_id"], mode=m["mode"], minutes=m["minutes"], network_token=m["network_token"],
        station_updated_at=_as_utc(m["station_updated_at"]), area_km2=m["area_km2"], road_km=m["road_km"],
        geom=geom, speed_kmh=m["speed_kmh"], computed_at=_as_utc(m["computed_at"]),
    )


SERVICE_AREA_COLUMNS = (
    "station_id", "mode", "minutes", "network_token", "station_updated_at", "area_km2", "road_km", "speed_kmh",
    "computed_at",
)


def row_to_station(row) -> Station:
    m = row._mapping
    return Station(
        id=m["id"], source=m["source"], source_id=m["source_id"], name=m["name"],
        kind=m["kind"], lat=m["lat"], lng=m["lng"], amenities_yes=m["amenities_yes"],
        amenities_no=m["amenities_no"], opening_hours=m["opening_hours"],
        address=m["address"], operator=m["operator"], access=m["access"], fee=m["fee"],
        batteries_available=m["batteries_available"],
        status=m["status"], timezone=m["timezone"],
        created_at=_as_utc(m["created_at"]), updated_at=_as_utc(m["updated_at"]),
    )


def rank(stations: Sequence[Station], query: NearestQuery, distances: dict[int, float]) -> list[Hit]:
    """The first ``query.limit`` stations by (distance, id) that pass the distance and hours filters.

    Exact ellipsoidal distances are costly (~40 µs each), so candidates are
    visited roughly nearest first and a proven lower bound (geodesic.lower_bound)
    skips those that cannot beat the current k-th result. ``distances`` caches
    exact distances by station id across widening rounds.
    """
    flt = query.filter
    cos_lat = math.cos(math.radians(query.lat))
    eligible = []
    for st in stations:
        state = hours.evaluate(st.opening_hours, query.at, st.timezone)
        if flt.open_only and not (
            state.state == hours.OPEN or (flt.include_unknown and state.state == hours.UNKNOWN)
        ):
            continue
        d_lng = abs(st.lng - query.lng) % 360.0
        rough = (st.lat - query.lat) ** 2 + (min(d_lng, 360.0 - d_lng) * cos_lat) ** 2
        eligible.append((rough, st, state))
    eligible.sort(key=lambda e: e[0])

    best: list[tuple[float, int, Station, hours.HoursState]] = []  # sorted by (distance, id), <= limit
    bound = None
    bound_radius = math.inf
    for _, st, state in eligible:
        radius = best[-1][0] if len(best) == query.limit else math.inf
        if query.max_distance_m is not None:
            radius = min(radius, query.max_distance_m)
        if radius < math.inf:
            if bound is None or radius < bound_radius / 2:
                bound, bound_radius = lower_bound(query.lat, query.lng, radius), radius
            if bound(st.lat, st.lng) > radius:
                continue
        d = distances.get(st.id)
        if d is None:
            d = distances[st.id] = distance_m(query.lat, query.lng, st.lat, st.lng)
        if query.max_distance_m is not None and d > query.max_distance_m:
            continue
        entry = (d, st.id, st, state)
        if len(best) == query.limit and entry[:2] >= best[-1][:2]:
            continue
        bisect.insort(best, entry, key=lambda e: (e[0], e[1]))
        del best[query.limit:]
    return [Hit(st, d, state) for d, _, st, state in best]
