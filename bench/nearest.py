"""Benchmark: 1M stations in PostGIS and in SQLite — import rate and nearest-10 latency.

Measures, in one run and on the same data and query points:
  * import: parse+validate rate, and store write rate (rows/s), per store;
  * nearest-10 latency (p50/p95) through the store directly and through HTTP
    (gunicorn, one sync worker, a new connection per request as a phone would);
  * a baseline in the same run: the naive query (PostGIS: ORDER BY ST_Distance on
    the column cast to geography; SQLite: full-table ORDER BY), and the ratio.

Usage: make bench   (or: BENCH_DATABASE_URL=postgresql://… python bench/nearest.py [--rows N])
The PostGIS benchmark uses its own database `yizhan_bench` on the same server.
"""
from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import psycopg  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import text  # noqa: E402

from app import create_app  # noqa: E402
from app.config import normalise_database_url  # noqa: E402
from app.extensions import db  # noqa: E402
from app.stations.backends import drop_all_tables  # noqa: E402
from app.stations.importing import parse_file  # noqa: E402
from app.stations.model import NearestQuery, StationFilter  # noqa: E402

OUT = os.path.join(ROOT, "bench", "out")
# A 100 km x 100 km square around Zhuzhou: 1M stations is 100 per km², far denser than any city.
SOUTH, NORTH, WEST, EAST = 27.38, 28.28, 112.64, 113.66
KINDS = ["toilet", "rest_station", "water_point", "battery_swap", "charging"]
AMENITIES = ["hot_water", "baby_change", "accessible_toilet", "wifi", "microwave", "phone_charging"]
# Common OSM values, including the round-the-clock spellings whose next change the
# opening-hours library used to search for far ahead (~0.6 s each before the 8-day bound).
HOURS = ["24/7", "06:00-22:00", "Mo-Fr 08:00-18:00; PH off", "", "Mo-Su 00:00-24:00",
         "Mo-Su 00:00-24:00; PH off", "Mo-Su 00:00-24:00; Dec 25 off", "Dec 25 off; Mo-Su 08:00-20:00",
         "22:00-02:00"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


DATA_VERSION = "h2"  # bump when the generated rows change, so a cached file is not reused


def make_csv(rows: int, seed: int) -> str:
    path = os.path.join(OUT, f"stations_{rows}_{seed}_{DATA_VERSION}.csv")
    if os.path.exists(path):
        return path
    log(f"writing {rows:,} random stations to {path}")
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["source_id", "name", "kind", "lat", "lng", "amenities", "opening_hours", "address", "operator", "access"])
        for i in range(rows):
            w.writerow([
                f"b{i}", f"站点{i}", rng.choice(KINDS),
                f"{rng.uniform(SOUTH, NORTH):.6f}", f"{rng.uniform(WEST, EAST):.6f}",
                ";".join(rng.sample(AMENITIES, rng.randint(0, 3))), rng.choice(HOURS), "", "", "public",
            ])
    return path


def bench_db_url(base: str) -> str:
    """Same server as ``base``, database yizhan_bench (created if missing)."""
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'yizhan_bench'").fetchone():
            conn.execute("CREATE DATABASE yizhan_bench")
    info = psycopg.conninfo.conninfo_to_dict(plain)
    info["dbname"] = "yizhan_bench"
    query = "&".join(f"{k}={v}" for k, v in info.items() if k not in ("dbname", "user", "password", "port") and v)
    user = info.get("user", "")
    host = "" if "host" in info and info["host"].startswith("/") else info.get("host", "")
    port = f":{info['port']}" if info.get("port") and host else ""
    return f"postgresql://{user + '@' if user else ''}{host}{port}/yizhan_bench{'?' + query if query else ''}"


def fresh_app(url: str):
    app = create_app({"SQLALCHEMY_DATABASE_URI": normalise_database_url(url)})
    with app.app_context():
        drop_all_tables(db.engine)
        upgrade()
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_latencies(url: str, points, path_fmt: str):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url}
    server = subprocess.Popen(
        [os.path.join(ROOT, ".venv", "bin", "gunicorn"), "--workers", "1", "--bind", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        times = []
        for i, (lat, lng) in enumerate(points):
            conn = http.client.HTTPConnection("127.0.0.1", port)
            t0 = time.perf_counter()
            conn.request("GET", path_fmt.format(lat=lat, lng=lng))
            resp = conn.getresponse()
            body = resp.read()
            elapsed = time.perf_counter() - t0
            conn.close()
            if resp.status != 200 or len(json.loads(body)["results"]) != 10:
                raise RuntimeError(f"bad answer {resp.status}: {body[:200]!r}")
            if i >= 20:  # warm-up
                times.append(elapsed * 1000)
        return times
    finally:
        server.terminate()
        server.wait()


def store_latencies(store, points, at, flt=StationFilter()):
    times = []
    for i, (lat, lng) in enumerate(points):
        t0 = time.perf_counter()
        hits = store.nearest(NearestQuery(lat, lng, at=at, limit=10, filter=flt))
        elapsed = time.perf_counter() - t0
        assert len(hits) == 10
        if i >= 20:
            times.append(elapsed * 1000)
    return times


def baseline_latencies(app, points):
    """The naive query a careless implementation writes, on the same data."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "postgresql":
        sql = text(
            "SELECT id FROM station WHERE status = 'active' ORDER BY "
            "ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:lng, :lat), 4326)::geography) LIMIT 10"
        )
    else:
        sql = text(
            "SELECT id FROM station WHERE status = 'active' ORDER BY "
            "(lat - :lat) * (lat - :lat) + (lng - :lng) * (lng - :lng) LIMIT 10"
        )
    times = []
    with engine.connect() as conn:
        for lat, lng in points:
            t0 = time.perf_counter()
            conn.execute(sql, {"lat": lat, "lng": lng}).all()
            times.append((time.perf_counter() - t0) * 1000)
    return times


def summary(times):
    return {"p50_ms": round(statistics.median(times), 3), "p95_ms": round(percentile(times, 0.95), 3), "n": len(times)}


def main():
    parser = argparse.ArgumentParser(description="nearest-10 and import benchmark on both stores")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--baseline-queries", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    pg_base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not pg_base:
        sys.exit("set BENCH_DATABASE_URL (make bench does)")

    csv_path = make_csv(args.rows, args.seed)
    t0 = time.perf_counter()
    parsed = parse_file(csv_path, source="bench", progress=lambda n: log(f"  parsed {n:,}"))
    parse_s = time.perf_counter() - t0
    assert not parsed.errors, parsed.errors[:3]
    log(f"parse+validate: {args.rows / parse_s:,.0f} rows/s")

    rng = random.Random(args.seed + 1)
    margin = 0.05  # keep queries off the edge of the data
    points = [(rng.uniform(SOUTH + margin, NORTH - margin), rng.uniform(WEST + margin, EAST - margin))
              for _ in range(args.queries + 20)]
    at = datetime(2026, 11, 26, 12, tzinfo=ZoneInfo("Asia/Shanghai"))
    stores = {
        "postgis": bench_db_url(pg_base),
        "sqlite": "sqlite:///" + os.path.join(OUT, "bench.sqlite3"),
    }
    results = {"rows": args.rows, "parse_rows_per_s": round(args.rows / parse_s), "stores": {}}
    for name, url in stores.items():
        log(f"[{name}] loading {args.rows:,} stations")
        app = fresh_app(url)
        store = app.extensions["yizhan_store"]
        t0 = time.perf_counter()
        counts = store.upsert(parsed.stations, progress=lambda n: None)
        write_s = time.perf_counter() - t0
        assert counts.inserted == args.rows, counts
        with app.app_context(), db.engine.begin() as conn:
            conn.execute(text("ANALYZE station"))
        log(f"[{name}] write {args.rows / write_s:,.0f} rows/s; measuring nearest-10")
        direct = store_latencies(store, points, at)
        # A courier's question: an open battery-swap cabinet with Wi-Fi (~4% of stations).
        courier = StationFilter(kinds=("battery_swap",), amenities=("wifi",), open_only=True)
        filtered = store_latencies(store, points, at, courier)
        http_times = http_latencies(url, points, "/api/v1/stations/nearest?lat={lat}&lng={lng}&limit=10")
        base = baseline_latencies(app, points[: args.baseline_queries])
        with app.app_context():
            db.engine.dispose()
        results["stores"][name] = {
            "write_rows_per_s": round(args.rows / write_s),
            "import_total_rows_per_s": round(args.rows / (parse_s + write_s)),
            "import_total_s": round(parse_s + write_s, 1),
            "nearest_store": summary(direct),
            "nearest_http": summary(http_times),
            "nearest_store_filtered": summary(filtered),
            "naive_baseline": summary(base),
            "speedup_vs_naive_p50": round(statistics.median(base) / statistics.median(direct), 1),
        }
    print(json.dumps(results, indent=2))
    print()
    print(f"{'store':8} {'import rows/s':>14} {'store p50/p95 ms':>18} {'HTTP p50/p95 ms':>17} {'naive p50 ms':>13} {'ratio':>7} {'filtered p50/p95 ms':>20}")
    for name, r in results["stores"].items():
        print(f"{name:8} {r['import_total_rows_per_s']:>14,} "
              f"{r['nearest_store']['p50_ms']:>8.2f}/{r['nearest_store']['p95_ms']:<9.2f}"
              f"{r['nearest_http']['p50_ms']:>8.2f}/{r['nearest_http']['p95_ms']:<8.2f}"
              f"{r['naive_baseline']['p50_ms']:>13.1f} {r['speedup_vs_naive_p50']:>6}x"
              f"{r['nearest_store_filtered']['p50_ms']:>11.2f}/{r['nearest_store_filtered']['p95_ms']:.2f}")


if __name__ == "__main__":
    main()
