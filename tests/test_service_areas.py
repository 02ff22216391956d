"""Service areas, "which stations serve this address", coverage, and the network API — both stores."""
import pytest
import shapely

from app.geo.coordsys import from_wgs84
from app.stations.model import StationFilter
from tests import osm_fixtures as town
from tests.helpers import station


@pytest.fixture
def town_store(cli, store, river_town_pbf):
    assert cli.invoke(args=["network", "import", river_town_pbf]).exit_code == 0
    return store


def areas(cli, *args):
    result = cli.invoke(args=["network", "service-areas", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_service_areas_are_incremental(cli, town_store, river_town_pbf):
    out = areas(cli)
    assert "2 computed" in out
    assert "0 computed" in areas(cli)  # nothing changed
    # a station changes: only it is recomputed
    (east,) = [s for s in town_store.within(_world(), StationFilter(), 10)[0] if s.name == "East toilet"]
    town_store.upsert([station(east.source_id, east.lat, east.lng, source="osm", name="East toilet (renamed)")])
    assert "1 computed" in areas(cli)
    # a new walking speed (YIZHAN_WALK_KMH): everything is recomputed at it
    speeds = cli.app.config["YIZHAN_SPEEDS_KMH"]
    speeds["walk"] = 4.0
    try:
        assert "2 computed" in areas(cli)
        assert "0 computed" in areas(cli)
    finally:
        speeds["walk"] = 4.8
    assert "2 computed" in areas(cli)  # and back
    # a new network: everything is recomputed
    assert cli.invoke(args=["network", "import", "--no-stations", river_town_pbf]).exit_code == 0
    assert "2 computed" in areas(cli)


def _world():
    from app.geo.geodesic import Box
    return Box(-90, -180, 90, 180)


def test_service_area_is_where_people_can_reach_the_station_from(cli, town_store, client):
    areas(cli, "--minutes", "15")
    (east,) = [s for s in town_store.within(_world(), StationFilter(), 10)[0] if s.name == "East toilet"]
    body = client.get(f"/api/v1/stations/{east.id}/service-area?minutes=15").get_json()
    polygon = shapely.geometry.shape(body["polygon"])
    assert body["on_network"] and body["area_km2"] > 0
    # The east street is in it; P on the west bank (1,300 m = 16 min round by the bridge) is not.
    assert polygon.contains(shapely.Point(town.at(3, 2)[::-1]))
    assert not polygon.contains(shapely.Point(town.P[::-1]))
    # 15 minutes from the toilet reaches 1,200 m: over the bridge and 390 m down the west street.
    assert polygon.contains(shapely.Point(town.at(0, 1.3)[::-1]))
    assert not polygon.contains(shapely.Point(town.at(0, 0.7)[::-1]))


def test_service_area_errors(client, town_store):
    assert client.get("/api/v1/stations/999999/service-area").status_code == 404
    sid = town_store.within(_world(), StationFilter(), 1)[0][0].id
    r = client.get(f"/api/v1/stations/{sid}/service-area")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_computed"
    r = client.get(f"/api/v1/stations/{sid}/service-area?minutes=0")
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "minutes"


def test_stations_serving_an_address_matches_a_brute_force_check(cli, town_store, client):
    areas(cli, "--minutes", "15")
    stations = town_store.within(_world(), StationFilter(), 10)[0]
    for x, y in [(3, 1), (0, 4), (1.5, 5), (0, 0.2), (3, -1), (10, 10)]:
        lat, lng = town.at(x, y)
        body = client.get(f"/api/v1/stations/serving?lat={lat}&lng={lng}&minutes=15").get_json()
        expected = sorted(
            st.id for st in stations
            if town_store.service_area(st.id, "walk", 15).geom.intersects(shapely.Point(lng, lat))
        )
        assert sorted(r["id"] for r in body["results"]) == expected, (x, y)
    lat, lng = town.at(3, 0.3)  # by the east toilet; 1,270 m round from the west fountain
    body = client.get(f"/api/v1/stations/serving?lat={lat}&lng={lng}&minutes=15").get_json()
    assert [r["name"] for r in body["results"]] == ["East toilet"]
    body = client.get(f"/api/v1/stations/serving?lat={lat}&lng={lng}&minutes=15&kind=water_point").get_json()
    assert body["results"] == []


def test_coverage_figures(cli, town_store, client):
    areas(cli, "--minutes", "5")
    s_lat, w_lng = town.at(-1, -3)
    n_lat, e_lng = town.at(4, 6)
    body = client.get(f"/api/v1/coverage?bbox={w_lng},{s_lat},{e_lng},{n_lat}&minutes=5").get_json()
    assert body["stations"] == 2 and body["stations_without_service_area"] == 0
    assert body["road_km"] == pytest.approx(1.7, abs=0.01)  # every walkable street is in the box
    # 5 minutes is 400 m; each station is 10 m off its street. East toilet: 390 m up the east
    # street and the 200 m link to K. West fountain (snapped 10 m north of A): 390 m up to y=4.0,
    # 10 m down to A and the 200 m link to H. 590 + 600 = 1,190 m. The polygon stops where the
    # street goes on out of reach (that road claims its own ground), so there is no overreach.
    assert body["served_road_km"] == pytest.approx(1.19, abs=0.02)
    assert body["served_road_share"] == pytest.approx(1.19 / 1.7, abs=0.015)
    assert body["served_road_km"] == pytest.approx(body["road_km"] * body["served_road_share"], abs=0.01)
    assert body["serving_most"][0]["road_km"] >= body["serving_least"][0]["road_km"]
    served = shapely.geometry.shape(body["served"])
    unserved = shapely.geometry.shape(body["unserved"])
    box = shapely.box(w_lng, s_lat, e_lng, n_lat)
    # served and unserved tile the box (to the 6-decimal precision of the output coordinates)
    assert served.area + unserved.area == pytest.approx(box.area, rel=1e-3)
    assert served.intersection(unserved).area < box.area * 1e-3


def test_road_km_does_not_depend_on_the_box(cli, town_store):
    """Every walkable street of the river town (1,700 m, the sum of its segments' ellipsoidal
    lengths) measures the same in a box drawn tight around it and in the whole world."""
    from app.geo.geodesic import Box
    from app.network import service

    areas(cli, "--minutes", "5")
    _, graph = service.GraphCache().get(town_store, "walk")
    tight = Box(graph.node_lat.min(), graph.node_lng.min(), graph.node_lat.max(), graph.node_lng.max())
    figures = [service.coverage(town_store, graph, box, mode="walk", minutes=5, flt=StationFilter())
               for box in (tight, _world())]
    for c in figures:
        assert c.road_km == pytest.approx(graph.seg_len.sum() / 1000, rel=1e-3)
        assert c.road_km == pytest.approx(1.7, rel=1e-3)
    assert figures[0].served_road_km == pytest.approx(figures[1].served_road_km, rel=1e-3)


def test_service_areas_need_a_network(cli):
    result = cli.invoke(args=["network", "service-areas"])
    assert result.exit_code != 0 and "no walk network" in result.output


# -- the service-circle endpoint --------------------------------------------------

def test_service_circle_endpoint(client, town_store):
    lat, lng = town.P
    body = client.get(f"/api/v1/service-circle?lat={lat}&lng={lng}&minutes=20").get_json()
    assert body["method"] == "network" and body["reason"] is None
    assert body["speed_kmh"] == 4.8 and body["polygon"]["type"] in ("Polygon", "MultiPolygon")
    east = [r for r in body["results"] if r["name"] == "East toilet"][0]
    assert east["travel_minutes"] == pytest.approx(16.25, abs=0.06)
    assert east["network_distance_m"] == pytest.approx(1300, abs=2)
    assert east["distance_m"] == pytest.approx(310, abs=2)
    assert [r["travel_minutes"] for r in body["results"]] == sorted(r["travel_minutes"] for r in body["results"])


def test_service_circle_in_gcj02(client, town_store):
    g_lat, g_lng = from_wgs84(*town.P, "gcj02")
    body = client.get(f"/api/v1/service-circle?lat={g_lat}&lng={g_lng}&minutes=20&coordsys=gcj02").get_json()
    east = [r for r in body["results"] if r["name"] == "East toilet"][0]
    assert east["network_distance_m"] == pytest.approx(1300, abs=2)
    s_lat, s_lng = from_wgs84(*town.S, "gcj02")
    assert east["lat"] == pytest.approx(s_lat, abs=1e-6) and east["lng"] == pytest.approx(s_lng, abs=1e-6)
    ring = body["polygon"]["coordinates"][0] if body["polygon"]["type"] == "Polygon" else body["polygon"]["coordinates"][0][0]
    # the polygon is in GCJ-02 too: it surrounds the GCJ-02 query point
    assert shapely.Polygon(ring).buffer(0.0005).contains(shapely.Point(g_lng, g_lat))


def test_service_circle_radius_fallback_is_labelled(client, town_store):
    lat, lng = town.FAR_AWAY
    body = client.get(f"/api/v1/service-circle?lat={lat}&lng={lng}").get_json()
    assert (body["method"], body["reason"]) == ("radius", "off_network")
    assert all(r["network_distance_m"] is None for r in body["results"])


def test_service_circle_on_an_empty_database(client):
    body = client.get("/api/v1/service-circle?lat=27.83&lng=113.15").get_json()
    assert (body["method"], body["reason"], body["count"]) == ("radius", "no_network", 0)


@pytest.mark.parametrize("query,field", [
    ("lat=27.83&lng=113.15&minutes=0", "minutes"),
    ("lat=27.83&lng=113.15&minutes=31", "minutes"),
    ("lat=27.83&lng=113.15&minutes=fifteen", "minutes"),
    ("lat=27.83&lng=113.15&mode=car", "mode"),
    ("lat=95&lng=113.15", "lat"),
    ("lng=113.15", "lat"),
    ("lat=27.83&lng=113.15&kind=spaceship", "kind"),
    ("lat=27.83&lng=113.15&limit=0", "limit"),
])
def test_service_circle_bad_input(client, query, field):
    r = client.get(f"/api/v1/service-circle?{query}")
    assert r.status_code == 400 and r.get_json()["error"]["field"] == field


def test_coverage_bad_input(client):
    assert client.get("/api/v1/coverage").get_json()["error"]["field"] == "bbox"
    r = client.get("/api/v1/coverage?bbox=1,1,2,2&mode=plane")
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "mode"


def test_coverage_on_an_empty_database(client):
    body = client.get("/api/v1/coverage?bbox=113.1,27.8,113.2,27.9").get_json()
    assert (body["stations"], body["road_km"], body["served_road_share"]) == (0, 0, None)
    assert body["served"]["type"] in ("Polygon", "MultiPolygon", "GeometryCollection")
