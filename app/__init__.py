"""Yizhan (驿站): find the nearest public toilet, rest station, water point or battery swap."""
from __future__ import annotations

import functools
import os

from flask import Flask
from sqlalchemy import create_engine

from app.config import engine_options, from_environment
from app.extensions import compress, db, migrate

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(config: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=os.path.join(PROJECT_ROOT, "instance"),
        static_folder=os.path.join(PROJECT_ROOT, "static"),
        static_url_path="/static",
    )
    app.config.from_mapping(from_environment(app.instance_path))
    if config:
        app.config.update(config)
    from app import logs

    logs.configure(app)  # before anything logs: JSON lines with the request id
    logs.init_app(app)  # first hooks: the request id and the start time before anything else runs
    # Pool and timeouts follow the database finally chosen; explicit options win.
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        **engine_options(app.config["SQLALCHEMY_DATABASE_URI"], pgbouncer=app.config["YIZHAN_DB_PGBOUNCER"]),
        **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
    }
    app.json.sort_keys = False  # keep fields in the order the serializer writes them
    app.json.ensure_ascii = False  # Chinese names as UTF-8: readable and half the bytes
    os.makedirs(app.instance_path, exist_ok=True)
    if app.config["YIZHAN_PROXY_HOPS"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["YIZHAN_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    db.init_app(app)
    compress.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(PROJECT_ROOT, "migrations"))

    from app.network.service import GraphCache
    from app.stations.backends import store_for
    from app.stations.sqlite import configure_engine, read_only

    router = None
    with app.app_context():
        engine = db.engine
        engines = {"primary": engine}  # the pools /metrics watches
        if engine.dialect.name == "sqlite":
            if app.config["DATABASE_REPLICA_URLS"]:
                raise ValueError("DATABASE_REPLICA_URLS needs a PostgreSQL DATABASE_URL (SQLite has no replicas)")
            configure_engine(engine, mmap_mb=app.config["YIZHAN_SQLITE_MMAP_MB"])
            reader = read_only(engine)
        else:
            # Reads run without BEGIN/COMMIT round trips, on their own pool of autocommit
            # connections (so the hot path can check them out raw).
            reader = create_engine(engine.url, isolation_level="AUTOCOMMIT",
                                   **app.config["SQLALCHEMY_ENGINE_OPTIONS"])
            engines["reader"] = reader
            if app.config["DATABASE_REPLICA_URLS"]:
                from app.replicas import ReadRouter

                replicas = [create_engine(url, isolation_level="AUTOCOMMIT", **app.config["SQLALCHEMY_ENGINE_OPTIONS"])
                            for url in app.config["DATABASE_REPLICA_URLS"]]
                reader = router = ReadRouter(reader, replicas, writer=engine,
                                             max_lag_s=app.config["YIZHAN_REPLICA_MAX_LAG_S"])
                engines.update({server.name: server.engine for server in router.replicas})
                app.extensions["yizhan_replica_status"] = router.status  # for /readyz and /metrics
        app.extensions["yizhan_store"] = store_for(engine, reader)
    app.extensions["yizhan_read_router"] = router
    app.extensions["yizhan_graphs"] = GraphCache()
    app.extensions["yizhan_wechat"] = _wechat(app.config)

    from app import api, auth, cli, gbfs, health, metrics, open311, reporting, security, staff, web

    auth.init_app(app)  # first: it settles SECRET_KEY, which the tracking tokens are signed with
    app.extensions["yizhan_ops"] = ops_for(app, app.extensions["yizhan_store"])
    api.init_app(app)
    web.init_app(app)
    reporting.init_app(app)
    open311.init_app(app)
    gbfs.init_app(app)
    staff.init_app(app)
    health.init_app(app, os.path.join(PROJECT_ROOT, "migrations"))
    metrics.init_app(app, engines)
    security.init_app(app)  # every response's security headers, whichever blueprint answered
    cli.init_app(app)
    if router is not None:
        from app import replicas

        replicas.init_app(app, router)  # last: it wraps every view
    return app


def ops_for(app: Flask, stations):
    """The operations service over a station store (the app's, or a test's on its own connection)."""
    from app.ops.accounts import Accounts
    from app.ops.outbox import Outbox
    from app.ops.photos import PhotoStore
    from app.ops.service import Ops
    from app.web import absolute_url

    secret = app.config["SECRET_KEY"]
    return Ops(stations, Accounts(stations), Outbox(stations), PhotoStore(app.config["YIZHAN_UPLOAD_DIR"]),
               secret_key=secret.encode() if isinstance(secret, str) else secret,
               link=functools.partial(absolute_url, app=app),
               default_timezone=app.config["YIZHAN_TIMEZONE"])


def _wechat(config):
    """The JS-SDK signer, or None when WeChat is not configured."""
    from app.wechat import JsSdk, TicketCache, WeChatConfig

    if not (config["WECHAT_APP_ID"] and config["WECHAT_APP_SECRET"]):
        return None
    return JsSdk(
        WeChatConfig(config["WECHAT_APP_ID"], config["WECHAT_APP_SECRET"], config["WECHAT_API_BASE"]),
        TicketCache(config.get("REDIS_URL") or None),
    )
