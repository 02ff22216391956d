"""The role × organisation matrix: every staff endpoint × every role × the caller's own object,
a colleague's object in the same organisation, and another organisation's object -> the expected
status, on both stores.

The expectations are written out below by hand from the rules of issue #8 (not computed from the
code under test): an object the caller may not see (another organisation's; for a station
manager or worker, one they neither manage nor were given) is 404; one they see but whose action
their role may not take is 403; no credentials is 401. The staff endpoints are read from the
contract registry, so an endpoint added without a row here fails ``test_the_matrix_covers_every_staff_endpoint``.

Callers (tests/staff_world.py): ``admin``; ``org_manager`` boss@east; ``station_manager`` zhang
(manages A1); ``worker`` wang (given the A1 work order). Targets: ``own`` = A1 and its work order,
``colleague`` = A2 (li's station) and its work order (zhao's), ``other`` = B1 (west) and its work order.
Each cell runs in a savepoint that is rolled back, so every cell starts from the same world.
"""
from __future__ import annotations

import time

import pytest

from app.api.contract import ENDPOINTS
from app.ops.checklists import checklist_for
from tests.staff_world import ADMIN, EAST_BOSS, WANG, ZHANG, build

ROLES = {"admin": ADMIN, "org_manager": EAST_BOSS, "station_manager": ZHANG, "worker": WANG}
TARGETS = ("own", "colleague", "other")
WORK_ORDER = {"own": "theirs", "colleague": "colleague", "other": "other"}
STATION = {"own": "a1", "colleague": "a2", "other": "b1"}
# Organisation-wide endpoints (and operators' live pushes, which name the organisation: east runs a1
# and a2, west b1): a colleague's station is in the caller's own organisation.
ORGANISATION = {"own": "east", "colleague": "east", "other": "west"}
KIND = {"a1": "rest_station", "a2": "toilet", "b1": "toilet"}


def _row(admin, org_manager, station_manager, worker):
    """Per role, the statuses for (own, colleague, other); a single status when there is no target."""
    return {"admin": admin, "org_manager": org_manager, "station_manager": station_manager, "worker": worker}


SEE_WORK_ORDER = _row((200, 200, 200), (200, 200, 404), (200, 404, 404), (200, 404, 404))
CHANGE_STATION = _row((200, 200, 200), (200, 200, 404), (200, 403, 404), (403, 403, 404))
# Any user of the operator's organisation may report its cabinets (a feed usually runs as a worker
# account); another organisation's operator is refused (403), whatever the role.
PUSH_LIVE = _row((200, 200, 200), (200, 200, 403), (200, 200, 403), (200, 200, 403))

# endpoint name -> {variant: (method, url template, JSON body or None, expected)}
MATRIX = {
    "ops_work_orders": {
        "list": ("GET", "/api/v1/ops/work-orders", None, _row(200, 200, 200, 200)),
    },
    "ops_work_order": {
        "detail": ("GET", "/api/v1/ops/work-orders/{work_order}", None, SEE_WORK_ORDER),
    },
    "ops_transition": {
        # Every role may start work on a work order it sees (all three are 'assigned').
        "start": ("POST", "/api/v1/ops/work-orders/{work_order}/transitions", {"to": "in_progress"},
                  SEE_WORK_ORDER),
        # Closing is for managers: a worker sees their own work order but may not close it.
        "close": ("POST", "/api/v1/ops/work-orders/{work_order}/transitions",
                  {"to": "closed", "reason": "duplicate"},
                  _row((200, 200, 200), (200, 200, 404), (200, 404, 404), (403, 404, 404))),
    },
    "ops_station_status": {
        "close": ("PATCH", "/api/v1/ops/stations/{station}/status",
                  {"status": "temporarily_closed", "reason": "管道维修"}, CHANGE_STATION),
    },
    "ops_station_amenity": {
        "broken": ("PATCH", "/api/v1/ops/stations/{station}/amenities",
                   {"amenity": "toilet", "out_of_order": True, "reason": "堵塞"}, CHANGE_STATION),
    },
    "ops_inspection": {
        "all passed": ("POST", "/api/v1/ops/inspections", "inspection", _row(
            (201, 201, 201), (201, 201, 404), (201, 403, 404), (403, 403, 404))),
    },
    "ops_not_inspected": {
        "today": ("GET", "/api/v1/ops/stations/not-inspected", None, _row(200, 200, 200, 403)),
    },
    "ops_assessment": {
        # Managers of every rank see their organisation's (a 站长 only their own figures, which
        # tests/test_assessment.py checks); workers none; another organisation's does not exist.
        "json": ("GET", "/api/v1/ops/assessment?org={org}&period=2026Q3", None,
                 _row((200, 200, 200), (200, 200, 404), (200, 200, 404), (403, 403, 404))),
        "xlsx": ("GET", "/api/v1/ops/assessment?org={org}&period=2026-10&format=xlsx", None,
                 _row((200, 200, 200), (200, 200, 404), (200, 200, 404), (403, 403, 404))),
    },
    "operator_station_status": {
        "report": ("PATCH", "/api/v1/operators/{operator}/stations/{source_id}/status", "live", PUSH_LIVE),
    },
    "operator_status_batch": {
        "report": ("POST", "/api/v1/operators/{operator}/status", "live batch", PUSH_LIVE),
    },
    # Sensor cleaning (issue #9 §4): a station's rule is its managers' to read and change.
    "ops_cleaning_rule": {
        "read": ("PATCH", "/api/v1/ops/stations/{station}/cleaning-rule", {}, CHANGE_STATION),
        "threshold": ("PATCH", "/api/v1/ops/stations/{station}/cleaning-rule", {"visitor_threshold": 80},
                      CHANGE_STATION),
    },
    # The operations centre: every role that looks after stations (each sees its own, see below).
    "ops_ioc": {
        "feed": ("GET", "/api/v1/ops/ioc", None, _row(200, 200, 200, 403)),
    },
    "ops_checklist": {
        "toilet": ("GET", "/api/v1/ops/checklists/toilet", None, _row(200, 200, 200, 200)),
    },
}

REFUSALS = {401: "unauthorized", 403: "forbidden", 404: "not_found"}

# What the lists hold for each role: scoping shows in the content, not the status.
LISTED_WORK_ORDERS = {"admin": {"own", "colleague", "other"}, "org_manager": {"own", "colleague"},
                      "station_manager": {"own"}, "worker": {"own"}}
STATIONS_TO_INSPECT = {"admin": {"own", "colleague", "other"}, "org_manager": {"own", "colleague"},
                       "station_manager": {"own"}}


def test_the_matrix_covers_every_staff_endpoint():
    staff = {e.name for e in ENDPOINTS if e.rule.startswith(("/ops/", "/operators/"))}
    assert staff == set(MATRIX)
    # Every staff endpoint asks who is calling, and only staff endpoints do.
    assert {e.name for e in ENDPOINTS if e.secured} == staff
    declared = {e.name: e.method for e in ENDPOINTS}
    for name, variants in MATRIX.items():
        assert {method for method, *_ in variants.values()} == {declared[name]}, name


@pytest.fixture
def world(store, ops):
    return build(store, ops)


def _request(client, world, method, template, body, target, headers):
    if target == "-":
        return client.open(template, method=method, json=body, headers=headers)
    url = template.format(work_order=world.work_order[WORK_ORDER[target]], station=world.station[STATION[target]],
                          org=ORGANISATION[target],
                          operator=ORGANISATION[target], source_id=STATION[target])
    if body in ("live", "live batch"):  # a cabinet's status as of now
        report = {"last_reported": int(time.time()), "num_batteries_available": 3}
        body = report if body == "live" else {"stations": [{"station_id": STATION[target], **report}]}
    if body == "inspection":  # every item of the target station's checklist, passed
        sid = world.station[STATION[target]]
        body = {"station_id": sid, "results": {item.code: True for item in checklist_for(KIND[STATION[target]])}}
    return client.open(url, method=method, json=body, headers=headers)


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_role_by_organisation(client, connection, world, name):
    observed, expected = {}, {}
    for variant, (method, template, body, table) in MATRIX[name].items():
        targeted = "{" in template or body == "inspection"
        for role, email in [("no credentials", None), *ROLES.items()]:
            for target in (TARGETS if targeted else ("-",)):
                want = 401 if email is None else (table[role][TARGETS.index(target)] if targeted else table[role])
                savepoint = connection.begin_nested()
                try:
                    answer = _request(client, world, method, template, body, target,
                                      world.bearer(email) if email else {})
                finally:
                    savepoint.rollback()
                cell = (variant, role, target)
                observed[cell], expected[cell] = answer.status_code, want
                if answer.status_code in REFUSALS:  # in the JSON envelope, with its code
                    assert answer.get_json()["error"]["code"] == REFUSALS[answer.status_code], cell
                assert answer.headers["Cache-Control"] == "no-store", cell
    differences = {cell: (observed[cell], want) for cell, want in expected.items() if observed[cell] != want}
    assert not differences, f"(observed, expected): {differences}"


@pytest.mark.parametrize("role", sorted(STATIONS_TO_INSPECT))
def test_the_ioc_feed_holds_the_stations_the_role_looks_after(client, world, role):
    feed = client.get("/api/v1/ops/ioc", headers=world.bearer(ROLES[role])).get_json()
    assert {s["id"] for s in feed["stations"]} == {world.station[STATION[t]] for t in STATIONS_TO_INSPECT[role]}


@pytest.mark.parametrize("role", sorted(LISTED_WORK_ORDERS))
def test_lists_hold_what_the_role_may_see(client, world, role):
    answer = client.get("/api/v1/ops/work-orders", headers=world.bearer(ROLES[role]))
    ids = {wo["id"] for wo in answer.get_json()["results"]}
    assert ids == {world.work_order[WORK_ORDER[t]] for t in LISTED_WORK_ORDERS[role]}
    todo = client.get("/api/v1/ops/stations/not-inspected", headers=world.bearer(ROLES[role]))
    if role in STATIONS_TO_INSPECT:
        assert {s["id"] for s in todo.get_json()["results"]} == {
            world.station[STATION[t]] for t in STATIONS_TO_INSPECT[role]}
    else:
        assert todo.status_code == 403
