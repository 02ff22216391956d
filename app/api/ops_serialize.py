"""The staff API's answers as JSON: work orders (one writer for the list and the detail),
inspections, stations to inspect, checklists. Shapes are app.api.bodies' staff models.

Times are shown in the responsible organisation's zone (the caller passes it), coordinates in
WGS-84. Reporters' phone and e-mail leave only through ``work_order_detail`` and only when
the service (``app.ops.service.contacts_visible_to``) left them in.
"""
from __future__ import annotations

from datetime import datetime, tzinfo

from app.ops.assessment import CATEGORY_FIGURES, FIGURE, FIGURES, UNITS
from app.ops.checklists import Item
from app.ops.service import InspectionResult, WorkOrderDetail
from app.ops.store import WorkOrder

MEDIA_PREFIX = "/media/"


def _at(value: datetime | None, zone: tzinfo) -> str | None:
    return value.astimezone(zone).isoformat() if value is not None else None


def work_order(wo: WorkOrder, names: dict[str, str], zone: tzinfo, now: datetime) -> dict:
    """One work order; ``names`` are its category's names (zh-CN, en)."""
    return {
        "id": wo.id,
        "station_id": wo.station_id,
        "station_name": wo.station_name,
        "category": wo.category,
        "category_name": {"zh-CN": names["zh-CN"], "en": names["en"]},
        "priority": wo.priority,
        "state": wo.state,
        "close_reason": wo.close_reason,
        "assignee": wo.assignee_email,
        "reports": wo.reports,
        "created_at": _at(wo.created_at, zone),
        "updated_at": _at(wo.updated_at, zone),
        "due_at": _at(wo.due_at, zone),
        "response_due_at": _at(wo.response_due_at, zone),
        "resolution_due_at": _at(wo.resolution_due_at, zone),
        "due_estimated": wo.due_estimated,
        "overdue": wo.overdue(now),
        "lat": round(wo.lat, 7),
        "lng": round(wo.lng, 7),
        "description": wo.description,
    }


def work_order_list(rows: list[tuple[WorkOrder, dict[str, str], tzinfo]], truncated: bool, now: datetime) -> dict:
    return {"count": len(rows), "truncated": truncated,
            "results": [work_order(wo, names, zone, now) for wo, names, zone in rows]}


def work_order_detail(detail: WorkOrderDetail, zone: tzinfo, now: datetime) -> dict:
    out = work_order(detail.work_order, detail.category.names, zone, now)
    out["events"] = [{
        "at": _at(e.event.at, zone), "actor": e.event.actor, "from": e.event.from_state, "to": e.event.to_state,
        "note": e.event.note, "public": e.event.public, "reason": e.event.reason, "assignee": e.event.assignee,
    } for e in detail.events]
    out["allowed_transitions"] = list(detail.allowed)
    out["photos"] = [{"url": MEDIA_PREFIX + a.sha256, "mime": a.mime, "width": a.width, "height": a.height,
                      "public": a.public} for a in detail.attachments]
    out["report_items"] = [{
        "id": r.id, "created_at": _at(r.created_at, zone), "source": r.source, "description": r.description,
        "lat": round(r.lat, 7), "lng": round(r.lng, 7), "media_url": r.media_url,
        "phone": r.phone, "email": r.email,
    } for r in detail.reports]
    out["contacts_shown"] = detail.contacts_shown
    out["feedback"] = dict(detail.feedback)
    return out


def inspection(result: InspectionResult, far_from_station_m: float) -> dict:
    return {
        "id": result.id,
        "station_id": result.station_id,
        "distance_m": round(result.distance_m, 1) if result.distance_m is not None else None,
        "far": result.far,
        "far_from_station_m": far_from_station_m,
        "failed": [{"item": item, "work_order_id": wo_id, "joined": joined} for item, wo_id, joined in result.failed],
    }


def stations_to_inspect(rows: list[dict], zone_of) -> dict:
    """``rows`` from ``Ops.not_inspected_today``; ``zone_of(name)`` gives a zone for a station's time zone name."""
    results = [{
        "id": row["id"], "name": row["name"], "kind": row["kind"], "lat": round(row["lat"], 7),
        "lng": round(row["lng"], 7), "last_inspected_at": _at(row["last_inspected_at"], zone_of(row["timezone"])),
    } for row in rows]
    return {"count": len(results), "results": results}


def checklist(kind: str, items: tuple[Item, ...]) -> dict:
    return {"kind": kind, "items": [{"code": i.code, "labels": {"zh-CN": i.names["zh-CN"], "en": i.names["en"]},
                                     "category": i.category} for i in items]}


def assessment(report) -> dict:
    """An assessment report (app.ops.assessment.Report); times in the organisation's zone."""
    def value(code: str, v) -> dict:
        figure = FIGURE[code]
        return {"value": v.value, "n": v.n, "previous": v.previous, "previous_n": v.previous_n,
                "target": figure.target, "met": figure.met(v.value)}

    def section(s) -> dict:
        return {
            "manager": s.manager_email, "stations": s.stations,
            "figures": {f.code: value(f.code, s.figures[f.code]) for f in FIGURES},
            "by_category": [{"category": cat, "name": report.category_names[cat],
                             "figures": {f.code: value(f.code, values[f.code]) for f in CATEGORY_FIGURES}}
                            for cat, values in s.by_category.items()],
            "frequent_problems": [{"category": p.category, "name": report.category_names[p.category],
                                   "work_orders": p.work_orders,
                                   "recurring_at": [{"station_id": r.station_id, "station_name": r.station_name,
                                                     "work_orders": r.work_orders} for r in p.stations]}
                                  for p in s.problems],
        }

    def period(p) -> dict:
        return {"code": p.code, "start": p.start.isoformat(), "end": p.end.isoformat()}

    org = report.organisation
    return {
        "organisation": {"code": org.code, "name": org.name, "timezone": org.timezone},
        "period": period(report.period), "previous_period": period(report.previous),
        "as_of": report.as_of.astimezone(report.period.start.tzinfo).isoformat(),
        "scope": report.scope,
        "figures": [{"code": f.code, "name": f.names, "unit": f.unit, "unit_name": UNITS[f.unit],
                     "target": f.target, "direction": f.direction, "by_category": f.by_category} for f in FIGURES],
        "total": section(report.total) if report.total else None,
        "managers": [section(m) for m in report.managers],
    }
