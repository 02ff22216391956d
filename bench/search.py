"""Benchmark: search by name (issue #10) on both stores.

Stations with realistic Chinese names and addresses (random points as in bench/nearest.py,
names from bench/synthetic_city.py's words) plus the synthetic city's named streets, then
suggestion latency p50/p95 for a mix of query shapes (1 and 2 characters, full pinyin,
initials, 2-letter initials, mixed) from random map centres:
  * through the store (app.search.service.search: index lookup, check, rank);
  * over HTTP (gunicorn, one sync worker, a new connection per request);
  * beside, in the same run, the same question answered naively: ``LIKE '%q%'`` on name,
    address and operator, nearest first, 8 rows (see naive_times).

Usage: make bench-search   (or: BENCH_DATABASE_URL=postgresql://… python bench/search.py [--rows N])
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import sys
import time
import urllib.parse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(__file__))

from sqlalchemy import text  # noqa: E402

from app import create_app  # noqa: E402
from app.config import normalise_database_url  # noqa: E402
from app.extensions import db  # noqa: E402
from app.network.osm_import import read_extract  # noqa: E402
from app.search.places import PlaceCollector  # noqa: E402
from app.search.service import search  # noqa: E402
from app.search.text import normalise, units  # noqa: E402
from app.stations.model import StationInput  # noqa: E402
from nearest import EAST, NORTH, OUT, SOUTH, WEST, bench_db_url, fresh_app, log, summary  # noqa: E402
from synthetic_city import DIRECTIONS, NAME_WORDS, write_city  # noqa: E402
from throughput import gunicorn  # noqa: E402

KIND_WORDS = {"toilet": "公厕", "rest_station": "驿站", "water_point": "饮水点", "battery_swap": "换电柜",
              "charging": "充电站"}
OPERATORS = ("城管局", "环卫处", "铁塔能源", "e换电", "街道办")


def make_stations(rows: int, seed: int) -> list[StationInput]:
    rng = random.Random(seed)
    out = []
    for i in range(rows):
        kind = rng.choice(list(KIND_WORDS))
        road = rng.choice(NAME_WORDS) + rng.choice(DIRECTIONS) + rng.choice("路街")
        out.append(StationInput(
            source="bench-search", source_id=str(i), name=f"{road}{rng.choice('东西南北中')}{KIND_WORDS[kind]}",
            kind=kind, lat=rng.uniform(SOUTH, NORTH), lng=rng.uniform(WEST, EAST),
            address=f"{road}{rng.randint(1, 300)}号", operator=rng.choice(OPERATORS)))
    return out


# The query shapes people type, each as (example, how it is made from a street word and a direction).
SHAPES = [
    ("人", lambda w, d: w[0]),
    ("人民", lambda w, d: w),
    ("renmindong", lambda w, d: "".join(u.reading for u in units(w + d))),
    ("rmdl", lambda w, d: "".join(u.reading[0] for u in units(w + d + "路"))),
    ("rm", lambda w, d: "".join(u.reading[0] for u in units(w))),
    ("人民d", lambda w, d: w + units(d)[0].reading[0]),
]


def make_queries(n: int, seed: int) -> list[tuple[str, tuple[float, float]]]:
    """(raw query, near) pairs: an even mix of the shapes people type."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        word, direction = rng.choice(NAME_WORDS), rng.choice(DIRECTIONS[:10])
        near = (rng.uniform(SOUTH, NORTH), rng.uniform(WEST, EAST))
        out.append((SHAPES[i % len(SHAPES)][1](word, direction), near))
    return out


def reused_app(url: str, rows: int):
    """An app on ``url`` when its store is at the schema's head and holds ``rows`` stations of
    this benchmark (``--reuse``); None otherwise."""
    from flask_migrate import upgrade

    app = create_app({"SQLALCHEMY_DATABASE_URI": normalise_database_url(url)})
    try:
        with app.app_context():
            upgrade()
            held = db.session.execute(text("SELECT count(*) FROM station WHERE source = 'bench-search'")).scalar()
    except Exception as exc:  # no such database or tables: load it
        log(f"not reusing {url}: {exc.__class__.__name__}")
        return None
    return app if held == rows else None


def timed(fn, items, warmup=10):
    times = []
    for i, item in enumerate(items):
        t0 = time.perf_counter()
        fn(item)
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    return times


def http_times(url: str, queries) -> list[float]:
    """Each query over HTTP to one gunicorn worker (bench/throughput.py's server, its log in OUT)."""
    log_path = os.path.join(OUT, "gunicorn_search.log")
    with gunicorn("wsgi:app", {"DATABASE_URL": url}, 1, "sync", 1, log_path, "/api/v1/meta") as port:
        def one(item):
            q, (lat, lng) = item
            conn = http.client.HTTPConnection("127.0.0.1", port)
            conn.request("GET", "/api/v1/search?" + urllib.parse.urlencode({"q": q, "near": f"{lat},{lng}"}))
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status != 200 or not json.loads(body)["results"]:
                raise RuntimeError(f"bad answer for {q!r}: {resp.status} {body[:200]!r}")

        return timed(one, queries)


def naive_times(app, queries) -> list[float]:
    """The same question answered naively: ``LIKE '%q%'`` on the name, address and operator of
    every active station, nearest to the map centre first (the ranking's squared-degree
    measure), the first 8 — a full scan and a sort of every match, on either store."""
    with app.app_context():
        engine = db.engine
    sql = text(
        "SELECT id, name FROM station WHERE status = 'active'"
        " AND (name LIKE :p OR address LIKE :p OR operator LIKE :p)"
        " ORDER BY (lat - :lat) * (lat - :lat) + (lng - :lng) * (lng - :lng) * :kx, id LIMIT 8")

    def one(item):
        q, (lat, lng) = item
        conn.execute(sql, {"p": f"%{normalise(q)}%", "lat": lat, "lng": lng,
                           "kx": math.cos(math.radians(lat)) ** 2}).all()

    with engine.connect() as conn:
        return timed(one, queries, warmup=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument("--naive-queries", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reuse", action="store_true",
                        help="keep stores that already hold --rows stations (made by an earlier run with this seed)")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    made: list[StationInput] = []

    def stations() -> list[StationInput]:
        """The stations, made once, when a store needs loading."""
        if not made:
            t0 = time.perf_counter()
            made.extend(make_stations(args.rows, args.seed))
            log(f"{args.rows:,} stations with search keys made in {time.perf_counter() - t0:.1f}s")
        return made

    collector = PlaceCollector()
    city = os.path.join(OUT, "search_city.osm.pbf")
    write_city(city)
    read_extract(city, places=collector)
    places = collector.places()
    log(f"{len(places):,} named streets from the synthetic city")
    queries = make_queries(args.queries, args.seed)
    urls = {"sqlite": f"sqlite:///{os.path.join(OUT, 'search.sqlite3')}",
            "postgis": bench_db_url(os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/x"))}
    results = {}
    for name, url in urls.items():
        app = reused_app(url, args.rows) if args.reuse else None
        load_s = None
        if app is None:
            app = fresh_app(url)
            t0 = time.perf_counter()
            app.extensions["yizhan_store"].upsert(stations())
            app.extensions["yizhan_store"].replace_places(places)
            load_s = round(time.perf_counter() - t0, 1)
        store = app.extensions["yizhan_store"]
        t0 = time.perf_counter()
        store.analyze_search()  # as the import commands do
        analyze_s = time.perf_counter() - t0
        log(f"{name}: loaded in {load_s}s (None: reused), search statistics in {analyze_s:.1f}s")
        search_ms = timed(lambda item: search(store, normalise(item[0]), item[1], 8), queries, warmup=0)
        store_ms = search_ms[10:]  # after a warm-up, as over HTTP
        by_shape = {example: summary(search_ms[i + len(SHAPES)::len(SHAPES)])["p95_ms"]
                    for i, (example, _) in enumerate(SHAPES)}
        http_ms = http_times(url, queries)
        naive_ms = naive_times(app, queries[:args.naive_queries])
        results[name] = {"load_s": load_s, "analyze_s": round(analyze_s, 1), "store": summary(store_ms), "http": summary(http_ms),
                         "store_p95_by_shape_ms": by_shape,
                         "naive_like_scan": summary(naive_ms),
                         "naive_p95_over_store_p95": round(summary(naive_ms)["p95_ms"] / summary(store_ms)["p95_ms"], 1)}
        log(f"{name}: {json.dumps(results[name])}")
    print(json.dumps({"rows": args.rows, "streets": len(places), "queries": args.queries, "results": results},
                     indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
