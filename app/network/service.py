"""Network use cases over a store: import, the personal service circle, service areas, coverage."""
from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import shapely

from app.geo.geodesic import Box
from app.network.graph import Graph
from app.network.isochrone import geodesic_circle, reach_from, reach_polygon
from app.network.modes import SNAP_MAX_M, metres_for
from app.network.osm_import import NetworkImportError, read_extract
from app.search.places import PlaceCollector
from app.network.polygon import area_km2
from app.stations import hours
from app.stations.importing import RowError, parse_record
from app.stations.model import NearestQuery, NetworkRecord, ServiceArea, Station, StationFilter
from app.stations.store import StationStore

CANDIDATE_CAP = 20_000


# -- graphs in memory, one load per worker per network version ---------------


class GraphCache:
    """Keeps each mode's graphs in memory by their token, loading a token's graph once.

    Readers on replicas may see different snapshots: a lagging replica still has the previous
    network while the primary has the new one. Each graph is kept under the token of the row it
    was read from, and the last KEEP tokens of a mode stay, so a reader gets the graph of the
    token it read, and two snapshots in use never evict each other on every request.
    """

    KEEP = 2

    def __init__(self):
        self._lock = threading.Lock()
        self._graphs: dict[tuple[int, str], dict[str, Graph]] = {}

    def get(self, store: StationStore, mode: str) -> tuple[str, Graph] | None:
        token = store.network_token(mode)
        if token is None:
            return None
        key = (id(store), mode)
        graph = self._graphs.get(key, {}).get(token)
        if graph is not None:
            return token, graph
        with self._lock:
            record = store.load_network(mode)
            if record is None:
                return None
            # Under the token read with the graph: a reader that moved on meanwhile (another
            # server, a newer snapshot) cannot file an old graph under a new token, or back.
            kept = dict(self._graphs.get(key, {}))
            if record.token not in kept:
                kept[record.token] = Graph.from_bytes(record.graph)
                while len(kept) > self.KEEP:
                    del kept[next(iter(kept))]  # the longest kept
            self._graphs[key] = kept
            return record.token, kept[record.token]


# -- import --------------------------------------------------------------------


# A re-import that keeps less than this share of the stored network's segments or road km
# (for any mode) is refused unless forced: it is far more often a truncated download or
# the wrong extract than a city that lost a fifth of its roads.
KEEP_AT_LEAST = 0.8


class NetworkShrankError(NetworkImportError):
    """The extract would replace a stored network with a much smaller one."""


@dataclass
class NetworkImportReport:
    graphs: dict[str, Graph]
    stations_found: int = 0
    stations_invalid: list[str] = field(default_factory=list)
    stations_written: object = None
    places_found: int = 0  # named streets, squares, neighbourhoods and landmarks, for search


def import_network(
    store: StationStore,
    path: str,
    *,
    with_stations: bool = True,
    timezone: str = "Asia/Shanghai",
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> NetworkImportReport:
    """Read an OSM extract and swap in its walk and e-bike graphs (and upsert its stations).

    Everything is read and built before the database is touched; the swap is one
    transaction, so a failure at any point leaves the previous network serving. What
    changes is reported per mode; a much smaller network than the stored one (see
    KEEP_AT_LEAST) is refused unless ``force``.
    """
    say = progress or (lambda _m: None)
    collector = PlaceCollector()
    graphs, raw_stations = read_extract(path, progress=say, places=collector)
    shrunk = []
    for mode, graph in graphs.items():
        road_km = graph.seg_len.sum() / 1000
        old = store.load_network(mode, with_graph=False)
        if old is None:
            say(f"{mode}: nodes {graph.node_count:,}, segments {graph.segment_count:,}, road km {road_km:,.1f}"
                " (no network before)")
            continue
        say(f"{mode}: nodes {old.node_count:,} -> {graph.node_count:,}, segments {old.segment_count:,} -> "
            f"{graph.segment_count:,}{_share(graph.segment_count, old.segment_count)}, "
            f"road km {old.road_km:,.1f} -> {road_km:,.1f}{_share(road_km, old.road_km)}")
        if graph.segment_count < KEEP_AT_LEAST * old.segment_count or road_km < KEEP_AT_LEAST * old.road_km:
            shrunk.append(f"{mode}: {old.segment_count:,} -> {graph.segment_count:,} segments, "
                          f"{old.road_km:,.1f} -> {road_km:,.1f} km")
    if shrunk and not force:
        raise NetworkShrankError(
            f"{path!r} holds much less road than the network in use ({'; '.join(shrunk)}), under "
            f"{KEEP_AT_LEAST:.0%} of it, as a truncated file (an interrupted download) would. "
            "Nothing was imported; check the file, or pass --force to import it anyway"
        )
    records = [
        NetworkRecord(mode=mode, token=secrets.token_hex(8), source=path, node_count=graph.node_count,
                      segment_count=graph.segment_count, road_km=float(graph.seg_len.sum() / 1000),
                      graph=graph.to_bytes())
        for mode, graph in graphs.items()
    ]
    report = NetworkImportReport(graphs)
    stations = []
    if with_stations:
        for where, record in raw_stations:
            try:
                stations.append(parse_record(record, source="osm", coordsys="wgs84", timezone=timezone))
            except RowError as exc:
                report.stations_invalid.append(f"{where}: {exc.field}: {exc.reason}")
        report.stations_found = len(raw_stations)
    places = collector.places()
    report.places_found = len(places)
    with store.transaction():
        store.replace_networks(records)
        if stations:
            report.stations_written = store.upsert(stations)
        store.replace_places(places)
    store.analyze_search()  # after the commit: PostgreSQL's ANALYZE must see the new rows
    return report


def _share(new: float, old: float) -> str:
    return f" ({new / old:.0%})" if old else ""


# -- the personal service circle ---------------------------------------------


@dataclass
class CircleResult:
    station: Station
    hours: hours.HoursState
    travel_m: float  # along the network (method "network") or straight (method "radius")
    straight_m: float


@dataclass
class Circle:
    method: str  # "network" | "radius"
    reason: str | None  # why the radius fallback was used
    mode: str
    minutes: float
    speed_kmh: float
    polygon: object  # shapely, lng/lat WGS-84
    area_km2: float
    results: list[CircleResult]
    truncated: bool = False


def _hits_within(store: StationStore, lat, lng, radius_m, flt, at, k):
    """The k nearest matching stations within ``radius_m`` (exact, by straight-line distance)."""
    return store.nearest(NearestQuery(lat, lng, at=at, limit=k, filter=flt, max_distance_m=radius_m))


def service_circle(
    store: StationStore,
    graph: Graph | None,
    lat: float,
    lng: float,
    *,
    minutes: float,
    mode: str,
    speed_kmh: float,
    flt: StationFilter,
    at: datetime,
    limit: int,
) -> Circle:
    """Stations reachable within ``minutes`` by ``mode`` from (lat, lng), fastest first.

    On the road network when the point is within 300 m of it; otherwise a straight-line
    circle, labelled as such.
    """
    limit_m = metres_for(minutes, speed_kmh)
    reach = reach_from(graph, lat, lng, limit_m) if graph is not None else None
    if reach is None:
        hits = _hits_within(store, lat, lng, limit_m, flt, at, limit + 1)
        results = [CircleResult(h.station, h.hours, h.distance_m, h.distance_m) for h in hits[:limit]]
        polygon = geodesic_circle(lat, lng, limit_m)
        reason = "no_network" if graph is None else "off_network"
        return Circle("radius", reason, mode, minutes, speed_kmh, polygon, area_km2(polygon, lat),
                      results, len(hits) > limit)
    results, truncated = _fastest(store, graph, reach, lat, lng, limit_m, flt, at, limit)
    polygon, area, _road_km = reach_polygon(reach, (lat, lng))
    return Circle("network", None, mode, minutes, speed_kmh, polygon, area, results, truncated)


def _fastest(store, graph, reach, lat, lng, limit_m, flt, at, limit):
    """The ``limit`` fastest reachable stations, fetched nearest-first in growing batches.

    Travel along the network is never shorter than the straight line, so once the
    limit-th fastest found beats the straight distance of the last station fetched,
    no station not yet fetched can take its place.
    """
    k = max(3 * limit, 60)
    while True:
        hits = _hits_within(store, lat, lng, limit_m, flt, at, k)
        anchors = graph.snap_many(np.array([h.station.lat for h in hits]),
                                  np.array([h.station.lng for h in hits]), SNAP_MAX_M)
        travels = reach.costs_to(anchors)
        reachable = [(float(travel), hit.station.id, hit) for hit, travel in zip(hits, travels) if travel <= limit_m]
        reachable.sort(key=lambda r: (r[0], r[1]))
        exhausted = len(hits) < k
        proven = len(reachable) >= limit and reachable[limit - 1][0] < hits[-1].distance_m
        if exhausted or proven or k >= CANDIDATE_CAP:
            results = [CircleResult(h.station, h.hours, travel, h.distance_m) for travel, _, h in reachable[:limit]]
            # Stopped early: more reachable stations may exist beyond those fetched.
            return results, len(reachable) > limit or (not exhausted and len(reachable) >= limit)
        k = min(4 * k, CANDIDATE_CAP)


# -- service areas (planners) -------------------------------------------------


def station_service_area(graph: Graph, token: str, station: Station, mode: str, minutes: int,
                         speed_kmh: float) -> ServiceArea:
    """Where people can reach ``station`` from within ``minutes`` (a reverse search towards it)."""
    limit_m = metres_for(minutes, speed_kmh)
    reach = reach_from(graph, station.lat, station.lng, limit_m, reverse=True)
    if reach is None:
        geom, area, road_km = shapely.MultiPolygon(), 0.0, 0.0
    else:
        geom, area, road_km = reach_polygon(reach, (station.lat, station.lng))
    if geom.geom_type == "Polygon":
        geom = shapely.MultiPolygon([geom])
    return ServiceArea(station.id, mode, minutes, token, station.updated_at, area, road_km, geom, speed_kmh)


@dataclass
class ServiceAreaRun:
    computed: int = 0
    off_network: int = 0
    dropped: int = 0
    seconds: float = 0.0


def refresh_service_areas(
    store: StationStore,
    graphs: GraphCache,
    *,
    mode: str,
    minutes: int,
    speed_kmh: float,
    batch: int = 200,
    progress: Callable[[int, int, float], None] | None = None,
) -> ServiceAreaRun:
    """Compute the service areas that are missing or stale; each batch is committed as it finishes."""
    entry = graphs.get(store, mode)
    if entry is None:
        raise LookupError(f"no {mode} network imported; run `flask --app wsgi network import FILE.osm.pbf`")
    token, graph = entry
    run = ServiceAreaRun(dropped=store.drop_inactive_service_areas())
    todo = store.stations_needing_service_area(mode, minutes, token, speed_kmh)
    started = time.perf_counter()
    for i in range(0, len(todo), batch):
        areas = [station_service_area(graph, token, st, mode, minutes, speed_kmh) for st in todo[i:i + batch]]
        store.save_service_areas(areas)
        run.computed += len(areas)
        run.off_network += sum(1 for a in areas if a.geom.is_empty)
        if progress:
            progress(run.computed, len(todo), time.perf_counter() - started)
    run.seconds = time.perf_counter() - started
    return run


@dataclass
class Coverage:
    served: object  # shapely, lng/lat, clipped to the box
    unserved: object
    road_km: float
    served_road_km: float
    areas: list[tuple[Station, ServiceArea]]
    stations_without_area: int


def coverage(store: StationStore, graph: Graph | None, box: Box, *, mode: str, minutes: int,
             flt: StationFilter) -> Coverage:
    """Union of matching stations' service areas in ``box``, what is left unserved, and road-length shares."""
    areas = store.service_areas_in_box(box, mode, minutes, flt)
    frame = shapely.box(box.west, box.south, box.east, box.north)
    union = shapely.union_all([a.geom for _, a in areas if not a.geom.is_empty]) if areas else shapely.Polygon()
    served = shapely.intersection(union, frame)
    unserved = shapely.difference(frame, union)
    road_km = served_km = 0.0
    if graph is not None and graph.segment_count:
        road_km, served_km = _road_lengths(graph, box, served)
    stations_in_box, _ = store.within(box, flt, CANDIDATE_CAP)
    with_area = {st.id for st, _ in areas}
    missing = sum(1 for st in stations_in_box if st.id not in with_area)
    return Coverage(served, unserved, road_km, served_km, areas, missing)


def _road_lengths(graph: Graph, box: Box, served) -> tuple[float, float]:
    """Road km inside the box, and the part of it inside ``served`` (which lies in the box).

    Each segment counts its ellipsoidal length (``seg_len``) times the fraction of it
    inside. That fraction is the same in lng/lat degrees as on the local plane around
    the segment (one is an affine map of the other), so it is taken in degrees and the
    answer does not depend on the size or place of the box.
    """
    u, v = graph.seg_u, graph.seg_v
    lat_u, lat_v, lng_u, lng_v = graph.node_lat[u], graph.node_lat[v], graph.node_lng[u], graph.node_lng[v]
    near = np.nonzero((np.maximum(lat_u, lat_v) >= box.south) & (np.minimum(lat_u, lat_v) <= box.north)
                      & (np.maximum(lng_u, lng_v) >= box.west) & (np.minimum(lng_u, lng_v) <= box.east))[0]
    if len(near) == 0:
        return 0.0, 0.0
    coords = np.stack([np.column_stack([lng_u[near], lat_u[near]]), np.column_stack([lng_v[near], lat_v[near]])],
                      axis=1)
    lines = shapely.linestrings(coords)
    lengths = graph.seg_len[near]
    total = float((lengths * _fraction_inside(lines, shapely.box(box.west, box.south, box.east, box.north))).sum())
    served_len = float((lengths * _fraction_inside(lines, served)).sum()) if not served.is_empty else 0.0
    return total / 1000, served_len / 1000


def _fraction_inside(lines: np.ndarray, region) -> np.ndarray:
    """The fraction of each straight line's length inside ``region`` (a point-like line: 1 or 0)."""
    shapely.prepare(region)
    fraction = shapely.covers(region, lines).astype(np.float64)
    # Only lines crossing the region's edge need the overlay.
    crossing = np.nonzero((fraction == 0) & shapely.intersects(region, lines))[0]
    if len(crossing):
        full = shapely.length(lines[crossing])
        part = shapely.length(shapely.intersection(lines[crossing], region))
        fraction[crossing] = np.where(full > 0, part / np.where(full > 0, full, 1.0), 1.0)
    return fraction
