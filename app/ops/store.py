"""SQL for problem reports, work orders, their event log, inspections and station status.

One implementation serves both stores: these tables are plain (no geometry), and the few
dialect differences are times (app.dbtime). It runs inside the StationStore's
transactions, so a report, its work order, its first event and its outbox message commit
together or not at all. No Flask here; the rules live in app.ops.service.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import bindparam, text

from app.dbtime import from_db, to_db
from app.ops.workflow import OPEN_STATES, STATE_TYPES, Event
from app.stations.store import StationStore


@dataclass(frozen=True)
class WorkOrder:
    id: int
    organisation_id: int | None
    station_id: int | None
    category: str
    priority: str
    state: str
    close_reason: str | None
    assignee_id: int | None
    lat: float
    lng: float
    description: str
    reports: int
    source: str
    created_at: datetime
    updated_at: datetime
    response_due_at: datetime
    resolution_due_at: datetime
    due_estimated: bool
    responded_at: datetime | None
    resolved_at: datetime | None
    response_breached_at: datetime | None
    resolution_breached_at: datetime | None
    track_nonce: str
    # Joined for display, not columns of work_order:
    assignee_email: str | None = None
    station_name: str | None = None
    station_manager_id: int | None = None
    station_organisation_id: int | None = None  # who runs the station now (it may have changed hands)

    @property
    def is_open(self) -> bool:
        return STATE_TYPES[self.state] == "open"

    @property
    def due_at(self) -> datetime | None:
        """The clock that matters now: the response until someone responds, then the resolution;
        None once fixed or closed."""
        if not self.is_open:
            return None
        return self.response_due_at if self.responded_at is None else self.resolution_due_at

    def overdue(self, now: datetime) -> bool:
        due = self.due_at
        return due is not None and now > due


_WO_COLUMNS = tuple(f.name for f in fields(WorkOrder))[:-4]
_WO_TIMES = {f.name for f in fields(WorkOrder) if f.type in ("datetime", "datetime | None")}
_SELECT = (
    "SELECT " + ", ".join(f"w.{c}" for c in _WO_COLUMNS)
    + ", u.email AS assignee_email, s.name AS station_name, so.manager_id AS station_manager_id,"
    " so.organisation_id AS station_organisation_id"
    " FROM work_order w LEFT JOIN staff_user u ON u.id = w.assignee_id"
    " LEFT JOIN station s ON s.id = w.station_id LEFT JOIN station_ops so ON so.station_id = w.station_id"
)


def _work_order(row) -> WorkOrder:
    m = dict(row._mapping)
    for name in _WO_TIMES:
        m[name] = from_db(m[name])
    m["due_estimated"] = bool(m["due_estimated"])
    return WorkOrder(**m)


@dataclass(frozen=True)
class StoredEvent:
    id: int
    event: Event
    actor_id: int | None
    assignee_id: int | None


@dataclass(frozen=True)
class Report:
    id: int
    work_order_id: int
    created_at: datetime
    source: str
    description: str
    lat: float
    lng: float
    media_url: str | None
    phone: str | None
    email: str | None
    device_id: str | None
    personal_purged_at: datetime | None


@dataclass(frozen=True)
class Attachment:
    id: int
    sha256: str
    mime: str
    width: int
    height: int
    public: bool
    report_id: int | None
    event_id: int | None
    inspection_item_id: int | None


@dataclass(frozen=True)
class Scope:
    """Which work orders a caller may see, as data (app.ops.service decides it per role)."""

    everything: bool = False
    organisation_id: int | None = None  # all of one organisation
    user_id: int | None = None  # assigned to this user ...
    managed_by: int | None = None  # ... or at stations this user manages


class OpsStore:
    def __init__(self, stations: StationStore):
        self.stations = stations

    def _t(self, conn, value: datetime | None):
        return to_db(value, conn.dialect.name)

    # -- work orders ---------------------------------------------------------

    def insert_work_order(self, values: dict[str, Any]) -> int:
        with self.stations.transaction() as conn:
            params = {k: (self._t(conn, v) if isinstance(v, datetime) else v) for k, v in values.items()}
            cols = ", ".join(params)
            marks = ", ".join(f":{k}" for k in params)
            return conn.execute(text(f"INSERT INTO work_order ({cols}) VALUES ({marks}) RETURNING id"),
                                params).scalar_one()

    def open_work_order(self, station_id: int, category: str) -> WorkOrder | None:
        """The open work order for this problem at this station (at most one: a unique index),
        whoever it belongs to."""
        states = ", ".join(f"'{s}'" for s in sorted(OPEN_STATES))
        with self.stations.reading() as conn:
            row = conn.execute(text(f"{_SELECT} WHERE w.station_id = :sid AND w.category = :cat"
                                    f" AND w.state IN ({states})"), {"sid": station_id, "cat": category}).first()
        return _work_order(row) if row else None

    def count_report(self, work_order_id: int, now: datetime) -> bool:
        """Add a "me too" to the work order if it is still open; False when it was fixed or closed
        meanwhile (the report then needs a work order of its own)."""
        states = ", ".join(f"'{s}'" for s in sorted(OPEN_STATES))
        with self.stations.transaction() as conn:
            return conn.execute(text(
                "UPDATE work_order SET reports = reports + 1, updated_at = :now"
                f" WHERE id = :id AND state IN ({states})"),
                {"id": work_order_id, "now": self._t(conn, now)}).rowcount == 1

    def work_order(self, work_order_id: int, *, lock: bool = False) -> WorkOrder | None:
        with self.stations.reading() as conn:
            lock_sql = " FOR UPDATE OF w" if lock and conn.dialect.name == "postgresql" else ""
            row = conn.execute(text(f"{_SELECT} WHERE w.id = :id{lock_sql}"), {"id": work_order_id}).first()
        return _work_order(row) if row else None

    def update_work_order(self, work_order_id: int, values: dict[str, Any]) -> None:
        with self.stations.transaction() as conn:
            params = {k: (self._t(conn, v) if isinstance(v, datetime) else v) for k, v in values.items()}
            sets = ", ".join(f"{k} = :{k}" for k in params)
            conn.execute(text(f"UPDATE work_order SET {sets} WHERE id = :_id"), {**params, "_id": work_order_id})

    def work_orders(self, scope: Scope, *, states: Iterable[str] | None = None, station_id: int | None = None,
                    category: str | None = None, overdue_at: datetime | None = None,
                    limit: int = 500) -> list[WorkOrder]:
        """Work orders in ``scope``, by due time (the clock that matters now), then id."""
        where, params = self._scope_sql(scope)
        if states is not None:
            names = [f"st{i}" for i, _ in enumerate(states)]
            params.update(zip(names, states))
            where.append(f"w.state IN ({', '.join(':' + n for n in names)})" if names else "1 = 0")
        if station_id is not None:
            where.append("w.station_id = :station_id")
            params["station_id"] = station_id
        if category is not None:
            where.append("w.category = :category")
            params["category"] = category
        due = ("CASE WHEN w.responded_at IS NULL THEN w.response_due_at ELSE w.resolution_due_at END")
        if overdue_at is not None:
            states_open = ", ".join(f"'{s}'" for s in sorted(OPEN_STATES))
            where.append(f"w.state IN ({states_open}) AND {due} < :now")
        sql = f"{_SELECT} WHERE {' AND '.join(where) or '1 = 1'} ORDER BY {due}, w.id LIMIT :limit"
        with self.stations.reading() as conn:
            if overdue_at is not None:
                params["now"] = self._t(conn, overdue_at)
            params["limit"] = limit
            return [_work_order(r) for r in conn.execute(text(sql), params)]

    def work_order_counts(self, scope: Scope, now: datetime, since: datetime) -> dict[str, int]:
        """Counted in SQL over every work order in ``scope``: open, overdue (an open one past the clock
        that matters now) and fixed since ``since`` (fixed, or closed as resolved)."""
        where, params = self._scope_sql(scope)
        states_open = ", ".join(f"'{s}'" for s in sorted(OPEN_STATES))  # constants of the state table
        due = "CASE WHEN w.responded_at IS NULL THEN w.response_due_at ELSE w.resolution_due_at END"
        sql = (f"SELECT coalesce(sum(CASE WHEN w.state IN ({states_open}) THEN 1 ELSE 0 END), 0) AS open,"
               f" coalesce(sum(CASE WHEN w.state IN ({states_open}) AND {due} < :now THEN 1 ELSE 0 END), 0)"
               f" AS overdue, coalesce(sum(CASE WHEN w.resolved_at >= :since AND (w.state = 'fixed'"
               f" OR (w.state = 'closed' AND w.close_reason = 'resolved')) THEN 1 ELSE 0 END), 0) AS fixed"
               f" FROM work_order w LEFT JOIN station_ops so ON so.station_id = w.station_id"  # the scope reads it
               f" WHERE {' AND '.join(where) or '1 = 1'}")
        with self.stations.reading() as conn:
            params.update(now=self._t(conn, now), since=self._t(conn, since))
            row = conn.execute(text(sql), params).one()
        return {"open": int(row.open), "overdue": int(row.overdue), "fixed": int(row.fixed)}

    def public_work_orders(self, *, ids: Sequence[int] | None = None, categories: Sequence[str] | None = None,
                           states: Sequence[str] | None = None, start: datetime | None = None,
                           end: datetime | None = None, limit: int = 1000) -> list[WorkOrder]:
        """Work orders by the public filters of Open311's list (created between start and end),
        newest first."""
        where, params = [], {}
        for name, values, column in (("id", ids, "w.id"), ("st", states, "w.state"),
                                     ("cat", categories, "w.category")):
            if values is not None:
                names = [f"{name}{i}" for i, _ in enumerate(values)]
                params.update(zip(names, values))
                where.append(f"{column} IN ({', '.join(':' + n for n in names)})" if names else "1 = 0")
        with self.stations.reading() as conn:
            if start is not None:
                where.append("w.created_at >= :start")
                params["start"] = self._t(conn, start)
            if end is not None:
                where.append("w.created_at <= :end")
                params["end"] = self._t(conn, end)
            params["limit"] = limit
            rows = conn.execute(text(f"{_SELECT} WHERE {' AND '.join(where) or '1 = 1'}"
                                     " ORDER BY w.created_at DESC, w.id DESC LIMIT :limit"), params)
            return [_work_order(r) for r in rows]

    @staticmethod
    def _scope_sql(scope: Scope) -> tuple[list[str], dict]:
        if scope.everything:
            return [], {}
        if scope.organisation_id is not None:
            return ["w.organisation_id = :scope_org"], {"scope_org": scope.organisation_id}
        parts, params = [], {}
        if scope.user_id is not None:
            parts.append("w.assignee_id = :scope_user")
            params["scope_user"] = scope.user_id
        if scope.managed_by is not None:
            # The station's manager, while the station is still their organisation's: a station
            # handed to another organisation takes its new manager, not the old one's history.
            parts.append("(so.manager_id = :scope_manager AND so.organisation_id = w.organisation_id)")
            params["scope_manager"] = scope.managed_by
        return ([f"({' OR '.join(parts)})"] if parts else ["1 = 0"]), params

    def mark_breached(self, work_order_id: int, clock: str, now: datetime) -> bool:
        """Mark a clock as breached once: False if another run marked it first."""
        column = {"response": "response_breached_at", "resolution": "resolution_breached_at"}[clock]
        with self.stations.transaction() as conn:
            return conn.execute(text(f"UPDATE work_order SET {column} = :now WHERE id = :id AND {column} IS NULL"),
                                {"id": work_order_id, "now": self._t(conn, now)}).rowcount == 1

    def breach_candidates(self, now: datetime) -> tuple[list[WorkOrder], list[WorkOrder]]:
        """Open work orders past their response limit (not yet responded) and past their
        resolution limit, that have not been marked as breached yet."""
        states = ", ".join(f"'{s}'" for s in sorted(OPEN_STATES))
        with self.stations.reading() as conn:
            t = self._t(conn, now)
            response = conn.execute(text(
                f"{_SELECT} WHERE w.state IN ({states}) AND w.responded_at IS NULL"
                " AND w.response_breached_at IS NULL AND w.response_due_at < :now ORDER BY w.id"), {"now": t})
            response = [_work_order(r) for r in response]
            resolution = conn.execute(text(
                f"{_SELECT} WHERE w.state IN ({states}) AND w.resolution_breached_at IS NULL"
                " AND w.resolution_due_at < :now ORDER BY w.id"), {"now": t})
            return response, [_work_order(r) for r in resolution]

    # -- events ----------------------------------------------------------------

    def append_event(self, event: Event, actor_id: int | None, assignee_id: int | None) -> int:
        with self.stations.transaction() as conn:
            return conn.execute(text(
                "INSERT INTO work_order_event (work_order_id, at, actor_id, actor, from_state, to_state, note,"
                " public, reason, assignee_id) VALUES (:wo, :at, :actor_id, :actor, :from_state, :to_state,"
                " :note, :public, :reason, :assignee_id) RETURNING id"),
                {"wo": event.work_order_id, "at": self._t(conn, event.at), "actor_id": actor_id,
                 "actor": event.actor, "from_state": event.from_state, "to_state": event.to_state,
                 "note": event.note, "public": event.public, "reason": event.reason,
                 "assignee_id": assignee_id}).scalar_one()

    def events(self, work_order_id: int) -> list[StoredEvent]:
        return self.events_of([work_order_id]).get(work_order_id, [])

    def events_of(self, work_order_ids: Sequence[int]) -> dict[int, list[StoredEvent]]:
        """The logs of several work orders in one query (a list of a thousand is one read, not a thousand)."""
        found: dict[int, list[StoredEvent]] = {}
        if not work_order_ids:
            return found
        query = text(
            "SELECT e.id, e.work_order_id, e.at, e.actor_id, e.actor, e.from_state, e.to_state, e.note, e.public,"
            " e.reason, e.assignee_id, u.email AS assignee FROM work_order_event e"
            " LEFT JOIN staff_user u ON u.id = e.assignee_id WHERE e.work_order_id IN :ids ORDER BY e.id"
        ).bindparams(bindparam("ids", expanding=True))
        with self.stations.reading() as conn:
            rows = conn.execute(query, {"ids": list(work_order_ids)}).all()
        for r in rows:
            found.setdefault(r.work_order_id, []).append(StoredEvent(
                r.id, Event(r.work_order_id, from_db(r.at), r.actor, r.from_state, r.to_state, r.note,
                            bool(r.public), r.reason, r.assignee), r.actor_id, r.assignee_id))
        return found

    # -- reports and attachments -------------------------------------------------

    def insert_report(self, values: dict[str, Any]) -> int:
        with self.stations.transaction() as conn:
            params = {k: (self._t(conn, v) if isinstance(v, datetime) else v) for k, v in values.items()}
            return conn.execute(text(
                f"INSERT INTO report ({', '.join(params)}) VALUES ({', '.join(':' + k for k in params)}) RETURNING id"),
                params).scalar_one()

    def reports(self, work_order_id: int) -> list[Report]:
        cols = ", ".join(f.name for f in fields(Report))
        with self.stations.reading() as conn:
            rows = conn.execute(text(f"SELECT {cols} FROM report WHERE work_order_id = :wo ORDER BY id"),
                                {"wo": work_order_id}).all()
        return [Report(**{**r._mapping, "created_at": from_db(r.created_at),
                          "personal_purged_at": from_db(r.personal_purged_at)}) for r in rows]

    def attach(self, photos: Sequence, now: datetime, *, work_order_id: int | None = None,
               report_id: int | None = None, event_id: int | None = None,
               inspection_item_id: int | None = None, public: bool = False) -> None:
        with self.stations.transaction() as conn:
            for photo in photos:
                conn.execute(text(
                    "INSERT INTO attachment (sha256, mime, width, height, created_at, work_order_id, report_id,"
                    " event_id, inspection_item_id, public) VALUES (:sha, :mime, :w, :h, :now, :wo, :rep, :ev,"
                    " :item, :public)"),
                    {"sha": photo.sha256, "mime": photo.mime, "w": photo.width, "h": photo.height,
                     "now": self._t(conn, now), "wo": work_order_id, "rep": report_id, "ev": event_id,
                     "item": inspection_item_id, "public": public})

    def attachments(self, work_order_id: int) -> list[Attachment]:
        return self.attachments_of([work_order_id]).get(work_order_id, [])

    def attachments_of(self, work_order_ids: Sequence[int]) -> dict[int, list[Attachment]]:
        found: dict[int, list[Attachment]] = {}
        if not work_order_ids:
            return found
        cols = ", ".join(f.name for f in fields(Attachment))
        query = text(f"SELECT work_order_id, {cols} FROM attachment WHERE work_order_id IN :ids ORDER BY id"
                     ).bindparams(bindparam("ids", expanding=True))
        with self.stations.reading() as conn:
            rows = conn.execute(query, {"ids": list(work_order_ids)}).all()
        for r in rows:
            values = {name: getattr(r, name) for name in cols.split(", ")}
            found.setdefault(r.work_order_id, []).append(Attachment(**{**values, "public": bool(r.public)}))
        return found

    def photo_in_use(self, sha256: str) -> bool:
        with self.stations.reading() as conn:
            return conn.execute(text("SELECT 1 FROM attachment WHERE sha256 = :sha LIMIT 1"),
                                {"sha": sha256}).first() is not None

    def photo_owners(self, sha256: str) -> tuple[bool, set[int]]:
        """(whether any use of the photo is public, the organisations whose work orders hold it)."""
        with self.stations.reading() as conn:
            rows = conn.execute(text(
                "SELECT a.public, w.organisation_id FROM attachment a LEFT JOIN work_order w"
                " ON w.id = a.work_order_id WHERE a.sha256 = :sha"), {"sha": sha256}).all()
        return any(bool(r.public) for r in rows), {r.organisation_id for r in rows if r.organisation_id}

    def purge_personal(self, closed_before: datetime, now: datetime) -> int:
        """Erase reporters' phone, e-mail and device id on work orders fixed or closed before ``closed_before``."""
        with self.stations.transaction() as conn:
            return conn.execute(text(
                "UPDATE report SET phone = NULL, email = NULL, device_id = NULL, personal_purged_at = :now"
                " WHERE personal_purged_at IS NULL AND (phone IS NOT NULL OR email IS NOT NULL"
                " OR device_id IS NOT NULL) AND work_order_id IN (SELECT id FROM work_order"
                " WHERE state IN ('fixed', 'closed') AND resolved_at < :before)"),
                {"now": self._t(conn, now), "before": self._t(conn, closed_before)}).rowcount

    # -- stations: status, inspections --------------------------------------------

    def station_status_event(self, station_id: int, now: datetime, actor_id: int | None, actor: str,
                             change: str, subject: str, value: str, reason: str | None,
                             until: datetime | None) -> None:
        with self.stations.transaction() as conn:
            conn.execute(text(
                "INSERT INTO station_status_event (station_id, at, actor_id, actor, change, subject, value, reason,"
                " until) VALUES (:sid, :at, :actor_id, :actor, :change, :subject, :value, :reason, :until)"),
                {"sid": station_id, "at": self._t(conn, now), "actor_id": actor_id, "actor": actor,
                 "change": change, "subject": subject, "value": value, "reason": reason,
                 "until": self._t(conn, until)})

    def set_closure(self, station_id: int, reason: str | None, until: datetime | None) -> None:
        with self.stations.transaction() as conn:
            conn.execute(text("UPDATE station SET closure_reason = :reason, closure_until = :until WHERE id = :id"),
                         {"id": station_id, "reason": reason, "until": self._t(conn, until)})

    def set_out_of_order(self, station_id: int, bit: int, out_of_order: bool) -> None:
        """Set or clear one amenity's bit in place (two staff changing two amenities at once both win)."""
        change = "out_of_order | :bit" if out_of_order else "out_of_order & ~:bit"
        with self.stations.transaction() as conn:
            conn.execute(text(f"UPDATE station SET out_of_order = {change} WHERE id = :id"),
                         {"id": station_id, "bit": bit})

    def expired_closures(self, now: datetime) -> list[int]:
        with self.stations.reading() as conn:
            return list(conn.execute(text(
                "SELECT id FROM station WHERE closure_reason IS NOT NULL AND closure_until IS NOT NULL"
                " AND closure_until <= :now ORDER BY id"), {"now": self._t(conn, now)}).scalars())

    def status_history(self, station_id: int, limit: int = 50) -> list[dict]:
        with self.stations.reading() as conn:
            rows = conn.execute(text(
                "SELECT at, actor, change, subject, value, reason, until FROM station_status_event"
                " WHERE station_id = :sid ORDER BY id DESC LIMIT :limit"), {"sid": station_id, "limit": limit})
            return [{**r._mapping, "at": from_db(r.at), "until": from_db(r.until)} for r in rows]

    def checkin_counts(self, station_id: int, since: datetime) -> dict[str, tuple[int, int]]:
        """Check-ins at the station since ``since``: outcome → (check-ins, distinct devices)."""
        with self.stations.reading() as conn:
            rows = conn.execute(text(
                "SELECT outcome, count(*) AS n, count(DISTINCT device_hash) AS devices FROM station_checkin"
                " WHERE station_id = :sid AND created_at > :since GROUP BY outcome"),
                {"sid": station_id, "since": self._t(conn, since)})
            return {r.outcome: (r.n, r.devices) for r in rows}

    def insert_inspection(self, station_id: int, inspector_id: int, now: datetime, lat: float | None,
                          lng: float | None, distance_m: float | None, far: bool, note: str) -> int:
        with self.stations.transaction() as conn:
            inspection_id = conn.execute(text(
                "INSERT INTO inspection (station_id, inspector_id, at, lat, lng, distance_m, far, note)"
                " VALUES (:sid, :uid, :at, :lat, :lng, :d, :far, :note) RETURNING id"),
                {"sid": station_id, "uid": inspector_id, "at": self._t(conn, now), "lat": lat, "lng": lng,
                 "d": distance_m, "far": far, "note": note}).scalar_one()
            conn.execute(text("UPDATE station SET last_inspected_at = :at WHERE id = :sid"),
                         {"sid": station_id, "at": self._t(conn, now)})
            return inspection_id

    def insert_inspection_item(self, inspection_id: int, item: str, passed: bool,
                               work_order_id: int | None) -> int:
        with self.stations.transaction() as conn:
            return conn.execute(text(
                "INSERT INTO inspection_item (inspection_id, item, passed, work_order_id)"
                " VALUES (:iid, :item, :passed, :wo) RETURNING id"),
                {"iid": inspection_id, "item": item, "passed": passed, "wo": work_order_id}).scalar_one()

    def inspection_items(self, inspection_id: int) -> list[dict]:
        with self.stations.reading() as conn:
            return [dict(r._mapping) for r in conn.execute(text(
                "SELECT id, item, passed, work_order_id FROM inspection_item WHERE inspection_id = :iid"
                " ORDER BY id"), {"iid": inspection_id})]

    def stations_in_scope(self, organisation_id: int | None, manager_id: int | None) -> list[dict]:
        """Active stations an organisation (or one manager, or with neither: everyone) looks after,
        with their last inspection time."""
        where, params = ["s.status = 'active'"], {}
        if organisation_id is not None:
            where.append("so.organisation_id = :org")
            params["org"] = organisation_id
        if manager_id is not None:
            where.append("so.manager_id = :manager")
            params["manager"] = manager_id
        with self.stations.reading() as conn:
            rows = conn.execute(text(
                "SELECT s.id, s.name, s.kind, s.lat, s.lng, s.timezone, s.last_inspected_at, so.organisation_id,"
                " so.manager_id FROM station s JOIN station_ops so ON so.station_id = s.id"
                f" WHERE {' AND '.join(where)} ORDER BY s.id"), params)
            return [{**r._mapping, "last_inspected_at": from_db(r.last_inspected_at)} for r in rows]
