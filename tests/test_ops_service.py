"""The operations loop through app.ops.service, on both stores: reports and "me too", tracking
tokens, transitions and the event log, visibility, SLA breaches and escalation, station status in
the finder, inspections, and purging reporters' details. Fixtures are small enough to check by hand.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from app.ops.errors import Conflict, Forbidden, Invalid, NotFound
from app.ops.service import ReportInput
from app.ops.workflow import replay
from app.stations.model import NearestQuery, StationFilter
from tests.helpers import station

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)  # a Monday, an ordinary working day
PASSWORD = "correct horse battery"


@pytest.fixture
def world(store, ops):
    """Two organisations, each with one toilet, an org manager, a station manager and a worker."""
    store.upsert([
        station("a1", 27.8300, 113.1500, "toilet", yes=("hot_water", "accessible_toilet"), hours="24/7",
                source="ops", name="建宁驿站 A1"),
        station("b1", 27.9000, 113.2000, "rest_station", yes=("hot_water",), hours="24/7", source="ops",
                name="户外劳动者驿站 B1"),
        station("x9", 27.8400, 113.1600, "toilet", hours="24/7", source="ops", name="无人管理"),
    ])
    acc = ops.accounts
    people = {}
    for code in ("east", "west"):
        acc.create_organisation(code, f"{code} unit", webhook_url=f"http://127.0.0.1:9/{code}")
        for role in ("org_manager", "station_manager", "worker"):
            people[f"{code}_{role}"] = acc.create_user(f"{role}@{code}.example", PASSWORD, role, code)
    people["admin"] = acc.create_user("admin@yizhan.example", PASSWORD, "admin")
    acc.assign_stations("east", "ops", ["a1"], manager_email="station_manager@east.example")
    acc.assign_stations("west", "ops", ["b1"], manager_email="station_manager@west.example")
    with store.reading() as conn:
        ids = dict(conn.execute(text("SELECT source_id, id FROM station WHERE source = 'ops'")).all())
    return {"ops": ops, "ids": ids, **people}


def _report(world, code="no_water", sid="a1", now=T0, **kw):
    return world["ops"].submit_report(ReportInput(category=code, station_id=world["ids"][sid], **kw), now)


def test_report_opens_a_work_order_with_its_clocks(world):
    done = _report(world, phone="138 1234 5678", description="龙头没水")
    wo = world["ops"].store.work_order(done.work_order_id)
    assert (wo.state, wo.category, wo.reports, done.joined) == ("new", "no_water", 1, False)
    # no_water: respond within 20 minutes, resolve within 24 hours (app.ops.categories defaults).
    assert wo.response_due_at == T0 + timedelta(minutes=20)
    assert wo.resolution_due_at == T0 + timedelta(hours=24)
    assert done.due_at == T0 + timedelta(hours=24) and done.due_at.utcoffset() == timedelta(hours=8)
    assert wo.organisation_id == world["east_org_manager"].organisation_id


def test_me_too_joins_the_open_work_order_and_gives_the_same_link(world):
    first = _report(world)
    second = _report(world, now=T0 + timedelta(minutes=5))
    assert second.joined and second.work_order_id == first.work_order_id and second.token == first.token
    assert world["ops"].store.work_order(first.work_order_id).reports == 2
    assert len(world["ops"].store.reports(first.work_order_id)) == 2
    other = _report(world, code="dirty")  # another problem: its own work order
    assert not other.joined and other.work_order_id != first.work_order_id


def test_a_report_after_the_fix_opens_a_new_work_order(world):
    ops, boss = world["ops"], world["east_org_manager"]
    first = _report(world)
    ops.transition(boss, first.work_order_id, "confirmed", now=T0 + timedelta(minutes=1))
    ops.transition(boss, first.work_order_id, "fixed", now=T0 + timedelta(minutes=2))
    again = _report(world, now=T0 + timedelta(minutes=3))
    assert not again.joined and again.work_order_id != first.work_order_id


def test_the_database_refuses_a_second_open_work_order_for_one_problem(world, store):
    """The unique partial index backs "me too" even against a writer that skips the check."""
    first = _report(world)
    with pytest.raises(IntegrityError):
        with store.transaction() as conn:
            conn.execute(text(
                "INSERT INTO work_order (station_id, category, priority, state, lat, lng, source, created_at,"
                " updated_at, response_due_at, resolution_due_at, track_nonce) SELECT station_id, category,"
                " priority, 'confirmed', lat, lng, source, created_at, updated_at, response_due_at,"
                " resolution_due_at, 'x' FROM work_order WHERE id = :id"), {"id": first.work_order_id})


def test_tracking_token_is_checked_and_shows_nothing_personal(world):
    ops = world["ops"]
    done = _report(world, phone="13812345678", email="me@example.com", description="no water at all")
    view = ops.track(done.token)
    assert view.id == done.work_order_id and [s.state for s in view.steps] == ["new"]
    forged = done.token[:-2] + ("AA" if not done.token.endswith("AA") else "BB")
    assert ops.track(forged) is None
    assert ops.track(f"{done.work_order_id}") is None and ops.track("") is None and ops.track("x-y") is None
    assert "13812345678" not in repr(view) and "me@example.com" not in repr(view)


def test_public_view_shows_public_notes_only(world):
    ops, boss = world["ops"], world["east_org_manager"]
    done = _report(world)
    ops.transition(boss, done.work_order_id, "confirmed", note="内部：联系水务", now=T0 + timedelta(minutes=1))
    ops.transition(boss, done.work_order_id, "fixed", note="已恢复供水", public=True, now=T0 + timedelta(hours=1))
    view = ops.track(done.token)
    assert [(s.state, s.note) for s in view.steps] == [("new", ""), ("confirmed", ""), ("fixed", "已恢复供水")]
    assert view.status_note == "已恢复供水" and view.state_type == "fixed"


A1 = "a1"  # stands for station A1's id, which differs between the stores


@pytest.mark.parametrize("kwargs, error, field", [
    (dict(category="no_such_problem", station_id=A1), Invalid, "category"),
    (dict(category="no_water", station_id=10**12), NotFound, "station_id"),
    (dict(category="no_water"), Invalid, "lat"),  # neither station nor place
    (dict(category="no_water", lat=91.0, lng=113.0), Invalid, "lat"),
    (dict(category="no_water", station_id=A1, description="水" * 1001), Invalid, "description"),
    (dict(category="no_water", station_id=A1, phone="call me"), Invalid, "phone"),
])
def test_bad_reports_are_refused_and_nothing_is_written(world, store, kwargs, error, field):
    kwargs = {**kwargs, **({"station_id": world["ids"]["a1"]} if kwargs.get("station_id") == A1 else {})}
    with pytest.raises(error) as caught:
        world["ops"].submit_report(ReportInput(**kwargs), T0)
    assert caught.value.field == field
    with store.reading() as conn:
        assert conn.execute(text("SELECT count(*) FROM work_order")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM report")).scalar() == 0


def test_a_report_at_a_place_joins_a_station_within_50_m_else_goes_to_the_nearest_owner(world):
    ops = world["ops"]
    # ~22 m north of A1: the station's report.
    near = ops.submit_report(ReportInput(category="dirty", lat=27.8302, lng=113.1500), T0)
    assert ops.store.work_order(near.work_order_id).station_id == world["ids"]["a1"]
    # ~1.1 km south of A1, nothing within 50 m: a report at a place, routed to A1's organisation.
    far = ops.submit_report(ReportInput(category="dirty", lat=27.8200, lng=113.1500), T0)
    wo = ops.store.work_order(far.work_order_id)
    assert wo.station_id is None and wo.organisation_id == world["east_org_manager"].organisation_id
    assert (wo.lat, wo.lng) == (27.82, 113.15)


def test_transitions_follow_the_table_and_the_log_replays_to_the_state(world, store):
    ops, boss = world["ops"], world["east_org_manager"]
    wo_id = _report(world).work_order_id
    with pytest.raises(Conflict):
        ops.transition(boss, wo_id, "fixed", now=T0 + timedelta(minutes=1))  # new -> fixed is not allowed
    with pytest.raises(Invalid) as caught:
        ops.transition(boss, wo_id, "assigned", now=T0 + timedelta(minutes=1))
    assert caught.value.field == "assignee"
    with pytest.raises(Invalid):  # another organisation's worker
        ops.transition(boss, wo_id, "assigned", assignee="worker@west.example", now=T0 + timedelta(minutes=1))
    ops.transition(boss, wo_id, "assigned", assignee="worker@east.example", now=T0 + timedelta(minutes=2))
    ops.transition(world["east_worker"], wo_id, "in_progress", now=T0 + timedelta(minutes=3))
    detail = ops.transition(world["east_worker"], wo_id, "fixed", note="换了阀门", public=True,
                            now=T0 + timedelta(minutes=30))
    with pytest.raises(Invalid):
        ops.transition(boss, wo_id, "closed", now=T0 + timedelta(minutes=31))  # closing needs a reason
    ops.transition(boss, wo_id, "closed", reason="resolved", now=T0 + timedelta(minutes=31))
    wo = ops.store.work_order(wo_id)
    replayed = replay(e.event for e in ops.store.events(wo_id))
    assert (wo.state, wo.close_reason) == (replayed.state, replayed.reason) == ("closed", "resolved")
    assert wo.responded_at == T0 + timedelta(minutes=2)  # assigning was the response
    assert wo.assignee_email == "worker@east.example"
    assert detail.work_order.state == "fixed"
    assert [e.event.to_state for e in ops.store.events(wo_id)] == [
        "new", "assigned", "in_progress", "fixed", "closed"]


def test_the_event_log_is_append_only_in_the_database(world, store):
    wo_id = _report(world).work_order_id
    for statement in ("UPDATE work_order_event SET note = 'edited'", "DELETE FROM work_order_event"):
        with pytest.raises(DBAPIError, match="append-only"):
            with store.transaction() as conn:
                conn.execute(text(statement + " WHERE work_order_id = :id"), {"id": wo_id})


def test_a_worker_moves_only_their_own_work_and_only_forward(world):
    ops, boss, worker = world["ops"], world["east_org_manager"], world["east_worker"]
    wo_id = _report(world, phone="13812345678").work_order_id
    with pytest.raises(NotFound):  # not assigned to them: invisible
        ops.get_work_order(worker, wo_id)
    ops.transition(boss, wo_id, "assigned", assignee=worker.email, now=T0 + timedelta(minutes=1))
    seen = ops.get_work_order(worker, wo_id)
    assert seen.allowed == ("in_progress", "fixed")
    # The reporter's number stays with those who may call back: never a worker.
    assert (seen.contacts_shown, [r.phone for r in seen.reports]) == (False, [None])
    assert [r.phone for r in ops.get_work_order(boss, wo_id).reports] == ["13812345678"]
    with pytest.raises(Forbidden):
        ops.transition(worker, wo_id, "closed", reason="duplicate", now=T0 + timedelta(minutes=2))


@pytest.mark.parametrize("who, sees_east", [
    ("admin", True), ("east_org_manager", True), ("east_station_manager", True), ("east_worker", False),
    ("west_org_manager", False), ("west_station_manager", False), ("west_worker", False),
])
def test_visibility_by_role_and_organisation(world, who, sees_east):
    ops = world["ops"]
    wo_id = _report(world).work_order_id
    listed = [wo.id for wo in ops.list_work_orders(world[who], status="open", now=T0)]
    assert (wo_id in listed) is sees_east
    if sees_east:
        assert ops.get_work_order(world[who], wo_id).work_order.id == wo_id
    else:
        with pytest.raises(NotFound):
            ops.get_work_order(world[who], wo_id)


def test_a_seven_working_day_limit_skips_national_day_and_counts_the_make_up_saturday(world):
    """facility_broken resolves within 7 working days. Reported Wed 30 Sep 2026 10:00: 1-7 Oct are
    the National Day holiday, Sat 10 Oct is a make-up working day (State Council schedule for
    2026), so the days are 8, 9, 10, 12, 13, 14, 15 Oct: due Thu 15 Oct 10:00."""
    done = _report(world, code="facility_broken", now=datetime(2026, 9, 30, 10, 0, tzinfo=SHANGHAI))
    wo = world["ops"].store.work_order(done.work_order_id)
    assert wo.resolution_due_at == datetime(2026, 10, 15, 10, 0, tzinfo=SHANGHAI)
    assert not wo.due_estimated


def test_tick_marks_breaches_once_and_escalates_to_the_org_managers_webhook(world, store):
    ops = world["ops"]
    wo_id = _report(world).work_order_id
    before = ops.tick(T0 + timedelta(minutes=19), deliver=False)
    assert before.response_breaches == [] and before.resolution_breaches == []
    late = ops.tick(T0 + timedelta(minutes=21), deliver=False)
    assert late.response_breaches == [wo_id] and late.escalations == 1
    again = ops.tick(T0 + timedelta(minutes=22), deliver=False)
    assert again.response_breaches == [] and again.escalations == 0
    overdue = ops.list_work_orders(world["east_org_manager"], overdue=True, now=T0 + timedelta(minutes=21))
    assert [wo.id for wo in overdue] == [wo_id]
    with store.reading() as conn:
        rows = conn.execute(text("SELECT topic, url, payload FROM outbox ORDER BY id")).all()
    assert [(r.topic, r.url) for r in rows] == [("breach", "http://127.0.0.1:9/east")]
    assert f"#{wo_id}" in rows[0].payload


def test_escalation_is_delivered_to_a_local_stand_in(world, store, webhook_standin):
    ops = world["ops"]
    ops.accounts.create_organisation("north", "north unit", webhook_url=webhook_standin.url(key="robot-key"),
                                    webhook_format="wecom")
    ops.accounts.create_user("boss@north.example", PASSWORD, "org_manager", "north")
    store.upsert([station("n1", 28.0, 113.0, source="north")])
    ops.accounts.assign_stations("north", "north")
    with store.reading() as conn:
        sid = conn.execute(text("SELECT id FROM station WHERE source = 'north'")).scalar()
    done = ops.submit_report(ReportInput(category="safety", station_id=sid), T0)
    result = ops.tick(T0 + timedelta(minutes=21))
    assert result.delivered == 1 and result.failed == 0
    body = webhook_standin.bodies[-1]
    assert body["msgtype"] == "markdown" and f"#{done.work_order_id}" in body["markdown"]["content"]


def test_assigning_notifies_the_assignee_through_the_outbox(world, store):
    ops = world["ops"]
    wo_id = _report(world).work_order_id
    ops.transition(world["east_org_manager"], wo_id, "assigned", assignee="worker@east.example",
                   now=T0 + timedelta(minutes=1))
    with store.reading() as conn:
        rows = conn.execute(text("SELECT topic, payload FROM outbox")).all()
    assert [r.topic for r in rows] == ["assigned"] and "worker@east.example" in rows[0].payload


def test_temporary_closure_and_broken_amenity_show_in_the_finder(world, store):
    ops, manager = world["ops"], world["east_station_manager"]
    a1 = world["ids"]["a1"]
    now = datetime.now(timezone.utc)

    def nearest(**flt):
        query = NearestQuery(27.83, 113.15, now, limit=3, filter=StationFilter(**flt), max_distance_m=500)
        return {h.station.id: h for h in store.nearest(query)}

    assert a1 in nearest(open_only=True)
    ops.set_station_status(manager, a1, "temporarily_closed", reason="管道维修", until=now + timedelta(hours=2),
                           now=now)
    hit = nearest()[a1]
    assert (hit.hours.state, hit.hours.reason) == ("closed", "管道维修")
    assert a1 not in nearest(open_only=True)
    assert a1 not in nearest(open_only=True, include_unknown=True)
    ops.tick(now + timedelta(hours=2, seconds=1), deliver=False)  # the closure's time is up
    assert a1 in nearest(open_only=True)

    ops.set_amenity(manager, a1, "hot_water", True, reason="热水器坏了", now=now)
    assert a1 not in nearest(amenities=("hot_water",))
    assert store.get(a1).out_of_order and a1 in nearest(amenities=("accessible_toilet",))
    ops.set_amenity(manager, a1, "hot_water", False, now=now)
    assert a1 in nearest(amenities=("hot_water",))
    with pytest.raises(Forbidden):
        ops.set_station_status(world["east_worker"], a1, "open")
    with pytest.raises(NotFound):
        ops.set_station_status(world["west_org_manager"], a1, "open")
    with pytest.raises(Invalid):
        ops.set_station_status(manager, a1, "temporarily_closed")  # no reason


def test_inspection_opens_work_orders_for_failed_items_and_flags_a_far_position(world, store):
    ops, manager = world["ops"], world["east_station_manager"]
    a1 = world["ids"]["a1"]
    assert [s["id"] for s in ops.not_inspected_today(manager, now=T0)] == [a1]
    from app.ops.checklists import checklist_for

    results = {item.code: True for item in checklist_for("toilet")}
    results.update(paper=False, soap=False, water=False)
    done = ops.inspect(manager, a1, results, lat=27.8390, lng=113.15, now=T0)  # ~1 km north
    assert done.far and 990 < done.distance_m < 1010
    # paper and soap both open "no_paper": the second joins the first.
    assert [(item, joined) for item, _, joined in done.failed] == [("paper", False), ("soap", True),
                                                                   ("water", False)]
    assert store.get(a1).last_inspected_at == T0
    assert ops.not_inspected_today(manager, now=T0 + timedelta(hours=1)) == []
    # The next morning (local time) it is due again.
    assert [s["id"] for s in ops.not_inspected_today(manager, now=T0 + timedelta(days=1))] == [a1]
    with pytest.raises(Invalid):
        ops.inspect(manager, a1, {"paper": True}, now=T0)  # incomplete checklist


def test_purge_erases_contact_details_after_the_configured_time(world, store):
    ops, boss = world["ops"], world["east_org_manager"]
    kept = _report(world, code="dirty", phone="13900000001").work_order_id
    gone = _report(world, phone="13900000002").work_order_id
    ops.transition(boss, gone, "confirmed", now=T0 + timedelta(minutes=1))
    ops.transition(boss, gone, "fixed", now=T0 + timedelta(minutes=2))
    assert ops.purge(timedelta(days=30), now=T0 + timedelta(days=29)) == 0
    assert ops.purge(timedelta(days=30), now=T0 + timedelta(days=31)) == 1
    assert [r.phone for r in ops.store.reports(gone)] == [None]
    assert [r.phone for r in ops.store.reports(kept)] == ["13900000001"]  # still open: kept


def test_the_public_list_reads_a_fixed_number_of_queries_however_long(world, connection):
    """Open311's list of up to 1,000 requests must not cost queries per row."""
    from sqlalchemy import event

    ops = world["ops"]
    for i, code in enumerate(("dirty", "no_paper", "no_water", "facility_broken", "safety", "other")):
        ops.transition(world["east_org_manager"], _report(world, code=code).work_order_id, "confirmed",
                       note="公开说明", public=True, now=T0 + timedelta(minutes=i + 1))
    counted = []

    def count(*_):
        counted.append(1)

    first = ops.list_work_orders(world["admin"], now=T0)[0].id
    event.listen(connection, "before_cursor_execute", count)
    try:
        counted.clear()
        one = ops.public_list(ids=[first])
        few = len(counted)
        counted.clear()
        six = ops.public_list()
        many = len(counted)
    finally:
        event.remove(connection, "before_cursor_execute", count)
    assert len(one) == 1 and len(six) == 6 and all(v.status_note == "公开说明" for v in six)
    assert many == few  # the same queries for six work orders as for one


# -- found in review: each failed on the code before its fix -----------------------------------


@pytest.mark.parametrize("field", ["description", "phone", "email"])
def test_control_characters_are_refused_before_the_database_sees_them(world, store, field):
    value = {"description": "no\x00water", "phone": "138\x0012345678", "email": "a\x00@b.cn"}[field]
    with pytest.raises(Invalid) as caught:
        _report(world, **{field: value})
    assert caught.value.field == field
    with store.reading() as conn:
        assert conn.execute(text("SELECT count(*) FROM report")).scalar() == 0
    assert _report(world, description="第一行\n第二行\t完").work_order_id  # line breaks and tabs are text


def test_a_station_moves_to_another_organisation_only_once_its_work_is_done(world):
    ops, boss = world["ops"], world["east_org_manager"]
    wo_id = _report(world).work_order_id
    with pytest.raises(Conflict, match="open work orders"):
        ops.accounts.assign_stations("west", "ops", ["a1"], manager_email="station_manager@west.example")
    assert ops.accounts.station_owner(world["ids"]["a1"])[0] == boss.organisation_id  # nothing moved
    ops.transition(boss, wo_id, "confirmed", now=T0 + timedelta(minutes=1))
    ops.transition(boss, wo_id, "fixed", now=T0 + timedelta(minutes=2))
    ops.accounts.assign_stations("west", "ops", ["a1"], manager_email="station_manager@west.example")
    # East's history stays east's: the new manager does not see it, east's managers still do.
    with pytest.raises(NotFound):
        ops.get_work_order(world["west_station_manager"], wo_id)
    assert ops.get_work_order(boss, wo_id).work_order.id == wo_id
    # A new report there goes to west.
    again = ops.store.work_order(_report(world, now=T0 + timedelta(minutes=3)).work_order_id)
    assert again.organisation_id == world["west_org_manager"].organisation_id


def test_reopening_when_another_work_order_is_open_for_the_problem_is_a_conflict(world):
    ops, boss = world["ops"], world["east_org_manager"]
    first = _report(world).work_order_id
    ops.transition(boss, first, "closed", reason="unable_to_fix", now=T0 + timedelta(minutes=1))
    second = _report(world, now=T0 + timedelta(minutes=2)).work_order_id
    assert second != first
    with pytest.raises(Conflict, match=f"#{second}"):
        ops.transition(boss, first, "reopened", now=T0 + timedelta(minutes=3))
    assert ops.store.work_order(first).state == "closed"


def test_a_closure_cannot_end_beyond_a_year(world):
    ops, manager = world["ops"], world["east_station_manager"]
    now = datetime.now(timezone.utc)
    for until in (now + timedelta(days=367), datetime(9999, 12, 31, 23, 59, tzinfo=timezone.utc), now):
        with pytest.raises(Invalid) as caught:
            ops.set_station_status(manager, world["ids"]["a1"], "temporarily_closed", reason="修", until=until, now=now)
        assert caught.value.field == "until"
    assert world["ops"].stations.get(world["ids"]["a1"]).closure_reason is None


def test_a_breach_is_marked_and_a_late_join_counted_only_once(world):
    store = world["ops"].store
    wo_id = _report(world).work_order_id
    assert store.mark_breached(wo_id, "response", T0 + timedelta(minutes=21))
    assert not store.mark_breached(wo_id, "response", T0 + timedelta(minutes=22))  # a second tick lost the race
    boss = world["east_org_manager"]
    world["ops"].transition(boss, wo_id, "confirmed", now=T0 + timedelta(minutes=23))
    world["ops"].transition(boss, wo_id, "fixed", now=T0 + timedelta(minutes=24))
    assert not store.count_report(wo_id, T0 + timedelta(minutes=25))  # fixed meanwhile: no "me too"
    assert store.work_order(wo_id).reports == 1


def test_two_amenities_marked_out_of_order_both_stay_marked(world):
    ops, manager, a1 = world["ops"], world["east_station_manager"], world["ids"]["a1"]
    ops.set_amenity(manager, a1, "hot_water", True)
    ops.set_amenity(manager, a1, "accessible_toilet", True)
    from app.stations.vocabulary import amenity_names

    assert set(amenity_names(ops.stations.get(a1).out_of_order)) == {"hot_water", "accessible_toilet"}
    ops.set_amenity(manager, a1, "hot_water", False)
    assert amenity_names(ops.stations.get(a1).out_of_order) == ["accessible_toilet"]


def test_a_failed_check_whose_category_the_organisation_removed_goes_to_other(world):
    from app.ops.categories import DEFAULT_CATEGORIES, category_to_dict
    from app.ops.checklists import checklist_for

    ops, manager, a1 = world["ops"], world["east_station_manager"], world["ids"]["a1"]
    ops.accounts.set_categories("east", [category_to_dict(c) for c in DEFAULT_CATEGORIES if c.code != "no_paper"])
    results = {item.code: item.code != "paper" for item in checklist_for("toilet")}
    done = ops.inspect(manager, a1, results, note="缺纸", now=T0)
    ((item, wo_id, _),) = done.failed
    assert item == "paper" and ops.store.work_order(wo_id).category == "other"


def test_a_failed_write_keeps_a_photo_file_another_report_uses(world, tmp_path):
    from app.ops.photos import PhotoStore
    from tests.images import make_jpeg_with_gps

    ops = world["ops"]
    ops.photos = PhotoStore(str(tmp_path))
    blob = make_jpeg_with_gps(64, 48)
    kept = _report(world, code="dirty", photos=(blob,))
    (attachment,) = ops.store.attachments(kept.work_order_id)
    # Another request stored the same picture as new, then its write failed.
    photo = ops.photos.ingest_all([blob])[0]
    from dataclasses import replace as changed

    ops._discard([changed(photo, created=True)])
    assert ops.photos.open(attachment.sha256) is not None


def test_overview_counts_every_work_order_not_just_a_page_of_them(world, connection):
    """The overview's (and the IOC page's) counts are the organisation's, however many work orders it
    has: they were counted over the store's first 500, so 501 old fixed ones hid today's fix."""
    ops, boss = world["ops"], world["east_org_manager"]
    old = _report(world, "no_water", now=T0 - timedelta(days=10))
    ops.transition(boss, old.work_order_id, "confirmed", now=T0 - timedelta(days=10))
    ops.transition(boss, old.work_order_id, "fixed", now=T0 - timedelta(days=9))
    columns = [c for c in connection.execute(text("SELECT * FROM work_order WHERE 1 = 0")).keys() if c != "id"]
    listed = ", ".join(columns)
    connection.execute(text(  # 600 more copies of the old fixed one, straight into the table
        f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600)"
        f" INSERT INTO work_order ({listed}) SELECT {listed} FROM work_order, n WHERE id = :id"),
        {"id": old.work_order_id})
    today = _report(world, "dirty", now=T0)
    ops.transition(boss, today.work_order_id, "confirmed", now=T0 + timedelta(minutes=1))
    ops.transition(boss, today.work_order_id, "fixed", now=T0 + timedelta(minutes=5))
    waiting = _report(world, "no_paper", now=T0 - timedelta(hours=3))  # past its 20-minute response clock
    summary = ops.overview(boss, T0 + timedelta(hours=1))
    assert (summary["open"], summary["overdue"], summary["fixed_today"]) == (1, 1, 1)
    assert [wo.id for wo in summary["open_orders"]] == [waiting.work_order_id]
