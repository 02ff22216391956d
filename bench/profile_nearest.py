"""Where a nearest-10 request's time goes: cProfile over the WSGI app, no HTTP.

Runs 3,000 nearest-10 requests at seeded random points against an already loaded PostGIS
database, first without the profiler (the per-request figure), then with it, and prints
the share of the time spent in each part. ROOT is a checkout of this repository — this
one, or another commit's (`git worktree add /tmp/before <commit>`) to compare code
against code on the same data.

Usage: python bench/profile_nearest.py ROOT DATABASE_URL
(e.g. DATABASE_URL=postgresql+psycopg:///yizhan_throughput?host=/var/run/postgresql,
loaded by `make bench-throughput`)
"""
from __future__ import annotations

import cProfile
import pstats
import random
import sys
import time

REQUESTS, WARMUP = 3000, 300
# Inside the area bench/nearest.py fills (27.38-28.28 N, 112.64-113.66 E), off its edges.
SOUTH, NORTH, WEST, EAST = 27.43, 28.23, 112.69, 113.61
PARTS = {
    "geodesic distances": lambda f: f[2] in ("distance_m", "distances_m") and "geodesic" in f[0],
    "opening hours": lambda f: f[2] == "evaluate" and "hours" in f[0],
    "database (waiting on the driver)": lambda f: f[2] == "wait" and f[0].endswith("psycopg/connection.py"),
    "SQLAlchemy execute": lambda f: f[2] == "execute" and "sqlalchemy/engine/base" in f[0],
    "serialise + JSON": lambda f: (f[2] == "jsonify" and "flask" in f[0]) or (f[2] == "nearest" and "serialize" in f[0]),
    "gzip (Flask-Compress)": lambda f: f[2] == "after_request" and "flask_compress" in f[0],
}


def main(root: str, url: str) -> None:
    sys.path.insert(0, root)
    from werkzeug.test import EnvironBuilder

    from app import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    rng = random.Random(1)
    environs = [
        EnvironBuilder(path="/api/v1/stations/nearest", headers={"Accept-Encoding": "gzip"},
                       query_string=f"lat={rng.uniform(SOUTH, NORTH)}&lng={rng.uniform(WEST, EAST)}&limit=10",
                       ).get_environ()
        for _ in range(REQUESTS)
    ]

    def call(environ):
        b"".join(app.wsgi_app(dict(environ), lambda status, headers, exc_info=None: None))

    for environ in environs[:WARMUP]:
        call(environ)
    started = time.perf_counter()
    for environ in environs:
        call(environ)
    per_request = (time.perf_counter() - started) / REQUESTS * 1000
    profile = cProfile.Profile()
    profile.enable()
    for environ in environs:
        call(environ)
    profile.disable()
    stats = pstats.Stats(profile).stats
    total = sum(v[3] for f, v in stats.items() if f[2] == "wsgi_app")
    print(f"{root}: {per_request:.3f} ms per request (WSGI, no HTTP, no profiler)")
    for name, matches in PARTS.items():
        share = sum(v[3] for f, v in stats.items() if matches(f)) / total
        print(f"  {name:34s} {share:6.1%}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
