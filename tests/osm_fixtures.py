"""A small synthetic town, written as a real .osm.pbf, whose answers can be worked out by hand.

Grid units are 100 m (x east, y north) around 27.83 N, 113.15 E:

      B(0,5) ======== bridge (residential) ======== D(3,5)
        |                                             |
        |     river        P2(1.5,2.5): private       |
  west  |     (no way)     footbridge, not for us     |  east
  street|                                             |  street
        |                                             |
  P ~ A(0,0)                                       C(3,0) ~ S (10 m east of C)
        |                                             |
      H(0,-2) --- primary, oneway east, foot=no --- K(3,-2)

  plus a motorway M1-M2 further south that nobody may use.

Walking from P (10 m north of A) to S: P-B 490 + bridge 300 + D-C 500 + 10 = 1,300 m (16.25 min);
the road bridge in the south is closed to pedestrians. By e-bike P-S goes south and east:
10 + 200 + 300 + 200 + 10 = 720 m, but S-P must come back round by the north bridge
(the south road is one-way eastbound): 10 + 500 + 300 + 490 + 10 = 1,310 m.
"""
from __future__ import annotations

import osmium
from osmium.osm.mutable import Node, Way

LAT0, LNG0 = 27.83, 113.15
UNIT_LAT = 100 / 110_815.0   # degrees of latitude per 100 m at 27.83 N (M·π/180 = 110,815 m)
UNIT_LNG = 100 / 98_512.0    # degrees of longitude per 100 m (p·π/180 = 98,512 m)


def at(x: float, y: float) -> tuple[float, float]:
    """(lat, lng) of grid point (x, y)."""
    return LAT0 + y * UNIT_LAT, LNG0 + x * UNIT_LNG


P = at(0, 0.1)
S = at(3.1, 0)
T = at(-0.1, 0.1)  # a station by the west street, 10 m west of P
FAR_AWAY = at(20, 20)

_NODES = {
    1: (0, 0), 2: (0, 5), 3: (3, 5), 4: (3, 0), 5: (0, -2), 6: (3, -2),
    7: (1.5, 5),  # middle of the bridge
    8: (0, 2.5), 9: (3, 2.5),  # ends of the private footbridge
    10: (-1, -6), 11: (4, -6),  # motorway
    # intermediate nodes so the streets are several segments
    12: (0, 1), 13: (0, 3), 14: (3, 1), 15: (3, 3),
}
_WAYS = [
    (100, [1, 12, 8, 13, 2], {"highway": "residential", "name": "West street"}),
    (101, [2, 7, 3], {"highway": "residential", "bridge": "yes", "name": "North bridge"}),
    (102, [3, 15, 9, 14, 4], {"highway": "residential", "name": "East street"}),
    (103, [1, 5], {"highway": "residential"}),
    (104, [5, 6], {"highway": "primary", "oneway": "yes", "foot": "no", "bridge": "yes"}),
    (105, [6, 4], {"highway": "residential"}),
    (106, [8, 9], {"highway": "footway", "access": "private", "bridge": "yes"}),
    (107, [10, 11], {"highway": "motorway"}),
]
_STATIONS = {
    900: (S, {"amenity": "toilets", "wheelchair": "yes", "name": "East toilet"}),
    901: (T, {"amenity": "drinking_water", "name": "West fountain"}),
}


def write_river_town(path: str) -> str:
    with osmium.SimpleWriter(str(path), overwrite=True) as w:
        for nid, (x, y) in sorted(_NODES.items()):
            lat, lng = at(x, y)
            w.add_node(Node(id=nid, location=(lng, lat), tags={}))
        for nid, ((lat, lng), tags) in _STATIONS.items():
            w.add_node(Node(id=nid, location=(lng, lat), tags=tags))
        for wid, nodes, tags in _WAYS:
            w.add_way(Way(id=wid, nodes=nodes, tags=tags))
    return str(path)
