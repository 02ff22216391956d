"""The staff JSON API (/api/v1/ops) over HTTP, on both stores: work orders listed, read and moved
through the transition table, station closures and broken amenities as the finder shows them at
once, inspections, tokens and sessions (CSRF). The world is tests/staff_world.py; who may do what
across organisations is tests/test_ops_matrix.py.
"""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import session
from flask_wtf.csrf import generate_csrf

from app.api import bodies
from app.dbtime import utcnow
from app.ops.service import ReportInput
from tests.images import make_jpeg_with_gps
from tests.staff_world import (
    ADMIN, EAST_BOSS, LIU, PASSWORD, REPORTER_EMAIL, REPORTER_PHONE, WANG, ZHANG, build,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
A1_LAT, A1_LNG = 27.8300, 113.1500
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def world(store, ops):
    return build(store, ops)


def _post(client, world, email, work_order, **body):
    return client.post(f"/api/v1/ops/work-orders/{work_order}/transitions", json=body, headers=world.bearer(email))


def _detail(client, world, email, work_order):
    return client.get(f"/api/v1/ops/work-orders/{work_order}", headers=world.bearer(email))


def _error(answer) -> tuple[int, str, str | None]:
    error = answer.get_json()["error"]
    return answer.status_code, error["code"], error["field"]


def _nearest(client, **extra):
    query = {"lat": A1_LAT, "lng": A1_LNG, "max_distance": 300, **extra}
    answer = client.get("/api/v1/stations/nearest", query_string=query)
    assert answer.status_code == 200
    return {hit["id"]: hit for hit in answer.get_json()["results"]}


# -- work orders ------------------------------------------------------------------------------


def test_list_is_scoped_filtered_and_soonest_due_first(client, world):
    ops, a1 = world.ops, world.station["a1"]
    # A dirty toilet reported two hours ago and never answered: its 10-minute response limit has passed.
    late = ops.submit_report(ReportInput(category="dirty", station_id=a1), utcnow() - timedelta(hours=2))
    me_too = ops.submit_report(ReportInput(category="no_water", station_id=a1), utcnow())
    assert me_too.joined and me_too.work_order_id == world.work_order["theirs"]

    def listed(**query):
        answer = client.get("/api/v1/ops/work-orders", query_string=query, headers=world.bearer(EAST_BOSS))
        assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
        bodies.WorkOrderList.model_validate(answer.get_json())
        return answer.get_json()

    everything = listed()
    ids = [wo["id"] for wo in everything["results"]]
    # Soonest due first: the late one (due 1 h 50 min ago), then the dirty A2 one and the A1 one
    # (both resolve within 24 h of being reported five minutes ago; ties by id).
    assert ids == [late.work_order_id, world.work_order["theirs"], world.work_order["colleague"]]
    assert (everything["count"], everything["truncated"]) == (3, False)
    first = everything["results"][0]
    assert (first["state"], first["overdue"], first["category"], first["priority"]) == ("new", True, "dirty", "high")
    assert first["category_name"] == {"zh-CN": "卫生差", "en": "Dirty"}
    theirs = everything["results"][1]
    assert (theirs["reports"], theirs["assignee"], theirs["station_name"]) == (2, WANG, "建宁驿站 A1")
    assert (theirs["lat"], theirs["lng"]) == (A1_LAT, A1_LNG)
    for field in ("created_at", "updated_at", "due_at", "response_due_at", "resolution_due_at"):
        assert theirs[field].endswith("+08:00"), field  # the organisation's zone
    assert datetime.fromisoformat(theirs["due_at"]) == datetime.fromisoformat(theirs["resolution_due_at"])

    assert [wo["id"] for wo in listed(overdue="1")["results"]] == [late.work_order_id]
    assert [wo["id"] for wo in listed(category="dirty", station=a1)["results"]] == [late.work_order_id]
    assert [wo["id"] for wo in listed(status="new")["results"]] == [late.work_order_id]
    assert len(listed(status="open")["results"]) == 3 and listed(status="closed")["results"] == []
    # Each work order's times in its own organisation's zone.
    admin = client.get("/api/v1/ops/work-orders", headers=world.bearer(ADMIN)).get_json()["results"]
    zones = {wo["id"]: wo["created_at"][-6:] for wo in admin}
    assert zones[world.work_order["other"]] == "+06:00" and zones[world.work_order["theirs"]] == "+08:00"
    two = listed(limit="2")
    assert (two["count"], two["truncated"]) == (2, True)
    bad = client.get("/api/v1/ops/work-orders?status=done", headers=world.bearer(EAST_BOSS))
    assert _error(bad) == (400, "invalid_parameter", "status")


def test_detail_has_the_log_photos_and_contacts_for_managers_only(client, world):
    photo = make_jpeg_with_gps()
    world.ops.submit_report(ReportInput(category="no_water", station_id=world.station["a1"], photos=(photo,)), utcnow())
    theirs = world.work_order["theirs"]

    manager = _detail(client, world, EAST_BOSS, theirs)
    assert manager.status_code == 200 and manager.headers["Cache-Control"] == "no-store"
    body = manager.get_json()
    bodies.WorkOrderDetail.model_validate(body)
    assert [(e["from"], e["to"], e["actor"], e["assignee"]) for e in body["events"]] == [
        (None, "new", "reporter", None), ("new", "assigned", ADMIN, WANG)]
    assert body["events"][1]["at"].endswith("+08:00")
    assert body["allowed_transitions"] == ["assigned", "in_progress", "fixed", "closed"]
    assert [(r["phone"], r["email"]) for r in body["report_items"]] == [(REPORTER_PHONE, REPORTER_EMAIL), (None, None)]
    assert body["contacts_shown"] is True and body["reports"] == 2
    [picture] = body["photos"]
    assert re.fullmatch(r"/media/[0-9a-f]{64}", picture["url"]) and picture["public"] is False
    served = client.get(picture["url"], headers=world.bearer(EAST_BOSS))
    assert served.status_code == 200 and served.mimetype == "image/jpeg"

    worker = _detail(client, world, WANG, theirs).get_json()
    assert worker["contacts_shown"] is False
    assert {(r["phone"], r["email"]) for r in worker["report_items"]} == {(None, None)}
    assert worker["allowed_transitions"] == ["in_progress", "fixed"]
    assert REPORTER_PHONE not in _detail(client, world, WANG, theirs).get_data(as_text=True)
    admin = _detail(client, world, ADMIN, theirs).get_json()
    assert admin["contacts_shown"] is True and admin["report_items"][0]["phone"] == REPORTER_PHONE


def test_transitions_move_the_work_order_and_append_to_its_log(client, world):
    theirs = world.work_order["theirs"]
    started = _post(client, world, WANG, theirs, to="in_progress", note="在路上")
    assert started.status_code == 200 and started.get_json()["state"] == "in_progress"
    fixed = _post(client, world, WANG, theirs, to="fixed", note="已恢复供水", public=True)
    assert fixed.status_code == 200
    bodies.WorkOrderDetail.model_validate(fixed.get_json())
    assert (fixed.get_json()["state"], fixed.get_json()["due_at"]) == ("fixed", None)
    closed = _post(client, world, EAST_BOSS, theirs, to="closed", reason="resolved")
    body = closed.get_json()
    assert (closed.status_code, body["state"], body["close_reason"]) == (200, "closed", "resolved")
    assert [(e["to"], e["note"], e["public"], e["reason"]) for e in body["events"][2:]] == [
        ("in_progress", "在路上", False, None), ("fixed", "已恢复供水", True, None), ("closed", "", False, "resolved")]
    assert body["allowed_transitions"] == ["reopened"]
    # Handing it to someone else: the assignee is an e-mail of the responsible organisation.
    colleague = world.work_order["colleague"]
    handed = _post(client, world, EAST_BOSS, colleague, to="assigned", assignee=WANG)
    assert (handed.status_code, handed.get_json()["assignee"]) == (200, WANG)


@pytest.mark.parametrize("body, expected", [
    ({"to": "fixed"}, (409, "conflict", "to")),  # new -> fixed skips the response
    ({"to": "done"}, (400, "invalid_parameter", "to")),  # no such state
    ({"to": "closed"}, (400, "invalid_parameter", "reason")),  # closing needs a reason
    ({"to": "closed", "reason": "resolved"}, (409, "conflict", "to")),  # resolved only from fixed
    ({"to": "closed", "reason": "lost"}, (400, "invalid_parameter", "reason")),
    ({"to": "confirmed", "reason": "duplicate"}, (400, "invalid_parameter", "reason")),  # a reason only when closing
    ({"to": "assigned"}, (400, "invalid_parameter", "assignee")),
    ({"to": "assigned", "assignee": LIU}, (400, "invalid_parameter", "assignee")),  # another organisation's worker
    ({"to": "confirmed", "assignee": WANG}, (400, "invalid_parameter", "assignee")),
    ({"to": "confirmed", "public": "yes"}, (400, "invalid_parameter", "public")),  # JSON true, not a string
    ({"to": "confirmed", "note": "x" * 2001}, (400, "invalid_parameter", "note")),
    ({"to": "confirmed", "colour": "red"}, (400, "invalid_parameter", "colour")),  # unknown fields are refused
    ({}, (400, "missing_parameter", "to")),
])
def test_the_transition_table_is_enforced_over_http(client, world, body, expected):
    fresh = world.ops.submit_report(ReportInput(category="safety", station_id=world.station["a1"]), utcnow())
    answer = _post(client, world, EAST_BOSS, fresh.work_order_id, **body)
    assert _error(answer) == expected
    log = _detail(client, world, EAST_BOSS, fresh.work_order_id).get_json()
    assert (log["state"], len(log["events"])) == ("new", 1)  # nothing written


def test_bodies_must_be_json_objects(client, world):
    url = f"/api/v1/ops/work-orders/{world.work_order['theirs']}/transitions"
    headers = world.bearer(EAST_BOSS)
    form = client.post(url, data={"to": "in_progress"}, headers=headers)
    assert _error(form) == (415, "unsupported_media_type", None)
    broken = client.post(url, data='{"to": "in_progress"', content_type="application/json", headers=headers)
    assert _error(broken) == (400, "invalid_json", None)
    listed = client.post(url, json=["in_progress"], headers=headers)
    assert _error(listed) == (400, "invalid_json", None)
    huge = client.post(url, json={"to": "in_progress", "note": "x" * 70_000}, headers=headers)
    assert _error(huge) == (413, "too_large", None)
    assert client.get(f"/api/v1/ops/work-orders/{world.work_order['theirs']}",
                      headers=headers).get_json()["state"] == "assigned"


# -- stations: status and amenities ---------------------------------------------------------------


def test_a_closure_shows_at_once_in_the_finder_and_reopening_restores_it(client, world):
    a1, url = world.station["a1"], f"/api/v1/ops/stations/{world.station['a1']}/status"
    assert a1 in _nearest(client, open_now="1")
    until = (utcnow() + timedelta(hours=2)).astimezone(SHANGHAI).replace(microsecond=0)
    closed = client.patch(url, json={"status": "temporarily_closed", "reason": "管道维修", "until": until.isoformat()},
                          headers=world.bearer(ZHANG))
    assert closed.status_code == 200 and closed.headers["Cache-Control"] == "no-store"
    bodies.StationDetail.model_validate(closed.get_json())
    assert (closed.get_json()["open_state"], closed.get_json()["closed_reason"]) == ("closed", "管道维修")
    assert datetime.fromisoformat(closed.get_json()["next_change"]) == until

    hit = _nearest(client)[a1]
    assert (hit["open_state"], hit["closed_reason"]) == ("closed", "管道维修")
    assert a1 not in _nearest(client, open_now="1")
    assert a1 not in _nearest(client, open_now="1", include_unknown="1")

    reopened = client.patch(url, json={"status": "open"}, headers=world.bearer(ZHANG))
    assert (reopened.status_code, reopened.get_json()["open_state"]) == (200, "open")
    assert _nearest(client, open_now="1")[a1]["closed_reason"] is None


@pytest.mark.parametrize("body, field", [
    ({"status": "temporarily_closed"}, "reason"),  # people are told why
    ({"status": "temporarily_closed", "reason": "维修", "until": "2020-01-01T00:00:00+08:00"}, "until"),  # past
    ({"status": "temporarily_closed", "reason": "维修", "until": "2030-01-01T00:00:00"}, "until"),  # no offset
    ({"status": "open", "until": "2030-01-01T00:00:00+08:00"}, "until"),
    ({"status": "shut"}, "status"),
    ({"status": "temporarily_closed", "reason": "修" * 201}, "reason"),
])
def test_bad_status_changes_are_400_and_change_nothing(client, world, body, field):
    a1 = world.station["a1"]
    answer = client.patch(f"/api/v1/ops/stations/{a1}/status", json=body, headers=world.bearer(ZHANG))
    assert _error(answer)[::2] == (400, field)
    assert _nearest(client)[a1]["open_state"] == "open"


def test_an_out_of_order_amenity_is_listed_and_stops_matching_its_filter(client, world):
    a1, url = world.station["a1"], f"/api/v1/ops/stations/{world.station['a1']}/amenities"
    assert a1 in _nearest(client, amenity="hot_water")
    broken = client.patch(url, json={"amenity": "hot_water", "out_of_order": True, "reason": "热水器坏了"},
                          headers=world.bearer(EAST_BOSS))
    assert broken.status_code == 200 and broken.get_json()["out_of_order"] == ["hot_water"]
    assert _nearest(client)[a1]["out_of_order"] == ["hot_water"]
    assert a1 not in _nearest(client, amenity="hot_water")
    assert a1 in _nearest(client, amenity="toilet")  # the rest still matches
    fixed = client.patch(url, json={"amenity": "hot_water", "out_of_order": False}, headers=world.bearer(EAST_BOSS))
    assert fixed.status_code == 200 and fixed.get_json()["out_of_order"] == []
    assert _nearest(client, amenity="hot_water")[a1]["out_of_order"] == []

    missing = client.patch(url, json={"amenity": "microwave", "out_of_order": True}, headers=world.bearer(EAST_BOSS))
    assert _error(missing) == (400, "invalid_parameter", "amenity")  # A1 has no microwave
    unknown = client.patch(url, json={"amenity": "jacuzzi", "out_of_order": True}, headers=world.bearer(EAST_BOSS))
    assert _error(unknown) == (400, "invalid_parameter", "amenity")


# -- inspections -------------------------------------------------------------------------------


def test_an_inspection_opens_work_orders_for_failed_items(client, world):
    a1, headers = world.station["a1"], world.bearer(ZHANG)
    checklist = client.get("/api/v1/ops/checklists/rest_station", headers=headers)
    assert checklist.status_code == 200
    bodies.Checklist.model_validate(checklist.get_json())
    items = {item["code"]: item for item in checklist.get_json()["items"]}
    assert items["hot_water"] == {"code": "hot_water", "labels": {"zh-CN": "热水正常", "en": "Hot water available"},
                                  "category": "no_water"}
    todo = client.get("/api/v1/ops/stations/not-inspected", headers=headers).get_json()
    assert [s["id"] for s in todo["results"]] == [a1] and todo["results"][0]["last_inspected_at"] is None

    results = {code: code not in ("hot_water", "first_aid") for code in items}
    # About 1.1 km north of A1: flagged as far from the station.
    done = client.post("/api/v1/ops/inspections", json={"station_id": a1, "results": results,
                                                        "lat": A1_LAT + 0.01, "lng": A1_LNG, "note": "早班"},
                       headers=headers)
    assert done.status_code == 201
    body = done.get_json()
    bodies.InspectionAnswer.model_validate(body)
    assert body["far"] is True and 1000 < body["distance_m"] < 1200
    failed = {f["item"]: f for f in body["failed"]}
    assert set(failed) == {"hot_water", "first_aid"}
    # Hot water joins the open no_water work order at A1; the first-aid kit opens a safety one.
    assert (failed["hot_water"]["work_order_id"], failed["hot_water"]["joined"]) == (world.work_order["theirs"], True)
    assert failed["first_aid"]["joined"] is False
    listed = client.get("/api/v1/ops/work-orders?category=safety", headers=headers).get_json()
    assert [wo["id"] for wo in listed["results"]] == [failed["first_aid"]["work_order_id"]]
    assert client.get("/api/v1/ops/stations/not-inspected", headers=headers).get_json()["results"] == []


@pytest.mark.parametrize("body, field", [
    ({"results": {"hot_water": True}}, "results"),  # the rest of the checklist is missing
    ({"results": "all good"}, "results"),
    ({"results": {"hot_water": 1}}, "results.hot_water"),
    ({"lat": 95.0}, "lat"),
    ({"lat": 27.83}, "lat"),  # a position needs both coordinates
])
def test_bad_inspections_are_400_and_record_nothing(client, world, body, field):
    a1 = world.station["a1"]
    full = {"station_id": a1, "results": {code: True for code in (
        "drinking_water", "hot_water", "microwave", "charging", "umbrellas", "first_aid", "air_conditioning",
        "clean")}}
    answer = client.post("/api/v1/ops/inspections", json={**full, **body}, headers=world.bearer(ZHANG))
    assert _error(answer)[::2] == (400, field)
    todo = client.get("/api/v1/ops/stations/not-inspected", headers=world.bearer(ZHANG)).get_json()
    assert [s["id"] for s in todo["results"]] == [a1]


# -- who is calling ----------------------------------------------------------------------------


def test_missing_expired_and_revoked_tokens_are_401(client, world):
    url = "/api/v1/ops/work-orders"
    expired = world.ops.accounts.create_token(EAST_BOSS, expires_at=utcnow() - timedelta(seconds=1))
    revoked = world.ops.accounts.create_token(EAST_BOSS)
    assert world.ops.accounts.revoke_token(revoked)
    assert client.get(url, headers=world.bearer(EAST_BOSS)).status_code == 200
    for headers in ({}, {"Authorization": f"Bearer {expired}"}, {"Authorization": f"Bearer {revoked}"},
                    {"Authorization": "Bearer yzt_made-up"}):
        answer = client.get(url, headers=headers)
        assert _error(answer)[:2] == (401, "unauthorized"), headers
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert answer.headers["Cache-Control"] == "no-store"
    # Checked before the input: an anonymous caller learns nothing from validation.
    anonymous = client.post(f"/api/v1/ops/work-orders/{world.work_order['theirs']}/transitions", json={"to": "x"})
    assert anonymous.status_code == 401


def test_an_unknown_ops_path_is_a_json_404_not_stored(client, world):
    answer = client.get("/api/v1/ops/nothing-here", headers=world.bearer(EAST_BOSS))
    assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "not_found"
    assert answer.headers["Cache-Control"] == "no-store"


def _session_csrf_token(app, client) -> str:
    """The session's CSRF token as a staff page embeds it (``csrf_token()``): Flask-WTF signs a
    random value it keeps in the session."""
    with app.test_request_context():
        token = generate_csrf()
        raw = session["csrf_token"]
    with client.session_transaction() as stored:
        stored["csrf_token"] = raw
    return token


def test_session_callers_must_send_the_csrf_header_on_changes(app, client, world):
    # An address of its own: login attempts are counted per address in the shared limiter.
    # (a /64 of its own: IPv6 clients are counted by their /64)
    client.environ_base["REMOTE_ADDR"] = "2001:db8:{}:{}::1".format(uuid.uuid4().hex[:4], uuid.uuid4().hex[:4])
    page = client.get("/staff/login")
    login = client.post("/staff/login", data={"csrf_token": CSRF_FIELD.search(page.get_data(as_text=True)).group(1),
                                               "email": EAST_BOSS, "password": PASSWORD})
    assert login.status_code == 302
    url = f"/api/v1/ops/work-orders/{world.work_order['theirs']}"
    assert client.get(url).status_code == 200  # reading needs no token

    refused = client.post(url + "/transitions", json={"to": "in_progress"})
    assert _error(refused)[:2] == (400, "csrf_failed")
    assert client.get(url).get_json()["state"] == "assigned"
    forged = client.post(url + "/transitions", json={"to": "in_progress"}, headers={"X-CSRFToken": "forged"})
    assert _error(forged)[:2] == (400, "csrf_failed")

    token = _session_csrf_token(app, client)
    done = client.post(url + "/transitions", json={"to": "in_progress"}, headers={"X-CSRFToken": token})
    assert (done.status_code, done.get_json()["state"]) == (200, "in_progress")
    # The event names the session's user.
    assert done.get_json()["events"][-1]["actor"] == EAST_BOSS
