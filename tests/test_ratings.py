"""Satisfaction ratings (issue #9 §1) on both stores: the 12-hour device window, the Bayesian
average against hand-worked numbers, the API's answers, its cookie and its per-address limit."""
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from app.api.ratings import RATINGS_PER_ADDRESS
from app.device import DEVICE_COOKIE
from app.auth import limiter
from app.stations.ratings import PRIOR_MEAN, PRIOR_WEIGHT, Ratings, UnknownStation, bayesian_average
from tests.helpers import station

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
CENTRE = (27.83, 113.15)


def _address() -> str:
    """An IPv6 address whose first 64 bits are this call's own (client_key counts IPv6 by /64)."""
    hexes = uuid.uuid4().hex[:16]
    return "2001:db8:" + ":".join(hexes[i:i + 4] for i in range(0, 8, 4)) + ":0:0:0:1"


@pytest.fixture
def ids(store):
    store.upsert([station("a", *CENTRE, name="甲公厕", hours="24/7"),
                  station("b", 27.8301, 113.1501, name="乙公厕", hours="24/7"),
                  station("gone", 27.84, 113.16, status="removed")])
    with store.reading() as conn:
        return dict(conn.execute(text("SELECT source_id, id FROM station WHERE source = 'test'")).all())


@pytest.fixture
def api(client, ids, monkeypatch):
    """The client from an address of its own, with rate-limit counts of its own."""
    monkeypatch.setattr(limiter, "_key_prefix", f"yizhan-test-{uuid.uuid4().hex}")
    client.environ_base["REMOTE_ADDR"] = _address()
    return client


def _totals(store, station_id):
    st = store.get(station_id)
    return st.rating_count, st.rating_sum


# -- the average ---------------------------------------------------------------------------------

def test_the_prior_is_declared_once_as_documented():
    assert (PRIOR_MEAN, PRIOR_WEIGHT) == (3.5, 5)


@pytest.mark.parametrize("count, total, expected", [
    (0, 0, None),
    (1, 5, 3.75),     # (17.5 + 5) / 6 = 3.75
    (2, 10, 3.93),    # (17.5 + 10) / 7 = 3.928…
    (2, 2, 2.79),     # (17.5 + 2) / 7 = 2.785…
    (10, 50, 4.5),    # (17.5 + 50) / 15 = 4.5
    (4, 8, 2.83),     # (17.5 + 8) / 9 = 2.833…
])
def test_bayesian_average_by_hand(count, total, expected):
    assert bayesian_average(count, total) == expected


# -- the service: one rating per device per station per 12 hours --------------------------------

def test_a_repeat_within_12_hours_replaces_the_earlier_rating(store, ids):
    ratings = Ratings(store)
    first = ratings.rate(ids["a"], "dev1", 2, ["smelly"], T0)
    assert (first.replaced, first.count, first.total) == (False, 1, 2)
    again = ratings.rate(ids["a"], "dev1", 5, ["clean", "friendly", "clean"], T0 + timedelta(hours=11, minutes=59))
    assert (again.replaced, again.count, again.total) == (True, 1, 5)
    assert again.tags == ("clean", "friendly")
    assert _totals(store, ids["a"]) == (1, 5)
    rows = ratings.of_device(ids["a"], "dev1")
    assert [(r["stars"], r["tags"]) for r in rows] == [(5, ["clean", "friendly"])]
    assert rows[0]["created_at"] == T0 and rows[0]["updated_at"] == T0 + timedelta(hours=11, minutes=59)


def test_after_12_hours_it_is_a_new_rating(store, ids):
    ratings = Ratings(store)
    ratings.rate(ids["a"], "dev1", 2, [], T0)
    later = ratings.rate(ids["a"], "dev1", 4, [], T0 + timedelta(hours=12, seconds=1))
    assert (later.replaced, later.count, later.total) == (False, 2, 6)
    # Within 12 h of the second one, a third replaces the second, not the first.
    third = ratings.rate(ids["a"], "dev1", 5, [], T0 + timedelta(hours=13))
    assert (third.replaced, third.count, third.total) == (True, 2, 7)
    assert [r["stars"] for r in ratings.of_device(ids["a"], "dev1")] == [2, 5]
    assert _totals(store, ids["a"]) == (2, 7)
    assert third.rating == {"average": 3.5, "count": 2}  # (17.5 + 2 + 5) / (5 + 2) = 24.5 / 7


def test_devices_and_stations_are_counted_apart(store, ids):
    ratings = Ratings(store)
    ratings.rate(ids["a"], "dev1", 5, [], T0)
    ratings.rate(ids["a"], "dev2", 1, [], T0 + timedelta(minutes=1))
    ratings.rate(ids["b"], "dev1", 3, [], T0 + timedelta(minutes=2))
    assert _totals(store, ids["a"]) == (2, 6) and _totals(store, ids["b"]) == (1, 3)


def test_unknown_or_removed_stations_and_bad_input_are_refused(store, ids):
    ratings = Ratings(store)
    with pytest.raises(UnknownStation):
        ratings.rate(ids["gone"], "dev1", 3, [], T0)
    with pytest.raises(UnknownStation):
        ratings.rate(max(ids.values()) + 1000, "dev1", 3, [], T0)
    with pytest.raises(ValueError):
        ratings.rate(ids["a"], "dev1", 6, [], T0)
    with pytest.raises(ValueError):
        ratings.rate(ids["a"], "dev1", 3, ["dirty_word"], T0)
    assert _totals(store, ids["a"]) == (0, 0)


# -- the API ------------------------------------------------------------------------------------

def _rate(client, station_id, stars=4, tags=(), **kw):
    return client.post(f"/api/v1/stations/{station_id}/ratings", json={"stars": stars, "tags": list(tags)}, **kw)


def test_rating_sets_a_signed_device_cookie_and_a_repeat_replaces(api, ids, store):
    first = _rate(api, ids["a"], 2, ["no_paper"])
    assert first.status_code == 201, first.get_json()
    assert first.get_json() == {"station_id": ids["a"], "stars": 2, "tags": ["no_paper"], "replaced": False,
                                "rating": {"average": 3.25, "count": 1}}  # (17.5 + 2) / 6
    cookie = first.headers["Set-Cookie"]
    assert cookie.startswith(f"{DEVICE_COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # The test client sends the cookie back: the same device, so the rating is replaced.
    again = _rate(api, ids["a"], 5)
    assert again.status_code == 200 and again.get_json()["replaced"] is True
    assert again.get_json()["rating"] == {"average": 3.75, "count": 1}
    assert "Set-Cookie" not in again.headers
    assert _totals(store, ids["a"]) == (1, 5)
    # Only a hash of the device is stored, and nothing of the address.
    with store.reading() as conn:
        stored = conn.execute(text("SELECT device_hash FROM station_rating")).scalars().all()
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(stored) == 1 and len(stored[0]) == 64 and value not in stored[0]


def test_a_forged_or_missing_cookie_is_a_new_device(api, ids, store):
    assert _rate(api, ids["a"], 3).status_code == 201
    api.set_cookie(DEVICE_COOKIE, "not-signed-by-us")
    forged = _rate(api, ids["a"], 3)
    assert forged.status_code == 201 and forged.get_json()["rating"]["count"] == 2
    api.delete_cookie(DEVICE_COOKIE)
    assert _rate(api, ids["a"], 3).get_json()["rating"]["count"] == 3


def test_bad_ratings_are_400_and_unknown_stations_404(api, ids, store):
    for body, field in [({"stars": 0}, "stars"), ({"stars": 6}, "stars"), ({"stars": "5"}, "stars"),
                        ({"stars": 4, "tags": ["dirty"]}, "tags.0"), ({}, "stars"),
                        ({"stars": 4, "tags": ["clean"] * 7}, "tags"), ({"stars": 4, "why": 1}, "why")]:
        answer = api.post(f"/api/v1/stations/{ids['a']}/ratings", json=body)
        assert answer.status_code == 400, body
        assert answer.get_json()["error"]["field"] == field, (body, answer.get_json())
    form = api.post(f"/api/v1/stations/{ids['a']}/ratings", data={"stars": "5"})
    assert form.status_code == 415  # what a cross-site form could send
    for missing in (ids["gone"], max(ids.values()) + 1000):
        answer = _rate(api, missing)
        assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "not_found"
    assert _totals(store, ids["a"]) == (0, 0)


def test_ratings_are_limited_per_address(api, ids):
    allowed = int(RATINGS_PER_ADDRESS.split()[0])
    for i in range(allowed):
        api.delete_cookie(DEVICE_COOKIE)  # a script throwing its cookie away each time
        assert _rate(api, ids["a"]).status_code == 201, i
    refused = _rate(api, ids["b"])
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 0
    api.environ_base["REMOTE_ADDR"] = _address()  # another /64: counted apart
    assert _rate(api, ids["b"]).status_code == 201


def test_nearest_detail_and_bbox_carry_the_rating(api, ids):
    _rate(api, ids["a"], 5)
    api.delete_cookie(DEVICE_COOKIE)
    _rate(api, ids["a"], 4)
    expected = {"average": 3.79, "count": 2}  # (17.5 + 5 + 4) / (5 + 2) = 26.5 / 7 = 3.785…
    detail = api.get(f"/api/v1/stations/{ids['a']}").get_json()
    nearest = api.get(f"/api/v1/stations/nearest?lat={CENTRE[0]}&lng={CENTRE[1]}&limit=2").get_json()
    ratings = {r["id"]: r["rating"] for r in nearest["results"]}
    assert detail["rating"] == expected and ratings == {ids["a"]: expected, ids["b"]: None}
    box = api.get("/api/v1/stations?bbox=113.14,27.82,113.16,27.835").get_json()
    assert {f["id"]: f["properties"]["rating"] for f in box["features"]} == {ids["a"]: expected, ids["b"]: None}


def test_meta_publishes_the_tags_with_labels(api):
    tags = {t["id"]: t["labels"] for t in api.get("/api/v1/meta").get_json()["rating_tags"]}
    assert tags["clean"] == {"zh-CN": "干净", "en": "Clean"} and tags["slippery"]["zh-CN"] == "地面湿滑"
    assert len(tags) == 6


def test_the_document_declares_the_ratings_endpoint(api):
    doc = api.get("/api/v1/openapi.json").get_json()
    operation = doc["paths"]["/stations/{id}/ratings"]["post"]
    assert set(operation["responses"]) == {"200", "201", "400", "404", "413", "415", "429", "503"}
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/RatingPayload")
    payload = doc["components"]["schemas"]["RatingPayload"]
    assert payload["required"] == ["stars"] and payload["properties"]["tags"]["maxItems"] == 6
    assert "security" not in operation  # public: no token, no session


def test_a_rating_does_not_wait_for_the_signature_lock_an_import_holds(app, backend, store):
    """PostGIS: an import holds the station_signature advisory lock to its commit; a rating
    changes no kind, amenity or status, so its update must not queue behind it. (SQLite's
    trigger fires only on those columns anyway.)"""
    if backend != "postgis":
        with store.reading() as conn:
            sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'station_signature_update'")).scalar()
        assert "AFTER UPDATE OF kind, amenities_yes, status ON station" in sql
        return
    from app.extensions import db
    from app.stations.backends import store_for
    with app.app_context():
        mine, importer = db.engine.connect(), db.engine.connect()
    outer = mine.begin()
    try:
        # The station is written with triggers off, so this transaction holds no signature lock
        # of its own (the fixture's connection would: its inserts take it).
        mine.execute(text("SET LOCAL session_replication_role = replica"))
        ratings_store = store_for(mine)
        ratings_store.upsert([station("lock", *CENTRE)])
        mine.execute(text("SET LOCAL session_replication_role = origin"))
        station_id = mine.execute(text("SELECT id FROM station WHERE source_id = 'lock'")).scalar_one()
        importer.execute(text("SELECT pg_advisory_lock(hashtextextended('yizhan:station_signature', 0))"))
        mine.execute(text("SET LOCAL lock_timeout = '2s'"))
        assert Ratings(ratings_store).rate(station_id, "dev1", 4, [], T0).count == 1
        # ...whereas a change of status still takes (and here waits for) the lock.
        with pytest.raises(Exception, match="lock timeout"):
            mine.execute(text("UPDATE station SET status = 'closed' WHERE id = :id"), {"id": station_id})
    finally:
        outer.rollback()
        mine.close()
        importer.execute(text("SELECT pg_advisory_unlock_all()"))
        importer.close()
