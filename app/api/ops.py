"""/api/v1/ops: the staff JSON API, for a bearer token or a staff login session.

Thin handlers: who is calling (``app.auth.current_principal``; the 401 is app.auth's, as for pages),
the declared args or body, one call to the operations service (which decides visibility and
roles: invisible -> 404, visible but not the role's to do -> 403, see app.ops.service), one
serializer. Session callers of POST/PATCH send the session's CSRF token in X-CSRFToken (app.auth
checks it before any handler runs); token callers need none. Nothing here is cacheable.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Response, abort, request

from app import auth  # the module, not its names: app.auth imports this package too
from app.api import bodies, ops_serialize, serialize
from app.api.args import AssessmentArgs, WorkOrderArgs
from app.api.blueprint import bp, ops, timezone
from app.api.contract import STORE_DOWN, endpoint
from app.api.payloads import AmenityPayload, InspectionPayload, StationStatusPayload, TransitionPayload
from app.geo.coordsys import WGS84
from app.ops import assessment_export
from app.ops.assessment import assess
from app.ops.assessment_export import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE
from app.ops.categories import SENSOR_CATEGORIES
from app.ops.checklists import FAR_FROM_STATION_M, checklist_for
from app.dbtime import utcnow
from app.ops.service import WORKER_TRANSITIONS
from app.ops.store import WorkOrder
from app.stations import hours
from app.stations.vocabulary import KINDS

PREFIX = "/ops/"
_ID = "<int(max=9223372036854775807):{}>"
WORK_ORDER = "/ops/work-orders/" + _ID.format("work_order_id")
STATION = "/ops/stations/" + _ID.format("station_id")

_NOT_VISIBLE = {404: "No such work order, or not one this caller may see."}
_NOT_THEIRS = {403: "The caller sees it, but the role may not do this.",
               404: "No such station in the caller's organisation."}


def staff():
    """The caller (a Principal), or a 401 answer with WWW-Authenticate (app.auth writes it)."""
    principal = auth.current_principal()
    if principal is None:
        abort(auth.login_manager.unauthorized())
    return principal


class _Organisations:
    """Each organisation's time zone and category names, looked up once per answer."""

    def __init__(self, ops):
        self._ops = ops
        self._zones: dict[int | None, ZoneInfo] = {}
        self._names: dict[int | None, dict[str, dict]] = {}

    def zone(self, organisation_id: int | None) -> ZoneInfo:
        if organisation_id not in self._zones:
            self._zones[organisation_id] = ZoneInfo(self._ops.timezone_of(organisation_id))
        return self._zones[organisation_id]

    def names(self, wo: WorkOrder) -> dict[str, str]:
        org = wo.organisation_id
        if org not in self._names:
            self._names[org] = {c.code: c.names for c in (*self._ops.categories(org), *SENSOR_CATEGORIES)}
        # A category the organisation has since removed still names its code (history is kept).
        return self._names[org].get(wo.category) or {"zh-CN": wo.category, "en": wo.category}


def _detail(detail) -> dict:
    zone = _Organisations(ops()).zone(detail.work_order.organisation_id)
    return ops_serialize.work_order_detail(detail, zone, utcnow())


def _station(station) -> dict:
    """A station as /stations/{id} shows it, so a change is seen exactly as the finder will show it."""
    state = hours.evaluate_station(station.opening_hours, datetime.now(ZoneInfo(timezone())), station.timezone,
                                   station.closure_reason, station.closure_until)
    return serialize.station(station, WGS84, state, detail=True)


@bp.after_app_request  # app-wide (and so after the blueprint's own): unknown /ops paths too, and operators'
# live pushes (their answers are one caller's view too)
def _never_stored(response):
    # Errors included: none of it belongs in a shared cache or the browser's.
    if request.path.startswith((bp.url_prefix + PREFIX, bp.url_prefix + "/operators/")):
        response.headers["Cache-Control"] = "no-store"
    return response


@endpoint(bp, "/ops/work-orders", query=WorkOrderArgs, body=bodies.WorkOrderList, auth=staff, errors=STORE_DOWN,
          summary="Work orders the caller may see, soonest due first.")
def ops_work_orders(caller, args: WorkOrderArgs):
    """Admins see every work order; org managers their organisation's; station managers those at the
    stations they manage or given to them; workers those given to them."""
    now = utcnow()
    found = ops().list_work_orders(caller, status=args.status, station_id=args.station, category=args.category,
                                    overdue=True if args.overdue else None, now=now, limit=args.limit + 1)
    orgs = _Organisations(ops())
    rows = [(wo, orgs.names(wo), orgs.zone(wo.organisation_id)) for wo in found[:args.limit]]
    return ops_serialize.work_order_list(rows, len(found) > args.limit, now)


@endpoint(bp, WORK_ORDER, query=None, body=bodies.WorkOrderDetail, auth=staff, errors={**_NOT_VISIBLE, **STORE_DOWN},
          summary="One work order with its event log, photos, reports and the moves the caller may make.")
def ops_work_order(caller, work_order_id: int):
    return _detail(ops().get_work_order(caller, work_order_id))


@endpoint(bp, WORK_ORDER + "/transitions", method="POST", query=None, payload=TransitionPayload,
          body=bodies.WorkOrderDetail, auth=staff,
          errors={403: f"Workers may only move their work to {' or '.join(sorted(WORKER_TRANSITIONS))}.",
                  **_NOT_VISIBLE, 409: "The workflow does not allow this move from the current state.", **STORE_DOWN},
          summary="Move a work order to another state (appends an event; nothing is edited in place).")
def ops_transition(caller, payload: TransitionPayload, work_order_id: int):
    """`assignee` exactly with `to: assigned`, `reason` exactly with `to: closed` (`resolved` only
    from fixed). Answers the work order as it is now."""
    detail = ops().transition(caller, work_order_id, payload.to, note=payload.note, public=payload.public,
                               assignee=payload.assignee, reason=payload.reason)
    return _detail(detail)


@endpoint(bp, STATION + "/status", method="PATCH", query=None, payload=StationStatusPayload,
          body=bodies.StationDetail, auth=staff, errors={**_NOT_THEIRS, **STORE_DOWN},
          summary="Close a station for now (with the reason people will see) or open it again.")
def ops_station_status(caller, payload: StationStatusPayload, station_id: int):
    """A closed station shows `open_state: closed` with `closed_reason` in every answer at once and
    stops matching `open_now` until it is opened again (or `until` passes)."""
    return _station(ops().set_station_status(caller, station_id, payload.status, payload.reason, payload.until))


@endpoint(bp, STATION + "/amenities", method="PATCH", query=None, payload=AmenityPayload,
          body=bodies.StationDetail, auth=staff, errors={**_NOT_THEIRS, **STORE_DOWN},
          summary="Mark one of a station's amenities out of order (or working again).")
def ops_station_amenity(caller, payload: AmenityPayload, station_id: int):
    """An out-of-order amenity is listed in `out_of_order` and stops matching that `amenity` filter."""
    return _station(ops().set_amenity(caller, station_id, payload.amenity, payload.out_of_order, payload.reason))


@endpoint(bp, "/ops/inspections", method="POST", status=201, query=None, payload=InspectionPayload,
          body=bodies.InspectionAnswer, auth=staff, errors={**_NOT_THEIRS, **STORE_DOWN},
          summary="Record a station's daily inspection (站长制); each failed item opens or joins a work order.")
def ops_inspection(caller, payload: InspectionPayload):
    """Photos are added through the staff page's form; this JSON form takes none."""
    result = ops().inspect(caller, payload.station_id, dict(payload.results), lat=payload.lat, lng=payload.lng,
                            note=payload.note)
    return ops_serialize.inspection(result, FAR_FROM_STATION_M)


@endpoint(bp, "/ops/stations/not-inspected", query=None, body=bodies.NotInspected, auth=staff,
          errors={403: "Workers look after no stations.", **STORE_DOWN},
          summary="Stations in the caller's care not inspected since midnight (station's time zone).")
def ops_not_inspected(caller):
    return ops_serialize.stations_to_inspect(ops().not_inspected_today(caller), ZoneInfo)


@endpoint(bp, f"/ops/checklists/<any({', '.join(KINDS)}):kind>", query=None, body=bodies.Checklist, auth=staff,
          errors={404: "Unknown station kind."},
          summary="The daily inspection checklist for a kind of station.")
def ops_checklist(caller, kind: str):
    """Any staff member may read it (it is the same for every organisation)."""
    return ops_serialize.checklist(kind, checklist_for(kind))


_DOWNLOADS = {CSV_MEDIA_TYPE: "`format=csv`: the figures table, UTF-8 with a byte-order mark, Chinese headers.",
              XLSX_MEDIA_TYPE: "`format=xlsx`: the figures table and the most frequent problems, Chinese headers."}


@endpoint(bp, "/ops/assessment", query=AssessmentArgs, body=bodies.Assessment, auth=staff, downloads=_DOWNLOADS,
          errors={403: "Workers see no assessments.", 404: "No such organisation, or another organisation's.",
                  **STORE_DOWN},
          summary="An organisation's assessment (考核) for a month or a quarter, beside the targets and the "
                  "period before.")
def ops_assessment(caller, args: AssessmentArgs):
    """Org managers and admins get the organisation's figures and each 站长's; a 站长 gets their own.
    The figures and how each is computed: README, "Assessment (考核)"."""
    report = assess(ops(), caller, args.org, args.period, utcnow())
    if args.format == "json":
        return ops_serialize.assessment(report)
    content, media = ((assessment_export.to_csv(report), CSV_MEDIA_TYPE) if args.format == "csv"
                      else (assessment_export.to_xlsx(report), XLSX_MEDIA_TYPE))
    response = Response(content, mimetype=media.split(";")[0], content_type=media)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{assessment_export.filename(report, args.format)}"')
    return response
