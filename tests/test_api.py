"""The HTTP API on both stores: answers, coordinate systems and every kind of bad input."""
import re

import pytest

from app.geo.coordsys import from_wgs84, to_wgs84
from app.geo.geodesic import distance_m
from tests.helpers import station

CENTRE = (27.83, 113.15)


@pytest.fixture
def stations(store):
    lat, lng = CENTRE
    store.upsert([
        station("n1", lat + 0.001, lng, yes=("baby_change",), hours="24/7"),
        station("n2", lat + 0.002, lng, "rest_station", yes=("hot_water",), hours="08:00-18:00"),
        station("n3", lat + 0.003, lng, yes=("accessible_toilet", "baby_change")),
        station("gone", lat + 0.0005, lng, status="removed"),
    ])
    return store


def nearest(client, **params):
    return client.get("/api/v1/stations/nearest", query_string=params)


def test_nearest_answers_nearest_first_with_all_fields(client, stations):
    r = nearest(client, lat=CENTRE[0], lng=CENTRE[1], at="2026-11-26T12:00:00+08:00")
    assert r.status_code == 200
    body = r.get_json()
    assert [x["source_id"] for x in body["results"]] == ["n1", "n2", "n3"]
    first = body["results"][0]
    for key in ("id", "source", "source_id", "name", "kind", "lat", "lng", "distance_m", "amenities",
                "open_state", "opening_hours", "address"):
        assert key in first
    assert first["distance_m"] == pytest.approx(110.8, abs=0.1)
    assert first["amenities"] == ["toilet", "baby_change"]
    assert [x["open_state"] for x in body["results"]] == ["open", "open", "unknown"]


def test_open_now_with_at_and_include_unknown(client, stations):
    late = "2026-11-26T23:00:00+08:00"
    r = nearest(client, lat=CENTRE[0], lng=CENTRE[1], at=late, open_now=1)
    assert [x["source_id"] for x in r.get_json()["results"]] == ["n1"]
    r = nearest(client, lat=CENTRE[0], lng=CENTRE[1], at=late, open_now=1, include_unknown=1)
    assert [x["source_id"] for x in r.get_json()["results"]] == ["n1", "n3"]
    # A naive time is read in the service's time zone (Asia/Shanghai): 12:00 there.
    r = nearest(client, lat=CENTRE[0], lng=CENTRE[1], at="2026-11-26T12:00", open_now=1)
    assert [x["source_id"] for x in r.get_json()["results"]] == ["n1", "n2"]
    # '+' in a query string arrives as a space; still understood.
    r = client.get(f"/api/v1/stations/nearest?lat={CENTRE[0]}&lng={CENTRE[1]}&open_now=1&at=2026-11-26T04:00:00+00:00")
    assert [x["source_id"] for x in r.get_json()["results"]] == ["n1", "n2"]


def test_kind_amenity_limit_and_max_distance(client, stations):
    lat, lng = CENTRE
    r = nearest(client, lat=lat, lng=lng, kind="rest_station,water_point")
    assert [x["source_id"] for x in r.get_json()["results"]] == ["n2"]
    r = nearest(client, lat=lat, lng=lng, amenity="baby_change,accessible_toilet")
    assert [x["source_id"] for x in r.get_json()["results"]] == ["n3"]
    r = nearest(client, lat=lat, lng=lng, limit=2)
    assert len(r.get_json()["results"]) == 2
    r = nearest(client, lat=lat, lng=lng, max_distance=150)
    assert [x["source_id"] for x in r.get_json()["results"]] == ["n1"]


@pytest.mark.parametrize("system", ["gcj02", "bd09"])
def test_coordsys_in_and_out(client, stations, system):
    # Ask from the centre given in GCJ-02/BD-09: same stations, same distances, answers in that system.
    q_lat, q_lng = from_wgs84(*CENTRE, system)
    body = nearest(client, lat=q_lat, lng=q_lng, coordsys=system).get_json()
    assert body["coordsys"] == system
    first = body["results"][0]
    assert first["source_id"] == "n1" and first["distance_m"] == pytest.approx(110.8, abs=0.1)
    back = to_wgs84(first["lat"], first["lng"], system)
    assert distance_m(*back, CENTRE[0] + 0.001, CENTRE[1]) < 0.05
    # and the shift is real: the output is hundreds of metres from the WGS-84 position
    assert distance_m(first["lat"], first["lng"], CENTRE[0] + 0.001, CENTRE[1]) > 300


def test_bbox_geojson(client, stations):
    lat, lng = CENTRE
    r = client.get(f"/api/v1/stations?bbox={lng - 0.001},{lat},{lng + 0.001},{lat + 0.0025}")
    body = r.get_json()
    assert r.status_code == 200 and body["type"] == "FeatureCollection"
    assert sorted(f["properties"]["source_id"] for f in body["features"]) == ["n1", "n2"]
    assert body["truncated"] is False
    f = body["features"][0]
    assert f["geometry"]["type"] == "Point" and len(f["geometry"]["coordinates"]) == 2
    r = client.get(f"/api/v1/stations?bbox={lng - 0.001},{lat},{lng + 0.001},{lat + 0.01}&limit=2")
    body = r.get_json()
    assert body["numberReturned"] == 2 and body["truncated"] is True


def test_bbox_in_gcj02_selects_by_gcj02_position(client, stations):
    # A GCJ-02 box drawn tightly around n1's GCJ-02 position holds n1 and nothing else,
    # although the box is ~500 m from n1's WGS-84 position.
    g_lat, g_lng = from_wgs84(CENTRE[0] + 0.001, CENTRE[1], "gcj02")
    bbox = f"{g_lng - 0.0002},{g_lat - 0.0002},{g_lng + 0.0002},{g_lat + 0.0002}"
    body = client.get(f"/api/v1/stations?bbox={bbox}&coordsys=gcj02").get_json()
    assert [f["properties"]["source_id"] for f in body["features"]] == ["n1"]
    lng_out, lat_out = body["features"][0]["geometry"]["coordinates"]
    assert abs(lat_out - g_lat) < 1e-6 and abs(lng_out - g_lng) < 1e-6
    body = client.get(f"/api/v1/stations?bbox={bbox}").get_json()  # same numbers read as WGS-84
    assert body["features"] == []


def test_huge_ids_are_404_on_both_stores(client):
    for url in ("/api/v1/stations/99999999999999999999999", "/api/v1/stations/99999999999999999999999/service-area"):
        r = client.get(url)
        assert r.status_code == 404 and "error" in r.get_json()
    assert client.get("/s/99999999999999999999999").status_code == 404


def test_station_detail_and_404(client, stations):
    sid = nearest(client, lat=CENTRE[0], lng=CENTRE[1]).get_json()["results"][0]["id"]
    body = client.get(f"/api/v1/stations/{sid}").get_json()
    assert body["source_id"] == "n1" and body["amenity_states"]["baby_change"] == "yes"
    assert body["amenity_states"]["wifi"] == "unknown" and body["status"] == "active"
    r = client.get("/api/v1/stations/987654321")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"


def test_meta_labels(client):
    body = client.get("/api/v1/meta").get_json()
    kinds = {k["id"]: k for k in body["kinds"]}
    assert kinds["toilet"]["labels"]["zh-CN"] and kinds["toilet"]["labels"]["en"]
    assert len(body["amenities"]) == 14
    assert all(a["labels"]["zh-CN"] and a["labels"]["en"] for a in body["amenities"])


def test_meta_lists_the_brands_running_cabinets_or_chargers(client, store, ops):
    """Brands a courier may pick for ``org``: organisations with an active battery-swap or charging
    station; not those that run only toilets, nor one whose only cabinet was removed."""
    store.upsert([
        station("c1", 27.83, 113.15, "battery_swap", source="swapco"),
        station("e1", 27.84, 113.15, "charging", source="plugco"),
        station("w1", 27.85, 113.15, "toilet", source="sanitation"),
        station("g1", 27.86, 113.15, "battery_swap", source="goneco", status="removed"),
    ])
    for code, name in (("swapco", "甲换电"), ("plugco", "乙充电"), ("sanitation", "环卫所"), ("goneco", "已撤")):
        ops.accounts.create_organisation(code, name)
        ops.accounts.assign_stations(code, code)
    assert client.get("/api/v1/meta").get_json()["brands"] == [
        {"code": "plugco", "name": "乙充电"}, {"code": "swapco", "name": "甲换电"}]


BAD_NEAREST = [
    ({"lng": "113"}, "lat", "missing_parameter"),
    ({"lat": "27", "lng": ""}, "lng", "missing_parameter"),
    ({"lat": "91", "lng": "113"}, "lat", "out_of_range"),
    ({"lat": "-90.5", "lng": "113"}, "lat", "out_of_range"),
    ({"lat": "27", "lng": "180.01"}, "lng", "out_of_range"),
    ({"lat": "NaN", "lng": "113"}, "lat", "invalid_parameter"),
    ({"lat": "27", "lng": "inf"}, "lng", "invalid_parameter"),
    ({"lat": "27", "lng": "-Infinity"}, "lng", "invalid_parameter"),
    ({"lat": "twenty", "lng": "113"}, "lat", "invalid_parameter"),
    ({"lat": "27", "lng": "113", "coordsys": "epsg3857"}, "coordsys", "invalid_parameter"),
    ({"lat": "27", "lng": "113", "kind": "toilet,spaceship"}, "kind", "invalid_parameter"),
    ({"lat": "27", "lng": "113", "amenity": "jacuzzi"}, "amenity", "invalid_parameter"),
    ({"lat": "27", "lng": "113", "limit": "0"}, "limit", "out_of_range"),
    ({"lat": "27", "lng": "113", "limit": "101"}, "limit", "out_of_range"),
    ({"lat": "27", "lng": "113", "limit": "ten"}, "limit", "invalid_parameter"),
    ({"lat": "27", "lng": "113", "at": "yesterday"}, "at", "invalid_parameter"),
    ({"lat": "27", "lng": "113", "at": "9999-12-31T23:00:00-08:00"}, "at", "out_of_range"),
    ({"lat": "27", "lng": "113", "at": "0001-01-01T00:00:00+14:00"}, "at", "out_of_range"),
    ({"lat": "90", "lng": "0", "coordsys": "gcj02"}, None, None),  # the pole: an answer, not a 500
    ({"lat": "-90", "lng": "0", "coordsys": "bd09"}, None, None),
    ({"lat": "27", "lng": "113", "open_now": "maybe"}, "open_now", "invalid_parameter"),
    ({"lat": "27", "lng": "113", "max_distance": "-5"}, "max_distance", "out_of_range"),
]


@pytest.mark.parametrize("params,field,code", BAD_NEAREST)
def test_bad_input_to_nearest(client, params, field, code):
    r = client.get("/api/v1/stations/nearest", query_string=params)
    if field is None:
        assert r.status_code == 200
        return
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert (error["field"], error["code"]) == (field, code)
    assert error["message"]


BAD_BBOX = [
    ("", "missing_parameter"),
    ("113,27,114", "invalid_parameter"),
    ("113,27,114,28,1", "invalid_parameter"),
    ("113,27,a,28", "invalid_parameter"),
    ("114,27,113,28", "invalid_parameter"),  # inverted longitudes
    ("113,28,114,27", "invalid_parameter"),  # inverted latitudes
    ("113,27,114,nan", "invalid_parameter"),
    ("-181,27,114,28", "out_of_range"),
    ("113,-91,114,28", "out_of_range"),
]


@pytest.mark.parametrize("bbox,code", BAD_BBOX)
def test_bad_bbox(client, bbox, code):
    r = client.get("/api/v1/stations", query_string={"bbox": bbox})
    assert r.status_code == 400
    assert r.get_json()["error"] == {**r.get_json()["error"], "field": "bbox", "code": code}


def test_bad_bbox_limit(client):
    r = client.get("/api/v1/stations", query_string={"bbox": "113,27,114,28", "limit": "5001"})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "limit"


def test_unknown_route_and_method_are_json(client):
    r = client.get("/api/v1/nowhere")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    r = client.post("/api/v1/stations/nearest")
    assert r.status_code == 405 and "error" in r.get_json()


def test_unexpected_failure_is_a_json_500_without_a_stack_trace(client, app, monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.extensions["yizhan_store"], "nearest", boom)
    r = client.get("/api/v1/stations/nearest?lat=27&lng=113")
    assert r.status_code == 500
    assert r.get_json()["error"]["code"] == "internal_error"
    assert b"secret" not in r.data and b"Traceback" not in r.data


def test_openapi_document_is_valid_and_covers_every_route(client, app):
    from openapi_spec_validator import validate

    doc = client.get("/api/v1/openapi.json").get_json()
    validate(doc)
    # <int(max=...):station_id> is documented as {id}, <any(a, b):kind> as {kind}.
    def documented(match):
        return "{id}" if match.group(1).endswith("id") else "{" + match.group(1) + "}"

    routes = {
        re.sub(r"<(?:[^:<>]+:)?(\w+)>", documented, rule.rule.removeprefix("/api/v1"))
        for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1")
    }
    assert routes == set(doc["paths"])
    assert "/stations/{id}" in routes  # the rewriting above did rewrite


def test_database_outage_is_a_json_503(client, app, monkeypatch):
    from sqlalchemy.exc import OperationalError

    def down(*_a, **_k):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(app.extensions["yizhan_store"], "nearest", down)
    r = client.get("/api/v1/stations/nearest?lat=27&lng=113")
    assert r.status_code == 503 and r.get_json()["error"]["code"] == "unavailable"


def test_live_answers_are_not_cached_but_the_vocabulary_is(client):
    assert "no-cache" in client.get("/api/v1/stations/nearest?lat=27&lng=113").headers["Cache-Control"]
    assert "max-age=3600" in client.get("/api/v1/meta").headers["Cache-Control"]


def test_out_coordsys_answers_in_another_system(client, stations):
    # A GCJ-02 position (e.g. from WeChat) asked about, answers for a WGS-84 map.
    g_lat, g_lng = from_wgs84(*CENTRE, "gcj02")
    body = nearest(client, lat=g_lat, lng=g_lng, coordsys="gcj02", out_coordsys="wgs84").get_json()
    assert body["coordsys"] == "wgs84"
    assert distance_m(body["origin"]["lat"], body["origin"]["lng"], *CENTRE) < 0.05
    first = body["results"][0]
    assert distance_m(first["lat"], first["lng"], CENTRE[0] + 0.001, CENTRE[1]) < 0.05
    r = nearest(client, lat=1, lng=2, out_coordsys="mercator")
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "out_coordsys"
