"""Where the page opens without a position (issue #10): the configured centre and zoom
(YIZHAN_DEFAULT_CENTER / YIZHAN_DEFAULT_ZOOM, checked at start-up), else the extent of the
active stations (one store query, both stores), else the country."""
import json
import re

import pytest

from app.config import DEFAULT_START_ZOOM, from_environment
from app.geo.geodesic import Box
from tests.helpers import station


@pytest.fixture
def env(monkeypatch):
    monkeypatch.delenv("YIZHAN_DEFAULT_CENTER", raising=False)
    monkeypatch.delenv("YIZHAN_DEFAULT_ZOOM", raising=False)

    def configured(center=None, zoom=None):
        if center is not None:
            monkeypatch.setenv("YIZHAN_DEFAULT_CENTER", center)
        if zoom is not None:
            monkeypatch.setenv("YIZHAN_DEFAULT_ZOOM", zoom)
        cfg = from_environment("/tmp")
        return cfg["YIZHAN_DEFAULT_CENTER"], cfg["YIZHAN_DEFAULT_ZOOM"]
    return configured


def test_the_default_view_is_read_as_lat_lng_and_a_zoom(env):
    assert env() == (None, None)
    assert env(" 27.83, 113.15 ") == ((27.83, 113.15), DEFAULT_START_ZOOM)
    assert env("-33.9,18.42", "16") == ((-33.9, 18.42), 16)


@pytest.mark.parametrize("center, zoom, says", [
    ("113.15", None, "'lat,lng'"),
    ("27.83,113.15,5", None, "'lat,lng'"),
    ("27.83;113.15", None, "'lat,lng'"),
    ("２７.83,113.15", None, "'lat,lng'"),  # full-width digits are not a number anyone configured
    ("nan,113.15", None, "'lat,lng'"),
    ("113.15,27.83,", None, "'lat,lng'"),
    ("113.15,27.83", None, "-90 <= lat <= 90"),  # lng,lat the wrong way round
    ("27.83,181", None, "-180 <= lng <= 180"),
    ("27.83,113.15", "2", "between 3 and 19"),
    ("27.83,113.15", "20", "between 3 and 19"),
    ("27.83,113.15", "15.5", "whole zoom level"),
    ("27.83,113.15", "fifteen", "whole zoom level"),
    (None, "15", "needs YIZHAN_DEFAULT_CENTER"),
])
def test_a_wrong_default_view_stops_the_start_with_its_reason(env, center, zoom, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        env(center, zoom)


def test_the_extent_of_active_stations(store):
    assert store.active_extent() is None  # no station at all
    store.upsert([
        station("a", 27.80, 113.10), station("b", 27.86, 113.12, "water_point"),
        station("c", 27.83, 113.19, "rest_station"),
        station("gone", 30.0, 120.0, status="removed"),  # not where anyone can go
    ])
    assert store.active_extent() == Box(south=27.80, west=113.10, north=27.86, east=113.19)


def _start(html: str) -> dict:
    config = re.search(r'<script id="yz-config" type="application/json">(.*?)</script>', html, re.S).group(1)
    return json.loads(config)["start"]


def test_the_page_opens_on_the_configured_centre(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "YIZHAN_DEFAULT_CENTER", (27.83, 113.15))
    monkeypatch.setitem(app.config, "YIZHAN_DEFAULT_ZOOM", 14)
    assert _start(client.get("/").get_data(as_text=True)) == {"center": [27.83, 113.15], "zoom": 14}


def test_without_a_centre_the_page_opens_on_the_stations_then_remembers(app, client, store, monkeypatch):
    monkeypatch.setitem(app.config, "YIZHAN_DEFAULT_CENTER", None)
    monkeypatch.setitem(app.extensions, "yizhan_start_view", None)  # nothing cached (and the cache undone after)
    store.upsert([station("a", 27.80, 113.10), station("b", 27.86, 113.19)])
    assert _start(client.get("/").get_data(as_text=True)) == {"bounds": [[27.80, 113.10], [27.86, 113.19]]}
    store.upsert([station("c", 28.5, 114.0)])  # within the cache's lifetime the page keeps the extent it had
    assert _start(client.get("/").get_data(as_text=True)) == {"bounds": [[27.80, 113.10], [27.86, 113.19]]}
    monkeypatch.setitem(app.extensions, "yizhan_start_view", None)  # the cache expired
    assert _start(client.get("/").get_data(as_text=True)) == {"bounds": [[27.80, 113.10], [28.5, 114.0]]}


def test_with_no_station_and_no_centre_the_page_opens_on_the_country(app, client, monkeypatch):
    from app.web import COUNTRY_VIEW  # here: imported first, app.web would meet app.auth half-built

    monkeypatch.setitem(app.config, "YIZHAN_DEFAULT_CENTER", None)
    monkeypatch.setitem(app.extensions, "yizhan_start_view", None)  # nothing cached (and the cache undone after)
    assert _start(client.get("/").get_data(as_text=True)) == COUNTRY_VIEW
    assert app.extensions["yizhan_start_view"][1] == COUNTRY_VIEW
