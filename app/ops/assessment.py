"""Assessment reports (考核, issue #9 §2): how well an organisation and each of its station managers
(站长) ran their stations in a month or a quarter, each figure beside the standard's target and the
previous period's value. No Flask here.

The figures are declared once, in ``FIGURES``: their code (the JSON key), Chinese and English
labels, unit, target and direction. The JSON answer, the CSV / XLSX headers
(app.ops.assessment_export) and the staff page's labels are all read from it. The numbers are
counted in SQL (app.ops.assessment_sql); this module decides who may see what, which periods
exist, and how the counts become figures.

Who may see it follows the work-order scope rules of app.ops.service: admins any organisation;
an org manager their own (the organisation and every 站长); a station manager their own
organisation, but only their own figures; workers none (403). Another organisation's report is
404, as if it did not exist.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.dbtime import utcnow
from app.ops.assessment_sql import AssessmentQueries, Counts, Scope
from app.ops.errors import Forbidden, Invalid, NotFound

# -- the figures -------------------------------------------------------------------------

UNITS: dict[str, dict[str, str]] = {
    "%": {"zh-CN": "%", "en": "%"},
    "stars": {"zh-CN": "星", "en": "stars"},
    "per_station": {"zh-CN": "件/站", "en": "per station"},
    "min": {"zh-CN": "分钟", "en": "min"},
    "h": {"zh-CN": "小时", "en": "h"},
    "count": {"zh-CN": "件", "en": "count"},
}


@dataclass(frozen=True)
class Figure:
    code: str  # the JSON key
    names: dict[str, str]  # zh-CN, en
    unit: str  # a key of UNITS
    target: float | None  # the standard's target, None when it sets none
    direction: str  # "higher" or "lower" is better
    decimals: int
    by_category: bool = False  # also given per problem category

    def met(self, value: float | None) -> bool | None:
        """Whether ``value`` meets the target (None without a value or a target)."""
        if value is None or self.target is None:
            return None
        return value >= self.target if self.direction == "higher" else value <= self.target


# Targets from the public-facility service standard the issue quotes: respond within 20 minutes,
# process efficiency (办结率) ≥ 95 %, facilities intact ≥ 98 %, satisfaction ≥ 90 %.
FIGURES: tuple[Figure, ...] = (
    Figure("satisfaction_pct", {"zh-CN": "满意率（满意+基本满意）", "en": "Satisfaction (satisfied + mostly)"},
           "%", 90, "higher", 1),
    Figure("star_average", {"zh-CN": "星级评分均值", "en": "Average stars"}, "stars", None, "higher", 2),
    Figure("reports_per_station", {"zh-CN": "每站报告数", "en": "Reports per station"}, "per_station", None,
           "lower", 2),
    Figure("response_on_time_pct", {"zh-CN": "按时响应率", "en": "Responded within limit"}, "%", 95, "higher", 1),
    Figure("resolution_on_time_pct", {"zh-CN": "按时办结率", "en": "Resolved within limit"}, "%", 95, "higher", 1),
    Figure("response_median_min", {"zh-CN": "响应时间中位数", "en": "Median time to respond"}, "min", 20, "lower",
           1, by_category=True),
    Figure("response_p90_min", {"zh-CN": "响应时间 P90", "en": "Time to respond, p90"}, "min", 20, "lower", 1,
           by_category=True),
    Figure("resolution_median_h", {"zh-CN": "办结时间中位数", "en": "Median time to resolve"}, "h", None, "lower",
           2, by_category=True),
    Figure("resolution_p90_h", {"zh-CN": "办结时间 P90", "en": "Time to resolve, p90"}, "h", None, "lower", 2,
           by_category=True),
    Figure("inspection_pct", {"zh-CN": "巡查完成率（实巡/应巡）", "en": "Inspections done / due"}, "%", None,
           "higher", 1),
    Figure("intact_pct", {"zh-CN": "设施完好率", "en": "Facilities intact"}, "%", 98, "higher", 1),
    Figure("work_orders", {"zh-CN": "工单数", "en": "Work orders"}, "count", None, "lower", 0, by_category=True),
)
FIGURE = {f.code: f for f in FIGURES}
CATEGORY_FIGURES = tuple(f for f in FIGURES if f.by_category)

# Problems that mean a facility is not intact (the other categories are cleanliness, supplies,
# wrong details): a station-day with one of these open is not an intact day.
FAULT_CATEGORIES = ("no_water", "facility_broken", "accessible_broken", "cabinet_fault", "safety")
# Closed as not a problem of the organisation's: no resolution clock to judge, and no fault.
NOT_OURS = ("duplicate", "not_responsible")
TOP_PROBLEMS = 5  # the most frequent categories listed
RECURS_AT = 2  # work orders of one category at one station in a period: it recurs

# -- periods ------------------------------------------------------------------------------

PERIOD_PATTERN = re.compile(r"^(20[0-9]{2})(?:Q([1-4])|-(0[1-9]|1[0-2]))$")
PERIOD_EXAMPLE = "2026Q4 (a quarter) or 2026-11 (a month)"


@dataclass(frozen=True)
class Period:
    code: str  # 2026Q4 or 2026-11
    start: datetime  # local midnight of the first day (aware)
    end: datetime  # local midnight after the last day (exclusive)

    @property
    def days(self) -> list[tuple[datetime, datetime]]:
        """Each local day as [start, end): exact in any zone (a day is midnight to midnight)."""
        zone, out, day = self.start.tzinfo, [], self.start.date()
        while day < self.end.date():
            nxt = day + timedelta(days=1)
            out.append((datetime.combine(day, time(0), zone), datetime.combine(nxt, time(0), zone)))
            day = nxt
        return out

    def previous(self) -> Period:
        year, quarter, month = _parts(self.code)
        if quarter:
            year, quarter = (year, quarter - 1) if quarter > 1 else (year - 1, 4)
            return period(f"{year}Q{quarter}", self.start.tzinfo)
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        return period(f"{year}-{month:02d}", self.start.tzinfo)


def _parts(code: str) -> tuple[int, int | None, int | None]:
    found = PERIOD_PATTERN.match(code or "")
    if not found:
        raise Invalid(f"'period' must be {PERIOD_EXAMPLE}, got {code!r}", "period")
    year, quarter, month = found.groups()
    return int(year), int(quarter) if quarter else None, int(month) if month else None


def period(code: str, zone) -> Period:
    """The period ``code`` names, its boundaries at local midnight in ``zone``."""
    year, quarter, month = _parts(code)
    first = (quarter - 1) * 3 + 1 if quarter else month
    months = 3 if quarter else 1
    after_year, after_month = (year + 1, first + months - 12) if first + months > 12 else (year, first + months)
    start = datetime(year, first, 1, tzinfo=zone)
    end = datetime(after_year, after_month, 1, tzinfo=zone)
    return Period(code, start, end)


def current_period_code(now: datetime, zone) -> str:
    """The quarter ``now`` falls in (the page's default)."""
    local = now.astimezone(zone)
    return f"{local.year}Q{(local.month - 1) // 3 + 1}"


# -- the report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    value: float | None  # None: nothing to compute it over (never shown as 0 or 100)
    n: int  # what it was computed over: answers, ratings, stations, work orders, station-days …
    previous: float | None
    previous_n: int


@dataclass(frozen=True)
class Recurring:
    station_id: int
    station_name: str | None
    work_orders: int


@dataclass(frozen=True)
class Problem:
    category: str
    work_orders: int
    stations: list[Recurring]  # where it came back (≥ RECURS_AT work orders at the station)


@dataclass
class Section:
    """The figures of one scope: the whole organisation, or one 站长's stations."""

    manager_id: int | None
    manager_email: str | None
    stations: int
    figures: dict[str, Value]
    by_category: dict[str, dict[str, Value]]  # category code -> the by_category figures
    problems: list[Problem]


@dataclass
class Report:
    organisation: object  # app.ops.accounts.Organisation
    period: Period
    previous: Period
    as_of: datetime
    scope: str  # "organisation" (org managers, admins) or "station_manager" (their own figures)
    category_names: dict[str, dict[str, str]]
    total: Section | None  # None for a station manager: the organisation's figures are not theirs
    managers: list[Section] = field(default_factory=list)

    def sections(self) -> list[Section]:
        return ([self.total] if self.total else []) + self.managers


ASSESSING_ROLES = ("admin", "org_manager", "station_manager")


def assess(ops, principal, org_code: str, period_code: str, now: datetime | None = None) -> Report:
    """The assessment report of ``org_code`` for ``period_code`` as ``principal`` may see it."""
    now = now or utcnow()
    org = ops.accounts.organisation_by_code(org_code)
    if org is None or (principal.role != "admin" and principal.organisation_id != org.id):
        raise NotFound(f"No organisation {org_code!r}.", "org")  # another's is as if absent
    if principal.role not in ASSESSING_ROLES:
        raise Forbidden("assessment reports are for managers (org managers, 站长) and admins")
    zone = ZoneInfo(org.timezone)
    asked = period(period_code, zone)
    if asked.start > now:
        raise Invalid(f"period {period_code} has not begun yet", "period")
    before = asked.previous()
    queries = AssessmentQueries(ops.stations, faults=FAULT_CATEGORIES, not_ours=NOT_OURS, recurs_at=RECURS_AT)
    if principal.role == "station_manager":
        managers = [(principal.id, principal.email)]
        total = None
    else:
        managers = queries.managers(org.id)
        total = _section(queries, Scope(org.id, None), None, None, asked, before, now)
    sections = [_section(queries, Scope(org.id, mid), mid, email, asked, before, now) for mid, email in managers]
    names = {c.code: c.names for c in org.categories}
    for section in ([total] if total else []) + sections:  # categories the organisation has since removed
        for code in section.by_category:
            names.setdefault(code, {"zh-CN": code, "en": code})
    return Report(org, asked, before, now, "organisation" if total else "station_manager", names, total, sections)


def _section(queries: AssessmentQueries, scope: Scope, manager_id, email, asked: Period, before: Period,
             now: datetime) -> Section:
    current, previous = queries.counts(scope, asked, now), queries.counts(scope, before, now)
    figures = {code: Value(*_pair(code, current.figures, previous.figures)) for code in FIGURE}
    categories = sorted(set(current.by_category) | set(previous.by_category))
    by_category = {cat: {f.code: Value(*_pair(f.code, current.by_category.get(cat, {}),
                                              previous.by_category.get(cat, {}))) for f in CATEGORY_FIGURES}
                   for cat in categories}
    return Section(manager_id, email, current.stations, figures, by_category, _problems(current))


def _pair(code: str, now_values: dict, before_values: dict) -> tuple:
    value, n = now_values.get(code, (None, 0))
    previous, previous_n = before_values.get(code, (None, 0))
    digits = FIGURE[code].decimals
    return (_round(value, digits), n, _round(previous, digits), previous_n)


def _round(value: float | None, digits: int):
    if value is None:
        return None
    return int(round(value)) if digits == 0 else round(float(value), digits)


def _problems(counts: Counts) -> list[Problem]:
    ranked = sorted(((values["work_orders"][0], cat) for cat, values in counts.by_category.items()
                     if values.get("work_orders", (0, 0))[0]), key=lambda item: (-item[0], item[1]))
    return [Problem(cat, int(n), [Recurring(*row) for row in counts.recurring.get(cat, [])])
            for n, cat in ranked[:TOP_PROBLEMS]]
