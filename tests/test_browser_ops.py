"""The operations loop as people live it: Debian's Chromium, driven by Playwright, at 360×640.

A live server (werkzeug, in a thread) serves the real app on its own database (embedded SQLite,
and PostgreSQL+PostGIS in a database of its own, "<TEST_DATABASE_URL's database>_browser", so its
committed rows never meet the rolled-back tests), holding the river town's stations. The station
"East toilet" (S) belongs to 河西管养所, whose 站长 looks after it; the organisation's webhook and
its manager's own webhook point at a local stand-in that answers like a WeCom group robot.

- A resident scans S's QR code (/s/<id>), taps "报告问题", adds a phone photo (with GPS EXIF)
  and a phone number, taps "无水/无热水" and lands on the tracking page /r/<token>.
- The 站长 logs in, finds it in the queue, assigns it to themself and marks it fixed with a
  public note and a photo; the resident's tracking page then shows it fixed, the note and the
  photo, and no phone number or staff e-mail.
- Another report is left alone; the real periodic job (``flask --app wsgi ops tick --now …``, a
  subprocess on the same database) is run with a test-controlled clock, first just before its
  response limit (nothing happens), then just after: the org manager's webhook gets the
  escalation naming the work order, and the staff queue marks it overdue.

Screenshots of the report form, the staff queue and the tracking page go to test-artifacts/.
"""
from __future__ import annotations

import io
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import uuid
from datetime import timedelta

import pytest
from flask_migrate import upgrade
from PIL import Image
from sqlalchemy import text
from werkzeug.serving import make_server

from app import create_app
from app.extensions import db
from app.network import service
from app.dbtime import utcnow
from app.ops.service import ReportInput
from tests.helpers import own_postgis_database
from tests.images import leftover_metadata, make_jpeg_with_gps, make_png
from tests.test_browser import browser, new_page, shot  # noqa: F401 - browser is a fixture
from tests.webhook_standin import WebhookStandIn

pytestmark = pytest.mark.browser

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "correct horse battery staple"
BOSS = "boss@hexi.example"  # the organisation's manager: escalations go to them
ZHANZHANG = "zhanzhang@hexi.example"  # S's station manager (站长)
PHONE = "13812345678"
FIX_NOTE = "已恢复供水"
S_SOURCE_ID = "node/900"  # East toilet, in tests/osm_fixtures.py




@pytest.fixture(scope="module", params=("sqlite", "postgis"))
def live(request, river_town_pbf, apps):
    """The app on a real port: the river town's stations, one organisation and its staff."""
    tmp = tempfile.mkdtemp(prefix="yizhan-browser-ops-")
    url = f"sqlite:///{tmp}/browser.sqlite3" if request.param == "sqlite" else own_postgis_database(apps, "browser")
    hooks = WebhookStandIn().up()
    config = {
        "SQLALCHEMY_DATABASE_URI": url, "YIZHAN_TILES": "osm", "REDIS_URL": "",
        # Report limits count in this process only, under a prefix of their own.
        "RATELIMIT_STORAGE_URI": "memory://", "RATELIMIT_KEY_PREFIX": f"yizhan-browser-{uuid.uuid4().hex}",
        "YIZHAN_UPLOAD_DIR": os.path.join(tmp, "uploads"), "SECRET_KEY": secrets.token_hex(32),
    }
    app = create_app(config)
    with app.app_context():
        upgrade()
    store = app.extensions["yizhan_store"]
    service.import_network(store, river_town_pbf)
    ops = app.extensions["yizhan_ops"]
    accounts = ops.accounts
    accounts.create_organisation("hexi", "河西管养所", webhook_url=hooks.url("/org"), webhook_format="wecom")
    accounts.create_user(BOSS, PASSWORD, "org_manager", "hexi", webhook_url=hooks.url("/boss"))
    accounts.create_user(ZHANZHANG, PASSWORD, "station_manager", "hexi")
    accounts.assign_stations("hexi", "osm", [S_SOURCE_ID], manager_email=ZHANZHANG)
    with store.reading() as conn:
        s_id = conn.execute(text("SELECT id FROM station WHERE source = 'osm' AND source_id = :sid"),
                            {"sid": S_SOURCE_ID}).scalar_one()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    yield {"url": base, "ops": ops, "s": s_id, "hooks": hooks, "db": url, "tmp": tmp}
    server.shutdown()
    hooks.stop()
    with app.app_context():
        db.engine.dispose()


def tick(live, now) -> str:
    """The real periodic job, as cron runs it, on the live server's database, at ``now``."""
    env = {**os.environ, "DATABASE_URL": live["db"], "YIZHAN_PUBLIC_URL": live["url"],
           "RATELIMIT_STORAGE_URI": "memory://", "YIZHAN_UPLOAD_DIR": os.path.join(live["tmp"], "uploads")}
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    done = subprocess.run([flask, "--app", "wsgi", "ops", "tick", "--now", now.isoformat()], cwd=PROJECT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def report_no_water(live, browser):
    """The resident: station page, the sheet's "报告问题" link, a photo and a phone number, one tap."""
    page = new_page(browser)  # a QR code scan: no location needed
    page.goto(f"{live['url']}/s/{live['s']}")
    page.wait_for_selector("#sheet:not([hidden])")
    page.locator("#sheet").get_by_role("link", name="报告问题").click()
    page.wait_for_url(f"**/s/{live['s']}/report**")
    assert page.get_by_role("heading", level=1).inner_text() == "East toilet"
    page.get_by_text("补充说明、照片或电话（可选）").click()  # the optional part, folded by default
    page.get_by_label("照片（最多 3 张）").set_input_files(
        files=[{"name": "IMG_0001.jpg", "mimeType": "image/jpeg", "buffer": make_jpeg_with_gps()}])
    page.get_by_label("回电电话").fill(PHONE)
    shot(page, "ops-01-report-form")
    page.get_by_role("button", name="无水/无热水").click()
    page.wait_for_url("**/r/**")
    return page


def staff_page(live, browser, email, path="/staff/"):
    """A staff member opens a staff page, is sent to the login form, and lands where they went."""
    page = new_page(browser)
    page.goto(live["url"] + path)
    page.wait_for_url("**/staff/login**")
    page.get_by_label("邮箱").fill(email)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录", exact=True).click()
    page.wait_for_url(live["url"] + path)
    assert email in page.inner_text(".who")
    return page


def queue_row(page, category: str, wo_id: int):
    """A work order's link in a staff list: its accessible name starts with the problem and ends
    with its number. (A '/' must be escaped: Playwright passes the pattern on as a JS literal.)"""
    pattern = re.escape(category).replace("/", r"\/")
    return page.get_by_role("link", name=re.compile(rf"^{pattern} .*#{wo_id}$"))


def media(live, page, src) -> tuple[int, bytes]:
    """A photo fetched with this browser's cookies (staff see reporters' photos; others do not)."""
    response = page.context.request.get(live["url"] + src)
    return response.status, response.body()


def test_a_resident_reports_no_water_and_the_zhanzhang_fixes_it(live, browser):
    # -- the resident: two taps from the station's own page -------------------------------------
    resident = report_no_water(live, browser)
    token = resident.url.split("/r/")[1].split("?")[0]
    wo_id = int(token.split("-")[0])
    assert resident.get_by_role("status").inner_text() == "已收到，谢谢！"
    assert resident.get_by_role("heading", level=1).inner_text() == "无水/无热水"
    assert resident.inner_text(".state") == "已收到"
    assert "负责单位: 河西管养所" in resident.inner_text("main")
    assert resident.errors == []

    # -- the 站长: the queue, the work order, assign, fix -------------------------------------------
    staff = staff_page(live, browser, ZHANZHANG)
    row = queue_row(staff, "无水/无热水", wo_id)
    assert "East toilet" in row.inner_text() and "新报告" in row.inner_text()
    assert "已超时" not in row.inner_text()  # just reported: its 20 minutes are running
    shot(staff, "ops-02-staff-queue")
    row.click()
    staff.wait_for_url(f"**/staff/work-orders/{wo_id}")
    assert staff.inner_text("#state") == "新报告"
    # The station's manager may call the reporter back...
    assert f"电话: {PHONE}" in staff.inner_text("main")
    # ...and sees the photo, stored without the phone's metadata and turned upright (EXIF 6).
    original = make_jpeg_with_gps()
    assert leftover_metadata(original)  # there was GPS EXIF (and more) to strip
    src = staff.get_by_role("img", name="照片 1").get_attribute("src")
    status, stored = media(live, staff, src)
    assert status == 200 and leftover_metadata(stored) == []
    assert Image.open(io.BytesIO(stored)).size == (48, 64)
    assert media(live, resident, src)[0] == 404  # a reporter's own photo is for staff only

    staff.get_by_label("备注").fill("内部：阀门待查")  # an internal note: the resident never sees it
    staff.get_by_label("处理人").select_option(ZHANZHANG)
    staff.get_by_role("button", name="派单", exact=True).click()
    staff.wait_for_url(f"**/staff/work-orders/{wo_id}")
    assert staff.inner_text("#state") == "已派单"
    assert f"{ZHANZHANG} → {ZHANZHANG}" in staff.inner_text(".timeline")

    staff.get_by_label("备注").fill(FIX_NOTE)
    staff.get_by_label("让报告人看到").check()
    staff.get_by_label("照片（最多 3 张）").set_input_files(
        files=[{"name": "fixed.png", "mimeType": "image/png", "buffer": make_png(alpha=False)}])
    staff.get_by_role("button", name="标记已修复", exact=True).click()
    staff.wait_for_url(f"**/staff/work-orders/{wo_id}")
    assert staff.inner_text("#state") == "已修复"
    assert staff.errors == []

    # -- the resident's tracking link: fixed, the note, the photo; nobody's contact details ------
    resident.reload()
    assert resident.inner_text(".state") == "已修复"
    timeline = resident.inner_text(".steps")
    assert [s for s in ("已收到", "已派人处理", "已修复") if s in timeline] == ["已收到", "已派人处理", "已修复"]
    assert FIX_NOTE in timeline and "阀门" not in resident.content()
    fix = resident.get_by_role("img", name="处理后的照片 1")
    resident.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=fix.element_handle())
    status, shown = media(live, resident, fix.get_attribute("src"))
    assert status == 200 and leftover_metadata(shown) == []
    html = resident.content()
    for private in (PHONE, PHONE[3:], "138 1234 5678", ZHANZHANG, BOSS):
        assert private not in html, private
    assert "@" not in resident.inner_text("body")  # no e-mail address of anyone
    shot(resident, "ops-03-tracking-fixed")
    assert resident.errors == []


def test_a_report_left_alone_turns_overdue_and_the_org_manager_is_told(live, browser):
    """The queue computes "overdue" from the real clock, so the report is made (through the
    service) two hours ago, and the job's clock is set just before and just after its limit:
    the page and the job then agree that it is overdue."""
    ops, hooks = live["ops"], live["hooks"]
    made = utcnow().replace(microsecond=0) - timedelta(hours=2)
    submitted = ops.submit_report(ReportInput("dirty", station_id=live["s"], description="地面很脏"), made)
    wo = ops.store.work_order(submitted.work_order_id)
    dirty = [c for c in ops.categories_for_station(live["s"]) if c.code == "dirty"][0]
    assert wo.response_due_at == made + timedelta(minutes=dirty.response.minutes)
    title = f"工单 #{wo.id} 响应超时"

    assert "breaches: 0 response" in tick(live, wo.response_due_at - timedelta(minutes=1))
    assert not [b for b in hooks.bodies if title in str(b)]
    assert "breaches: 1 response" in tick(live, wo.response_due_at + timedelta(minutes=1))
    to_boss = [r for r in hooks.received if r.path == "/boss" and title in r.body["markdown"]["content"]]
    assert len(to_boss) == 1  # escalated once, to the org manager's own webhook, as a WeCom robot message
    content = to_boss[0].body["markdown"]["content"]
    assert "卫生差" in content and "East toilet" in content
    link = re.search(r"\]\((http[^)]+)\)", content).group(1)  # the message's link, to the work order's page
    assert link == f"{live['url']}/staff/work-orders/{wo.id}"
    assert not [r for r in hooks.received if r.path == "/org" and title in str(r.body)]
    assert "breaches: 0 response" in tick(live, wo.response_due_at + timedelta(minutes=2))  # once only
    assert len([r for r in hooks.received if title in str(r.body)]) == 1

    # The org manager follows the message's link, and their queue has it flagged.
    boss = staff_page(live, browser, BOSS, link[len(live["url"]):])
    assert "已超时" in boss.inner_text("dl")
    boss.goto(live["url"] + "/staff/")
    row = queue_row(boss, "卫生差", wo.id)
    assert "已超时" in row.inner_text()
    assert "overdue" in boss.locator(f"#wo-{wo.id}").get_attribute("class")
    shot(boss, "ops-04-queue-overdue")
    assert boss.errors == []
