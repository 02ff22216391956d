"""Load test: the highest sustained request rate of a city's mix, with a read replica and without.

In one run, on this machine (loopback only), against the real stack:
  locust (bench/locustfile.py: 80 % nearest, 10 % map area, 5 % service circle, 3 % Open311 report,
  2 % rating) -> gunicorn (-w 2 sync) -> PgBouncer (transaction pooling, deploy/pgbouncer.ini)
  -> the primary (127.0.0.1:5440); reads -> a second PgBouncer -> the streaming standby (5441),
  both made by scripts/ensure-replica.sh.
Data: the synthetic city (bench/synthetic_city.py) with its walk and e-bike networks imported,
--stations random stations over it (bench/isochrone.py's generator), owned by one organisation,
and Open311 api keys for the reports.

Step search, per configuration ("replica": DATABASE_REPLICA_URLS set; "primary_only": empty):
each step runs locust for --step-seconds at a target rate (users x a constant rate per user,
--rate-per-user; statistics reset once every user has started). A step passes when p95 < 100 ms,
no request failed, and the achieved rate is at least 95 % of the target (on short steps, the target
less three standard deviations of the random arrivals' count, if that is lower). The search starts at
--start-rate: up the --rates list while steps pass, stopping at the first that fails; or, when
the first step fails, down the list until one passes. The second configuration starts two steps
below the first one's best, so the low steps are not run twice. The whole
run, set-up included, stays within --minutes (a step that would not fit is not started).

Locust, gunicorn and both PostgreSQL clusters share this machine's CPUs: the generator's CPU use
is reported per step, and the load average before and after, so a busy machine shows.

Usage: make bench-load [BENCH_ARGS="--minutes 4 --step-seconds 10"]
       (or BENCH_DATABASE_URL=postgresql://… python bench/load.py …)
The data goes into a fresh database "<BENCH_DATABASE_URL's name>_load" on the primary of the pair.
Writes bench/out/load.json (and each step's locust CSVs in bench/out/load/).
"""
from __future__ import annotations

import argparse
import csv
import http.client
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(__file__))  # bench/isochrone.py imports its neighbours by bare name

import numpy as np  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import text  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.network import service  # noqa: E402
from bench.isochrone import origins, random_stations  # noqa: E402
from bench.nearest import OUT, log  # noqa: E402
from bench.synthetic_city import write_city  # noqa: E402
from bench.throughput import HOST, gunicorn  # noqa: E402
from tests.replica_cluster import (  # noqa: E402
    DEPLOYED_INI, PRIMARY_PORT, STANDBY_PORT, ensure_pair, fresh_database, pgbouncer, url, wait_replayed,
)

LOCUST = os.path.join(ROOT, ".venv", "bin", "locust")
LOCUSTFILE = os.path.join(ROOT, "bench", "locustfile.py")
STEP_OUT = os.path.join(OUT, "load")
P95_LIMIT_MS = 100
MIN_ACHIEVED = 0.95  # of the target rate: below it the stack (or the generator) did not keep up ...
POISSON_SIGMAS = 3  # ... or, on short steps, three standard deviations of a Poisson count below it
RAMP_S = 2  # every user started within this; statistics are reset after it
STEP_OVERHEAD_S = 8  # locust start-up, ramp and stop beyond --step-seconds, for the time budget
DEFAULT_RATES = "10,20,30,50,75,100,125,150,200,250,300,400,500,600,800,1000,1250,1600"
OPEN311_KEYS = 100  # a client application's key allows 60 reports a minute; the reports spread over these
ORG = "bench-city"
BUSY = 0.25  # load average per CPU before the run above which it warns that the machine is shared


def pool_size() -> int:
    """default_pool_size of deploy/pgbouncer.ini: the bench's poolers are sized as deployed."""
    with open(DEPLOYED_INI) as fh:
        return int(re.search(r"^default_pool_size = (\d+)$", fh.read(), re.M).group(1))


def build_city(base_url: str, args) -> tuple[str, dict]:
    """A fresh database on the primary with the synthetic city in it; its name and the users' spec."""
    t0 = time.perf_counter()
    name = fresh_database(base_url, "load")
    city = os.path.join(OUT, f"city_{args.size}.osm.pbf")
    bounds = write_city(city, args.size)
    # Migrations and imports run on the primary itself, not through the pooler (README: Replicas and pooling).
    app = create_app({"SQLALCHEMY_DATABASE_URI": url(PRIMARY_PORT, name)})
    with app.app_context():
        upgrade()
    store, ops = app.extensions["yizhan_store"], app.extensions["yizhan_ops"]
    store.upsert(random_stations(bounds, args.stations, random.Random(args.seed)), progress=lambda n: None)
    service.import_network(store, city, with_stations=False)
    ops.accounts.create_organisation(ORG, "负载测试城市")
    ops.accounts.assign_stations(ORG, source="bench")
    keys = [ops.accounts.create_open311_key(f"load test client {i}") for i in range(OPEN311_KEYS)]
    _, walk = service.GraphCache().get(store, "walk")
    points = origins(walk, 2000, np.random.default_rng(args.seed))
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
        low, high = conn.execute(text("SELECT min(id), max(id) FROM station")).one()
        db.engine.dispose()
    wait_replayed()
    log(f"city {args.size}x{args.size} ({walk.node_count:,} walk nodes), {args.stations:,} stations, "
        f"set up in {time.perf_counter() - t0:.0f} s")
    spec = {"bounds": [bounds["south"], bounds["west"], bounds["north"], bounds["east"]],
            "station_ids": [low, high], "network_points": [list(p) for p in points],
            "open311_keys": keys, "rate_per_user": args.rate_per_user}
    return name, spec


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def warm_up(port: int, spec: dict) -> None:
    """Both workers load both road graphs and open their pools before anything is timed."""
    lat, lng = spec["network_points"][0]
    paths = [f"/api/v1/service-circle?lat={lat}&lng={lng}&mode={mode}" for mode in ("walk", "ebike")] * 8
    paths += [f"/api/v1/stations/nearest?lat={lat}&lng={lng}"] * 16
    with ThreadPoolExecutor(4) as pool:  # concurrent, so both sync workers take some
        statuses = list(pool.map(lambda p: get(port, p), paths))
    if any(s != 200 for s in statuses):
        raise RuntimeError(f"warm-up answers: {statuses}")


def read_step(prefix: str) -> dict:
    """Locust's CSVs of one step: per endpoint and in all, counts, rate and percentiles; failures."""
    endpoints = {}
    with open(prefix + "_stats.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            endpoints[row["Name"]] = {
                "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                "req_per_s": round(float(row["Requests/s"]), 1),
                "p50_ms": float(row["50%"]), "p95_ms": float(row["95%"]), "p99_ms": float(row["99%"]),
            }
    errors = {}
    with open(prefix + "_failures.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            errors.setdefault(row["Name"], {})[row["Error"][:200]] = int(row["Occurrences"])
    return {"all": endpoints.pop("Aggregated"), "endpoints": endpoints, "errors": errors}


def min_achieved(rate: int, seconds: int) -> float:
    """The lowest achieved rate that still counts as keeping up: the phones ask at random moments,
    so a step's count varies by sqrt(count) even when the stack keeps up (at 50 req/s for 10 s,
    by 4.5 %)."""
    shortfall = max(1 - MIN_ACHIEVED, POISSON_SIGMAS / math.sqrt(rate * seconds))
    return rate * (1 - shortfall)


def run_step(port: int, rate: int, args, spec_path: str, label: str) -> dict:
    users = max(1, math.ceil(rate / args.rate_per_user))
    prefix = os.path.join(STEP_OUT, f"{label}_{rate}")
    cmd = [LOCUST, "-f", LOCUSTFILE, "--headless", "--host", f"http://{HOST}:{port}",
           "--users", str(users), "--spawn-rate", str(math.ceil(users / RAMP_S)),
           "--run-time", f"{args.step_seconds + RAMP_S}s", "--reset-stats", "--stop-timeout", "2",
           "--csv", prefix, "--only-summary", "--loglevel", "ERROR", "--exit-code-on-error", "0"]
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "YIZHAN_LOAD_SPEC": spec_path},
                          capture_output=True, text=True, timeout=args.step_seconds + 120)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        raise RuntimeError(f"locust exited with {done.returncode}: {done.stderr[-2000:]}")
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats = read_step(prefix)
    a = stats["all"]
    failed = sum(e["failures"] for e in stats["endpoints"].values())
    step = {
        "target_req_per_s": rate, "users": users, "achieved_req_per_s": a["req_per_s"],
        "p50_ms": a["p50_ms"], "p95_ms": a["p95_ms"], "p99_ms": a["p99_ms"], "requests": a["requests"],
        "errors": failed, "errors_by_endpoint": stats["errors"],
        "per_endpoint": stats["endpoints"],
        # The generator's own CPU, in cores: what it took from the app and the databases.
        "locust_cpu_cores": round((cpu_after.ru_utime + cpu_after.ru_stime
                                   - cpu_before.ru_utime - cpu_before.ru_stime) / wall, 2),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "wall_s": round(wall, 1),
    }
    reasons = []
    if failed:
        reasons.append(f"{failed} errors")
    if a["p95_ms"] >= P95_LIMIT_MS:
        reasons.append(f"p95 {a['p95_ms']:.0f} ms")
    if a["req_per_s"] < min_achieved(rate, args.step_seconds):
        reasons.append(f"achieved {a['req_per_s']:.0f} of {rate} req/s")
    step["passed"], step["why_not"] = not reasons, "; ".join(reasons) or None
    log(f"  [{label}] {rate:>5} req/s target: {a['req_per_s']:>7.1f} achieved, p50/p95/p99 "
        f"{a['p50_ms']:.0f}/{a['p95_ms']:.0f}/{a['p99_ms']:.0f} ms, {failed} errors, locust "
        f"{step['locust_cpu_cores']} cores -> {'pass' if step['passed'] else 'FAIL: ' + step['why_not']}")
    return step


def search(port: int, rates: list[int], start: int, args, spec_path: str, label: str, deadline: float) -> dict:
    """Up the list from ``start`` until a step fails; if the first step fails, down until one passes."""
    steps, best, stopped_by = [], None, "end of the --rates list"
    i, direction = start, 0
    while 0 <= i < len(rates):
        if time.monotonic() + args.step_seconds + STEP_OVERHEAD_S > deadline:
            stopped_by = "time budget (--minutes)"
            break
        step = run_step(port, rates[i], args, spec_path, label)
        steps.append(step)
        if step["passed"]:
            best = rates[i] if best is None else max(best, rates[i])
            if direction < 0:
                stopped_by = "first passing step on the way down"
                break
            direction, i = 1, i + 1
        else:
            if direction > 0:
                stopped_by = "first failing step"
                break
            direction, i = -1, i - 1
    else:
        if i < 0:
            stopped_by = "no step passed"
    return {"highest_passing_req_per_s": best, "stopped_by": stopped_by, "steps": steps}


def save(results: dict) -> None:
    with open(os.path.join(OUT, "load.json"), "w") as fh:
        json.dump(results, fh, indent=2, ensure_ascii=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8, help="the whole run's bound, set-up included")
    parser.add_argument("--step-seconds", type=int, default=20, help="measured seconds per step")
    parser.add_argument("--rates", default=DEFAULT_RATES, help="comma list of target req/s")
    parser.add_argument("--start-rate", type=int, default=100, help="the first step (the next listed rate at or above)")
    # A phone in use asks every few seconds (map pans, a circle, a look at a station). Its own writes
    # send its reads to the primary for the write window (app/replicas.py, 12 s with the default lag
    # limit): at 0.25 req/s with 5 % writes, about 14 % of a phone's reads (1 - e^(-12 x 0.0125)).
    parser.add_argument("--rate-per-user", type=float, default=0.25,
                        help="requests per second per simulated phone (users = rate / this)")
    parser.add_argument("--size", type=int, default=250,
                        help="synthetic city grid side (250: 62,500 junctions, 15 km across)")
    parser.add_argument("--stations", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rates = sorted({int(r) for r in args.rates.split(",") if r.strip()})
    if not rates or rates[0] < 1 or args.step_seconds < 5 or args.minutes <= 0 or args.rate_per_user <= 0:
        parser.error("--rates must be positive, --step-seconds at least 5, --minutes and --rate-per-user above 0")
    pg_base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not pg_base:
        sys.exit("set BENCH_DATABASE_URL (make bench-load does)")
    if not os.path.exists(LOCUST):
        sys.exit("locust is not installed in .venv: make bench-load installs bench/requirements-bench.txt")
    if not shutil.which("pgbouncer") and not os.path.exists("/usr/sbin/pgbouncer"):
        sys.exit("pgbouncer is not installed: make pgbouncer")
    deadline = time.monotonic() + args.minutes * 60
    # SIGTERM ends the run through the same clean-up as an error: servers and poolers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(STEP_OUT, exist_ok=True)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    if load_at_start[0] > BUSY * (os.cpu_count() or 1):
        log(f"WARNING: load average {load_at_start[0]} on {os.cpu_count()} CPUs before the run: something else is "
            "busy here, and the figures will be this machine's share, not its capacity")

    ensure_pair()
    name, spec = build_city(pg_base, args)
    spec_path = os.path.join(STEP_OUT, "spec.json")
    with open(spec_path, "w") as fh:
        json.dump(spec, fh)

    results = {
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                 capture_output=True, text=True).stdout.strip(),
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": load_at_start,
                    "note": "locust, gunicorn, both PgBouncers and both PostgreSQL clusters share these CPUs"},
        "setup": {"city_size": args.size, "stations": args.stations, "gunicorn": f"-w {args.workers} sync",
                  "pgbouncer_pool_size": pool_size(), "step_seconds": args.step_seconds,
                  "rate_per_user": args.rate_per_user, "mix": {"nearest": 80, "bbox": 10, "service_circle": 5,
                                                               "report": 3, "rating": 2},
                  "pass": f"p95 < {P95_LIMIT_MS} ms, 0 errors, achieved >= {MIN_ACHIEVED:.0%} of target "
                          f"(or target - {POISSON_SIGMAS} Poisson standard deviations, if lower)"},
        "configurations": {},
    }
    with pgbouncer(PRIMARY_PORT, pool_size()) as primary, pgbouncer(STANDBY_PORT, pool_size()) as standby:
        configurations = {"replica": url(standby, name), "primary_only": ""}
        start = next((i for i, r in enumerate(rates) if r >= args.start_rate), len(rates) - 1)
        for n, (label, replicas) in enumerate(configurations.items()):
            env = {"DATABASE_URL": url(primary, name), "DATABASE_REPLICA_URLS": replicas,
                   "YIZHAN_DB_PGBOUNCER": "1", "YIZHAN_PROXY_HOPS": "1",
                   "YIZHAN_SECRET_KEY": "load-test-only-" + "x" * 32,
                   "YIZHAN_UPLOAD_DIR": os.path.join(STEP_OUT, "uploads")}
            # Each configuration gets an equal share of the time left.
            share = time.monotonic() + (deadline - time.monotonic()) / (len(configurations) - n)
            log(f"[{label}] gunicorn -w {args.workers} sync; PgBouncer -> primary"
                + (" and PgBouncer -> standby" if replicas else " only"))
            with gunicorn("wsgi:app", env, args.workers, "sync", 1, os.path.join(STEP_OUT, f"gunicorn_{label}.log"),
                          "/api/v1/meta") as port:
                warm_up(port, spec)
                found = search(port, rates, start, args, spec_path, label, share)
            results["configurations"][label] = found
            results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
            save(results)  # after each configuration: what was measured survives a later failure
            best = found["highest_passing_req_per_s"]
            if best is not None:
                start = max(0, rates.index(best) - 2)
    print(json.dumps(results, indent=2, ensure_ascii=False))
    print()
    for label, found in results["configurations"].items():
        print(f"{label:13} highest sustained: {found['highest_passing_req_per_s']} req/s "
              f"(stopped by {found['stopped_by']})")
        for s in found["steps"]:
            print(f"  {s['target_req_per_s']:>5} -> {s['achieved_req_per_s']:>7.1f} req/s  p50/p95/p99 "
                  f"{s['p50_ms']:.0f}/{s['p95_ms']:.0f}/{s['p99_ms']:.0f} ms  errors {s['errors']}  "
                  f"{'pass' if s['passed'] else 'fail: ' + s['why_not']}")
    print(f"\nload average before / after: {load_at_start[0]} / {results['load_average_at_end'][0]} "
          f"on {os.cpu_count()} CPUs; written to {os.path.join(OUT, 'load.json')}")


if __name__ == "__main__":
    main()
