"""Cheap requests and careless setups that used to knock the service over, on both stores."""
import os
import socket
import threading

import pytest
from flask_migrate import upgrade
from sqlalchemy import create_engine, text

from app import create_app
from app.stations.backends import store_for
from tests.helpers import station

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- a database without the schema answers like one that is down: JSON 503 ---------------


@pytest.fixture
def unmigrated_app(backend, apps, tmp_path):
    if backend == "sqlite":
        return create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/empty.sqlite3", "TESTING": True})
    # The test database, seen through an empty schema: no tables at all.
    url = apps["postgis"].config["SQLALCHEMY_DATABASE_URI"]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS yizhan_unmigrated"))
    engine.dispose()
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "SQLALCHEMY_ENGINE_OPTIONS": {
        "connect_args": {"options": "-c search_path=yizhan_unmigrated"}}})


@pytest.mark.parametrize("path", [
    "/api/v1/stations/nearest?lat=27.83&lng=113.15",
    "/api/v1/stations?bbox=113,27,114,28",
    "/api/v1/stations/1",
    "/api/v1/service-circle?lat=27.83&lng=113.15",
])
def test_a_database_without_the_schema_is_a_json_503_on_both_stores(unmigrated_app, path):
    r = unmigrated_app.test_client().get(path)
    assert r.status_code == 503, r.data
    assert r.get_json()["error"]["code"] == "unavailable"
    assert b"station" not in r.data.lower().replace(b"the station database", b"")  # no SQL in the answer


# -- a database server that accepts connections and never answers ---------------------------


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never says a word (a hung database)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_a_hung_database_costs_seconds_and_answers_json_503(silent_server, monkeypatch):
    monkeypatch.setenv("YIZHAN_DB_CONNECT_TIMEOUT_S", "1")
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://yizhan@127.0.0.1:{silent_server}/none",
                      "TESTING": True})
    r = app.test_client().get("/api/v1/stations/nearest?lat=27.83&lng=113.15")
    assert r.status_code == 503 and r.get_json()["error"]["code"] == "unavailable"
    assert r.headers["Retry-After"]


def test_statement_and_connect_timeouts_reach_the_server(apps, monkeypatch):
    monkeypatch.setenv("YIZHAN_DB_STATEMENT_TIMEOUT_S", "2.5")
    app = create_app({"SQLALCHEMY_DATABASE_URI": apps["postgis"].config["SQLALCHEMY_DATABASE_URI"], "TESTING": True})
    store = app.extensions["yizhan_store"]
    with store.reading() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar() == "2500ms"
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_timeout"] == 5
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]["connect_timeout"] == 3


def test_a_dropped_connection_costs_one_request_then_the_pool_reconnects(apps):
    """No pre-ping: when the server drops a connection, that request gets the JSON 503 and the
    pool is invalidated, so the next request works on a fresh connection."""
    url = apps["postgis"].config["SQLALCHEMY_DATABASE_URI"]
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "SQLALCHEMY_ENGINE_OPTIONS": {
        "connect_args": {"application_name": "yizhan-dropped"}}})
    client = app.test_client()
    ask = "/api/v1/stations/nearest?lat=27.83&lng=113.15"
    assert client.get(ask).status_code == 200
    admin = create_engine(url)
    with admin.begin() as conn:  # what a server restart does to every open connection
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE application_name = 'yizhan-dropped'"))
    admin.dispose()
    first = client.get(ask)
    assert first.status_code == 503 and first.get_json()["error"]["code"] == "unavailable"
    assert client.get(ask).status_code == 200


# -- numbers written the way only Python reads them ---------------------------------------


@pytest.mark.parametrize("params,field", [
    ({"lat": "２７", "lng": "113"}, "lat"),          # full-width digits
    ({"lat": "27", "lng": "١١٣"}, "lng"),            # Arabic-Indic digits
    ({"lat": "2_7", "lng": "113"}, "lat"),           # Python's digit separators
    ({"lat": "27", "lng": "113", "limit": "１０"}, "limit"),
    ({"lat": "27", "lng": "113", "max_distance": "0x10"}, "max_distance"),
])
def test_only_ascii_numbers_are_numbers(client, params, field):
    r = client.get("/api/v1/stations/nearest", query_string=params)
    assert r.status_code == 400
    assert (r.get_json()["error"]["field"], r.get_json()["error"]["code"]) == (field, "invalid_parameter")


# -- a point far from every station, and a filter nothing matches -----------------------------


def test_far_point_and_empty_filter_answer_empty_at_once(client, store):
    store.upsert([station("z1", 27.83, 113.15), station("z2", 27.84, 113.16, "battery_swap")])
    far = client.get("/api/v1/stations/nearest?lat=-27.83&lng=-66.85&limit=1").get_json()
    assert far["count"] == 0 and far["results"] == []
    none = client.get("/api/v1/stations/nearest?lat=27.83&lng=113.15&amenity=first_aid").get_json()
    assert none["count"] == 0
    r = client.get("/api/v1/stations/nearest?lat=27.83&lng=113.15&max_distance=60000")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "out_of_range"


# -- every answer with coordinates honours out_coordsys ------------------------------------


def test_map_area_answers_in_out_coordsys(client, store):
    from app.geo.coordsys import from_wgs84

    store.upsert([station("c1", 27.83, 113.15)])
    body = client.get("/api/v1/stations?bbox=113.1,27.8,113.2,27.9&out_coordsys=gcj02").get_json()
    lng, lat = body["features"][0]["geometry"]["coordinates"]
    g_lat, g_lng = from_wgs84(27.83, 113.15, "gcj02")
    assert body["coordsys"] == "gcj02"
    assert (round(lat, 6), round(lng, 6)) == (round(g_lat, 6), round(g_lng, 6))


# -- two imports of one source at once ---------------------------------------------------------


def _committing_store(backend, apps, tmp_path):
    if backend == "sqlite":
        app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/concurrent.sqlite3", "TESTING": True})
        with app.app_context():
            upgrade()
        return app.extensions["yizhan_store"], None
    url = apps["postgis"].config["SQLALCHEMY_DATABASE_URI"]
    engine = create_engine(url)
    return store_for(engine), engine


def test_overlapping_imports_queue_instead_of_deadlocking(backend, apps, tmp_path):
    """Two imports of the same stations, in opposite orders, at the same moment: both finish."""
    store, engine = _committing_store(backend, apps, tmp_path)
    rows = [station(f"o{i}", 27.8 + i * 1e-4, 113.1, name=f"第 {i} 站") for i in range(3000)]
    try:
        store.upsert(rows)  # both imports then update the same rows
        changed = [station(r.source_id, r.lat, r.lng, "rest_station") for r in rows]
        start = threading.Barrier(2)
        errors = []

        def run(batch):
            start.wait()
            try:
                store.upsert(batch)
            except Exception as exc:  # noqa: BLE001 — the failure is the finding
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(b,)) for b in (changed, changed[::-1])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with store.reading() as conn:
            kinds = conn.execute(text("SELECT kind, count(*) FROM station WHERE source = 'test' GROUP BY kind")).all()
        assert dict(kinds) == {"rest_station": 3000}
    finally:
        with store.transaction() as conn:
            conn.execute(text("DELETE FROM station WHERE source = 'test'"))
        if engine is not None:
            engine.dispose()


# -- autogenerate would drop every table: refused with the reason ------------------------------


def test_flask_db_migrate_is_refused_with_a_reason(tmp_path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/mig.sqlite3", "TESTING": True})
    with app.app_context():
        upgrade()
    versions = os.path.join(PROJECT, "migrations", "versions")
    before = set(os.listdir(versions))
    result = app.test_cli_runner().invoke(args=["db", "migrate", "-m", "probe"])
    created = set(os.listdir(versions)) - before
    for name in created:  # never leave a stray revision behind, even when the check fails
        os.remove(os.path.join(versions, name))
    assert created == set()
    assert result.exit_code != 0
    assert "by hand" in (result.output + str(result.exception or ""))


def test_starting_over_works_on_a_migrated_sqlite_file(tmp_path):
    """Benchmarks and tests drop every table and migrate again; that used to fail the second time
    (dropping `station` cascaded into service areas whose triggers named an R*Tree already gone)."""
    from app.extensions import db
    from app.stations.backends import drop_all_tables

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/again.sqlite3", "TESTING": True})
    with app.app_context():
        for _ in range(2):
            upgrade()
            store = app.extensions["yizhan_store"]
            store.upsert([station("a1", 27.83, 113.15)])
            drop_all_tables(db.engine)
        upgrade()
        assert app.extensions["yizhan_store"].count() == 0


def test_imports_are_not_bound_by_the_web_statement_timeout(apps, monkeypatch):
    """The statement timeout protects requests from a hung database; a city's import may take
    longer than it (a 1M-row upsert is one statement of ~20 s), so bulk writes lift it.

    The timeout is 0.3 s, not less: SQLAlchemy's own first-connect queries run under it too,
    and a 1 ms limit made them fail on a busy machine before the import was even reached."""
    from sqlalchemy.exc import OperationalError

    monkeypatch.setenv("YIZHAN_DB_STATEMENT_TIMEOUT_S", "0.3")
    url = apps["postgis"].config["SQLALCHEMY_DATABASE_URI"]
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    store = app.extensions["yizhan_store"]
    with pytest.raises(OperationalError, match="statement timeout"):
        with store.transaction() as conn:
            conn.execute(text("SELECT pg_sleep(0.6)"))
    with store.bulk_transaction() as conn:
        conn.execute(text("SELECT pg_sleep(0.6)"))  # would be cancelled without the lift
    rows = [station(f"t{i}", 27.8 + i * 1e-5, 113.1, source="timeout-probe") for i in range(3000)]
    try:
        counts = store.upsert(rows)
        assert counts.inserted == 3000
    finally:
        with store.bulk_transaction() as conn:
            conn.execute(text("DELETE FROM station WHERE source = 'timeout-probe'"))


def test_only_the_unfiltered_nearest_statement_is_prepared(apps):
    """Auto-preparation would hand filtered searches a generic plan that walks every matching
    station; explicit preparation of the unfiltered KNN must still work."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from app.stations.model import NearestQuery, StationFilter

    app = create_app({"SQLALCHEMY_DATABASE_URI": apps["postgis"].config["SQLALCHEMY_DATABASE_URI"], "TESTING": True})
    store = app.extensions["yizhan_store"]
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    for _ in range(8):  # past psycopg's default threshold of five
        store.nearest(NearestQuery(27.83, 113.15, at=now, filter=StationFilter(kinds=("toilet",))))
    with store.reading() as conn:
        prepared = conn.execute(text("SELECT statement FROM pg_prepared_statements")).scalars().all()
    assert not any("station_signature" in s for s in prepared), prepared  # only filtered scans ask it
    store.nearest(NearestQuery(27.83, 113.15, at=now))
    with store.reading() as conn:
        prepared = conn.execute(text("SELECT statement FROM pg_prepared_statements")).scalars().all()
    assert any("ORDER BY geom <->" in s for s in prepared), prepared


def test_range_errors_name_the_declared_range_also_for_optional_numbers(client):
    r = client.get("/api/v1/stations/nearest?lat=27&lng=113&max_distance=60000")
    assert r.get_json()["error"] == {"code": "out_of_range", "field": "max_distance",
                                     "message": "'max_distance' must be between 0 and 50000."}
    doc = client.get("/api/v1/openapi.json").get_json()
    (param,) = [p for p in doc["paths"]["/stations/nearest"]["get"]["parameters"] if p["name"] == "max_distance"]
    assert param["description"].startswith("Metres") and "description" not in param["schema"]
