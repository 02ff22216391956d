"""Benchmark: the 15-minute service circle on a 100k-node city and on real OSM data.

Prints, from one run:
  * network import: reading + building the graphs (nodes/s);
  * isochrone p50/p95: the bounded search alone, search + polygon, and the whole
    service circle through the store (candidates, snapping, travel times, polygon);
  * service-area precompute rate (stations/s), through the CLI's code path;
  * the reference peer in the same run, on the same graph loaded into PostGIS:
    pgRouting's pgr_drivingDistance from the same start nodes with the same limit
    (given only the edges in the search's bounding box, as one would in practice),
    and the ratio pgRouting time / our search time. Reached-node counts are
    compared as a sanity check.

Usage: make bench-network   (or BENCH_DATABASE_URL=postgresql://… python bench/isochrone.py)
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from flask_migrate import upgrade  # noqa: E402

from app import create_app  # noqa: E402
from app.config import normalise_database_url  # noqa: E402
from app.extensions import db  # noqa: E402
from app.geo.geodesic import boxes_within  # noqa: E402
from app.network import service  # noqa: E402
from app.network.isochrone import reach_from, reach_polygon  # noqa: E402
from app.network.osm_import import read_extract  # noqa: E402
from app.stations.backends import drop_all_tables  # noqa: E402
from app.stations.model import StationFilter, StationInput  # noqa: E402
from nearest import bench_db_url, log, percentile  # noqa: E402
from synthetic_city import write_city  # noqa: E402

OUT = os.path.join(ROOT, "bench", "out")
SPEEDS = {"walk": 4.8, "ebike": 15.0}
AT = datetime(2026, 11, 26, 12, tzinfo=ZoneInfo("Asia/Shanghai"))


def stats(ms):
    return {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(percentile(ms, 0.95), 2), "n": len(ms)}


def origins(graph, n, rng):
    """Random points near random nodes (so most snap), reproducible."""
    idx = rng.choice(graph.node_count, n)
    return [(float(graph.node_lat[i]) + rng.normal(0, 0.0002), float(graph.node_lng[i]) + rng.normal(0, 0.0002))
            for i in idx]


def time_search_and_polygon(graph, points, limit_m):
    search, full, reached = [], [], []
    for lat, lng in points:
        t0 = time.perf_counter()
        reach = reach_from(graph, lat, lng, limit_m)
        t1 = time.perf_counter()
        if reach is None:
            continue
        reach_polygon(reach, (lat, lng))
        t2 = time.perf_counter()
        search.append((t1 - t0) * 1000)
        full.append((t2 - t0) * 1000)
        reached.append(int(np.isfinite(reach.costs).sum()))
    return search, full, reached


def create_extensions(url: str) -> None:
    """PostGIS (the store) and pgRouting (the peer, which needs PostGIS first), if the database lacks them.

    The store's first migration would create PostGIS too, but pgRouting is loaded
    before the store here, so a database no benchmark has used yet needs both now.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgrouting")


def load_pgrouting(conn, graph, mode):
    conn.execute("DROP TABLE IF EXISTS bench_edges")
    conn.execute(
        "CREATE TABLE bench_edges (id bigint, source bigint, target bigint, cost float8, reverse_cost float8,"
        " geom geometry(LineString, 4326))"
    )
    with conn.cursor().copy("COPY bench_edges (id, source, target, cost, reverse_cost, geom) FROM STDIN") as copy:
        for s in range(graph.segment_count):
            u, v = int(graph.seg_u[s]), int(graph.seg_v[s])
            length = float(graph.seg_len[s])
            copy.write_row((
                s + 1, u + 1, v + 1,
                length if graph.seg_fwd[s] else -1.0, length if graph.seg_bwd[s] else -1.0,
                f"SRID=4326;LINESTRING({graph.node_lng[u]} {graph.node_lat[u]},{graph.node_lng[v]} {graph.node_lat[v]})",
            ))
    conn.execute("CREATE INDEX ON bench_edges USING gist (geom)")
    conn.execute("ANALYZE bench_edges")


def time_pgrouting(conn, graph, points, limit_m):
    times, reached = [], []
    for lat, lng in points:
        snap = graph.snap(lat, lng, 300)
        if snap is None:
            continue
        start = int(graph.seg_u[snap.segment])
        (box,) = boxes_within(float(graph.node_lat[start]), float(graph.node_lng[start]), limit_m)
        edges_sql = (
            "SELECT id, source, target, cost, reverse_cost FROM bench_edges WHERE geom && "
            f"ST_MakeEnvelope({box.west}, {box.south}, {box.east}, {box.north}, 4326)"
        )
        t0 = time.perf_counter()
        count = conn.execute(
            "SELECT count(*) FROM pgr_drivingDistance(%s, %s, %s, directed => true)",
            (edges_sql, start + 1, limit_m),
        ).fetchone()[0]
        times.append((time.perf_counter() - t0) * 1000)
        reached.append(count)
    return times, reached


def time_our_search_from_nodes(graph, points, limit_m):
    """Our search from the same start node pgRouting gets (no snap legs), for a like-for-like ratio."""
    times, reached = [], []
    graph.costs_from([(0, 0.0)], 1.0)  # build the matrix outside the timings
    for lat, lng in points:
        snap = graph.snap(lat, lng, 300)
        if snap is None:
            continue
        start = int(graph.seg_u[snap.segment])
        t0 = time.perf_counter()
        costs = graph.costs_from([(start, 0.0)], limit_m)
        times.append((time.perf_counter() - t0) * 1000)
        reached.append(int(np.isfinite(costs).sum()))
    return times, reached


def random_stations(bounds, n, rng):
    kinds = ["toilet", "rest_station", "water_point", "battery_swap", "charging"]
    return [
        StationInput(
            source="bench", source_id=f"c{i}", name=f"站点{i}", kind=kinds[i % 5],
            lat=rng.uniform(bounds["south"], bounds["north"]), lng=rng.uniform(bounds["west"], bounds["east"]),
            opening_hours="24/7" if i % 2 else None,
        )
        for i in range(n)
    ]


def main():
    parser = argparse.ArgumentParser(description="isochrone / service-area benchmark with pgRouting as the peer")
    parser.add_argument("--size", type=int, default=320, help="synthetic grid side (320 -> 102,400 nodes)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--stations", type=int, default=20_000)
    parser.add_argument("--service-areas", type=int, default=300)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    pg_base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not pg_base:
        sys.exit("set BENCH_DATABASE_URL (make bench-network does)")
    rng = np.random.default_rng(args.seed)
    city = os.path.join(OUT, f"city_{args.size}.osm.pbf")
    bounds = write_city(city, args.size)
    extracts = {"synthetic": city, "helsinki": os.path.join(ROOT, "data", "osm", "helsinki.osm.pbf")}
    url = bench_db_url(pg_base)
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    create_extensions(plain)
    results = {}
    for name, path in extracts.items():
        log(f"[{name}] reading {path}")
        t0 = time.perf_counter()
        graphs, _ = read_extract(path)
        read_s = time.perf_counter() - t0
        entry = {"import_s": round(read_s, 2), "modes": {}}
        for mode, graph in graphs.items():
            limit_m = SPEEDS[mode] * 1000 / 60 * 15
            points = origins(graph, args.queries, rng)
            search, full, reached = time_search_and_polygon(graph, points, limit_m)
            ours_node, ours_reached = time_our_search_from_nodes(graph, points, limit_m)
            with psycopg.connect(plain, autocommit=True) as conn:
                load_pgrouting(conn, graph, mode)
                pgr, pgr_reached = time_pgrouting(conn, graph, points, limit_m)
            entry["modes"][mode] = {
                "nodes": graph.node_count,
                "segments": graph.segment_count,
                "reached_nodes_median": int(statistics.median(reached)),
                "search": stats(search),
                "search_and_polygon": stats(full),
                "search_from_node": stats(ours_node),
                "pgr_drivingDistance": stats(pgr),
                "pgr_over_ours_p50": round(statistics.median(pgr) / statistics.median(ours_node), 1),
                # pgRouting counts a node once per tree edge; ours counts nodes within the limit
                "reached_nodes_ours_vs_pgr_median": [int(statistics.median(ours_reached)),
                                                     int(statistics.median(pgr_reached))],
            }
            log(f"[{name}/{mode}] {json.dumps(entry['modes'][mode])}")
        results[name] = entry

    # The whole service circle and the service-area precompute, through the store, on the synthetic city.
    log("[synthetic] importing into PostGIS with random stations")
    app = create_app({"SQLALCHEMY_DATABASE_URI": normalise_database_url(url)})
    with app.app_context():
        drop_all_tables(db.engine)
        upgrade()
    store = app.extensions["yizhan_store"]
    py_rng = random.Random(args.seed)
    store.upsert(random_stations(bounds, args.stations, py_rng))
    t0 = time.perf_counter()
    service.import_network(store, city, with_stations=False)
    results["synthetic"]["import_into_store_s"] = round(time.perf_counter() - t0, 2)
    cache = service.GraphCache()
    circle = {}
    for mode in ("walk", "ebike"):
        _, graph = cache.get(store, mode)
        times, counts = [], []
        for lat, lng in origins(graph, args.queries, rng):
            t0 = time.perf_counter()
            c = service.service_circle(store, graph, lat, lng, minutes=15, mode=mode, speed_kmh=SPEEDS[mode],
                                       flt=StationFilter(), at=AT, limit=50)
            times.append((time.perf_counter() - t0) * 1000)
            counts.append(len(c.results))
        circle[mode] = {**stats(times), "stations_reachable_median": int(statistics.median(counts))}
    results["synthetic"]["service_circle_via_store"] = circle

    # Service areas for a sample of stations: the CLI's code path.
    with app.app_context(), db.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE station SET status = 'closed' WHERE id NOT IN (SELECT id FROM station ORDER BY id LIMIT %d)"
            % args.service_areas
        )
    run = service.refresh_service_areas(store, cache, mode="walk", minutes=15, speed_kmh=SPEEDS["walk"])
    results["synthetic"]["service_areas"] = {
        "stations": run.computed, "seconds": round(run.seconds, 2),
        "stations_per_s": round(run.computed / run.seconds, 1),
    }
    with app.app_context():
        db.engine.dispose()

    print(json.dumps(results, indent=2))
    print()
    print(f"{'graph/mode':18} {'nodes':>8} {'search p50/p95':>16} {'+polygon p50/p95':>18} {'pgRouting p50':>14} {'ratio':>6}")
    for name, entry in results.items():
        for mode, m in entry["modes"].items():
            print(f"{name + '/' + mode:18} {m['nodes']:>8,} {m['search']['p50_ms']:>7.2f}/{m['search']['p95_ms']:<8.2f}"
                  f"{m['search_and_polygon']['p50_ms']:>8.2f}/{m['search_and_polygon']['p95_ms']:<9.2f}"
                  f"{m['pgr_drivingDistance']['p50_ms']:>14.2f} {m['pgr_over_ours_p50']:>5}x")
    syn = results["synthetic"]
    for mode, c in syn["service_circle_via_store"].items():
        print(f"service circle via store, synthetic/{mode}: p50 {c['p50_ms']} ms, p95 {c['p95_ms']} ms "
              f"({c['stations_reachable_median']} stations reachable, median)")
    print(f"service areas: {syn['service_areas']['stations_per_s']} stations/s "
          f"({syn['service_areas']['stations']} stations, walk 15 min)")


if __name__ == "__main__":
    main()
