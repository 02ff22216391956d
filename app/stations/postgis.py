"""PostGIS implementation of the station store.

``geom`` is a generated column (from lat/lng) with a GiST index. Nearest uses the
``<->`` KNN operator on that indexed column against a constant point, so the index
walks outwards; no cast or transform ever touches the column.
"""
from __future__ import annotations

from collections.abc import Sequence

import shapely
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.geo.geodesic import Box, boxes_within, degree_reach
from app.search.text import like_escape
from app.stations.model import (
    KEY_COLUMNS, STATION_COLUMNS, WRITE_COLUMNS, Hit, NearestQuery, SearchCandidates, ServiceArea, Station,
    StationFilter, StationInput, UpsertCounts,
)
from app.stations.store import (
    PLACE_COLUMNS, Progress, StationStore, candidates_from_rows, cell_runs, filter_sql, holds_any_sql, index_plan,
    named, near_order, pyformat, rank, row_to_station, signature_sql,
)

_COLS = ", ".join(STATION_COLUMNS)
_POINT = "ST_SetSRID(ST_MakePoint(:lng, :lat), 4326)"
_COPY_CHUNK = 50_000
_DIALECT = "postgresql"
_ID = STATION_COLUMNS.index("id")


# Longitude half-width (degrees) up to which an unfiltered scan needs no envelope: 50 km
# is ~0.5° at 28°N and 1.5° at 72°; nearer the poles (and across the antimeridian) the
# planar-degree distance that proves the answer grows without bound, and only the
# radius's boxes keep the scan to the stations within 50 km.
_NARROW_DEG = 1.5


def _narrow(boxes: list[Box]) -> bool:
    """One box, not wrapped and not reaching a pole, at most _NARROW_DEG either side."""
    if len(boxes) != 1:
        return False
    b = boxes[0]
    return b.south > -90 and b.north < 90 and b.west > -180 and b.east < 180 and (b.east - b.west) / 2 <= _NARROW_DEG


def first_batch(k: int) -> int:
    """Rows the first KNN round asks for. The proof needs every row out to ``degree_reach`` of
    the k-th distance, whose disc holds ~1.13x the stations of the geodesic circle at 28°N;
    1.3k + 6 settled all of 2,000 random searches (k = 10 and 20, with and without a filter)
    in one round trip on 1M stations, where k + 4 needed a second round for 5-25 %."""
    return (13 * k) // 10 + 6


def _nearest_sql(query: NearestQuery) -> tuple[str, dict]:
    """KNN on the indexed column against a constant point.

    Unfiltered, the scan needs no other bound: every active station qualifies, so it
    returns ``n`` rows at once however far they are, and the caller stops at the search
    radius (an envelope here would cost ~30 % of the query for nothing). A filtered scan
    could walk far past the radius looking for ``n`` matches, so it is kept inside the
    radius's boxes, as is any scan near a pole or across the antimeridian (see _narrow).
    A filter that no active station matches at all is answered from the small
    ``station_signature`` table (kept by triggers): the EXISTS is a one-time filter, so
    PostgreSQL skips the index scan altogether.
    """
    flt = query.filter
    where, params = filter_sql(flt, mark=pyformat, dialect=_DIALECT)
    params.update(lat=query.lat, lng=query.lng)
    if flt.kinds or flt.amenities:
        where += f" AND EXISTS ({signature_sql(flt, mark=pyformat)})"
    boxes = boxes_within(query.lat, query.lng, query.radius_m)
    if flt.narrowing or not _narrow(boxes):
        where += _envelope_sql(boxes, params, mark=pyformat)
    point = "ST_SetSRID(ST_MakePoint(%(lng)s, %(lat)s), 4326)"
    sql = (
        f"SELECT {_COLS}, geom <-> {point} AS deg FROM station WHERE true{where}"
        f" ORDER BY geom <-> {point} LIMIT %(n)s"
    )
    return sql, params


def _envelope_sql(boxes: list[Box], params: dict, mark=named) -> str:
    """' AND (geom && box OR …)' for the boxes, their corners bound in ``params``."""
    parts = []
    for i, b in enumerate(boxes):
        corners = ", ".join(mark(f"{side}{i}") for side in "wsen")
        parts.append(f"geom && ST_MakeEnvelope({corners}, 4326)")
        params.update({f"w{i}": b.west, f"s{i}": b.south, f"e{i}": b.east, f"n{i}": b.north})
    return " AND (" + " OR ".join(parts) + ")"


def _strpos_tests(patterns, params: dict, key: str = "' ' || search_key", prefix: str = "p") -> str:
    """Any pattern held by ``key`` (by default the key with a space before it, as SQLite tests
    it), each part a ``strpos``, bound under names starting with ``prefix``."""
    return holds_any_sql(patterns, params, lambda name: f"strpos({key}, %({name})s) > 0", prefix)


def _indexed_holds(patterns, params: dict, docs: dict[str, int], name: str = "") -> str:
    """LIKEs of the patterns' rarest trigrams (``index_plan``: those all share, then per
    pattern; pg_trgm's GIN index serves each) and each pattern itself on the key, any pattern:
    GIN scans ANDed and ORed in bitmaps. Parameters are bound in ``params`` under names starting
    with ``name``."""
    shared, groups = index_plan(patterns, docs)

    def likes(grams, prefix) -> list[str]:
        for j, gram in enumerate(grams):
            params[f"{prefix}_{j}"] = f"%{like_escape(gram)}%"
        return [f"search_key LIKE %({prefix}_{j})s ESCAPE '\\'" for j in range(len(grams))]

    # Each pattern's strpos tests imply its group (trigrams of its own parts), so testing any
    # group and then any pattern is the same as any pattern: the groups are for the index.
    tests = likes(shared, f"{name}s")
    if groups:
        tests.append("(" + " OR ".join("(" + " AND ".join(likes(group, f"{name}g{i}")) + ")"
                                       for i, group in enumerate(groups)) + ")")
    tests.append(_strpos_tests(patterns, params, prefix=f"{name}p"))
    return "(" + " AND ".join(tests) + ")"


def search_sql(patterns, near, n, docs: dict[str, dict[str, int]]) -> tuple[dict[str, str], dict]:
    """The candidate queries (station, place) driven by the text index, and their parameters
    (psycopg style): every match, sorted by near_order."""
    params: dict = {"n": n}
    order, order_params = near_order(near, mark=pyformat)
    params.update(order_params)
    station = _indexed_holds(patterns, params, docs.get("station", {}))
    place = _indexed_holds(patterns, params, docs.get("place", {}), name="place_")
    return {
        "station": f"SELECT {_COLS}, search_key FROM station WHERE status = 'active' AND {station}"
                   f" ORDER BY {order} LIMIT %(n)s",
        "place": f"SELECT {', '.join(PLACE_COLUMNS)}, search_key FROM place WHERE {place} ORDER BY {order} LIMIT %(n)s",
    }, params


def box_search_sql(patterns, near, box: Box, n: int) -> tuple[str, dict]:
    """The ids of the nearest ``n`` active stations in ``box`` whose key holds a pattern, read
    from ``station_search`` (migration 0012) by an index-only scan of its primary key over the
    box's cells (``= ANY``: one scan, which a bitmap of ranges could not be), each key tested
    (``strpos``, which no text index can serve, so the planner never ANDs the box with a GIN
    scan of a common pattern). The key there has its space already."""
    order, params = near_order(near, mark=pyformat)
    params.update(n=n, south=box.south, north=box.north, west=box.west, east=box.east,
                  cells=[cell for first, last in cell_runs(box) for cell in range(first, last + 1)])
    return (f"SELECT id FROM station_search WHERE cell = ANY(%(cells)s)"
            f" AND lat BETWEEN %(south)s AND %(north)s AND lng BETWEEN %(west)s AND %(east)s"
            f" AND {_strpos_tests(patterns, params, key='search_key')} ORDER BY {order} LIMIT %(n)s"), params


# Keys sampled to count trigrams (analyze_search): enough that a trigram in 1 key in 10,000
# is seen about twice.
TRIGRAM_SAMPLE = 20_000


class PostgisStore(StationStore):
    backend = "postgis"
    # Measured at 1M: a box round reads station_search by an index-only scan at ~0.6–0.8 µs a row
    # (7.7 ms for the 9,700 rows of an 8 km box), the text index's rows are heap pages of station
    # at 7 µs (cached) to 20 µs (from the OS cache) each; widening rounds read some rows twice and
    # overshoot, so not 0.1 (benchmark p95 47.7 ms) but 0.3 (35.9; 1.0: 49.0).
    BOX_ROW_COST = 0.3
    _area_wkb_sql = "ST_AsBinary(a.geom)"

    def nearest(self, query: NearestQuery) -> list[Hit]:
        # The hot path: psycopg directly, on a connection without a transaction around it.
        sql, params = _nearest_sql(query)
        # Only the unfiltered shape is prepared: its generic plan is the KNN index scan (see
        # tests/test_store.py). With filters, PostgreSQL's generic plan can walk all matching
        # rows instead, so those are planned for their own values each time.
        prepare = not query.filter.narrowing
        n = first_batch(query.limit)
        with self.driver_reading() as cursor:
            while True:
                params["n"] = n
                rows = cursor.execute(sql, params, prepare=prepare).fetchall()
                hits = rank(rows, query)
                if len(rows) < n:
                    return hits  # every matching station (within the radius's boxes) has been seen
                radius = hits[-1].distance_m if len(hits) == query.limit else query.radius_m
                needed = degree_reach(query.lat, query.lng, radius)
                if rows[-1][-1] > needed:
                    return hits  # the index has passed every point that could be nearer
                n *= 4

    def search_candidates(self, patterns, near, n) -> SearchCandidates:
        # Planned for these values each time (never a generic plan, which cannot know how
        # common a pattern is).
        with self.driver_reading() as cursor:
            sql, params = search_sql(patterns, near, n, self._trigram_docs(cursor))
            rows = None if near is None else self._nearest_matching(cursor, patterns, near, n)
            if rows is None:
                rows = cursor.execute(sql["station"], params, prepare=False).fetchall()
            places = cursor.execute(sql["place"], params, prepare=False).fetchall()
        return candidates_from_rows(rows, places)

    def analyze_search(self) -> None:
        """ANALYZE, and per table the keys holding each trigram, counted in a sample of
        TRIGRAM_SAMPLE keys and scaled (a few seconds at 1M: the whole table is not read); then
        VACUUM of ``station_search``, whose pages must be marked all-visible for its index-only
        scans (autovacuum would, later; not when the store runs inside a caller's transaction)."""
        if isinstance(self._bind, Engine):
            with self._bind.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM (ANALYZE) station_search"))
        with self.bulk_transaction() as conn:
            conn.execute(text("DELETE FROM search_trigram"))
            for table in ("station", "place"):
                conn.execute(text(f"ANALYZE {table}"))
                rows = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                share = min(100.0, 100.0 * TRIGRAM_SAMPLE / max(rows, 1))
                conn.execute(text(
                    f"WITH sample AS MATERIALIZED (SELECT id, search_key FROM {table}"
                    f"   TABLESAMPLE BERNOULLI (:share) REPEATABLE (1)),"
                    f" seen AS (SELECT DISTINCT id, substr(search_key, i, 3) AS trigram"
                    f"   FROM sample, generate_series(1, length(search_key) - 2) AS i)"
                    f" INSERT INTO search_trigram (tbl, trigram, docs)"
                    f" SELECT :table, trigram, ceil(count(*) * :rows / greatest((SELECT count(*) FROM sample), 1))"
                    f" FROM seen GROUP BY trigram"
                    f" UNION ALL SELECT :table, '', :rows"), {"share": share, "table": table, "rows": rows})
            self._refresh_sample(conn)
        self._stats = None

    def _matching_in_box(self, cursor, patterns, near, box, n) -> list:
        sql, params = box_search_sql(patterns, near, box, n)
        ids = [row[0] for row in cursor.execute(sql, params, prepare=False)]
        if not ids:
            return []
        rows = {row[_ID]: row for row in cursor.execute(
            f"SELECT {_COLS}, search_key FROM station WHERE id = ANY(%(ids)s)", {"ids": ids}, prepare=False)}
        return [rows[i] for i in ids]

    def _box_batch(self, conn, box: Box, flt: StationFilter, after_id: int, n: int) -> list[Station]:
        where, params = filter_sql(flt, dialect=_DIALECT)
        params.update(after_id=after_id, n=n)
        where += _envelope_sql([box], params)
        # && tests bounding boxes; for points that is exact containment.
        sql = text(
            f"SELECT {_COLS} FROM station WHERE id > :after_id{where} ORDER BY id LIMIT :n"
        )
        return [row_to_station(r) for r in conn.execute(sql, params)]

    def upsert(self, stations: Sequence[StationInput], progress: Progress | None = None) -> UpsertCounts:
        cols = ", ".join(WRITE_COLUMNS)
        compared = [c for c in WRITE_COLUMNS if c not in KEY_COLUMNS]
        changed = " OR ".join(f"station.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in compared)
        assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in compared)
        with self.bulk_transaction() as conn:
            # Imports of the same source run one at a time (a second waits for the
            # first to commit), and every import writes rows in key order, so two
            # overlapping imports can never deadlock on each other's rows.
            for source in sorted({st.source for st in stations}):
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                             {"key": f"yizhan:import:{source}"})
            conn.execute(text(
                "CREATE TEMP TABLE station_import (LIKE station INCLUDING DEFAULTS) ON COMMIT DROP"
            ))
            conn.execute(text("ALTER TABLE station_import DROP COLUMN geom, DROP COLUMN id"))
            cursor = conn.connection.driver_connection.cursor()
            done = 0
            with cursor.copy(f"COPY station_import ({cols}) FROM STDIN") as copy:
                for st in stations:
                    copy.write_row(tuple(getattr(st, c) for c in WRITE_COLUMNS))
                    done += 1
                    if progress and done % _COPY_CHUNK == 0:
                        progress(done)
            if progress:
                progress(done)
            inserted, updated = conn.execute(text(
                f"WITH up AS ("
                f" INSERT INTO station ({cols}) SELECT {cols} FROM station_import ORDER BY source, source_id"
                f" ON CONFLICT (source, source_id) DO UPDATE SET {assignments}, updated_at = clock_timestamp()"
                f" WHERE {changed}"
                f" RETURNING (xmax = 0) AS inserted)"
                f" SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up"
            )).one()
            conn.execute(text("DROP TABLE station_import"))
        return UpsertCounts(inserted, updated, len(stations) - inserted - updated)

    # -- service areas -------------------------------------------------------

    def save_service_areas(self, areas: Sequence[ServiceArea]) -> None:
        sql = text(
            "INSERT INTO service_area (station_id, mode, minutes, network_token, station_updated_at,"
            " area_km2, road_km, speed_kmh, geom, computed_at)"
            " VALUES (:station_id, :mode, :minutes, :network_token, :station_updated_at, :area_km2, :road_km,"
            " :speed_kmh, ST_Multi(ST_GeomFromWKB(:wkb, 4326)), now())"
            " ON CONFLICT (station_id, mode, minutes) DO UPDATE SET network_token = EXCLUDED.network_token,"
            " station_updated_at = EXCLUDED.station_updated_at, area_km2 = EXCLUDED.area_km2,"
            " road_km = EXCLUDED.road_km, speed_kmh = EXCLUDED.speed_kmh, geom = EXCLUDED.geom, computed_at = now()"
        )
        with self.bulk_transaction() as conn:
            for a in areas:
                conn.execute(sql, {
                    "station_id": a.station_id, "mode": a.mode, "minutes": a.minutes,
                    "network_token": a.network_token, "station_updated_at": a.station_updated_at,
                    "area_km2": a.area_km2, "road_km": a.road_km, "speed_kmh": a.speed_kmh,
                    "wkb": shapely.to_wkb(a.geom),
                })

    def service_areas_in_box(self, box: Box, mode: str, minutes: int, flt: StationFilter):
        where, params = filter_sql(flt, "s.", dialect=_DIALECT)
        params.update(mode=mode, minutes=minutes, w=box.west, s_=box.south, e=box.east, n=box.north)
        return self._areas(
            "a.mode = :mode AND a.minutes = :minutes"
            " AND a.geom && ST_MakeEnvelope(:w, :s_, :e, :n, 4326)" + where,
            params,
        )

    def stations_serving(self, lat: float, lng: float, mode: str, minutes: int, flt: StationFilter):
        where, params = filter_sql(flt, "s.", dialect=_DIALECT)
        params.update(mode=mode, minutes=minutes, lat=lat, lng=lng)
        return self._areas(
            f"a.mode = :mode AND a.minutes = :minutes AND ST_Intersects(a.geom, {_POINT})" + where,
            params,
        )
