"""Logs on both stores: one JSON object per line, the request id on every line of a request and in
the X-Request-Id header, and no personal data or secret in any line — a reporter's phone and
e-mail (the report form and Open311), the tracking token, a staff password, a device token, an
Open311 key and tokens in query strings. (tests/test_metrics.py checks gunicorn's own logs.)"""
import json
import logging
import re
import uuid

import pytest

from app.logs import JsonFormatter, redact, request_id
from app.ops.sensors import Sensors
from tests.helpers import station

PHONE = "13912345678"
EMAIL = "reporter.private@example.cn"
PASSWORD = "correct horse battery staple"
SECRET_QUERY = "qs-secret-7f3a9c"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _address() -> str:
    """An address of its own: the rate-limit counts in the shared Redis never meet another test's."""
    hexes = uuid.uuid4().hex[:24]
    return "2001:db8:" + ":".join(hexes[i:i + 4] for i in range(0, 24, 4))


@pytest.fixture
def lines(caplog):
    """Every record of the test, as the JSON lines the app writes."""
    caplog.set_level(logging.DEBUG)
    formatter = JsonFormatter()
    return lambda: [formatter.format(record) for record in caplog.records]


@pytest.fixture
def world(client, store, ops):
    client.environ_base["REMOTE_ADDR"] = _address()
    store.upsert([station("door", 27.83, 113.15, name="河西公厕", hours="24/7")])
    acc = ops.accounts
    acc.create_organisation("hexi", "河西管养所")
    acc.create_user("boss@hexi.example", PASSWORD, "org_manager", "hexi")
    acc.assign_stations("hexi", "test", ["door"])
    sid = client.get("/api/v1/stations/nearest?lat=27.83&lng=113.15").get_json()["results"][0]["id"]
    return {"client": client, "id": sid, "key": acc.create_open311_key("hotline"),
            "device_token": Sensors(ops).register("counter-1", sid)}


def test_one_json_object_per_line_with_the_request_fields(world, lines):
    answer = world["client"].get("/api/v1/stations/nearest?lat=27.83&lng=113.15")
    rid = answer.headers["X-Request-Id"]
    access = [json.loads(line) for line in lines() if '"yizhan.access"' in line]
    assert len(access) == 1
    (line,) = access
    assert set(line) >= {"time", "level", "logger", "message", "request_id", "method", "endpoint", "status",
                         "duration_ms"}
    assert (line["request_id"], line["method"], line["endpoint"], line["status"]) == (rid, "GET", "api.nearest", 200)
    assert line["path"] == "/api/v1/stations/nearest" and "lat=" not in json.dumps(line)  # no query string
    assert line["time"].endswith("+00:00") and line["level"] == "INFO" and line["duration_ms"] >= 0


def test_a_sane_incoming_request_id_is_kept_and_anything_else_replaced(world, lines):
    client = world["client"]
    assert client.get("/healthz", headers={"X-Request-Id": "lb-4f2a.9_x"}).headers["X-Request-Id"] == "lb-4f2a.9_x"
    for bad in ("a b", "x" * 65, "<script>", "id\u4e2d", "é"):
        given = client.get("/healthz", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert given != bad and re.fullmatch(r"[0-9a-f]{32}", given)
    assert re.fullmatch(r"[0-9a-f]{32}", client.get("/healthz").headers["X-Request-Id"])
    assert request_id("ok-1") == "ok-1" and request_id(None) != request_id(None)


def test_every_line_of_a_request_carries_its_id(app, world, lines, monkeypatch):
    """A line the app writes while answering (here: the database-unavailable error) has the id too."""
    from sqlalchemy.exc import OperationalError

    def down(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(app.extensions["yizhan_store"], "nearest", down)
    answer = world["client"].get("/api/v1/stations/nearest?lat=27.83&lng=113.15", headers={"X-Request-Id": "req-42"})
    assert answer.status_code == 503
    mine = [json.loads(line) for line in lines() if '"req-42"' in line]
    assert {line["logger"] for line in mine} >= {"app", "yizhan.access"}
    assert all(line["request_id"] == "req-42" for line in mine)


def test_no_personal_data_or_secret_in_any_log_line(world, lines):
    client, sid = world["client"], world["id"]
    # A resident's report with a phone number, then its tracking page and questionnaire.
    form = client.get(f"/s/{sid}/report?lang=en&token={SECRET_QUERY}")
    token = CSRF.search(form.get_data(as_text=True)).group(1)
    posted = client.post(f"/s/{sid}/report?lang=en", content_type="multipart/form-data",
                         data={"csrf_token": token, "category": "no_water", "description": "no water",
                               "phone": PHONE, "email": EMAIL})
    assert posted.status_code == 303
    tracking = re.fullmatch(r"/r/([^?]+)\?.*", posted.headers["Location"]).group(1)
    assert client.get(f"/r/{tracking}?lang=en").status_code == 200
    client.post(f"/r/{tracking}/feedback", data={"answer": "x"})
    # Open311: phone, e-mail, device id and the key, then the token lookup.
    o311 = client.post("/open311/v2/requests.json",
                       data={"api_key": world["key"], "service_code": "dirty", "phone": PHONE, "email": EMAIL,
                             "device_id": "device-private-77", "attribute[station_id]": sid,
                             "description": "dirty"})
    assert o311.status_code in (200, 201), o311.get_data(as_text=True)
    client.get(f"/open311/v2/tokens/{tracking}.json")
    client.get(f"/open311/v2/requests.json?api_key={world['key']}&phone={PHONE}")
    # Staff login (a wrong password too), a device's HTTP reading with its token, a bearer token.
    login = client.get("/staff/login")
    csrf = CSRF.search(login.get_data(as_text=True)).group(1)
    client.post("/staff/login", data={"csrf_token": csrf, "email": "boss@hexi.example", "password": PASSWORD + "x"})
    client.post("/staff/login", data={"csrf_token": csrf, "email": "boss@hexi.example", "password": PASSWORD})
    client.post("/api/v1/sensors/counter-1/readings", json={"ts": "2026-11-27T08:00:00+08:00", "people_in": 1},
                headers={"Authorization": f"Bearer {world['device_token']}"})
    client.get(f"/api/v1/ops/work-orders?access_token={SECRET_QUERY}",
               headers={"Authorization": f"Bearer yzt_{SECRET_QUERY}"})
    text = "\n".join(lines())
    assert text.count('"yizhan.access"') >= 10  # the requests above were logged
    for secret in (PHONE, EMAIL, "device-private-77", tracking, PASSWORD, world["device_token"], world["key"],
                   SECRET_QUERY, "boss@hexi.example"):
        assert secret not in text, secret


def test_paths_lose_their_tracking_tokens():
    assert redact("GET /r/12-abcDEF_x?x=1") == "GET /r/…?x=1"
    assert redact("/open311/v2/tokens/tok123.json") == "/open311/v2/tokens/….json"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "at %s", ("/r/secret-token",), None)
    assert "secret-token" not in JsonFormatter().format(record)


def test_lines_are_json_even_with_an_exception():
    try:
        raise ValueError("bad /r/leaky-token")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "ERROR" and "ValueError" in line["exception"] and "leaky-token" not in line["exception"]
    assert "\n" not in JsonFormatter().format(record)
