"""Reads on a replica, writes on the primary (app/replicas.py), against a real streaming standby.

The pair (tests/replica_cluster.py) is PostgreSQL's own streaming replication between two clusters
on this machine. Which server answered is proven by the data itself: with the standby's replay
paused, a row written on the primary is missing from an answer read on the standby and present in
one read on the primary; and by ``inet_server_port()`` / ``pg_is_in_recovery()`` on the connection
the router hands out. PostGIS only: SQLite has no replicas (refused at start-up; tested).
"""
from __future__ import annotations

import re
import tempfile
import time
import threading
import uuid
from contextlib import contextmanager

import pytest
from flask_migrate import upgrade
from sqlalchemy import text

from app import create_app
from app.auth import limiter
from app.config import engine_options, from_environment, replica_urls
from app.extensions import db
from app.network import service
from app.replicas import WROTE_COOKIE, ReadRouter, server_gone
from tests.conftest import _postgis_url
from tests.helpers import station
from tests.replica_cluster import (
    PRIMARY, PRIMARY_PORT, STANDBY, STANDBY_PORT, ensure_pair, fresh_database, pg_ctlcluster, sql, url,
    wait_replayed, wait_until,
)

HERE = (27.8300, 113.1500)
NEAREST = f"/api/v1/stations/nearest?lat={HERE[0]}&lng={HERE[1]}&limit=50"
ADMIN, PASSWORD = "admin@replica.example", "correct horse battery"


@pytest.fixture(scope="module")
def pair_app():
    ensure_pair()
    name = fresh_database(_postgis_url())
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": url(PRIMARY_PORT, name), "DATABASE_REPLICA_URLS": [url(STANDBY_PORT, name)],
        "TESTING": True, "YIZHAN_UPLOAD_DIR": tempfile.mkdtemp(prefix="yizhan-replica-uploads-"),
    })
    with app.app_context():
        upgrade()
    store = app.extensions["yizhan_store"]
    store.upsert([station(f"s{i}", HERE[0] + 0.001 * i, HERE[1], hours="24/7", source="replica") for i in range(4)])
    app.extensions["yizhan_ops"].accounts.create_user(ADMIN, PASSWORD, "admin", None)
    wait_replayed()
    yield app
    app.extensions["yizhan_read_router"].dispose()


@pytest.fixture(scope="module")
def admin_token(pair_app) -> str:
    return pair_app.extensions["yizhan_ops"].accounts.create_token(ADMIN)


@pytest.fixture
def router(pair_app) -> ReadRouter:
    """The app's router, its lag limit restored and the standby replaying after each test."""
    router = pair_app.extensions["yizhan_read_router"]
    limit = router.max_lag_s
    yield router
    router.max_lag_s = limit
    sql(STANDBY_PORT, "SELECT pg_wal_replay_resume()")
    wait_replayed()
    router.check_now()


@contextmanager
def replay_paused():
    sql(STANDBY_PORT, "SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        sql(STANDBY_PORT, "SELECT pg_wal_replay_resume()")


def read_on(router: ReadRouter, replicas_allowed: bool = True) -> tuple[int, bool]:
    """(port, in recovery) of the server a read gets, in a request that may or may not use replicas."""
    token = router.begin_request(replicas_allowed)
    try:
        with router.connect() as conn:
            return tuple(conn.exec_driver_sql("SELECT inet_server_port(), pg_is_in_recovery()").one())
    finally:
        router.end_request(token)


def nearest_ids(client, **headers) -> list[str]:
    answer = client.get(NEAREST, headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return [r["name"] for r in answer.get_json()["results"]]


def add_station(app, source_id: str, name: str) -> int:
    """A station written on the primary (outside any request), right at HERE; its id."""
    store = app.extensions["yizhan_store"]
    store.upsert([station(source_id, *HERE, hours="24/7", source="replica", name=name)])
    with store.transaction() as conn:
        return conn.execute(text("SELECT id FROM station WHERE source = 'replica' AND source_id = :s"),
                            {"s": source_id}).scalar_one()


# -- where reads and writes go -------------------------------------------------------


def test_a_finder_read_gets_the_standby_and_a_write_or_a_job_the_primary(router):
    assert read_on(router) == (STANDBY_PORT, True)
    assert read_on(router, replicas_allowed=False) == (PRIMARY_PORT, False)
    # The store's hot path checks connections out raw: the same choice.
    token = router.begin_request(True)
    try:
        raw = router.raw_connection()
        try:
            assert raw.driver_connection.execute("SELECT inet_server_port()").fetchone()[0] == STANDBY_PORT
        finally:
            raw.close()
    finally:
        router.end_request(token)
    # Outside any request (CLI jobs, `ops tick`): the primary.
    with router.connect() as conn:
        assert conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar() is False


def test_answers_come_from_the_standby_until_the_client_writes(pair_app, router):
    router.max_lag_s = 600  # behind, but within the limit: still used
    with replay_paused():
        late = add_station(pair_app, "late", "晚到的站 LATE")
        public = pair_app.test_client()
        assert "晚到的站 LATE" not in nearest_ids(public)  # the standby has not replayed it
        assert public.get(f"/api/v1/stations/{late}").status_code == 404
        # A client that has just written reads from the primary.
        public.set_cookie(WROTE_COOKIE, "1")
        assert "晚到的站 LATE" in nearest_ids(public)
        assert public.get(f"/api/v1/stations/{late}").status_code == 200


FINDER_READS = ("nearest", "bbox", "station", "service_circle", "search", "page", "gbfs")


def _finder_answers(client, late: int) -> dict[str, bool]:
    """For each of the finder's reads: whether its answer shows the station ``late`` (named FINDERLATE)."""
    lat, lng = HERE
    box = f"{lng - 0.01},{lat - 0.01},{lng + 0.01},{lat + 0.01}"
    answers = {
        "nearest": client.get(NEAREST),
        "bbox": client.get(f"/api/v1/stations?bbox={box}"),
        "station": client.get(f"/api/v1/stations/{late}"),
        "service_circle": client.get(f"/api/v1/service-circle?lat={lat}&lng={lng}"),
        "search": client.get(f"/api/v1/search?q=FINDERLATE&near={lat},{lng}"),
        "page": client.get(f"/s/{late}"),
        "gbfs": client.get("/gbfs/station_information.json"),
    }
    for name, answer in answers.items():
        assert answer.status_code in (200, 404), (name, answer.status_code)
        assert WROTE_COOKIE not in answer.headers.get("Set-Cookie", ""), name  # reading is not writing
    return {name: answer.status_code == 200 and "FINDERLATE" in answer.get_data(as_text=True)
            for name, answer in answers.items()}


def test_every_finder_read_is_answered_on_the_standby(pair_app, router):
    router.max_lag_s = 600
    with replay_paused():
        late = add_station(pair_app, "late-finder", "FINDERLATE 晚到")
        assert _finder_answers(pair_app.test_client(), late) == dict.fromkeys(FINDER_READS, False)
        wrote = pair_app.test_client()
        wrote.set_cookie(WROTE_COOKIE, "1")
        assert _finder_answers(wrote, late) == dict.fromkeys(FINDER_READS, True)


def test_a_rating_is_written_on_the_primary_and_its_author_reads_it_back(pair_app, router):
    router.max_lag_s = 600
    rated = add_station(pair_app, "rated", "评分站 RATED")
    wait_replayed()
    with replay_paused():
        author, stranger = pair_app.test_client(), pair_app.test_client()
        posted = author.post(f"/api/v1/stations/{rated}/ratings", json={"stars": 4})
        assert posted.status_code == 201, posted.get_data(as_text=True)
        cookie = author.get_cookie(WROTE_COOKIE)
        assert cookie is not None and cookie.max_age is not None and cookie.max_age > router.max_lag_s - 600
        assert sql(PRIMARY_PORT, "SELECT count(*) FROM station_rating WHERE station_id = %s", (rated,),
                   database=pair_app.config["SQLALCHEMY_DATABASE_URI"].rsplit("/", 1)[1]) == (1,)
        assert author.get(f"/api/v1/stations/{rated}").get_json()["rating"]["count"] == 1
        assert stranger.get(f"/api/v1/stations/{rated}").get_json()["rating"] is None  # the standby's snapshot


def test_a_staff_write_is_read_back_by_that_client_at_once(pair_app, router, admin_token):
    router.max_lag_s = 600
    shut = add_station(pair_app, "shut", "维修站 SHUT")
    token = admin_token
    wait_replayed()
    with replay_paused():
        staff, resident = pair_app.test_client(), pair_app.test_client()
        closed = staff.patch(f"/api/v1/ops/stations/{shut}/status", headers={"Authorization": f"Bearer {token}"},
                             json={"status": "temporarily_closed", "reason": "维修中"})
        assert closed.status_code == 200, closed.get_data(as_text=True)
        # The same browser, now on the public page's API (no token): the primary, closed.
        assert staff.get(f"/api/v1/stations/{shut}").get_json()["open_state"] == "closed"
        # A staff request with its token always reads on the primary.
        listed = staff.get("/api/v1/ops/work-orders", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200
        # Everyone else: the standby, which has not replayed the closure yet.
        assert resident.get(f"/api/v1/stations/{shut}").get_json()["open_state"] == "open"


def test_a_logged_in_staff_browser_reads_on_the_primary_and_a_visitor_with_a_form_session_does_not(
        pair_app, router, monkeypatch):
    monkeypatch.setattr(limiter, "_key_prefix", f"yizhan-test-{uuid.uuid4().hex}")  # its own login counts
    router.max_lag_s = 600
    with replay_paused():
        late = add_station(pair_app, "late-staff", "LATE 员工")
        browser = pair_app.test_client()
        form = browser.get("/staff/login").get_data(as_text=True)  # a session holding a CSRF token only
        assert browser.get(f"/api/v1/stations/{late}").status_code == 404  # the standby
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        logged_in = browser.post("/staff/login", data={"email": ADMIN, "password": PASSWORD, "csrf_token": csrf})
        assert logged_in.status_code == 302
        browser.delete_cookie(WROTE_COOKIE)  # whether or not logging in wrote: the login alone counts
        assert browser.get(f"/api/v1/stations/{late}").status_code == 200  # the primary


# -- lag, loss and return ---------------------------------------------------------------


def test_a_standby_behind_the_limit_is_skipped_until_it_catches_up(pair_app, router):
    router.max_lag_s = 1
    client = pair_app.test_client()
    with replay_paused():
        add_station(pair_app, "while-paused", "暂停时的站 PAUSED")
        # Replay paused, the primary wrote: the standby falls behind, and once past the limit
        # (checked at most every second) reads go to the primary, which has the new station.
        wait_until(lambda: read_on(router)[0] == PRIMARY_PORT, "reads leave the lagging standby")
        assert "暂停时的站 PAUSED" in nearest_ids(client)
    wait_until(lambda: read_on(router)[0] == STANDBY_PORT, "reads return to the standby once it caught up")
    assert "暂停时的站 PAUSED" in nearest_ids(client)


def test_readiness_and_metrics_show_the_standby_and_its_lag(pair_app, router):
    # The router's view reaches /readyz and /metrics (from loopback); a standby behind the limit
    # is shown unhealthy there, and the app stays ready (reads go to the primary).
    client = pair_app.test_client()
    router.check_now()
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["replicas"][0]["name"] == "replica 1"
    assert ready["replicas"][0]["healthy"] is True and ready["replicas"][0]["up"] is True
    router.max_lag_s = 1
    with replay_paused():
        add_station(pair_app, "paused-for-readyz", "暂停时的站 READYZ")

        def behind() -> bool:
            router.check_now()
            return router.status()[0]["healthy"] is False

        wait_until(behind, "the standby is shown behind the limit")
        time.sleep(1.1)  # /readyz reuses its answer for a second
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.get_json()["replicas"][0]["healthy"] is False
        scraped = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_data(as_text=True)
        assert 'yizhan_replica_healthy{replica="replica 1"} 0.0' in scraped


def test_the_standby_stopped_mid_load_costs_no_answer(pair_app, router):
    client = pair_app.test_client()
    expected = nearest_ids(client)
    answers: list[tuple[int, list | None]] = []
    stop = threading.Event()

    def load():
        mine = pair_app.test_client()
        while not stop.is_set():
            answer = mine.get(NEAREST)
            body = answer.get_json()
            answers.append((answer.status_code, [r["name"] for r in body["results"]] if answer.status_code == 200
                            else body))

    firing = threading.Thread(target=load)
    firing.start()
    try:
        wait_until(lambda: len(answers) >= 20, "load on the standby")
        pg_ctlcluster(STANDBY, "stop", "-m", "immediate")
        wait_until(lambda: not router.replicas[0].up, "the standby found down")
        served = len(answers)
        wait_until(lambda: len(answers) >= served + 50, "answers while the standby is down")
        assert read_on(router)[0] == PRIMARY_PORT
        pg_ctlcluster(STANDBY, "start")
        wait_until(lambda: read_on(router)[0] == STANDBY_PORT, "reads back on the restarted standby")
        served = len(answers)
        wait_until(lambda: len(answers) >= served + 20, "answers from the restarted standby")
    finally:
        stop.set()
        firing.join(timeout=60)
    wrong = [a for a in answers if a != (200, expected)]
    assert not wrong, wrong[:3]
    assert len(answers) >= 90


def test_with_the_primary_down_reads_go_on_and_with_nothing_left_the_documented_503(pair_app, router, admin_token):
    client = pair_app.test_client()
    expected = nearest_ids(client)
    try:
        pg_ctlcluster(PRIMARY, "stop", "-m", "fast")
        assert nearest_ids(client) == expected  # the standby serves the finder alone
        staff_read = client.get("/api/v1/ops/work-orders", headers={"Authorization": f"Bearer {admin_token}"})
        assert staff_read.status_code == 503  # staff read the primary only
        pg_ctlcluster(STANDBY, "stop", "-m", "immediate")
        answer = client.get(NEAREST)
        assert answer.status_code == 503
        assert answer.get_json()["error"]["code"] == "unavailable" and answer.headers["Retry-After"] == "5"
        pg_ctlcluster(PRIMARY, "start")
        assert nearest_ids(client) == expected  # the primary alone
    finally:
        ensure_pair()  # both up and streaming again, whatever failed above
        # The restarted primary dropped the pooled connections: start the other tests afresh (the
        # app itself answers one 503 per dead connection and reconnects; see engine_options).
        router.dispose()
        with pair_app.app_context():
            db.engine.dispose()
    wait_until(lambda: read_on(router)[0] == STANDBY_PORT, "reads back on the standby")


# -- road graphs and snapshots ---------------------------------------------------------


def test_a_lagging_standby_and_the_primary_each_get_the_graph_of_their_own_token(pair_app, router, river_town_pbf):
    router.max_lag_s = 600
    store = pair_app.extensions["yizhan_store"]
    service.import_network(store, river_town_pbf, with_stations=False)
    wait_replayed()
    old = store.network_token("walk")
    cache = service.GraphCache()

    def graph(replicas_allowed: bool):
        token = router.begin_request(replicas_allowed)
        try:
            return cache.get(store, "walk")
        finally:
            router.end_request(token)

    on_standby = graph(True)
    assert on_standby[0] == old
    with replay_paused():
        service.import_network(store, river_town_pbf, with_stations=False)  # a new token, on the primary
        new = store.network_token("walk")
        assert new != old
        on_primary = graph(False)
        assert on_primary[0] == new and on_primary[1] is not on_standby[1]
        # Both snapshots in use: each request gets its own token's graph, and neither evicts the other.
        for _ in range(3):
            assert graph(True) == on_standby and graph(True)[1] is on_standby[1]
            assert graph(False)[1] is on_primary[1]


class _Snapshots:
    """A store whose reads are answered by the snapshot named next in ``reads`` ("old" or "new")."""

    def __init__(self):
        self.reads: list[str] = []
        self.loads = 0

    def network_token(self, mode):
        return self.reads.pop(0)

    def load_network(self, mode, with_graph=True):
        from app.stations.model import NetworkRecord

        self.loads += 1
        token = self.reads.pop(0)
        return NetworkRecord(mode, token, "test", 2, 1, 0.1, token.encode())


def test_the_graph_cache_files_each_graph_under_the_token_of_its_own_row(monkeypatch):
    monkeypatch.setattr(service.Graph, "from_bytes", staticmethod(lambda blob: ("graph of", blob)))
    cache, store = service.GraphCache(), _Snapshots()
    # The token read on the old snapshot, the graph on the new one (a reader that moved on):
    # the new graph is filed, and answered, under the new token, never under the old.
    store.reads = ["old", "new"]
    assert cache.get(store, "walk") == ("new", ("graph of", b"new"))
    store.reads = ["old", "old"]
    assert cache.get(store, "walk") == ("old", ("graph of", b"old"))
    assert store.loads == 2
    # Both kept: readers of either snapshot get their own graph without loading again.
    for snapshot in ("new", "old", "new", "old"):
        store.reads = [snapshot]
        assert cache.get(store, "walk") == (snapshot, ("graph of", snapshot.encode()))
    assert store.loads == 2
    # A third network: the longest kept goes, the two latest stay.
    store.reads = ["newer", "newer"]
    assert cache.get(store, "walk")[0] == "newer"
    store.reads = ["old"]
    assert cache.get(store, "walk")[0] == "old" and store.loads == 3
    store.reads = ["new", "new"]
    assert cache.get(store, "walk")[0] == "new" and store.loads == 4


def test_server_gone_tells_a_lost_server_from_a_bad_or_slow_statement():
    import psycopg
    from sqlalchemy.exc import OperationalError, ProgrammingError

    refused = psycopg.OperationalError("connection refused")
    assert server_gone(OperationalError("SELECT 1", {}, refused))
    assert server_gone(refused)
    assert not server_gone(ProgrammingError("SELECT nope", {}, psycopg.errors.UndefinedTable("no such table")))
    assert not server_gone(OperationalError("SELECT pg_sleep(99)", {}, psycopg.errors.QueryCanceled("timeout")))
    assert server_gone(OperationalError("SELECT 1", {}, psycopg.errors.AdminShutdown("terminating")))


def test_replicas_are_checked_at_most_once_a_second_per_process_not_per_request(router, monkeypatch):
    now = [1000.0]
    checks = []
    real_check = router._check
    monkeypatch.setattr(router, "_clock", lambda: now[0])
    monkeypatch.setattr(router, "_check", lambda server: (checks.append(server.name), real_check(server)))
    router._checked_at = None
    for _ in range(20):
        assert read_on(router)[0] == STANDBY_PORT
    assert checks == ["replica 1"]
    now[0] += router.check_every_s
    for _ in range(20):
        read_on(router)
    assert checks == ["replica 1", "replica 1"]


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_REPLICA_URLS", " postgresql://r1/db , postgres://r2/db,")
    assert replica_urls() == ["postgresql+psycopg://r1/db", "postgresql+psycopg://r2/db"]
    monkeypatch.setenv("DATABASE_REPLICA_URLS", "sqlite:///x.sqlite3")
    with pytest.raises(ValueError, match="postgresql"):
        replica_urls()
    monkeypatch.delenv("DATABASE_REPLICA_URLS")
    assert replica_urls() == []
    monkeypatch.setenv("YIZHAN_DB_PGBOUNCER", "maybe")
    with pytest.raises(ValueError, match="YIZHAN_DB_PGBOUNCER"):
        from_environment(tempfile.mkdtemp())
    monkeypatch.setenv("YIZHAN_DB_PGBOUNCER", "1")
    monkeypatch.setenv("YIZHAN_REPLICA_MAX_LAG_S", "0")
    with pytest.raises(ValueError, match="YIZHAN_REPLICA_MAX_LAG_S"):
        from_environment(tempfile.mkdtemp())
    monkeypatch.setenv("YIZHAN_REPLICA_MAX_LAG_S", "2.5")
    settings = from_environment(tempfile.mkdtemp())
    assert settings["YIZHAN_DB_PGBOUNCER"] is True and settings["YIZHAN_REPLICA_MAX_LAG_S"] == 2.5
    direct = engine_options("postgresql+psycopg://h/db")["connect_args"]
    pooled = engine_options("postgresql+psycopg://h/db", pgbouncer=True)["connect_args"]
    assert "statement_timeout" in direct["options"] and direct["prepare_threshold"] > 10**9
    assert "options" not in pooled and pooled["prepare_threshold"] is None


def test_replica_urls_need_postgis():
    with pytest.raises(ValueError, match="SQLite has no replicas"):
        create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tempfile.mkdtemp()}/x.sqlite3",
                    "DATABASE_REPLICA_URLS": [url(STANDBY_PORT, "x")], "TESTING": True})
