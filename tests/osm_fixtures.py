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
    return _write(path, _NODES, _WAYS, _STATIONS)


def _write(path, nodes: dict, ways: list, stations: dict) -> str:
    """Nodes {id: (x, y)}, ways [(id, node ids, tags)] and stations {id: ((lat, lng), tags)} as a .osm.pbf."""
    with osmium.SimpleWriter(str(path), overwrite=True) as w:
        for nid, (x, y) in sorted(nodes.items()):
            lat, lng = at(x, y)
            w.add_node(Node(id=nid, location=(lng, lat), tags={}))
        for nid, ((lat, lng), tags) in stations.items():
            w.add_node(Node(id=nid, location=(lng, lat), tags=tags))
        for wid, way_nodes, tags in ways:
            w.add_way(Way(id=wid, nodes=way_nodes, tags=tags))
    return str(path)


# -- grade separation: bridges, elevated roads, footbridges ------------------------------
# Same grid (100 m units around 27.83 N, 113.15 E); one file per scene.

FLYOVER_TOILET = at(5, 0.05)   # under the elevated road, 5 m north of the street
FLYOVER_Q = at(2, 0.05)        # a person 5 m north of the street, 300 m west of the toilet
_ELEVATED = {"highway": "primary", "bridge": "yes", "layer": "1", "name": "Elevated road"}


def write_flyover(path: str) -> str:
    """An elevated road (高架) crossing over a street without a shared node, a toilet beneath it.

           R_n(5,6) ------ north road ------ C(10,6)
              ‖                                 |
              ‖ elevated road (bridge, layer 1)  | east street
              ‖                                 |
      A(0,0) -Q--------- street -------T---------B(10,0)     (street nodes every 200 m: x = 0, 2, … 10)
              ‖                                 |
              ‖                                 |
           R_s(5,-6) ------ south road ----- D(10,-6)

    The elevated road meets the ground only at its ends R_n and R_s. The toilet T is
    5 m north of the street at x = 5: 0 m from the elevated road above it, 5 m from the
    street. On foot from Q (5 m north of the street at x = 2):
      along the street: 5 + 300 + 5 = 310 m (3.9 minutes);
      by the ramp, were T on the elevated road: 5 + 800 (to B) + 600 (to C) + 500 (to R_n)
      + 595 (down the elevated road to T) = 2,500 m (31.25 minutes).
    """
    nodes = {1: (0, 0), 2: (2, 0), 3: (4, 0), 4: (6, 0), 5: (8, 0), 6: (10, 0),
             7: (10, 3), 8: (10, 6), 9: (5, 6), 10: (5, 3), 11: (5, -3), 12: (5, -6), 13: (10, -3), 14: (10, -6)}
    ways = [
        (200, [1, 2, 3, 4, 5, 6], {"highway": "residential", "name": "Street"}),
        (201, [14, 13, 6, 7, 8], {"highway": "residential", "name": "East street"}),
        (202, [8, 9], {"highway": "residential", "name": "North road"}),
        (203, [12, 14], {"highway": "residential", "name": "South road"}),
        (204, [9, 10, 11, 12], _ELEVATED),
    ]
    toilet = {"amenity": "toilets", "name": "Toilet under the flyover"}
    return _write(path, nodes, ways, {910: (FLYOVER_TOILET, toilet)})


FOOTBRIDGE_P = at(1, -0.35)      # south of the trunk road, 5 m south of the south street
FOOTBRIDGE_T = at(1, 0.35)       # north of it, 5 m north of the north street
FOOTBRIDGE_UNDER = at(0.03, -0.10)  # on the ground beneath the deck's south end, 3 m east of it


def write_footbridge(path: str) -> str:
    """A pedestrian overpass (天桥) over a trunk road that walkers may not use.

      (-3,0.3) ------------ north street ---- N(0,0.3) ---------- (3,0.3)     T 5 m north, at x = 1
                                              steps  15 m
                                              Nd(0,0.15)
      ===== trunk (no walking) ===========    ‖ deck: footway, bridge, layer 1, 30 m  =======
                                              Sd(0,-0.15)
                                              steps  15 m
      (-3,-0.3) ----------- south street ---- S(0,-0.3) ---------- (3,-0.3)    P 5 m south, at x = 1

    The overpass is the only way across on foot. P to T: 5 + 100 (to S) + 15 + 30 + 15
    + 100 + 5 = 270 m.
    Someone on the ground beneath the deck's south end (3 m east of the deck, 5.83 m
    from the top of the south steps Sd, 20 m from the south street) joins the steps,
    which are at street level and within 10 m of the deck's 3 m, not the deck over
    their head: to T, 5.83 + 30 + 15 + 100 + 5 = 155.83 m. (On the deck itself it would
    have been 3 + 25 + 15 + 100 + 5 = 148 m.)
    """
    nodes = {1: (-3, 0.3), 2: (0, 0.3), 3: (3, 0.3), 4: (-3, -0.3), 5: (0, -0.3), 6: (3, -0.3),
             7: (0, 0.15), 8: (0, -0.15), 9: (-3, 0), 10: (-1, 0), 11: (1, 0), 12: (3, 0)}
    ways = [
        (300, [1, 2, 3], {"highway": "residential", "name": "North street"}),
        (301, [4, 5, 6], {"highway": "residential", "name": "South street"}),
        (302, [9, 10, 11, 12], {"highway": "trunk", "name": "Trunk road"}),
        (303, [5, 8], {"highway": "steps"}),
        (304, [8, 7], {"highway": "footway", "bridge": "yes", "layer": "1", "name": "Overpass"}),
        (305, [7, 2], {"highway": "steps"}),
    ]
    return _write(path, nodes, ways, {920: (FOOTBRIDGE_T, {"amenity": "toilets", "name": "North toilet"})})


RAMP_T = at(3.8, 0.05)   # beside the bridge's last span, 20 m short of where it lands
RAMP_WEST = at(-2, 0.05)
RAMP_EAST = at(7, 0.05)


def write_ramp_foot(path: str) -> str:
    """A station at the foot of a bridge ramp, with a riverside road passing under the bridge.

                                 riverside road (x = 3.5, street level, under the bridge)
                                       |
      (-3,0) -- west street -- W1(-1,0) ==== bridge (layer 1) ==== | ==T== E1(4,0) -- east street -- (8,0)
                                   river between x = 0 and 3      |                                  |
                                       (3.5,-3) ------------------------------------------------- (8,-3)

    T is 5 m north of the bridge's last span (3,0)-(4,0), 20.6 m from its landing E1 and
    30 m from the riverside road: nothing at street level lies within 10 m of its nearest
    road, so it joins the bridge, on the side it is on. (Joined to the riverside road it
    would be 1,050 m round from the east street.)
      From the west bank (-2, 0.05): 5 + 100 + 480 (over the bridge to x = 3.8) + 5 = 590 m.
      From the east street (7, 0.05): 5 + 300 + 20 + 5 = 330 m.
    """
    nodes = {1: (-3, 0), 2: (-1, 0), 3: (0, 0), 4: (3, 0), 5: (4, 0), 6: (6, 0), 7: (8, 0),
             8: (3.5, 3), 9: (3.5, -3), 10: (8, -3)}
    ways = [
        (400, [1, 2], {"highway": "residential", "name": "West street"}),
        (401, [2, 3, 4, 5], {"highway": "residential", "bridge": "yes", "layer": "1", "name": "Bridge"}),
        (402, [5, 6, 7], {"highway": "residential", "name": "East street"}),
        (403, [8, 9, 10, 7], {"highway": "residential", "name": "Riverside road"}),
    ]
    return _write(path, nodes, ways, {930: (RAMP_T, {"amenity": "toilets", "name": "Toilet by the ramp"})})


def write_grid(path: str, side: int) -> str:
    """A side × side street grid, 100 m blocks, every block edge its own way: 2·side·(side − 1)
    one-segment ways, so the ways fill several of the file's blocks (a few thousand entities each)."""
    nodes = {1 + i * side + j: (j, i) for i in range(side) for j in range(side)}
    ways = []
    for i in range(side):
        for j in range(side - 1):
            ways.append((len(ways) + 1, [1 + i * side + j, 2 + i * side + j], {"highway": "residential"}))
    for j in range(side):
        for i in range(side - 1):
            ways.append((len(ways) + 1, [1 + i * side + j, 1 + (i + 1) * side + j], {"highway": "residential"}))
    return _write(path, nodes, ways, {})


# -- search: a town with Chinese street and place names ---------------------------------

SEARCH_SQUARE = (at(-1, 7), at(1, 7), at(1, 9), at(-1, 9))  # 人民广场, a 200 m square around (0, 8)


def write_search_town(path: str) -> str:
    """Named streets (人民路 in two ways that meet at (0,0); 长沙路; 重庆路), a square drawn as an
    area (人民广场), a metro station, a hospital and a neighbourhood, and one toilet:

        (-5,0) === 人民路 (way 500) === (0,0) === 人民路 (way 501) === (5,0) --- 长沙路 --- (10,0)
        重庆路 runs north from (10,0) to (10,10); 人民广场 is the square (-1..1, 7..9);
        五一广场 metro station at (3,8), 湘雅医院 at (6,6), 人民新村 (neighbourhood) at (-6,6).
    """
    nodes = {1: (-5, 0), 2: (0, 0), 3: (5, 0), 4: (10, 0), 5: (10, 10),
             6: (-1, 7), 7: (1, 7), 8: (1, 9), 9: (-1, 9)}
    ways = [
        (500, [1, 2], {"highway": "primary", "name": "人民路"}),
        (501, [2, 3], {"highway": "primary", "name": "人民路"}),
        (502, [3, 4], {"highway": "secondary", "name": "长沙路"}),
        (503, [4, 5], {"highway": "residential", "name": "重庆路"}),
        (504, [6, 7, 8, 9, 6], {"place": "square", "name": "人民广场"}),
        (505, [6, 7], {"highway": "footway"}),  # unnamed: not a street
    ]
    named = {
        950: (at(3, 8), {"railway": "station", "station": "subway", "name": "五一广场"}),
        951: (at(6, 6), {"amenity": "hospital", "name": "湘雅医院"}),
        952: (at(-6, 6), {"place": "neighbourhood", "name": "人民新村"}),
        953: (at(2, 1), {"amenity": "toilets", "name": "人民路公厕"}),
        954: (at(2, 2), {"amenity": "bench", "name": "不是地标"}),
    }
    return _write(path, nodes, ways, named)
