"""Logs: one JSON object per line, a request id on every line of a request, and no secrets.

- Every line (the app's, Flask-Limiter's, gunicorn's error log): ``time`` (UTC, ISO 8601), ``level``,
  ``logger``, ``message``, and within a request its ``request_id``.
- One access line per request, written by the app (logger ``yizhan.access``): ``method``,
  ``endpoint`` (the Flask endpoint, e.g. ``api.nearest``), ``path`` (without its query string, and
  with tracking tokens cut), ``status``, ``duration_ms``. The app writes it rather than gunicorn
  because only the app knows the endpoint and the request id; run gunicorn without
  ``--access-logfile``. Anyone who turns gunicorn's access log on anyway gets the same shape from
  ``AccessLogger`` (``--logger-class app.logs.AccessLogger``, which also makes gunicorn's own
  error lines JSON).
- The request id: a sane incoming ``X-Request-Id`` (a proxy's, up to 64 letters, digits and
  ``._-``) is kept, anything else replaced by a new random one; it goes back in the response's
  ``X-Request-Id``.
- What never reaches a log: query strings (tokens, positions), request bodies (phones, passwords),
  headers (cookies, bearer and device tokens), client addresses, and the tracking tokens that travel
  in paths (/r/<token>, Open311's tokens/<token>.json). Bound SQL values are hidden by the engine
  options (app.config.engine_options).
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import datetime, timezone

from flask import Flask, current_app, g, has_request_context, request
from gunicorn.glogging import Logger

# Path segments that are secrets: what follows these prefixes, up to the next '/', '?' or '.'.
SECRET_PATHS = re.compile(r"(/r/|/open311/v2/tokens/)[^/?\s.]+")
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
ACCESS = logging.getLogger("yizhan.access")
# Attributes a line may carry beyond the standard four, in the order they are written.
FIELDS = ("request_id", "method", "endpoint", "path", "status", "duration_ms")


def redact(text: str) -> str:
    return SECRET_PATHS.sub(r"\1…", text)


def request_id(incoming: str | None) -> str:
    """The incoming id when it is a short token, else a new one (never a header's arbitrary text)."""
    if incoming and REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


def _with_request_id(factory):
    def make(*args, **kwargs):
        record = factory(*args, **kwargs)
        if has_request_context() and "request_id" in g:
            record.request_id = g.request_id
        return record

    make.yizhan = True
    return make


def configure(app: Flask) -> None:
    """JSON lines on stderr for every logger (unless something, e.g. pytest's log capture, configured
    logging first), and the request id on every record made within a request. Before anything asks
    for ``app.logger``: Flask gives it a plain handler of its own when none is configured."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "yizhan", False):
        logging.setLogRecordFactory(_with_request_id(factory))
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.setLevel(logging.INFO)


def _begin():
    g.request_id = request_id(request.headers.get("X-Request-Id"))
    g.request_started = time.perf_counter()
    # For gunicorn's access logger, which sees the environ but not Flask's g.
    request.environ["yizhan.request_id"] = g.request_id


def _end(response):
    seconds = time.perf_counter() - g.get("request_started", time.perf_counter())
    endpoint = request.endpoint or "unmatched"
    response.headers["X-Request-Id"] = g.get("request_id") or request_id(None)
    request.environ["yizhan.endpoint"] = endpoint
    for observe in current_app.extensions["yizhan_request_observers"]:
        observe(endpoint, request.method, response.status_code, seconds)
    ACCESS.info("%s %s %s", request.method, redact(request.path), response.status_code,
                extra={"method": request.method, "endpoint": endpoint, "path": redact(request.path),
                       "status": response.status_code, "duration_ms": round(seconds * 1000, 2)})
    return response


def init_app(app: Flask) -> None:
    """Registered first: its before_request runs before any other (the rate limiter's included), and
    its after_request last, so the access line has the final status and the whole time."""
    app.extensions["yizhan_request_observers"] = []  # app.metrics adds its histogram here
    app.before_request(_begin)
    app.after_request(_end)


class AccessLogger(Logger):
    """gunicorn's logger: its error lines as JSON, and (if its access log is on) access lines of the
    app's shape, from what the app left in the environ."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        path = redact(environ.get("PATH_INFO", ""))
        status = resp.status
        status = int(status.split(None, 1)[0]) if isinstance(status, str) else status
        line = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "level": "INFO", "logger": "gunicorn.access",
            "message": f"{environ.get('REQUEST_METHOD', '')} {path} {status}",
            "request_id": environ.get("yizhan.request_id"), "method": environ.get("REQUEST_METHOD"),
            "endpoint": environ.get("yizhan.endpoint"), "path": path, "status": status,
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
        }
        self.access_log.info(json.dumps(line, ensure_ascii=False))
