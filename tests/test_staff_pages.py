"""The staff pages (/staff) on both stores, through the real app: logged in through app.auth's
login page, CSRF on, photos in this test's own directory, the database this test's rolled-back
transaction. The river-side organisation 河东管养所 ("east") has two toilets, each with its own
站长; 河西管养所 ("west") has one; small enough to check by hand.
"""
from __future__ import annotations

import io
import re
import uuid
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from app.auth import limiter
from app.geo.geodesic import distance_m
from app.ops.checklists import checklist_for
from app.dbtime import utcnow
from app.ops.photos import PhotoStore
from app.ops.service import ReportInput
from app.staff import plot as maps
from app.stations.vocabulary import amenity_mask
from tests.helpers import station
from tests.images import make_jpeg_with_gps

PASSWORD = "correct horse battery"
A1 = (27.8300, 113.1500)
FIX_NOTE = "已恢复供水"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_ROW = re.compile(r'<li id="wo-(\d+)" class="wo( overdue)?">')


def _address() -> str:
    """A documentation-range IPv6 address of its own: login attempts are counted per address."""
    hexes = uuid.uuid4().hex[:24]
    return "2001:db8:" + ":".join(hexes[i:i + 4] for i in range(0, 24, 4))


@pytest.fixture
def world(client, app, store, tmp_path, monkeypatch):
    """Stations, organisations and staff. The service is the one requests use (the client's, on
    this test's connection), not the ``ops`` fixture: that one keeps an app context pushed, whose
    ``g`` would hand every browser the first one's CSRF token."""
    monkeypatch.setattr(limiter, "_key_prefix", f"yizhan-test-{uuid.uuid4().hex}")
    ops = app.extensions["yizhan_ops"]
    ops.photos = PhotoStore(tmp_path / "uploads")
    store.upsert([
        station("a1", *A1, "toilet", yes=("hot_water", "accessible_toilet"), hours="24/7", source="ops",
                name="河东公厕 A1"),
        station("a2", 27.8400, 113.1600, "toilet", hours="24/7", source="ops", name="河东公厕 A2"),
        station("w1", 27.9000, 113.2000, "toilet", hours="24/7", source="ops", name="河西公厕 W1"),
    ])
    with store.reading() as conn:
        ids = dict(conn.execute(text("SELECT source_id, id FROM station WHERE source = 'ops'")).all())
    acc = ops.accounts
    acc.create_organisation("east", "河东管养所")
    acc.create_organisation("west", "河西管养所")
    people = {
        "boss": acc.create_user("boss@east.example", PASSWORD, "org_manager", "east"),
        "li": acc.create_user("li@east.example", PASSWORD, "station_manager", "east"),
        "wang": acc.create_user("wang@east.example", PASSWORD, "station_manager", "east"),
        "zhao": acc.create_user("zhao@east.example", PASSWORD, "worker", "east"),
        "west_worker": acc.create_user("worker@west.example", PASSWORD, "worker", "west"),
    }
    acc.assign_stations("east", "ops", ["a1"], manager_email="li@east.example")
    acc.assign_stations("east", "ops", ["a2"], manager_email="wang@east.example")
    acc.assign_stations("west", "ops", ["w1"])
    return {"ops": ops, "ids": ids, "app": app, "store": store, **people}


def _log_in(world, who: str):
    """A browser of its own, logged in through the login page."""
    browser = world["app"].test_client()
    browser.environ_base["REMOTE_ADDR"] = _address()
    page = browser.get("/staff/login").get_data(as_text=True)
    done = browser.post("/staff/login", data={"email": world[who].email, "password": PASSWORD,
                                              "csrf_token": _TOKEN.search(page).group(1)})
    assert done.status_code == 302, done.get_data(as_text=True)
    return browser


def _report(world, code="no_water", sid="a1", now=None, **kw):
    return world["ops"].submit_report(ReportInput(category=code, station_id=world["ids"][sid], **kw), now)


def _page(browser, path):
    page = browser.get(path)
    return page, page.get_data(as_text=True)


def _token(html: str) -> str:
    return _TOKEN.search(html).group(1)


def _post_transition(browser, wo_id, to, *, token=None, photos=(), **fields):
    if token is None:
        token = _token(_page(browser, f"/staff/work-orders/{wo_id}")[1])
    data = {"to": to, **fields}
    if token:
        data["csrf_token"] = token
    if photos:
        data["photo"] = [(io.BytesIO(blob), f"fix{i}.jpg", "image/jpeg") for i, blob in enumerate(photos)]
    return browser.post(f"/staff/work-orders/{wo_id}/transition", data=data, content_type="multipart/form-data")


def _inspection(world, browser, sid, failed, lat, lng, photos=None):
    station_id = world["ids"][sid]
    html = _page(browser, f"/staff/stations/{station_id}/inspect")[1]
    kind = world["store"].get(station_id).kind
    data = {f"item-{item.code}": "fail" if item.code in failed else "pass" for item in checklist_for(kind)}
    data.update(csrf_token=_token(html), lat=f"{lat:.6f}", lng=f"{lng:.6f}", note="")
    for code, blob in (photos or {}).items():
        data[f"photo-{code}"] = (io.BytesIO(blob), f"{code}.jpg", "image/jpeg")
    return browser.post(f"/staff/stations/{station_id}/inspect", data=data, content_type="multipart/form-data")


# -- login --------------------------------------------------------------------------------------


def test_every_page_sends_a_stranger_to_the_login(world, client):
    wo = _report(world).work_order_id
    a1 = world["ids"]["a1"]
    for path in ("/staff/", f"/staff/work-orders/{wo}", f"/staff/stations/{a1}/inspect",
                 f"/staff/stations/{a1}/status", "/staff/overview"):
        answer = client.get(path)
        assert answer.status_code == 302, path
        location = urlsplit(answer.headers["Location"])
        assert location.path == "/staff/login" and parse_qs(location.query) == {"next": [path]}
    # The login then leads back to the page asked for.
    page = client.get(f"/staff/login?next=/staff/work-orders/{wo}").get_data(as_text=True)
    done = client.post(f"/staff/login?next=/staff/work-orders/{wo}",
                       data={"email": "li@east.example", "password": PASSWORD, "csrf_token": _token(page),
                             "next": f"/staff/work-orders/{wo}"})
    assert done.status_code == 302 and done.headers["Location"] == f"/staff/work-orders/{wo}"
    assert client.get(f"/staff/work-orders/{wo}").status_code == 200


# -- my queue --------------------------------------------------------------------------------------


def test_the_queue_shows_my_open_work_orders_by_due_time_with_the_overdue_marked(world):
    now = utcnow()
    # no_water: respond within 20 minutes; reported two hours ago and untouched, it is overdue.
    late = _report(world, "no_water", now=now - timedelta(hours=2)).work_order_id
    fresh = _report(world, "dirty", now=now - timedelta(minutes=1)).work_order_id
    _report(world, "dirty", now=now - timedelta(minutes=1), phone="13812345678")  # "me too": 2 reports
    elsewhere = _report(world, "no_water", sid="a2", now=now - timedelta(hours=3)).work_order_id  # wang's
    other_org = _report(world, "no_water", sid="w1", now=now - timedelta(hours=3)).work_order_id

    page, html = _page(_log_in(world, "li"), "/staff/")
    assert page.status_code == 200
    assert _ROW.findall(html) == [(str(late), " overdue"), (str(fresh), "")]
    assert f"wo-{elsewhere}" not in html and f"wo-{other_org}" not in html
    row = html[html.index(f'id="wo-{late}"'):html.index(f'id="wo-{fresh}"')]
    assert "已超时" in row and "无水/无热水" in row and "河东公厕 A1" in row and "新报告" in row
    zone = ZoneInfo(world["ops"].accounts.organisation(world["li"].organisation_id).timezone)
    due = world["ops"].store.work_order(late).response_due_at.astimezone(zone)
    assert f">{due:%Y-%m-%d %H:%M}</time>" in row  # the due time on the organisation's wall clock
    assert "2 人报告" in html[html.index(f'id="wo-{fresh}"'):]
    # The 站长's own station, not inspected today, with its inspection form; not wang's.
    assert f'href="/staff/stations/{world["ids"]["a1"]}/inspect"' in html
    assert f'/staff/stations/{world["ids"]["a2"]}/inspect' not in html
    assert page.headers["Cache-Control"] == "no-store"
    assert _TOKEN.search(html)  # the logout form carries the token too
    # Nothing from another host: every link, source and action is a path on this site.
    assert not re.search(r"https?://", html)
    assert all(url.startswith("/") for url in re.findall(r'(?:href|src|action)="([^"]*)"', html))


def test_query_names_that_clash_with_the_path_are_ignored(world):
    wo = _report(world).work_order_id
    browser = _log_in(world, "li")
    assert browser.get(f"/staff/work-orders/{wo}?wo_id={wo}&_scheme=javascript").status_code == 200


def test_english_labels_with_lang_en(world):
    _report(world, "no_water", now=utcnow() - timedelta(hours=2))
    browser = _log_in(world, "li")
    page, html = _page(browser, "/staff/?lang=en")
    assert '<html lang="en">' in html and "<h1>My queue</h1>" in html
    assert '<span class="flag">Overdue</span>' in html and "No water or hot water" in html
    assert "Stations not inspected today" in html and "State: New" in html
    assert re.search(r'href="/staff/work-orders/\d+\?lang=en"', html)  # links keep the language
    assert 'href="/staff/?lang=zh-CN"' in html
    zh = _page(browser, "/staff/")[1]
    assert '<html lang="zh-CN">' in zh and "<h1>我的工单</h1>" in zh and "已超时" in zh


# -- a work order ----------------------------------------------------------------------------------


def test_a_station_manager_assigns_and_fixes_with_a_public_note_and_a_photo(world):
    ops = world["ops"]
    done = _report(world, "no_water", phone="13812345678", description="龙头没水")
    browser = _log_in(world, "li")
    page, html = _page(browser, f"/staff/work-orders/{done.work_order_id}")
    assert page.status_code == 200
    assert "龙头没水" in html and "13812345678" in html  # the station's manager may call back
    assert re.findall(r'<button type="submit" name="to" value="(\w+)"', html) == ["confirmed", "assigned", "closed"]
    assert re.findall(r'<option value="([^"]+)"', html)[:4] == [
        "boss@east.example", "li@east.example", "wang@east.example", "zhao@east.example"]
    assert re.search(r'<option value="li@east.example" selected>', html)  # themself by default
    assert "<svg" in html and 'href="/?lat=27.830000&amp;lng=113.150000"' in html

    assigned = _post_transition(browser, done.work_order_id, "assigned", assignee="li@east.example")
    assert assigned.status_code == 303
    assert assigned.headers["Location"] == f"/staff/work-orders/{done.work_order_id}"
    fixed = _post_transition(browser, done.work_order_id, "fixed", note=FIX_NOTE, public="1",
                             photos=[make_jpeg_with_gps()])
    assert fixed.status_code == 303

    wo = ops.store.work_order(done.work_order_id)
    assert (wo.state, wo.assignee_email) == ("fixed", "li@east.example")
    events = ops.store.events(wo.id)
    assert [(e.event.to_state, e.event.actor, e.event.note, e.event.public) for e in events[1:]] == [
        ("assigned", "li@east.example", "", False), ("fixed", "li@east.example", FIX_NOTE, True)]
    view = ops.track(done.token)  # what the reporter's tracking link shows
    assert view.state == "fixed" and view.status_note == FIX_NOTE and len(view.photos) == 1
    assert ops.photos.open(view.photos[0]) is not None

    html = _page(browser, f"/staff/work-orders/{done.work_order_id}")[1]
    assert 'class="state state-fixed">已修复' in html and FIX_NOTE in html
    assert f'<img src="/media/{view.photos[0]}"' in html and "报告人可见" in html
    assert re.findall(r'name="to" value="(\w+)"', html) == ["reopened", "closed"]
    assert re.findall(r'<select id="reason" name="reason">\s*<option value="(\w+)"', html) == ["resolved"]
    # The fix photo is public: the reporter (anyone) may open it.
    assert world["app"].test_client().get(f"/media/{view.photos[0]}").status_code == 200


def test_a_form_without_its_csrf_token_is_refused(world):
    wo_id = _report(world).work_order_id
    browser = _log_in(world, "li")
    for token in ("", "not-the-token"):
        refused = _post_transition(browser, wo_id, "confirmed", token=token)
        assert refused.status_code == 400
        assert "页面已过期" in refused.get_data(as_text=True)
    a1 = world["ids"]["a1"]
    assert browser.post(f"/staff/stations/{a1}/status", data={"action": "reopen"}).status_code == 400
    assert world["ops"].store.work_order(wo_id).state == "new"
    assert len(world["ops"].store.events(wo_id)) == 1


def test_a_move_the_state_no_longer_allows_is_shown_beside_the_form(world):
    wo_id = _report(world).work_order_id
    browser = _log_in(world, "li")
    token = _token(_page(browser, f"/staff/work-orders/{wo_id}")[1])
    assert _post_transition(browser, wo_id, "confirmed", token=token).status_code == 303
    again = _post_transition(browser, wo_id, "confirmed", token=token, note="第二次")  # a stale page
    html = again.get_data(as_text=True)
    assert again.status_code == 409 and "工单状态已经变化" in html and "第二次</textarea>" in html
    english = browser.post(f"/staff/work-orders/{wo_id}/transition?lang=en",
                           data={"to": "closed", "csrf_token": token, "reason": "resolved"})
    assert english.status_code == 409 and "cannot close as &#39;resolved&#39; from &#39;confirmed&#39;" in \
        english.get_data(as_text=True)
    assert [e.event.to_state for e in world["ops"].store.events(wo_id)] == ["new", "confirmed"]


def test_workers_see_only_their_own_work_orders_without_phones(world):
    mine = _report(world, phone="13812345678").work_order_id
    other_org = _report(world, sid="w1").work_order_id
    boss = _log_in(world, "li")
    assert _post_transition(boss, mine, "assigned", assignee="zhao@east.example").status_code == 303

    zhao = _log_in(world, "zhao")
    page, html = _page(zhao, f"/staff/work-orders/{mine}")
    assert page.status_code == 200 and "13812345678" not in html  # workers never see reporters' phones
    assert re.findall(r'name="to" value="(\w+)"', html) == ["in_progress", "fixed"]
    assert 'name="assignee"' not in html
    assert _ROW.findall(_page(zhao, "/staff/")[1]) == [(str(mine), "")]
    assert "今日未巡查的站点" not in _page(zhao, "/staff/")[1]  # workers look after no station
    assert zhao.get(f"/staff/work-orders/{other_org}").status_code == 404

    west = _log_in(world, "west_worker")
    missing = west.get(f"/staff/work-orders/{mine}")
    assert missing.status_code == 404 and "13812345678" not in missing.get_data(as_text=True)
    assert _post_transition(west, mine, "fixed", token=_token(_page(west, "/staff/")[1])).status_code == 404
    assert west.get("/staff/overview").status_code == 403
    assert west.get(f"/staff/stations/{world['ids']['a1']}/inspect").status_code == 404
    assert zhao.get(f"/staff/stations/{world['ids']['a1']}/inspect").status_code == 403
    assert world["ops"].store.work_order(mine).state == "assigned"


# -- the daily inspection ----------------------------------------------------------------------------


def test_an_inspection_with_two_failed_items_opens_two_work_orders(world):
    store, ops, a1 = world["store"], world["ops"], world["ids"]["a1"]
    browser = _log_in(world, "li")
    page, html = _page(browser, f"/staff/stations/{a1}/inspect")
    assert page.status_code == 200
    items = checklist_for("toilet")
    assert re.findall(r'<fieldset id="item-(\w+)">', html) == [item.code for item in items]
    assert len(re.findall(r'value="pass" checked', html)) == len(items)  # pass by default
    # The position script is a file of this site: no inline script, and the policy allows no other.
    assert '<script src="/static/staff/inspect.js" defer></script>' in html and "<script>" not in html
    assert "script-src 'self';" in page.headers["Content-Security-Policy"]
    assert 'name="lat" id="lat" value=""' in html  # filled by the script, if the phone allows

    result = _inspection(world, browser, "a1", {"paper", "water"}, *A1, photos={"paper": make_jpeg_with_gps()})
    html = result.get_data(as_text=True)
    assert result.status_code == 200 and "巡查已记录" in html and "您距站点 0 米" in html
    links = re.findall(r'<li><a href="/staff/work-orders/(\d+)"><b>([^<]+)</b>', html)
    assert [name for _, name in links] == ["厕纸充足", "供水正常"]
    orders = {wo.id: wo for wo in ops.list_work_orders(world["li"], status="open")}
    assert sorted(orders[int(i)].category for i, _ in links) == ["no_paper", "no_water"]
    assert all(orders[int(i)].station_id == a1 and orders[int(i)].source == "inspection" for i, _ in links)
    paper = int(links[0][0])
    assert len(ops.store.attachments(paper)) == 1  # the item's photo went with its work order
    assert store.get(a1).last_inspected_at is not None
    assert f"/staff/stations/{a1}/inspect" not in _page(browser, "/staff/")[1]  # inspected today


def test_an_inspection_a_kilometre_away_is_flagged(world):
    a1 = world["ids"]["a1"]
    lat = A1[0] + 0.009  # about 1 km north
    expected = distance_m(lat, A1[1], *A1)
    result = _inspection(world, _log_in(world, "li"), "a1", set(), lat, A1[1])
    html = result.get_data(as_text=True)
    assert result.status_code == 200 and "全部合格" in html
    assert 990 < expected < 1010 and f"您距站点 {round(expected):,} 米，超过 200 米" in html
    with world["store"].reading() as conn:
        far, distance = conn.execute(text("SELECT far, distance_m FROM inspection WHERE station_id = :s"),
                                     {"s": a1}).one()
    assert bool(far) and distance == pytest.approx(expected)


# -- station status ------------------------------------------------------------------------------------


def test_a_station_manager_closes_reopens_and_marks_an_amenity_out_of_order(world):
    store, a1 = world["store"], world["ids"]["a1"]
    browser = _log_in(world, "li")
    page, html = _page(browser, f"/staff/stations/{a1}/status?lang=en")
    assert page.status_code == 200 and 'id="open-state" class="state state-fixed">Open' in html
    assert re.findall(r'name="amenity" value="([\w:]+)"', html) == [
        "toilet:out", "accessible_toilet:out", "hot_water:out"]
    token = _token(html)
    refused = browser.post(f"/staff/stations/{a1}/status?lang=en",
                           data={"csrf_token": token, "action": "close", "reason": ""})
    assert refused.status_code == 400 and "closing a station needs a reason" in refused.get_data(as_text=True)
    tomorrow = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=1)).replace(second=0, microsecond=0)
    closed = browser.post(f"/staff/stations/{a1}/status?lang=en",
                          data={"csrf_token": token, "action": "close", "reason": "管道维修",
                                "until": tomorrow.strftime("%Y-%m-%dT%H:%M")})
    assert closed.status_code == 303 and closed.headers["Location"] == f"/staff/stations/{a1}/status?saved=1&lang=en"
    st = store.get(a1)
    assert st.closure_reason == "管道维修" and st.closure_until == tomorrow
    html = _page(browser, closed.headers["Location"])[1]
    assert f"Temporarily closed: 管道维修 · until {tomorrow:%Y-%m-%d %H:%M}" in html and "Saved." in html
    broken = browser.post(f"/staff/stations/{a1}/status", data={"csrf_token": token, "action": "amenity",
                                                                "amenity": "hot_water:out", "amenity_reason": ""})
    assert broken.status_code == 303 and store.get(a1).out_of_order == amenity_mask(("hot_water",))
    assert 'name="amenity" value="hot_water:in"' in _page(browser, f"/staff/stations/{a1}/status")[1]
    reopened = browser.post(f"/staff/stations/{a1}/status", data={"csrf_token": token, "action": "reopen"})
    assert reopened.status_code == 303 and store.get(a1).closure_reason is None
    # Another 站长's station: theirs to change, not li's.
    assert browser.get(f"/staff/stations/{world['ids']['a2']}/status").status_code == 403


# -- the overview ---------------------------------------------------------------------------------------


def test_the_overview_counts_and_maps_the_organisations_open_work_orders(world):
    now = utcnow()
    late = _report(world, "no_water", now=now - timedelta(hours=2)).work_order_id
    fresh = _report(world, "dirty", sid="a2", now=now).work_order_id
    west = _report(world, "no_water", sid="w1", now=now - timedelta(hours=2)).work_order_id
    page, html = _page(_log_in(world, "boss"), "/staff/overview")
    assert page.status_code == 200
    counts = dict(re.findall(r'<div id="count-(\w+)"[^>]*><b>(\d+)</b>', html))
    assert counts == {"open": "2", "overdue": "1", "fixed": "0"}
    assert _ROW.findall(html) == [(str(late), " overdue"), (str(fresh), "")]
    assert f"wo-{west}" not in html and "河西" not in html
    # The map: one dot per open work order, linking to it, the overdue one red.
    dots = re.findall(r'<a href="/staff/work-orders/(\d+)"><circle class="(\w+)"', html)
    assert sorted(dots) == sorted([(str(late), "overdue"), (str(fresh), "report")])
    assert "27.83000, 113.15000" in html  # positions listed
    for who in ("li", "zhao"):
        refused = _log_in(world, who).get("/staff/overview")
        assert refused.status_code == 403 and "您无权" in refused.get_data(as_text=True)


# -- the tile-less map ----------------------------------------------------------------------------------


def test_the_plot_keeps_true_distances_on_a_metre_grid():
    lat, lng = 30.0, 120.0
    per_lng = distance_m(lat, lng - 0.005, lat, lng + 0.005) / 0.01
    half = 500 / per_lng  # 500 m each side of the middle
    both = maps.plot([maps.Point(lat, lng - half, "west"), maps.Point(lat, lng + half, "east")])
    # 1,000 m across 320 - 2×16 px: 0.288 px/m (north-south only needs the 200 m minimum).
    assert [(d.x, d.y) for d in both.dots] == [(16.0, 100.0), (304.0, 100.0)]
    assert both.step_m == 200  # 320 px / 0.288 / 6 ≈ 185 m, rounded up to 1-2-5
    assert both.grid_x[both.grid_x.index(160.0) + 1] == pytest.approx(160 + 200 * 0.288, abs=0.1)
    alone = maps.plot([maps.Point(lat, lng, "here")])
    assert [(d.x, d.y) for d in alone.dots] == [(160.0, 100.0)] and alone.step_m == 100
    assert maps.plot([]) is None
    assert [maps.nice_step(v) for v in (0.5, 7, 10, 11, 180, 501)] == [1, 10, 10, 20, 200, 1000]


# -- the public's check-ins ------------------------------------------------------------------


def test_station_page_counts_the_publics_check_ins_of_the_last_week(world):
    from app.ops.checkins import CheckIns

    checkins = CheckIns(world["ops"])
    now = utcnow()
    a1, a2 = world["ids"]["a1"], world["ids"]["a2"]
    checkins.check_in(a1, "dev-1", "worked", now - timedelta(hours=1))
    checkins.check_in(a1, "dev-1", "worked", now - timedelta(minutes=30))  # one device twice
    checkins.check_in(a1, "dev-2", "worked", now - timedelta(minutes=20))
    checkins.check_in(a1, "dev-3", "not_found", now - timedelta(days=2))
    checkins.check_in(a1, "dev-4", "closed", now - timedelta(days=8))  # older than a week: not counted
    checkins.check_in(a2, "dev-5", "closed", now - timedelta(hours=2))  # another station
    li = _log_in(world, "li")
    page, html = _page(li, f"/staff/stations/{a1}/status")
    assert page.status_code == 200
    counts = dict(re.findall(r"<li>(\S+) <b>(\d+)</b>", html.split('class="checkin-counts"')[1].split("</ul>")[0]))
    assert counts == {"正常使用": "3", "没开门": "0", "没找到": "1", "信息有误": "0"}
    assert "2 台设备" in html and "1 台设备" in html
    west = _log_in(world, "west_worker")
    assert west.get(f"/staff/stations/{a1}/status").status_code == 404  # another organisation's station
