"""``/healthz`` (the process answers) and ``/readyz`` (it can serve: the database answers, its schema
is the release's, the road graphs the store holds are in this worker's memory), for a load balancer
polling every second.

``/readyz`` runs its checks at most once a second per process (the answer is reused meanwhile, and
concurrent polls wait for the one running), so a poll costs two small queries a second at most.
Replicas are reported, never a reason to be unready (reads fall back to the primary): their status
comes from the optional hook ``app.extensions["yizhan_replica_status"]``, a callable returning a
list of dicts, which whoever routes reads to replicas provides; absent, ``replicas`` is left out.

Neither is rate-limited (no limit applies unless a route asks) and both say ``no-store``: a cached
"ready" would hide the outage it exists to show.
"""
from __future__ import annotations

import os
import threading
import time

from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.network.modes import MODE_NAMES
from app.stations.sqlite import read_only

bp = Blueprint("health", __name__)
CACHE_S = 1.0  # how long one round of checks answers for


def schema_head(migrations_dir: str) -> str:
    """The release's schema version: the migrations' head (read once, at start)."""
    heads = ScriptDirectory(migrations_dir).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the migrations in {migrations_dir} have {len(heads)} heads: {heads}")
    return heads[0]


def replica_status(app) -> list[dict] | None:
    """The replica router's view (a list of dicts), or None without one. Shared with app.metrics."""
    hook = app.extensions.get("yizhan_replica_status")
    return list(hook()) if hook is not None else None


class Readiness:
    """The checks, and their last answer (reused for CACHE_S)."""

    def __init__(self, head: str):
        self.head = head
        self._lock = threading.Lock()
        self._answer: tuple[float, int, dict] | None = None

    def answer(self, app) -> tuple[int, dict]:
        with self._lock:
            now = time.monotonic()
            if self._answer is None or now - self._answer[0] >= CACHE_S:
                status, body = self._check(app)
                self._answer = (time.monotonic(), status, body)
            return self._answer[1], self._answer[2]

    def _check(self, app) -> tuple[int, dict]:
        checks = {"database": self._database(), "network": self._network(app)}
        checks["schema"] = {"ok": checks["database"].get("schema") == self.head,
                            "current": checks["database"].pop("schema", None), "head": self.head}
        failing = sorted(name for name, check in checks.items() if not check["ok"])
        body = {"status": "not_ready" if failing else "ready", "failing": failing, "checks": checks}
        try:
            replicas = replica_status(app)
        except Exception as exc:  # the router's problem must not make the primary unready
            app.logger.error("replica status hook failed: %s", exc)
            replicas = [{"error": type(exc).__name__}]
        if replicas is not None:
            body["replicas"] = replicas
        return (503 if failing else 200), body

    def _database(self) -> dict:
        """The primary (where writes go), asked without a transaction: on SQLite a transaction
        would queue behind a writer's lock."""
        engine = db.engine
        if engine.dialect.name == "sqlite":
            engine = read_only(engine)
        started = time.perf_counter()
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                try:
                    version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                except SQLAlchemyError:
                    version = None  # reachable, but no schema yet
        except SQLAlchemyError as exc:
            return {"ok": False, "error": type(exc).__name__}
        return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1), "schema": version}

    def _network(self, app) -> dict:
        """Per mode: ``none`` (the store holds no road network: the service circle uses radii),
        ``loaded`` (in this worker's memory), or ``failed``. A stored graph not yet in memory is
        loaded here, so a worker is ready only once it can answer the service circle by road."""
        store, graphs = app.extensions["yizhan_store"], app.extensions["yizhan_graphs"]
        modes = {}
        for mode in MODE_NAMES:
            try:
                if store.network_token(mode) is None:
                    modes[mode] = "none"
                else:
                    modes[mode] = "loaded" if graphs.get(store, mode) is not None else "failed"
            except SQLAlchemyError:
                modes[mode] = "failed"
        return {"ok": "failed" not in modes.values(), **modes}


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
def healthz():
    return _no_store(jsonify({"status": "ok", "pid": os.getpid()}))


@bp.get("/readyz")
def readyz():
    status, body = current_app.extensions["yizhan_readiness"].answer(current_app)
    response = jsonify(body)
    response.status_code = status
    return _no_store(response)


def init_app(app, migrations_dir: str) -> None:
    from app.auth import limiter

    app.extensions["yizhan_readiness"] = Readiness(schema_head(migrations_dir))
    limiter.exempt(bp)  # a load balancer polls every second, from one address
    app.register_blueprint(bp)
