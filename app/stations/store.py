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
import itertools
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from app.dbtime import from_db, to_db
from app.geo.geodesic import Box, distances_m
from app.search.text import key_holds, pattern_parts
from app.stations import hours
from app.stations.model import (
    STATION_COLUMNS, STATION_FIELDS, Hit, NearestQuery, NetworkRecord, Place, SearchCandidates, ServiceArea,
    Station, StationFilter, StationInput, UpsertCounts,
)
from app.stations.vocabulary import amenity_mask

Progress = Callable[[int], None]

BOX_BATCH = 1000


class StationStore(ABC):
    """Stations, searchable by distance and by map area. See PostgisStore, SqliteStore."""

    def __init__(self, bind: Engine | Connection, reader: Engine | None = None):
        # A Connection (tests) is used inside savepoints so the caller can roll back.
        self._bind = bind
        # Reads go to an autocommit engine when there is one: no BEGIN/COMMIT round trips. It may
        # be a router that hands out each connection from the primary or a replica
        # (app.replicas.ReadRouter: connect, raw_connection and dialect, as an Engine has them).
        self._reader = reader if reader is not None else bind
        self._local = threading.local()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads: the open transaction's if any, else one without a transaction."""
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
        elif isinstance(self._bind, Connection):
            yield self._bind
        else:
            with self._reader.connect() as conn:
                yield conn

    @contextmanager
    def driver_reading(self):
        """A driver cursor for reads on a hot path that skips SQLAlchemy's execution layer:
        on the open transaction's connection if any, else on a pooled autocommit connection
        checked out raw (no Connection object, no events: ~50 µs a request).

        Driver errors come out as SQLAlchemy's (so the API maps them like any other), and a
        connection the server dropped is invalidated, so the pool reconnects next time.
        """
        current = getattr(self._local, "conn", None)
        if current is None and isinstance(self._bind, Connection):
            current = self._bind
        if current is not None:
            with _mapped_errors(current.dialect, current.connection, current.invalidate) as cursor:
                yield cursor
            return
        dbapi = self._reader.dialect.loaded_dbapi
        try:
            pooled = self._reader.raw_connection()
        except dbapi.Error as exc:  # cannot connect: the same error SQLAlchemy would raise
            raise DBAPIError.instance(None, None, exc, dbapi.Error) from exc
        try:
            with _mapped_errors(self._reader.dialect, pooled, pooled.invalidate) as cursor:
                yield cursor
        finally:
            pooled.close()  # back to the pool (or discarded, if invalidated)

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

    @contextmanager
    def bulk_transaction(self) -> Iterator[Connection]:
        """A transaction for imports and batch jobs: not bound by the statement timeout,
        which is there to keep web requests from waiting on a hung database."""
        with self.transaction() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL statement_timeout = 0"))
            yield conn

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
        with self.reading() as conn:
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
        with self.reading() as conn:
            row = conn.execute(
                text(f"SELECT {', '.join(STATION_COLUMNS)} FROM station WHERE id = :id"),
                {"id": station_id},
            ).first()
        return row_to_station(row) if row else None

    def active_batches(self, n: int = BOX_BATCH) -> Iterator[list[Station]]:
        """Every active station, by id, in batches of at most ``n`` (keyset paging, one read)."""
        sql = text(f"SELECT {', '.join(STATION_COLUMNS)} FROM station "
                   "WHERE status = 'active' AND id > :after ORDER BY id LIMIT :n")
        after_id = 0
        with self.reading() as conn:
            while True:
                batch = [row_to_station(row) for row in conn.execute(sql, {"after": after_id, "n": n})]
                if batch:
                    yield batch
                if len(batch) < n:
                    return
                after_id = batch[-1].id

    def count(self) -> int:
        with self.reading() as conn:
            return conn.execute(text("SELECT count(*) FROM station")).scalar_one()

    def active_extent(self) -> Box | None:
        """The smallest WGS-84 rectangle holding every active station; None when there is none.

        One aggregate over the table, the same on both stores: callers that ask often cache it
        (the page opens on it when it has no position; app.web)."""
        with self.reading() as conn:
            row = conn.execute(text(
                "SELECT min(lat), min(lng), max(lat), max(lng) FROM station WHERE status = 'active'"
            )).one()
        return None if row[0] is None else Box(*(float(v) for v in row))

    @abstractmethod
    def _box_batch(self, conn, box: Box, flt: StationFilter, after_id: int, n: int) -> list[Station]:
        """Up to ``n`` active matching stations in ``box`` with id > after_id, by id."""

    # -- search by name --------------------------------------------------------

    @abstractmethod
    def search_candidates(self, patterns: Sequence[str], near: tuple[float, float] | None,
                          n: int) -> SearchCandidates:
        """Up to ``n`` active stations and up to ``n`` places whose search key contains any of
        ``patterns`` (each ≥ 3 characters; found through the trigram index, never a scan),
        nearest to ``near`` (WGS-84 lat, lng) first, else by id. See app.search.text."""

    def _nearest_matching(self, cursor, patterns: Sequence[str], near: tuple[float, float],
                          n: int) -> list | None:
        """Rows (of STATION_COLUMNS, then the search key) of the ``n`` active stations nearest ``near`` by near_order
        whose key holds a pattern, found in boxes widening around ``near`` (the spatial index,
        each key tested) when the pattern is common enough for that to be cheaper than sorting
        every match of the text index; None: ask the text index.

        Everything within ``reach`` of ``near`` (near_metric) lies in the round's box, so once
        the n nearest of the box are within reach, no station outside can come before them."""
        if self._text_index_first(cursor, patterns, n):
            return None
        metric = near_metric(near)
        reach = FIRST_REACH_DEG
        while reach <= LAST_REACH_DEG:
            box = reach_box(near, reach)
            if box is None:
                return None
            rows = self._matching_in_box(cursor, patterns, near, box, n)
            inside = sum(1 for r in rows if metric(r[_LAT], r[_LNG]) <= reach * reach)
            if inside == n:
                return rows
            reach = next_reach(reach, inside, n)
        return None

    @abstractmethod
    def analyze_search(self) -> None:
        """Refresh the statistics the search plans by (after an import: ``search_trigram``, per
        table how many keys hold each trigram; ``search_sample``, SEARCH_SAMPLE active
        stations' keys); answers never depend on them, only how fast they come."""

    _stats: tuple[float, dict[str, dict[str, int]], KeySample] | None = None
    # What a row a box round reads costs, beside one the text index gives (read by id, tested):
    # each store measures its own (1.0: the same).
    BOX_ROW_COST = 1.0

    def _search_stats(self, cursor) -> tuple[dict[str, dict[str, int]], KeySample]:
        """Per table, how many keys hold each trigram, and a sample of active stations' keys
        (as of the last ``analyze_search``), read at most once a minute per process: only the
        cost of a query depends on them."""
        now = time.monotonic()
        if self._stats is None or now - self._stats[0] > TRIGRAM_DOCS_TTL_S:
            docs: dict[str, dict[str, int]] = {}
            for table, trigram, count in cursor.execute("SELECT tbl, trigram, docs FROM search_trigram"):
                docs.setdefault(table, {})[trigram] = count
            sample = KeySample([row[0] for row in cursor.execute("SELECT search_key FROM search_sample")])
            # Counted while the table was empty: nothing to plan by.
            self._stats = (now, {table: TrigramDocs(counts, sample if table == "station" else None)
                                 for table, counts in docs.items() if counts.get("", 0)}, sample)
        return self._stats[1], self._stats[2]

    def _trigram_docs(self, cursor) -> dict[str, dict[str, int]]:
        return self._search_stats(cursor)[0]

    def _text_index_first(self, cursor, patterns: Sequence[str], n: int) -> bool:
        """Whether the text index alone is the cheaper way to the ``n`` nearest (see
        text_index_first), judged on the sampled keys: the share holding a pattern (its
        matches) and the share holding all the trigrams the text index is asked for (the rows
        it gives, often far more: 9c9j alone is in 25,000 keys at 1M, 9c9j9n9l in ~600).
        In sampled keys, matches·read < w·n·rows becomes held·read < w·n·size²/rows (w: the
        store's BOX_ROW_COST), so each is counted only up to where the answer is settled."""
        docs, sample = self._search_stats(cursor)
        station_docs = docs.get("station", {})
        rows = station_docs.get("", 0)
        if not sample.size or not rows:
            return True  # never analysed: no estimate, so no reason to scan boxes
        even = self.BOX_ROW_COST * n * sample.size * sample.size / rows
        held = sample.holding_any(patterns, stop=math.isqrt(math.ceil(even)) + 1)
        if held == 0 or held * held >= even:
            return held == 0
        shared, groups = index_plan(patterns, station_docs)
        scale = rows / sample.size
        # At most the keys of the rarest trigram asked for (of each group, without shared ones).
        bound = (min(station_docs.get(g, 0) for g in shared) if shared
                 else sum(min(station_docs.get(g, 0) for g in group) for group in groups))
        if text_index_first(held * scale, rows, n, read=bound, box_cost=self.BOX_ROW_COST):
            return True  # settled without counting
        read = sample.holding_plan(shared, groups, stop=math.ceil(even / held))
        return text_index_first(held * scale, rows, n, read=read * scale, box_cost=self.BOX_ROW_COST)

    def _refresh_sample(self, conn) -> None:
        """``search_sample``: SEARCH_SAMPLE active stations' keys at random (in analyze_search)."""
        conn.execute(text("DELETE FROM search_sample"))
        conn.execute(text("INSERT INTO search_sample (search_key) SELECT search_key FROM station"
                          " WHERE status = 'active' ORDER BY random() LIMIT :n"), {"n": SEARCH_SAMPLE})

    def replace_places(self, places: Sequence[Place]) -> int:
        """Swap in the extract's places (all in one transaction; readers see the old or the new)."""
        with self.bulk_transaction() as conn:
            conn.execute(text("DELETE FROM place"))
            if places:
                conn.execute(text(
                    "INSERT INTO place (osm_id, type, kind, name, lat, lng, line_wkb, search_key)"
                    " VALUES (:osm_id, :type, :kind, :name, :lat, :lng, :line_wkb, :search_key)"),
                    [{"osm_id": p.osm_id, "type": p.type, "kind": p.kind, "name": p.name, "lat": p.lat,
                      "lng": p.lng, "line_wkb": p.line_wkb, "search_key": p.search_key} for p in places])
        return len(places)

    # -- writes ------------------------------------------------------------

    @abstractmethod
    def upsert(self, stations: Sequence[StationInput], progress: Progress | None = None) -> UpsertCounts:
        """Insert or update by (source, source_id), all in one transaction."""

    # -- road networks -------------------------------------------------------

    def replace_networks(self, networks: Sequence[NetworkRecord]) -> None:
        """Swap in new graphs for their modes, all in one transaction (readers see old or new)."""
        with self.bulk_transaction() as conn:
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
        with self.reading() as conn:
            return conn.execute(text("SELECT token FROM network WHERE mode = :mode"), {"mode": mode}).scalar()

    def load_network(self, mode: str, with_graph: bool = True) -> NetworkRecord | None:
        """The stored network of ``mode``; without ``with_graph`` only its figures (not the blob)."""
        graph = "graph" if with_graph else "NULL AS graph"
        with self.reading() as conn:
            row = conn.execute(
                text(
                    f"SELECT mode, token, source, node_count, segment_count, road_km, {graph}, built_at"
                    " FROM network WHERE mode = :mode"
                ),
                {"mode": mode},
            ).first()
        if row is None:
            return None
        m = row._mapping
        return NetworkRecord(
            mode=m["mode"], token=m["token"], source=m["source"], node_count=m["node_count"],
            segment_count=m["segment_count"], road_km=m["road_km"],
            graph=bytes(m["graph"]) if m["graph"] is not None else b"", built_at=from_db(m["built_at"]),
        )

    # -- service areas -------------------------------------------------------

    def stations_needing_service_area(self, mode: str, minutes: int, token: str, speed_kmh: float) -> list[Station]:
        """Active stations whose service area is missing, or older than the station, the network or the speed."""
        cols = ", ".join(f"s.{c}" for c in STATION_COLUMNS)
        with self.reading() as conn:
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
        with self.bulk_transaction() as conn:
            return conn.execute(text(
                "DELETE FROM service_area WHERE station_id IN (SELECT id FROM station WHERE status <> 'active')"
            )).rowcount

    @abstractmethod
    def save_service_areas(self, areas: Sequence[ServiceArea]) -> None:
        """Insert or replace service areas by (station, mode, minutes)."""

    _area_wkb_sql: str  # SQL for the area's geometry as WKB, per backend

    def _areas(self, where: str, params: dict) -> list[tuple[Station, ServiceArea]]:
        """(station, service area) pairs for the condition ``where`` on ``a`` (area) and ``s`` (station)."""
        cols = ", ".join(f"s.{c}" for c in STATION_COLUMNS)
        area_cols = ", ".join(f"a.{c}" for c in SERVICE_AREA_COLUMNS)
        sql = text(
            f"SELECT {cols}, {area_cols}, {self._area_wkb_sql} AS wkb"
            f" FROM service_area a JOIN station s ON s.id = a.station_id WHERE {where} ORDER BY s.id"
        )
        with self.reading() as conn:
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


@contextmanager
def _mapped_errors(dialect, pooled, invalidate):
    """A cursor of the pooled connection's driver connection, raising SQLAlchemy's errors."""
    dbapi = dialect.loaded_dbapi
    cursor = pooled.driver_connection.cursor()
    try:
        yield cursor
    except dbapi.Error as exc:
        dropped = dialect.is_disconnect(exc, pooled.dbapi_connection, cursor)
        if dropped:
            invalidate(exc)
        raise DBAPIError.instance(None, None, exc, dbapi.Error, connection_invalidated=dropped) from exc
    finally:
        cursor.close()


def named(name: str) -> str:
    """A bound parameter as SQLAlchemy's text() and sqlite3 write it."""
    return f":{name}"


def pyformat(name: str) -> str:
    """A bound parameter as psycopg writes it."""
    return f"%({name})s"


def filter_sql(flt: StationFilter, prefix: str = "", *, active: bool = True, mark=named,
               dialect: str = "sqlite") -> tuple[str, dict]:
    """SQL conditions for the filter (ANDed, each with a leading ' AND'), and their parameters,
    every value bound. ``active`` adds ``status = 'active'``, leaves out stations whose wanted
    amenity is out of order, and applies the operator and live conditions; ``mark`` writes a
    parameter in the driver's style, ``dialect`` names the store (for times and JSON). Without
    ``active`` the conditions read only ``kind`` and ``amenities_yes``, so they apply to
    ``station_signature`` too (which, knowing nothing of breakdowns, operators or live status,
    over-estimates: it only ever answers "none match" early)."""
    sql = f" AND {prefix}status = 'active'" if active else ""
    params: dict = {}
    if flt.kinds:
        names = [f"kind{i}" for i in range(len(flt.kinds))]
        sql += f" AND {prefix}kind IN ({', '.join(mark(n) for n in names)})"
        params.update(zip(names, flt.kinds))
    if flt.amenities:
        in_service = f"{prefix}amenities_yes & ~{prefix}out_of_order" if active else f"{prefix}amenities_yes"
        sql += f" AND ({in_service} & {mark('amask')}) = {mark('amask')}"
        params["amask"] = amenity_mask(flt.amenities)
    if active and flt.live:
        sql += _live_sql(flt, prefix, mark, dialect, params)
    return sql, params


def _live_sql(flt: StationFilter, prefix: str, mark, dialect: str, params: dict) -> str:
    """The operator (``org``), ``battery_type`` and ``available_now`` conditions (see StationFilter)."""
    sql = ""
    if flt.orgs:
        names = [f"org{i}" for i in range(len(flt.orgs))]
        params.update(zip(names, flt.orgs))
        sql += (f" AND {prefix}id IN (SELECT so.station_id FROM station_ops so JOIN organisation o"
                f" ON o.id = so.organisation_id WHERE o.code IN ({', '.join(mark(n) for n in names)}))")
    if flt.available_now:
        params["fresh_since"] = to_db(flt.fresh_since, dialect)
        sql += (f" AND {prefix}live_reported_at >= {mark('fresh_since')}"
                f" AND {prefix}live_installed AND {prefix}live_renting")
        if flt.battery_type is None:
            sql += f" AND {prefix}live_batteries > 0"
    if flt.battery_type is not None:
        params["battery_type"] = flt.battery_type
        charged = flt.available_now
        if dialect == "postgresql":
            sql += (f" AND EXISTS (SELECT 1 FROM jsonb_array_elements(CAST({prefix}live_battery_types AS jsonb)) b"
                    f" WHERE b ->> 'battery_type' = {mark('battery_type')}"
                    + (" AND CAST(b ->> 'count' AS integer) > 0)" if charged else ")"))
        else:
            sql += (f" AND EXISTS (SELECT 1 FROM json_each({prefix}live_battery_types) b"
                    f" WHERE json_extract(b.value, '$.battery_type') = {mark('battery_type')}"
                    + (" AND json_extract(b.value, '$.count') > 0)" if charged else ")"))
    return sql


def signature_sql(flt: StationFilter, mark=named) -> str:
    """A query that finds a row if any active station matches the filter's kinds and amenities
    (``station_signature`` is kept by triggers); the parameters are filter_sql's."""
    conditions, _ = filter_sql(flt, "g.", active=False, mark=mark)
    return f"SELECT 1 FROM station_signature g WHERE g.active > 0{conditions}"


PLACE_COLUMNS = ("osm_id", "type", "kind", "name", "lat", "lng", "line_wkb", "id")


def candidates_from_rows(station_rows, place_rows) -> SearchCandidates:
    """Search candidates from rows of STATION_COLUMNS and of PLACE_COLUMNS, each row followed
    by its search key."""
    return SearchCandidates([row_to_station(r) for r in station_rows], [row_to_place(r) for r in place_rows],
                            [r[len(STATION_COLUMNS)] for r in station_rows], [r[len(PLACE_COLUMNS)] for r in place_rows])


def row_to_place(row) -> Place:
    """A Place from a row of PLACE_COLUMNS (its search key is not read back)."""
    osm_id, type_, kind, name, lat, lng, line, place_id = row[:len(PLACE_COLUMNS)]
    return Place(osm_id, type_, kind, name, lat, lng, bytes(line) if line is not None else None, place_id, "")


def near_order(near: tuple[float, float] | None, mark=named) -> tuple[str, dict]:
    """ORDER BY terms: nearest to ``near`` first (squared degrees, longitude scaled to the
    latitude: the same order as metres at city scale), ties and no ``near`` by id."""
    if near is None:
        return "id", {}
    lat, lng = near
    sql = (f"(lat - {mark('near_lat')}) * (lat - {mark('near_lat')})"
           f" + (lng - {mark('near_lng')}) * (lng - {mark('near_lng')}) * {mark('near_kx')}, id")
    return sql, {"near_lat": lat, "near_lng": lng, "near_kx": math.cos(math.radians(lat)) ** 2}


def near_metric(near: tuple[float, float]) -> Callable[[float, float], float]:
    """near_order's measure as a function of (lat, lng): squared degrees, longitude scaled."""
    lat0, lng0 = near
    kx = math.cos(math.radians(lat0)) ** 2
    return lambda lat, lng: (lat - lat0) * (lat - lat0) + (lng - lng0) * (lng - lng0) * kx


def reach_box(near: tuple[float, float], reach: float) -> Box | None:
    """The rectangle holding every point within ``reach`` of ``near`` by near_metric (a degree of
    latitude, or its length in longitude); None where it would reach a pole or the antimeridian."""
    lat, lng = near
    half_width = reach / math.cos(math.radians(lat))
    box = Box(lat - reach, lng - half_width, lat + reach, lng + half_width)
    if box.south <= -90 or box.north >= 90 or box.west <= -180 or box.east >= 180:
        return None
    return box


def holds_any_sql(patterns: Sequence[str], params: dict, test, prefix: str = "p") -> str:
    """SQL true when a key holds any of ``patterns`` (all of each one's parts): each part bound
    in ``params`` as ``{prefix}{i}_{j}`` and tested by ``test(name)``, the store's substring test."""
    arms = []
    for i, pattern in enumerate(patterns):
        tests = []
        for j, part in enumerate(pattern_parts(pattern)):
            params[f"{prefix}{i}_{j}"] = part
            tests.append(test(f"{prefix}{i}_{j}"))
        arms.append("(" + " AND ".join(tests) + ")")
    return "(" + " OR ".join(arms) + ")"


# The map cell of a point in ``station_search`` (migrations 0011 and 0012: their triggers compute
# the same in SQL, which tests check): 0.01° of latitude by 0.01° of longitude, numbered row by row.
CELL_DEG = 0.01
CELLS_PER_ROW = 36_000


def search_cell(lat: float, lng: float) -> int:
    return int((lat + 90) / CELL_DEG) * CELLS_PER_ROW + int((lng + 180) / CELL_DEG)


def cell_runs(box: Box) -> list[tuple[int, int]]:
    """The first and last cell of each row of cells ``box`` covers (each a run of the key)."""
    first_col, last_col = int((box.west + 180) / CELL_DEG), int((box.east + 180) / CELL_DEG)
    return [(row * CELLS_PER_ROW + first_col, row * CELLS_PER_ROW + last_col)
            for row in range(int((box.south + 90) / CELL_DEG), int((box.north + 90) / CELL_DEG) + 1)]


# How long a process keeps the search index's trigram counts before reading them again.
TRIGRAM_DOCS_TTL_S = 60.0
# Active stations' keys kept to judge how common a pattern is (_text_index_first): at 1M stations
# and 16 candidates the break-even, 4,000 matches, is ~8 sampled keys; each judgement searches
# the sample once at most (~0.7 MB, about 1 ms; 4,000 keys took 2–4 ms).
SEARCH_SAMPLE = 2000

# Widening search for the stations nearest ``near`` whose key holds a pattern (common patterns):
# the first reach (degrees of latitude, ~1.1 km), and the reach beyond which the text index alone
# is cheaper than the box (most of a city).
FIRST_REACH_DEG = 0.01
LAST_REACH_DEG = 0.5


def next_reach(reach: float, inside: int, n: int) -> float:
    """The reach of the next round, after ``inside`` matches were proven within ``reach``:
    enough for ~n by the density seen (matches grow with the area), at least 1.25x, at most 4x."""
    growth = math.sqrt(n / inside) * 1.15 if inside else 4.0
    return reach * min(max(growth, 1.25), 4.0)


# Trigrams of a pattern a text index is asked for: its rarest. A text index reads the whole list
# of every trigram asked for, and the search key's common ones are in most keys (``ong``: 3 in 4
# at 1M), so asking for all of a pattern's trigrams costs tens of ms even when a few hundred
# keys match. The two rarest always; up to two more while their lists stay short (a 20th of the
# keys, or 4x the rarest), since two alone can leave 7x the true matches (9l9y9q9l: 4,410 rows
# for 598); and when all those overlap the rarest, the rarest window apart from it, common or
# not: windows of one syllable say nearly the same (hep, epi and pin of hepingshang are each in
# the 25,000 keys holding 和平 at 1M, and all three in those same keys; with gsh, 1,852). The
# query then checks the pattern itself.
INDEX_TRIGRAMS = 4


def trigrams(pattern: str) -> list[str]:
    """The distinct 3-character windows of a pattern's parts (a form's leading space left out:
    the key's first form has none)."""
    return list(_trigram_positions(pattern))


def _trigram_positions(pattern: str) -> dict[str, list[int]]:
    """Each distinct window of ``pattern``'s parts and where it starts (parts far apart)."""
    found: dict[str, list[int]] = {}
    for p, part in enumerate(pattern_parts(pattern)):
        core = part.lstrip(" ")
        for i in range(len(core) - 2):
            found.setdefault(core[i:i + 3], []).append(1000 * p + i)
    return found


class TrigramDocs(dict):
    """A table's trigram counts (trigram → keys holding it, '' → keys in all: ``analyze_search``)
    and, for stations, the sample of their keys."""

    def __init__(self, counts: dict[str, int], sample: KeySample | None = None):
        super().__init__(counts)
        self.sample = sample
        self.chosen: dict[str, list[str]] = {}  # rare_trigrams' answers, as long as these counts


# Sampled keys holding a pattern's rarest trigram enough to judge which others add most; fewer,
# and that trigram is rare enough (under 8 in 2,000: 4,000 keys at 1M) for counts to decide.
JUDGED_KEYS = 8


def rare_trigrams(pattern: str, docs: dict[str, int]) -> list[str]:
    """The trigrams of ``pattern`` to ask the text index for (see INDEX_TRIGRAMS). ``docs``:
    trigram → keys holding it, '' → keys in all (``analyze_search``); empty when never
    analysed: every trigram. With a sample of keys (TrigramDocs), after the rarest come those
    fewest of the sampled keys holding what is chosen hold too: windows of one word are in the
    same keys (hep, epi and pin of hepingshang each in the 25,000 keys holding 和平 at 1M;
    tia and nyu of tianyuanzhong in those holding 天元), whatever their positions."""
    if isinstance(docs, TrigramDocs):
        if pattern not in docs.chosen:
            if len(docs.chosen) > 10_000:
                docs.chosen.clear()
            docs.chosen[pattern] = _rare_trigrams(pattern, docs)
        return list(docs.chosen[pattern])
    return _rare_trigrams(pattern, docs)


def _rare_trigrams(pattern: str, docs: dict[str, int]) -> list[str]:
    where = _trigram_positions(pattern)
    grams = list(where)
    if not docs:
        return grams
    grams.sort(key=lambda g: (docs.get(g, 0), g))
    sample = getattr(docs, "sample", None)
    if sample is not None:
        held = sample.keys_holding(grams[0])
        if len(held) >= JUDGED_KEYS:
            return _jointly_rare(grams, held)
    short = max(docs.get("", 0) // 20, 4 * docs.get(grams[0], 0))
    chosen = grams[:2] + [g for g in grams[2:INDEX_TRIGRAMS] if docs.get(g, 0) <= short]
    rarest = where[grams[0]]
    if all(min(abs(i - j) for i in where[g] for j in rarest) < 3 for g in chosen):
        chosen += [g for g in grams if all(abs(i - j) >= 3 for i in where[g] for j in rarest)][:1]
    return chosen


def index_plan(patterns: Sequence[str], docs: dict[str, int]) -> tuple[list[str], list[list[str]]]:
    """What to ask a text index for keys holding any of ``patterns``: trigrams every such key
    holds, and groups of trigrams one of which it holds in full (no groups: the first list
    alone).

    A pattern's first part is asked for by its rarest trigrams; a later part (characters'
    readings, then the letter typed after them: app.search.text) by its last trigram only,
    the one holding the letter; its others say again what the characters said, so they are
    rare overall but in every key holding those characters. Patterns with one first part
    (人民d gives one per reading of 人民: 12 for 和平x) ask for it once."""
    firsts = {pattern_parts(p)[0] for p in patterns}

    def tails(pattern: str) -> list[str]:
        return [part.lstrip(" ")[-3:] for part in pattern_parts(pattern)[1:] if len(part.lstrip(" ")) >= 3]

    if len(firsts) == 1 and patterns:
        shared = rare_trigrams(next(iter(firsts)), docs)[:2]
        groups = [tails(p) for p in patterns]
        if not all(groups):
            return shared, []  # a pattern needing nothing beyond its first part
    else:
        shared, groups = [], [rare_trigrams(pattern_parts(p)[0], docs) + tails(p) for p in patterns]
    return shared, [list(g) for g in dict.fromkeys(tuple(dict.fromkeys(g)) for g in groups)]


def _jointly_rare(grams: list[str], held: list[str]) -> list[str]:
    """``grams`` (the rarest first) chosen greedily: each next the one fewest of the sampled
    keys ``held`` (those holding all chosen so far) also hold, while it leaves out a quarter of
    them and JUDGED_KEYS or more remain."""
    chosen = grams[:1]
    rest = grams[1:]
    while rest and len(chosen) < INDEX_TRIGRAMS and len(held) >= JUDGED_KEYS:
        best = min(rest, key=lambda g: sum(g in key for key in held))
        keep = [key for key in held if best in key]
        if len(keep) > 0.75 * len(held):
            break
        chosen.append(best)
        rest.remove(best)
        held = keep
    return chosen


def text_index_first(matches: float, rows: int, n: int, read: float | None = None, box_cost: float = 1.0) -> bool:
    """Whether the text index alone (``read`` rows, by default the ``matches``, checked and
    sorted) is the cheaper way to the ``n`` nearest, rather than widening boxes around the point
    (reading ~n·rows/matches rows of the table, each costing ``box_cost`` of a row the text index
    gives). Equal at matches·read = box_cost·n·rows."""
    return matches * (matches if read is None else max(read, matches)) < box_cost * n * max(rows, 1)


class KeySample:
    """A sample of search keys (each read with a space before it, as the queries test keys),
    asked how many hold a pattern, counting up to where the answer matters: one string
    searched at C speed, then only the keys found."""

    def __init__(self, keys: Sequence[str]):
        self.size = len(keys)
        self._keys = [" " + k for k in keys]
        self._text = "\n".join(self._keys)
        self._starts = list(itertools.accumulate((len(k) + 1 for k in self._keys[:-1]), initial=0))

    def _holding(self, part: str) -> Iterator[int]:
        at = self._text.find(part)
        while at >= 0:
            key = bisect.bisect_right(self._starts, at) - 1
            yield key
            at = self._text.find(part, self._starts[key + 1] if key + 1 < self.size else len(self._text))

    def keys_holding(self, part: str) -> list[str]:
        """Every sampled key holding ``part``."""
        return [self._keys[key] for key in self._holding(part)]

    def holding_any(self, patterns: Sequence[str], stop: int) -> int:
        """How many keys hold one of ``patterns`` (all its parts), counted up to ``stop``."""
        found: set[int] = set()
        for pattern in patterns:
            for key in self._holding(pattern_parts(pattern)[0]):
                if key_holds(self._keys[key], pattern):
                    found.add(key)
                    if len(found) >= stop:
                        return stop
        return len(found)

    def holding_plan(self, shared: Sequence[str], groups: Sequence[Sequence[str]], stop: int) -> int:
        """How many keys hold every one of ``shared`` and every part of some group (``index_plan``:
        the rows a text index gives), up to ``stop``."""
        if shared:
            firsts, rest = [shared[0]], [(list(shared[1:]), groups)]
        else:
            firsts, rest = [group[0] for group in groups], [(list(group[1:]), []) for group in groups]
        found: set[int] = set()
        for first, (also, any_of) in zip(firsts, rest):
            for key in self._holding(first):
                text = self._keys[key]
                if all(g in text for g in also) and (not any_of or any(all(g in text for g in group) for group in any_of)):
                    found.add(key)
                    if len(found) >= stop:
                        return stop
        return len(found)


def row_to_service_area(row, geom) -> ServiceArea:
    m = row._mapping
    return ServiceArea(
        station_id=m["station_id"], mode=m["mode"], minutes=m["minutes"], network_token=m["network_token"],
        station_updated_at=from_db(m["station_updated_at"]), area_km2=m["area_km2"], road_km=m["road_km"],
        geom=geom, speed_kmh=m["speed_kmh"], computed_at=from_db(m["computed_at"]),
    )


SERVICE_AREA_COLUMNS = (
    "station_id", "mode", "minutes", "network_token", "station_updated_at", "area_km2", "road_km", "speed_kmh",
    "computed_at",
)


_TIME_POSITIONS = tuple(i for i, f in enumerate(STATION_FIELDS) if f.metadata["wire"] == "time")


def row_to_station(row) -> Station:
    """A Station from a row of STATION_COLUMNS (in that order; extra trailing columns are ignored)."""
    values = list(row[:len(STATION_COLUMNS)])
    for i in _TIME_POSITIONS:
        values[i] = from_db(values[i])
    return Station(*values)


_COLUMN = {name: i for i, name in enumerate(STATION_COLUMNS)}
_ID, _LAT, _LNG = _COLUMN["id"], _COLUMN["lat"], _COLUMN["lng"]
_HOURS, _ZONE = _COLUMN["opening_hours"], _COLUMN["timezone"]
_CLOSURE, _CLOSURE_UNTIL = _COLUMN["closure_reason"], _COLUMN["closure_until"]


def rank(rows: Sequence, query: NearestQuery) -> list[Hit]:
    """The first ``query.limit`` rows (of STATION_COLUMNS) by (distance, id) that pass the distance
    and hours filters, as Hits.

    Distances are solved for all candidates in one vectorised call (PROJ's Karney
    algorithm). Opening hours are evaluated, and rows become Stations, only while walking
    the sorted list: for the stations returned, and (with ``open_only``) those skipped on
    the way.
    """
    if not rows:
        return []
    n = len(rows)
    dist = distances_m(
        query.lat, query.lng,
        np.fromiter((r[_LAT] for r in rows), np.float64, n),
        np.fromiter((r[_LNG] for r in rows), np.float64, n),
    )
    order = np.lexsort((np.fromiter((r[_ID] for r in rows), np.int64, n), dist))
    flt = query.filter
    wanted = {hours.OPEN, hours.UNKNOWN} if flt.include_unknown else {hours.OPEN}
    hits: list[Hit] = []
    for i in order.tolist():
        d = float(dist[i])
        if d > query.radius_m:
            break
        row = rows[i]
        if row[_CLOSURE] is None:
            state = hours.evaluate(row[_HOURS], query.at, row[_ZONE])
        else:
            state = hours.evaluate_station(row[_HOURS], query.at, row[_ZONE], row[_CLOSURE],
                                           from_db(row[_CLOSURE_UNTIL]))
        if flt.open_only and state.state not in wanted:
            continue
        hits.append(Hit(row_to_station(row), d, state))
        if len(hits) == query.limit:
            break
    return hits
