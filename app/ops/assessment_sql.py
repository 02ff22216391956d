"""The assessment report's SQL (app.ops.assessment): every count, share, average and percentile is
computed by the database, on either store, with every value a bound parameter. No Flask here.

The two dialects differ in three places, each isolated in one function below:

* time differences — ``EXTRACT(EPOCH FROM …)`` on PostGIS, ``julianday`` on SQLite (``_minutes``);
* percentiles — PostgreSQL's ordered-set aggregate ``percentile_cont``; SQLite has none, so the
  same linear interpolation (position p·(n−1) between the sorted values) is done with window
  functions (``row_number``/``count`` over the group) and one aggregate (``_percentiles``);
* nothing else: local days are bound as a list of [start, end) instants (``_days_cte``), so
  "which local day" needs no time-zone support in SQL and is exact on both stores.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, text

from app.dbtime import to_db

GOOD_ANSWERS = ("satisfied", "basically_satisfied")  # app.ops.feedback's 满意 and 基本满意


@dataclass(frozen=True)
class Scope:
    organisation_id: int
    manager_id: int | None  # None: the whole organisation


@dataclass
class Counts:
    """One scope in one period: figure code -> (value or None, what it was computed over)."""

    stations: int
    figures: dict[str, tuple[float | None, int]] = field(default_factory=dict)
    by_category: dict[str, dict[str, tuple[float | None, int]]] = field(default_factory=dict)
    recurring: dict[str, list[tuple[int, str | None, int]]] = field(default_factory=dict)


def _share(part, whole) -> tuple[float | None, int]:
    whole = int(whole or 0)
    return (100.0 * int(part or 0) / whole if whole else None), whole


class AssessmentQueries:
    def __init__(self, stations, *, faults: tuple[str, ...], not_ours: tuple[str, ...], recurs_at: int):
        self.stations = stations  # the station store: its connection and transactions
        self.faults, self.not_ours, self.recurs_at = faults, not_ours, recurs_at

    # -- scope pieces --------------------------------------------------------------------

    @staticmethod
    def _station_scope(scope: Scope, alias: str = "so") -> tuple[str, dict]:
        """Active stations the organisation runs now (and, for a 站长, manages now)."""
        sql = (f"{alias}.organisation_id = :org AND EXISTS (SELECT 1 FROM station s0 WHERE s0.id = {alias}.station_id"
               " AND s0.status = 'active')")
        params = {"org": scope.organisation_id}
        if scope.manager_id is not None:
            sql += f" AND {alias}.manager_id = :manager"
            params["manager"] = scope.manager_id
        return sql, params

    @staticmethod
    def _work_order_scope(scope: Scope) -> tuple[str, dict]:
        """Work orders the organisation was responsible for; for a 站长, those at the stations they
        manage while the station is still the organisation's (app.ops.store's scope rule)."""
        sql = "w.organisation_id = :org"
        params = {"org": scope.organisation_id}
        if scope.manager_id is not None:
            sql += " AND so.manager_id = :manager AND so.organisation_id = w.organisation_id"
            params["manager"] = scope.manager_id
        return sql, params

    def managers(self, organisation_id: int) -> list[tuple[int, str]]:
        """(id, e-mail) of everyone who manages one of the organisation's active stations now."""
        with self.stations.reading() as conn:
            return [tuple(r) for r in conn.execute(text(
                "SELECT DISTINCT u.id, u.email FROM station_ops so JOIN staff_user u ON u.id = so.manager_id"
                " JOIN station s ON s.id = so.station_id WHERE so.organisation_id = :org AND s.status = 'active'"
                " ORDER BY u.email"), {"org": organisation_id})]

    # -- one scope, one period ---------------------------------------------------------------

    def counts(self, scope: Scope, period, now: datetime) -> Counts:
        """Every figure of ``scope`` in ``period`` as the data stand at ``now``."""
        with self.stations.reading() as conn:
            t = lambda value: to_db(value, conn.dialect.name)  # noqa: E731 - one bound time
            window = {"lo": t(period.start), "hi": t(period.end), "now": t(now)}
            where_so, params_so = self._station_scope(scope)
            stations, managed = conn.execute(text(
                "SELECT count(*), count(so.manager_id) FROM station_ops so WHERE " + where_so), params_so).one()
            out = Counts(int(stations))
            self._satisfaction(conn, scope, window, out)
            self._stars(conn, scope, window, out)
            self._reports(conn, scope, window, out)
            self._clocks(conn, scope, window, out)
            self._times(conn, scope, window, out)
            self._problems(conn, scope, window, out)
            # Station-days: only days that have ended by ``now`` (today is not over yet).
            days = [(lo, hi) for lo, hi in period.days if hi <= now]
            self._inspections(conn, scope, days, int(managed), out)
            self._intact(conn, scope, days, int(stations), out)
        return out

    @staticmethod
    def _work_orders_from(joined: str = "") -> str:
        """Work orders (optionally joined to ``joined``'s rows first) with their station's ownership."""
        head = f"{joined} JOIN work_order w ON w.id = {joined.split()[-1]}.work_order_id" if joined else "work_order w"
        return f"{head} LEFT JOIN station_ops so ON so.station_id = w.station_id"

    def _satisfaction(self, conn, scope, window, out: Counts) -> None:
        """Questionnaire answers given in the period about the scope's work orders."""
        where, params = self._work_order_scope(scope)
        answered, happy = conn.execute(_expanding(
            "SELECT count(*), sum(CASE WHEN f.answer IN :good THEN 1 ELSE 0 END)"
            f" FROM {self._work_orders_from('work_order_feedback f')}"
            f" WHERE {where} AND f.created_at >= :lo AND f.created_at < :hi", "good"),
            {**params, **window, "good": list(GOOD_ANSWERS)}).one()
        out.figures["satisfaction_pct"] = _share(happy, answered)

    def _stars(self, conn, scope, window, out: Counts) -> None:
        """Station ratings last given (or replaced) in the period: their plain mean of stars."""
        where, params = self._station_scope(scope)
        n, average = conn.execute(text(
            "SELECT count(*), avg(r.stars) FROM station_rating r JOIN station_ops so ON so.station_id = r.station_id"
            f" WHERE {where} AND r.updated_at >= :lo AND r.updated_at < :hi"), {**params, **window}).one()
        out.figures["star_average"] = (float(average) if n else None, int(n))

    def _reports(self, conn, scope, window, out: Counts) -> None:
        """Reports from the public (web form, Open311, check-ins; not inspections) per station."""
        where, params = self._work_order_scope(scope)
        reports = conn.execute(text(
            f"SELECT count(*) FROM {self._work_orders_from('report r')}"
            f" WHERE {where} AND r.source <> 'inspection' AND r.created_at >= :lo AND r.created_at < :hi"),
            {**params, **window}).scalar_one()
        out.figures["reports_per_station"] = ((int(reports) / out.stations) if out.stations else None, out.stations)

    def _clocks(self, conn, scope, window, out: Counts) -> None:
        """Work orders created in the period: a clock counts once it was stopped (responded,
        resolved) or has run out by ``now``; within its limit when stopped at or before its due
        time. Work orders closed as not the organisation's problem have no resolution to judge."""
        where, params = self._work_order_scope(scope)
        judged = "NOT (w.state = 'closed' AND w.close_reason IN :not_ours)"
        row = conn.execute(_expanding(
            "SELECT"
            " sum(CASE WHEN w.responded_at IS NOT NULL OR w.response_due_at <= :now THEN 1 ELSE 0 END),"
            " sum(CASE WHEN w.responded_at <= w.response_due_at THEN 1 ELSE 0 END),"
            f" sum(CASE WHEN {judged} AND (w.resolved_at IS NOT NULL OR w.resolution_due_at <= :now)"
            " THEN 1 ELSE 0 END),"
            f" sum(CASE WHEN {judged} AND w.resolved_at <= w.resolution_due_at THEN 1 ELSE 0 END)"
            f" FROM {self._work_orders_from()} WHERE {where} AND w.created_at >= :lo AND w.created_at < :hi",
            "not_ours"), {**params, **window, "not_ours": list(self.not_ours)}).one()
        out.figures["response_on_time_pct"] = _share(row[1], row[0])
        out.figures["resolution_on_time_pct"] = _share(row[3], row[2])

    def _times(self, conn, scope, window, out: Counts) -> None:
        """Median and p90 of the time to respond (minutes) and to resolve (hours), overall and
        per category, over the work orders created in the period whose clock has stopped."""
        where, params = self._work_order_scope(scope)
        params = {**params, **window}
        base = f"FROM {self._work_orders_from()} WHERE {where} AND w.created_at >= :lo AND w.created_at < :hi"
        dialect = conn.dialect.name
        respond = (f"SELECT w.category AS grp, {_minutes('w.created_at', 'w.responded_at', dialect)} AS d"
                   f" {base} AND w.responded_at IS NOT NULL")
        resolve = (f"SELECT w.category AS grp, {_minutes('w.created_at', 'w.resolved_at', dialect)} / 60.0 AS d"
                   f" {base} AND w.resolved_at IS NOT NULL"
                   " AND NOT (w.state = 'closed' AND w.close_reason IN :not_ours)")
        for inner, lists, median, p90 in ((respond, {}, "response_median_min", "response_p90_min"),
                                          (resolve, {"not_ours": list(self.not_ours)}, "resolution_median_h",
                                           "resolution_p90_h")):
            for grouped in (False, True):
                for grp, n, p50, p9 in _percentiles(conn, inner, params, lists, grouped):
                    target = out.by_category.setdefault(grp, {}) if grouped else out.figures
                    target[median], target[p90] = (float(p50), int(n)), (float(p9), int(n))
        counted = conn.execute(text(f"SELECT w.category, count(*) {base} GROUP BY w.category"), params).all()
        out.figures["work_orders"] = (sum(int(n) for _, n in counted), len(counted))
        for category, n in counted:
            out.by_category.setdefault(category, {})["work_orders"] = (int(n), int(n))

    def _problems(self, conn, scope, window, out: Counts) -> None:
        """Stations where one category came back (≥ recurs_at work orders created in the period)."""
        where, params = self._work_order_scope(scope)
        rows = conn.execute(text(
            "SELECT w.category, w.station_id, s.name, count(*) AS n"
            f" FROM {self._work_orders_from()} JOIN station s ON s.id = w.station_id"
            f" WHERE {where} AND w.created_at >= :lo AND w.created_at < :hi"
            " GROUP BY w.category, w.station_id, s.name HAVING count(*) >= :recurs"
            " ORDER BY w.category, count(*) DESC, w.station_id"), {**params, **window, "recurs": self.recurs_at})
        for category, station_id, name, n in rows:
            out.recurring.setdefault(category, []).append((int(station_id), name, int(n)))

    def _inspections(self, conn, scope, days, managed: int, out: Counts) -> None:
        """Station-days with an inspection ÷ station-days due (a station with a manager is due one
        inspection each local day)."""
        due = managed * len(days)
        if not due:
            out.figures["inspection_pct"] = (None, 0)
            return
        where, params = self._station_scope(scope)
        days_sql, day_params = _days_cte(conn, days)
        done = conn.execute(text(
            f"{days_sql} SELECT count(*) FROM (SELECT DISTINCT i.station_id, d.lo FROM inspection i"
            " JOIN days d ON i.at >= d.lo AND i.at < d.hi JOIN station_ops so ON so.station_id = i.station_id"
            f" WHERE {where} AND so.manager_id IS NOT NULL) x"), {**params, **day_params}).scalar_one()
        out.figures["inspection_pct"] = _share(done, due)

    def _intact(self, conn, scope, days, stations: int, out: Counts) -> None:
        """Station-days with no fault open at any moment of the day ÷ all station-days."""
        all_days = stations * len(days)
        if not all_days:
            out.figures["intact_pct"] = (None, 0)
            return
        where, params = self._station_scope(scope)
        days_sql, day_params = _days_cte(conn, days)
        query = _expanding(
            f"{days_sql} SELECT count(*) FROM (SELECT DISTINCT w.station_id, d.lo FROM work_order w"
            " JOIN days d ON w.created_at < d.hi AND (w.resolved_at IS NULL OR w.resolved_at > d.lo)"
            " JOIN station_ops so ON so.station_id = w.station_id"
            f" WHERE {where} AND w.organisation_id = so.organisation_id AND w.category IN :faults"
            " AND NOT (w.state = 'closed' AND w.close_reason IN :not_ours)) x", "faults", "not_ours")
        faulty = conn.execute(query, {**params, **day_params, "faults": list(self.faults),
                                      "not_ours": list(self.not_ours)}).scalar_one()
        out.figures["intact_pct"] = _share(all_days - int(faulty), all_days)


def _expanding(sql: str, *lists: str):
    """``sql`` with each of ``lists`` bound as a list (``IN :name``)."""
    return text(sql).bindparams(*(bindparam(name, expanding=True) for name in lists))


# -- the dialect differences ------------------------------------------------------------------


def _minutes(start: str, end: str, dialect: str) -> str:
    """SQL for the minutes from column ``start`` to column ``end``."""
    if dialect == "postgresql":
        return f"(EXTRACT(EPOCH FROM ({end} - {start})) / 60.0)"
    return f"((julianday({end}) - julianday({start})) * 1440.0)"


def _percentiles(conn, inner: str, params: dict, lists: dict, grouped: bool) -> list[tuple]:
    """(group, n, median, p90) of ``d`` over the rows of ``inner`` (columns grp, d; ``lists`` its
    list parameters), per ``grp`` or (grouped False, group None) over all of them; interpolated
    linearly, as percentile_cont."""
    key = "grp" if grouped else "NULL"
    if conn.dialect.name == "postgresql":
        sql = (f"SELECT {key} AS g, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY d),"
               f" percentile_cont(0.9) WITHIN GROUP (ORDER BY d) FROM ({inner}) x"
               + (" GROUP BY grp" if grouped else "") + " HAVING count(*) > 0")
        return [tuple(r) for r in conn.execute(_expanding(sql, *lists), {**params, **lists})]

    def at(p: str) -> str:
        # The value at position p·(n−1) of the sorted list (0-based), between its two neighbours.
        pos = f"({p} * (n - 1))"
        return (f"sum(CASE WHEN i = CAST({pos} AS INTEGER) THEN d * (1 - ({pos} - CAST({pos} AS INTEGER)))"
                f" WHEN i = CAST({pos} AS INTEGER) + 1 THEN d * ({pos} - CAST({pos} AS INTEGER)) ELSE 0 END)")

    sql = (f"SELECT g, n, {at('0.5')}, {at('0.9')} FROM (SELECT {key} AS g, d,"
           f" row_number() OVER (PARTITION BY {key} ORDER BY d) - 1 AS i,"
           f" count(*) OVER (PARTITION BY {key}) AS n FROM ({inner}) x) ranked GROUP BY g, n")
    return [tuple(r) for r in conn.execute(_expanding(sql, *lists), {**params, **lists})]


def _days_cte(conn, days: list[tuple[datetime, datetime]]) -> tuple[str, dict]:
    """``WITH days(lo, hi) AS (VALUES …)``: the local days as bound [start, end) instants."""
    params, rows = {}, []
    for i, (lo, hi) in enumerate(days):
        params[f"dlo{i}"], params[f"dhi{i}"] = to_db(lo, conn.dialect.name), to_db(hi, conn.dialect.name)
        rows.append(f"(:dlo{i}, :dhi{i})")
    return f"WITH days(lo, hi) AS (VALUES {', '.join(rows)})", params
