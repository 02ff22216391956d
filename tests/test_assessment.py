"""Assessment reports (考核) against the hand-worked quarter of tests/assessment_world.py, on both
stores: the figures through the service, the JSON answer, the CSV and XLSX downloads parsed back,
who may see what, bad input, and the staff page with its SVG charts.
"""
from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import datetime

import pytest
from openpyxl import load_workbook
from sqlalchemy import text

from app.auth import limiter
from app.ops.assessment import FIGURES, assess, period
from app.ops.assessment_export import COLUMNS, rows
from app.ops.errors import Forbidden, Invalid, NotFound
from tests.assessment_world import (
    ADMIN, AS_OF, BOSS, CHEN, LI, PASSWORD, SHANGHAI, WANG, WEST_BOSS, ZHANG, build,
)

# The hand-worked figures (see tests/assessment_world.py for every step): (this period, previous).
ORGANISATION = {
    "satisfaction_pct": (80.0, 100.0), "star_average": (3.5, 1.0), "reports_per_station": (2.0, 0.25),
    "response_on_time_pct": (71.4, 100.0), "resolution_on_time_pct": (50.0, 100.0),
    "response_median_min": (8.0, 5.0), "response_p90_min": (22.5, 5.0),
    "resolution_median_h": (4.0, 1.0), "resolution_p90_h": (29.6, 1.0),
    "inspection_pct": (1.4, 0.4), "intact_pct": (98.4, 100.0), "work_orders": (7, 1),
}
ZHANG_FIGURES = {
    "satisfaction_pct": (75.0, 100.0), "star_average": (4.0, 1.0), "reports_per_station": (3.0, 0.5),
    "response_on_time_pct": (80.0, 100.0), "resolution_on_time_pct": (50.0, 100.0),
    "response_median_min": (10.0, 5.0), "response_p90_min": (24.0, 5.0),
    "resolution_median_h": (15.0, 1.0), "resolution_p90_h": (30.2, 1.0),
    "inspection_pct": (1.6, 0.5), "intact_pct": (97.8, 100.0), "work_orders": (5, 1),
}
# li had nothing in Q2: no answers, ratings, work orders -> no value (never 0 or 100).
LI_FIGURES = {
    "satisfaction_pct": (100.0, None), "star_average": (2.0, None), "reports_per_station": (2.0, 0.0),
    "response_on_time_pct": (50.0, None), "resolution_on_time_pct": (50.0, None),
    "response_median_min": (6.0, None), "response_p90_min": (6.0, None),
    "resolution_median_h": (2.0, None), "resolution_p90_h": (2.0, None),
    "inspection_pct": (1.1, 0.0), "intact_pct": (97.8, 100.0), "work_orders": (2, 0),
}
BY_CATEGORY = {
    "no_water": {"work_orders": 4, "response_median_min": 10.0, "response_p90_min": 14.0,
                 "resolution_median_h": 18.0, "resolution_p90_h": 29.2},
    "dirty": {"work_orders": 3, "response_median_min": 6.0, "response_p90_min": 25.2,
              "resolution_median_h": 2.0, "resolution_p90_h": 21.2},
}


@pytest.fixture
def world(store, ops):
    return build(store, ops)


def _figures(section) -> dict:
    return {code: (v.value, v.previous) for code, v in section.figures.items()}


def test_quarter_figures_for_the_organisation(world):
    report = assess(world.ops, world.user(BOSS), "east", "2026Q3", AS_OF)
    assert (report.period.code, report.previous.code, report.scope) == ("2026Q3", "2026Q2", "organisation")
    assert _figures(report.total) == ORGANISATION
    assert report.total.stations == 4
    # What each figure was computed over: answers, ratings, stations, clocks, station-days.
    counted = {code: v.n for code, v in report.total.figures.items()}
    assert counted["satisfaction_pct"] == 5 and counted["star_average"] == 4
    assert counted["response_on_time_pct"] == 7 and counted["resolution_on_time_pct"] == 6
    assert counted["response_median_min"] == 6 and counted["resolution_median_h"] == 5
    assert counted["inspection_pct"] == 276 and counted["intact_pct"] == 368
    assert report.total.figures["inspection_pct"].previous_n == 273  # Q2 has 91 days
    got = {cat: {code: v.value for code, v in figs.items()} for cat, figs in report.total.by_category.items()}
    assert got == BY_CATEGORY
    problems = [(p.category, p.work_orders, [(s.station_id, s.work_orders) for s in p.stations])
                for p in report.total.problems]
    s1 = world.station["S1"]
    assert problems == [("no_water", 4, [(s1, 2)]), ("dirty", 3, [(s1, 2)])]


def test_quarter_figures_per_station_manager(world):
    report = assess(world.ops, world.user(BOSS), "east", "2026Q3", AS_OF)
    assert [(m.manager_email, m.stations) for m in report.managers] == [(LI, 1), (ZHANG, 2)]
    by_email = {m.manager_email: m for m in report.managers}
    assert _figures(by_email[ZHANG]) == ZHANG_FIGURES
    assert _figures(by_email[LI]) == LI_FIGURES


def test_targets_are_judged_in_their_direction(world):
    report = assess(world.ops, world.user(BOSS), "east", "2026Q3", AS_OF)
    met = {f.code: f.met(report.total.figures[f.code].value) for f in FIGURES}
    assert met["intact_pct"] is True  # 98.4 >= 98
    assert met["satisfaction_pct"] is False  # 80 < 90
    assert met["response_median_min"] is True and met["response_p90_min"] is False  # 8 <= 20 < 22.5
    assert met["star_average"] is None  # the standard sets no target


def test_a_month_and_the_month_before(world):
    report = assess(world.ops, world.user(ADMIN), "east", "2026-08", AS_OF)
    assert (report.period.start, report.period.end) == (datetime(2026, 8, 1, tzinfo=SHANGHAI),
                                                        datetime(2026, 9, 1, tzinfo=SHANGHAI))
    figures = _figures(report.total)
    # August: WO2 (late) and WO3 (on time); July: WO1 and WO6, both on time.
    assert figures["response_on_time_pct"] == (50.0, 100.0)
    # August: 4 stations x 31 days, S1 faulty 20-22 August; July: S1 faulty on 10 July.
    assert figures["intact_pct"] == (round(121 / 124 * 100, 1), round(123 / 124 * 100, 1))
    assert figures["work_orders"] == (2, 2)


def test_period_boundaries_are_local_midnight():
    q1 = period("2027Q1", SHANGHAI)
    assert (q1.start.isoformat(), q1.end.isoformat()) == ("2027-01-01T00:00:00+08:00", "2027-04-01T00:00:00+08:00")
    assert len(q1.days) == 90 and q1.previous().code == "2026Q4"
    assert period("2026-01", SHANGHAI).previous().code == "2025-12"
    assert period("2026-12", SHANGHAI).end.isoformat() == "2027-01-01T00:00:00+08:00"


def test_a_station_manager_sees_only_their_own_figures(world):
    report = assess(world.ops, world.user(ZHANG), "east", "2026Q3", AS_OF)
    assert report.scope == "station_manager" and report.total is None
    assert [m.manager_email for m in report.managers] == [ZHANG]
    assert _figures(report.managers[0]) == ZHANG_FIGURES


@pytest.mark.parametrize("email, org, error", [
    (WANG, "east", Forbidden),  # a worker of east: sees the organisation, but not the role's
    (WEST_BOSS, "east", NotFound),  # another organisation: as if absent
    (CHEN, "east", NotFound),
    (BOSS, "nowhere", NotFound),
    (ADMIN, "nowhere", NotFound),
])
def test_who_may_not_see_it(world, email, org, error):
    with pytest.raises(error):
        assess(world.ops, world.user(email), org, "2026Q3", AS_OF)


@pytest.mark.parametrize("code", ["2026Q5", "2026-13", "2026-1", "26Q3", "2026q3", "2026Q3 ", "", "2100Q1"])
def test_malformed_periods(world, code):
    with pytest.raises(Invalid) as caught:
        assess(world.ops, world.user(BOSS), "east", code, AS_OF)
    assert caught.value.field == "period"


def test_a_period_that_has_not_begun(world):
    with pytest.raises(Invalid, match="not begun"):
        assess(world.ops, world.user(BOSS), "east", "2027Q1", AS_OF)


def test_the_export_table_holds_the_report(world):
    report = assess(world.ops, world.user(BOSS), "east", "2026Q3", AS_OF)
    table = rows(report, "zh-CN")
    assert table[0] == [c.names["zh-CN"] for c in COLUMNS]
    assert len(table) == 1 + len(FIGURES) * 3 + 2 * 5 * 3  # 3 scopes; 2 categories x 5 figures each


# -- the API ---------------------------------------------------------------------------------

URL = "/api/v1/ops/assessment"


def _get(client, world, email, **query):
    return client.get(URL, query_string=query, headers=world.bearer(email))


def test_json_answer_holds_the_hand_worked_figures(client, world):
    answer = _get(client, world, BOSS, org="east", period="2026Q3")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    body = answer.get_json()
    assert body["period"] == {"code": "2026Q3", "start": "2026-07-01T00:00:00+08:00",
                              "end": "2026-10-01T00:00:00+08:00"}
    assert body["previous_period"]["code"] == "2026Q2" and body["scope"] == "organisation"
    assert [f["code"] for f in body["figures"]] == [f.code for f in FIGURES]
    total = body["total"]["figures"]
    assert {code: (v["value"], v["previous"]) for code, v in total.items()} == ORGANISATION
    assert total["intact_pct"] == {"value": 98.4, "n": 368, "previous": 100.0, "previous_n": 364,
                                   "target": 98, "met": True}
    assert total["satisfaction_pct"]["met"] is False and total["star_average"]["met"] is None
    categories = {c["category"]: {k: v["value"] for k, v in c["figures"].items()} for c in body["total"]["by_category"]}
    assert categories == BY_CATEGORY
    assert body["total"]["frequent_problems"][0] == {
        "category": "no_water", "name": {"zh-CN": "无水/无热水", "en": "No water or hot water"}, "work_orders": 4,
        "recurring_at": [{"station_id": world.station["S1"], "station_name": "站 S1", "work_orders": 2}]}
    managers = {m["manager"]: {k: (v["value"], v["previous"]) for k, v in m["figures"].items()}
                for m in body["managers"]}
    assert managers == {ZHANG: ZHANG_FIGURES, LI: LI_FIGURES}


def test_a_station_manager_gets_their_own_figures_only(client, world):
    body = _get(client, world, LI, org="east", period="2026Q3").get_json()
    assert body["scope"] == "station_manager" and body["total"] is None
    assert [m["manager"] for m in body["managers"]] == [LI]
    assert {k: (v["value"], v["previous"]) for k, v in body["managers"][0]["figures"].items()} == LI_FIGURES


def _json_rows(body) -> dict:
    """(scope label, category code or None, figure code) -> (value, previous, n) from the JSON answer."""
    out = {}
    sections = ([("单位 荷塘区环卫所", body["total"])] if body["total"] else []) + [
        (f"站长 {m['manager']}", m) for m in body["managers"]]
    for label, section in sections:
        for code, v in section["figures"].items():
            out[(label, "全部", code)] = (v["value"], v["previous"], v["n"])
        for c in section["by_category"]:
            for code, v in c["figures"].items():
                out[(label, c["name"]["zh-CN"], code)] = (v["value"], v["previous"], v["n"])
    return out


def _number(cell: str):
    return None if cell == "" else (int(cell) if cell.lstrip("-").isdigit() else float(cell))


def test_csv_holds_the_same_numbers_as_json(client, world):
    body = _get(client, world, BOSS, org="east", period="2026Q3").get_json()
    answer = _get(client, world, BOSS, org="east", period="2026Q3", format="csv")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert answer.headers["Content-Disposition"] == 'attachment; filename="assessment-east-2026Q3.csv"'
    assert answer.data.startswith(b"\xef\xbb\xbf")  # the BOM: Excel and WPS then read UTF-8
    table = list(csv.reader(io.StringIO(answer.data.decode("utf-8-sig"))))
    assert table[0] == ["范围", "问题类别", "指标", "指标代码", "单位", "本期", "上期", "目标", "是否达标", "计算基数"]
    parsed = {(r[0], r[1], r[3]): (_number(r[5]), _number(r[6]), int(r[9])) for r in table[1:]}
    assert parsed == _json_rows(body)
    intact = next(r for r in table if r[0] == "单位 荷塘区环卫所" and r[3] == "intact_pct")
    assert intact[2] == "设施完好率" and intact[4] == "%" and intact[7] == "98" and intact[8] == "是"


def test_xlsx_holds_the_same_numbers_as_json(client, world):
    body = _get(client, world, BOSS, org="east", period="2026Q3").get_json()
    answer = _get(client, world, BOSS, org="east", period="2026Q3", format="xlsx")
    assert answer.status_code == 200
    assert answer.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = load_workbook(io.BytesIO(answer.data))
    assert book.sheetnames == ["考核指标", "高发问题"]
    table = [list(r) for r in book["考核指标"].iter_rows(values_only=True)]
    assert table[0][:6] == ["范围", "问题类别", "指标", "指标代码", "单位", "本期"]
    parsed = {(r[0], r[1], r[3]): (r[5], r[6], r[9]) for r in table[1:]}
    assert parsed == _json_rows(body)
    problems = [list(r) for r in book["高发问题"].iter_rows(values_only=True)]
    assert problems[0][:3] == ["范围", "问题类别", "工单数"]
    assert ["单位 荷塘区环卫所", "无水/无热水", 4, world.station["S1"], "站 S1", 2] in problems


@pytest.mark.parametrize("query, field", [
    ({"org": "east", "period": "2026Q5"}, "period"),
    ({"org": "east", "period": "2026-1"}, "period"),
    ({"org": "east", "period": "2027Q4"}, "period"),  # has not begun
    ({"org": "East!", "period": "2026Q3"}, "org"),
    ({"org": "x" * 41, "period": "2026Q3"}, "org"),
    ({"period": "2026Q3"}, "org"),
    ({"org": "east"}, "period"),
    ({"org": "east", "period": ""}, "period"),
    ({"org": "east", "period": "2026Q3", "format": "pdf"}, "format"),
])
def test_bad_input_is_a_clear_400(client, world, query, field):
    answer = _get(client, world, BOSS, **query)
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert error["field"] == field and error["message"]


def test_refusals(client, world):
    assert client.get(URL, query_string={"org": "east", "period": "2026Q3"}).status_code == 401
    assert _get(client, world, WANG, org="east", period="2026Q3").status_code == 403
    for email in (WEST_BOSS, BOSS):  # west's report for east's manager; an unknown code: the same 404
        org = "east" if email == WEST_BOSS else "nowhere"
        answer = _get(client, world, email, org=org, period="2026Q3")
        assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "not_found"


# -- the staff page ------------------------------------------------------------------------------

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def browse(app, client, world, monkeypatch):
    """A logged-in browser for an e-mail (its own rate-limit counts)."""
    monkeypatch.setattr(limiter, "_key_prefix", f"yizhan-test-{uuid.uuid4().hex}")

    def log_in(email):
        browser = app.test_client()
        page = browser.get("/staff/login").get_data(as_text=True)
        done = browser.post("/staff/login", data={"email": email, "password": PASSWORD,
                                                  "csrf_token": _TOKEN.search(page).group(1)})
        assert done.status_code == 302
        return browser
    return log_in


def test_the_page_shows_figures_charts_and_downloads(browse):
    page = browse(BOSS).get("/staff/assessment?period=2026Q3")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert 'href="/staff/assessment"' in html  # in the navigation
    # Server-drawn SVG charts: the targets chart per section, response times per category, 站长s.
    assert html.count('<svg class="chart"') == 3 * 2 + 1
    assert 'id="org-targets"' in html and 'id="chart-managers"' in html
    intact = re.search(r'<tr data-code="intact_pct">\s*<th>设施完好率 <span class="hint">%</span></th>\s*'
                       r'<td>([^<]*)</td><td>([^<]*)</td>', html)
    assert intact.groups() == ("98.4", "100.0")
    assert re.search(r'<tr data-code="satisfaction_pct" class="missed">', html)  # 80 < 90
    assert 'href="/api/v1/ops/assessment?org=east&amp;period=2026Q3&amp;format=csv"' in html
    assert 'href="/api/v1/ops/assessment?org=east&amp;period=2026Q3&amp;format=xlsx"' in html
    assert "无水/无热水</b> × 4 — 重复发生：站 S1 ×2" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from another host


def test_the_session_downloads_the_file_the_page_links(browse):
    browser = browse(BOSS)
    answer = browser.get("/api/v1/ops/assessment?org=east&period=2026Q3&format=csv")
    assert answer.status_code == 200 and answer.data.startswith(b"\xef\xbb\xbf")


def test_a_station_manager_sees_their_own_section_in_english(browse):
    html = browse(ZHANG).get("/staff/assessment?period=2026Q3&lang=en").get_data(as_text=True)
    assert "Station manager zhang@east.example (2 stations)" in html
    assert "The whole organisation" not in html and LI not in html
    assert 'id="chart-managers"' not in html and "Facilities intact" in html


def test_the_page_refuses_workers_and_names_a_bad_period(browse):
    worker = browse(WANG)
    assert worker.get("/staff/assessment").status_code == 403
    assert 'href="/staff/assessment"' not in worker.get("/staff/").get_data(as_text=True)
    bad = browse(BOSS).get("/staff/assessment?period=2026Q9")
    assert bad.status_code == 400 and '<p class="problem">' in bad.get_data(as_text=True)


def test_an_admin_chooses_the_organisation(browse):
    admin = browse(ADMIN)
    first = admin.get("/staff/assessment").get_data(as_text=True)
    assert 'name="org"' in first and '<svg class="chart"' not in first
    chosen = admin.get("/staff/assessment?org=east&period=2026Q3").get_data(as_text=True)
    assert "荷塘区环卫所 · 2026Q3 考核" in chosen and chosen.count('<svg class="chart"') == 7
    assert admin.get("/staff/assessment?org=nowhere&period=2026Q3").status_code == 404


def test_names_that_look_like_formulas_stay_text_in_both_downloads(client, world, connection):
    """CSV injection: a station name (public data) or a category name (the organisation's) starting
    with = + - @ must not become a formula when the download is opened in Excel or WPS."""
    evil = '=HYPERLINK("http://example.com/x","点我")'
    connection.execute(text("UPDATE station SET name = :n WHERE id = :id"), {"n": evil, "id": world.station["S1"]})
    book = load_workbook(io.BytesIO(_get(client, world, BOSS, org="east", period="2026Q3", format="xlsx").data))
    cells = [c for row in book["高发问题"].iter_rows() for c in row if c.value == evil]
    assert cells and all(c.data_type == "s" for c in cells)  # text cells holding the name as it is
    from app.ops.assessment_export import _csv_cell
    assert _csv_cell(evil) == "'" + evil and _csv_cell("-3") == "'-3" and _csv_cell(-3) == -3
    assert _csv_cell("荷塘区") == "荷塘区" and _csv_cell(None) == ""
