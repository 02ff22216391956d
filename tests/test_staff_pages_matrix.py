"""The role × organisation matrix for the staff PAGES (/staff), as tests/test_ops_matrix.py is for
the staff JSON API: every page and form × every role, logged in through the login page (a session
cookie and CSRF tokens, as a browser does) × the caller's own object, a colleague's in the same
organisation and another organisation's -> the expected status, on both stores.

The expectations are written out by hand from the rules of issue #8, not computed from the code:
an object the caller may not see is 404, one they see but may not act on is 403; without a session
a page redirects to the login page (302). A successful form post redirects (303) or, for an
inspection, shows its result (200). The pages are read from the app's URL map, so a page added
without a row here fails ``test_the_matrix_covers_every_staff_page``. The world is
tests/staff_world.py's (the same callers and targets as the API matrix).
"""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest

from app.auth import limiter
from app.dbtime import utcnow
from app.ops.checklists import checklist_for
from app.ops.sensors import Reading, Sensors
from tests.staff_world import ADMIN, EAST_BOSS, PASSWORD, WANG, ZHANG, build

ROLES = {"admin": ADMIN, "org_manager": EAST_BOSS, "station_manager": ZHANG, "worker": WANG}
TARGETS = ("own", "colleague", "other")
WORK_ORDER = {"own": "theirs", "colleague": "colleague", "other": "other"}
STATION = {"own": "a1", "colleague": "a2", "other": "b1"}
KIND = {"a1": "rest_station", "a2": "toilet", "b1": "toilet"}
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _row(admin, org_manager, station_manager, worker):
    """Per role, the statuses for (own, colleague, other); a single status when there is no target."""
    return {"admin": admin, "org_manager": org_manager, "station_manager": station_manager, "worker": worker}


SEE_WORK_ORDER = _row((200, 200, 200), (200, 200, 404), (200, 404, 404), (200, 404, 404))
START_WORK_ORDER = _row((303, 303, 303), (303, 303, 404), (303, 404, 404), (303, 404, 404))
SEE_STATION_FORM = _row((200, 200, 200), (200, 200, 404), (200, 403, 404), (403, 403, 404))
CHANGE_STATION = _row((303, 303, 303), (303, 303, 404), (303, 403, 404), (403, 403, 404))
# The cleaner's check-in (issue #9 §4), where the QR code on a toilet's door points: whoever is on
# site for the station's organisation may confirm the cleaning (cleaners are workers, and a manager
# may clean too); another organisation's station is not seen. It shows its result (200).
CHECK_IN = _row((200, 200, 200), (200, 200, 404), (200, 200, 404), (200, 200, 404))

# (endpoint, method) -> {variant: (url template, form fields or None, expected)}
PAGES = {
    ("staff.queue", "GET"): {"queue": ("/staff/", None, _row(200, 200, 200, 200))},
    ("staff.overview", "GET"): {"overview": ("/staff/overview", None, _row(200, 200, 403, 403))},
    ("staff.assessment", "GET"): {
        # Managers and admins see an organisation's figures, a 站长 their own; workers none (403).
        # Another organisation's are for admins only: to anyone else it does not exist (404).
        "own organisation": ("/staff/assessment", None, _row(200, 200, 200, 403)),
        "other organisation": ("/staff/assessment?org=west", None, _row(200, 404, 404, 404)),
    },
    ("staff.work_order", "GET"): {
        "detail": ("/staff/work-orders/{work_order}", None, SEE_WORK_ORDER)},
    ("staff.transition", "POST"): {
        # Every role may start work on a work order it sees (all three are 'assigned').
        "start": ("/staff/work-orders/{work_order}/transition", {"to": "in_progress"}, START_WORK_ORDER)},
    ("staff.inspect", "GET"): {
        "form": ("/staff/stations/{station}/inspect", None, SEE_STATION_FORM)},
    ("staff.inspect", "POST"): {
        # An inspection shows its result on the spot rather than redirecting.
        "all passed": ("/staff/stations/{station}/inspect", "inspection", SEE_STATION_FORM)},
    ("staff.station_status", "GET"): {
        "form": ("/staff/stations/{station}/status", None, SEE_STATION_FORM)},
    ("staff.station_status", "POST"): {
        "close": ("/staff/stations/{station}/status", {"action": "close", "reason": "管道维修"}, CHANGE_STATION)},
    # The operations centre shows the stations the caller looks after: workers look after none.
    ("staff.ioc", "GET"): {"ioc": ("/staff/ioc", None, _row(200, 200, 200, 403))},
    ("staff.cleaned", "GET"): {"form": ("/staff/stations/{station}/cleaned", None, CHECK_IN)},
    ("staff.cleaned", "POST"): {"check in": ("/staff/stations/{station}/cleaned", {}, CHECK_IN)},
}


def _address() -> str:
    hexes = uuid.uuid4().hex[:24]
    return "2001:db8:" + ":".join(hexes[i:i + 4] for i in range(0, 24, 4))


def test_the_matrix_covers_every_staff_page(app):
    pages = {(rule.endpoint, method) for rule in app.url_map.iter_rules() if rule.endpoint.startswith("staff.")
             for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert pages == set(PAGES)


@pytest.fixture
def world(client, store, ops, monkeypatch):
    """``client`` keeps the app serving from this test's connection; each caller gets a client of its own."""
    monkeypatch.setattr(limiter, "_key_prefix", f"yizhan-test-{uuid.uuid4().hex}")
    return build(store, ops)


def _browser(app, email: str | None):
    """A client of its own, logged in through the login page (or not at all), with a CSRF token."""
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = _address()
    token = _TOKEN.search(browser.get("/staff/login").get_data(as_text=True)).group(1)
    if email is not None:
        done = browser.post("/staff/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
        assert done.status_code == 302, done.get_data(as_text=True)
        token = _TOKEN.search(browser.get("/staff/").get_data(as_text=True)).group(1)
    return browser, token


def _request(browser, token, world, method, template, fields, target):
    url = template if target == "-" else template.format(
        work_order=world.work_order[WORK_ORDER[target]], station=world.station[STATION[target]])
    if method == "GET":
        return browser.get(url)
    if fields == "inspection":  # every item of the target station's checklist, passed
        fields = {f"item-{item.code}": "pass" for item in checklist_for(KIND[STATION[target]])}
    return browser.post(url, data={**fields, "csrf_token": token})


@pytest.mark.parametrize("page", sorted(PAGES), ids=lambda p: f"{p[1]} {p[0]}")
def test_role_by_organisation(app, connection, world, page):
    browsers = {role: _browser(app, email) for role, email in [("no session", None), *ROLES.items()]}
    observed, expected = {}, {}
    for variant, (template, fields, table) in PAGES[page].items():
        targeted = "{" in template
        for role, (browser, token) in browsers.items():
            for target in (TARGETS if targeted else ("-",)):
                if role == "no session":
                    want = 302
                else:
                    want = table[role][TARGETS.index(target)] if targeted else table[role]
                savepoint = connection.begin_nested()
                try:
                    answer = _request(browser, token, world, page[1], template, fields, target)
                finally:
                    savepoint.rollback()
                cell = (variant, role, target)
                observed[cell], expected[cell] = answer.status_code, want
                if want == 302:
                    assert answer.headers["Location"].startswith("/staff/login"), cell
    differences = {cell: (observed[cell], want) for cell, want in expected.items() if observed[cell] != want}
    assert not differences, f"(observed, expected): {differences}"


@pytest.mark.parametrize("page", sorted(p for p in PAGES if p[1] == "POST"), ids=lambda p: p[0])
def test_forms_refuse_a_post_without_the_csrf_token(app, world, page):
    """The admin may post every form; without the session's token (a cross-site form) nothing is done."""
    browser, _ = _browser(app, ADMIN)
    # A1's visitors past its threshold, so a forged check-in would show (count reset, work order closed).
    a1, sensors, device = world.station["a1"], Sensors(world.ops), f"csrf-{uuid.uuid4().hex[:8]}"
    sensors.register(device, a1, threshold=2)
    cleaning = sensors.record(device, Reading(utcnow() - timedelta(seconds=5), 3))
    assert cleaning.opened
    (template, fields, _table), = PAGES[page].values()
    url = template.format(work_order=world.work_order["theirs"], station=a1)
    if fields == "inspection":
        fields = {f"item-{item.code}": "pass" for item in checklist_for(KIND["a1"])}
    forged = browser.post(url, data=fields)
    assert forged.status_code == 400
    assert world.ops.stations.get(a1).closure_reason is None
    assert world.ops.stations.get(a1).last_inspected_at is None
    admin = world.ops.accounts.user_by_email(ADMIN)
    assert world.ops.get_work_order(admin, world.work_order["theirs"]).work_order.state == "assigned"
    assert world.ops.get_work_order(admin, cleaning.cleaning_work_order_id).work_order.state == "new"
    assert sensors.rule(a1).visitors_since_cleaning == 3
