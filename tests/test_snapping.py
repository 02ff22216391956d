"""Where a point joins the road network: street level before bridges, viaducts and tunnels,
and every road about as near as the nearest one (both stores).

The scenes are hand-drawn in tests/osm_fixtures.py, with their answers worked out there.
"""
import io
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely

from app.geo.geodesic import Box
from app.network import service
from app.network.graph import Graph
from app.network.osm_import import off_ground, read_extract
from app.stations.model import StationFilter
from tests import osm_fixtures as scenes

NOON = datetime(2026, 11, 26, 12, tzinfo=ZoneInfo("Asia/Shanghai"))
SPEEDS = {"walk": 4.8, "ebike": 15.0}


@pytest.fixture(scope="module")
def flyover_pbf(tmp_path_factory):
    return scenes.write_flyover(tmp_path_factory.mktemp("osm") / "flyover.osm.pbf")


@pytest.fixture(scope="module")
def footbridge_pbf(tmp_path_factory):
    return scenes.write_footbridge(tmp_path_factory.mktemp("osm") / "footbridge.osm.pbf")


@pytest.fixture(scope="module")
def ramp_pbf(tmp_path_factory):
    return scenes.write_ramp_foot(tmp_path_factory.mktemp("osm") / "ramp.osm.pbf")


def imported(cli, path):
    result = cli.invoke(args=["network", "import", path])
    assert result.exit_code == 0, result.output


def travel_m(store, lat, lng, station_name, mode="walk", minutes=15):
    """Network metres from (lat, lng) to the named station in a service circle (None if not reachable)."""
    _, graph = service.GraphCache().get(store, mode)
    circle = service.service_circle(store, graph, lat, lng, minutes=minutes, mode=mode, speed_kmh=SPEEDS[mode],
                                    flt=StationFilter(), at=NOON, limit=50)
    assert circle.method == "network"
    found = [r.travel_m for r in circle.results if r.station.name == station_name]
    return found[0] if found else None


# -- which ways are above or below the street ------------------------------------

@pytest.mark.parametrize("tags,expected", [
    ({"highway": "primary"}, False),
    ({"highway": "primary", "bridge": "yes"}, True),
    ({"highway": "trunk", "bridge": "viaduct", "layer": "2"}, True),  # 高架
    ({"highway": "footway", "bridge": "yes", "layer": "1"}, True),  # 天桥 deck
    ({"highway": "residential", "bridge": "no"}, False),
    ({"highway": "service", "tunnel": "yes", "layer": "-1"}, True),
    ({"highway": "footway", "tunnel": "yes"}, True),
    ({"highway": "footway", "tunnel": "building_passage"}, False),  # through a ground floor
    ({"highway": "footway", "tunnel": "building_passage", "layer": "-1"}, False),
    ({"highway": "footway", "covered": "yes"}, False),  # an arcade: roofed, at street level
    ({"highway": "footway", "covered": "yes", "layer": "-1"}, False),
    ({"highway": "footway", "covered": "yes", "bridge": "yes", "layer": "1"}, True),  # a covered footbridge
    ({"highway": "service", "tunnel": "no", "layer": "0"}, False),
    ({"highway": "primary", "layer": "1"}, True),
    ({"highway": "footway", "layer": "-1"}, True),
    ({"highway": "primary", "layer": "0"}, False),
    ({"highway": "primary", "layer": "high"}, False),  # unreadable: street level
])
def test_which_ways_are_off_the_ground(tags, expected):
    assert off_ground(tags) is expected


def test_the_level_survives_import_and_storage_and_old_graphs_load(flyover_pbf):
    graphs, _ = read_extract(flyover_pbf)
    walk = graphs["walk"]
    # the elevated road's three segments, and nothing else
    assert int(walk.seg_off_ground.sum()) == 3
    assert walk.seg_len[walk.seg_off_ground].sum() == pytest.approx(1200, abs=1)
    again = Graph.from_bytes(walk.to_bytes())
    assert np.array_equal(again.seg_off_ground, walk.seg_off_ground)
    # A graph stored before the level was kept: everything is at street level.
    buf = io.BytesIO()
    np.savez_compressed(buf, node_lat=walk.node_lat, node_lng=walk.node_lng, seg_u=walk.seg_u, seg_v=walk.seg_v,
                        seg_len=walk.seg_len, seg_fwd=walk.seg_fwd, seg_bwd=walk.seg_bwd)
    old = Graph.from_bytes(buf.getvalue())
    assert old.segment_count == walk.segment_count and not old.seg_off_ground.any()
    assert old.snap(*scenes.FLYOVER_Q, 300) is not None


# -- (a) a toilet under an elevated road -------------------------------------------

def test_toilet_under_an_elevated_road_joins_the_street(flyover_pbf):
    graphs, _ = read_extract(flyover_pbf)
    g = graphs["walk"]
    anchor = g.snap(*scenes.FLYOVER_TOILET, 300)
    # one candidate: the street 5 m away, not the elevated road 0 m away (overhead)
    assert len(anchor.snaps) == 1
    assert not g.seg_off_ground[anchor.segment] and anchor.offset_m == pytest.approx(5, abs=0.1)
    # up on the elevated road, 150 m from any street: the elevated road it is
    up = g.snap(*scenes.at(5, 4.5), 300)
    assert g.seg_off_ground[up.segment] and up.offset_m == pytest.approx(0, abs=0.1)


@pytest.mark.parametrize("mode", ["walk", "ebike"])
def test_walking_to_a_toilet_under_an_elevated_road_takes_the_street(cli, store, flyover_pbf, mode):
    imported(cli, flyover_pbf)
    # 310 m along the street, not 2,500 m round by the ramp (see write_flyover)
    assert travel_m(store, *scenes.FLYOVER_Q, "Toilet under the flyover", mode) == pytest.approx(310, abs=2)


def test_service_area_of_a_toilet_under_an_elevated_road(cli, store, flyover_pbf):
    """Five minutes on foot is 400 m: from the toilet's street 395 m either way, so Q (300 m west) is in."""
    imported(cli, flyover_pbf)
    result = cli.invoke(args=["network", "service-areas", "--minutes", "5"])
    assert result.exit_code == 0, result.output
    (toilet,) = store.within(Box(-90, -180, 90, 180), StationFilter(), 10)[0]
    area = store.service_area(toilet.id, "walk", 5).geom
    assert area.contains(shapely.Point(scenes.FLYOVER_Q[::-1]))
    assert not area.contains(shapely.Point(scenes.at(0.5, 0.05)[::-1]))  # 455 m away along the street


# -- (b) a pedestrian overpass over a trunk road --------------------------------------

def test_footbridge_is_still_the_way_across_a_trunk_road(cli, store, footbridge_pbf):
    imported(cli, footbridge_pbf)
    # up the steps, over the deck, down the steps: 270 m (see write_footbridge)
    assert travel_m(store, *scenes.FOOTBRIDGE_P, "North toilet") == pytest.approx(270, abs=2)
    # beneath the deck: by the steps (155.83 m), not from the deck over one's head (148 m)
    assert travel_m(store, *scenes.FOOTBRIDGE_UNDER, "North toilet") == pytest.approx(155.83, abs=1)


# -- (c) a station at the foot of a bridge ramp ----------------------------------------

def test_station_at_the_foot_of_a_ramp_stays_on_its_side(cli, store, ramp_pbf):
    imported(cli, ramp_pbf)
    name = "Toilet by the ramp"
    assert travel_m(store, *scenes.RAMP_WEST, name) == pytest.approx(590, abs=2)  # over the bridge
    assert travel_m(store, *scenes.RAMP_EAST, name) == pytest.approx(330, abs=2)  # 20 m up from the landing
