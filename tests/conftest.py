"""Shared fixtures. Every store test runs on both backends, each test inside a
transaction that is rolled back afterwards (the GeoAlchemy2 test-suite pattern).

PostGIS is not optional: if TEST_DATABASE_URL (default: the local cluster's
``yizhan_test`` database) cannot be reached, the PostGIS tests error out loudly.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager

import pytest
from flask_migrate import upgrade
from sqlalchemy import create_engine

from app import create_app, ops_for
from app.auth import limiter
from app.config import normalise_database_url
from app.extensions import db
from app.stations.backends import drop_all_tables, store_for
from tests.webhook_standin import webhook_standin  # noqa: F401 - a fixture, shared by the ops tests

BACKENDS = ("sqlite", "postgis")
DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/yizhan_test"


def _postgis_url() -> str:
    return normalise_database_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL))


def _reset_postgis(url: str) -> None:
    """Start from an empty schema so the migration itself is tested every run."""
    engine = create_engine(url)
    try:
        drop_all_tables(engine)
    except Exception as exc:  # make the cause obvious, never skip
        raise RuntimeError(
            f"PostGIS test database unreachable at {url!r}: {exc}. "
            "Run `make test` (it starts PostgreSQL and installs PostGIS), or set TEST_DATABASE_URL."
        ) from exc
    finally:
        engine.dispose()


# The process-wide rate limiter's state as the session apps configured it (see ``app``).
_LIMITER_STATE: dict = {}


@pytest.fixture(scope="session")
def apps():
    """One migrated app per backend."""
    tmp = tempfile.mkdtemp(prefix="yizhan-test-")
    urls = {"sqlite": f"sqlite:///{tmp}/test.sqlite3", "postgis": _postgis_url()}
    _reset_postgis(urls["postgis"])
    made = {}
    for name, url in urls.items():
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True,
                          "YIZHAN_UPLOAD_DIR": os.path.join(tmp, "uploads-" + name),
                          # The suite shares two cores with PostgreSQL, Chromium and gunicorn: a Redis
                          # answer later than production's 0.5 s must not switch the limiter to memory.
                          "RATELIMIT_STORAGE_OPTIONS": {"socket_connect_timeout": 5, "socket_timeout": 5}})
        with app.app_context():
            upgrade()
        made[name] = app
    _LIMITER_STATE.update(vars(limiter))
    yield made
    for app in made.values():
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def app(apps, backend):
    # Flask-Limiter's Limiter is one object per process and every create_app re-initialises it:
    # a test that made an app of its own (memory:// storage, say) would leave its storage to
    # every later test, and a rate-limit test counting in it could lose counts (the in-memory
    # store expires entries from a timer thread). Each test starts from the session apps' state.
    vars(limiter).update(_LIMITER_STATE, _storage_dead=False)
    return apps[backend]


@pytest.fixture
def connection(app):
    """A connection in an open transaction, rolled back after the test."""
    with app.app_context():
        engine = db.engine
    conn = engine.connect()
    outer = conn.begin()
    try:
        yield conn
    finally:
        outer.rollback()
        conn.close()


@pytest.fixture
def store(connection):
    return store_for(connection)


@contextmanager
def _serving(app, store):
    """Point the app at this test's store, so requests see (only) this test's transaction."""
    original = app.extensions["yizhan_store"], app.extensions["yizhan_ops"]
    app.extensions["yizhan_store"] = store
    app.extensions["yizhan_ops"] = ops_for(app, store)
    try:
        yield
    finally:
        app.extensions["yizhan_store"], app.extensions["yizhan_ops"] = original


@pytest.fixture
def ops(app, store):
    """The operations service on this test's connection (rolled back with it). No app context is
    held open: one would be shared by every request of the test (and Flask-WTF keeps its CSRF
    token in it, so two clients would get the same one)."""
    return ops_for(app, store)


@pytest.fixture
def client(app, store):
    with _serving(app, store):
        yield app.test_client()


@pytest.fixture
def cli(app, store):
    with _serving(app, store):
        yield app.test_cli_runner()


@pytest.fixture(scope="session")
def river_town_pbf(tmp_path_factory):
    """The hand-checkable synthetic town of tests/osm_fixtures.py, as a real .osm.pbf."""
    from tests.osm_fixtures import write_river_town

    return write_river_town(tmp_path_factory.mktemp("osm") / "river_town.osm.pbf")
