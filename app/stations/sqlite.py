"""Embedded SQLite implementation of the station store (the zero-setup default).

SQLite here cannot load SpatiaLite, so the spatial index is the built-in R*Tree
module: ``station_rtree`` holds each station's point as a degenerate box and is
kept in step with ``station`` by triggers. Nearest search widens a geodesic
search radius until it holds k results: the boxes from ``boxes_within`` contain
the whole circle, so nothing outside them can be nearer.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from datetime import timezone

import shapely
from sqlalchemy import event, text

from app.geo.geodesic import Box, boxes_within
from app.stations.model import (
    KEY_COLUMNS, STATION_COLUMNS, WRITE_COLUMNS, Hit, NearestQuery, SearchCandidates, ServiceArea, Station,
    StationFilter, StationInput, UpsertCounts,
)
from app.stations.store import (
    PLACE_COLUMNS, Progress, StationStore, candidates_from_rows, cell_runs, filter_sql, holds_any_sql, index_plan,
    near_order, rank, row_to_station, signature_sql,
)

_COLS = ", ".join(f"s.{c}" for c in STATION_COLUMNS)
_ID = STATION_COLUMNS.index("id")
_FIRST_RADIUS_M = 400.0
# How long a writer waits for another to finish (an import of a city takes seconds).
BUSY_TIMEOUT_MS = 30_000
_READ_ONLY = "yizhan_read_only"
_BATCH = 20_000


def _box_sql(boxes: list[Box], params: dict) -> str:
    """R*Tree lookup for the boxes (the R*Tree keeps float32 boxes rounded outwards)."""
    parts = []
    for i, b in enumerate(boxes):
        parts.append(
            f"(max_lat >= :s{i} AND min_lat <= :n{i} AND max_lng >= :w{i} AND min_lng <= :e{i})"
        )
        params.update({f"w{i}": b.west, f"s{i}": b.south, f"e{i}": b.east, f"n{i}": b.north})
    return "s.id IN (SELECT id FROM station_rtree WHERE " + " OR ".join(parts) + ")"


def fts_plan(patterns, docs: dict[str, int]) -> str:
    """The FTS5 query for keys holding the patterns' rarest trigrams (``index_plan``; the
    trigram tokenizer matches a one-trigram phrase wherever it occurs)."""
    shared, groups = index_plan(patterns, docs)

    def all_of(grams):
        return "(" + " AND ".join('"' + g.replace('"', '""') + '"' for g in grams) + ")"

    any_group = " OR ".join(all_of(group) for group in groups)
    if not shared:
        return any_group
    return all_of(shared) + (f" AND ({any_group})" if groups else "")


def _instr_tests(patterns, params: dict, key: str) -> str:
    """Any pattern held by ``key`` (an SQL expression: the key with a space before it, so that a
    pattern's leading space, a form's start, also matches the first form), each part an
    ``instr`` (no wildcards to escape)."""
    return holds_any_sql(patterns, params, lambda name: f"instr({key}, :{name}) > 0")


def search_sql(patterns, near, n, docs: dict[str, dict[str, int]]) -> tuple[dict[str, str], dict]:
    """The candidate queries (station, place) driven by the text index, and their parameters.

    The FTS index (trigram tokenizer) gives the rowids of keys holding each pattern's rarest
    trigrams (``fts_plan``); the rows are read by primary key and their keys checked."""
    order, params = near_order(near)
    params["n"] = n
    station_tests = _instr_tests(patterns, params, "' ' || s.search_key")
    place_tests = _instr_tests(patterns, params, "' ' || search_key")
    params["station_match"] = fts_plan(patterns, docs.get("station", {}))
    params["place_match"] = fts_plan(patterns, docs.get("place", {}))
    place_cols = ", ".join(PLACE_COLUMNS)
    return {
        "station": f"SELECT {_COLS}, s.search_key FROM station s WHERE s.id IN (SELECT rowid FROM station_fts"
                   f" WHERE station_fts MATCH :station_match) AND s.status = 'active' AND {station_tests}"
                   f" ORDER BY {order} LIMIT :n",
        "place": f"SELECT {place_cols}, search_key FROM place WHERE id IN (SELECT rowid FROM place_fts"
                 f" WHERE place_fts MATCH :place_match) AND {place_tests} ORDER BY {order} LIMIT :n",
    }, params


def box_search_sql(patterns, near, box: Box, n) -> tuple[str, dict]:
    """The ids of the nearest ``n`` active stations inside ``box`` whose key holds a pattern,
    read from ``station_search``: one run of its primary key per row of cells the box covers
    (the keys of neighbouring stations lie together), each key tested (``instr``), instead of
    every station row of the box one by one. The key there has its space already."""
    order, params = near_order(near)
    params.update(n=n, south=box.south, north=box.north, west=box.west, east=box.east)
    runs = []
    for i, (first, last) in enumerate(cell_runs(box)):
        params[f"from{i}"], params[f"to{i}"] = first, last
        runs.append(f"cell BETWEEN :from{i} AND :to{i}")
    return (f"SELECT id FROM station_search WHERE ({' OR '.join(runs)})"
            f" AND lat BETWEEN :south AND :north AND lng BETWEEN :west AND :east"
            f" AND {_instr_tests(patterns, params, 'search_key')} ORDER BY {order} LIMIT :n"), params


def configure_engine(engine, mmap_mb: int = 0) -> None:
    """Make SQLite behave like a server database for this app.

    Python's sqlite3 opens transactions implicitly and breaks SAVEPOINTs; taking
    over BEGIN ourselves (the SQLAlchemy-documented recipe) gives real nested
    transactions. Write transactions begin IMMEDIATE: they take the write lock up
    front, so two writers (e.g. overlapping imports) queue for up to the busy
    timeout instead of failing when one upgrades a read lock. Connections marked
    read-only (see ``read_only``) never begin a transaction: in WAL mode each
    statement reads a consistent snapshot, and gunicorn workers read while an
    import writes.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA mmap_size = {int(mmap_mb) << 20}")  # 0: read() as before
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        if not conn.get_execution_options().get(_READ_ONLY):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def read_only(engine):
    """The engine's connections for reads: no BEGIN/COMMIT around them."""
    return engine.execution_options(**{_READ_ONLY: True})


class SqliteStore(StationStore):
    backend = "sqlite"
    # BOX_ROW_COST stays 1.0: a box round reads station_search at ~1.1 µs a row at 1M (10 ms for
    # the 9,700 rows of an 8 km box) and the text index's rows cost ~5 µs, but widening rounds
    # read some rows twice and overshoot; weighted 0.2 and 0.6 the benchmark's p95 was worse
    # (63.8 and 32.7 ms against 22.8).
    _area_wkb_sql = "a.geom_wkb"

    def nearest(self, query: NearestQuery) -> list[Hit]:
        flt = query.filter
        where, params = filter_sql(flt, "s.")
        limit_radius = query.radius_m
        radius = min(_FIRST_RADIUS_M, limit_radius)
        with self.driver_reading() as cursor:
            if (flt.kinds or flt.amenities) and cursor.execute(signature_sql(flt), params).fetchone() is None:
                return []  # no active station anywhere matches the filter
            while True:
                box_params = dict(params)
                boxes = boxes_within(query.lat, query.lng, radius)
                sql = f"SELECT {_COLS} FROM station s WHERE {_box_sql(boxes, box_params)}{where}"
                rows = cursor.execute(sql, box_params).fetchall()
                inside = [h for h in rank(rows, query) if h.distance_m <= radius]
                if len(inside) == query.limit or radius >= limit_radius:
                    return inside  # every matching station within ``radius`` has been seen
                # Grow by the density seen so far: k results need ~sqrt(k/found) x the radius.
                growth = math.sqrt(query.limit / len(inside)) * 1.2 if inside else 4.0
                radius = min(radius * min(max(growth, 1.5), 4.0), limit_radius)

    def search_candidates(self, patterns, near, n) -> SearchCandidates:
        with self.driver_reading() as cursor:
            docs = self._trigram_docs(cursor)
            sql, params = search_sql(patterns, near, n, docs)
            rows = None
            if near is not None:
                rows = self._nearest_matching(cursor, patterns, near, n)
            if rows is None:
                rows = cursor.execute(sql["station"], params).fetchall()
            places = cursor.execute(sql["place"], params).fetchall()
        return candidates_from_rows(rows, places)

    def analyze_search(self) -> None:
        """Count, per table, the keys holding each trigram (from the FTS index's vocabulary;
        about 15 s for a million stations), for ``fts_plan``; and sample keys."""
        with self.bulk_transaction() as conn:
            conn.execute(text("DELETE FROM search_trigram"))
            for table in ("station", "place"):
                conn.execute(text(f"INSERT INTO search_trigram (tbl, trigram, docs)"
                                  f" SELECT '{table}', term, doc FROM {table}_fts_vocab"
                                  f" UNION ALL SELECT '{table}', '', count(*) FROM {table}"))
            self._refresh_sample(conn)
        self._stats = None

    def _matching_in_box(self, cursor, patterns, near, box, n) -> list:
        sql, params = box_search_sql(patterns, near, box, n)
        ids = [row[0] for row in cursor.execute(sql, params)]
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        rows = {row[_ID]: row for row in cursor.execute(
            f"SELECT {_COLS}, s.search_key FROM station s WHERE s.id IN ({marks})", ids)}
        return [rows[i] for i in ids]

    def _box_batch(self, conn, box: Box, flt: StationFilter, after_id: int, n: int) -> list[Station]:
        where, params = filter_sql(flt, "s.")
        params.update(after_id=after_id, n=n)
        # The R*Tree narrows; the exact lat/lng test removes float32 edge cases.
        sql = text(
            f"SELECT {_COLS} FROM station s WHERE {_box_sql([box], params)}"
            f" AND s.lat BETWEEN :s0 AND :n0 AND s.lng BETWEEN :w0 AND :e0"
            f" AND s.id > :after_id{where} ORDER BY s.id LIMIT :n"
        )
        return [row_to_station(r) for r in conn.execute(sql, params)]

    def upsert(self, stations: Sequence[StationInput], progress: Progress | None = None) -> UpsertCounts:
        cols = ", ".join(WRITE_COLUMNS)
        marks = ", ".join("?" for _ in WRITE_COLUMNS)
        compared = [c for c in WRITE_COLUMNS if c not in KEY_COLUMNS]
        changed = " OR ".join(f"station.{c} IS NOT excluded.{c}" for c in compared)
        assignments = ", ".join(f"{c} = excluded.{c}" for c in compared)
        sql = (
            f"INSERT INTO station ({cols}) VALUES ({marks})"
            f" ON CONFLICT (source, source_id) DO UPDATE SET {assignments},"
            f" updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE {changed}"
        )
        with self.bulk_transaction() as conn:
            cursor = conn.connection.driver_connection.cursor()
            before = cursor.execute("SELECT count(*) FROM station").fetchone()[0]
            written = 0
            for start in range(0, len(stations), _BATCH):
                chunk = stations[start:start + _BATCH]
                cursor.executemany(sql, [tuple(getattr(st, c) for c in WRITE_COLUMNS) for st in chunk])
                written += cursor.rowcount
                if progress:
                    progress(start + len(chunk))
            after = cursor.execute("SELECT count(*) FROM station").fetchone()[0]
        inserted = after - before
        updated = written - inserted
        return UpsertCounts(inserted, updated, len(stations) - inserted - updated)

    # -- service areas -------------------------------------------------------

    def save_service_areas(self, areas: Sequence[ServiceArea]) -> None:
        sql = (
            "INSERT INTO service_area (station_id, mode, minutes, network_token, station_updated_at, area_km2,"
            " road_km, speed_kmh, geom_wkb, min_lng, max_lng, min_lat, max_lat, computed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, strftime('%Y-%m-%d %H:%M:%f', 'now'))"
            " ON CONFLICT (station_id, mode, minutes) DO UPDATE SET network_token = excluded.network_token,"
            " station_updated_at = excluded.station_updated_at, area_km2 = excluded.area_km2,"
            " road_km = excluded.road_km, speed_kmh = excluded.speed_kmh, geom_wkb = excluded.geom_wkb, min_lng = excluded.min_lng,"
            " max_lng = excluded.max_lng, min_lat = excluded.min_lat, max_lat = excluded.max_lat,"
            " computed_at = excluded.computed_at"
        )
        rows = []
        for a in areas:
            # An empty area (station off the network) gets a degenerate box that matches nothing useful.
            west, south, east, north = (0.0, 0.0, 0.0, 0.0) if a.geom.is_empty else a.geom.bounds
            rows.append((
                a.station_id, a.mode, a.minutes, a.network_token, sqlite_time(a.station_updated_at),
                a.area_km2, a.road_km, a.speed_kmh, shapely.to_wkb(a.geom), west, east, south, north,
            ))
        with self.bulk_transaction() as conn:
            conn.connection.driver_connection.cursor().executemany(sql, rows)

    def service_areas_in_box(self, box: Box, mode: str, minutes: int, flt: StationFilter):
        where, params = filter_sql(flt, "s.")
        params.update(mode=mode, minutes=minutes, w=box.west, s_=box.south, e=box.east, n=box.north)
        return self._areas(
            "a.mode = :mode AND a.minutes = :minutes AND a.id IN (SELECT id FROM service_area_rtree"
            " WHERE max_lng >= :w AND min_lng <= :e AND max_lat >= :s_ AND min_lat <= :n)" + where,
            params,
        )

    def stations_serving(self, lat: float, lng: float, mode: str, minutes: int, flt: StationFilter):
        where, params = filter_sql(flt, "s.")
        params.update(mode=mode, minutes=minutes, lat=lat, lng=lng)
        candidates = self._areas(
            "a.mode = :mode AND a.minutes = :minutes AND a.id IN (SELECT id FROM service_area_rtree"
            " WHERE min_lng <= :lng AND max_lng >= :lng AND min_lat <= :lat AND max_lat >= :lat)" + where,
            params,
        )
        point = shapely.Point(lng, lat)
        # Same predicate as PostGIS's ST_Intersects: the boundary counts as inside.
        return [(st, area) for st, area in candidates if area.geom.intersects(point)]


def sqlite_time(value) -> str:
    """A datetime in the text form SQLite's strftime('%Y-%m-%d %H:%M:%f') writes (UTC)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
