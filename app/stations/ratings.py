"""Satisfaction ratings of stations: 1–5 stars and optional tags, one per device per station per
12 hours (a repeat within the window replaces the earlier rating; after it, it is a new one).

The answers show a Bayesian average, never a bare mean of two votes: every station starts with
PRIOR_WEIGHT imaginary ratings of PRIOR_MEAN stars, so a few votes move it only a little and many
votes take it to their own mean. A fixed prior (not the mean over all stations) keeps a
station's figure independent of every other station's ratings and checkable by hand.

No Flask here: the device is an opaque hash the caller derives (from a signed cookie).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text

from app.dbtime import from_db, to_db
from app.stations.model import Station

STARS = (1, 2, 3, 4, 5)
PRIOR_MEAN = 3.5
PRIOR_WEIGHT = 5
# A device's repeat within this window replaces its earlier rating of the same station.
WINDOW = timedelta(hours=12)
MAX_TAGS = 6

# The tags people may attach, with their labels (data: /api/v1/meta publishes them).
TAGS: dict[str, dict[str, str]] = {
    "clean": {"zh-CN": "干净", "en": "Clean"},
    "smelly": {"zh-CN": "有异味", "en": "Smelly"},
    "no_paper": {"zh-CN": "缺纸", "en": "No paper"},
    "slippery": {"zh-CN": "地面湿滑", "en": "Slippery floor"},
    "broken": {"zh-CN": "设施损坏", "en": "Something broken"},
    "friendly": {"zh-CN": "服务热情", "en": "Friendly staff"},
}


def bayesian_average(count: int, total: int) -> float | None:
    """(PRIOR_WEIGHT × PRIOR_MEAN + sum of stars) ÷ (PRIOR_WEIGHT + count), to 2 decimals; None
    without ratings."""
    if count <= 0:
        return None
    return round((PRIOR_WEIGHT * PRIOR_MEAN + total) / (PRIOR_WEIGHT + count), 2)


def rating_of(station: Station) -> dict | None:
    """What answers show: ``{"average", "count"}``, or None when nobody has rated it."""
    average = bayesian_average(station.rating_count, station.rating_sum)
    return None if average is None else {"average": average, "count": station.rating_count}


class UnknownStation(LookupError):
    pass


@dataclass(frozen=True)
class Rated:
    station_id: int
    stars: int
    tags: tuple[str, ...]
    replaced: bool  # True: it replaced this device's rating from within the window
    count: int
    total: int

    @property
    def rating(self) -> dict:
        return {"average": bayesian_average(self.count, self.total), "count": self.count}


class Ratings:
    """Writes ratings and the station's totals in one transaction of the station store."""

    def __init__(self, store):
        self._store = store

    def rate(self, station_id: int, device_hash: str, stars: int, tags, now: datetime) -> Rated:
        if stars not in STARS:
            raise ValueError(f"stars must be 1 to 5, got {stars!r}")
        unknown = [t for t in tags if t not in TAGS]
        if unknown:
            raise ValueError(f"unknown tag {unknown[0]!r}")
        kept = tuple(t for t in TAGS if t in set(tags))  # vocabulary order, no repeats
        with self._store.transaction() as conn:
            dialect = conn.dialect.name
            # Lock the station row first: two ratings of one station (or one device's double tap)
            # then follow each other, so "is there one within the window?" cannot race.
            lock = " FOR UPDATE" if dialect == "postgresql" else ""
            found = conn.execute(text(f"SELECT status FROM station WHERE id = :id{lock}"), {"id": station_id}).first()
            if found is None or found.status == "removed":
                raise UnknownStation(station_id)
            earlier = conn.execute(text(
                "SELECT id, stars FROM station_rating WHERE station_id = :sid AND device_hash = :dev"
                " AND created_at > :since ORDER BY created_at DESC LIMIT 1"),
                {"sid": station_id, "dev": device_hash, "since": to_db(now - WINDOW, dialect)}).first()
            stamp = to_db(now, dialect)
            if earlier is not None:
                conn.execute(text("UPDATE station_rating SET stars = :stars, tags = :tags, updated_at = :now"
                                  " WHERE id = :id"),
                             {"stars": stars, "tags": json.dumps(kept), "now": stamp, "id": earlier.id})
                added, delta = 0, stars - earlier.stars
            else:
                conn.execute(text("INSERT INTO station_rating (station_id, device_hash, stars, tags, created_at,"
                                  " updated_at) VALUES (:sid, :dev, :stars, :tags, :now, :now)"),
                             {"sid": station_id, "dev": device_hash, "stars": stars, "tags": json.dumps(kept),
                              "now": stamp})
                added, delta = 1, stars
            # Totals move by the difference, never recounted: the row is locked, so this is exact.
            count, total = conn.execute(text(
                "UPDATE station SET rating_count = rating_count + :added, rating_sum = rating_sum + :delta"
                " WHERE id = :id RETURNING rating_count, rating_sum"),
                {"added": added, "delta": delta, "id": station_id}).one()
        return Rated(station_id, stars, kept, earlier is not None, count, total)

    def of_device(self, station_id: int, device_hash: str) -> list[dict]:
        """A device's ratings of a station, oldest first (for tests and support)."""
        with self._store.reading() as conn:
            rows = conn.execute(text(
                "SELECT stars, tags, created_at, updated_at FROM station_rating"
                " WHERE station_id = :sid AND device_hash = :dev ORDER BY created_at, id"),
                {"sid": station_id, "dev": device_hash}).all()
        return [{"stars": r.stars, "tags": json.loads(r.tags), "created_at": from_db(r.created_at),
                 "updated_at": from_db(r.updated_at)} for r in rows]
