"""/healthz and /readyz on both stores: ready with the schema at head, road graphs loaded when the
store holds them, the replica hook reported; 503 naming the failing check when the database is
unreachable or behind the release's schema; cached for a second; never stored by proxies."""
import os
import subprocess
import sys
import textwrap

import pytest
from flask_migrate import upgrade

from app import PROJECT_ROOT, create_app
from app.health import Readiness, schema_head
from app.network import service

HEAD = schema_head(os.path.join(PROJECT_ROOT, "migrations"))


@pytest.fixture
def fresh(app, monkeypatch):
    """A readiness of its own: the shared app's cached answer belongs to another test."""
    monkeypatch.setitem(app.extensions, "yizhan_readiness", Readiness(HEAD))


def test_head_is_the_last_migration():
    assert HEAD == sorted(os.listdir(os.path.join(PROJECT_ROOT, "migrations", "versions")))[-1].removesuffix(".py")


def test_healthz_needs_no_database(tmp_path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://nobody@127.0.0.1:1/none", "TESTING": True})
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.get_json()["status"] == "ok"
    assert response.headers["Cache-Control"] == "no-store"


def test_ready_on_a_migrated_store_without_a_road_network(client, fresh):
    response = client.get("/readyz")
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["status"] == "ready" and body["failing"] == []
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["schema"] == {"ok": True, "current": HEAD, "head": HEAD}
    assert body["checks"]["network"] == {"ok": True, "walk": "none", "ebike": "none"}
    assert "replicas" not in body  # no replica router installed
    assert response.headers["Cache-Control"] == "no-store"


def test_a_stored_road_network_is_loaded_before_ready(app, client, store, fresh, river_town_pbf):
    service.import_network(store, str(river_town_pbf))
    app.extensions["yizhan_graphs"] = service.GraphCache()  # this worker has loaded nothing yet
    body = client.get("/readyz").get_json()
    assert body["status"] == "ready"
    assert body["checks"]["network"] == {"ok": True, "walk": "loaded", "ebike": "loaded"}
    assert app.extensions["yizhan_graphs"].get(store, "walk") is not None


def test_a_graph_that_cannot_be_loaded_is_not_ready(app, client, store, fresh, river_town_pbf, monkeypatch):
    service.import_network(store, str(river_town_pbf))

    class Broken(service.GraphCache):
        def get(self, store, mode):
            return None

    monkeypatch.setitem(app.extensions, "yizhan_graphs", Broken())
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["failing"] == ["network"]


def test_the_replica_hook_is_reported_and_never_makes_it_unready(app, client, fresh, monkeypatch):
    replicas = [{"name": "standby1", "healthy": False, "lag_s": None}, {"name": "standby2", "healthy": True, "lag_s": 0.4}]
    monkeypatch.setitem(app.extensions, "yizhan_replica_status", lambda: replicas)
    response = client.get("/readyz")
    assert response.status_code == 200 and response.get_json()["replicas"] == replicas


def test_answers_are_reused_for_a_second(app, client, fresh, monkeypatch):
    calls = []
    monkeypatch.setitem(app.extensions, "yizhan_replica_status", lambda: calls.append(1) or [])
    for _ in range(5):
        assert client.get("/readyz").status_code == 200
    assert len(calls) == 1  # one round of checks served all five polls


def test_an_unreachable_database_is_not_ready():
    app = create_app({"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://nobody@127.0.0.1:1/none", "TESTING": True})
    response = app.test_client().get("/readyz")
    body = response.get_json()
    assert response.status_code == 503
    assert body["status"] == "not_ready" and "database" in body["failing"] and "schema" in body["failing"]
    assert body["checks"]["database"] == {"ok": False, "error": "OperationalError"}
    assert "nobody" not in response.get_data(as_text=True)  # no connection string in the answer
    assert response.headers["Cache-Control"] == "no-store"


def test_a_schema_behind_the_release_is_not_ready(tmp_path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/old.sqlite3", "TESTING": True})
    with app.app_context():
        upgrade(revision="0009_sensors")
    body = app.test_client().get("/readyz").get_json()
    assert body["failing"] == ["schema"]
    assert body["checks"]["schema"] == {"ok": False, "current": "0009_sensors", "head": HEAD}


def test_an_empty_database_is_not_ready(tmp_path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/empty.sqlite3", "TESTING": True})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["schema"]["current"] is None


DEFAULT_LIMIT_PROBE = textwrap.dedent("""
    import sys
    from flask_migrate import upgrade
    from app import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{sys.argv[1]}/x.sqlite3", "TESTING": True,
                      "RATELIMIT_DEFAULT": "2 per minute", "RATELIMIT_STORAGE_URI": "memory://"})
    with app.app_context():
        upgrade()
    client = app.test_client()
    print([client.get(path).status_code for path in ("/healthz", "/readyz", "/api/v1/meta") for _ in range(4)])
""")


def test_polls_are_never_rate_limited_even_under_a_default_limit(tmp_path):
    """Run apart: a default limit is kept by the process-wide limiter, and would reach every later test."""
    done = subprocess.run([sys.executable, "-c", DEFAULT_LIMIT_PROBE, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    # Four polls of each pass; the same default stops the third request to any other route.
    assert done.stdout.strip().splitlines()[-1] == str([200] * 8 + [200, 200, 429, 429])
