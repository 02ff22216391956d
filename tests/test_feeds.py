"""Polling operators' published GBFS feeds (issue #9 §3) against a local GBFS stand-in, on both
stores: discovery → station_status, the ttl, backoff after errors and recovery, rejected records
logged and counted, and the `orgs feed` / `feeds poll` commands."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import text

from app.dbtime import utcnow
from app.ops.errors import Invalid
from app.ops.feeds import BACKOFF_FIRST_S, BACKOFF_MAX_S, MIN_POLL_S, FeedPoller, backoff, gbfs_item
from tests.gbfs_standin import GbfsStandIn, gbfs_standin  # noqa: F401 - gbfs_standin is a fixture
from tests.helpers import station


@pytest.fixture
def operator(store, ops):
    store.upsert([station(f"g{i}", 27.83 + i / 1000, 113.15, "battery_swap", source="gbfsco") for i in range(3)])
    ops.accounts.create_organisation("gbfsco", "换电丙")
    ops.accounts.assign_stations("gbfsco", "gbfsco")
    with store.reading() as conn:
        return dict(conn.execute(text("SELECT source_id, id FROM station WHERE source = 'gbfsco'")).all())


def _record(sid, at, bikes, **extra):
    return {"station_id": sid, "num_bikes_available": bikes, "num_docks_available": 1, "is_installed": True,
            "is_renting": True, "is_returning": True, "last_reported": int(at.timestamp()), **extra}


def test_a_poll_reads_station_status_through_discovery_and_waits_its_ttl(store, ops, operator, gbfs_standin):
    now = utcnow()
    gbfs_standin.ttl = 45
    gbfs_standin.stations = [
        _record("g0", now - timedelta(seconds=20), 3,
                vehicle_types_available=[{"vehicle_type_id": "48V20Ah", "count": 2},
                                         {"vehicle_type_id": "60V24Ah", "count": 1}]),
        _record("g1", now - timedelta(seconds=20), 0),
    ]
    poller = FeedPoller(store, ops.accounts)
    poller.set_feed("gbfsco", gbfs_standin.url, now)
    (result,) = poller.poll_due(now)
    assert result.ok and (result.applied, result.ignored, result.rejected) == (2, 0, 0)
    assert gbfs_standin.requests == ["/gbfs.json", "/station_status.json"]
    g0 = store.get(operator["g0"])
    assert g0.live_batteries == 3 and '"60V24Ah"' in g0.live_battery_types
    assert result.next_poll_at == now + timedelta(seconds=45)
    # Not due again before its ttl; the same statuses again are ignored, not applied twice.
    assert poller.poll_due(now + timedelta(seconds=44)) == []
    (again,) = poller.poll_due(now + timedelta(seconds=45))
    assert (again.applied, again.ignored) == (0, 2)
    assert poller.counters("gbfsco")["applied"] == 2 and poller.counters("gbfsco")["ignored"] == 2


def test_a_ttl_of_zero_is_polled_at_the_floor(store, ops, operator, gbfs_standin):
    now = utcnow()
    gbfs_standin.ttl = 0
    poller = FeedPoller(store, ops.accounts)
    poller.set_feed("gbfsco", gbfs_standin.url, now)
    (result,) = poller.poll_due(now)
    assert result.ok and result.next_poll_at == now + timedelta(seconds=MIN_POLL_S)


@pytest.mark.parametrize("mode", ["error500", "not_json", "no_status", "down"])
def test_errors_back_off_doubling_and_a_good_poll_resets(store, ops, operator, gbfs_standin, mode, caplog):
    now = utcnow()
    poller = FeedPoller(store, ops.accounts)
    poller.set_feed("gbfsco", gbfs_standin.url, now)
    if mode == "down":
        gbfs_standin.down()
    else:
        gbfs_standin.mode = mode
    caplog.set_level(logging.WARNING, logger="yizhan.feeds")
    t = now
    for failures, wait in ((1, 30), (2, 60), (3, 120)):
        (result,) = poller.poll_due(t)
        assert not result.ok and result.next_poll_at == t + timedelta(seconds=wait)
        assert poller.counters("gbfsco")["failures"] == failures
        assert poller.poll_due(t + timedelta(seconds=wait - 1)) == []  # nothing before the backoff ends
        t += timedelta(seconds=wait)
    assert "gbfsco failed" in caplog.text
    if mode == "down":
        gbfs_standin.up()
    gbfs_standin.mode = "ok"
    gbfs_standin.stations = [_record("g0", t - timedelta(seconds=5), 2)]
    (result,) = poller.poll_due(t)
    assert result.ok and result.applied == 1
    assert poller.counters("gbfsco")["failures"] == 0 and poller.counters("gbfsco")["last_error"] is None


def test_backoff_doubles_to_its_ceiling():
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [BACKOFF_FIRST_S * k for k in (1, 2, 4, 8)]
    assert backoff(40).total_seconds() == BACKOFF_MAX_S


def test_bad_records_are_rejected_logged_and_counted(store, ops, operator, gbfs_standin, caplog):
    now = utcnow()
    gbfs_standin.stations = [
        _record("g0", now - timedelta(seconds=5), 2),
        _record("g1", now - timedelta(seconds=5), -3),  # negative
        _record("g2", now + timedelta(days=2), 1),  # far future
        _record("elsewhere", now - timedelta(seconds=5), 1),  # not one of its cabinets
        {"station_id": "g2", "num_bikes_available": float("nan"), "last_reported": int(now.timestamp())},
        "garbage",
    ]
    poller = FeedPoller(store, ops.accounts)
    poller.set_feed("gbfsco", gbfs_standin.url, now)
    caplog.set_level(logging.WARNING, logger="yizhan.feeds")
    (result,) = poller.poll_due(now)
    assert result.ok and (result.applied, result.rejected) == (1, 5)
    assert poller.counters("gbfsco")["rejected"] == 5
    assert "'g1' rejected" in caplog.text and "elsewhere rejected (unknown_station)" in caplog.text
    assert store.get(operator["g1"]).live_reported_at is None and store.get(operator["g2"]).live_reported_at is None


def test_gbfs_records_translate_to_the_push_shape():
    item = gbfs_item({"station_id": "a", "num_bikes_available": 2, "last_reported": "1795766400",
                      "vehicle_types_available": [{"vehicle_type_id": "48V", "count": 2}], "is_returning": True})
    assert item == {"station_id": "a", "last_reported": 1795766400, "num_batteries_available": 2,
                    "battery_types_available": [{"battery_type": "48V", "count": 2}]}
    assert gbfs_item({"station_id": "b", "num_vehicles_available": 4, "last_reported": 1})["num_batteries_available"] == 4


def test_a_feed_url_must_be_http(store, ops, operator):
    with pytest.raises(Invalid):
        FeedPoller(store, ops.accounts).set_feed("gbfsco", "file:///etc/passwd", utcnow())


def test_the_commands_configure_and_poll(cli, store, ops, operator, gbfs_standin):
    now = utcnow()
    gbfs_standin.stations = [_record("g0", now - timedelta(seconds=5), 6)]
    done = cli.invoke(args=["orgs", "feed", "gbfsco", "--url", gbfs_standin.url])
    assert done.exit_code == 0, done.output
    polled = cli.invoke(args=["feeds", "poll", "--once", "--now", (now + timedelta(seconds=1)).isoformat()])
    assert polled.exit_code == 0 and "gbfsco: 1 applied, 0 ignored, 0 rejected" in polled.output, polled.output
    assert store.get(operator["g0"]).live_batteries == 6
    assert cli.invoke(args=["orgs", "feed", "gbfsco"]).exit_code != 0  # neither --url nor --off
    assert cli.invoke(args=["orgs", "feed", "gbfsco", "--off"]).exit_code == 0
    assert FeedPoller(store, ops.accounts).feeds() == []


@pytest.mark.parametrize("mode", ["deep", "bad_status_line", "file_status", "drip"])
def test_a_hostile_feed_fails_alone_and_the_next_operator_is_still_polled(store, ops, operator, gbfs_standin,
                                                                           mode, monkeypatch):
    """Whatever one operator's server sends (JSON nested past the parser, a broken status line, a
    station_status URL naming a local file, an answer dripped a byte at a time), that feed fails and
    backs off, nothing of it is applied, and the other operators' feeds are polled as usual."""
    from app.ops import feeds

    monkeypatch.setattr(feeds, "FETCH_DEADLINE_S", 1)  # the drip needs ~20 s in all: well past it
    now = utcnow()
    store.upsert([station("k0", 27.9, 113.2, "battery_swap", source="okco")])
    ops.accounts.create_organisation("okco", "换电丁")
    ops.accounts.assign_stations("okco", "okco")
    honest = GbfsStandIn().up()
    try:
        honest.stations = [_record("k0", now - timedelta(seconds=5), 4)]
        gbfs_standin.mode = mode
        gbfs_standin.stations = [_record("g0", now - timedelta(seconds=5), 2)]
        poller = FeedPoller(store, ops.accounts)
        poller.set_feed("gbfsco", gbfs_standin.url, now)
        poller.set_feed("okco", honest.url, now)
        results = {r.code: r for r in poller.poll_due(now)}
    finally:
        honest.down()
    assert not results["gbfsco"].ok and poller.counters("gbfsco")["failures"] == 1
    assert poller.counters("gbfsco")["applied"] == 0 and store.get(operator["g0"]).live_reported_at is None
    assert results["okco"].ok and results["okco"].applied == 1
    if mode == "file_status":
        assert "not an http(s) URL" in results["gbfsco"].error
    if mode == "drip":
        assert "not all sent within 1 s" in results["gbfsco"].error


def test_a_feed_urls_key_stays_out_of_logs_and_the_stored_error(store, ops, operator, gbfs_standin, caplog):
    now = utcnow()
    gbfs_standin.mode = "error500"
    poller = FeedPoller(store, ops.accounts)
    poller.set_feed("gbfsco", gbfs_standin.url + "?key=s3cr3t-operator-key", now)
    caplog.set_level(logging.INFO, logger="yizhan.feeds")
    (result,) = poller.poll_due(now)
    assert not result.ok and "500" in result.error
    assert "s3cr3t" not in caplog.text and "s3cr3t" not in (poller.counters("gbfsco")["last_error"] or "")
    assert "s3cr3t" not in result.error
