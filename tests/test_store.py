"""The store contract. Runs on both stores; a difference between them is a bug in one."""
import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from geopy.distance import geodesic

from app.geo.coordsys import GCJ02, to_wgs84
from app.geo.geodesic import Box
from app.stations.model import NearestQuery, StationFilter
from tests.helpers import station

SH = ZoneInfo("Asia/Shanghai")
NOON = datetime(2026, 11, 26, 12, 0, tzinfo=SH)  # a Thursday
MIDNIGHT = datetime(2026, 11, 26, 23, 30, tzinfo=SH)
CENTRE = (27.83, 113.15)


def ids(hits):
    return [h.station.source_id for h in hits]


# -- a fixture small enough to check by hand ----------------------------------
#
# Stations due north of the centre at 0.001° steps (110.82 m each at 27.83°N;
# see test_geodesic), plus one due east. Distances below are worked out by hand.

@pytest.fixture
def line(store):
    lat, lng = CENTRE
    store.upsert([
        station("n1", lat + 0.001, lng, yes=("baby_change",), hours="24/7"),
        station("n2", lat + 0.002, lng, "rest_station", yes=("hot_water", "microwave"), hours="08:00-18:00"),
        station("n3", lat + 0.003, lng, yes=("accessible_toilet", "baby_change"), no=("hot_water",)),
        station("n4", lat + 0.004, lng, "battery_swap", hours="24/7"),
        station("n5", lat + 0.005, lng, "water_point", status="closed"),
        station("e1", lat, lng + 0.0025, "charging", hours="06:00-22:00"),  # 246.3 m east: p·π/180·0.0025, p = a·cosφ/√(1−e²sin²φ) = 5,644,5xx m
    ])
    return store


def test_nearest_by_hand(line):
    hits = line.nearest(NearestQuery(*CENTRE, at=NOON, limit=3))
    assert ids(hits) == ["n1", "n2", "e1"]
    assert [round(h.distance_m, 1) for h in hits] == [110.8, 221.6, 246.3]


def test_status_other_than_active_is_never_returned(line):
    hits = line.nearest(NearestQuery(*CENTRE, at=NOON, limit=100))
    assert "n5" not in ids(hits) and len(hits) == 5


def test_kind_filter_is_any_of(line):
    q = NearestQuery(*CENTRE, at=NOON, filter=StationFilter(kinds=("battery_swap", "charging")))
    assert ids(line.nearest(q)) == ["e1", "n4"]


def test_amenity_filter_is_all_of(line):
    q = NearestQuery(*CENTRE, at=NOON, filter=StationFilter(amenities=("baby_change", "accessible_toilet")))
    assert ids(line.nearest(q)) == ["n3"]
    q = NearestQuery(*CENTRE, at=NOON, filter=StationFilter(amenities=("baby_change",)))
    assert ids(line.nearest(q)) == ["n1", "n3"]


def test_open_state_at_fixed_times(line):
    states = {h.station.source_id: h.hours.state for h in line.nearest(NearestQuery(*CENTRE, at=MIDNIGHT))}
    assert states == {"n1": "open", "n2": "closed", "e1": "closed", "n3": "unknown", "n4": "open"}
    states = {h.station.source_id: h.hours.state for h in line.nearest(NearestQuery(*CENTRE, at=NOON))}
    assert states == {"n1": "open", "n2": "open", "e1": "open", "n3": "unknown", "n4": "open"}


def test_open_only_and_include_unknown(line):
    open_only = StationFilter(open_only=True)
    assert ids(line.nearest(NearestQuery(*CENTRE, at=MIDNIGHT, filter=open_only))) == ["n1", "n4"]
    with_unknown = StationFilter(open_only=True, include_unknown=True)
    assert ids(line.nearest(NearestQuery(*CENTRE, at=MIDNIGHT, filter=with_unknown))) == ["n1", "n3", "n4"]


def test_max_distance(line):
    hits = line.nearest(NearestQuery(*CENTRE, at=NOON, max_distance_m=230))
    assert ids(hits) == ["n1", "n2"]
    assert line.nearest(NearestQuery(*CENTRE, at=NOON, max_distance_m=100)) == []


def test_ties_break_by_id(store):
    store.upsert([station(s, 27.84, 113.16) for s in ("c", "a", "b")])
    hits = store.nearest(NearestQuery(*CENTRE, at=NOON))
    assert [h.station.id for h in hits] == sorted(h.station.id for h in hits)
    assert len({h.distance_m for h in hits}) == 1


def test_empty_store(store):
    assert store.nearest(NearestQuery(*CENTRE, at=NOON)) == []
    assert store.within(Box(-90, -180, 90, 180), StationFilter(), 10) == ([], False)


def test_within_box_limit_and_truncation(line):
    box = Box(CENTRE[0], CENTRE[1] - 0.0001, CENTRE[0] + 0.0035, CENTRE[1] + 0.0001)
    found, more = line.within(box, StationFilter(), 10)
    assert sorted(s.source_id for s in found) == ["n1", "n2", "n3"] and more is False
    found, more = line.within(box, StationFilter(), 2)
    assert len(found) == 2 and more is True
    found, _ = line.within(box, StationFilter(amenities=("baby_change",)), 10)
    assert sorted(s.source_id for s in found) == ["n1", "n3"]


def test_get_round_trips_every_field(store):
    store.upsert([station("x", 27.8, 113.1, yes=("wifi",), no=("umbrella",), hours="Mo-Fr 08:00-18:00")])
    (hit,) = store.nearest(NearestQuery(27.8, 113.1, at=NOON))
    got = store.get(hit.station.id)
    assert (got.source, got.source_id, got.kind, got.lat, got.lng) == ("test", "x", "toilet", 27.8, 113.1)
    assert (got.opening_hours, got.timezone, got.status, got.access) == ("Mo-Fr 08:00-18:00", "Asia/Shanghai", "active", "public")
    assert got.created_at.tzinfo is not None and got.updated_at >= got.created_at
    assert store.get(hit.station.id + 1000) is None


def test_upsert_is_idempotent_and_updates_by_source_key(store):
    first = store.upsert([station("a", 27.8, 113.1), station("b", 27.81, 113.1)])
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    again = store.upsert([station("a", 27.8, 113.1), station("b", 27.81, 113.1, name="改名")])
    assert (again.inserted, again.updated, again.unchanged) == (0, 1, 1)
    assert store.count() == 2
    other_source = store.upsert([station("a", 27.8, 113.1, source="other")])
    assert other_source.inserted == 1 and store.count() == 3


def test_moving_a_station_moves_it_in_the_spatial_index(store):
    store.upsert([station("m", 27.80, 113.10)])
    store.upsert([station("m", 30.00, 120.00)])
    assert store.nearest(NearestQuery(27.80, 113.10, at=NOON, max_distance_m=1000)) == []
    assert ids(store.nearest(NearestQuery(30.0, 120.0, at=NOON, max_distance_m=1))) == ["m"]


def test_antimeridian(store):
    store.upsert([station("west", -16.5, -179.99), station("east", -16.5, 179.9)])
    hits = store.nearest(NearestQuery(-16.5, 179.995, at=NOON, limit=2))
    # 0.015° of longitude across 180° (1.6 km) beats 0.095° on the same side (10.1 km).
    assert ids(hits) == ["west", "east"]
    assert [round(h.distance_m / 100) for h in hits] == [16, 101]


# -- brute force oracle on a few thousand random stations, given in GCJ-02 --

KINDS = ("toilet", "rest_station", "water_point", "battery_swap", "charging")
AMENITY_POOL = ("accessible_toilet", "baby_change", "hot_water", "microwave", "wifi")
HOURS_POOL = ("24/7", "08:00-18:00", "Mo-Fr 09:00-17:00", None, "06:00-22:00")


@pytest.fixture
def random_city(store):
    """3,000 stations as a city would export them from Amap (GCJ-02), clustered
    around two centres so that densities vary."""
    rng = random.Random(42)
    rows = []
    for i in range(3000):
        c_lat, c_lng = (27.83, 113.15) if i % 3 else (27.90, 113.05)
        g_lat, g_lng = c_lat + rng.gauss(0, 0.03), c_lng + rng.gauss(0, 0.03)
        lat, lng = to_wgs84(g_lat, g_lng, GCJ02)
        rows.append(station(
            f"r{i}", lat, lng, rng.choice(KINDS),
            yes=rng.sample(AMENITY_POOL, rng.randint(0, 3)), hours=rng.choice(HOURS_POOL),
            status="active" if rng.random() > 0.05 else "removed",
        ))
    store.upsert(rows)
    return rows


def _oracle(rows, lat, lng, flt, at, limit, max_distance=None):
    from app.stations.hours import evaluate
    from app.stations.vocabulary import amenity_mask

    need = amenity_mask(flt.amenities)
    candidates = []
    for r in rows:
        if r.status != "active" or (flt.kinds and r.kind not in flt.kinds) or (r.amenities_yes & need) != need:
            continue
        d = geodesic((lat, lng), (r.lat, r.lng)).m
        if max_distance is not None and d > max_distance:
            continue
        state = evaluate(r.opening_hours, at, r.timezone).state
        if flt.open_only and not (state == "open" or (flt.include_unknown and state == "unknown")):
            continue
        candidates.append((d, r.source_id))
    candidates.sort()
    return candidates[:limit]


QUERY_FILTERS = [
    StationFilter(),
    StationFilter(kinds=("battery_swap",)),
    StationFilter(kinds=("toilet", "water_point"), amenities=("baby_change",)),
    StationFilter(amenities=("hot_water", "wifi")),
    StationFilter(open_only=True),
    StationFilter(kinds=("rest_station",), open_only=True, include_unknown=True),
]


def test_nearest_matches_brute_force_oracle(store, random_city):
    rng = random.Random(9)
    for trial in range(40):
        g_lat, g_lng = 27.85 + rng.uniform(-0.12, 0.12), 113.10 + rng.uniform(-0.15, 0.15)
        lat, lng = to_wgs84(g_lat, g_lng, GCJ02)
        flt = QUERY_FILTERS[trial % len(QUERY_FILTERS)]
        limit = rng.choice((1, 5, 10, 37, 100))
        at = datetime(2026, 11, 23 + trial % 7, rng.randint(0, 23), 30, tzinfo=SH)
        max_distance = rng.choice((None, None, 1500.0))
        expected = _oracle(random_city, lat, lng, flt, at, limit, max_distance)
        hits = store.nearest(NearestQuery(lat, lng, at=at, limit=limit, filter=flt, max_distance_m=max_distance))
        assert ids(hits) == [sid for _, sid in expected], (trial, flt)
        for hit, (d, _) in zip(hits, expected):
            assert hit.distance_m == pytest.approx(d, abs=0.001)


def test_a_point_far_from_every_station_gets_an_empty_answer_not_a_scan(store, random_city):
    # From Helsinki, Zhuzhou is ~7,000 km away: far beyond the search radius, so the
    # answer is "nothing within 50 km" instead of reading every station in the store.
    assert store.nearest(NearestQuery(60.17, 24.94, at=NOON, limit=3)) == []
    assert store.nearest(NearestQuery(60.17, 24.94, at=NOON, limit=3, max_distance_m=20_000_000)) == []


def test_the_search_radius_is_exact_at_its_edge(store):
    # Due north, 1 km is 0.0090224° at 27.83°N (see test_geodesic); 50 km ≈ 0.4511°.
    from app.stations.model import MAX_SEARCH_M

    lat, lng = CENTRE
    store.upsert([station("inside", lat + 0.4505, lng), station("outside", lat + 0.4520, lng)])
    far = store.nearest(NearestQuery(lat, lng, at=NOON, limit=5))
    assert ids(far) == ["inside"] and far[0].distance_m <= MAX_SEARCH_M
    assert geodesic((lat + 0.4520, lng), CENTRE).meters > MAX_SEARCH_M


def test_station_signature_matches_a_brute_force_count(store, connection, random_city):
    """The trigger-kept (kind, amenities) table equals a GROUP BY, through inserts, updates and deletes."""
    from sqlalchemy import text

    def signature():
        return {(k, m): n for k, m, n in connection.execute(text(
            "SELECT kind, amenities_yes, active FROM station_signature WHERE active <> 0"))}

    def brute():
        return {(k, m): n for k, m, n in connection.execute(text(
            "SELECT kind, amenities_yes, count(*) FROM station WHERE status = 'active' GROUP BY 1, 2"))}

    assert signature() == brute()
    rng = random.Random(3)
    changed = [station(r.source_id, r.lat, r.lng, rng.choice(KINDS), yes=rng.sample(AMENITY_POOL, 2),
                       status=rng.choice(("active", "closed"))) for r in rng.sample(random_city, 300)]
    store.upsert(changed)
    assert signature() == brute()
    connection.execute(text("DELETE FROM station WHERE id IN (SELECT id FROM station ORDER BY id LIMIT 500)"))
    assert signature() == brute()


def test_a_filter_no_station_matches_answers_without_walking_the_index(store, random_city):
    # Nothing in random_city has first aid: the answer is empty however dense the city.
    flt = StationFilter(amenities=("first_aid",))
    assert store.nearest(NearestQuery(*CENTRE, at=NOON, limit=5, filter=flt)) == []
    flt = StationFilter(kinds=("toilet",), amenities=("first_aid", "wifi"))
    assert store.nearest(NearestQuery(*CENTRE, at=NOON, limit=5, filter=flt)) == []


def test_no_station_is_read_when_no_station_matches(backend, store, connection, random_city):
    query = NearestQuery(*CENTRE, at=NOON, limit=5, filter=StationFilter(amenities=("first_aid",)))
    driver = connection.connection.driver_connection
    if backend == "postgis":
        # The signature EXISTS is a one-time filter: the KNN index scan is never executed.
        from app.stations.postgis import _nearest_sql

        sql, params = _nearest_sql(query)
        plan = "\n".join(r[0] for r in driver.execute("EXPLAIN (ANALYZE, COSTS OFF) " + sql, {**params, "n": 36}))
        assert "One-Time Filter" in plan and "never executed" in plan, plan
    else:
        # The store asks the signature table first and never queries the station table.
        statements = []
        driver.set_trace_callback(statements.append)
        try:
            assert store.nearest(query) == []
        finally:
            driver.set_trace_callback(None)
        assert any("station_signature" in sql for sql in statements)
        assert not any("FROM station s" in sql for sql in statements), statements


def test_the_nearest_plan_walks_the_spatial_index(backend, store, connection, random_city):
    """PostGIS: the prepared (unfiltered) statement keeps the KNN index scan even as a generic
    plan, which PostgreSQL switches to after five runs. SQLite: candidates come from the R*Tree."""
    import re

    driver = connection.connection.driver_connection
    query = NearestQuery(*CENTRE, at=NOON, limit=10)
    if backend == "postgis":
        from app.stations.postgis import _nearest_sql

        sql, params = _nearest_sql(query)
        params["n"] = 36
        names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", sql)))
        positional = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", sql)
        driver.execute(f"PREPARE knn AS {positional}")
        try:
            driver.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            values = ", ".join(repr(params[n]) for n in names)
            plan = "\n".join(r[0] for r in driver.execute(f"EXPLAIN (COSTS OFF) EXECUTE knn({values})"))
        finally:
            driver.execute("DEALLOCATE knn")
        assert "Index Scan using ix_station_geom" in plan and "Order By" in plan, plan
    else:
        from app.geo.geodesic import boxes_within
        from app.stations.sqlite import _COLS, _box_sql

        params = {}
        sql = f"SELECT {_COLS} FROM station s WHERE {_box_sql(boxes_within(*CENTRE, 400.0), params)}"
        plan = " ".join(str(r[-1]) for r in driver.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert "station_rtree VIRTUAL TABLE INDEX" in plan, plan


@pytest.mark.parametrize("lat,lng,bounded", [
    (27.83, 113.15, False),   # a city: the KNN needs no envelope
    (60.17, 24.94, False),
    (89.45, 10.0, True),      # the 50 km box spans every longitude: without an envelope the
    (89.0, 10.0, True),       # proof would need ~47-190 planar degrees, i.e. most stations
    (-16.5, -179.95, True),   # across the antimeridian
])
def test_unfiltered_postgis_scans_stay_inside_the_radius_where_degrees_mislead(lat, lng, bounded):
    from app.stations.postgis import _nearest_sql

    sql, _ = _nearest_sql(NearestQuery(lat, lng, at=NOON))
    assert ("geom && ST_MakeEnvelope" in sql) == bounded


def test_near_the_pole_the_answer_is_still_exact(store):
    # Distances by geopy (Karney): 39.1 km and 47.4 km inside the 50 km radius; 72.6 km
    # (across the pole), 86.9 km and 104.5 km outside it.
    lat, lng = 89.45, 10.0
    places = [("near", 89.8, 10.0), ("across", 89.9, -170.0), ("aside", 89.45, 100.0),
              ("east", 89.7, 60.0), ("far", 89.6, 170.0), ("city", 27.83, 113.15)]
    store.upsert([station(sid, la, ln) for sid, la, ln in places])
    hits = store.nearest(NearestQuery(lat, lng, at=NOON, limit=5))
    by_distance = sorted((geodesic((la, ln), (lat, lng)).meters, sid) for sid, la, ln in places)
    assert ids(hits) == [sid for d, sid in by_distance if d <= 50_000] == ["near", "east"]
