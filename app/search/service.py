"""Search by name: candidates from the store's index, checked and ranked here (no Flask).

Ranking: the match's tier (the whole name, then its start, then elsewhere, then typo-tolerant),
then distance from ``near`` (none: no distance), then the type (station, street, place), then
the shorter name, then the id — so equal inputs always give the same order on both stores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

from app.dbtime import utcnow
from app.geo.geodesic import distances_m
from app.search.text import (
    FUZZY, OTHER, PREFIX, Match, fuzzy_match, fuzzy_patterns, key_units, match, patterns, prefix_patterns,
)
from app.stations.model import Place, Station
from app.stations.store import StationStore

# Candidates asked per table in a round: the nearest ones when there is a point. The first
# round asks for the list's length and 2 more (the exact check rejects few; a box round's cost
# grows with what it is asked for); a round whose candidates leave the list short while more
# may match asks again for 4x as many, up to MAX_CANDIDATES, so a common query (人) reads a
# few hundred stations, never thousands.
MAX_CANDIDATES = 1024
TYPE_ORDER = {"station": 0, "street": 1, "place": 2}
STATION_FIELDS = ("name", "address", "operator")


@dataclass(frozen=True)
class SearchHit:
    type: str  # station, street, place
    id: int | None  # the station's id; None for streets and places
    name: str
    kind: str
    matched: str  # name, address, operator
    match: str  # exact, prefix, substring, pinyin, initials, fuzzy
    tier: int
    lat: float  # WGS-84
    lng: float
    distance_m: float | None


def first_round(limit: int) -> int:
    """Candidates asked per table in a query's first round."""
    return limit + 2


def search(store: StationStore, query: str, near: tuple[float, float] | None, limit: int) -> list[SearchHit]:
    """The best ``limit`` stations, streets and places for the normalised ``query``; stations
    closed, removed or closed by staff for now are never suggested.

    Exact and prefix matches rank before all others, so they are looked for first, by the
    patterns that start a form (``prefix_patterns``); only when fewer than ``limit`` of them
    are found does a second round look for matches anywhere (``patterns``). The typo-tolerant
    round runs only when nothing matched at all. A query with no usable pattern (one letter
    or digit) finds nothing, without asking the database.
    """
    found: dict[tuple, SearchHit] = {}
    front = prefix_patterns(query)
    if front:
        for hit in _nearest_hits(store, query, front, near, match, limit, PREFIX):
            found.setdefault(_identity(hit), hit)
    if len(found) < limit:
        for hit in _nearest_hits(store, query, patterns(query), near, match, limit, OTHER):
            found.setdefault(_identity(hit), hit)
    if not found:
        for hit in _nearest_hits(store, query, fuzzy_patterns(query), near, fuzzy_match, limit, FUZZY):
            found.setdefault(_identity(hit), hit)
    ranked = sorted(found.values(), key=lambda h: (h.tier, h.distance_m if h.distance_m is not None else 0.0,
                                                   TYPE_ORDER[h.type], len(h.name), h.id or 0, h.name))
    return ranked[:limit]


def _identity(hit: SearchHit) -> tuple:
    return (hit.type, hit.id, hit.name, hit.lat, hit.lng) if hit.id is None else (hit.type, hit.id)


def _nearest_hits(store, query, pats, near, check, limit, worst_tier) -> list[SearchHit]:
    """The hits of tier ``worst_tier`` or better among the nearest candidates of ``pats``
    (nearest to ``near``; by id without it), with enough candidates for ``limit`` of them.

    Every match of those tiers holds one of ``pats`` in its key, so the hits among the
    ``n`` nearest candidates are all such matches within the n-th candidate's distance; when
    fewer than ``limit`` are found and a table gave all ``n`` (more may lie farther), the round
    is asked again with more."""
    if not pats:
        return []
    n = first_round(limit)
    now = utcnow()
    while True:
        candidates = store.search_candidates(pats, near, n)
        hits = [hit for hit in (_station_hit(query, st, key, check)
                                for st, key in zip(candidates.stations, candidates.station_keys)
                                if not st.closed_by_staff(now)) if hit]
        hits += [hit for hit in (_place_hit(query, place, key, near, check)
                                 for place, key in zip(candidates.places, candidates.place_keys)) if hit]
        hits = [hit for hit in hits if hit.tier <= worst_tier]
        more = n in (len(candidates.stations), len(candidates.places))
        if not more or len(hits) >= limit or n >= MAX_CANDIDATES:
            break
        n = min(n * 4, MAX_CANDIDATES)
    if near is not None and hits:
        dist = distances_m(near[0], near[1], np.array([h.lat for h in hits]), np.array([h.lng for h in hits]))
        hits = [_with_distance(h, float(d)) for h, d in zip(hits, dist)]
    return hits


def _with_distance(hit: SearchHit, d: float) -> SearchHit:
    return SearchHit(hit.type, hit.id, hit.name, hit.kind, hit.matched, hit.match, hit.tier, hit.lat, hit.lng, d)


def _station_hit(query: str, st: Station, key: str, check) -> SearchHit | None:
    best: tuple[Match, str] | None = None
    texts = tuple(getattr(st, field) for field in STATION_FIELDS)
    for field, text, read in zip(STATION_FIELDS, texts, key_units(key, texts)):
        found = check(query, text, read)
        if found is not None and (best is None or found.tier < best[0].tier):
            best = (found, field)
    if best is None:
        return None
    found, field = best
    return SearchHit("station", st.id, st.name, st.kind, field, found.kind, found.tier, st.lat, st.lng, None)


def _place_hit(query: str, place: Place, key: str, near, check) -> SearchHit | None:
    found = check(query, place.name, key_units(key, (place.name,))[0])
    if found is None:
        return None
    lat, lng = place.lat, place.lng
    if place.line_wkb is not None and near is not None:
        lat, lng = nearest_on_line(shapely.from_wkb(place.line_wkb), near)
    return SearchHit(place.type, None, place.name, place.kind, "name", found.kind, found.tier, lat, lng, None)


def nearest_on_line(line, near: tuple[float, float]) -> tuple[float, float]:
    """The point of a lng/lat (multi)line nearest ``near`` (lat, lng), measured in a local
    frame where a degree of longitude is as long as it is at ``near`` (exact at city scale)."""
    kx = math.cos(math.radians(near[0]))
    local = shapely.transform(line, lambda c: c * (kx, 1.0))
    point = shapely.Point(near[1] * kx, near[0])
    on_line = local.interpolate(local.project(point))
    return on_line.y, on_line.x / kx
