"""gunicorn settings for Yizhan: ``gunicorn -c /opt/yizhan/current/deploy/gunicorn.conf.py wsgi:app``
(yizhan-web.service).

Chosen by measurement (README, Performance, "Throughput"; `make bench-throughput`, 1M stations,
2 cores): sync workers served nearest-10 at 1,205 req/s on PostGIS and 1,210 on SQLite with
``-w 2``; gthread (4 threads) was no better on SQLite (1,263) and unsteady on PostGIS (614-1,081
between runs). A nearest request is CPU work (about 1.3 ms in the worker, 0.5 ms in PostgreSQL),
so one sync worker per core keeps both cores busy and nothing is gained from threads. Slow
phones cost no worker: nginx (deploy/nginx/yizhan.conf) reads whole requests and whole answers
before and after it talks to gunicorn, so a worker only ever talks to a fast local client.

Overridable from the environment (/etc/yizhan/yizhan.env): WEB_CONCURRENCY (workers, gunicorn's
own name) and YIZHAN_BIND.
"""
import importlib.util
import os
import sys

# One sync worker per core (the measured configuration: -w 2 on the 2-core machine).
worker_class = "sync"
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 2)

# nginx on the same host is the only client; never listen on a public address.
bind = os.environ.get("YIZHAN_BIND", "127.0.0.1:8000")
backlog = 2048  # a lunch-hour burst waits in the kernel's queue instead of being refused

# A request is bounded by the app's own database timeouts (connect 3 s + pool 5 s + statement
# 10 s, app/config.py), then answered 503; a worker silent for longer than this is stuck, and the
# master kills and replaces it.
timeout = 30
# On HUP (reload) or TERM (stop) a worker finishes the requests it holds for up to this long.
graceful_timeout = 30
# Ignored by sync workers (they close after each answer); nginx holds the clients' keep-alives.
keepalive = 2

# Restart each worker after about this many requests, spread so that the workers never restart
# together: bounds slow memory growth (caches, fragmentation) without a visible pause.
max_requests = 20_000
max_requests_jitter = 2_000

# No preload. Each worker creates the app itself, so (1) SIGHUP really loads a new release's
# code: with preload the master keeps the old modules and HUP would restart workers on the old
# release; (2) no database connection or Redis client made in the master is shared by forked
# workers. The cost is memory: every worker holds its own road graphs (loaded on the first
# request that needs one, app.network.service.GraphCache), which preloading would not share
# anyway since the master never loads them.
preload_app = False

# gunicorn's own lines as JSON on stderr (journald). No gunicorn access log: the app writes one
# JSON access line per request itself (app.logs, with the request id), and a second would double
# the logging of every request.
logger_class = "app.logs.AccessLogger"
errorlog = "-"
loglevel = "info"

# nginx sets X-Forwarded-Proto; gunicorn itself trusts it from loopback only (its default), and
# the app reads the forwarded headers through ProxyFix (YIZHAN_PROXY_HOPS=1).
forwarded_allow_ips = "127.0.0.1,::1"

proc_name = "yizhan-web"

# The release directory, as this file was named: /opt/yizhan/current/deploy/gunicorn.conf.py gives
# /opt/yizhan/current, a symlink (abspath does not resolve it). gunicorn changes into it again and
# puts it on sys.path at every SIGHUP, so after `current` is pointed at a new release, a reload
# starts the new workers in it.
chdir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def post_fork(server, worker):
    """Make a new worker import the release on disk, not the master's copy.

    The master has imported the ``app`` package (for logger_class above, and for child_exit),
    and a forked worker inherits its modules: without this, a worker started by SIGHUP after a
    release would run a mix of the old package's modules (those the master imported) and the
    new ones. Third-party packages stay the master's: a release that changes requirements.txt
    needs a restart, not a reload (README, Deploying).
    """
    for name in [n for n in sys.modules if n in ("app", "wsgi") or n.startswith("app.")]:
        del sys.modules[name]


def child_exit(server, worker):
    """A worker has gone: prometheus-client's multi-process mode must forget its live gauges.

    app.metrics (the /metrics endpoint) exists from the release that added it; with an older
    one this hook does nothing, so this file works with either.
    """
    if importlib.util.find_spec("app.metrics") is None:
        return
    from app import metrics

    metrics.child_exit(server, worker)
