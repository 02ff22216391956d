"""The searchable places of an OSM extract: named streets, squares, neighbourhoods and landmarks.

The network import's one pass over the extract hands each tagged node and way to a
PlaceCollector (app.network.osm_import.read_extract). Which tags make a place, and its kind,
are declared here once. Relations (multipolygon parks, route relations) are not read.
"""
from __future__ import annotations

from collections import defaultdict

import shapely

from app.search.service import nearest_on_line
from app.stations.model import Place

# Named ways of these highway types are streets (步行街 are pedestrian ways).
STREET_HIGHWAYS = frozenset({
    "trunk", "primary", "secondary", "tertiary", "unclassified", "residential", "living_street", "pedestrian",
    "road",
})
# place=* values that are searchable areas, under their own name as kind.
PLACE_VALUES = frozenset({
    "city", "town", "suburb", "quarter", "neighbourhood", "city_block", "village", "hamlet", "locality",
    "square", "island",
})
# (key, value) -> kind, for named landmarks.
LANDMARKS = {
    ("railway", "station"): "railway_station",
    ("amenity", "hospital"): "hospital",
    ("amenity", "clinic"): "clinic",
    ("amenity", "school"): "school",
    ("amenity", "university"): "university",
    ("amenity", "college"): "college",
    ("amenity", "marketplace"): "marketplace",
    ("amenity", "library"): "library",
    ("amenity", "townhall"): "townhall",
    ("amenity", "police"): "police",
    ("amenity", "bus_station"): "bus_station",
    ("leisure", "park"): "park",
    ("leisure", "stadium"): "stadium",
    ("shop", "mall"): "mall",
    ("tourism", "museum"): "museum",
    ("tourism", "attraction"): "attraction",
}
_LANDMARK_KEYS = frozenset(k for k, _ in LANDMARKS)


def place_kind(tags: dict) -> str | None:
    """The kind of place a named node or area is, or None if it is not searched for."""
    if tags.get("place") in PLACE_VALUES:
        return tags["place"]
    if tags.get("highway") == "pedestrian" and tags.get("area") == "yes":
        return "square"
    for key in _LANDMARK_KEYS:
        kind = LANDMARKS.get((key, tags.get(key)))
        if kind == "railway_station" and (tags.get("station") == "subway" or tags.get("subway") == "yes"):
            return "metro_station"
        if kind:
            return kind
    return None


def is_street(tags: dict) -> bool:
    return tags.get("highway") in STREET_HIGHWAYS and tags.get("area") != "yes"


class PlaceCollector:
    """Gathers places while the extract is read; ``places()`` gives them, each street as one
    line of all its named ways (a street is split into many ways in OSM)."""

    def __init__(self):
        self._streets: dict[str, list[list[tuple[float, float]]]] = defaultdict(list)
        self._places: list[Place] = []

    def add(self, osm_type: str, osm_id: int, tags: dict, points: list[tuple[float, float]]) -> None:
        """A node (one point) or way (its nodes' points, lat/lng) with its tags."""
        name = (tags.get("name") or "").strip()
        if not name or not points:
            return
        if osm_type == "way" and is_street(tags):
            if len(points) >= 2:
                self._streets[name].append(points)
            return
        kind = place_kind(tags)
        if kind is None:
            return
        # An area: the middle of its nodes (inside or on it for the small outlines of squares
        # and hospitals; a park's may lie outside a crescent-shaped one, still beside it).
        if len(points) > 1 and points[0] == points[-1]:
            points = points[:-1]  # a closed outline: its first node once
        lat = sum(p[0] for p in points) / len(points)
        lng = sum(p[1] for p in points) / len(points)
        self._places.append(Place(f"{osm_type}/{osm_id}", "place", kind, name, lat, lng))

    def places(self) -> list[Place]:
        out = list(self._places)
        for name, parts in sorted(self._streets.items()):
            line = shapely.line_merge(shapely.MultiLineString([[(lng, lat) for lat, lng in p] for p in parts]))
            middle = line.centroid
            lat, lng = nearest_on_line(line, (middle.y, middle.x))
            out.append(Place(f"street/{name}", "street", "street", name, lat, lng, shapely.to_wkb(line)))
        return out
