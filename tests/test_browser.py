"""The web app as a person uses it: Debian's Chromium, driven by Playwright, at 360×640.

A live server (werkzeug, in a thread) serves the real app on an embedded SQLite store
holding the river town (tests/osm_fixtures.py): its network and stations, plus a few
more stations with amenities. WeChat's API is a local stand-in; WeChat's JS-SDK script
is replaced, inside the browser, by a recording stub of the `wx` object.
Screenshots of the main screens go to test-artifacts/.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import replace
import tempfile
import threading
import uuid
from urllib.parse import urlparse

import pytest
from flask_migrate import upgrade
from sqlalchemy import text
from werkzeug.serving import make_server

from app import create_app
from app.geo.coordsys import from_wgs84, to_wgs84
from app.network import service
from app.wechat import sign
from tests import osm_fixtures as town
from tests import wechat_standin
from tests.helpers import station

pytestmark = pytest.mark.browser

ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "test-artifacts")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
JSSDK_URL = "https://res.wx.qq.com/open/js/jweixin-1.6.0.js"
# The stub WeChat client: records calls, answers getLocation with a GCJ-02 position.
WX_STUB = """
window.__wx = [];
window.wx = {
  config: function (c) { __wx.push(['config', c]); },
  ready: function (f) { setTimeout(f, 0); },
  error: function () {},
  getLocation: function (o) { __wx.push(['getLocation', o.type]); o.success({latitude: %f, longitude: %f}); },
  openLocation: function (o) { __wx.push(['openLocation', o]); },
  updateAppMessageShareData: function (o) { __wx.push(['share', o]); },
  updateTimelineShareData: function (o) { __wx.push(['timeline', o]); }
};
"""
def _blank_tile() -> bytes:
    """A 256×256 light-grey PNG, standing in for a map tile (no internet here)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes((236, 240, 238)) * 256 for _ in range(256))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 256, 256, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


TINY_PNG = _blank_tile()


@pytest.fixture(scope="module")
def live(river_town_pbf):
    """The app on a real port, with the river town loaded."""
    wechat_url, wechat_server = wechat_standin.start()
    tmp = tempfile.mkdtemp(prefix="yizhan-browser-")
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/browser.sqlite3",
        "YIZHAN_TILES": "osm",
        "WECHAT_APP_ID": "wxbrowser", "WECHAT_APP_SECRET": wechat_standin.SECRET,
        "WECHAT_API_BASE": wechat_url, "WECHAT_JSSDK_URL": JSSDK_URL, "REDIS_URL": "",
    })
    with app.app_context():
        upgrade()
    store = app.extensions["yizhan_store"]
    service.import_network(store, river_town_pbf)
    store.upsert([
        station("baby", *town.at(0.1, 1.2), yes=("baby_change", "hot_water"), hours="24/7", name="母婴驿站"),
        station("rest", *town.at(-0.1, 2.0), "rest_station", yes=("microwave", "hot_water"), hours="Mo-Su 00:00-01:00",
                name="户外劳动者驿站"),
    ])
    store.upsert([replace(station("swap", *town.at(0.1, 3.0), "battery_swap", hours="24/7", name="换电柜"),
                          batteries_available=6)])
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"url": f"http://127.0.0.1:{server.server_port}", "app": app, "store": store}
    server.shutdown()
    wechat_server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make setup` (it installs Debian's chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
            "--no-first-run", "--disable-component-update", "--disable-sync",
        ])
        yield b
        b.close()


def new_page(browser, lat=None, lng=None, locale="zh-CN", user_agent=None, offline_tiles=True):
    options = {"viewport": {"width": 360, "height": 640}, "locale": locale, "device_scale_factor": 2}
    if lat is not None:
        options.update(geolocation={"latitude": lat, "longitude": lng}, permissions=["geolocation"])
    if user_agent:
        options["user_agent"] = user_agent
    context = browser.new_context(**options)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    # A script, style, tile or fetch the Content-Security-Policy refused counts as an error too. (So
    # wait_for_function gets functions, "() => …": a bare expression is run with eval, which the
    # page's policy refuses as it should.)
    page.on("console", lambda m: page.errors.append(m.text) if "Content Security Policy" in m.text else None)
    if offline_tiles:  # no internet here: tile hosts answer with a blank tile
        page.route("https://tile.openstreetmap.org/**", _tile)
    return page


def _tile(route):
    route.fulfill(body=TINY_PNG, content_type="image/png", headers={"Access-Control-Allow-Origin": "*"})


def shot(page, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"))


def names(page):
    page.wait_for_selector(".item")
    return page.locator(".item-name").all_inner_texts()


def test_nearest_station_is_listed_and_on_the_map(live, browser):
    page = new_page(browser, *town.P)
    page.goto(live["url"] + "/")
    listed = names(page)
    # T (the fountain) is 10 m from P; the baby-care station 110 m up the west street.
    assert listed[0] == "West fountain" and listed[1] == "母婴驿站"
    assert "米" in page.locator(".item-meta").first.inner_text()
    assert "6 块电池可换" in page.inner_text("#list")  # the battery-swap cabinet's reported stock
    # every listed station is on the map (as a pin, or inside a cluster at this zoom)
    assert len(page.evaluate("Yizhan.markers()")) == len(listed)
    assert page.locator(".leaflet-marker-icon").count() >= 2
    assert "lat=" in page.url  # the state is in the URL
    shot(page, "01-nearest")
    assert page.errors == []


def test_a_filter_narrows_the_list(live, browser):
    page = new_page(browser, *town.P)
    page.goto(live["url"] + "/")
    before = names(page)
    page.get_by_role("button", name="母婴室 / 换尿布台", exact=True).click()
    page.wait_for_function("() => document.querySelectorAll('.item').length < %d" % len(before))
    assert names(page) == ["母婴驿站"]
    assert "amenity=baby_change" in page.url
    page.get_by_role("button", name="微波炉", exact=True).click()  # baby change AND microwave: nothing nearby
    page.wait_for_selector("#empty:not([hidden])")
    assert "母婴室" in page.inner_text("#empty") and "微波炉" in page.inner_text("#empty")
    shot(page, "02-filter-empty")


def test_the_15_minute_toggle_draws_the_network_area(live, browser):
    page = new_page(browser, *town.P)
    page.goto(live["url"] + "/")
    names(page)
    page.get_by_role("button", name="步行", exact=True).click()
    page.wait_for_selector(".leaflet-overlay-pane path")
    page.wait_for_selector("#circle-note:not([hidden])")
    assert "实际道路" in page.inner_text("#circle-note")
    assert "East toilet" not in names(page)  # across the river: 16 minutes round by the bridge
    assert "circle=walk15" in page.url
    # ...but the map still shows it, with every other station in view
    east = [s for s in live["store"].within(_world(), _all(), 100)[0] if s.name == "East toilet"][0]
    page.wait_for_function(f"() => Yizhan.viewMarkers().some(m => m.id === {east.id})")
    shot(page, "03-circle-walk")


def test_a_station_deep_link_opens_its_sheet(live, browser):
    store = live["store"]
    east = [s for s in store.within(_world(), _all(), 100)[0] if s.name == "East toilet"][0]
    page = new_page(browser)  # a QR code scan: no location needed
    page.goto(f"{live['url']}/s/{east.id}")
    page.wait_for_selector("#sheet:not([hidden])")
    assert page.inner_text("#sheet-title") == "East toilet"
    assert "East toilet" in page.title()
    assert page.get_attribute('meta[property="og:title"]', "content").startswith("East toilet")
    assert "无障碍厕所" in page.inner_text("#sheet-content")  # wheelchair=yes
    hrefs = page.locator(".navs a").evaluate_all("els => els.map(e => e.href)")
    g_lat, g_lng = from_wgs84(east.lat, east.lng, "gcj02")
    b_lat, b_lng = from_wgs84(east.lat, east.lng, "bd09")
    amap = [h for h in hrefs if "uri.amap.com" in h][0]
    lng_s, lat_s = amap.split("to=")[1].split(",")[:2]
    assert abs(float(lat_s) - g_lat) < 1e-6 and abs(float(lng_s) - g_lng) < 1e-6
    baidu = [h for h in hrefs if "api.map.baidu.com" in h][0]
    lat_b, lng_b = baidu.split("latlng:")[1].split("|")[0].split(",")
    assert abs(float(lat_b) - b_lat) < 1e-6 and abs(float(lng_b) - b_lng) < 1e-6
    assert not any("apple.com" in h for h in hrefs)  # inside mainland China
    shot(page, "04-station-sheet")
    rest = [s for s in store.within(_world(), _all(), 100)[0] if s.source_id == "rest"][0]
    page.goto(f"{live['url']}/s/{rest.id}")
    page.wait_for_selector("#sheet:not([hidden])")
    assert "周一–周日 00:00–01:00" in page.inner_text("#sheet-content")  # Mo-Su 00:00-01:00, in words
    page.keyboard.press("Escape")
    assert page.locator("#sheet").is_hidden()


def test_rate_a_station_from_its_sheet(live, browser, monkeypatch):
    """Stars and a tag from the sheet; the shown average is the server's Bayesian one; a second
    rating from the same browser within 12 hours replaces the first."""
    from app.auth import limiter
    # Rate-limit counts of its own: 127.0.0.1's in the shared Redis may hold other runs' ratings.
    monkeypatch.setattr(limiter, "_key_prefix", f"yizhan-test-{uuid.uuid4().hex}")
    store = live["store"]
    baby = [s for s in store.within(_world(), _all(), 100)[0] if s.source_id == "baby"][0]
    page = new_page(browser)
    page.goto(f"{live['url']}/s/{baby.id}")
    page.wait_for_selector("#sheet:not([hidden])")
    assert page.inner_text("#sheet-content .rating") == "暂无评价"
    assert page.locator(".rate-send").is_disabled()  # no stars chosen yet
    page.click('.star[aria-label="4 星"]')
    page.click('.rate-tags .chip:has-text("干净")')
    page.click(".rate-send")
    page.wait_for_function("() => document.querySelector('.rate [role=status]').textContent === '感谢您的评价。'")
    assert page.inner_text("#sheet-content .rating") == "★ 3.6 · 1 人评价"  # (5 × 3.5 + 4) / 6 = 3.58
    page.click('.star[aria-label="3 星"]')
    page.click(".rate-send")
    page.wait_for_function("() => document.querySelector('.rate [role=status]').textContent.indexOf('已更新') >= 0")
    assert page.inner_text("#sheet-content .rating") == "★ 3.4 · 1 人评价"  # (17.5 + 3) / 6 = 3.42
    assert store.get(baby.id).rating_count == 1 and store.get(baby.id).rating_sum == 3
    page.click('.checkins .chip[data-outcome="worked"]')
    page.wait_for_function("() => document.querySelector('.checkins + [role=status]').textContent === '谢谢，已记录。'")
    with store.reading() as conn:
        kept = conn.execute(text("SELECT outcome FROM station_checkin WHERE station_id = :id"), {"id": baby.id}).all()
    assert [r.outcome for r in kept] == ["worked"]
    shot(page, "05-rating")
    assert page.errors == []
    listing = new_page(browser, *town.P)  # the results list shows the same average beside the name
    listing.goto(live["url"] + "/")
    names(listing)
    item = listing.locator(f'#list .item[data-id="{baby.id}"]')
    assert item.locator(".rating").inner_text() == "★ 3.4 · 1 人评价"
    assert listing.locator("#list .item .rating").count() == 1  # unrated stations show nothing
    assert listing.errors == []


def test_offline_reload_shows_the_cached_list(live, browser):
    page = new_page(browser, *town.P)
    page.goto(live["url"] + "/")
    names(page)
    page.evaluate("navigator.serviceWorker.ready")
    page.reload()  # now controlled by the service worker, which caches what it fetches
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    online = names(page)
    page.context.set_offline(True)
    page.reload()
    assert names(page) == online
    page.wait_for_selector("#status:not([hidden])")
    assert "离线" in page.inner_text("#status")
    shot(page, "05-offline")


def test_a_server_error_is_shown_not_hidden_behind_old_results(live, browser):
    page = new_page(browser, *town.P)
    page.goto(live["url"] + "/")
    names(page)  # an answer is now remembered
    page.goto(live["url"] + "/?lat=27.83&lng=113.15&coordsys=mercator")
    page.wait_for_selector("#status:not([hidden])")
    assert "coordsys" in page.inner_text("#status")
    assert "离线" not in page.inner_text("#status")
    assert page.locator(".item").count() == 0


def test_wechat_gets_the_jssdk_path(live, browser):
    ua = ("Mozilla/5.0 (Linux; Android 12; M2012K11AC) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/107.0 Mobile Safari/537.36 MicroMessenger/8.0.40.2420(0x28002837) NetType/4G Language/zh_CN")
    page = new_page(browser, user_agent=ua)  # no browser geolocation: WeChat provides it
    g_lat, g_lng = from_wgs84(*town.P, "gcj02")
    page.route(JSSDK_URL, lambda r: r.fulfill(body=WX_STUB % (g_lat, g_lng), content_type="text/javascript"))
    page.goto(live["url"] + "/")
    assert names(page)[0] == "West fountain"  # found from WeChat's GCJ-02 position
    calls = page.evaluate("window.__wx")
    config = [c[1] for c in calls if c[0] == "config"][0]
    assert config["appId"] == "wxbrowser"
    # signed for the URL the page was opened at (before it wrote its state into the URL)
    assert config["signature"] == sign(wechat_standin.TICKET, config["nonceStr"], config["timestamp"],
                                       live["url"] + "/")
    assert ["getLocation", "gcj02"] in calls
    assert any(c[0] == "share" for c in calls)
    # place in the URL is the GCJ-02 position, said so
    assert "coordsys=gcj02" in page.url
    page.locator(".item").first.click()
    page.wait_for_selector("#sheet:not([hidden])")
    page.get_by_role("button", name="在微信中导航", exact=True).click()
    opened = [c[1] for c in page.evaluate("window.__wx") if c[0] == "openLocation"][0]
    t_lat, t_lng = from_wgs84(*town.T, "gcj02")
    assert abs(opened["latitude"] - t_lat) < 1e-6 and abs(opened["longitude"] - t_lng) < 1e-6
    shot(page, "06-wechat")


def test_gcj02_tiles_shift_every_marker(live, browser):
    page = new_page(browser, *town.P)
    page.route("https://webrd0*.is.autonavi.com/**", lambda r: r.fulfill(body=TINY_PNG, content_type="image/png"))
    page.goto(live["url"] + "/?tiles=amap")
    names(page)
    assert page.evaluate("Yizhan.mapSys") == "gcj02"
    store = live["store"]
    page.wait_for_timeout(600)  # the stations-in-view request after the map settles
    for m in page.evaluate("Yizhan.markers().concat(Yizhan.viewMarkers())"):
        st = store.get(m["id"])
        g_lat, g_lng = from_wgs84(st.lat, st.lng, "gcj02")
        assert abs(m["lat"] - g_lat) < 1e-6 and abs(m["lng"] - g_lng) < 1e-6
    shot(page, "07-gcj02-tiles")
    plain = new_page(browser, *town.P)
    plain.goto(live["url"] + "/?tiles=none")
    names(plain)
    for m in plain.evaluate("Yizhan.markers()"):
        st = store.get(m["id"])
        assert abs(m["lat"] - st.lat) < 1e-6 and abs(m["lng"] - st.lng) < 1e-6


def test_without_location_permission_the_map_can_be_tapped(live, browser):
    page = new_page(browser)  # geolocation not granted: the page says what to do, and does not nag
    page.goto(live["url"] + "/?tiles=none")
    page.wait_for_selector("#status:not([hidden])")
    page.wait_for_function("() => document.getElementById('status').textContent.includes('定位')")
    assert "地图" in page.inner_text("#status")
    shot(page, "08-no-permission")
    # tap the map: the place becomes where the tap was
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    # the list was the stations in view; now it is the nearest to the tap
    page.wait_for_function("() => document.getElementById('list-title').textContent === '附近站点'")
    assert names(page)  # stations near the start view's centre (the river town sits there)


def test_denied_location_explains_and_locate_button_asks_again(live, browser):
    context = browser.new_context(viewport={"width": 360, "height": 640}, locale="zh-CN",
                                  geolocation={"latitude": town.P[0], "longitude": town.P[1]})
    page = context.new_page()
    page.goto(live["url"] + "/?tiles=none")
    page.wait_for_selector("#status:not([hidden])")
    context.grant_permissions(["geolocation"])
    page.get_by_role("button", name="定位", exact=True).click()
    # until then the list was the stations in view (issue #10); now the nearest to the person
    page.wait_for_function("() => document.getElementById('list-title').textContent === '附近站点'")
    assert names(page)[0] == "West fountain"


def test_english_and_screen_reader_labels(live, browser):
    page = new_page(browser, *town.P, locale="en-US")
    page.goto(live["url"] + "/")
    names(page)
    assert page.inner_text("#list-title") == "Nearby stations"
    assert page.get_attribute("html", "lang") == "en"
    assert page.get_by_role("button", name="Baby change", exact=True).count() == 1
    assert page.get_by_role("region", name="Map").count() == 1
    page.get_by_role("button", name="中文", exact=True).click()
    page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")


def test_js_coordinate_port_matches_the_server(live, browser):
    page = new_page(browser)
    page.goto(live["url"] + "/?tiles=none")
    page.wait_for_function("() => window.Yizhan !== undefined")
    for lat, lng in [(27.83, 113.15), (39.915, 116.404), (22.3, 114.17), (25.03, 121.56), (60.17, 24.94)]:
        g = page.evaluate(f"Yizhan.coords.wgsToGcj({lat}, {lng})")
        assert g == pytest.approx(list(from_wgs84(lat, lng, "gcj02")), abs=1e-12)
        b = page.evaluate(f"Yizhan.coords.gcjToBd({g[0]}, {g[1]})")
        assert b == pytest.approx(list(from_wgs84(lat, lng, "bd09")), abs=1e-12)
        assert to_wgs84(*b, "bd09") == pytest.approx((lat, lng), abs=1e-9)


def test_first_load_budget_and_no_external_host(live, browser):
    """HTML + CSS + JS + icons of the first load, gzipped, within 100 KB; nothing but tiles off-site."""
    page = new_page(browser, *town.P, offline_tiles=False)
    seen = []
    page.on("requestfinished", lambda req: seen.append(req))
    page.route("https://tile.openstreetmap.org/**", _tile)
    page.goto(live["url"] + "/")
    names(page)
    page.wait_for_load_state("networkidle")
    origin = urlparse(live["url"]).netloc
    total = 0
    external = []
    for req in seen:
        host = urlparse(req.url).netloc
        if host == "tile.openstreetmap.org":
            continue  # map tiles are excluded from the budget, and are the configured base map
        if host != origin:
            external.append(req.url)
            continue
        if req.resource_type in ("document", "stylesheet", "script", "image", "manifest", "font"):
            response = req.response()
            body = response.body()
            total += len(gzip.compress(body, 9))
            if req.resource_type in ("document", "stylesheet", "script") and len(body) > 1000:
                # and they really travel gzipped (gunicorn alone would not)
                assert response.headers.get("content-encoding") == "gzip", req.url
    assert external == []
    assert 0 < total <= 100 * 1024, f"first load is {total / 1024:.1f} KB gzipped"
    print(f"first load: {total / 1024:.1f} KB gzipped")


def _world():
    from app.geo.geodesic import Box
    return Box(-90, -180, 90, 180)


def _all():
    from app.stations.model import StationFilter
    return StationFilter()


def test_a_courier_with_a_saved_brand_sees_live_counts_with_their_age(live, browser):
    """Issue #9 §3: the page remembers a courier's brand and battery type (on the phone), sends them
    as filters, and shows live counts with their age — a stale status as 状态未知, never as a count."""
    from datetime import timedelta

    from app.dbtime import utcnow
    from app.stations.live import LiveReport, LiveStatuses

    store, accounts = live["store"], live["app"].extensions["yizhan_ops"].accounts
    here = town.at(600, 600)  # ~85 km from the town: no other test's search reaches these cabinets
    there = town.at(601, 600)
    store.upsert([
        station("m1", *here, "battery_swap", hours="24/7", source="swapco", name="甲品牌换电柜"),
        station("m2", *there, "battery_swap", hours="24/7", source="swapco", name="甲品牌旧柜"),
        station("z1", here[0] + 0.0005, here[1], "battery_swap", hours="24/7", source="zapco", name="乙品牌换电柜"),
    ])
    for code in ("swapco", "zapco"):
        if accounts.organisation_by_code(code) is None:
            accounts.create_organisation(code, code)
        accounts.assign_stations(code, code)
    now = utcnow()
    LiveStatuses(store).apply(accounts.organisation_by_code("swapco").id, [
        LiveReport("m1", now - timedelta(seconds=130), num_batteries_available=5,
                   battery_types=(("48V20Ah", 3), ("60V24Ah", 2))),
        LiveReport("m2", now - timedelta(minutes=40), num_batteries_available=9,
                   battery_types=(("48V20Ah", 9),)),
    ], now)
    page = new_page(browser, *here)
    page.add_init_script("localStorage.setItem('yz:brand', 'swapco'); localStorage.setItem('yz:battery', '48V20Ah');")
    page.goto(live["url"] + "/")
    assert names(page) == ["甲品牌换电柜", "甲品牌旧柜"]  # only the saved brand's cabinets
    fresh, stale = page.locator(".item .live").all_inner_texts()
    assert fresh == "3 块电池可换 · 2 分钟前"  # the courier's battery type, and how old the count is
    assert stale == "状态未知" and "9" not in stale
    shot(page, "11-courier-live")
    # Water and a toilet are no brand's: one tap shows every station again, live counts and all,
    # and the phone remembers that too.
    assert page.get_attribute(".courier-mine", "aria-pressed") == "true"
    page.click(".courier-mine")
    page.wait_for_function("() => [...document.querySelectorAll('.item-name')].some(e => e.textContent === '乙品牌换电柜')")
    assert set(names(page)) >= {"甲品牌换电柜", "甲品牌旧柜", "乙品牌换电柜"}
    assert "3 块电池可换 · 2 分钟前" in page.locator(".item .live").all_inner_texts()
    page.reload()
    assert "乙品牌换电柜" in names(page) and page.get_attribute(".courier-mine", "aria-pressed") == "false"
    # A courier without a saved brand tells the page once; it is remembered on the phone.
    page = new_page(browser, *here)
    page.goto(live["url"] + "/")
    assert "乙品牌换电柜" in names(page)
    assert page.locator(".courier-mine").is_hidden()  # nothing saved: nothing to narrow to
    offered = page.eval_on_selector_all("#brands option", "os => os.map(o => o.value)")
    assert {"swapco", "zapco"} <= set(offered)  # the brands running cabinets, from /meta
    page.fill('.courier input[name="brand"]', "zapco")
    page.click(".courier-save")
    page.wait_for_function("() => [...document.querySelectorAll('.item-name')].map(e => e.textContent).join() === '乙品牌换电柜'")
    page.reload()
    assert names(page) == ["乙品牌换电柜"]
    assert page.evaluate("localStorage.getItem('yz:brand')") == "zapco"
    assert page.locator(".item .live").count() == 0  # never reported: no live line at all
    assert page.errors == []
