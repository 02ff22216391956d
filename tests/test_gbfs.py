"""The published GBFS v2.3 feed (issue #9 §3) on both stores: each file validates against
MobilityData's schema (vendored in data/gbfs/v2.3), carries the stations as stored, maps a
temporary closure to is_renting/is_returning false, and answers 304 to a matching ETag."""
import json
import os
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from jsonschema import Draft7Validator
from sqlalchemy import text

from app import PROJECT_ROOT
from app.dbtime import to_db
from tests.helpers import station

SCHEMAS = os.path.join(PROJECT_ROOT, "data", "gbfs", "v2.3")
FILES = ("gbfs", "system_information", "station_information", "station_status")


def _schema(name):
    with open(os.path.join(SCHEMAS, f"{name}.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture
def ids(store, connection):
    store.upsert([
        replace(station("cab", 27.83, 113.15, "battery_swap", name="换电柜 建宁"), address="建宁路 1 号",
                batteries_available=7),
        station("wc", 27.84, 113.16, name="公厕 神农"),
        station("shut", 27.85, 113.17, name="公厕 临时关闭"),
        station("reopened", 27.86, 113.18, name="公厕 已重开"),
        station("closed", 27.87, 113.19, status="closed"),
        station("gone", 27.88, 113.20, status="removed"),
    ])
    found = dict(connection.execute(text("SELECT source_id, id FROM station WHERE source = 'test'")).all())
    now = datetime.now(timezone.utc)
    # Staff closed "shut" until tomorrow; "reopened"'s closure has run out.
    for key, until in (("shut", now + timedelta(days=1)), ("reopened", now - timedelta(hours=1))):
        connection.execute(text("UPDATE station SET closure_reason = :r, closure_until = :u WHERE id = :id"),
                           {"r": "维修", "u": to_db(until, connection.dialect.name), "id": found[key]})
    return found


def _get(client, name, **headers):
    return client.get(f"/gbfs/{name}.json", headers=headers)


@pytest.mark.parametrize("name", FILES)
def test_each_file_validates_against_its_gbfs_schema(client, ids, name):
    response = _get(client, name)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    errors = [e.message for e in Draft7Validator(_schema(name)).iter_errors(body)]
    assert errors == []
    assert body["version"] == "2.3" and body["ttl"] == 60
    now = datetime.now(timezone.utc).timestamp()
    assert now - 60 <= body["last_updated"] <= now
    assert response.headers["Cache-Control"] in ("public, max-age=60", "max-age=60, public")


def test_the_schema_rejects_a_broken_file(client, ids):
    """The validation above can fail: the same file without a required field does not pass."""
    body = _get(client, "station_status").get_json()
    del body["data"]["stations"][0]["is_renting"]
    assert not Draft7Validator(_schema("station_status")).is_valid(body)


def test_discovery_lists_absolute_feed_urls_per_language(client, ids):
    data = _get(client, "gbfs").get_json()["data"]
    assert sorted(data) == ["en", "zh"]
    assert data["zh"]["feeds"] == [
        {"name": "system_information", "url": "http://localhost/gbfs/system_information.json"},
        {"name": "station_information", "url": "http://localhost/gbfs/station_information.json"},
        {"name": "station_status", "url": "http://localhost/gbfs/station_status.json"},
    ]
    assert data["en"]["feeds"][0]["url"] == "http://localhost/gbfs/system_information.json?lang=en"
    for lang in ("zh", "en"):
        for feed in data[lang]["feeds"]:  # every listed URL answers
            assert client.get(feed["url"].removeprefix("http://localhost")).status_code == 200


def test_system_information_in_each_language(client, app):
    zh = client.get("/gbfs/system_information.json").get_json()["data"]
    en = client.get("/gbfs/system_information.json?lang=en").get_json()["data"]
    assert zh == {"system_id": "yizhan", "language": "zh", "name": "驿站",
                  "timezone": app.config["YIZHAN_TIMEZONE"]}
    assert en["language"] == "en" and en["name"] == "Yizhan"


def test_station_information_lists_the_active_stations(client, ids):
    stations = _get(client, "station_information").get_json()["data"]["stations"]
    expected = [
        {"station_id": str(ids["cab"]), "name": "换电柜 建宁", "lat": 27.83, "lon": 113.15, "address": "建宁路 1 号"},
        {"station_id": str(ids["wc"]), "name": "公厕 神农", "lat": 27.84, "lon": 113.16},
        {"station_id": str(ids["shut"]), "name": "公厕 临时关闭", "lat": 27.85, "lon": 113.17},
        {"station_id": str(ids["reopened"]), "name": "公厕 已重开", "lat": 27.86, "lon": 113.18},
    ]  # "closed" and "gone" are not active: not published
    assert stations == sorted(expected, key=lambda s: int(s["station_id"]))  # by id


def test_station_status_counts_batteries_and_maps_a_temporary_closure(client, store, ids):
    stations = {s["station_id"]: s for s in _get(client, "station_status").get_json()["data"]["stations"]}
    assert sorted(stations) == sorted(str(ids[k]) for k in ("cab", "wc", "shut", "reopened"))
    flags = {key: (stations[str(ids[key])]["num_bikes_available"], stations[str(ids[key])]["is_installed"],
                   stations[str(ids[key])]["is_renting"], stations[str(ids[key])]["is_returning"])
             for key in ("cab", "wc", "shut", "reopened")}
    assert flags == {"cab": (7, True, True, True), "wc": (0, True, True, True),
                     "shut": (0, True, False, False), "reopened": (0, True, True, True)}
    cab = store.get(ids["cab"])
    assert stations[str(ids["cab"])]["last_reported"] == int(cab.updated_at.timestamp())


def test_etag_and_304(client, ids):
    first = _get(client, "station_status")
    etag = first.headers["ETag"]
    assert etag
    again = _get(client, "station_status", **{"If-None-Match": etag})
    if again.status_code == 200:  # a ttl window turned between the two requests: ask once more
        etag = again.headers["ETag"]
        again = _get(client, "station_status", **{"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    assert _get(client, "station_status", **{"If-None-Match": '"other"'}).status_code == 200


def test_a_change_changes_the_etag(client, ids, connection):
    before = _get(client, "station_status")
    connection.execute(text("UPDATE station SET closure_reason = '保洁', closure_until = NULL WHERE id = :id"),
                       {"id": ids["wc"]})
    after = _get(client, "station_status", **{"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    wc = next(s for s in after.get_json()["data"]["stations"] if s["station_id"] == str(ids["wc"]))
    assert wc["is_renting"] is False


def test_active_batches_pages_by_id_without_gaps_or_repeats(store, ids):
    batches = list(store.active_batches(n=3))
    assert [len(b) for b in batches] == [3, 1]
    assert [s.id for b in batches for s in b] == sorted(ids[k] for k in ("cab", "wc", "shut", "reopened"))


def test_station_status_publishes_an_operators_live_report_with_its_own_time(client, store, ids, connection):
    """A cabinet with a live status (app.stations.live) is published as its operator reported it,
    with the report's own last_reported: an old report reads as old, never refreshed to now."""
    now = datetime.now(timezone.utc)
    fresh, old = now - timedelta(minutes=1), now - timedelta(hours=2)
    dialect = connection.dialect.name
    update = text("UPDATE station SET live_reported_at = :at, live_batteries = :b, live_docks = :d,"
                  " live_installed = :inst, live_renting = :rent WHERE id = :id")
    connection.execute(update, {"at": to_db(fresh, dialect), "b": 3, "d": 2, "inst": True, "rent": True,
                                "id": ids["cab"]})
    connection.execute(update, {"at": to_db(old, dialect), "b": 5, "d": None, "inst": True, "rent": False,
                                "id": ids["wc"]})
    # Staff closed "shut" for now: it swaps nothing whatever its cabinet says.
    connection.execute(update, {"at": to_db(fresh, dialect), "b": 4, "d": 0, "inst": True, "rent": True,
                                "id": ids["shut"]})
    body = _get(client, "station_status").get_json()
    assert [e.message for e in Draft7Validator(_schema("station_status")).iter_errors(body)] == []
    stations = {s["station_id"]: s for s in body["data"]["stations"]}
    assert stations[str(ids["cab"])] == {
        "station_id": str(ids["cab"]), "num_bikes_available": 3, "num_docks_available": 2, "is_installed": True,
        "is_renting": True, "is_returning": True, "last_reported": int(fresh.timestamp())}
    assert stations[str(ids["wc"])] == {
        "station_id": str(ids["wc"]), "num_bikes_available": 5, "is_installed": True,
        "is_renting": False, "is_returning": False, "last_reported": int(old.timestamp())}
    shut = stations[str(ids["shut"])]
    assert (shut["num_bikes_available"], shut["is_renting"], shut["is_returning"]) == (4, False, False)
