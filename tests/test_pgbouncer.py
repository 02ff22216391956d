"""The app through PgBouncer in transaction pooling mode (Debian's 1.18), in front of the primary and the
standby of tests/replica_cluster.py, and why server-side prepared statements are off there."""
from __future__ import annotations

import tempfile

import psycopg
import pytest
from flask_migrate import upgrade

from app import create_app
from app.config import engine_options
from app.dbtime import utcnow
from app.extensions import db
from app.stations.model import NearestQuery
from app.stations.postgis import _nearest_sql
from tests import staff_world
from tests.conftest import _postgis_url
from tests.replica_cluster import PRIMARY_PORT, STANDBY_PORT, ensure_pair, fresh_database, pgbouncer, url, wait_replayed

HERE = (27.8300, 113.1500)


@pytest.fixture(scope="module")
def database():
    ensure_pair()
    name = fresh_database(_postgis_url(), "pgbouncer")
    # Migrations run on the primary itself, not through the pooler (README: Replicas and pooling).
    direct = create_app({"SQLALCHEMY_DATABASE_URI": url(PRIMARY_PORT, name), "TESTING": True})
    with direct.app_context():
        upgrade()
        db.engine.dispose()
    wait_replayed()
    return name


@pytest.fixture(scope="module")
def pooled_app(database):
    with pgbouncer(PRIMARY_PORT) as primary, pgbouncer(STANDBY_PORT) as standby:
        app = create_app({
            "SQLALCHEMY_DATABASE_URI": url(primary, database), "DATABASE_REPLICA_URLS": [url(standby, database)],
            "YIZHAN_DB_PGBOUNCER": True, "TESTING": True,
            "YIZHAN_UPLOAD_DIR": tempfile.mkdtemp(prefix="yizhan-pgbouncer-uploads-"),
        })
        yield app
        app.extensions["yizhan_read_router"].dispose()
        with app.app_context():
            db.engine.dispose()


def test_nearest_a_report_and_a_staff_write_through_pgbouncer_on_both_servers(pooled_app):
    store, ops = pooled_app.extensions["yizhan_store"], pooled_app.extensions["yizhan_ops"]
    world = staff_world.build(store, ops)  # stations, accounts, tokens and three reports, all written through it
    wait_replayed()
    router = pooled_app.extensions["yizhan_read_router"]
    token = router.begin_request(True)
    try:
        with router.connect() as conn:  # PgBouncer's port, the standby behind it
            assert conn.exec_driver_sql("SELECT inet_server_port(), pg_is_in_recovery()").one() == (STANDBY_PORT, True)
            # The statement timeout comes from the pooler's connect_query (no "options" through it).
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "10s"
    finally:
        router.end_request(token)
    client = pooled_app.test_client()
    for _ in range(12):  # past psycopg's prepare threshold, over several pooled connections
        nearest = client.get(f"/api/v1/stations/nearest?lat={HERE[0]}&lng={HERE[1]}&limit=3")
        assert nearest.status_code == 200
        assert [r["name"] for r in nearest.get_json()["results"]][0] == "建宁驿站 A1"
    a1 = world.station["a1"]
    closed = client.patch(f"/api/v1/ops/stations/{a1}/status", headers=world.bearer(staff_world.ADMIN),
                          json={"status": "temporarily_closed", "reason": "维修中"})
    assert closed.status_code == 200, closed.get_data(as_text=True)
    assert client.get(f"/api/v1/stations/{a1}").get_json()["open_state"] == "closed"
    orders = client.get("/api/v1/ops/work-orders", headers=world.bearer(staff_world.ADMIN))
    assert orders.status_code == 200 and orders.get_json()["count"] == 3


def _nearest_statement():
    """The store's hot statement, which it prepares explicitly (app/stations/postgis.py)."""
    statement, params = _nearest_sql(NearestQuery(*HERE, at=utcnow(), limit=5))
    return statement, {**params, "n": 12}


def _clients(port: int, database: str, pgbouncer_mode: bool, n: int = 3):
    args = dict(engine_options("postgresql://x", pgbouncer=pgbouncer_mode)["connect_args"])
    args.pop("options", None)  # PgBouncer refuses it at start-up either way
    return [psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=database, autocommit=True, **args)
            for _ in range(n)]


def test_the_same_statement_many_times_on_several_connections_through_one_server_connection(database):
    """One server connection behind the pooler (pool size 1) serves every client's transactions, so a
    statement two clients prepared would meet itself there. With the PgBouncer setting nothing is
    prepared, and 3 clients x 8 runs of the store's nearest statement (prepare=True, as the store
    asks) all answer."""
    statement, params = _nearest_statement()
    with pgbouncer(PRIMARY_PORT, pool_size=1) as port:
        clients = _clients(port, database, pgbouncer_mode=True)
        try:
            for _ in range(8):
                for conn in clients:
                    conn.execute(statement, params, prepare=True).fetchall()
        finally:
            for conn in clients:
                conn.close()


def test_without_the_setting_prepared_statements_collide_behind_the_pooler(database):
    """What YIZHAN_DB_PGBOUNCER prevents, shown deterministically: two clients behind one server
    connection both prepare their first statement as "_pg3_0", and the second finds it there."""
    statement, params = _nearest_statement()
    with pgbouncer(PRIMARY_PORT, pool_size=1) as port:
        first, second = _clients(port, database, pgbouncer_mode=False, n=2)
        try:
            first.execute(statement, params, prepare=True).fetchall()
            with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
                second.execute(statement, params, prepare=True).fetchall()
        finally:
            first.close()
            second.close()
