"""Road networks and the 15-minute service circle, on both stores.

Hand-checkable answers come from the synthetic river town (tests/osm_fixtures.py);
the real Helsinki extract is checked against a brute-force Dijkstra (networkx).
"""
import itertools
from datetime import datetime
from zoneinfo import ZoneInfo

import networkx as nx
import numpy as np
import pytest
import shapely

from app.geo.geodesic import distance_m
from app.network import service
from app.network.graph import ROOT_EDGES, Graph
from app.network.isochrone import reach_from
from app.network.osm_import import ebike_directions, read_extract, walk_allowed
from app.stations.model import StationFilter
from tests import osm_fixtures as town

HELSINKI = "data/osm/helsinki.osm.pbf"
NOON = datetime(2026, 11, 26, 12, tzinfo=ZoneInfo("Asia/Shanghai"))
WALK, EBIKE = 4.8, 15.0


@pytest.fixture
def imported_town(cli, store, river_town_pbf):
    result = cli.invoke(args=["network", "import", river_town_pbf])
    assert result.exit_code == 0, result.output
    return store


def circle(store, graphs, lat, lng, minutes, mode="walk", flt=StationFilter()):
    entry = graphs.get(store, mode)
    return service.service_circle(
        store, entry[1] if entry else None, lat, lng, minutes=minutes, mode=mode,
        speed_kmh=WALK if mode == "walk" else EBIKE, flt=flt, at=NOON, limit=50,
    )


@pytest.fixture
def graphs():
    return service.GraphCache()


# -- tag rules -------------------------------------------------------------------

@pytest.mark.parametrize("tags,walk,ebike", [
    ({"highway": "residential"}, True, (True, True)),
    ({"highway": "footway"}, True, None),
    ({"highway": "footway", "bicycle": "yes"}, True, (True, True)),
    ({"highway": "steps"}, True, None),
    ({"highway": "motorway"}, False, None),
    ({"highway": "trunk"}, False, None),
    ({"highway": "primary", "foot": "no"}, False, (True, True)),
    ({"highway": "service", "access": "private"}, False, None),
    ({"highway": "path", "access": "private", "foot": "yes"}, True, None),
    ({"highway": "residential", "oneway": "yes"}, True, (True, False)),
    ({"highway": "residential", "oneway": "-1"}, True, (False, True)),
    ({"highway": "residential", "oneway": "yes", "oneway:bicycle": "no"}, True, (True, True)),
    ({"highway": "tertiary", "junction": "roundabout"}, True, (True, False)),
    ({"highway": "cycleway", "bicycle": "no"}, True, None),
    ({"highway": "construction"}, False, None),
    ({"highway": "service", "tunnel": "yes", "layer": "-4"}, False, (True, True)),  # a delivery tunnel
    ({"highway": "footway", "tunnel": "yes"}, True, None),
    ({"highway": "service", "tunnel": "yes", "foot": "yes"}, True, (True, True)),
])
def test_which_ways_each_mode_may_use(tags, walk, ebike):
    assert walk_allowed(tags) is walk
    assert ebike_directions(tags) == ebike


def test_river_town_graphs(river_town_pbf):
    graphs, stations = read_extract(river_town_pbf)
    walk, ebike = graphs["walk"], graphs["ebike"]
    # walk: west street 4 + bridge 2 + east street 4 + 1 + 1 segments; no foot=no road, private path or motorway
    assert walk.segment_count == 12
    # e-bike: all streets plus the one-way road, not the footbridge nor the motorway
    assert ebike.segment_count == 13
    assert int((ebike.seg_fwd & ~ebike.seg_bwd).sum()) == 1
    assert sorted(r["kind"] for _, r in stations) == ["toilet", "water_point"]
    # lengths are ellipsoidal metres: 500 + 300 + 500 + 200 + 200 on foot, plus the 300 m one-way by e-bike
    assert walk.seg_len.sum() == pytest.approx(1700, abs=1)
    assert ebike.seg_len.sum() == pytest.approx(2000, abs=1)


def test_walk_across_the_river_takes_the_long_way_round(imported_town, graphs):
    c = circle(imported_town, graphs, *town.P, minutes=15)
    assert c.method == "network"
    assert "East toilet" not in [r.station.name for r in c.results]  # 310 m away, 16.25 min on foot
    c = circle(imported_town, graphs, *town.P, minutes=20)
    (east,) = [r for r in c.results if r.station.name == "East toilet"]
    assert east.travel_m == pytest.approx(1300, abs=2)
    assert east.straight_m == pytest.approx(310, abs=2)
    assert not c.polygon.contains(shapely.Point(town.at(1.5, 2.5)[::-1]))  # the river is not "reachable"


def test_one_way_street_for_ebikes(imported_town, graphs):
    c = circle(imported_town, graphs, *town.P, minutes=5, mode="ebike")
    (east,) = [r for r in c.results if r.station.name == "East toilet"]
    assert east.travel_m == pytest.approx(720, abs=2)  # south and east, with the one-way
    c = circle(imported_town, graphs, *town.S, minutes=5, mode="ebike")
    assert "West fountain" not in [r.station.name for r in c.results]
    c = circle(imported_town, graphs, *town.S, minutes=6, mode="ebike")
    (west,) = [r for r in c.results if r.station.name == "West fountain"]
    assert west.travel_m == pytest.approx(1310, abs=2)  # back round by the north bridge


def test_off_network_and_no_network_fall_back_to_a_labelled_radius(imported_town, store, graphs):
    c = circle(imported_town, graphs, *town.FAR_AWAY, minutes=15)
    assert (c.method, c.reason) == ("radius", "off_network")
    assert c.results == []


def test_no_network_at_all_is_radius_no_network(store, graphs):
    c = circle(store, graphs, *town.P, minutes=15)
    assert (c.method, c.reason) == ("radius", "no_network")
    # the radius circle is 1,200 m of straight line
    assert c.area_km2 == pytest.approx(3.1416 * 1.2 ** 2, rel=0.01)


def test_reimport_replaces_the_network_and_a_bad_file_keeps_the_old(cli, imported_town, tmp_path):
    token = imported_town.network_token("walk")
    bad = tmp_path / "broken.osm.pbf"
    bad.write_bytes(b"this is not a PBF file")
    result = cli.invoke(args=["network", "import", str(bad)])
    assert result.exit_code != 0 and "cannot read" in result.output and "still in use" in result.output
    assert imported_town.network_token("walk") == token
    result = cli.invoke(args=["network", "import", "README.md"])
    assert result.exit_code != 0
    result = cli.invoke(args=["network", "import", str(tmp_path / "missing.osm.pbf")])
    assert result.exit_code != 0 and "no such file" in result.output


def test_import_without_stations(cli, store, river_town_pbf):
    assert cli.invoke(args=["network", "import", "--no-stations", river_town_pbf]).exit_code == 0
    assert store.count() == 0 and store.network_token("walk")


def test_reimport_is_idempotent_for_stations(cli, imported_town, river_town_pbf):
    result = cli.invoke(args=["network", "import", river_town_pbf])
    assert "0 new, 0 updated, 2 unchanged" in result.output
    assert imported_town.count() == 2


# -- the real extract against a brute-force Dijkstra ----------------------------


@pytest.fixture(scope="module")
def helsinki():
    return read_extract(HELSINKI)


def _oracle_graph(g: Graph, reverse=False) -> nx.DiGraph:
    G = nx.DiGraph()
    for s in range(g.segment_count):
        u, v, length = int(g.seg_u[s]), int(g.seg_v[s]), float(g.seg_len[s])
        fwd, bwd = bool(g.seg_fwd[s]), bool(g.seg_bwd[s])
        if reverse:
            fwd, bwd = bwd, fwd
        for a, b, ok in ((u, v, fwd), (v, u, bwd)):
            if ok and (not G.has_edge(a, b) or G[a][b]["weight"] > length):
                G.add_edge(a, b, weight=length)
    return G


def _attach(G, g: Graph, name, anchor, reverse, outgoing):
    """Splice an anchored point into the oracle graph as node ``name``: each of its snaps as a node
    (name, "on-road", k) on its segment, joined to ``name`` by its offset leg."""
    for k, snap in enumerate(anchor.snaps):
        s = snap.segment
        u, v, length = int(g.seg_u[s]), int(g.seg_v[s]), float(g.seg_len[s])
        fwd, bwd = bool(g.seg_fwd[s]), bool(g.seg_bwd[s])
        if reverse:
            fwd, bwd = bwd, fwd
        mid = (name, "on-road", k)
        if fwd:
            G.add_edge(u, mid, weight=snap.t * length)
            G.add_edge(mid, v, weight=(1 - snap.t) * length)
        if bwd:
            G.add_edge(v, mid, weight=(1 - snap.t) * length)
            G.add_edge(mid, u, weight=snap.t * length)
        if outgoing:
            G.add_edge(name, mid, weight=snap.offset_m)
        else:
            G.add_edge(mid, name, weight=snap.offset_m)


@pytest.mark.parametrize("mode", ["walk", "ebike"])
def test_travel_times_match_brute_force_dijkstra(helsinki, mode):
    graphs, raw_stations = helsinki
    g = graphs[mode]
    speed = (WALK if mode == "walk" else EBIKE) * 1000 / 60  # metres per minute
    rng = np.random.default_rng(11)
    stations = [(r["lat"], r["lng"]) for _, r in raw_stations]
    checked = 0
    for _ in range(6):
        lat, lng = 60.164 + rng.uniform(0.002, 0.013), 24.935 + rng.uniform(0.003, 0.015)
        reach = reach_from(g, lat, lng, limit_m=speed * 15)
        if reach is None:
            continue
        G = _oracle_graph(g)
        _attach(G, g, "person", reach.start, False, outgoing=True)
        # the oracle's own shared-segment case: splice stations one at a time
        for i, (s_lat, s_lng) in enumerate(stations):
            snap = g.snap(s_lat, s_lng, 300)
            if snap is None:
                continue
            H = G.copy()
            _attach(H, g, ("station", i), snap, False, outgoing=False)
            for (ka, a), (kb, b) in itertools.product(enumerate(reach.start.snaps), enumerate(snap.snaps)):
                if a.segment != b.segment:
                    continue
                # both points on one segment: connect them directly along it where travel is allowed
                (t0, first), (t1, second) = sorted([(a.t, ("person", "on-road", ka)),
                                                    (b.t, (("station", i), "on-road", kb))], key=lambda p: p[0])
                along = (t1 - t0) * float(g.seg_len[a.segment])
                if g.seg_fwd[a.segment]:
                    H.add_edge(first, second, weight=along)
                if g.seg_bwd[a.segment]:
                    H.add_edge(second, first, weight=along)
            try:
                expected = nx.dijkstra_path_length(H, "person", ("station", i))
            except nx.NetworkXNoPath:
                expected = np.inf
            ours = reach.cost_to(snap)
            if expected <= speed * 15 or ours <= speed * 15:
                assert abs(ours - expected) / speed * 60 < 1.0, (lat, lng, i)  # within a second
                checked += 1
    assert checked >= 10


def test_polygon_holds_what_13_minutes_reach_and_not_what_takes_18(helsinki):
    graphs, _ = helsinki
    g = graphs["walk"]
    speed = WALK * 1000 / 60
    from app.network.isochrone import reach_polygon

    for lat, lng in [(60.170, 24.944), (60.1685, 24.9405), (60.1735, 24.948)]:
        reach = reach_from(g, lat, lng, limit_m=speed * 15)
        polygon, _area, _km = reach_polygon(reach, (lat, lng))
        G = _oracle_graph(g)
        _attach(G, g, "person", reach.start, False, outgoing=True)
        dist = nx.single_source_dijkstra_path_length(G, "person")
        nodes = [n for n in dist if isinstance(n, (int, np.integer))]
        near = [n for n in nodes if dist[n] <= 13 * speed]
        far = [n for n in nodes if dist[n] >= 18 * speed]
        assert near and far
        inside = shapely.contains_xy(polygon, g.node_lng[near], g.node_lat[near])
        assert inside.all(), f"{(~inside).sum()} nodes within 13 min are outside the polygon"
        outside = ~shapely.contains_xy(polygon, g.node_lng[far], g.node_lat[far])
        assert outside.all(), f"{(~outside).sum()} nodes 18+ min away are inside the polygon"


def test_polygon_is_neither_a_circle_nor_a_hull(helsinki):
    graphs, _ = helsinki
    from app.network.isochrone import reach_polygon
    reach = reach_from(graphs["walk"], 60.170, 24.944, limit_m=1200)
    polygon, area, _ = reach_polygon(reach, (60.170, 24.944))
    hull_area = shapely.convex_hull(polygon).area
    assert polygon.area < 0.9 * hull_area  # concave
    assert sum(len(p.interiors) for p in getattr(polygon, "geoms", [polygon])) > 3  # holes (blocks) stay
    assert area < 3.1416 * 1.2 ** 2  # smaller than the 1.2 km circle


@pytest.mark.parametrize("count", [2, 5, ROOT_EDGES + 6])  # the kept root, and the copy past its edges
@pytest.mark.parametrize("reverse", [False, True])
def test_a_search_from_many_sources_is_the_best_of_searches_from_each(helsinki, count, reverse):
    g = helsinki[0]["ebike"]  # one-way streets, so the reverse search differs
    rng = np.random.default_rng(count)
    sources = [(int(n), float(c)) for n, c in zip(rng.choice(g.node_count, count), rng.uniform(0, 300, count))]
    each = np.min([g.costs_from([s], 1500, reverse) for s in sources], axis=0)
    together = g.costs_from(sources, 1500, reverse)
    assert np.isfinite(together).sum() > 100
    assert np.array_equal(np.isfinite(together), np.isfinite(each))
    assert np.allclose(together[np.isfinite(each)], each[np.isfinite(each)])
    # the kept root's edges from this search do not leak into the next one
    pair = sources[-2:]
    assert np.allclose(g.costs_from(pair, 1500, reverse),
                       np.minimum(g.costs_from(pair[:1], 1500, reverse), g.costs_from(pair[1:], 1500, reverse)))


def test_snap_matches_brute_force(helsinki):
    graphs, _ = helsinki
    g = graphs["walk"]
    rng = np.random.default_rng(3)
    # Every segment sampled every ~1 m; the closest sample (by true geodesic) is the brute-force answer.
    steps = np.maximum(1, np.ceil(g.seg_len)).astype(int)
    seg = np.repeat(np.arange(g.segment_count), steps + 1)
    frac = np.concatenate([np.linspace(0, 1, n + 1) for n in steps])
    u, v = g.seg_u[seg], g.seg_v[seg]
    s_lat = g.node_lat[u] + frac * (g.node_lat[v] - g.node_lat[u])
    s_lng = g.node_lng[u] + frac * (g.node_lng[v] - g.node_lng[u])
    for _ in range(25):
        lat, lng = 60.164 + rng.uniform(0, 0.015), 24.935 + rng.uniform(0, 0.018)
        rough = np.hypot((s_lat - lat) * 111_400, (s_lng - lng) * 55_600)
        near = np.argsort(rough)[:50]
        best = min(distance_m(lat, lng, s_lat[i], s_lng[i]) for i in near)
        snap = g.snap(lat, lng, 300)
        if best > 300:
            assert snap is None
        else:
            assert snap is not None
            assert best - 1.0 <= snap.offset_m <= best + 0.01


@pytest.fixture
def helsinki_city(store, helsinki):
    """The Helsinki network with 1,500 random stations of every kind, in the store."""
    import random

    from tests.helpers import station

    graphs, _ = helsinki
    records = []
    for mode, graph in graphs.items():
        records.append(service.NetworkRecord(mode=mode, token=f"t-{mode}", source="helsinki", node_count=graph.node_count,
                                             segment_count=graph.segment_count, road_km=1.0, graph=graph.to_bytes()))
    store.replace_networks(records)
    rng = random.Random(8)
    kinds = ("toilet", "rest_station", "water_point", "battery_swap", "charging")
    store.upsert([
        station(f"h{i}", rng.uniform(60.163, 60.180), rng.uniform(24.933, 24.955), rng.choice(kinds),
                yes=rng.sample(("hot_water", "wifi", "baby_change"), rng.randint(0, 2)),
                hours=rng.choice(("24/7", "08:00-18:00", None)), timezone="Europe/Helsinki")
        for i in range(1500)
    ])
    return store


@pytest.mark.parametrize("mode,minutes", [("walk", 5), ("walk", 15), ("ebike", 3)])
def test_service_circle_results_match_brute_force(helsinki_city, mode, minutes):
    """The fastest `limit` stations, found nearest-first in batches, equal timing every station."""
    from app.geo.geodesic import Box
    from app.stations.vocabulary import amenity_mask

    store = helsinki_city
    cache = service.GraphCache()
    _, graph = cache.get(store, mode)
    speed = WALK if mode == "walk" else EBIKE
    limit_m = speed * 1000 / 60 * minutes
    everyone = store.within(Box(-90, -180, 90, 180), StationFilter(), 10_000)[0]
    rng = np.random.default_rng(4)
    for trial in range(4):
        lat, lng = 60.166 + rng.uniform(0, 0.01), 24.938 + rng.uniform(0, 0.012)
        flt = [StationFilter(), StationFilter(kinds=("toilet", "water_point")), StationFilter(amenities=("wifi",))][trial % 3]
        limit = [5, 50, 200, 7][trial]
        got = service.service_circle(store, graph, lat, lng, minutes=minutes, mode=mode, speed_kmh=speed,
                                     flt=flt, at=NOON, limit=limit)
        reach = reach_from(graph, lat, lng, limit_m)
        expected = []
        for st in everyone:
            need = amenity_mask(flt.amenities)
            if (flt.kinds and st.kind not in flt.kinds) or (st.amenities_yes & need) != need:
                continue
            snap = graph.snap(st.lat, st.lng, 300)
            travel = reach.cost_to(snap) if snap else np.inf
            if travel <= limit_m:
                expected.append((travel, st.id))
        expected.sort()
        assert [r.station.id for r in got.results] == [sid for _, sid in expected[:limit]], (mode, trial)
        if len(expected) > limit:  # (when not, "there may be more" is allowed to err on the side of yes)
            assert got.truncated
