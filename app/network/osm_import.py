"""Read an OpenStreetMap extract (.osm.pbf, .osm, .osm.bz2 …) into walk and e-bike graphs.

Reading uses pyosmium (libosmium). Which ways each mode may use, and in which
direction, is decided by the tag rules below; the extract's stations are mapped
through app.stations.osm like any other OSM-tagged import.
"""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from app.geo.geodesic import metres_per_degree
from app.network.graph import Graph
from app.network.modes import MODE_NAMES
from app.search.places import PlaceCollector
from app.stations import osm as osm_tags

_WALK_HIGHWAYS = {
    "footway", "path", "pedestrian", "steps", "living_street", "residential", "service",
    "unclassified", "tertiary", "tertiary_link", "secondary", "secondary_link", "primary",
    "primary_link", "track", "cycleway", "bridleway", "corridor", "road", "platform",
}
_EBIKE_HIGHWAYS = {
    "primary", "primary_link", "secondary", "secondary_link", "tertiary", "tertiary_link",
    "unclassified", "residential", "living_street", "service", "road", "track", "cycleway",
}
_FOOT_WAYS = {"footway", "path", "pedestrian", "steps", "corridor", "cycleway", "bridleway", "platform"}
# Ways an e-bike may use only where signed for bicycles.
_EBIKE_IF_SIGNED = {"path", "footway", "pedestrian", "bridleway", "trunk", "trunk_link"}
_YES = {"yes", "designated", "permissive", "official"}
_CLOSED_ACCESS = {"no", "private"}
# Tunnels that are still at street level: a passage through a building's ground floor,
# a roofed gallery against avalanches.
_STREET_LEVEL_TUNNELS = {"building_passage", "avalanche_protector"}

class NetworkImportError(ValueError):
    """The file cannot be read as an OSM extract, or holds no routable ways."""


def walk_allowed(tags) -> bool:
    highway = tags.get("highway")
    foot = tags.get("foot")
    if foot == "no":
        return False
    if tags.get("access") in _CLOSED_ACCESS and foot not in _YES:
        return False
    if foot in _YES:
        return highway in _WALK_HIGHWAYS or highway in ("trunk", "trunk_link")
    # Tunnels built for vehicles (e.g. underground delivery roads) are not footpaths.
    if tags.get("tunnel") in ("yes",) and highway not in _FOOT_WAYS and not tags.get("sidewalk"):
        return False
    return highway in _WALK_HIGHWAYS


def ebike_directions(tags) -> tuple[bool, bool] | None:
    """(forward, backward) for an e-bike, or None if it may not use the way."""
    highway = tags.get("highway")
    bicycle = tags.get("bicycle")
    if bicycle == "no" or highway == "steps":
        return None
    if tags.get("access") in _CLOSED_ACCESS and bicycle not in _YES:
        return None
    if highway not in _EBIKE_HIGHWAYS and not (highway in _EBIKE_IF_SIGNED and bicycle in _YES):
        return None
    oneway = tags.get("oneway")
    if oneway is None and tags.get("junction") in ("roundabout", "circular"):
        oneway = "yes"
    contraflow = tags.get("oneway:bicycle") == "no" or (tags.get("cycleway") or "").startswith("opposite")
    if contraflow or oneway not in ("yes", "true", "1", "-1", "reverse"):
        return True, True
    if oneway in ("-1", "reverse"):
        return False, True
    return True, False


def off_ground(tags) -> bool:
    """Whether a way runs above or below the street: a bridge or viaduct (高架), a tunnel, or
    any ``layer`` other than 0.

    Such a way can pass over or under a street without meeting it, so a point beside it
    joins it only when no street-level way is about as near (see Graph.snap_many).
    A building passage (``tunnel=building_passage``) and a roofed way (``covered=yes``:
    arcades, 骑楼) are at street level whatever their ``layer``, unless also a bridge (a
    covered footbridge). ``bridge=no``, ``tunnel=no`` and an unreadable ``layer`` count
    as street level.
    """
    if tags.get("bridge") not in (None, "no"):
        return True
    tunnel = tags.get("tunnel")
    if tunnel in _STREET_LEVEL_TUNNELS or tags.get("covered") == "yes":
        return False
    if tunnel not in (None, "no"):
        return True
    try:
        return int(tags.get("layer") or 0) != 0
    except ValueError:
        return False


class _ModeBuilder:
    def __init__(self):
        self.index: dict[int, int] = {}
        self.lat: list[float] = []
        self.lng: list[float] = []
        self.u: list[int] = []
        self.v: list[int] = []
        self.fwd: list[bool] = []
        self.bwd: list[bool] = []
        self.off_ground: list[bool] = []

    def node(self, osm_id: int, lat: float, lng: float) -> int:
        i = self.index.get(osm_id)
        if i is None:
            i = self.index[osm_id] = len(self.lat)
            self.lat.append(lat)
            self.lng.append(lng)
        return i

    def add_way(self, nodes, fwd: bool, bwd: bool, off_ground: bool) -> None:
        prev = None
        for osm_id, lat, lng in nodes:
            i = self.node(osm_id, lat, lng)
            if prev is not None and prev != i:
                self.u.append(prev)
                self.v.append(i)
                self.fwd.append(fwd)
                self.bwd.append(bwd)
                self.off_ground.append(off_ground)
            prev = i

    def build(self) -> Graph:
        lat = np.array(self.lat, dtype=np.float64)
        lng = np.array(self.lng, dtype=np.float64)
        u = np.array(self.u, dtype=np.int32)
        v = np.array(self.v, dtype=np.int32)
        return Graph(lat, lng, u, v, segment_lengths(lat, lng, u, v), self.fwd, self.bwd, self.off_ground)


def segment_lengths(lat, lng, u, v) -> np.ndarray:
    """Segment lengths in metres on the ellipsoid, using the local scale at each segment's middle.

    OSM segments are short (metres to a few hundred metres), where this agrees with
    the full geodesic to well under a millimetre per 100 m.
    """
    if len(u) == 0:
        return np.zeros(0)
    ky, kx = metres_per_degree((lat[u] + lat[v]) / 2)
    d_lng = (lng[v] - lng[u] + 180.0) % 360.0 - 180.0
    return np.hypot((lat[v] - lat[u]) * ky, d_lng * kx)


def read_extract(path: str, progress: Callable[[str], None] | None = None, places: PlaceCollector | None = None):
    """Graphs by mode and the extract's station records [(where, record)], from one pass;
    named streets, squares, neighbourhoods and landmarks go to ``places`` when given."""
    import osmium

    if not os.path.isfile(path):
        raise NetworkImportError(f"no such file: {path}")
    builders = {mode: _ModeBuilder() for mode in MODE_NAMES}
    stations: list[tuple[str, dict]] = []
    ways = 0
    try:
        processor = osmium.FileProcessor(path).with_locations()
        for obj in processor:
            tags = obj.tags
            if obj.is_way():
                if "highway" in tags:
                    ways += 1
                    if progress and ways % 50_000 == 0:
                        progress(f"read {ways:,} ways")
                    nodes = [(n.ref, n.lat, n.lon) for n in obj.nodes if n.location.valid()]
                    grade_separated = off_ground(tags)
                    if walk_allowed(tags):
                        builders["walk"].add_way(nodes, True, True, grade_separated)
                    directions = ebike_directions(tags)
                    if directions:
                        builders["ebike"].add_way(nodes, *directions, grade_separated)
                    if places is not None and "name" in tags:
                        places.add("way", obj.id, _tag_dict(tags), [(lat, lng) for _, lat, lng in nodes])
                    continue
                points = None
                if "amenity" in tags:
                    points = [(n.lat, n.lon) for n in obj.nodes if n.location.valid()]
                    _station_from(stations, "way", obj.id, tags, points)
                if places is not None and "name" in tags:
                    if points is None:
                        points = [(n.lat, n.lon) for n in obj.nodes if n.location.valid()]
                    places.add("way", obj.id, _tag_dict(tags), points)
            elif obj.is_node() and tags:
                point = [(obj.lat, obj.lon)] if obj.location.valid() else []
                if "amenity" in tags:
                    _station_from(stations, "node", obj.id, tags, point)
                if places is not None and "name" in tags:
                    places.add("node", obj.id, _tag_dict(tags), point)
    except RuntimeError as exc:  # libosmium's errors for unreadable or non-OSM input
        raise NetworkImportError(f"cannot read {path!r} as an OpenStreetMap extract: {exc}") from None
    graphs = {mode: b.build() for mode, b in builders.items()}
    if all(g.segment_count == 0 for g in graphs.values()):
        raise NetworkImportError(f"{path!r} holds no routable ways (no highway=* the modes may use)")
    return graphs, stations


def _station_from(out: list, kind: str, osm_id: int, tags, points) -> None:
    fields = osm_tags.station_fields(_tag_dict(tags))
    if fields is None or not points:
        return
    # A way (e.g. a toilet building): the middle of its nodes is inside or on it for small outlines.
    lat = sum(p[0] for p in points) / len(points)
    lng = sum(p[1] for p in points) / len(points)
    out.append((f"{kind}/{osm_id}", {**fields, "lat": lat, "lng": lng, "source_id": f"{kind}/{osm_id}"}))


def _tag_dict(tags) -> dict[str, str]:
    return {t.k: t.v for t in tags}
