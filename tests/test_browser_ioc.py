"""The operations centre (IOC) page in Chromium: it turns a station to "cleaning due" by itself
when the station's people counter crosses the threshold while the page is open (the reading is
POSTed to the live server with the device's token, as a counter would).

It reuses the live server of tests/test_browser_ops.py (its own database, the river town's
stations, organisation 河西管养所 whose manager opens the page)."""
from __future__ import annotations

import json
import urllib.request
from datetime import datetime, timezone

import pytest
from playwright.sync_api import expect

from app.ops.sensors import Sensors
from tests.test_browser import browser, shot  # noqa: F401 - browser is a fixture
from tests.test_browser_ops import BOSS, live, staff_page  # noqa: F401 - live is a fixture

pytestmark = pytest.mark.browser
DEADLINE_MS = 30_000


def _post_reading(live, device, token, people):
    body = json.dumps({"ts": datetime.now(timezone.utc).isoformat(), "people_in": people}).encode()
    request = urllib.request.Request(f"{live['url']}/api/v1/sensors/{device}/readings", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status, json.loads(answer.read())


def test_the_ioc_page_turns_a_station_to_cleaning_due_when_the_threshold_is_crossed(live, browser):
    device = f"door-counter-{live['s']}-{datetime.now().strftime('%H%M%S%f')}"
    token = Sensors(live["ops"]).register(device, live["s"], threshold=20)
    page = staff_page(live, browser, BOSS, "/staff/ioc")
    row = page.locator(f'tr[data-station="{live["s"]}"]')
    dot = page.locator(f'circle[data-station="{live["s"]}"]')
    assert row.locator('[data-field="state"]').inner_text() != "待保洁"
    assert "state-cleaning_due" not in dot.get_attribute("class")
    status, answer = _post_reading(live, device, token, 12)  # 12 of 20
    assert status == 201 and answer["cleaning_due"] is False
    expect(row.locator('[data-field="since"]')).to_have_text("12 / 20", timeout=DEADLINE_MS)
    status, answer = _post_reading(live, device, token, 9)  # 21: over the threshold
    assert status == 201 and answer["cleaning_due"] is True
    # No reload: the page polls its feed.
    expect(row.locator('[data-field="state"]')).to_have_text("待保洁", timeout=DEADLINE_MS)
    assert "state-cleaning_due" in dot.get_attribute("class")
    assert page.inner_text("#ioc-cleaning") == "1"
    assert page.errors == []
    shot(page, "ioc-01-phone")
    page.set_viewport_size({"width": 1920, "height": 1080})
    shot(page, "ioc-02-wall")
