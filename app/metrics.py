"""Prometheus metrics at ``/metrics`` (prometheus-client), for the operators, never the public.

Who may scrape: a request from a network in ``YIZHAN_METRICS_ALLOW`` (comma list of addresses or
CIDRs; default loopback, ``127.0.0.1/32,::1/128``; empty: none), or one bearing
``Authorization: Bearer <YIZHAN_METRICS_TOKEN>`` (only its SHA-256 is kept, compared in constant
time; a wrong token is refused even from an allowed network). Everyone else gets the site's 404. A
request that came through a proxy the app does not count (``X-Forwarded-For`` or ``Forwarded``
with ``YIZHAN_PROXY_HOPS`` = 0) is never let in by its address — the proxy's own loopback address
would otherwise let the whole internet in.

Under gunicorn, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory (emptied at each start) for
every worker, and call ``child_exit`` from gunicorn's hook of that name (deploy/gunicorn.conf.py:
``from app.metrics import child_exit``): each worker writes its counts to files there and a scrape,
whichever worker answers it, sums them. Without the variable (one process: ``flask run``, tests)
each app keeps its own registry.

What is measured:

- per request (app.logs calls ``observe``): ``yizhan_http_request_duration_seconds`` (histogram)
  by ``endpoint`` (the Flask endpoint, ``unmatched`` for unknown paths: never the raw path, so the
  label set stays bounded), ``method`` (the standard ones, else ``other``) and ``status``;
- the connection pools (SQLAlchemy pool events): ``yizhan_db_pool_checked_out`` and
  ``yizhan_db_pool_size`` by ``pool``, summed over the live workers;
- at scrape time, from the database (cached ``SCRAPE_CACHE_S`` in the scraping process): open and
  overdue work orders, SLA breaches, operators' feed polls and live status freshness, sensor
  devices and their freshness; the sensor listeners' heartbeats (Redis, by MQTT client id: a
  listener gone quiet for LISTENER_TTL_S reads as down, one silent for a day is dropped); the
  replica router's status
  (``app.extensions["yizhan_replica_status"]``, as app.health reads it: dicts with ``name``,
  ``healthy`` and ``lag_s``).
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import threading
import time
from datetime import timedelta

from flask import Blueprint, Response, abort, current_app, request
from sqlalchemy import bindparam, event, text
from sqlalchemy.exc import SQLAlchemyError

from app.dbtime import from_db, to_db, utcnow
from app.health import replica_status
from app.ops.workflow import OPEN_STATES

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SCRAPE_CACHE_S = 5.0
DEFAULT_ALLOW = "127.0.0.1/32,::1/128"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Request latency buckets (seconds): nearest is served in milliseconds, the service circle in tenths.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LISTENER_KEY = "yizhan:sensor-listeners"  # a hash: MQTT client id -> its last heartbeat (JSON)
LISTENER_TTL_S = 60  # a heartbeat older than this is a listener gone
LISTENER_FORGET_S = 24 * 3600  # a listener silent this long (a renamed or retired one) is dropped

bp = Blueprint("metrics", __name__)


# -- gunicorn --------------------------------------------------------------------------------


def child_exit(server, worker) -> None:
    """gunicorn's ``child_exit`` hook: a dead worker's live gauges stop counting. Nothing to do
    outside multi-process mode (no PROMETHEUS_MULTIPROC_DIR): the library would raise there, and
    an exception in this hook stops gunicorn's master."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# -- the sensor listener's heartbeat -----------------------------------------------------------


def _redis(url: str):
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)


def listener_heartbeat(redis_url: str | None, client_id: str):
    """For ``Listener(heartbeat=…)``: its state in Redis under its MQTT client id. None without Redis."""
    if not redis_url:
        return None
    client = _redis(redis_url)
    return lambda state: client.hset(LISTENER_KEY, client_id, json.dumps(state))


# -- scrape-time figures ---------------------------------------------------------------------------


_WORK_ORDERS = text(
    "SELECT"
    " coalesce(sum(CASE WHEN state IN :open THEN 1 ELSE 0 END), 0) AS open,"
    " coalesce(sum(CASE WHEN state IN :open AND (resolution_due_at < :now"
    "   OR (responded_at IS NULL AND response_due_at < :now)) THEN 1 ELSE 0 END), 0) AS overdue,"
    " count(response_breached_at) AS response_breaches, count(resolution_breached_at) AS resolution_breaches"
    " FROM work_order"
).bindparams(bindparam("open", expanding=True))
_FEEDS = text("SELECT o.code, f.last_polled_at, f.failures FROM operator_feed f"
              " JOIN organisation o ON o.id = f.organisation_id")
_LIVE = text("SELECT max(live_reported_at) AS newest,"
             " coalesce(sum(CASE WHEN live_reported_at >= :fresh THEN 1 ELSE 0 END), 0) AS fresh"
             " FROM station WHERE live_reported_at IS NOT NULL")
_SENSORS = text("SELECT count(*) AS devices, count(offline_since) AS offline, max(last_seen_at) AS newest"
                " FROM sensor_device")


def _age(now, then) -> float | None:
    then = from_db(then)
    return max(0.0, (now - then).total_seconds()) if then else None


class Figures:
    """The collector of scrape-time gauges (cheap aggregate queries), cached SCRAPE_CACHE_S."""

    def __init__(self, app):
        self._app = app
        self._lock = threading.Lock()
        self._cached: tuple[float, list] | None = None

    def describe(self):
        return []  # computed at scrape time only; nothing to check at registration

    def collect(self):
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] >= SCRAPE_CACHE_S:
                self._cached = (time.monotonic(), self._families())
            return list(self._cached[1])

    def _families(self) -> list:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families = []

        def gauge(name, doc, value, labels=None, label_values=()):
            family = GaugeMetricFamily(name, doc, labels=labels)
            family.add_metric(list(label_values), value)
            families.append(family)

        now = utcnow()
        app = self._app
        try:
            with app.extensions["yizhan_store"].reading() as conn:
                dialect = conn.dialect.name
                wo = conn.execute(_WORK_ORDERS, {"open": sorted(OPEN_STATES), "now": to_db(now, dialect)}).one()
                feeds = conn.execute(_FEEDS).all()
                fresh_since = now - timedelta(seconds=app.config["YIZHAN_LIVE_STALE_AFTER_S"])
                live = conn.execute(_LIVE, {"fresh": to_db(fresh_since, dialect)}).one()
                sensors = conn.execute(_SENSORS).one()
        except SQLAlchemyError as exc:
            app.logger.error("metrics: database figures unavailable (%s)", type(exc).__name__)
            gauge("yizhan_metrics_database_up", "1 when the scrape could read the database figures.", 0)
        else:
            gauge("yizhan_metrics_database_up", "1 when the scrape could read the database figures.", 1)
            gauge("yizhan_work_orders_open", "Work orders in an open state.", wo.open)
            gauge("yizhan_work_orders_overdue", "Open work orders past their response or resolution due time.",
                  wo.overdue)
            breaches = CounterMetricFamily("yizhan_sla_breaches", "Work orders whose SLA limit was breached.",
                                           labels=["limit"])
            breaches.add_metric(["response"], wo.response_breaches)
            breaches.add_metric(["resolution"], wo.resolution_breaches)
            families.append(breaches)
            polled = GaugeMetricFamily("yizhan_feed_last_poll_age_seconds",
                                       "Seconds since an operator's GBFS feed was last polled.", labels=["operator"])
            failing = GaugeMetricFamily("yizhan_feed_failures", "Failed polls of an operator's feed in a row.",
                                        labels=["operator"])
            for code, last, failures in feeds:
                age = _age(now, last)
                if age is not None:
                    polled.add_metric([code], age)
                failing.add_metric([code], failures)
            families += [polled, failing]
            newest = _age(now, live.newest)
            if newest is not None:
                gauge("yizhan_live_status_newest_age_seconds", "Seconds since the newest operator live status.",
                      newest)
            gauge("yizhan_live_status_fresh_stations", "Stations whose live status is fresh.", live.fresh)
            gauge("yizhan_sensor_devices", "Registered sensor devices.", sensors.devices)
            gauge("yizhan_sensor_devices_offline", "Sensor devices marked offline.", sensors.offline)
            newest = _age(now, sensors.newest)
            if newest is not None:
                gauge("yizhan_sensor_last_reading_age_seconds", "Seconds since any sensor device was last heard.",
                      newest)
        families += self._listener(time.time())
        families += self._replicas()
        return families

    def _listener(self, now: float) -> list:
        """Each sensor listener's heartbeat, labelled by its MQTT client id; nothing at all when
        Redis cannot say (unknown is not down)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        url = self._app.config.get("REDIS_URL")
        if not url:
            return []
        try:
            redis = _redis(url)
            beats = {k.decode(): json.loads(v) for k, v in redis.hgetall(LISTENER_KEY).items()}
            gone = [k for k, state in beats.items() if now - state.get("at", 0) > LISTENER_FORGET_S]
            if gone:
                redis.hdel(LISTENER_KEY, *gone)
        except Exception as exc:  # Redis away, or a heartbeat that is not ours
            self._app.logger.warning("metrics: no listener heartbeat (%s)", type(exc).__name__)
            return []
        label = ["listener"]
        up = GaugeMetricFamily("yizhan_sensor_listener_up", "1 while the MQTT listener's heartbeat is current.",
                               labels=label)
        connected = GaugeMetricFamily("yizhan_sensor_listener_connected",
                                      "1 while the listener is subscribed at the broker.", labels=label)
        age = GaugeMetricFamily("yizhan_sensor_listener_heartbeat_age_seconds",
                                "Seconds since the listener's last heartbeat.", labels=label)
        counts = {name: CounterMetricFamily(f"yizhan_sensor_listener_{name}",
                                            f"Readings {name.replace('_', ' ')} since the listener started.",
                                            labels=label)
                  for name in ("applied", "duplicates", "rejected", "store_errors")}
        for client_id, state in sorted(beats.items()):
            if client_id in gone:
                continue
            seconds = max(0.0, now - state.get("at", 0))
            current = not state.get("stopped") and seconds <= LISTENER_TTL_S
            up.add_metric([client_id], 1 if current else 0)
            connected.add_metric([client_id], 1 if current and state.get("connected") else 0)
            age.add_metric([client_id], seconds)
            for name, family in counts.items():
                family.add_metric([client_id], state.get(name, 0))
        return [up, connected, age, *counts.values()]

    def _replicas(self) -> list:
        from prometheus_client.core import GaugeMetricFamily

        try:
            replicas = replica_status(self._app)
        except Exception as exc:
            self._app.logger.error("metrics: replica status hook failed (%s)", type(exc).__name__)
            return []
        if replicas is None:
            return []
        healthy = GaugeMetricFamily("yizhan_replica_healthy", "1 while a replica takes reads.", labels=["replica"])
        lag = GaugeMetricFamily("yizhan_replica_lag_seconds", "A replica's replay lag.", labels=["replica"])
        for replica in replicas:
            name = str(replica.get("name", "?"))
            healthy.add_metric([name], 1 if replica.get("healthy") else 0)
            if replica.get("lag_s") is not None:
                lag.add_metric([name], float(replica["lag_s"]))
        return [healthy, lag]


# -- the app's metrics -----------------------------------------------------------------------


class Metrics:
    def __init__(self, app):
        from prometheus_client import CollectorRegistry, Gauge, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # One process: this app's own registry. Several: the values live in the directory's files
        # and a scrape reads them all (a fresh registry each time, as prometheus-client prescribes).
        self.registry = CollectorRegistry()
        own = None if self.multiprocess else self.registry
        self.requests = Histogram("yizhan_http_request_duration_seconds", "Time to answer a request.",
                                  ("endpoint", "method", "status"), buckets=BUCKETS, registry=own)
        self.pool_checked_out = Gauge("yizhan_db_pool_checked_out", "Database connections in use.", ("pool",),
                                      multiprocess_mode="livesum", registry=own)
        self.pool_size = Gauge("yizhan_db_pool_size", "Database connections each pool keeps.", ("pool",),
                               multiprocess_mode="livesum", registry=own)
        self.figures = Figures(app)
        if not self.multiprocess:
            self.registry.register(self.figures)

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method if method in METHODS else "other", str(status)).observe(seconds)

    def watch_pool(self, name: str, engine) -> None:
        size = getattr(engine.pool, "size", None)
        if callable(size):
            self.pool_size.labels(name).set(size())
        in_use = self.pool_checked_out.labels(name)
        event.listen(engine, "checkout", lambda *_: in_use.inc())
        event.listen(engine, "checkin", lambda *_: in_use.dec())

    def exposition(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(self.figures)
        return generate_latest(registry)


# -- who may scrape ----------------------------------------------------------------------------


def allowed_networks(raw: str) -> tuple:
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError(f"YIZHAN_METRICS_ALLOW must be addresses or CIDRs separated by commas: {exc}") from None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _may_scrape() -> bool:
    cfg = current_app.config
    kept = cfg.get("YIZHAN_METRICS_TOKEN_SHA256")
    given = request.headers.get("Authorization", "")
    if given:
        scheme, _, token = given.partition(" ")
        return bool(kept) and scheme.lower() == "bearer" and hmac.compare_digest(token_digest(token.strip()), kept)
    if not cfg["YIZHAN_PROXY_HOPS"] and ("X-Forwarded-For" in request.headers or "Forwarded" in request.headers):
        return False  # through a proxy we do not count: the address is the proxy's, not the client's
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in current_app.extensions["yizhan_metrics_allow"])


@bp.get("/metrics")
def metrics():
    if not _may_scrape():
        abort(404)
    from prometheus_client import CONTENT_TYPE_LATEST

    response = Response(current_app.extensions["yizhan_metrics"].exposition(), mimetype=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app, engines: dict) -> None:
    """``engines``: name -> engine, each pool watched once (a pool shared by two names counted once)."""
    app.extensions["yizhan_metrics_allow"] = allowed_networks(app.config.get("YIZHAN_METRICS_ALLOW", DEFAULT_ALLOW))
    found = Metrics(app)
    seen = set()
    for name, engine in engines.items():
        if id(engine.pool) not in seen:
            seen.add(id(engine.pool))
            found.watch_pool(name, engine)
    app.extensions["yizhan_metrics"] = found
    app.extensions["yizhan_request_observers"].append(found.observe)
    app.register_blueprint(bp)
