"""Check-ins (issue #9 §1) on both stores: one tap each; "closed" / "not found" from 3 distinct
devices within 24 hours opens (then joins) a work order through Ops.submit_report."""
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from app.auth import limiter
from app.device import DEVICE_COOKIE
from app.ops.checkins import REPORT_AFTER, CheckIns, UnknownStation
from tests.helpers import station
from tests.test_ratings import _address

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def ids(store):
    store.upsert([station("a", 27.83, 113.15, hours="24/7"), station("gone", 27.84, 113.16, status="removed")])
    with store.reading() as conn:
        return dict(conn.execute(text("SELECT source_id, id FROM station WHERE source = 'test'")).all())


def _work_orders(store):
    with store.reading() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT w.category, w.source, count(r.id) FROM work_order w JOIN report r ON r.work_order_id = w.id"
            " GROUP BY w.id, w.category, w.source ORDER BY w.id")).all()]


def test_three_devices_saying_closed_open_a_work_order_then_join_it(ops, store, ids):
    checkins = CheckIns(ops)
    assert REPORT_AFTER == 3
    first = checkins.check_in(ids["a"], "d1", "closed", T0)
    again = checkins.check_in(ids["a"], "d1", "closed", T0 + timedelta(minutes=5))  # the same device: once
    second = checkins.check_in(ids["a"], "d2", "closed", T0 + timedelta(minutes=10))
    checkins.check_in(ids["a"], "d3", "worked", T0 + timedelta(minutes=11))  # another outcome: not counted
    assert [(c.devices, c.reported) for c in (first, again, second)] == [(1, False), (1, False), (2, False)]
    assert _work_orders(store) == []
    third = checkins.check_in(ids["a"], "d4", "closed", T0 + timedelta(minutes=20))
    assert (third.devices, third.reported) == (3, True)
    assert _work_orders(store) == [("closed_unexpectedly", "web", 1)]
    repeat = checkins.check_in(ids["a"], "d4", "closed", T0 + timedelta(minutes=25))  # no second report
    fourth = checkins.check_in(ids["a"], "d5", "closed", T0 + timedelta(minutes=30))  # "me too"
    assert (repeat.reported, fourth.reported) == (False, True)
    assert _work_orders(store) == [("closed_unexpectedly", "web", 2)]


def test_not_found_counts_within_24_hours_only(ops, store, ids):
    checkins = CheckIns(ops)
    checkins.check_in(ids["a"], "d1", "not_found", T0)
    checkins.check_in(ids["a"], "d2", "not_found", T0 + timedelta(hours=1))
    late = checkins.check_in(ids["a"], "d3", "not_found", T0 + timedelta(hours=24, seconds=1))  # d1 has aged out
    assert (late.devices, late.reported) == (2, False)
    done = checkins.check_in(ids["a"], "d4", "not_found", T0 + timedelta(hours=24, minutes=1))
    assert (done.devices, done.reported) == (3, True)
    assert _work_orders(store) == [("info_wrong", "web", 1)]


def test_info_wrong_and_worked_never_open_anything(ops, store, ids):
    checkins = CheckIns(ops)
    for i in range(4):
        checkins.check_in(ids["a"], f"d{i}", "info_wrong", T0)
        checkins.check_in(ids["a"], f"e{i}", "worked", T0)
    assert _work_orders(store) == []
    with pytest.raises(UnknownStation):
        checkins.check_in(ids["gone"], "d1", "closed", T0)
    with pytest.raises(ValueError):
        checkins.check_in(ids["a"], "d1", "exploded", T0)


def test_the_api_counts_devices_by_cookie(client, store, ids, monkeypatch):
    monkeypatch.setattr(limiter, "_key_prefix", f"yizhan-test-{uuid.uuid4().hex}")
    client.environ_base["REMOTE_ADDR"] = _address()
    url = f"/api/v1/stations/{ids['a']}/checkins"
    answers = []
    for device in range(3):
        client.delete_cookie(DEVICE_COOKIE)
        answer = client.post(url, json={"outcome": "closed"})
        assert answer.status_code == 201
        answers.append(answer.get_json())
        again = client.post(url, json={"outcome": "closed"})  # the same cookie: the same device
        assert again.get_json()["devices"] == device + 1 and again.get_json()["reported"] is False
    assert [(a["devices"], a["reported"]) for a in answers] == [(1, False), (2, False), (3, True)]
    assert _work_orders(store) == [("closed_unexpectedly", "web", 1)]
    bad = client.post(url, json={"outcome": "exploded"})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "outcome"
    assert client.post(f"/api/v1/stations/{ids['gone']}/checkins", json={"outcome": "worked"}).status_code == 404
    labels = {t["id"]: t["labels"]["zh-CN"] for t in client.get("/api/v1/meta").get_json()["checkin_outcomes"]}
    assert labels == {"worked": "正常使用", "closed": "没开门", "not_found": "没找到", "info_wrong": "信息有误"}
