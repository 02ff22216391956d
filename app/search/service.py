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

from app.geo.geodesic import distances_m
from app.search.text import Match, fuzzy_match, fuzzy_patterns, match, patterns, prefix_patterns
from app.stations.model import Place, Station
from app.stations.store import StationStore

# Candidates read per table and round: the nearest ones when there is a point. Enough for a
# list of at most 20 after the exact check; bounded so a common query (人) never reads thousands.
CANDIDATES = 100
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


def search(store: StationStore, query: str, near: tuple[float, float] | None, limit: int) -> list[SearchHit]:
    """The best ``limit`` stations, streets and places for the normalised ``query``.

    The typo-tolerant round runs only when nothing matched exactly, by prefix, as a
    substring, or by pinyin or initials. A query with no usable pattern (one letter or
    digit) finds nothing, without asking the database.
    """
    found = _checked(store, query, patterns(query), near, match, prefix_patterns(query))
    if not found:
        found = _checked(store, query, fuzzy_patterns(query), near, fuzzy_match)
    found.sort(key=lambda h: (h.tier, h.distance_m if h.distance_m is not None else 0.0, TYPE_ORDER[h.type],
                              len(h.name), h.id or 0, h.name))
    return found[:limit]


def _checked(store, query, pats, near, check, front_pats=()) -> list[SearchHit]:
    """The candidates of ``pats`` that ``check`` accepts, as hits. When a table gave its full
    ``CANDIDATES`` (more may match farther away), the candidates of ``front_pats`` (those that
    can match at a field's start: the exact and prefix tiers, ranked first) are added, so a far
    exact or prefix match is never lost behind nearer substring matches."""
    if not pats:
        return []
    candidates = store.search_candidates(pats, near, CANDIDATES)
    if front_pats and CANDIDATES in (len(candidates.stations), len(candidates.places)):
        front = store.search_candidates(front_pats, near, CANDIDATES)
        seen = {st.id for st in candidates.stations}
        candidates.stations.extend(st for st in front.stations if st.id not in seen)
        seen = {p.id for p in candidates.places}
        candidates.places.extend(p for p in front.places if p.id not in seen)
    hits = [hit for hit in (_station_hit(query, st, check) for st in candidates.stations) if hit]
    hits += [hit for hit in (_place_hit(query, place, near, check) for place in candidates.places) if hit]
    if near is not None and hits:
        dist = distances_m(near[0], near[1], np.array([h.lat for h in hits]), np.array([h.lng for h in hits]))
        hits = [_with_distance(h, float(d)) for h, d in zip(hits, dist)]
    return hits


def _with_distance(hit: SearchHit, d: float) -> SearchHit:
    return SearchHit(hit.type, hit.id, hit.name, hit.kind, hit.matched, hit.match, hit.tier, hit.lat, hit.lng, d)


def _station_hit(query: str, st: Station, check) -> SearchHit | None:
    best: tuple[Match, str] | None = None
    for field in STATION_FIELDS:
        found = check(query, getattr(st, field))
        if found is not None and (best is None or found.tier < best[0].tier):
            best = (found, field)
    if best is None:
        return None
    found, field = best
    return SearchHit("station", st.id, st.name, st.kind, field, found.kind, found.tier, st.lat, st.lng, None)


def _place_hit(query: str, place: Place, near, check) -> SearchHit | None:
    found = check(query, place.name)
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
