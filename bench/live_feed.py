"""Benchmark: operators' live pushes under nearest load (issue #9 §3, Performance).

In one run, against one gunicorn (sync workers) on PostGIS (and, with --sqlite, on SQLite too):
  1. nearest alone: wrk (2 threads, 16 connections) on /api/v1/stations/nearest at random points
     for --baseline-seconds;
  2. the same wrk load for --seconds while 5,000 cabinets (--cabinets) each push their status every
     30 s (≈ 170 updates/s): one cabinet in --single-every (default 5) as single PATCHes (4 client
     threads, keep-alive) — cabinets that report for themselves — and the rest through the operator's
     backend as one batch POST a second; each report one second newer than the cabinet's last.
It prints nearest's req/s with the pushes running as a share of nearest alone, the updates sent and
answered ``applied``, and a count check in the database: every cabinet's stored ``live_docks`` (each
report carries its sequence number there) and ``live_reported_at`` must be its last report's — so
the sum of live_docks equals the number of reports sent: none lost, none applied twice.

Usage: BENCH_DATABASE_URL=postgresql://… python bench/live_feed.py [--rows N] [--cabinets N]
       [--seconds S] [--baseline-seconds S] [--single-every N] [--sqlite]
PostGIS data goes into its own database, yizhan_livebench, on the BENCH_DATABASE_URL server.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import psycopg  # noqa: E402
from sqlalchemy import text  # noqa: E402

from app.extensions import db  # noqa: E402
from app.stations.importing import parse_file  # noqa: E402
from app.stations.model import StationInput  # noqa: E402
from bench.nearest import EAST, NORTH, OUT, SOUTH, WEST, bench_db_url, fresh_app, log, make_csv  # noqa: E402
from bench.throughput import HOST, NEAREST_PATH, gunicorn, wrk  # noqa: E402

LIVE_DB = "yizhan_livebench"
OPERATOR = "benchswap"
PUSH_EVERY_S = 30
SINGLE_THREADS = 4
BATTERY_TYPES = ("48V20Ah", "60V24Ah")


def live_db_url(base: str) -> str:
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (LIVE_DB,)).fetchone():
            conn.execute(f"CREATE DATABASE {LIVE_DB}")  # a constant name: identifiers cannot be bound
    return bench_db_url(base).replace("/yizhan_bench", f"/{LIVE_DB}", 1)


def load(url: str, rows: int, cabinets: int, seed: int) -> str:
    """Random stations plus the operator's cabinets, the operator and a token; the token."""
    app = fresh_app(url)
    store = app.extensions["yizhan_store"]
    parsed = parse_file(make_csv(rows, seed), source="bench", progress=lambda n: None)
    assert not parsed.errors, parsed.errors[:3]
    rng = random.Random(seed + 1)
    cabinets_in = [StationInput(source=OPERATOR, source_id=f"cab{i}", name=f"换电柜{i}", kind="battery_swap",
                                lat=rng.uniform(SOUTH, NORTH), lng=rng.uniform(WEST, EAST)) for i in range(cabinets)]
    store.upsert(parsed.stations + cabinets_in)
    ops = app.extensions["yizhan_ops"]
    ops.accounts.create_organisation(OPERATOR, "基准换电")
    ops.accounts.create_user(f"feed@{OPERATOR}.example", "benchmark password", "worker", OPERATOR)
    ops.accounts.assign_stations(OPERATOR, OPERATOR)
    token = ops.accounts.create_token(f"feed@{OPERATOR}.example")
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        db.engine.dispose()
    log(f"  loaded {rows:,} stations and {cabinets:,} cabinets")
    return token


class Pushers:
    """Each cabinet reports every PUSH_EVERY_S seconds, spread evenly over the window: even ones in
    one batch a second, every ``single_every``-th as single PATCHes."""

    def __init__(self, port: int, token: str, cabinets: int, single_every: int):
        self.port, self.cabinets, self.single_every = port, cabinets, single_every
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.sent = [0] * cabinets  # reports sent per cabinet (its sequence number)
        self.last_at = [0] * cabinets
        self.results = {"applied": 0, "ignored_older": 0, "unknown_station": 0, "invalid": 0, "http_error": 0}
        self.lock = threading.Lock()
        self.singles: queue.Queue = queue.Queue()
        self.stop = threading.Event()

    def _report(self, i: int, at: int) -> dict:
        self.sent[i] += 1
        self.last_at[i] = at
        n = self.sent[i] % 7
        return {"last_reported": at, "num_batteries_available": n, "num_docks_available": self.sent[i],
                "battery_types_available": [{"battery_type": BATTERY_TYPES[i % 2], "count": n}]}

    def _count(self, result: str) -> None:
        with self.lock:
            self.results[result] += 1

    def _send(self, conn, method: str, path: str, body: dict):
        conn.request(method, path, body=json.dumps(body), headers=self.headers)
        answer = conn.getresponse()
        return answer.status, answer.read()

    def single_worker(self):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
        while True:
            job = self.singles.get()
            if job is None:
                return
            i, body = job
            try:
                status, raw = self._send(conn, "PATCH", f"/api/v1/operators/{OPERATOR}/stations/cab{i}/status", body)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
                status, raw = self._send(conn, "PATCH", f"/api/v1/operators/{OPERATOR}/stations/cab{i}/status",
                                         body)
            self._count(json.loads(raw)["result"] if status == 200 else "http_error")

    def run(self, seconds: int) -> float:
        """Push for ``seconds``; the updates per second achieved."""
        workers = [threading.Thread(target=self.single_worker) for _ in range(SINGLE_THREADS)]
        for w in workers:
            w.start()
        batch_conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
        start = time.monotonic()
        base = int(time.time())
        for tick in range(seconds):
            at = base + tick + 1  # one second newer each round: never equal to the cabinet's last
            due = range(tick % PUSH_EVERY_S, self.cabinets, PUSH_EVERY_S)
            batch = [{"station_id": f"cab{i}", **self._report(i, at)} for i in due if i % self.single_every]
            for i in due:
                if i % self.single_every == 0:
                    self.singles.put((i, self._report(i, at)))
            status, raw = self._send(batch_conn, "POST", f"/api/v1/operators/{OPERATOR}/status", {"stations": batch})
            if status == 200:
                for item in json.loads(raw)["results"]:
                    self._count(item["result"])
            else:
                for _ in batch:
                    self._count("http_error")
            time.sleep(max(0.0, start + tick + 1 - time.monotonic()))
        for _ in workers:
            self.singles.put(None)
        for w in workers:
            w.join()
        return sum(self.sent) / (time.monotonic() - start)


def count_check(url: str, pushers: Pushers) -> dict:
    """What the database holds against what was sent."""
    app = fresh_app_no_reset(url)
    with app.app_context():
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT source_id, live_docks, live_reported_at FROM station"
                                     " WHERE source = :s"), {"s": OPERATOR}).all()
        db.engine.dispose()
    stored = {r.source_id: r for r in rows}
    wrong = 0
    for i in range(pushers.cabinets):
        row = stored[f"cab{i}"]
        at = row.live_reported_at
        if isinstance(at, str):
            at = datetime.fromisoformat(at).replace(tzinfo=timezone.utc)
        expected_at = pushers.last_at[i]
        if (row.live_docks or 0) != pushers.sent[i] or (expected_at and int(at.timestamp()) != expected_at):
            wrong += 1
    return {"sent": sum(pushers.sent), "sum_live_docks": sum((r.live_docks or 0) for r in rows),
            "cabinets_wrong": wrong}


def fresh_app_no_reset(url: str):
    from app import create_app
    from app.config import normalise_database_url

    return create_app({"SQLALCHEMY_DATABASE_URI": normalise_database_url(url)})


def measure(store_name: str, url: str, args) -> dict:
    log(f"[{store_name}] loading")
    token = load(url, args.rows, args.cabinets, args.seed)
    target = {"name": f"nearest_{store_name}", "path": NEAREST_PATH, "random_point": True}
    log_path = os.path.join(OUT, f"gunicorn_live_{store_name}.log")
    with gunicorn("wsgi:app", {"DATABASE_URL": url}, args.workers, "sync", 1, log_path, "/api/v1/meta") as port:
        wrk(port, target, 5, args.seed + 2)  # warm-up (connections, plans, caches): not measured
        log(f"[{store_name}] nearest alone: wrk {args.baseline_seconds} s")
        alone = wrk(port, target, args.baseline_seconds, args.seed)
        pushers = Pushers(port, token, args.cabinets, args.single_every)
        found = {}
        loader = threading.Thread(target=lambda: found.update(wrk(port, target, args.seconds, args.seed + 1)))
        log(f"[{store_name}] nearest with {args.cabinets:,} cabinets pushing every {PUSH_EVERY_S} s: {args.seconds} s")
        loader.start()
        rate = pushers.run(args.seconds)
        loader.join()
    check = count_check(url, pushers)
    return {"nearest_alone_req_s": alone["req_per_s"], "nearest_with_pushes_req_s": found["req_per_s"],
            "share_pct": round(100 * found["req_per_s"] / alone["req_per_s"], 1),
            "updates_per_s": round(rate, 1), "results": pushers.results, **check}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="other stations (default 50,000)")
    parser.add_argument("--cabinets", type=int, default=5_000)
    parser.add_argument("--seconds", type=int, default=60, help="pushes under nearest load (default 60)")
    parser.add_argument("--baseline-seconds", type=int, default=20, help="nearest alone (default 20)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--single-every", type=int, default=5,
                        help="one cabinet in N pushes single PATCHes, the rest are batched (default 5)")
    parser.add_argument("--sqlite", action="store_true", help="also on SQLite")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    subprocess.run(["wrk", "--version"], capture_output=True)  # fails early when wrk is missing
    base = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    stores = {"postgis": live_db_url(base)}
    if args.sqlite:
        path = os.path.join(OUT, "live.sqlite3")
        if os.path.exists(path):
            os.remove(path)
        stores["sqlite"] = f"sqlite:///{path}"
    results = {name: measure(name, url, args) for name, url in stores.items()}
    print()
    print(f"{args.rows:,} stations + {args.cabinets:,} cabinets pushing every {PUSH_EVERY_S} s (1 in "
          f"{args.single_every} single, the rest batched); gunicorn -w {args.workers} sync; wrk -t2 -c16; nearest alone {args.baseline_seconds} s, "
          f"with pushes {args.seconds} s")
    for name, r in results.items():
        print(f"{name:8} nearest alone {r['nearest_alone_req_s']:>7,.0f} req/s; with pushes "
              f"{r['nearest_with_pushes_req_s']:>7,.0f} req/s ({r['share_pct']} %); updates {r['updates_per_s']}/s, "
              f"sent {r['sent']:,}, answered {r['results']}; DB: sum(live_docks) {r['sum_live_docks']:,}, "
              f"cabinets not at their last report: {r['cabinets_wrong']}")
    with open(os.path.join(OUT, "live_feed.json"), "w") as fh:
        json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
