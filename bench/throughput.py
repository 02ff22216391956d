"""Benchmark: HTTP throughput of nearest-10 against a bare Flask view, side by side.

In one run, on the same machine, for each gunicorn worker class asked for (default: sync and
gthread, two workers each):
  * req/s under load: wrk, 2 threads, 16 connections, on 127.0.0.1, for --seconds each:
      - bare:    bench/bare_app.py, a Flask view returning a fixed 10-item JSON list;
      - meta:    /api/v1/meta on the real app (no database);
      - nearest: /api/v1/stations/nearest?lat&lng&limit=10 at a random point (seeded Lua) inside
                 the loaded area, on PostGIS and on SQLite;
  * single-client latency p50/p95: one keep-alive client, --requests requests per target
    (sync workers close each connection, so there the client reconnects every time).
Stations: --rows random stations (bench/nearest.py's generator, seed and area), loaded through
the same import path as the CLI. Requests carry ``Accept-Encoding: gzip`` as phones do.

Usage: BENCH_DATABASE_URL=postgresql://… python bench/throughput.py [--rows N] [--seconds S]
       [--workers W] [--worker-class sync,gthread] [--threads T]
PostGIS data goes into its own database, yizhan_throughput, on the BENCH_DATABASE_URL server.
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import psycopg  # noqa: E402
from sqlalchemy import text  # noqa: E402

from app.extensions import db  # noqa: E402
from app.stations.importing import parse_file  # noqa: E402
from bench.nearest import (  # noqa: E402
    EAST, NORTH, OUT, SOUTH, WEST, bench_db_url, free_port, fresh_app, log, make_csv, summary,
)

GUNICORN = os.path.join(ROOT, ".venv", "bin", "gunicorn")
HOST = "127.0.0.1"  # all traffic stays on this machine
MARGIN = 0.05  # degrees: query points stay off the edge of the data, as in bench/nearest.py
NEAREST_PATH = "/api/v1/stations/nearest?lat=%.6f&lng=%.6f&limit=10"
WRK_THREADS, WRK_CONNECTIONS = 2, 16
THROUGHPUT_DB = "yizhan_throughput"
SQLITE_PATH = os.path.join(OUT, "throughput.sqlite3")


def throughput_db_url(base: str) -> str:
    """Same server as ``base``, database yizhan_throughput (created if missing).

    Not bench/nearest.py's yizhan_bench, so the two benchmarks can run at the same time.
    """
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (THROUGHPUT_DB,)).fetchone():
            conn.execute(f"CREATE DATABASE {THROUGHPUT_DB}")  # a constant name: identifiers cannot be bound
    url = bench_db_url(base)
    return url.replace("/yizhan_bench", f"/{THROUGHPUT_DB}", 1)


def load(url: str, stations, rows: int) -> None:
    """Migrate a fresh schema and write ``stations`` through the store, as `flask stations import` does."""
    app = fresh_app(url)
    t0 = time.perf_counter()
    counts = app.extensions["yizhan_store"].upsert(stations, progress=lambda n: None)
    assert counts.inserted == rows, counts
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE station"))
        db.engine.dispose()
    log(f"  loaded {rows:,} stations in {time.perf_counter() - t0:.1f} s")


@contextlib.contextmanager
def gunicorn(app_spec: str, env_extra: dict, workers: int, worker_class: str, threads: int, log_path: str,
             ready_path: str):
    """A gunicorn on 127.0.0.1 answering ``ready_path`` with 200, in its own process group.

    Stopped, group and all, on the way out, error or not.
    """
    port = free_port()
    cmd = [GUNICORN, "--bind", f"{HOST}:{port}", "--workers", str(workers), "--worker-class", worker_class, app_spec]
    if worker_class == "gthread":
        cmd[-1:-1] = ["--threads", str(threads)]
    logfile = open(log_path, "w")
    server = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env_extra},
                              stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not answers_ok(port, ready_path):
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn {app_spec} exited with {server.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn {app_spec} did not answer {ready_path} within 30 s; see {log_path}")
            time.sleep(0.2)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        logfile.close()


def answers_ok(port: int, path: str) -> bool:
    """Whether a server on ``port`` answers ``path`` with 200 (the master listens before its workers can)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def random_points(seed: int, n: int):
    rng = random.Random(seed)
    return [(rng.uniform(SOUTH + MARGIN, NORTH - MARGIN), rng.uniform(WEST + MARGIN, EAST - MARGIN))
            for _ in range(n)]


def check_answer(target: dict, status: int, body: bytes, gzipped: bool) -> None:
    if status != 200:
        raise RuntimeError(f"{target['name']}: HTTP {status}: {body[:200]!r}")
    if target["expect_ten"] and len(json.loads(gzip.decompress(body) if gzipped else body)["results"]) != 10:
        raise RuntimeError(f"{target['name']}: not 10 results: {body[:200]!r}")


def single_client(port: int, target: dict, points, warmup: int):
    """Latencies (ms) of one keep-alive client asking the target once per point, after ``warmup`` requests."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    times = []
    try:
        for i, (lat, lng) in enumerate(points):
            path = target["path"] % (lat, lng) if target["random_point"] else target["path"]
            t0 = time.perf_counter()
            # http.client reconnects by itself after a server that closes each connection (sync workers).
            conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
            resp = conn.getresponse()
            body = resp.read()
            elapsed = time.perf_counter() - t0
            check_answer(target, resp.status, body, resp.getheader("Content-Encoding") == "gzip")
            if i >= warmup:
                times.append(elapsed * 1000)
    finally:
        conn.close()
    return times


WRK_SCRIPT = """\
-- Generated by bench/throughput.py: one GET per request, at a seeded random point when asked.
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end
function init(args)
  math.randomseed({seed} + 7919 * id)
end
function request()
  return wrk.format("GET", {path_expression}, {{["Accept-Encoding"] = "gzip"}})
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def lua_path_expression(target: dict) -> str:
    """The request path as a Lua expression: a fixed string, or one formatted with a random point."""
    if not target["random_point"]:
        return json.dumps(target["path"])
    lat = f"{SOUTH + MARGIN:.6f} + math.random() * {NORTH - SOUTH - 2 * MARGIN:.6f}"
    lng = f"{WEST + MARGIN:.6f} + math.random() * {EAST - WEST - 2 * MARGIN:.6f}"
    return f"string.format({json.dumps(target['path'])}, {lat}, {lng})"


def wrk(port: int, target: dict, seconds: int, seed: int) -> dict:
    """Requests per second under load, from wrk's own summary."""
    script = os.path.join(OUT, f"wrk_{target['name']}.lua")
    with open(script, "w") as fh:
        fh.write(WRK_SCRIPT.format(seed=seed, path_expression=lua_path_expression(target)))
    cmd = ["wrk", f"--threads={WRK_THREADS}", f"--connections={WRK_CONNECTIONS}", f"--duration={seconds}s",
           "--timeout=10s", f"--script={script}", f"http://{HOST}:{port}/"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    match = re.search(r"^WRK_RESULT (\{.*\})$", out, re.M)
    if not match:
        raise RuntimeError(f"no result from wrk:\n{out}")
    r = json.loads(match.group(1))
    if r["status"]:
        raise RuntimeError(f"{target['name']}: {r['status']} non-2xx answers under load")
    return {
        "req_per_s": round(r["requests"] / (r["duration_us"] / 1e6), 1),
        "requests": r["requests"],
        "socket_errors": r["connect"] + r["read"] + r["write"] + r["timeout"],
        "p50_ms_under_load": round(r["p50_us"] / 1000, 2),
        "p99_ms_under_load": round(r["p99_us"] / 1000, 2),
    }


TARGETS = [
    {"name": "bare", "server": "bare", "path": "/", "random_point": False, "expect_ten": False},
    {"name": "meta", "server": "postgis", "path": "/api/v1/meta", "random_point": False, "expect_ten": False},
    {"name": "nearest_postgis", "server": "postgis", "path": NEAREST_PATH, "random_point": True, "expect_ten": True},
    {"name": "nearest_sqlite", "server": "sqlite", "path": NEAREST_PATH, "random_point": True, "expect_ten": True},
]


def measure_worker_class(worker_class: str, args, urls: dict, points) -> dict:
    servers = {
        "bare": ("bench.bare_app:app", {}, "/"),
        "postgis": ("wsgi:app", {"DATABASE_URL": urls["postgis"]}, "/api/v1/meta"),
        "sqlite": ("wsgi:app", {"DATABASE_URL": urls["sqlite"]}, "/api/v1/meta"),
    }
    results = {}
    for server_name, (app_spec, env, ready_path) in servers.items():
        log_path = os.path.join(OUT, f"gunicorn_{worker_class}_{server_name}.log")
        with gunicorn(app_spec, env, args.workers, worker_class, args.threads, log_path, ready_path) as port:
            for target in (t for t in TARGETS if t["server"] == server_name):
                log(f"[{worker_class}] {target['name']}: {args.requests:,} single-client requests, then wrk {args.seconds} s")
                latencies = single_client(port, target, points, warmup=args.warmup)
                under_load = wrk(port, target, args.seconds, args.seed)
                results[target["name"]] = {**under_load, "single_client": summary(latencies)}
    bare = results["bare"]["req_per_s"]
    for r in results.values():
        r["pct_of_bare"] = round(100 * r["req_per_s"] / bare, 1)
    return results


def print_table(results: dict, args) -> None:
    print()
    print(f"{args.rows:,} stations; gunicorn -w {args.workers} (gthread: --threads {args.threads}); "
          f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{args.seconds}s; single client: {args.requests:,} keep-alive requests")
    print(f"{'target':17} {'workers':8} {'req/s':>9} {'% of bare':>10} {'load p50/p99 ms':>16} "
          f"{'1-client p50/p95 ms':>20} {'sock err':>9}")
    for worker_class, per_target in results["worker_classes"].items():
        for name, r in per_target.items():
            single = r["single_client"]
            print(f"{name:17} {worker_class:8} {r['req_per_s']:>9,.0f} {r['pct_of_bare']:>9.1f}% "
                  f"{r['p50_ms_under_load']:>7.2f}/{r['p99_ms_under_load']:<8.2f} "
                  f"{single['p50_ms']:>10.2f}/{single['p95_ms']:<9.2f} {r['socket_errors']:>9}")


def main():
    parser = argparse.ArgumentParser(description="HTTP throughput: nearest-10 on both stores vs a bare Flask view")
    parser.add_argument("--rows", type=int, default=1_000_000, help="random stations to load (e.g. 20000 for a quick run)")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per target")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--worker-class", default="sync,gthread", help="comma list of gunicorn worker classes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--requests", type=int, default=1000, help="single-client requests per target")
    parser.add_argument("--warmup", type=int, default=20, help="single-client requests not timed")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    worker_classes = [w.strip() for w in args.worker_class.split(",") if w.strip()]
    unknown = set(worker_classes) - {"sync", "gthread"}
    if unknown or not worker_classes:
        parser.error(f"--worker-class: sync and/or gthread, not {sorted(unknown) or 'nothing'}")
    if args.seconds < 1 or args.requests < 1 or args.warmup < 0 or args.rows < 10:
        parser.error("--seconds and --requests must be at least 1, --warmup at least 0, --rows at least 10")
    pg_base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not pg_base:
        sys.exit("set BENCH_DATABASE_URL (see the Makefile's bench target)")
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    # SIGTERM ends the run through the same clean-up as an error: every server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(OUT, exist_ok=True)

    parsed = parse_file(make_csv(args.rows, args.seed), source="bench", progress=lambda n: None)
    assert not parsed.errors, parsed.errors[:3]
    urls = {
        "postgis": throughput_db_url(pg_base),
        "sqlite": "sqlite:///" + SQLITE_PATH,
    }
    # A new SQLite file: drop_all_tables cannot yet empty a migrated one (its triggers name dropped R*Trees).
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(SQLITE_PATH + suffix)
    for name, url in urls.items():
        log(f"[{name}] loading {args.rows:,} stations")
        load(url, parsed.stations, args.rows)
    points = random_points(args.seed + 1, args.requests + args.warmup)

    results = {"rows": args.rows, "seconds": args.seconds, "workers": args.workers, "threads": args.threads,
               "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                        capture_output=True, text=True).stdout.strip(),
               "worker_classes": {}}
    for worker_class in worker_classes:
        results["worker_classes"][worker_class] = measure_worker_class(worker_class, args, urls, points)
    print(json.dumps(results, indent=2))
    print_table(results, args)


if __name__ == "__main__":
    main()
