"""Live operator feeds (issue #9 §3) on both stores: pushes (single and batch), ordering and
replays, staleness, operator isolation, bad input, T/CEC 102 connector codes, and the finder's
`org`, `battery_type` and `available_now` filters against a brute-force oracle."""
import json
import random
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from geopy.distance import geodesic
from sqlalchemy import text

from app.dbtime import utcnow
from app.stations.live import (
    MAX_BATCH, MAX_CLOCK_SKEW_S, OCPI_STATUSES, TCEC_TO_OCPI, LiveReport, LiveStatuses, connector_status,
)
from app.stations.model import NearestQuery, StationFilter
from tests.helpers import station

CENTRE = (27.83, 113.15)
PASSWORD = "correct horse battery"


class World:
    def __init__(self, store, ops):
        self.store = store
        store.upsert([
            station("c1", 27.8300, 113.1500, "battery_swap", source="swapco", hours="24/7"),
            station("c2", 27.8310, 113.1510, "battery_swap", source="swapco", hours="24/7"),
            station("c3", 27.8350, 113.1550, "battery_swap", source="swapco", hours="24/7"),
            # Another brand's cabinet with the same source id as one of swapco's.
            station("c1", 27.8305, 113.1505, "battery_swap", source="zapco", hours="24/7"),
            station("t1", 27.8301, 113.1499, "toilet", source="city", hours="24/7"),
        ])
        acc = ops.accounts
        for code, name in (("swapco", "换电甲"), ("zapco", "换电乙")):
            acc.create_organisation(code, name)
            acc.create_user(f"feed@{code}.example", PASSWORD, "worker", code)
            acc.assign_stations(code, code)
        self.token = {code: acc.create_token(f"feed@{code}.example") for code in ("swapco", "zapco")}
        with store.reading() as conn:
            self.id = {(src, sid): i for src, sid, i in conn.execute(text("SELECT source, source_id, id FROM station"))}

    def bearer(self, code):
        return {"Authorization": f"Bearer {self.token[code]}"}


@pytest.fixture
def world(store, ops):
    return World(store, ops)


def _now_s() -> int:
    return int(time.time())


def _push(client, world, source_id, body, operator="swapco", token="swapco"):
    return client.patch(f"/api/v1/operators/{operator}/stations/{source_id}/status", json=body,
                        headers=world.bearer(token))


def _detail(client, station_id):
    return client.get(f"/api/v1/stations/{station_id}").get_json()


# -- single pushes, ordering and replays -----------------------------------------------------------

def test_a_push_shows_as_a_fresh_live_status_in_detail_nearest_and_bbox(client, world):
    at = _now_s() - 30
    body = {"last_reported": at, "num_batteries_available": 5, "num_docks_available": 2,
            "battery_types_available": [{"battery_type": "48V20Ah", "count": 3}, {"battery_type": "60V24Ah",
                                                                                  "count": 2}]}
    r = _push(client, world, "c1", body)
    assert r.status_code == 200, r.get_json()
    answer = r.get_json()
    assert answer["result"] == "applied" and answer["live"]["state"] == "fresh"
    live = _detail(client, world.id["swapco", "c1"])["live"]
    assert live["state"] == "fresh" and live["num_batteries_available"] == 5 and live["num_docks_available"] == 2
    assert live["battery_types_available"] == body["battery_types_available"]
    assert datetime.fromisoformat(live["last_reported"]) == datetime.fromtimestamp(at, timezone.utc)
    assert 30 <= live["age_s"] < 300
    near = client.get("/api/v1/stations/nearest?lat=27.83&lng=113.15&limit=10").get_json()["results"]
    by_id = {h["id"]: h["live"] for h in near}
    assert by_id[world.id["swapco", "c1"]]["num_batteries_available"] == 5
    # The other brand's "c1" was not touched, and never-reported stations say so.
    assert by_id[world.id["zapco", "c1"]] == {**by_id[world.id["city", "t1"]]}
    assert by_id[world.id["city", "t1"]]["state"] == "none" and by_id[world.id["city", "t1"]]["age_s"] is None
    box = client.get("/api/v1/stations?bbox=113.14,27.82,113.17,27.85").get_json()
    props = {f["id"]: f["properties"]["live"] for f in box["features"]}
    assert props[world.id["swapco", "c1"]]["num_batteries_available"] == 5


def test_older_and_replayed_reports_are_ignored_and_newer_ones_applied(client, world):
    at = _now_s() - 60
    first = {"last_reported": at, "num_batteries_available": 4}
    assert _push(client, world, "c2", first).get_json()["result"] == "applied"
    replay = _push(client, world, "c2", {**first, "num_batteries_available": 9})
    assert replay.status_code == 200 and replay.get_json()["result"] == "ignored_older"
    older = _push(client, world, "c2", {"last_reported": at - 10, "num_batteries_available": 7})
    assert older.get_json()["result"] == "ignored_older"
    assert _detail(client, world.id["swapco", "c2"])["live"]["num_batteries_available"] == 4
    newer = _push(client, world, "c2", {"last_reported": at + 5, "num_batteries_available": 1})
    assert newer.get_json()["result"] == "applied"
    assert _detail(client, world.id["swapco", "c2"])["live"]["num_batteries_available"] == 1
    # ISO 8601 with an offset is the same instant as POSIX seconds: as new, so ignored.
    iso = datetime.fromtimestamp(at + 5, timezone(timedelta(hours=8))).isoformat()
    assert _push(client, world, "c2", {"last_reported": iso, "num_batteries_available": 2}
                 ).get_json()["result"] == "ignored_older"


def test_a_status_older_than_the_stale_time_is_served_as_unknown(client, world, app, monkeypatch):
    _push(client, world, "c3", {"last_reported": _now_s() - 360, "num_batteries_available": 6,
                                "battery_types_available": [{"battery_type": "48V20Ah", "count": 6}]})
    live = _detail(client, world.id["swapco", "c3"])["live"]
    assert live["state"] == "stale" and 360 <= live["age_s"] < 600
    assert live["num_batteries_available"] is None and live["battery_types_available"] is None
    assert live["num_docks_available"] is None and live["last_reported"] is not None
    listed = client.get("/api/v1/stations/nearest?lat=27.835&lng=113.155&available_now=1").get_json()["results"]
    assert world.id["swapco", "c3"] not in [h["id"] for h in listed]
    # The stale time is configuration (YIZHAN_LIVE_STALE_AFTER_S): with 10 minutes it is fresh again.
    monkeypatch.setitem(app.config, "YIZHAN_LIVE_STALE_AFTER_S", 600)
    live = _detail(client, world.id["swapco", "c3"])["live"]
    assert live["state"] == "fresh" and live["num_batteries_available"] == 6
    listed = client.get("/api/v1/stations/nearest?lat=27.835&lng=113.155&available_now=1&battery_type=48V20Ah"
                        ).get_json()["results"]
    assert [h["id"] for h in listed] == [world.id["swapco", "c3"]]


def test_the_stale_time_is_read_from_the_environment(monkeypatch):
    from app.config import from_environment

    monkeypatch.setenv("YIZHAN_LIVE_STALE_AFTER_S", "120")
    assert from_environment("/tmp")["YIZHAN_LIVE_STALE_AFTER_S"] == 120
    monkeypatch.setenv("YIZHAN_LIVE_STALE_AFTER_S", "-5")
    with pytest.raises(ValueError, match="YIZHAN_LIVE_STALE_AFTER_S"):
        from_environment("/tmp")


# -- batches ---------------------------------------------------------------------------------------

def test_a_batch_answers_each_item(client, world):
    at = _now_s() - 20
    body = {"stations": [
        {"station_id": "c1", "last_reported": at, "num_batteries_available": 2},
        {"station_id": "c2", "last_reported": at, "num_batteries_available": 3,
         "battery_types_available": [{"battery_type": "48V20Ah", "count": 3}]},
        {"station_id": "c1", "last_reported": at - 1, "num_batteries_available": 8},  # older than the first
        {"station_id": "nope", "last_reported": at, "num_batteries_available": 1},
        {"station_id": "c3", "last_reported": at, "num_batteries_available": -1},
        {"station_id": "c3", "last_reported": _now_s() + 3600, "num_batteries_available": 1},
        "not an object",
    ]}
    r = client.post("/api/v1/operators/swapco/status", json=body, headers=world.bearer("swapco"))
    assert r.status_code == 200, r.get_json()
    answer = r.get_json()
    assert [x["result"] for x in answer["results"]] == [
        "applied", "applied", "ignored_older", "unknown_station", "invalid", "invalid", "invalid"]
    assert (answer["count"], answer["applied"], answer["ignored_older"], answer["unknown_station"],
            answer["invalid"]) == (7, 2, 1, 1, 3)
    assert "num_batteries_available" in answer["results"][4]["reason"]
    assert "future" in answer["results"][5]["reason"]
    assert _detail(client, world.id["swapco", "c1"])["live"]["num_batteries_available"] == 2
    assert _detail(client, world.id["swapco", "c3"])["live"]["state"] == "none"  # nothing applied to it


def test_a_batch_over_the_limit_is_413(client, world):
    item = {"station_id": "c1", "last_reported": _now_s(), "num_batteries_available": 1}
    r = client.post("/api/v1/operators/swapco/status", json={"stations": [item] * (MAX_BATCH + 1)},
                    headers=world.bearer("swapco"))
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "too_large"
    padded = {"stations": [{**item, "station_id": "x" * 200}] * MAX_BATCH}  # under the count, over the bytes
    r = client.post("/api/v1/operators/swapco/status", data=json.dumps(padded) + " " * 600_000,
                    content_type="application/json", headers=world.bearer("swapco"))
    assert r.status_code == 413
    assert _detail(client, world.id["swapco", "c1"])["live"]["state"] == "none"


# -- isolation ---------------------------------------------------------------------------------------

def test_an_operator_writes_only_its_own_cabinets(client, world):
    body = {"last_reported": _now_s(), "num_batteries_available": 7}
    # Another operator's token on this operator's URL: refused.
    r = _push(client, world, "c1", body, operator="swapco", token="zapco")
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden"
    r = client.post("/api/v1/operators/swapco/status", json={"stations": [{"station_id": "c1", **body}]},
                    headers=world.bearer("zapco"))
    assert r.status_code == 403
    # Its own URL reaches only its own cabinets: zapco's "c1", never swapco's.
    assert _push(client, world, "c1", body, operator="zapco", token="zapco").get_json()["result"] == "applied"
    assert _detail(client, world.id["zapco", "c1"])["live"]["num_batteries_available"] == 7
    assert _detail(client, world.id["swapco", "c1"])["live"]["state"] == "none"
    # A station that is not one of its cabinets is unknown to it.
    r = _push(client, world, "c2", body, operator="zapco", token="zapco")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    r = _push(client, world, "t1", body, operator="swapco", token="swapco")
    assert r.status_code == 404
    assert _push(client, world, "c1", body, operator="nosuch", token="swapco").status_code == 404
    assert client.patch("/api/v1/operators/swapco/stations/c1/status", json=body).status_code == 401


def test_an_organisation_cannot_run_two_stations_with_one_source_id(world, ops):
    from app.ops.errors import Conflict

    with pytest.raises(Conflict, match="c1"):
        ops.accounts.assign_stations("swapco", "zapco", ["c1"])
    assert ops.accounts.station_owner(world.id["zapco", "c1"])[0] != ops.accounts.organisation_by_code("swapco").id


# -- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, code, field", [
    ("{", "invalid_json", None),
    ('{"last_reported": 1, "num_batteries_available": NaN}', "invalid_parameter", "num_batteries_available"),
    ('{"last_reported": 1, "num_batteries_available": -1}', "out_of_range", "num_batteries_available"),
    ('{"last_reported": 1, "num_batteries_available": "3"}', "invalid_parameter", "num_batteries_available"),
    ('{"last_reported": 1, "num_batteries_available": 2.5}', "invalid_parameter", "num_batteries_available"),
    ('{"last_reported": 1, "num_batteries_available": 1, "colour": "red"}', "invalid_parameter", "colour"),
    ('{"num_batteries_available": 1}', "missing_parameter", "last_reported"),
    ('{"last_reported": "yesterday", "num_batteries_available": 1}', "invalid_parameter", "last_reported"),
    ('{"last_reported": "2026-11-27T10:00:00", "num_batteries_available": 1}', "invalid_parameter",
     "last_reported"),  # no offset: which clock?
    ('{"last_reported": 1, "num_batteries_available": 1, "battery_types_available": '
     '[{"battery_type": "48V", "count": 2}]}', "invalid_parameter", "battery_types_available"),
    ('{"last_reported": 1, "num_batteries_available": 2, "battery_types_available": '
     '[{"battery_type": "48 V", "count": 2}]}', "invalid_parameter", "battery_types_available.0.battery_type"),
    ('{"last_reported": 1, "is_installed": true}', "invalid_parameter", "num_batteries_available"),
    ('[]', "invalid_json", None),
])
def test_bad_reports_get_a_clear_400(client, world, raw, code, field):
    r = client.patch("/api/v1/operators/swapco/stations/c1/status", data=raw, content_type="application/json",
                     headers=world.bearer("swapco"))
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"]["code"] == code and r.get_json()["error"]["field"] == field, r.get_json()
    assert _detail(client, world.id["swapco", "c1"])["live"]["state"] == "none"


def test_far_future_times_are_refused_and_a_small_clock_skew_is_not(client, world):
    r = _push(client, world, "c1", {"last_reported": _now_s() + MAX_CLOCK_SKEW_S + 60, "num_batteries_available": 1})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "last_reported"
    assert "future" in r.get_json()["error"]["message"]
    r = _push(client, world, "c1", {"last_reported": _now_s() + 30, "num_batteries_available": 1})
    assert r.status_code == 200 and r.get_json()["live"]["age_s"] == 0


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59+00:00", "9999-12-31T23:59:59-12:00"])
def test_times_outside_1970_to_2200_are_a_400_alone_and_one_invalid_item_in_a_batch(client, world, when):
    """Year 1 at +14:00 cannot even be converted to UTC: it was a 500, and it sank a whole batch."""
    r = _push(client, world, "c1", {"last_reported": when, "num_batteries_available": 1})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "last_reported", r.get_json()
    fresh = {"last_reported": _now_s(), "num_batteries_available": 2}
    r = client.post("/api/v1/operators/swapco/status", headers=world.bearer("swapco"), json={"stations": [
        {"station_id": "c1", "last_reported": when, "num_batteries_available": 1}, {"station_id": "c2", **fresh}]})
    assert r.status_code == 200, r.get_json()
    assert [item["result"] for item in r.get_json()["results"]] == ["invalid", "applied"]


def test_a_body_that_is_not_json_or_too_big_is_refused(client, world):
    r = client.patch("/api/v1/operators/swapco/stations/c1/status", data="last_reported=1",
                     content_type="application/x-www-form-urlencoded", headers=world.bearer("swapco"))
    assert r.status_code == 415
    r = client.patch("/api/v1/operators/swapco/stations/c1/status", data='{"a": "' + "x" * 70_000 + '"}',
                     content_type="application/json", headers=world.bearer("swapco"))
    assert r.status_code == 413


# -- charging points: OCPI statuses and T/CEC 102 codes ------------------------------------------------

@pytest.mark.parametrize("code, expected", [(0, "UNKNOWN"), (1, "AVAILABLE"), (2, "BLOCKED"), (3, "CHARGING"),
                                            (4, "RESERVED"), (255, "OUTOFORDER")])
def test_tcec_codes_map_to_ocpi_statuses(code, expected):
    assert connector_status(tcec_status=code) == expected
    assert TCEC_TO_OCPI[code] in OCPI_STATUSES


def test_the_mapping_covers_exactly_the_tcec_codes():
    assert set(TCEC_TO_OCPI) == {0, 1, 2, 3, 4, 255}
    for bad in ({}, {"status": "AVAILABLE", "tcec_status": 1}):
        with pytest.raises(ValueError):
            connector_status(**bad)
    with pytest.raises(ValueError):
        connector_status(tcec_status=5)


def test_connectors_are_pushed_in_either_terms_and_shown_in_ocpi(client, world, store):
    body = {"last_reported": _now_s(), "connectors": [
        {"id": "1", "tcec_status": 3}, {"id": "2", "tcec_status": 255}, {"id": "3", "status": "AVAILABLE"},
        {"id": "4", "tcec_status": 0}]}
    r = _push(client, world, "c1", body)
    assert r.status_code == 200, r.get_json()
    assert _detail(client, world.id["swapco", "c1"])["live"]["connectors"] == [
        {"id": "1", "status": "CHARGING"}, {"id": "2", "status": "OUTOFORDER"}, {"id": "3", "status": "AVAILABLE"},
        {"id": "4", "status": "UNKNOWN"}]
    for bad in ({"id": "1", "tcec_status": 9}, {"id": "1", "status": "FREE"}, {"id": "1"},
                {"id": "1", "status": "AVAILABLE", "tcec_status": 1}):
        r = _push(client, world, "c2", {"last_reported": _now_s(), "connectors": [bad]})
        assert r.status_code == 400, (bad, r.get_json())
    # Stale: a connector's last status is no longer known.
    _push(client, world, "c3", {"last_reported": _now_s() - 400, "connectors": [{"id": "1", "tcec_status": 1}]})
    assert _detail(client, world.id["swapco", "c3"])["live"]["connectors"] == [{"id": "1", "status": "UNKNOWN"}]


# -- concurrency ---------------------------------------------------------------------------------------

def test_concurrent_reports_keep_the_newest(apps, backend):
    """Real transactions on the app's own engine: many threads push out of order to one cabinet; the
    stored status is the newest and every report was either applied or ignored, never both."""
    app = apps[backend]
    store = app.extensions["yizhan_store"]
    ops = app.extensions["yizhan_ops"]
    tag = f"race{random.randrange(10**9)}"
    store.upsert([station("k1", 27.9, 113.3, "battery_swap", source=tag)])
    ops.accounts.create_organisation(tag, "并发测试")
    ops.accounts.assign_stations(tag, tag)
    org = ops.accounts.organisation_by_code(tag)
    base = utcnow() - timedelta(seconds=100)
    times = list(range(60))
    random.Random(5).shuffle(times)
    results = []

    def worker(chunk):
        for t in chunk:
            out = LiveStatuses(store).apply(org.id, [LiveReport("k1", base + timedelta(seconds=t),
                                                                num_batteries_available=t)], utcnow())
            results.append(out[0].result)

    threads = [threading.Thread(target=worker, args=(times[i::4],)) for i in range(4)]
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        with store.reading() as conn:
            sid = conn.execute(text("SELECT id FROM station WHERE source = :s"), {"s": tag}).scalar_one()
        assert store.get(sid).live_batteries == 59
        assert len(results) == 60 and set(results) <= {"applied", "ignored_older"} and "applied" in results
    finally:
        with store.transaction() as conn:
            conn.execute(text("DELETE FROM station_ops WHERE organisation_id = :o"), {"o": org.id})
            conn.execute(text("DELETE FROM station WHERE source = :s"), {"s": tag})
            conn.execute(text("DELETE FROM organisation WHERE id = :o"), {"o": org.id})


# -- filters: a brute-force oracle --------------------------------------------------------------------

TYPES = ("48V20Ah", "60V24Ah", "72V30Ah")
ORGS = ("alpha", "beta", "gamma")


@pytest.fixture
def live_city(store, ops):
    """1,500 stations around two centres; most are cabinets of three brands with random statuses:
    fresh, stale or none, installed or not, with random counts per battery type."""
    rng = random.Random(17)
    now = utcnow()
    rows, truth = [], {}
    for i in range(1500):
        c_lat, c_lng = CENTRE if i % 3 else (27.90, 113.05)
        lat, lng = c_lat + rng.gauss(0, 0.03), c_lng + rng.gauss(0, 0.03)
        org = rng.choice(ORGS + (None,))
        kind = "battery_swap" if org else rng.choice(("toilet", "battery_swap"))
        rows.append(station(f"s{i}", lat, lng, kind, source=org or "city", hours="24/7",
                            status="active" if rng.random() > 0.05 else "removed"))
        truth[f"s{i}"] = {"org": org, "lat": lat, "lng": lng, "active": rows[-1].status == "active"}
    store.upsert(rows)
    for org in ORGS:
        ops.accounts.create_organisation(org, org)
        ops.accounts.assign_stations(org, org)
    reports: dict[str, list] = {org: [] for org in ORGS}
    for sid, t in truth.items():
        if t["org"] is None or not t["active"] or rng.random() < 0.2:
            t["status"] = None
            continue
        age = rng.choice((10, 100, 250, 299, 301, 600, 5000))
        counts = {bt: rng.choice((0, 0, 1, 3)) for bt in rng.sample(TYPES, rng.randint(0, 3))}
        installed, renting = rng.random() > 0.1, rng.random() > 0.1
        t["status"] = {"age": age, "counts": counts, "installed": installed, "renting": renting}
        reports[t["org"]].append(LiveReport(
            sid, now - timedelta(seconds=age), num_batteries_available=sum(counts.values()),
            battery_types=tuple(counts.items()), is_installed=installed, is_renting=renting))
    for org in ORGS:
        with store.reading() as conn:
            org_id = conn.execute(text("SELECT id FROM organisation WHERE code = :c"), {"c": org}).scalar_one()
        assert {o.result for o in LiveStatuses(store).apply(org_id, reports[org], now)} == {"applied"}
    with store.reading() as conn:
        ids = dict(conn.execute(text("SELECT source_id, id FROM station")).all())
    return truth, ids, now


def _matches(t, flt: StationFilter, now) -> bool:
    if not t["active"] or (flt.orgs and t["org"] not in flt.orgs):
        return False
    status = t["status"]
    if flt.battery_type and (status is None or flt.battery_type not in status["counts"]):
        return False
    if flt.available_now:
        if status is None or now - timedelta(seconds=status["age"]) < flt.fresh_since:
            return False
        if not (status["installed"] and status["renting"]):
            return False
        charged = status["counts"].get(flt.battery_type, 0) if flt.battery_type else sum(status["counts"].values())
        if charged <= 0:
            return False
    return True


def _filters(now):
    fresh = now - timedelta(seconds=300)
    return [
        StationFilter(orgs=("alpha",)),
        StationFilter(orgs=("beta", "gamma")),
        StationFilter(orgs=("nobody",)),
        StationFilter(battery_type="60V24Ah"),
        StationFilter(available_now=True, fresh_since=fresh),
        StationFilter(battery_type="48V20Ah", available_now=True, fresh_since=fresh),
        StationFilter(orgs=("gamma",), battery_type="72V30Ah", available_now=True, fresh_since=fresh),
        StationFilter(kinds=("battery_swap",), orgs=("alpha", "beta"), available_now=True, fresh_since=fresh),
    ]


def test_nearest_with_live_filters_matches_brute_force(store, live_city):
    truth, ids, now = live_city
    rng = random.Random(3)
    for trial, flt in enumerate(_filters(now) * 3):
        lat, lng = CENTRE[0] + rng.uniform(-0.1, 0.1), CENTRE[1] + rng.uniform(-0.1, 0.1)
        limit = rng.choice((1, 5, 20))
        expected = sorted((geodesic((lat, lng), (t["lat"], t["lng"])).m, ids[sid]) for sid, t in truth.items()
                          if _matches(t, flt, now))[:limit]
        hits = store.nearest(NearestQuery(lat, lng, at=now, limit=limit, filter=flt))
        assert [h.station.id for h in hits] == [i for _, i in expected], (trial, flt)


def test_map_area_with_live_filters_matches_brute_force(store, live_city):
    from app.geo.geodesic import Box

    truth, ids, now = live_city
    box = Box(27.80, 113.10, 27.86, 113.18)
    for flt in _filters(now):
        found, truncated = store.within(box, flt, 5000)
        expected = sorted(ids[sid] for sid, t in truth.items() if _matches(t, flt, now)
                          and box.south <= t["lat"] <= box.north and box.west <= t["lng"] <= box.east)
        assert sorted(s.id for s in found) == expected and not truncated, flt


def test_the_filters_reach_nearest_bbox_and_the_service_circle(client, world):
    at = _now_s() - 10
    client.post("/api/v1/operators/swapco/status", headers=world.bearer("swapco"), json={"stations": [
        {"station_id": "c1", "last_reported": at, "num_batteries_available": 2,
         "battery_types_available": [{"battery_type": "48V20Ah", "count": 2}]},
        {"station_id": "c2", "last_reported": at, "num_batteries_available": 0,
         "battery_types_available": [{"battery_type": "48V20Ah", "count": 0}]},
        {"station_id": "c3", "last_reported": at, "num_batteries_available": 4,
         "battery_types_available": [{"battery_type": "60V24Ah", "count": 4}]}]})
    client.patch("/api/v1/operators/zapco/stations/c1/status", headers=world.bearer("zapco"),
                 json={"last_reported": at, "num_batteries_available": 5,
                       "battery_types_available": [{"battery_type": "48V20Ah", "count": 5}]})
    swap = {world.id["swapco", s] for s in ("c1", "c2", "c3")}
    cases = {
        "org=swapco": swap,
        "org=swapco,zapco": swap | {world.id["zapco", "c1"]},
        "battery_type=48V20Ah": {world.id["swapco", "c1"], world.id["swapco", "c2"], world.id["zapco", "c1"]},
        "battery_type=48V20Ah&available_now=1": {world.id["swapco", "c1"], world.id["zapco", "c1"]},
        "org=swapco&battery_type=48V20Ah&available_now=1": {world.id["swapco", "c1"]},
        "org=swapco&available_now=1": {world.id["swapco", "c1"], world.id["swapco", "c3"]},
    }
    for query, expected in cases.items():
        near = client.get(f"/api/v1/stations/nearest?lat=27.83&lng=113.15&{query}").get_json()
        assert {h["id"] for h in near["results"]} == expected, query
        box = client.get(f"/api/v1/stations?bbox=113.14,27.82,113.17,27.85&{query}").get_json()
        assert {f["id"] for f in box["features"]} == expected, query
        circle = client.get(f"/api/v1/service-circle?lat=27.83&lng=113.15&minutes=15&{query}").get_json()
        assert {h["id"] for h in circle["results"]} == expected, (query, circle)
    for bad in ("org=Swap Co", "org=", "battery_type=48 V", "available_now=maybe", "org=" + "a" * 41):
        r = client.get(f"/api/v1/stations/nearest?lat=27.83&lng=113.15&{bad}")
        assert r.status_code == 400, bad
        assert r.get_json()["error"]["field"] == bad.split("=")[0]


def test_the_filters_are_in_the_document(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    for path in ("/stations/nearest", "/stations", "/service-circle"):
        names = {p["name"] for p in doc["paths"][path]["get"]["parameters"]}
        assert {"org", "battery_type", "available_now"} <= names, path
    live = doc["components"]["schemas"]["Live"]
    assert {"num_batteries_available", "battery_types_available", "num_docks_available", "last_reported", "age_s",
            "state"} <= set(live["properties"])
    assert "live" in doc["components"]["schemas"]["NearestHit"]["properties"] or "live" in doc["components"][
        "schemas"]["Station"]["properties"]


def test_nearest_with_live_filters_still_walks_the_gist_index(backend, store, connection, live_city):
    """KNN with `<->` on the indexed column against a constant point, the new filters as a Filter on
    the index scan (PostGIS); candidates from the R*Tree (SQLite)."""
    _, _, now = live_city
    flt = StationFilter(orgs=("alpha", "beta"), battery_type="48V20Ah", available_now=True,
                        fresh_since=now - timedelta(seconds=300))
    query = NearestQuery(*CENTRE, at=now, limit=10, filter=flt)
    driver = connection.connection.driver_connection
    if backend == "postgis":
        from app.stations.postgis import _nearest_sql

        sql, params = _nearest_sql(query)
        plan = "\n".join(r[0] for r in driver.execute("EXPLAIN (COSTS OFF) " + sql, {**params, "n": 19}))
        assert "Index Scan using ix_station_geom" in plan and "Order By: (geom <->" in plan, plan
        assert "Sort" not in plan.split("Index Scan")[0], plan  # no sort of all matches above the scan
    else:
        from app.geo.geodesic import boxes_within
        from app.stations.sqlite import _COLS, _box_sql
        from app.stations.store import filter_sql

        where, params = filter_sql(flt, "s.")
        sql = f"SELECT {_COLS} FROM station s WHERE {_box_sql(boxes_within(*CENTRE, 400.0), params)}{where}"
        plan = " ".join(str(r[-1]) for r in driver.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert "station_rtree VIRTUAL TABLE INDEX" in plan, plan
