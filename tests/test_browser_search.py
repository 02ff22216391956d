"""Issue #10 in the browser (Debian's Chromium, 360×640, zh-CN): a page without a position opens
on the city with the stations in view listed, and the search box finds a street by its pinyin
initials and lists the stations near it, in a URL that restores the view.

The app runs on its own embedded SQLite store with a small town imported from a real .osm.pbf:
the river town's streets around the configured default centre, and 人民路 (People's Road), a
named street 1.4 km to the north-east with stations along it, which the import collects as a
searchable street (its line). The search answers come from the real /api/v1/search.
"""
from __future__ import annotations

import math
import tempfile
import threading
from urllib.parse import parse_qs, urlparse

import osmium
import pytest
from flask_migrate import upgrade
from osmium.osm.mutable import Node, Way
from werkzeug.serving import make_server

from app import create_app
from app.network import service
from tests import osm_fixtures as town
from tests.test_browser import browser, names, new_page, shot  # noqa: F401 - browser is a fixture

pytestmark = pytest.mark.browser

CENTRE = town.at(1.5, 0)  # the configured default centre: the middle of the river town
ZOOM = 16
# 人民路 runs east from grid (10, 10) to (20, 10): its point nearest the centre is its west end.
PEOPLES_ROAD = [(10, 10), (13, 10), (16, 10), (20, 10)]
NEAR_ROAD = {
    "人民路公厕": ((10.2, 10.1), {"amenity": "toilets"}),  # ~22 m from the west end
    "人民路驿站": ((11.0, 10.0), {"amenity": "toilets"}),  # 100 m
    "人民路东饮水点": ((19.0, 10.0), {"amenity": "drinking_water"}),  # 900 m along the road
}
IN_TOWN = {
    "West fountain": ((-0.1, 0.1), {"amenity": "drinking_water"}),
    "East toilet": ((3.1, 0.0), {"amenity": "toilets"}),
}


def write_town_with_peoples_road(path: str) -> str:
    """The river town's streets, plus 人民路 and the stations along it, as a .osm.pbf."""
    with osmium.SimpleWriter(str(path), overwrite=True) as w:
        for nid, (x, y) in sorted(town._NODES.items()):
            lat, lng = town.at(x, y)
            w.add_node(Node(id=nid, location=(lng, lat), tags={}))
        road_ids = []
        for i, (x, y) in enumerate(PEOPLES_ROAD):
            lat, lng = town.at(x, y)
            road_ids.append(500 + i)
            w.add_node(Node(id=500 + i, location=(lng, lat), tags={}))
        for i, (name, ((x, y), tags)) in enumerate({**NEAR_ROAD, **IN_TOWN}.items()):
            lat, lng = town.at(x, y)
            w.add_node(Node(id=900 + i, location=(lng, lat), tags={**tags, "name": name}))
        for wid, way_nodes, tags in town._WAYS:
            w.add_way(Way(id=wid, nodes=way_nodes, tags=tags))
        w.add_way(Way(id=600, nodes=road_ids, tags={"highway": "secondary", "name": "人民路"}))
    return str(path)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tempfile.mkdtemp(prefix="yizhan-browser-search-")
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/search.sqlite3", "YIZHAN_TILES": "osm", "REDIS_URL": "",
        "YIZHAN_DEFAULT_CENTER": CENTRE, "YIZHAN_DEFAULT_ZOOM": ZOOM,
    })
    with app.app_context():
        upgrade()
    store = app.extensions["yizhan_store"]
    report = service.import_network(store, write_town_with_peoples_road(tmp_path_factory.mktemp("osm") / "search.osm.pbf"))
    assert report.places_found >= 1  # 人民路 (and the town's named streets), collected by the import for search
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"url": f"http://127.0.0.1:{server.server_port}", "app": app, "store": store}
    server.shutdown()


def _metres(a, b) -> float:
    """Distance on a local plane: enough to tell 20 m from 100 m."""
    dy = (a[0] - b[0]) * 110_815
    dx = (a[1] - b[1]) * 98_512
    return math.hypot(dx, dy)


def test_without_a_position_the_page_opens_on_the_city_with_its_stations(live, browser):
    page = new_page(browser)  # no geolocation permission: the person has not said yes (or said no)
    page.goto(live["url"] + "/")
    listed = names(page)
    # The town's two stations are in view at the default centre; 人民路's, 1.4 km away, are not.
    assert sorted(listed) == ["East toilet", "West fountain"]
    assert page.inner_text("#list-title") == "地图范围内的站点"
    view = page.evaluate("Yizhan.view()")
    assert view["zoom"] == ZOOM
    assert _metres((view["lat"], view["lng"]), CENTRE) < 1
    # One line says how to use the position, with the button that asks for it.
    page.wait_for_function("() => document.getElementById('status').textContent.includes('允许定位')")
    assert page.locator("#status").is_visible()
    use = page.get_by_role("button", name="使用我的位置", exact=True)
    assert use.is_visible()
    search = page.get_by_role("combobox", name="搜索站点、街道或地点")
    assert search.is_enabled() and search.get_attribute("aria-expanded") == "false"
    shot(page, "21-no-position-city")
    # The filters apply to the stations in view too.
    page.get_by_role("button", name="饮用水", exact=True).click()
    page.wait_for_function("() => document.querySelectorAll('#list .item').length === 1")
    assert names(page) == ["West fountain"] and "amenity=drinking_water" in page.url
    page.get_by_role("button", name="饮用水", exact=True).click()
    page.wait_for_function("() => document.querySelectorAll('#list .item').length === 2")
    # Saying yes later: the same line's button finds the stations nearest the person.
    page.context.set_geolocation({"latitude": town.P[0], "longitude": town.P[1]})
    page.context.grant_permissions(["geolocation"])
    use.click()
    page.wait_for_function("() => document.getElementById('list-title').textContent === '附近站点'")
    assert names(page)[0] == "West fountain"
    assert page.locator("#status").is_hidden()
    assert page.errors == []


def test_type_rml_pick_peoples_road_and_share_the_view(live, browser):
    page = new_page(browser)
    page.goto(live["url"] + "/")
    names(page)
    search = page.get_by_role("combobox", name="搜索站点、街道或地点")
    search.click()
    assert "rml" in page.inner_text("#search-hint")  # the empty state says what to try
    search.press_sequentially("rml", delay=60)
    option = page.get_by_role("option", name="人民路").first
    option.wait_for()
    assert search.get_attribute("aria-expanded") == "true"
    assert "街道" in option.inner_text()
    shot(page, "22-search-suggestions")
    # By keyboard: Down highlights the first suggestion (announced as the active descendant), Enter picks it.
    search.press("ArrowDown")
    active = search.get_attribute("aria-activedescendant")
    assert active and page.get_attribute(f"#{active}", "aria-selected") == "true"
    assert page.inner_text(f"#{active} .suggestion-name") == "人民路"
    search.press("Enter")
    page.wait_for_function("() => document.getElementById('list-title').textContent === '人民路附近的站点'")
    assert search.get_attribute("aria-expanded") == "false"
    listed = names(page)
    assert listed[:3] == ["人民路公厕", "人民路驿站", "人民路东饮水点"]  # nearest the road's point first
    # The place is the road's point nearest the map's centre (its west end), kept in the URL.
    q = parse_qs(urlparse(page.url).query)
    assert q["q"] == ["人民路"]
    at = (float(q["lat"][0]), float(q["lng"][0]))
    assert _metres(at, town.at(*PEOPLES_ROAD[0])) < 5
    view = page.evaluate("Yizhan.view()")
    assert _metres((view["lat"], view["lng"]), at) < 5  # the map moved there
    shot(page, "23-near-peoples-road")
    # A shared link (here: a reload) restores the same view, list and search box.
    shared = page.url
    again = new_page(browser)
    again.goto(shared)
    assert names(again) == listed
    assert again.inner_text("#list-title") == "人民路附近的站点"
    assert again.get_by_role("combobox", name="搜索站点、街道或地点").input_value() == "人民路"
    assert page.errors == [] and again.errors == []


def test_a_station_from_the_search_box_opens_its_sheet_and_escape_closes_the_list(live, browser):
    page = new_page(browser)
    page.goto(live["url"] + "/")
    names(page)
    search = page.get_by_role("combobox", name="搜索站点、街道或地点")
    search.click()
    search.press_sequentially("人民路驿", delay=60)
    option = page.get_by_role("option", name="人民路驿站").first
    option.wait_for()
    search.press("Escape")
    assert page.locator("#search-list").is_hidden() and search.get_attribute("aria-expanded") == "false"
    search.press("ArrowDown")  # opens the list again on the first suggestion
    assert search.get_attribute("aria-expanded") == "true"
    option.click()
    page.wait_for_selector("#sheet:not([hidden])")
    assert page.inner_text("#sheet-title") == "人民路驿站"
    page.keyboard.press("Escape")
    assert page.locator("#sheet").is_hidden()
    search.fill("")
    search.press_sequentially("zzqx", delay=60)  # nothing is called that: the empty state says what to try
    page.wait_for_function("() => document.getElementById('search-hint').textContent.includes('没有找到')")
    assert "rml" in page.inner_text("#search-hint") and page.locator("#search-list").is_hidden()
    assert page.errors == []


def test_the_search_box_in_english(live, browser):
    page = new_page(browser, locale="en-US")
    page.goto(live["url"] + "/")
    names(page)
    assert page.inner_text("#list-title") == "Stations in view"
    search = page.get_by_role("combobox", name="Search stations, streets or places")
    search.click()
    assert "initials" in page.inner_text("#search-hint")
    search.press_sequentially("renminlu", delay=40)  # full pinyin
    option = page.get_by_role("option", name="人民路").first
    option.wait_for()
    assert "Street" in option.inner_text()
    option.click()
    page.wait_for_function("() => document.getElementById('list-title').textContent === 'Stations near 人民路'")
    assert names(page)[0] == "人民路公厕"
    # Tapping the map chooses another place: the list is no longer "near 人民路", nor the URL.
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 4, box["y"] + box["height"] / 2)
    page.wait_for_function("() => document.getElementById('list-title').textContent === 'Nearby stations'")
    assert "q" not in parse_qs(urlparse(page.url).query) and search.input_value() == ""
    assert page.errors == []
