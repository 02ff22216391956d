"""The public side of reporting on both stores: the form at /s/<id>/report, the tracking page at
/r/<token>, photos at /media/<sha256>. Requests go through the real app (CSRF on, limits on, photos
stored in this test's own directory); the database is this test's rolled-back transaction.
"""
from __future__ import annotations

import io
import re
import uuid
from html import unescape

import pytest
from PIL import Image
from sqlalchemy import text

from app.auth import limiter
from app.ops.photos import PhotoStore
from app.ops.workflow import CLOSING_REASONS, STATES
from app.reporting import REPORTS_PER_STATION
from app.reporting.texts import REASON_WORDS, STATE_WORDS, TEXTS
from app.web import LANGS
from tests.helpers import station
from tests.images import leftover_metadata, make_jpeg_with_gps, make_png

CENTRE = (27.83, 113.15)
PASSWORD = "correct horse battery"
PHONE = "138 1234 5678"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _address() -> str:
    """A documentation-range IPv6 address of its own, so per-address counts never meet."""
    hexes = uuid.uuid4().hex[:24]
    return "2001:db8:" + ":".join(hexes[i:i + 4] for i in range(0, 24, 4))


@pytest.fixture
def world(client, app, store, tmp_path, monkeypatch):
    """A toilet owned by 河西管养所 (with a manager), a second organisation, this test's own photo
    directory and rate-limit counts (a key prefix of its own: counts in the shared Redis never
    meet another test's or another run's).

    The service is the one the requests use (the client's, on this test's connection), not the
    ``ops`` fixture: that one keeps an app context pushed for the whole test, and requests made
    meanwhile share its ``g`` — where Flask-WTF caches the CSRF token, so a second browser
    would be handed the first one's token."""
    monkeypatch.setattr(limiter, "_key_prefix", f"yizhan-test-{uuid.uuid4().hex}")
    client.environ_base["REMOTE_ADDR"] = _address()
    ops = app.extensions["yizhan_ops"]
    photos = ops.photos = PhotoStore(tmp_path / "uploads")
    store.upsert([station("door", *CENTRE, name="河西公厕", hours="24/7", yes=("hot_water",)),
                  station("gone", 27.84, 113.16, name="旧公厕", status="removed")])
    with store.reading() as conn:
        ids = dict(conn.execute(text("SELECT source_id, id FROM station WHERE source = 'test'")).all())
    accounts = ops.accounts
    accounts.create_organisation("hexi", "河西管养所")
    accounts.create_organisation("east", "东区管养所")
    manager = accounts.create_user("boss@hexi.example", PASSWORD, "org_manager", "hexi")
    accounts.create_user("boss@east.example", PASSWORD, "org_manager", "east")
    accounts.assign_stations("hexi", "test", ["door"])
    return {"id": ids["door"], "removed": ids["gone"], "manager": manager, "photos": photos, "ops": ops,
            "store": store, "client": client, "app": app}


def _counts(store) -> tuple[int, int]:
    with store.reading() as conn:
        return (conn.execute(text("SELECT count(*) FROM work_order")).scalar_one(),
                conn.execute(text("SELECT count(*) FROM report")).scalar_one())


def _files(directory) -> list:
    return [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []


def _form_token(client, station_id, lang="en") -> str:
    page = client.get(f"/s/{station_id}/report?lang={lang}")
    assert page.status_code == 200
    return _TOKEN.search(page.get_data(as_text=True)).group(1)


def _post(client, station_id, category="no_water", *, token=None, lang="en", photos=(), headers=None, **fields):
    token = _form_token(client, station_id, lang) if token is None else token
    data = {"category": category, **fields}
    if token:
        data["csrf_token"] = token
    if photos:
        data["photo"] = [(io.BytesIO(blob), f"photo{i}.jpg", "image/jpeg") for i, blob in enumerate(photos)]
    return client.post(f"/s/{station_id}/report?lang={lang}", data=data, content_type="multipart/form-data",
                       headers=headers or {})


def _tracking_token(response) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    found = re.fullmatch(r"/r/([^?]+)\?(new|joined)=1&lang=en", response.headers["Location"])
    assert found, response.headers["Location"]
    return found.group(1)


def _log_in(app, email):
    staff = app.test_client()
    page = staff.get("/staff/login").get_data(as_text=True)
    done = staff.post("/staff/login", data={"email": email, "password": PASSWORD,
                                            "csrf_token": _TOKEN.search(page).group(1)})
    assert done.status_code == 302, done.get_data(as_text=True)
    return staff


# -- the form ----------------------------------------------------------------------------------


def test_form_lists_the_stations_problems_with_a_csrf_token(world):
    page = world["client"].get(f"/s/{world['id']}/report?lang=en")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "河西公厕" in html and "<title>Report a problem · 河西公厕 · Yizhan</title>" in html
    codes = re.findall(r'<button class="cat" type="submit" name="category" value="([a-z_]+)">', html)
    assert codes == [c.code for c in world["ops"].categories_for_station(world["id"])]
    assert len(codes) == 10 and "no_water" in codes
    assert _TOKEN.search(html)
    assert re.search(r'<input id="photo" name="photo" type="file" accept="image/jpeg,image/png,image/webp" '
                     r'multiple>', html)
    assert " capture" not in html  # the gallery must stay reachable: `capture` opens the camera only
    assert 'type="tel"' in html and "deleted after the problem is closed" in html
    assert re.search(r'<div class="hp" aria-hidden="true">.*?name="website" type="text" tabindex="-1"', html, re.S)
    assert 'maxlength="1000"' in html and 'enctype="multipart/form-data"' in html
    assert "Photos (up to 3)" in html and "At most 1,000 characters" in html
    # Nothing from another host: every link, source and action is a path on this site.
    assert not re.search(r"https?://", html)
    assert all(url.startswith("/") for url in re.findall(r'(?:href|src|action)="([^"]*)"', html))
    assert page.headers["Cache-Control"] == "no-store"
    assert "form-action 'self'" in page.headers["Content-Security-Policy"]


def test_form_in_chinese_by_accept_language(world):
    page = world["client"].get(f"/s/{world['id']}/report", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    html = page.get_data(as_text=True)
    assert '<html lang="zh-CN">' in html and "<title>报告问题 · 河西公厕 · 驿站</title>" in html
    assert "<b>无水/无热水</b>" in html and "问题处理完毕后会被删除" in html
    assert "照片（最多 3 张）" in html and "最多 1000 字" in html


def test_the_station_page_links_to_the_form(world):
    html = world["client"].get(f"/s/{world['id']}?lang=zh-CN").get_data(as_text=True)
    assert f'<a href="/s/{world["id"]}/report?lang=zh-CN">报告问题</a>' in html


def test_no_form_for_a_station_that_does_not_exist(world):
    client = world["client"]
    for missing in (world["removed"], 987654321):
        assert client.get(f"/s/{missing}/report?lang=en").status_code == 404
    token = _form_token(client, world["id"])
    refused = _post(client, 987654321, token=token)
    assert refused.status_code == 404 and "does not exist" in refused.get_data(as_text=True)
    assert _counts(world["store"]) == (0, 0)


def test_post_without_csrf_token_is_refused_and_nothing_is_stored(world):
    refused = _post(world["client"], world["id"], token="", description="龙头没水")
    assert refused.status_code == 400
    html = refused.get_data(as_text=True)
    assert "This page had expired" in html
    assert "龙头没水</textarea>" in html  # what was typed is kept
    assert _TOKEN.search(html)  # with a fresh token, so sending again works
    assert _counts(world["store"]) == (0, 0)


def test_report_with_a_photo_is_stored_cleaned_and_tracked(world):
    client, ops = world["client"], world["ops"]
    done = _post(client, world["id"], photos=[make_jpeg_with_gps()], description="龙头没水", phone=PHONE)
    token = _tracking_token(done)
    assert "new=1" in done.headers["Location"]
    wo = ops.work_order_for_token(token)
    assert (wo.station_id, wo.category, wo.reports, wo.state) == (world["id"], "no_water", 1, "new")
    (report,) = ops.store.reports(wo.id)
    assert (report.source, report.description, report.phone) == ("web", "龙头没水", PHONE)
    (attachment,) = ops.store.attachments(wo.id)
    assert attachment.public is False  # the reporter's own photo
    path, mime = world["photos"].open(attachment.sha256)
    assert mime == "image/jpeg"
    data = path.read_bytes()
    assert leftover_metadata(data) == []  # no EXIF (GPS included), XMP, comment or ICC
    assert Image.open(io.BytesIO(data)).size == (48, 64)  # EXIF orientation applied, then dropped

    page = client.get(done.headers["Location"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Received — thank you!" in html and '<p class="state state-open">Received</p>' in html
    assert "No water or hot water" in html and "河西公厕" in html and "河西管养所" in html
    assert re.search(r"Due by \d{4}-\d\d-\d\d \d\d:\d\d", html)
    assert "138" not in html and "1234" not in html  # nothing personal
    assert attachment.sha256 not in html  # the reporter's photo is not public
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert '<meta name="robots" content="noindex">' in html


def test_a_second_report_of_the_same_problem_joins_the_first(world):
    client = world["client"]
    first = _tracking_token(_post(client, world["id"]))
    again = _post(client, world["id"], phone="13900000000")
    assert "joined=1" in again.headers["Location"]
    assert _tracking_token(again) == first
    wo = world["ops"].work_order_for_token(first)
    assert wo.reports == 2 and _counts(world["store"]) == (1, 2)
    html = client.get(again.headers["Location"]).get_data(as_text=True)
    assert "Someone already reported this; we added yours." in html
    assert "Reported by 2 people" in html
    assert "13900000000" not in html


def test_the_tracking_page_shows_the_fix_its_public_note_and_photo(world):
    client, ops, manager = world["client"], world["ops"], world["manager"]
    token = _tracking_token(_post(client, world["id"], photos=[make_png(alpha=False)]))
    wo_id = ops.work_order_for_token(token).id
    ops.transition(manager, wo_id, "confirmed", note="internal: call the plumber")
    ops.transition(manager, wo_id, "fixed", note="已修好水管", public=True, photos=[make_jpeg_with_gps(40, 30)])
    html = client.get(f"/r/{token}?lang=en").get_data(as_text=True)
    assert '<p class="state state-fixed">Fixed</p>' in html
    assert "已修好水管" in html and "plumber" not in html  # public notes only
    assert "boss@hexi.example" not in html  # no staff names
    assert "Due by" not in html  # fixed: no clock to show
    fix = [a for a in ops.store.attachments(wo_id) if a.public]
    assert len(fix) == 1 and f'<img src="/media/{fix[0].sha256}"' in html
    assert [m.group(1) for m in re.finditer(r"</time><b>([^<]+)</b>", html)] == ["Received", "Confirmed", "Fixed"]

    ops.transition(manager, wo_id, "closed", reason="resolved")
    zh = client.get(f"/r/{token}?lang=zh-CN").get_data(as_text=True)
    assert '<p class="state state-closed">已关闭 · 问题已解决</p>' in zh


def test_an_unknown_or_forged_tracking_token_is_404(world):
    client = world["client"]
    token = _tracking_token(_post(client, world["id"]))
    wo_id, mac = token.split("-", 1)
    forged = f"{wo_id}-{'A' * len(mac)}"
    for bad in (forged, f"{int(wo_id) + 1}-{mac}", "nonsense", "x" * 500):
        page = client.get(f"/r/{bad}?lang=en")
        assert page.status_code == 404, bad
        assert "cannot find this report" in page.get_data(as_text=True)
        assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("category, fields, message", [
    ("leaking_roof", {}, "unknown problem category 'leaking_roof'"),
    ("", {}, "unknown problem category ''"),
    ("no_water", {"description": "水" * (100 * 1024)}, "description must be at most 1,000 characters"),
    ("no_water", {"phone": "call me maybe"}, "the phone number should be digits"),
])
def test_bad_input_is_400_and_stores_nothing(world, category, fields, message):
    refused = _post(world["client"], world["id"], category, **fields)
    assert refused.status_code == 400
    assert message in unescape(refused.get_data(as_text=True))
    assert _counts(world["store"]) == (0, 0)


def test_bad_input_in_chinese_names_the_field(world):
    refused = _post(world["client"], world["id"], lang="zh-CN", description="龙头", phone="abc")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "电话号码格式不对" in html
    too_many = _post(world["client"], world["id"], lang="zh-CN", photos=[make_png(alpha=False)] * 4)
    assert too_many.status_code == 400 and "最多上传 3 张照片" in too_many.get_data(as_text=True)
    assert "<details open>" in html and 'value="abc"' in html and "龙头</textarea>" in html


def test_a_non_image_photo_is_refused_leaving_no_work_order_and_no_file(world):
    refused = _post(world["client"], world["id"], photos=[make_jpeg_with_gps(), b"%PDF-1.4 not a photo"])
    assert refused.status_code == 400
    assert "photo 2 is not a JPEG, PNG or WebP image" in refused.get_data(as_text=True)
    assert _counts(world["store"]) == (0, 0)
    assert _files(world["photos"].directory) == []


def test_more_than_three_photos_are_refused(world):
    refused = _post(world["client"], world["id"], photos=[make_png(alpha=False)] * 4)
    assert refused.status_code == 400 and "At most 3 photos" in refused.get_data(as_text=True)
    assert _counts(world["store"]) == (0, 0) and _files(world["photos"].directory) == []


def test_a_request_over_the_size_cap_is_413(world, monkeypatch):
    monkeypatch.setitem(world["app"].config, "MAX_CONTENT_LENGTH", 20_000)
    refused = _post(world["client"], world["id"], photos=[bytes(30_000)])
    assert refused.status_code == 413
    assert "too much to upload at once" in refused.get_data(as_text=True)
    assert _counts(world["store"]) == (0, 0)


def test_a_filled_honeypot_stores_nothing(world):
    refused = _post(world["client"], world["id"], website="http://spam.example")
    assert refused.status_code == 400
    assert "could not be sent" in refused.get_data(as_text=True)
    assert _counts(world["store"]) == (0, 0)


# -- limits ------------------------------------------------------------------------------------


def test_the_sixth_report_from_one_address_within_ten_minutes_is_429(world):
    client = world["client"]
    token = _form_token(client, world["id"])
    for _ in range(5):
        assert _post(client, world["id"], token=token).status_code == 303
    page = _post(client, world["id"], token=token, headers=BROWSER)
    assert page.status_code == 429
    assert 1 <= int(page.headers["Retry-After"]) <= 600
    assert "Too many reports; please try again in" in page.get_data(as_text=True)
    api = _post(client, world["id"], token=token)  # not a browser: the JSON envelope
    assert api.status_code == 429 and api.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(api.headers["Retry-After"]) <= 600
    other = _tracking_token(_post_from(client, world["id"], token))  # another address may still report
    assert world["ops"].work_order_for_token(other).reports == 6


def _post_from(client, station_id, token):
    """A report from a new address (the same browser session, so the same CSRF token)."""
    client.environ_base["REMOTE_ADDR"] = _address()
    return _post(client, station_id, token=token)


def test_one_station_takes_a_limited_number_of_reports_from_everyone(world):
    client = world["client"]
    allowed = int(REPORTS_PER_STATION.split()[0])
    token = _form_token(client, world["id"])
    answers = [_post_from(client, world["id"], token).status_code for _ in range(allowed + 1)]
    assert answers == [303] * allowed + [429]
    assert _counts(world["store"]) == (1, allowed)


def test_junk_posts_do_not_use_up_a_stations_reports(world):
    """Only stored reports count against the station: a few addresses posting nonsense must not
    stop residents from reporting there."""
    client = world["client"]
    allowed = int(REPORTS_PER_STATION.split()[0])
    token = _form_token(client, world["id"])
    junk = []
    for _ in range(allowed + 5):
        client.environ_base["REMOTE_ADDR"] = _address()
        junk.append(client.post(f"/s/{world['id']}/report?lang=en",
                                data={"csrf_token": token, "category": "no_such_problem"}).status_code)
    assert set(junk) == {400}
    assert _post_from(client, world["id"], token).status_code == 303
    assert _counts(world["store"]) == (1, 1)


def test_query_names_that_clash_with_the_path_are_ignored(world):
    assert world["client"].get(f"/s/{world['id']}/report?station_id=abc&_external=1").status_code == 200


# -- photos ------------------------------------------------------------------------------------


def test_photos_public_to_all_private_to_the_owning_organisation(world):
    client, ops, app = world["client"], world["ops"], world["app"]
    token = _tracking_token(_post(client, world["id"], photos=[make_jpeg_with_gps()]))
    wo_id = ops.work_order_for_token(token).id
    (private,) = ops.store.attachments(wo_id)
    ops.transition(world["manager"], wo_id, "confirmed")
    ops.transition(world["manager"], wo_id, "fixed", note="修好了", public=True, photos=[make_png(alpha=False)])
    (public,) = [a for a in ops.store.attachments(wo_id) if a.public]

    shown = client.get(f"/media/{public.sha256}")
    assert shown.status_code == 200 and shown.mimetype == "image/jpeg"
    assert shown.data == world["photos"].open(public.sha256)[0].read_bytes()
    assert shown.headers["X-Content-Type-Options"] == "nosniff"
    assert shown.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert shown.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    again = client.get(f"/media/{public.sha256}", headers={"If-None-Match": shown.headers["ETag"]})
    assert again.status_code == 304

    assert client.get(f"/media/{private.sha256}").status_code == 404  # the public
    assert client.get(f"/media/{'0' * 64}").status_code == 404
    assert client.get("/media/../../etc/passwd").status_code == 404
    owner = _log_in(app, "boss@hexi.example")
    seen = owner.get(f"/media/{private.sha256}")
    assert seen.status_code == 200 and seen.headers["Cache-Control"] == "private, no-cache"
    assert seen.headers["X-Content-Type-Options"] == "nosniff"
    other = _log_in(app, "boss@east.example")
    assert other.get(f"/media/{private.sha256}").status_code == 404


# -- station status ------------------------------------------------------------------------------


def test_a_temporary_closure_shows_in_the_api_and_on_the_form(world):
    client, ops = world["client"], world["ops"]
    before = client.get(f"/api/v1/stations/{world['id']}").get_json()
    assert (before["open_state"], before["closed_reason"]) == ("open", None)
    ops.set_station_status(world["manager"], world["id"], "temporarily_closed", reason="管道维修")
    after = client.get(f"/api/v1/stations/{world['id']}").get_json()
    assert (after["open_state"], after["closed_reason"]) == ("closed", "管道维修")
    html = client.get(f"/s/{world['id']}/report?lang=zh-CN").get_data(as_text=True)
    assert "本站暂停开放：管道维修" in html


def test_every_state_and_closing_reason_has_words_in_both_languages():
    assert set(TEXTS) == set(LANGS)
    assert set(STATE_WORDS) == set(STATES) and set(REASON_WORDS) == set(CLOSING_REASONS)
    for words in (*STATE_WORDS.values(), *REASON_WORDS.values()):
        assert set(words) == set(TEXTS) and all(words.values())


def test_access_logs_do_not_keep_tracking_tokens(tmp_path):
    """gunicorn's access log line for a tracking page, through app.logs.AccessLogger: a JSON line
    with the path cut, and no query string, referrer or client address at all."""
    import json
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config

    from app.logs import AccessLogger

    token = "42-AbC_d-Ef0123456789xyzQ"
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"/r/{token}?new=1", "PATH_INFO": f"/r/{token}",
               "QUERY_STRING": "new=1", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "203.0.113.5",
               "HTTP_REFERER": f"https://yizhan.example.cn/open311/v2/tokens/{token}.json",
               "yizhan.request_id": "rid-1", "yizhan.endpoint": "reporting.track"}
    response = SimpleNamespace(status="200 OK", headers=[], sent=10)
    request = SimpleNamespace(headers=[("Referer", environ["HTTP_REFERER"])])
    cfg = Config()
    cfg.set("accesslog", str(tmp_path / "access.log"))
    logger = AccessLogger(cfg)
    logger.access(response, request, environ, timedelta(milliseconds=3))
    for handler in logger.access_log.handlers:
        handler.flush()
    text = (tmp_path / "access.log").read_text()
    assert token not in text and "203.0.113.5" not in text and "new=1" not in text and "Referer" not in text
    line = json.loads(text)
    assert (line["path"], line["status"], line["request_id"], line["endpoint"]) == ("/r/…", 200, "rid-1",
                                                                                    "reporting.track")
