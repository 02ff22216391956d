"""The assessment report as a table, and that table as CSV or XLSX downloads that open cleanly in
WPS and Excel. No Flask here.

One long table (a row per scope × category × figure) so that every figure of app.ops.assessment's
``FIGURES`` appears once per scope, with its label, unit, target and the previous period beside
it; the column headers are ``COLUMNS``' names. CSV is UTF-8 with a byte-order mark (without it
Excel on Windows reads the Chinese headers as the local code page); XLSX (openpyxl) adds a second
sheet with the most frequent problems and the stations where they recur.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from openpyxl import Workbook
from openpyxl.styles import Font

from app.ops.assessment import CATEGORY_FIGURES, FIGURES, UNITS, Report, Section

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


@dataclass(frozen=True)
class Column:
    code: str
    names: dict[str, str]


_SCOPE = Column("scope", {"zh-CN": "范围", "en": "Scope"})
_CATEGORY = Column("category", {"zh-CN": "问题类别", "en": "Category"})
COLUMNS = (
    _SCOPE,
    _CATEGORY,
    Column("figure", {"zh-CN": "指标", "en": "Figure"}),
    Column("code", {"zh-CN": "指标代码", "en": "Code"}),
    Column("unit", {"zh-CN": "单位", "en": "Unit"}),
    Column("value", {"zh-CN": "本期", "en": "This period"}),
    Column("previous", {"zh-CN": "上期", "en": "Previous period"}),
    Column("target", {"zh-CN": "目标", "en": "Target"}),
    Column("met", {"zh-CN": "是否达标", "en": "Target met"}),
    Column("n", {"zh-CN": "计算基数", "en": "Counted over"}),
)
PROBLEM_COLUMNS = (
    _SCOPE,
    _CATEGORY,
    Column("work_orders", {"zh-CN": "工单数", "en": "Work orders"}),
    Column("station_id", {"zh-CN": "重复发生站点编号", "en": "Recurring at station id"}),
    Column("station", {"zh-CN": "站点", "en": "Station"}),
    Column("station_work_orders", {"zh-CN": "该站工单数", "en": "Work orders there"}),
)
WORDS = {
    "zh-CN": {"all": "全部", "yes": "是", "no": "否", "organisation": "单位", "manager": "站长",
              "figures": "考核指标", "problems": "高发问题"},
    "en": {"all": "All", "yes": "yes", "no": "no", "organisation": "Organisation", "manager": "Station manager",
           "figures": "Figures", "problems": "Frequent problems"},
}


def scope_label(report: Report, section: Section, lang: str) -> str:
    words = WORDS[lang]
    if section.manager_email is None:
        return f"{words['organisation']} {report.organisation.name}"
    return f"{words['manager']} {section.manager_email}"


def rows(report: Report, lang: str) -> list[list]:
    """The header, then a row per scope (organisation first, then each 站长) × figure, then the
    per-category figures of each scope."""
    words = WORDS[lang]
    out: list[list] = [[c.names[lang] for c in COLUMNS]]

    def row(scope, category, figure, value):
        met = figure.met(value.value)
        out.append([scope, category, figure.names[lang], figure.code, UNITS[figure.unit][lang], value.value,
                    value.previous, figure.target, "" if met is None else words["yes" if met else "no"], value.n])

    for section in report.sections():
        for figure in FIGURES:
            row(scope_label(report, section, lang), words["all"], figure, section.figures[figure.code])
    for section in report.sections():
        for category, values in section.by_category.items():
            for figure in CATEGORY_FIGURES:
                row(scope_label(report, section, lang), report.category_names[category][lang], figure,
                    values[figure.code])
    return out


def problem_rows(report: Report, lang: str) -> list[list]:
    out: list[list] = [[c.names[lang] for c in PROBLEM_COLUMNS]]
    for section in report.sections():
        for problem in section.problems:
            name = report.category_names[problem.category][lang]
            for place in problem.stations or [None]:
                out.append([scope_label(report, section, lang), name, problem.work_orders,
                            place.station_id if place else None, place.station_name if place else None,
                            place.work_orders if place else None])
    return out


# A text cell starting with one of these is read as a formula by Excel and WPS (CSV injection, OWASP).
# Station names come from imports of public data and category names from each organisation, so a
# name like =HYPERLINK(…) must stay text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(cell):
    if cell is None:
        return ""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell  # the spreadsheet convention for "this is text"; shown without the quote mark
    return cell


def to_csv(report: Report, lang: str = "zh-CN") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180 line ends, as Excel writes them
    for line in rows(report, lang):
        writer.writerow([_csv_cell(cell) for cell in line])
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(report: Report, lang: str = "zh-CN") -> bytes:
    words = WORDS[lang]
    book = Workbook()
    sheets = ((book.active, words["figures"], rows(report, lang)),
              (book.create_sheet(), words["problems"], problem_rows(report, lang)))
    for sheet, title, table in sheets:
        sheet.title = title
        for line in table:
            sheet.append(line)  # None stays an empty cell, numbers stay numbers
            for cell in sheet[sheet.max_row]:
                if isinstance(cell.value, str) and cell.value.startswith(FORMULA_STARTS):
                    cell.data_type = "s"  # openpyxl took "=…" for a formula: keep it the text it is
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
        for column in sheet.columns:
            width = max(len(str(c.value or "")) for c in column)
            sheet.column_dimensions[column[0].column_letter].width = min(max(10, width * 1.6), 60)
    book.properties.title = f"{report.organisation.name} {report.period.code}"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def filename(report: Report, extension: str) -> str:
    """ASCII only (the organisation's code): a safe Content-Disposition everywhere."""
    return f"assessment-{report.organisation.code}-{report.period.code}.{extension}"
