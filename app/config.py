"""Configuration, read from the environment when the app is created."""
from __future__ import annotations

import hashlib
import os
from datetime import timedelta

from app.network.modes import MAX_SPEED_KMH, MIN_SPEED_KMH, MODES
from app.numbers import is_plain_integer, is_plain_number
from app.stations.live import DEFAULT_STALE_AFTER_S
from app.stations.model import DEFAULT_TIMEZONE


def normalise_database_url(url: str) -> str:
    """Accept plain ``postgresql://`` (or Heroku-style ``postgres://``) URLs; we use psycopg 3."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    if url.startswith(("postgresql+psycopg://", "sqlite://")):
        return url
    raise ValueError(f"DATABASE_URL must be sqlite:///path or postgresql://…, got {url!r}")


def _speed(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a speed in km/h, got {raw!r}") from None
    if not MIN_SPEED_KMH <= value <= MAX_SPEED_KMH:
        raise ValueError(f"{name} must be between {MIN_SPEED_KMH:g} and {MAX_SPEED_KMH:g} km/h, got {value}")
    return value


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        value = float(raw) if raw is not None else default
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= 600:
        raise ValueError(f"{name} must be between 0 and 600 seconds, got {value}")
    return value


def _whole(name: str, default: int, low: int, high: int, unit: str) -> int:
    raw = os.environ.get(name)
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        raise ValueError(f"{name} must be a whole number of {unit}, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high} {unit}, got {value}")
    return value


# The page's zoom levels a city can be opened at (3: a continent, 19: a doorway).
MIN_START_ZOOM, MAX_START_ZOOM = 3, 19
DEFAULT_START_ZOOM = 13  # a Chinese city's centre fills a phone's map at 13


def default_view() -> tuple[tuple[float, float] | None, int | None]:
    """YIZHAN_DEFAULT_CENTER ("lat,lng", WGS-84) and YIZHAN_DEFAULT_ZOOM: where the page opens
    when it has no position. Both unset: (None, None), and the page opens on the stations' extent."""
    raw_center = os.environ.get("YIZHAN_DEFAULT_CENTER", "").strip()
    raw_zoom = os.environ.get("YIZHAN_DEFAULT_ZOOM", "").strip()
    if not raw_center:
        if raw_zoom:
            raise ValueError("YIZHAN_DEFAULT_ZOOM needs YIZHAN_DEFAULT_CENTER (without a centre the page "
                             "fits the stations' extent, which sets its own zoom)")
        return None, None
    parts = [p.strip() for p in raw_center.split(",")]
    if len(parts) != 2 or not all(is_plain_number(p) for p in parts):
        raise ValueError(f"YIZHAN_DEFAULT_CENTER must be 'lat,lng' in WGS-84 decimal degrees "
                         f"(e.g. 27.83,113.15), got {raw_center!r}")
    lat, lng = float(parts[0]), float(parts[1])
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        raise ValueError(f"YIZHAN_DEFAULT_CENTER must have -90 <= lat <= 90 and -180 <= lng <= 180, got {raw_center!r}")
    if not raw_zoom:
        return (lat, lng), DEFAULT_START_ZOOM
    if not is_plain_integer(raw_zoom):
        raise ValueError(f"YIZHAN_DEFAULT_ZOOM must be a whole zoom level, got {raw_zoom!r}")
    zoom = int(raw_zoom)
    if not MIN_START_ZOOM <= zoom <= MAX_START_ZOOM:
        raise ValueError(f"YIZHAN_DEFAULT_ZOOM must be between {MIN_START_ZOOM} and {MAX_START_ZOOM}, got {zoom}")
    return (lat, lng), zoom


NEVER_AUTO_PREPARE = 2**31 - 1


def engine_options(url: str, *, pgbouncer: bool = False) -> dict:
    """Connection pool and timeouts: a database that hangs must cost a request seconds, not a worker.

    No pre-ping (it would cost a round trip per request): a connection found dead
    invalidates the pool, that one request gets the JSON 503, the next reconnects.

    ``pgbouncer``: every URL goes through PgBouncer in transaction pooling mode (see
    YIZHAN_DB_PGBOUNCER), which hands each transaction whichever server connection is free.
    """
    # Bound values never reach an error message or a log: they can be a reporter's phone number.
    private = {"hide_parameters": True}
    if not url.startswith("postgresql"):
        return private
    statement_ms = int(_seconds("YIZHAN_DB_STATEMENT_TIMEOUT_S", 10) * 1000)
    connect_args = {
        "connect_timeout": max(1, round(_seconds("YIZHAN_DB_CONNECT_TIMEOUT_S", 3))),
        "options": f"-c statement_timeout={statement_ms}",
        "application_name": "yizhan",
        # No automatic server-side preparation (psycopg's default prepares any statement
        # run five times): after five runs a prepared statement may switch to a generic
        # plan, and for a filtered KNN that plan scans every matching station (measured:
        # 3 ms became 200+ ms). The store prepares, explicitly, the one statement whose
        # generic plan is known to be the KNN index scan (tested). None would disable
        # explicit preparation too, hence a threshold never reached.
        "prepare_threshold": NEVER_AUTO_PREPARE,
    }
    if pgbouncer:
        # PgBouncer 1.18 (Debian 12's) does not carry prepared statements across the server
        # connections of transaction pooling: a statement prepared on one is missing on the next
        # ("prepared statement … does not exist") or already there from another client ("already
        # exists"). None turns off every preparation, the store's explicit one included. It refuses
        # the "options" start-up parameter too: the statement timeout is then the pooler's
        # connect_query (deploy/pgbouncer.ini).
        connect_args["prepare_threshold"] = None
        del connect_args["options"]
    return {
        **private,
        "pool_size": 5,
        "max_overflow": 10,
        "pool_timeout": _seconds("YIZHAN_DB_POOL_TIMEOUT_S", 5),
        "pool_recycle": 3600,
        "connect_args": connect_args,
    }


def _flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name} must be 1 or 0 (true/false, yes/no, on/off), got {raw!r}")


def replica_urls() -> list[str]:
    """DATABASE_REPLICA_URLS: a comma list of PostgreSQL URLs of streaming standbys (or empty)."""
    raw = os.environ.get("DATABASE_REPLICA_URLS", "")
    urls = [normalise_database_url(u.strip()) for u in raw.split(",") if u.strip()]
    if any(not u.startswith("postgresql") for u in urls):
        raise ValueError("DATABASE_REPLICA_URLS must list postgresql://… URLs (replicas of a PostGIS primary)")
    return urls


def from_environment(instance_path: str) -> dict:
    """Settings from environment variables, with the embedded SQLite file as default store."""
    default_db = "sqlite:///" + os.path.join(instance_path, "yizhan.sqlite3")
    url = normalise_database_url(os.environ.get("DATABASE_URL") or default_db)
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    center, zoom = default_view()
    return {
        "SQLALCHEMY_DATABASE_URI": url,
        # Reads on replicas (app.replicas): streaming standbys of DATABASE_URL, and how far behind
        # one may be (seconds since the last transaction it replayed) and still serve reads.
        "DATABASE_REPLICA_URLS": replica_urls(),
        "YIZHAN_REPLICA_MAX_LAG_S": _seconds("YIZHAN_REPLICA_MAX_LAG_S", 10),
        # Every database URL goes through PgBouncer in transaction pooling mode (engine_options).
        "YIZHAN_DB_PGBOUNCER": _flag("YIZHAN_DB_PGBOUNCER"),
        # gzip only: every WeChat web-view and old Android browser takes it.
        "COMPRESS_ALGORITHM": ["gzip"],
        "COMPRESS_MIMETYPES": [
            "text/html", "text/css", "text/javascript", "application/javascript", "application/json",
            "application/geo+json", "application/manifest+json", "image/svg+xml",
        ],
        # /metrics: who may scrape (app.metrics). The token is kept only as its SHA-256.
        "YIZHAN_METRICS_ALLOW": os.environ.get("YIZHAN_METRICS_ALLOW", "127.0.0.1/32,::1/128"),
        "YIZHAN_METRICS_TOKEN_SHA256": (hashlib.sha256(os.environ["YIZHAN_METRICS_TOKEN"].encode()).hexdigest()
                                        if os.environ.get("YIZHAN_METRICS_TOKEN") else ""),
        "YIZHAN_TIMEZONE": os.environ.get("YIZHAN_TIMEZONE", DEFAULT_TIMEZONE),
        # SQLite reads the file through a memory map of up to this size: no system call per
        # page (search at 1M stations reads thousands of scattered rows: ~2x faster measured).
        "YIZHAN_SQLITE_MMAP_MB": _whole("YIZHAN_SQLITE_MMAP_MB", 2048, 0, 1 << 20, "MB"),
        # Where the site is reached (https://host[:port][/prefix]): absolute URLs in pages and the
        # pages WeChat may sign. Checked by app.web at app creation; unset falls back to the Host header.
        "YIZHAN_PUBLIC_URL": os.environ.get("YIZHAN_PUBLIC_URL", ""),
        # Map tiles: osm (WGS-84), tianditu (天地图, WGS-84-compatible, needs a key), amap (GCJ-02), none.
        "YIZHAN_TILES": os.environ.get("YIZHAN_TILES", "osm"),
        # Where the page opens without a position (WGS-84 "lat,lng" and a zoom); unset: the
        # extent of the active stations (app.web).
        "YIZHAN_DEFAULT_CENTER": center,
        "YIZHAN_DEFAULT_ZOOM": zoom,
        "TIANDITU_KEY": os.environ.get("TIANDITU_KEY", ""),
        # WeChat JS-SDK (optional): without an app id and secret the page works without it.
        "WECHAT_APP_ID": os.environ.get("WECHAT_APP_ID", ""),
        "WECHAT_APP_SECRET": os.environ.get("WECHAT_APP_SECRET", ""),
        "WECHAT_API_BASE": os.environ.get("WECHAT_API_BASE", "https://api.weixin.qq.com"),
        "WECHAT_JSSDK_URL": os.environ.get("WECHAT_JSSDK_URL", "https://res.wx.qq.com/open/js/jweixin-1.6.0.js"),
        # Shared cache for the WeChat token/ticket across workers; the app falls back to
        # a per-process cache when Redis is not reachable.
        "REDIS_URL": redis_url,
        # Signs staff login sessions and CSRF tokens. Unset: app.auth makes a random one per
        # process (sessions then end at restart and differ between workers) and says so.
        "SECRET_KEY": os.environ.get("YIZHAN_SECRET_KEY", ""),
        # A staff login ends this long after its cookie was written (at login, or when the session
        # last changed): Flask checks the cookie's signed timestamp, so a copied cookie stops
        # working after a shift rather than a month (Flask's default).
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=_whole("YIZHAN_STAFF_SESSION_HOURS", 12, 1, 720, "hours")),
        # Rate-limit counters (Flask-Limiter), shared by all workers; when Redis is unreachable
        # each worker counts in its own memory until it is back (app.auth).
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI") or redis_url,
        # Operations (issue #8): where photos are kept (by content hash; survives restarts), and how
        # long reporters' contact details are kept after their work order is fixed or closed.
        "YIZHAN_UPLOAD_DIR": os.environ.get("YIZHAN_UPLOAD_DIR") or os.path.join(instance_path, "uploads"),
        "YIZHAN_PURGE_AFTER_DAYS": _whole("YIZHAN_PURGE_AFTER_DAYS", 30, 1, 3650, "days"),
        # How many reverse proxies stand in front (each adds X-Forwarded-For/-Proto): the client's
        # address (rate limits, session protection) is read from their headers. 0: none, trust nothing.
        "YIZHAN_PROXY_HOPS": _whole("YIZHAN_PROXY_HOPS", 0, 0, 5, "proxies"),
        # Largest request body (a report: 3 photos of up to 10 MB and the form); larger ones get 413.
        "MAX_CONTENT_LENGTH": _whole("YIZHAN_MAX_UPLOAD_MB", 31, 1, 200, "MB") * 1024 * 1024,
        # Live operator feeds (app.stations.live): a status older than this is served as unknown.
        "YIZHAN_LIVE_STALE_AFTER_S": _whole("YIZHAN_LIVE_STALE_AFTER_S", DEFAULT_STALE_AFTER_S, 10, 86_400, "seconds"),
        # Travel speeds by mode (app.network.modes), each overridable from the environment.
        "YIZHAN_SPEEDS_KMH": {name: _speed(m.speed_env, m.default_kmh) for name, m in MODES.items()},
    }
