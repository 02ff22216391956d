"""Sensor-triggered cleaning (issue #9 §4) through the service, the HTTP readings endpoint, the
rules API and the CLI, on both stores: threshold -> exactly one cleaning work order -> the
cleaner's check-in resolves it and resets the count; gas above the grade's limit; duplicates
applied once; silent devices; bad input."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from app.ops import sensors as sensing
from app.ops.sensors import CLEANING, GRADES, OFFLINE, Reading, Rejected, Sensors, parse_reading
from tests.staff_world import ADMIN, EAST_BOSS, WANG, WEST_BOSS, build

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def world(store, ops):
    return build(store, ops, created=T0 - timedelta(hours=1))


@pytest.fixture
def sensors(ops):
    return Sensors(ops)


def _work_orders(store, category):
    with store.reading() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT id, state, station_id, source FROM work_order WHERE category = :c ORDER BY id"), {"c": category})]


def _count(store, station_id):
    with store.reading() as conn:
        return conn.execute(text("SELECT visitors_since_cleaning FROM station_cleaning WHERE station_id = :s"),
                            {"s": station_id}).scalar_one()


def _at(seconds):
    return T0 + timedelta(seconds=seconds)


def test_threshold_opens_one_work_order_and_the_check_in_resets_the_count(store, ops, world, sensors):
    a2 = world.station["a2"]
    sensors.register("pc-a2", a2, threshold=10, now=T0)
    for i, people in enumerate((3, 4, 2)):  # 9: below the threshold
        assert sensors.record("pc-a2", Reading(_at(10 * i), people), now=_at(10 * i)).opened is False
    assert _work_orders(store, CLEANING) == []
    crossed = sensors.record("pc-a2", Reading(_at(30), 1), now=_at(30))  # 10: the threshold
    assert crossed.opened and crossed.cleaning_work_order_id is not None
    for i in range(4, 8):  # more visitors: the same work order, no second one
        later = sensors.record("pc-a2", Reading(_at(10 * i), 5), now=_at(10 * i))
        assert (later.opened, later.cleaning_work_order_id) == (False, crossed.cleaning_work_order_id)
    assert _work_orders(store, CLEANING) == [(crossed.cleaning_work_order_id, "new", a2, "sensor")]
    assert _count(store, a2) == 30
    wo = ops.store.work_order(crossed.cleaning_work_order_id)
    assert wo.response_due_at - wo.created_at == timedelta(minutes=10)  # the cleaner on site within 10 min
    # The cleaner (a worker of the station's organisation) checks in at the door.
    cleaner = ops.accounts.user_by_email(WANG)
    assert sensors.cleaned(cleaner, a2, now=_at(300)) == crossed.cleaning_work_order_id
    assert _work_orders(store, CLEANING) == [(crossed.cleaning_work_order_id, "closed", a2, "sensor")]
    assert _count(store, a2) == 0
    assert [e.event.to_state for e in ops.store.events(wo.id)] == ["new", "confirmed", "fixed", "closed"]
    # Counting starts again: 10 more visitors open a new one.
    sensors.record("pc-a2", Reading(_at(310), 9), now=_at(310))
    assert len(_work_orders(store, CLEANING)) == 1
    again = sensors.record("pc-a2", Reading(_at(320), 1), now=_at(320))
    assert again.opened and again.cleaning_work_order_id != crossed.cleaning_work_order_id


def test_a_late_reading_from_before_the_cleaning_does_not_count_towards_the_next(store, ops, world, sensors):
    a2 = world.station["a2"]
    sensors.register("pc-late", a2, threshold=50, now=T0)
    sensors.record("pc-late", Reading(_at(0), 5), now=_at(0))
    sensors.cleaned(ops.accounts.user_by_email(EAST_BOSS), a2, now=_at(100))
    sensors.record("pc-late", Reading(_at(50), 7), now=_at(120))  # measured before the cleaning
    sensors.record("pc-late", Reading(_at(150), 2), now=_at(150))
    assert _count(store, a2) == 2


def test_a_queue_transition_that_fixes_the_work_order_resets_the_count(store, ops, world, sensors):
    a1 = world.station["a1"]
    sensors.register("pc-a1", a1, threshold=5, now=T0)
    wo_id = sensors.record("pc-a1", Reading(_at(0), 6), now=_at(0)).cleaning_work_order_id
    boss = ops.accounts.user_by_email(EAST_BOSS)
    ops.transition(boss, wo_id, "confirmed", now=_at(60))
    assert _count(store, a1) == 6
    ops.transition(boss, wo_id, "fixed", now=_at(120))
    assert _count(store, a1) == 0


@pytest.mark.parametrize("gas", ["nh3", "h2s"])
def test_gas_above_the_grade_limit_opens_a_work_order(store, ops, world, sensors, gas):
    a2 = world.station["a2"]
    sensors.register("gas-a2", a2, now=T0)
    sensors.set_rule(a2, grade="class1")
    limit = GRADES["class1"][gas]
    sensors.record("gas-a2", Reading(_at(0), 0, **{gas: limit}), now=_at(0))  # at the limit: fine
    assert _work_orders(store, CLEANING) == []
    done = sensors.record("gas-a2", Reading(_at(10), 0, **{gas: limit * 1.5}), now=_at(10))
    assert done.opened
    description = ops.store.work_order(done.cleaning_work_order_id).description
    assert "GB/T 17217" in description and f"{limit:g} mg/m³" in description
    # The same value is within class 3's limit for ammonia (not for H2S, the same for every grade).
    sensors.set_rule(a2, grade="class3")
    sensors.cleaned(ops.accounts.user_by_email(ADMIN), a2, now=_at(20))
    again = sensors.record("gas-a2", Reading(_at(30), 0, **{gas: limit * 1.5}), now=_at(30))
    assert again.opened is (gas == "h2s")


def test_a_repeated_reading_is_applied_once(store, world, sensors):
    a2 = world.station["a2"]
    sensors.register("pc-dup", a2, threshold=1000, now=T0)
    first = sensors.record("pc-dup", Reading(_at(0), 4), now=_at(0))
    # The same instant written with another offset is the same reading.
    same = Reading(_at(0).astimezone(timezone(timedelta(hours=8))), 4)
    second = sensors.record("pc-dup", same, now=_at(5))
    assert (first.applied, second.applied) == (True, False)
    assert _count(store, a2) == 4
    with store.reading() as conn:
        assert conn.execute(text("SELECT count(*) FROM sensor_reading WHERE device_id = 'pc-dup'")).scalar() == 1


def test_unknown_device_bad_times_and_a_flood_are_rejected(store, world, sensors):
    a2 = world.station["a2"]
    sensors.register("pc-flood", a2, threshold=100_000, now=T0)
    with pytest.raises(Rejected) as unknown:
        sensors.record("nobody", Reading(_at(0), 1), now=_at(0))
    assert unknown.value.reason == "unknown_device"
    for ts in (_at(0) + sensing.MAX_CLOCK_AHEAD + timedelta(seconds=1), _at(0) - timedelta(days=8)):
        with pytest.raises(Rejected) as late:
            sensors.record("pc-flood", Reading(ts, 1), now=_at(0))
        assert late.value.reason == "bad_time"
    start = T0 + timedelta(minutes=3)
    for i in range(sensing.MAX_READINGS_PER_MINUTE):
        sensors.record("pc-flood", Reading(start + timedelta(milliseconds=500 * i), 1), now=start)
    with pytest.raises(Rejected) as flood:
        sensors.record("pc-flood", Reading(start + timedelta(seconds=59), 1), now=start)
    assert flood.value.reason == "flood"
    assert _count(store, a2) == sensing.MAX_READINGS_PER_MINUTE  # the flood's reading was not applied
    # The next minute of the device's clock is fine again.
    assert sensors.record("pc-flood", Reading(start + timedelta(seconds=61), 1), now=start).applied


def test_a_batch_applies_each_reading_once_and_a_rejected_one_alone(store, ops, world, sensors):
    """``record_many``: one transaction; the unknown device, the bad time, the flood and the repeat
    in the middle of the batch take nothing from the readings around them."""
    a2 = world.station["a2"]
    sensors.register("pc-batch", a2, threshold=50, now=T0)
    sensors.register("pc-batch-2", a2, now=T0)
    start = T0 + timedelta(minutes=3)
    full_minute = [("pc-batch", Reading(start + timedelta(milliseconds=500 * i), 1))
                   for i in range(sensing.MAX_READINGS_PER_MINUTE)]  # 60 people: past the threshold
    batch = [
        ("pc-batch-2", Reading(start - timedelta(seconds=30), 2)),
        *full_minute[:30],
        ("nobody", Reading(start, 1)),
        ("pc-batch-2", Reading(start - timedelta(days=8), 1)),
        *full_minute[30:],
        ("pc-batch", Reading(start + timedelta(seconds=59), 1)),  # the 61st of that minute
        full_minute[0],  # a repeat within the same batch
        ("pc-batch-2", Reading(start - timedelta(seconds=20), 3)),
    ]
    answers = sensors.record_many(batch, now=start)
    kinds = [a.reason if isinstance(a, Rejected) else a.applied for a in answers]
    assert kinds == [True] * 31 + ["unknown_device", "bad_time"] + [True] * 30 + ["flood", False, True]
    assert _count(store, a2) == 2 + 60 + 3
    opened = [a for a in answers if not isinstance(a, Rejected) and a.opened]
    assert len(opened) == 1 and _work_orders(store, CLEANING) == [(opened[0].cleaning_work_order_id, "new", a2,
                                                                   "sensor")]
    with store.reading() as conn:
        stored = dict(conn.execute(text("SELECT device_id, count(*) FROM sensor_reading WHERE device_id LIKE"
                                        " 'pc-batch%' GROUP BY device_id")).all())
        seen = conn.execute(text("SELECT count(*) FROM sensor_device WHERE device_id LIKE 'pc-batch%'"
                                 " AND last_seen_at IS NOT NULL")).scalar()
    assert stored == {"pc-batch": 60, "pc-batch-2": 2} and seen == 2
    # The whole batch again (a redelivery after a crash before the acknowledgement): nothing new.
    again = sensors.record_many(batch, now=start)
    assert not any(a.applied for a in again if not isinstance(a, Rejected))
    assert _count(store, a2) == 65


@pytest.mark.parametrize("payload, field", [
    (b"not json", None), (b"[1, 2]", None), (b'{"ts": "2026-11-20T08:00:00", "people_in": 1}', "ts"),
    (b'{"ts": "yesterday", "people_in": 1}', "ts"), (b'{"ts": "2026-11-20T08:00:00+08:00", "people_in": -1}',
                                                     "people_in"),
    (b'{"ts": "2026-11-20T08:00:00+08:00", "people_in": 1.5}', "people_in"),
    (b'{"ts": "2026-11-20T08:00:00+08:00", "people_in": true}', "people_in"),
    (b'{"ts": "2026-11-20T08:00:00+08:00", "people_in": 1, "nh3": NaN}', None),
    (b'{"ts": "2026-11-20T08:00:00+08:00", "people_in": 1, "h2s": -0.1}', "h2s"),
    (b'{"ts": "2026-11-20T08:00:00+08:00", "people_in": 1, "extra": 1}', "extra"),
    (b'{"ts": "2026-11-20T08:00:00+08:00", "people_in": 1, "pad": "' + b"x" * 2000 + b'"}', None),
    (b"\xff\xfe", None),
])
def test_bad_payloads_are_rejected_with_the_reason(payload, field):
    with pytest.raises(Rejected) as bad:
        parse_reading(payload)
    assert bad.value.reason == "bad_payload" and bad.value.field == field


def test_a_good_payload(store):
    reading = parse_reading(b'{"ts": "2026-11-20T16:00:00+08:00", "people_in": 7, "nh3": 0.2, "h2s": null}')
    assert reading == Reading(T0, 7, 0.2, None)


def test_silent_devices_open_one_offline_work_order_closed_when_they_speak(store, ops, world, sensors):
    a2 = world.station["a2"]
    sensors.register("pc-quiet-1", a2, now=T0)
    sensors.register("pc-quiet-2", a2, now=T0)
    sensors.set_rule(a2, offline_after_s=600)
    sensors.record("pc-quiet-1", Reading(_at(0), 1), now=_at(0))
    assert sensors.check_offline(_at(500)) == []
    assert sorted(sensors.check_offline(_at(700))) == ["pc-quiet-1", "pc-quiet-2"]
    assert sensors.check_offline(_at(800)) == []  # marked once
    orders = _work_orders(store, OFFLINE)
    assert [(state, station) for _, state, station, _ in orders] == [("new", a2)]
    sensors.record("pc-quiet-1", Reading(_at(900), 1), now=_at(900))
    assert _work_orders(store, OFFLINE)[0][1] == "new"  # the other device is still silent
    sensors.record("pc-quiet-2", Reading(_at(910), 1), now=_at(910))
    assert _work_orders(store, OFFLINE)[0][1] == "closed"
    # ops tick runs the check: silent again for more than 10 minutes.
    assert sorted(ops.tick(_at(910 + 601), deliver=False).sensors_offline) == ["pc-quiet-1", "pc-quiet-2"]
    assert _work_orders(store, OFFLINE)[-1][1] == "new" and len(_work_orders(store, OFFLINE)) == 2


def test_the_check_in_is_for_the_stations_organisation(ops, world, sensors):
    from app.ops.errors import NotFound

    sensors.register("pc-b1", world.station["b1"], threshold=1, now=T0)
    with pytest.raises(NotFound):
        sensors.cleaned(ops.accounts.user_by_email(EAST_BOSS), world.station["b1"], now=_at(10))
    assert sensors.cleaned(ops.accounts.user_by_email(WEST_BOSS), world.station["b1"], now=_at(10)) is None


def test_register_refuses_bad_ids_unknown_stations_and_repeats(world, sensors):
    from app.ops.errors import Conflict, Invalid, NotFound

    for bad in ("", "a/b", "a+b", "#", "x" * 65, " lead"):
        with pytest.raises(Invalid):
            sensors.register(bad, world.station["a1"])
    with pytest.raises(NotFound):
        sensors.register("pc-x", 987654321)
    sensors.register("pc-x", world.station["a1"])
    with pytest.raises(Conflict):
        sensors.register("pc-x", world.station["a2"])
    with pytest.raises(Invalid):
        sensors.set_rule(world.station["a1"], threshold=0)
    with pytest.raises(Invalid):
        sensors.set_rule(world.station["a1"], grade="class9")


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_register_prints_the_token_alone_on_its_last_line_and_stores_its_hash(cli, store, world):
    result = cli.invoke(args=["sensors", "register", "cli-dev", "--station", str(world.station["a1"]),
                              "--threshold", "42"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith(sensing.DEVICE_TOKEN_PREFIX) and " " not in token
    with store.reading() as conn:
        row = conn.execute(text("SELECT token_hash FROM sensor_device WHERE device_id = 'cli-dev'")).one()
        threshold = conn.execute(text("SELECT visitor_threshold FROM station_cleaning WHERE station_id = :s"),
                                 {"s": world.station["a1"]}).scalar_one()
    assert row.token_hash == sensing.token_hash(token) and token not in row.token_hash and threshold == 42
    shown = cli.invoke(args=["sensors", "rule", str(world.station["a1"]), "--grade", "class1"])
    assert shown.exit_code == 0 and "42 visitors" in shown.output and "class1" in shown.output
    bad = cli.invoke(args=["sensors", "register", "cli-dev", "--station", str(world.station["a1"])])
    assert bad.exit_code != 0 and "already registered" in bad.output


# -- HTTP readings -----------------------------------------------------------------------------


def _post(client, device_id, body, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(f"/api/v1/sensors/{device_id}/readings", json=body, headers=headers)


def _now_iso(offset_s=0):
    return (datetime.now(timezone(timedelta(hours=8))) + timedelta(seconds=offset_s)).isoformat()


def test_http_readings_need_the_devices_own_token(client, store, world, sensors):
    a2 = world.station["a2"]
    mine = sensors.register("http-1", a2, threshold=3)
    theirs = sensors.register("http-2", a2)
    body = {"ts": _now_iso(), "people_in": 2}
    for token, status in ((None, 401), ("yzd_made-up", 401), ("Bearer", 401), (theirs, 403)):
        answer = _post(client, "http-1", body, token)
        assert answer.status_code == status, token
        assert answer.get_json()["error"]["code"] == {401: "unauthorized", 403: "forbidden"}[status]
    assert _post(client, "no-such-device", body, mine).status_code == 403
    assert _count(store, a2) == 0
    first = _post(client, "http-1", body, mine)
    assert first.status_code == 201 and first.get_json() == {"device_id": "http-1", "ts": body["ts"],
                                                             "applied": True, "cleaning_due": False}
    again = _post(client, "http-1", body, mine)
    assert again.status_code == 200 and again.get_json()["applied"] is False
    crossing = _post(client, "http-1", {"ts": _now_iso(1), "people_in": 1, "nh3": 0.1}, mine)
    assert crossing.status_code == 201 and crossing.get_json()["cleaning_due"] is True
    assert len(_work_orders(store, CLEANING)) == 1 and _count(store, a2) == 3


@pytest.mark.parametrize("body, status, field", [
    ({"ts": "2026-11-20T08:00:00", "people_in": 1}, 400, "ts"),
    ({"people_in": 1}, 400, "ts"),
    ({"ts": "NOW", "people_in": 1}, 400, "ts"),
    ({"ts": "+", "people_in": -1}, 400, "ts"),
    ({"ts": "2026-11-20T08:00:00+08:00", "people_in": -1}, 400, "people_in"),
    ({"ts": "2026-11-20T08:00:00+08:00", "people_in": "3"}, 400, "people_in"),
    ({"ts": "2026-11-20T08:00:00+08:00", "people_in": 1, "h2s": -1}, 400, "h2s"),
    ({"ts": "2026-11-20T08:00:00+08:00", "people_in": 1, "device": "x"}, 400, "device"),
    ({"ts": "2126-11-20T08:00:00+08:00", "people_in": 1}, 400, "ts"),  # far in the future
    ({"ts": "2020-11-20T08:00:00+08:00", "people_in": 1}, 400, "ts"),  # years old
])
def test_http_bad_readings_get_a_clear_400(client, world, sensors, body, status, field):
    token = sensors.register("http-bad", world.station["a2"])
    answer = _post(client, "http-bad", body, token)
    assert answer.status_code == status and answer.get_json()["error"]["field"] == field


def test_http_nan_and_oversize_bodies(client, world, sensors):
    token = sensors.register("http-nan", world.station["a2"])
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    nan = client.post("/api/v1/sensors/http-nan/readings", headers=headers,
                      data='{"ts": "%s", "people_in": 1, "nh3": NaN}' % _now_iso())
    assert nan.status_code == 400 and nan.get_json()["error"]["code"] in ("invalid_json", "invalid_parameter")
    big = client.post("/api/v1/sensors/http-nan/readings", headers=headers,
                      data=json.dumps({"ts": _now_iso(), "people_in": 1, "x": "y" * 100_000}))
    assert big.status_code == 413


# -- the rules API and the IOC feed -------------------------------------------------------------


def test_staff_edit_a_stations_rule(client, world, sensors):
    url = f"/api/v1/ops/stations/{world.station['a2']}/cleaning-rule"
    shown = client.patch(url, json={}, headers=world.bearer(EAST_BOSS))
    assert shown.status_code == 200 and shown.get_json()["visitor_threshold"] == sensing.DEFAULT_THRESHOLD
    changed = client.patch(url, json={"visitor_threshold": 25, "grade": "class1"}, headers=world.bearer(EAST_BOSS))
    assert changed.status_code == 200
    body = changed.get_json()
    assert (body["visitor_threshold"], body["grade"], body["limits"]) == (25, "class1", {"nh3": 0.3, "h2s": 0.01})
    bad = client.patch(url, json={"visitor_threshold": 0}, headers=world.bearer(EAST_BOSS))
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "visitor_threshold"
    assert client.patch(url, json={"grade": "class7"}, headers=world.bearer(EAST_BOSS)).status_code == 400


def test_the_ioc_feed_shows_cleaning_due_and_silent_sensors_in_the_callers_organisation(client, store, ops):
    world, sensors = build(store, ops), Sensors(ops)  # work orders of five minutes ago: none overdue
    a1, a2, b1 = world.station["a1"], world.station["a2"], world.station["b1"]
    sensors.register("ioc-a1", a1, threshold=5)
    sensors.register("ioc-b1", b1, threshold=5)
    now = datetime.now(timezone.utc)
    sensors.record("ioc-a1", Reading(now - timedelta(seconds=5), 6), now=now)
    sensors.record("ioc-b1", Reading(now - timedelta(seconds=5), 6), now=now)
    feed = client.get("/api/v1/ops/ioc", headers=world.bearer(EAST_BOSS)).get_json()
    states = {s["id"]: s for s in feed["stations"]}
    assert set(states) == {a1, a2}  # never the west's B1
    assert states[a1]["state"] == "cleaning_due" and states[a1]["visitors_today"] == 6
    # A2 has the "dirty" work order given to zhao from the world, not overdue yet: a fault.
    assert states[a2]["state"] == "fault" and states[a2]["visitors_today"] is None
    assert feed["counts"]["cleaning_due"] == 1 and feed["visitors_today"] == 6
    sensors.check_offline(now + timedelta(hours=1))
    later = client.get("/api/v1/ops/ioc", headers=world.bearer(EAST_BOSS)).get_json()
    assert {s["id"]: s["sensors"] for s in later["stations"]}[a1] == {"devices": 1, "offline": 1}
