"""Open311 GeoReport v2 (/open311/v2) against the standard's field names, on both stores:
discovery and services, POST by station or by place (WGS-84 or GCJ-02) with "me too", the
request list's filters and defaults, status and SLA due times, tokens, nothing personal in any
GET answer, every error in the standard's ``[{"code", "description"}]``, and rate limits.

Two organisations, one station each, 8 km apart; small enough to check by hand.
"""
from __future__ import annotations

import io
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from app.geo.coordsys import wgs84_to_gcj02
from app.ops.categories import DEFAULT_CATEGORIES, category_to_dict
from app.dbtime import utcnow
from app.ops.service import ReportInput
from tests.helpers import station
from tests.images import make_jpeg_with_gps

BASE = "/open311/v2"
PASSWORD = "correct horse battery"
PHONE, EMAIL, DEVICE = "13812345678", "reporter@example.com", "device-7f3a9c"
SERVICE_FIELDS = ["service_code", "service_name", "description", "metadata", "type", "keywords", "group"]
REQUEST_FIELDS = ["service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"]
EAST = (27.8300, 113.1500)  # station e1 (WGS-84), run by the east organisation
WEST = (27.9000, 113.2000)  # station w1, run by the west organisation, ~9 km away


def _address() -> str:
    """A documentation-range IPv6 address of its own: rate-limit counts in the shared Redis never
    meet another test's, another run's or another checkout's."""
    hexes = uuid.uuid4().hex[:24]
    return "2001:db8:" + ":".join(hexes[i:i + 4] for i in range(0, 24, 4))


@pytest.fixture
def world(client, store, ops):
    store.upsert([
        station("e1", *EAST, "toilet", hours="24/7", source="o311", name="建宁驿站 E1"),
        station("w1", *WEST, "rest_station", hours="24/7", source="o311", name="户外劳动者驿站 W1"),
    ])
    acc = ops.accounts
    acc.create_organisation("east", "芦淞区环卫所")
    acc.create_organisation("west", "荷塘区环卫所")
    boss = acc.create_user("boss@east.example", PASSWORD, "org_manager", "east")
    acc.assign_stations("east", "o311", ["e1"])
    acc.assign_stations("west", "o311", ["w1"])
    with store.reading() as conn:
        ids = dict(conn.execute(text("SELECT source_id, id FROM station WHERE source = 'o311'")).all())
    return {"client": client, "ops": ops, "store": store, "boss": boss, "ids": ids,
            "key": acc.create_open311_key("test hotline")}


def _post(world, address: str | None = None, files=None, **fields):
    """POST requests.json from a fresh client address (unless one is given) with the world's key."""
    data = {"api_key": world["key"], **fields}
    if files:
        data.update(files)
    return world["client"].post(f"{BASE}/requests.json", data=data, environ_base={"REMOTE_ADDR": address or _address()},
                                content_type="multipart/form-data" if files else None)


def _get(world, path: str, **params):
    return world["client"].get(f"{BASE}/{path}", query_string=params or None)


def _count(store, table: str) -> int:
    with store.reading() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()


def _assert_error(answer, status: int):
    assert answer.status_code == status, answer.get_data(as_text=True)
    body = answer.get_json()
    assert isinstance(body, list) and len(body) == 1 and list(body[0]) == ["code", "description"]
    assert body[0]["code"] == status and body[0]["description"]
    return body[0]["description"]


# -- discovery and services ----------------------------------------------------------------


def test_discovery_names_the_standard_and_json_only(world):
    answer = _get(world, "discovery.json")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    body = answer.get_json()
    assert {"changeset", "contact", "key_service", "endpoints"} <= set(body)
    (endpoint,) = body["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == "http://localhost/open311/v2"  # built from the request's own host
    assert endpoint["formats"] == ["application/json"] and endpoint["type"] == "production"
    assert ".xml" in endpoint["notes"]


def test_services_list_every_category_under_the_standard_names(world):
    answer = _get(world, "services.json", lang="en")
    assert answer.status_code == 200
    body = answer.get_json()
    assert [s["service_code"] for s in body] == [c.code for c in DEFAULT_CATEGORIES]
    assert all(list(s) == SERVICE_FIELDS for s in body)
    no_water = body[[c.code for c in DEFAULT_CATEGORIES].index("no_water")]
    assert no_water["service_name"] == "No water or hot water" and no_water["metadata"] is True
    assert no_water["type"] == "realtime" and "无水/无热水" in no_water["keywords"]
    zh = world["client"].get(f"{BASE}/services.json", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_json()
    assert [s["service_name"] for s in zh][:2] == ["卫生差", "缺纸/缺洗手液"]
    assert _get(world, "services.json").get_json()[0]["service_name"] == "卫生差"  # zh-CN by default


def test_services_of_a_station_are_its_organisations_categories(world):
    edited = [category_to_dict(c) for c in DEFAULT_CATEGORIES if c.code in ("dirty", "other")]
    world["ops"].accounts.set_categories("west", edited)
    west = _get(world, "services.json", station_id=world["ids"]["w1"]).get_json()
    assert [s["service_code"] for s in west] == ["dirty", "other"]
    east = _get(world, "services.json", station_id=world["ids"]["e1"]).get_json()
    assert len(east) == len(DEFAULT_CATEGORIES)
    _assert_error(_get(world, "services.json", station_id=10 ** 12), 404)
    _assert_error(_get(world, "services.json", station_id="abc"), 400)
    # The organisation's list also decides what a POST there may use.
    _assert_error(_post(world, service_code="no_water", **{"attribute[station_id]": world["ids"]["w1"]}), 400)


def test_service_definition_offers_the_station_attribute(world):
    answer = _get(world, "services/no_water.json", lang="en")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["service_code"] == "no_water"
    (attribute,) = body["attributes"]
    assert {k: attribute[k] for k in ("variable", "code", "datatype", "required", "order")} == {
        "variable": True, "code": "station_id", "datatype": "number", "required": False, "order": 1}
    assert "station" in attribute["description"] and attribute["datatype_description"]
    _assert_error(_get(world, "services/no_such_thing.json"), 404)


# -- POST requests ---------------------------------------------------------------------------


def test_post_at_a_station_answers_the_id_and_token_and_stores_an_open311_report(world):
    answer = _post(world, service_code="no_water", description="龙头没水", phone=PHONE, email=EMAIL,
                   device_id=DEVICE, first_name="Li", last_name="Lei",
                   **{"attribute[station_id]": world["ids"]["e1"]})
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    (body,) = answer.get_json()
    assert list(body) == ["service_request_id", "token", "service_notice", "account_id"]
    assert body["account_id"] is None and body["service_request_id"].isdigit()
    wo_id = int(body["service_request_id"])
    assert world["ops"].work_order_for_token(body["token"]).id == wo_id
    assert body["service_notice"].startswith("已收到") and body["service_notice"].endswith(f"/r/{body['token']}")
    wo = world["ops"].store.work_order(wo_id)
    assert (wo.station_id, wo.category, wo.source, wo.description) == (world["ids"]["e1"], "no_water", "open311",
                                                                        "龙头没水")
    (report,) = world["ops"].store.reports(wo_id)
    assert (report.phone, report.email, report.device_id, report.source) == (PHONE, EMAIL, DEVICE, "open311")
    with world["store"].reading() as conn:
        key_id = conn.execute(text("SELECT open311_key_id FROM report WHERE id = :id"), {"id": report.id}).scalar()
        stored = " ".join(str(v) for v in conn.execute(text("SELECT * FROM report")).one())
    assert key_id == world["ops"].accounts.open311_key_id(world["key"])
    assert "Li" not in stored.split() and "Lei" not in stored.split()  # names are not kept


def test_post_at_a_place_within_50_m_joins_that_station_and_a_second_one_is_me_too(world):
    near = {"lat": f"{EAST[0] + 0.0002:.6f}", "long": f"{EAST[1]:.6f}"}  # ~22 m north of e1
    first = _post(world, service_code="dirty", **near)
    assert first.status_code == 200
    first_id = first.get_json()[0]["service_request_id"]
    (detail,) = _get(world, f"requests/{first_id}.json").get_json()
    assert detail["address_id"] == str(world["ids"]["e1"]) and detail["address"] == "建宁驿站 E1"
    assert detail["agency_responsible"] == "芦淞区环卫所"
    again = _post(world, service_code="dirty", **{"attribute[station_id]": world["ids"]["e1"]})
    assert again.get_json()[0]["service_request_id"] == first_id
    assert again.get_json()[0]["token"] == first.get_json()[0]["token"]
    assert again.get_json()[0]["service_notice"].startswith("已有人报告了同样的问题")  # zh-CN unless asked
    assert world["ops"].store.work_order(int(first_id)).reports == 2


def test_post_far_from_any_station_goes_to_the_organisation_of_the_nearest_owned_station(world):
    # ~1.1 km east of w1 and ~8 km from e1: a report at a place, for the west organisation.
    answer = _post(world, service_code="other", lat=f"{WEST[0]:.6f}", long=f"{WEST[1] + 0.011:.6f}")
    assert answer.status_code == 200
    (detail,) = _get(world, f"requests/{answer.get_json()[0]['service_request_id']}.json").get_json()
    assert detail["address"] is None and detail["address_id"] is None
    assert detail["agency_responsible"] == "荷塘区环卫所"
    assert (detail["lat"], detail["long"]) == (pytest.approx(WEST[0]), pytest.approx(WEST[1] + 0.011))


def test_a_gcj02_point_is_converted_and_lands_at_the_wgs84_station(world):
    lat, lng = wgs84_to_gcj02(*EAST)  # where Amap or WeChat puts station e1: a few hundred metres off
    shifted = {"lat": f"{lat:.7f}", "long": f"{lng:.7f}"}
    as_gcj = _post(world, service_code="no_paper", coordsys="gcj02", **shifted)
    (detail,) = _get(world, f"requests/{as_gcj.get_json()[0]['service_request_id']}.json").get_json()
    assert detail["address_id"] == str(world["ids"]["e1"])
    assert (detail["lat"], detail["long"]) == (pytest.approx(EAST[0], abs=1e-6), pytest.approx(EAST[1], abs=1e-6))
    # The same numbers taken as WGS-84 are a place hundreds of metres away, not the station.
    as_wgs = _post(world, service_code="safety", **shifted)
    (elsewhere,) = _get(world, f"requests/{as_wgs.get_json()[0]['service_request_id']}.json").get_json()
    assert elsewhere["address_id"] is None
    # Answers can be given in GCJ-02 too.
    (in_gcj,) = _get(world, f"requests/{detail['service_request_id']}.json", coordsys="gcj02").get_json()
    assert (in_gcj["lat"], in_gcj["long"]) == (pytest.approx(lat, abs=1e-6), pytest.approx(lng, abs=1e-6))


def test_an_uploaded_photo_is_kept_for_staff_and_a_bad_one_is_refused_with_nothing_stored(world):
    answer = _post(world, service_code="dirty", files={"media": (io.BytesIO(make_jpeg_with_gps()), "p.jpg")},
                   **{"attribute[station_id]": world["ids"]["e1"]})
    assert answer.status_code == 200
    wo_id = int(answer.get_json()[0]["service_request_id"])
    (photo,) = world["ops"].store.attachments(wo_id)
    assert photo.mime == "image/jpeg" and not photo.public  # the reporter's photo is for staff only
    (detail,) = _get(world, f"requests/{wo_id}.json").get_json()
    assert detail["media_url"] is None
    before = _count(world["store"], "work_order"), _count(world["store"], "report")
    bad = _post(world, service_code="no_water", files={"media": (io.BytesIO(b"not an image at all"), "x.jpg")},
                **{"attribute[station_id]": world["ids"]["e1"]})
    _assert_error(bad, 400)
    assert (_count(world["store"], "work_order"), _count(world["store"], "report")) == before


# -- GET requests -----------------------------------------------------------------------------


def test_a_request_goes_from_open_to_closed_with_the_sla_due_time_and_the_fix_photo(world):
    posted = _post(world, service_code="no_water", **{"attribute[station_id]": world["ids"]["e1"]})
    wo_id = int(posted.get_json()[0]["service_request_id"])
    answer = _get(world, f"requests/{wo_id}.json", lang="en")
    assert answer.status_code == 200
    (body,) = answer.get_json()
    assert list(body) == REQUEST_FIELDS
    assert (body["status"], body["status_notes"], body["service_code"]) == ("open", None, "no_water")
    assert body["service_name"] == "No water or hot water" and body["zipcode"] is None
    # no_water is resolved within 24 hours; times carry the organisation's offset.
    requested, expected = (datetime.fromisoformat(body[k]) for k in ("requested_datetime", "expected_datetime"))
    assert expected - requested == timedelta(hours=24) and expected.utcoffset() == timedelta(hours=8)
    assert expected == world["ops"].store.work_order(wo_id).resolution_due_at.replace(microsecond=0)
    ops, boss = world["ops"], world["boss"]
    confirmed_at, fixed_at = utcnow() + timedelta(minutes=10), utcnow() + timedelta(hours=2)
    ops.transition(boss, wo_id, "confirmed", note="内部：联系水务", now=confirmed_at)
    ops.transition(boss, wo_id, "fixed", note="已恢复供水", public=True, photos=[make_jpeg_with_gps()], now=fixed_at)
    (fixed,) = _get(world, f"requests/{wo_id}.json").get_json()
    assert (fixed["status"], fixed["status_notes"]) == ("closed", "已恢复供水")  # never the internal note
    assert datetime.fromisoformat(fixed["updated_datetime"]) == fixed_at.replace(microsecond=0)
    sha = ops.store.attachments(wo_id)[0].sha256
    assert fixed["media_url"] == f"http://localhost/media/{sha}"
    assert world["client"].get(fixed["media_url"]).status_code == 200  # served to anyone: a public photo


def test_request_list_filters_and_the_90_day_default(world):
    ops, ids, now = world["ops"], world["ids"], utcnow()

    def report(code, sid, days_ago):
        return ops.submit_report(ReportInput(category=code, station_id=ids[sid]), now - timedelta(days=days_ago))

    old = report("dirty", "w1", 100)
    a, b, c = report("no_water", "e1", 10), report("dirty", "e1", 5), report("no_water", "w1", 1)
    ops.transition(world["boss"], a.work_order_id, "confirmed")
    ops.transition(world["boss"], a.work_order_id, "fixed")

    def listed(**params):
        answer = _get(world, "requests.json", **params)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return [int(r["service_request_id"]) for r in answer.get_json()]

    newest_first = [c.work_order_id, b.work_order_id, a.work_order_id]
    assert listed() == newest_first  # the last 90 days only
    assert listed(status="closed") == [a.work_order_id]
    assert listed(status="open") == [c.work_order_id, b.work_order_id]
    assert listed(status="open,closed") == newest_first
    assert listed(service_code="no_water") == [c.work_order_id, a.work_order_id]
    assert listed(service_code="dirty,no_water") == newest_first
    week, two_days = (now - timedelta(days=7)), (now - timedelta(days=2))
    assert listed(start_date=week.isoformat(), end_date=two_days.isoformat()) == [b.work_order_id]
    # A '+' left unencoded arrives as a space; a date alone is that whole day (the service's zone).
    assert listed(start_date=week.strftime("%Y-%m-%dT%H:%M:%S") + " 00:00",
                  end_date=two_days.strftime("%Y-%m-%dT%H:%M:%S") + "Z") == [b.work_order_id]
    b_day = _get(world, f"requests/{b.work_order_id}.json").get_json()[0]["requested_datetime"][:10]
    assert listed(start_date=b_day, end_date=b_day) == [b.work_order_id]
    assert listed(start_date=(now - timedelta(days=120)).isoformat()) == newest_first + [old.work_order_id]
    assert listed(end_date=(now - timedelta(days=95)).isoformat()) == [old.work_order_id]  # 90 days before it
    # service_request_id overrides every other filter, as the standard says.
    assert listed(service_request_id=f"{a.work_order_id},{old.work_order_id}", status="open") == \
        [a.work_order_id, old.work_order_id]


def test_tokens_give_the_request_id(world):
    posted = _post(world, service_code="dirty", **{"attribute[station_id]": world["ids"]["e1"]}).get_json()[0]
    answer = _get(world, f"tokens/{posted['token']}.json")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert answer.get_json() == [{"service_request_id": posted["service_request_id"], "token": posted["token"]}]
    forged = posted["token"][:-2] + ("AA" if not posted["token"].endswith("AA") else "BB")
    _assert_error(_get(world, f"tokens/{forged}.json"), 404)
    _assert_error(_get(world, "tokens/" + "1-" + "x" * 200 + ".json"), 404)


def test_no_get_answer_shows_a_phone_email_device_or_token(world):
    posted = _post(world, service_code="no_water", phone=PHONE, email=EMAIL, device_id=DEVICE,
                   description="水龙头坏了", **{"attribute[station_id]": world["ids"]["e1"]}).get_json()[0]
    other = _post(world, service_code="dirty", phone="13900001111", lat=f"{WEST[0]:.6f}",
                  long=f"{WEST[1]:.6f}").get_json()[0]
    # A work order opened by an inspection carries the inspector's note: staff's words, not published.
    world["ops"].submit_report(ReportInput(category="no_paper", station_id=world["ids"]["w1"], source="inspection",
                                           description="巡查未通过 — 内部：保洁员缺勤"))
    bodies = [_get(world, path).get_data(as_text=True) for path in (
        "requests.json", f"requests/{posted['service_request_id']}.json",
        f"requests/{other['service_request_id']}.json", f"requests.json?service_request_id="
        f"{posted['service_request_id']},{other['service_request_id']}")]
    bodies.append(_get(world, f"tokens/{posted['token']}.json").get_data(as_text=True))
    assert "水龙头坏了" in bodies[0]  # the description is public, as the standard has it
    assert '"no_paper"' in bodies[0]  # the inspection's work order is listed, without its note
    for body in bodies:
        for secret in (PHONE, "13900001111", EMAIL, DEVICE, world["key"], other["token"], "保洁员缺勤"):
            assert secret not in body
    for body in bodies[:4]:
        assert posted["token"] not in body


# -- errors ----------------------------------------------------------------------------------


BAD_POSTS = [
    ("no api_key", {"api_key": ""}, 403),
    ("unknown api_key", {"api_key": "yzk_" + "x" * 43}, 403),
    ("unknown service_code", {"service_code": "pothole"}, 400),
    ("no service_code", {"service_code": ""}, 400),
    ("lat out of range", {"attribute[station_id]": "", "lat": "91", "long": "113.15"}, 400),
    ("lat not a number", {"attribute[station_id]": "", "lat": "north", "long": "113.15"}, 400),
    ("lat without long", {"attribute[station_id]": "", "lat": "27.83"}, 400),
    ("missing location", {"attribute[station_id]": ""}, 400),
    ("unknown coordsys", {"attribute[station_id]": "", "lat": "27.83", "long": "113.15", "coordsys": "utm"}, 400),
    ("station id not a number", {"attribute[station_id]": "e1"}, 400),
    ("unknown station", {"attribute[station_id]": str(10 ** 12)}, 404),
    ("description of 100 KB", {"description": "水" * 34_000}, 400),
    ("bad phone", {"phone": "call me maybe"}, 400),
    ("media_url not on the web", {"media_url": "javascript:alert(1)"}, 400),
]


@pytest.mark.parametrize("case, fields, status", BAD_POSTS, ids=[case[0] for case in BAD_POSTS])
def test_bad_posts_get_the_standard_error_and_nothing_is_written(world, case, fields, status):
    data = {"service_code": "no_water", "attribute[station_id]": str(world["ids"]["e1"]), **fields}
    if case == "description of 100 KB":
        assert len(data["description"].encode()) > 100_000
    _assert_error(_post(world, **data), status)
    assert _count(world["store"], "work_order") == 0 and _count(world["store"], "report") == 0


def test_a_revoked_key_is_refused(world):
    world["ops"].accounts.revoke_open311_key(world["key"])
    _assert_error(_post(world, service_code="dirty", **{"attribute[station_id]": world["ids"]["e1"]}), 403)


@pytest.mark.parametrize("params", [
    {"status": "pending"}, {"start_date": "yesterday"}, {"end_date": "2026-13-01"},
    {"start_date": "2026-11-20T00:00:00Z", "end_date": "2026-11-10T00:00:00Z"},  # end before start
    {"service_request_id": "1,x"}, {"coordsys": "utm"}, {"start_date": "0001-01-01"},
    {"end_date": "9999-12-31"},  # the day after it does not exist
])
def test_bad_list_questions_get_400(world, params):
    _assert_error(_get(world, "requests.json", **params), 400)


def test_unknown_ids_paths_formats_and_methods_answer_in_the_standard_shape(world):
    _assert_error(_get(world, "requests/999999999.json"), 404)
    _assert_error(_get(world, "requests/abc.json"), 404)
    assert "JSON only" in _assert_error(_get(world, "services.xml"), 400)
    assert "JSON only" in _assert_error(_get(world, "requests.xml"), 400)
    _assert_error(_get(world, "no/such/thing.json"), 404)
    wrong = world["client"].delete(f"{BASE}/requests.json")
    _assert_error(wrong, 405)
    assert "POST" in wrong.headers["Allow"]


def test_a_body_over_the_size_cap_is_413_in_the_standard_shape(world, app, monkeypatch, caplog):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 4096)
    big = _post(world, service_code="dirty", description="x" * 8000, **{"attribute[station_id]": world["ids"]["e1"]})
    _assert_error(big, 413)
    assert _count(world["store"], "work_order") == 0
    # The rate-limit keys are read from the body: an unreadable one must not look like Redis
    # failing to the limiter (it would count in this worker's memory for a while).
    assert "falling back to in-memory storage" not in caplog.text


# -- rate limits -------------------------------------------------------------------------------


def test_the_sixth_post_without_a_valid_key_from_one_address_in_ten_minutes_is_429(world):
    """Key guessing (or a revoked client) is held per address: 5 tries in 10 minutes."""
    address = _address()
    fields = {"service_code": "dirty", "attribute[station_id]": world["ids"]["e1"], "api_key": "yzk_guess"}
    assert [_post(world, address, **fields).status_code for _ in range(5)] == [403] * 5
    limited = _post(world, address, **fields)
    assert "Too many requests" in _assert_error(limited, 429)
    assert 1 <= int(limited.headers["Retry-After"]) <= 600
    assert _post(world, address, **{**fields, "api_key": world["key"]}).status_code == 200  # a real client is not


def test_a_client_with_its_key_is_held_by_the_key_not_its_address(world):
    """A city hotline posts for many callers from one server: six reports in a row are fine."""
    address = _address()
    fields = {"service_code": "dirty", "attribute[station_id]": world["ids"]["e1"]}
    assert [_post(world, address, **fields).status_code for _ in range(6)] == [200] * 6
    (listed,) = _get(world, "requests.json").get_json()
    assert world["ops"].store.work_order(int(listed["service_request_id"])).reports == 6


def test_one_api_key_is_limited_across_addresses(world):
    # Each from its own address, so only the per-key limit can apply; no service_code: cheap 400s.
    assert {_post(world, service_code="").status_code for _ in range(60)} == {400}
    _assert_error(_post(world, service_code=""), 429)
    other_key = world["ops"].accounts.create_open311_key("another client")
    assert _post(world, service_code="", api_key=other_key).status_code == 400
