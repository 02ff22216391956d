"""A real gunicorn (deploy/gunicorn.conf.py) serving the app on a database of its own, for the
deployment tests (reload, nginx, backups)."""
from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from tests.helpers import station

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)
NEAREST = "/api/v1/stations/nearest?lat=27.8300&lng=113.1500&limit=3"
# A handful of stations around central Zhuzhou, the demo city.
WORLD = [station(f"d{i}", 27.83 + i * 0.002, 113.15 - i * 0.0015, kind) for i, kind in
         enumerate(("toilet", "water_point", "toilet", "battery_swap", "charging"))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def migrated_with_world(url: str, upload_dir: str):
    """An app on ``url`` (an empty database) with the schema at head and WORLD imported."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "YIZHAN_UPLOAD_DIR": upload_dir})
    with app.app_context():
        upgrade()
    app.extensions["yizhan_store"].upsert(WORLD)
    return app


def dispose(app) -> None:
    with app.app_context():
        db.engine.dispose()


def get(port: int, path: str, headers: dict | None = None, host: str = "127.0.0.1", timeout: float = 10):
    """One request on a fresh connection: (status, headers, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@contextlib.contextmanager
def gunicorn(env: dict, log_path: str, release: str = ROOT):
    """gunicorn -c <release>/deploy/gunicorn.conf.py wsgi:app (as yizhan-web.service runs it) on a
    free loopback port, 2 workers, in its own process group (``env`` may set WEB_CONCURRENCY);
    yields (port, process). Stopped, group and all, on the way out."""
    port = free_port()
    env = {**os.environ, "WEB_CONCURRENCY": "2", **env, "YIZHAN_BIND": f"127.0.0.1:{port}"}
    log = open(log_path, "w")
    conf = os.path.join(release, "deploy", "gunicorn.conf.py")
    server = subprocess.Popen([os.path.join(VENV_BIN, "gunicorn"), "--config", conf, "wsgi:app"],
                              cwd=release, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {server.returncode}; see {log_path}")
            with contextlib.suppress(OSError):
                if get(port, "/api/v1/meta")[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within 60 s; see {log_path}")
            time.sleep(0.2)
        yield port, server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def workers_of(pid: int) -> set[int]:
    """The gunicorn master's live child processes (its workers)."""
    children = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            children.update(int(c) for c in f.read().split())
    return children


def tmpdir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=f"yizhan-{prefix}-")
