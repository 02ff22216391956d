"""The operations loop: reports in, work orders through their states under SLA clocks,
notifications out, station status and daily inspections. No Flask here.

Every edge (the public form, Open311, the staff API and pages, the CLI) calls ``Ops``; the rules
live here once: who may see and do what (``scope_for`` / ``_may``), which transitions are allowed
(app.ops.workflow), when clocks run out (app.ops.clock), what the public may see (``PublicView``).
Errors are app.ops.errors classes, which each edge writes in its own format.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Callable, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError

from app.geo.geodesic import distance_m
from app.ops import clock
from app.ops.categories import DEFAULT_CATEGORIES, SENSOR_CATEGORIES, Category, Limit, find_category
from app.ops.checklists import FAR_FROM_STATION_M, checklist_for
from app.dbtime import utcnow
from app.ops.errors import Conflict, Forbidden, Invalid, NotFound
from app.ops.feedback import Feedback
from app.ops.outbox import Message
from app.ops.store import OpsStore, Scope, WorkOrder
from app.ops.workflow import (
    OPEN_STATES, STATE_TYPES, STATES, Event, InvalidReason, TransitionNotAllowed, UnknownState,
    check_transition, replay,
)
from app.stations.model import NearestQuery, Station
from app.stations.vocabulary import AMENITIES, amenity_mask

MAX_DESCRIPTION = 1000  # characters, as the issue asks
MAX_NOTE = 2000
# An inspection's note goes into the description of each work order a failed item opens.
MAX_INSPECTION_NOTE = 500
MAX_REASON = 200
MAX_CLOSURE = timedelta(days=366)  # a temporary closure with an end further off is a typing error
# A report at a place (no station given) goes to the nearest station within this distance.
JOIN_STATION_M = 50.0
REPORT_SOURCES = ("web", "open311", "inspection", "sensor")
# Whose words are published as a work order's description (Open311 publishes it, as the standard
# has it). An inspection's description carries the inspector's note: staff only.
PUBLIC_DESCRIPTION_SOURCES = frozenset({"web", "open311"})
STATION_STATUSES = ("open", "temporarily_closed")
# Phone numbers: digits with an optional leading +, spaces and dashes as people type them.
_PHONE = re.compile(r"^\+?[0-9][0-9 \-]{4,22}[0-9]$")
# Control characters other than tab and line breaks (which descriptions and notes may hold).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,60}$")

# Who may move a work order where (visibility is decided first, by ``scope_for``).
WORKER_TRANSITIONS = frozenset({"in_progress", "fixed"})
ASSIGNABLE_ROLES = frozenset({"worker", "station_manager", "org_manager"})
MANAGING_ROLES = frozenset({"admin", "org_manager", "station_manager"})


@dataclass(frozen=True)
class ReportInput:
    category: str
    station_id: int | None = None
    lat: float | None = None  # WGS-84; edges convert
    lng: float | None = None
    description: str = ""
    phone: str | None = None
    email: str | None = None
    device_id: str | None = None
    media_url: str | None = None
    source: str = "web"
    open311_key_id: int | None = None
    photos: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Submitted:
    work_order_id: int
    token: str  # the tracking link's token: /r/<token>
    joined: bool  # True when the report joined an open work order ("me too")
    due_at: datetime  # the resolution limit, in the organisation's time zone


@dataclass(frozen=True)
class PublicStep:
    at: datetime
    state: str
    note: str  # only public notes; "" otherwise
    reason: str | None


@dataclass(frozen=True)
class PublicView:
    """What anyone holding the tracking link (or an Open311 client) may see: no personal data,
    no staff names, no internal notes."""

    id: int
    category: Category
    station_id: int | None
    station_name: str | None
    state: str
    state_type: str
    close_reason: str | None
    description: str | None  # the first reporter's words; None for inspections' work orders
    created_at: datetime
    updated_at: datetime
    due_at: datetime
    due_estimated: bool
    reports: int
    lat: float
    lng: float
    organisation: str | None
    steps: list[PublicStep]
    photos: list[str]  # sha256 of public photos (fixes shown to the reporter)

    @property
    def status_note(self) -> str:
        notes = [s.note for s in self.steps if s.note]
        return notes[-1] if notes else ""


@dataclass(frozen=True)
class WorkOrderDetail:
    work_order: WorkOrder
    category: Category
    events: list  # StoredEvent
    reports: list  # Report (phones only for the responsible organisation; see ``get_work_order``)
    attachments: list
    allowed: tuple[str, ...]  # the transitions this caller may make now
    contacts_shown: bool  # whether ``reports`` carry reporters' phone, e-mail and device id
    feedback: dict[str, int]  # how reporters judged the handling: answer -> devices (app.ops.feedback)


@dataclass(frozen=True)
class InspectionResult:
    id: int
    station_id: int
    distance_m: float | None
    far: bool
    failed: list[tuple[str, int, bool]]  # (item, work order id, joined an open one)


@dataclass(frozen=True)
class TickResult:
    response_breaches: list[int] = field(default_factory=list)
    resolution_breaches: list[int] = field(default_factory=list)
    escalations: int = 0
    reopened_stations: list[int] = field(default_factory=list)
    delivered: int = 0
    failed: int = 0
    sensors_offline: list[str] = field(default_factory=list)  # devices found silent too long (app.ops.sensors)


def scope_for(principal) -> Scope:
    """The work orders a caller may see, by role (the one rule; ``can_see`` is its Python form)."""
    role = principal.role
    if role == "admin":
        return Scope(everything=True)
    if role == "org_manager":
        return Scope(organisation_id=principal.organisation_id)
    if role == "station_manager":
        return Scope(user_id=principal.id, managed_by=principal.id)
    return Scope(user_id=principal.id)


def can_see(principal, wo: WorkOrder) -> bool:
    scope = scope_for(principal)
    if scope.everything:
        return True
    if scope.organisation_id is not None:
        return wo.organisation_id == scope.organisation_id
    return (wo.assignee_id == principal.id
            or (scope.managed_by is not None and wo.station_manager_id == principal.id
                and wo.station_organisation_id == wo.organisation_id))


def contacts_visible_to(principal, wo: WorkOrder) -> bool:
    """Who may read reporters' phone and e-mail (to call them back): admins, and the managers (org
    and station) of the organisation responsible for the work order. Never workers: they act on
    the problem, not on the person who reported it."""
    if principal.role == "admin":
        return True
    return (principal.role in ("org_manager", "station_manager") and wo.organisation_id is not None
            and principal.organisation_id == wo.organisation_id)


class Ops:
    def __init__(self, stations, accounts, outbox, photos, *, secret_key: bytes,
                 link: Callable[[str], str] = lambda path: path, default_timezone: str = "Asia/Shanghai"):
        self.stations = stations
        self.accounts = accounts
        self.outbox = outbox
        self.photos = photos
        self.store = OpsStore(stations)
        self._secret = secret_key
        self._link = link
        self._default_tz = default_timezone

    # -- organisations, categories, tokens ------------------------------------------

    def _organisation(self, organisation_id: int | None):
        return self.accounts.organisation(organisation_id) if organisation_id is not None else None

    def timezone_of(self, organisation_id: int | None) -> str:
        """The organisation's time zone (its clocks and the times its staff see); the site's default
        for work orders nobody owns."""
        org = self._organisation(organisation_id)
        return org.timezone if org else self._default_tz

    def categories(self, organisation_id: int | None = None) -> tuple[Category, ...]:
        org = self._organisation(organisation_id)
        return org.categories if org else DEFAULT_CATEGORIES

    def categories_for_station(self, station_id: int) -> tuple[Category, ...]:
        organisation_id, _ = self.accounts.station_owner(station_id)
        return self.categories(organisation_id)

    def _category(self, organisation_id: int | None, code: str, field_name: str = "category",
                  source: str = "web") -> Category:
        for category in (*self.categories(organisation_id), *(SENSOR_CATEGORIES if source == "sensor" else ())):
            if category.code == code:
                return category
        known = ", ".join(c.code for c in self.categories(organisation_id))
        raise Invalid(f"unknown problem category {code!r}; choose one of {known}", field_name)

    def token_for(self, wo: WorkOrder) -> str:
        """The tracking token: the id and a MAC of it with the work order's random nonce, so the
        link can be given again to a "me too" reporter without storing it, and the database
        alone cannot forge one."""
        mac = hmac.new(self._secret, f"yizhan-track:{wo.id}:{wo.track_nonce}".encode(), hashlib.sha256).digest()
        return f"{wo.id}-{base64.urlsafe_b64encode(mac[:18]).decode()}"

    def work_order_for_token(self, token: str) -> WorkOrder | None:
        head, _, _ = (token or "").partition("-")
        if not head.isascii() or not head.isdigit() or len(head) > 18:
            return None
        wo = self.store.work_order(int(head))
        if wo is None or not hmac.compare_digest(self.token_for(wo), token):
            return None
        return wo

    # -- reports ----------------------------------------------------------------------

    def submit_report(self, report: ReportInput, now: datetime | None = None) -> Submitted:
        """Store a report: it joins the open work order for the same problem at the same station,
        or opens one. Photos are checked and stored before anything is written, and removed
        again if the write fails: no orphan report, no orphan file."""
        now = now or utcnow()
        description = _text(report.description, MAX_DESCRIPTION, "description")
        phone = _phone(report.phone)
        email = _email(report.email)
        if report.source not in REPORT_SOURCES:
            raise Invalid(f"unknown report source {report.source!r}", "source")
        station = self._report_station(report)
        lat, lng = (station.lat, station.lng) if report.lat is None else (report.lat, report.lng)
        organisation_id = self._route(station, lat, lng)
        category = self._category(organisation_id, report.category, source=report.source)
        stored = self.photos.ingest_all(list(report.photos)) if report.photos else []
        try:
            with self.stations.transaction():
                wo_id, joined = self._open_or_join(station, category, organisation_id, lat, lng, description,
                                                   report.source, now)
                report_id = self.store.insert_report({
                    "work_order_id": wo_id, "created_at": now, "source": report.source,
                    "open311_key_id": report.open311_key_id, "description": description, "lat": lat, "lng": lng,
                    "media_url": _text(report.media_url, 2000, "media_url") or None, "phone": phone,
                    "email": email, "device_id": _text(report.device_id, 200, "device_id") or None,
                })
                if stored:
                    self.store.attach(stored, now, work_order_id=wo_id, report_id=report_id)
        except BaseException:
            self._discard(stored)
            raise
        wo = self.store.work_order(wo_id)
        tz = self.timezone_of(wo.organisation_id)
        return Submitted(wo.id, self.token_for(wo), joined, wo.resolution_due_at.astimezone(ZoneInfo(tz)))

    def _discard(self, photos) -> None:
        """Remove the files a failed write created, unless another request has meanwhile stored
        the same picture (same content, same file) and committed a use of it."""
        if photos:
            self.photos.discard([p for p in photos if p.created and not self.store.photo_in_use(p.sha256)])

    def _report_station(self, report: ReportInput) -> Station | None:
        if report.station_id is not None:
            station = self.stations.get(report.station_id)
            if station is None or station.status != "active":
                raise NotFound(f"No station with id {report.station_id}.", "station_id")
            return station
        if report.lat is None or report.lng is None:
            raise Invalid("a report needs a station or a location (lat and long)", "lat")
        if not (-90 <= report.lat <= 90 and -180 <= report.lng <= 180):
            raise Invalid("the location is out of range: lat must be within ±90, long within ±180", "lat")
        hits = self.stations.nearest(NearestQuery(report.lat, report.lng, utcnow(), limit=1,
                                                  max_distance_m=JOIN_STATION_M))
        return hits[0].station if hits else None

    def _route(self, station: Station | None, lat: float, lng: float) -> int | None:
        """The organisation responsible: the station's, or for a place, that of the nearest
        owned station (within the finder's search radius); None when nobody owns anything near."""
        if station is not None:
            organisation_id, _ = self.accounts.station_owner(station.id)
            if organisation_id is not None:
                return organisation_id
        for hit in self.stations.nearest(NearestQuery(lat, lng, utcnow(), limit=50)):
            organisation_id, _ = self.accounts.station_owner(hit.station.id)
            if organisation_id is not None:
                return organisation_id
        return None

    def _open_or_join(self, station, category, organisation_id, lat, lng, description, source, now):
        if station is not None:
            existing = self.store.open_work_order(station.id, category.code)
            if existing is not None and self.store.count_report(existing.id, now):
                return existing.id, True
        tz = self.timezone_of(organisation_id)
        response, resolution = _due(now, category.response, tz), _due(now, category.resolution, tz)
        values = {
            "organisation_id": organisation_id, "station_id": station.id if station else None,
            "category": category.code, "priority": category.priority, "state": "new", "lat": lat, "lng": lng,
            "description": description, "reports": 1, "source": source, "created_at": now, "updated_at": now,
            "response_due_at": response.at, "resolution_due_at": resolution.at,
            "due_estimated": response.estimated or resolution.estimated, "track_nonce": secrets.token_hex(16),
        }
        try:
            with self.stations.transaction():  # a savepoint: a racing "me too" may have won
                wo_id = self.store.insert_work_order(values)
        except IntegrityError:
            existing = self.store.open_work_order(station.id, category.code) if station else None
            if existing is None or not self.store.count_report(existing.id, now):
                raise
            return existing.id, True
        actor = "reporter" if source not in ("inspection", "sensor") else source
        self.store.append_event(Event(wo_id, now, actor, None, "new", public=True), None, None)
        return wo_id, False

    def track(self, token: str) -> PublicView | None:
        wo = self.work_order_for_token(token)
        return self.public_view(wo) if wo else None

    def public_view(self, wo: WorkOrder) -> PublicView:
        return self.public_views([wo])[0]

    def public_views(self, work_orders: Sequence[WorkOrder]) -> list[PublicView]:
        """What the public may see of each work order, read in a fixed number of queries."""
        ids = [wo.id for wo in work_orders]
        events, attachments = self.store.events_of(ids), self.store.attachments_of(ids)
        orgs = {oid: self._organisation(oid) for oid in {wo.organisation_id for wo in work_orders}}
        views = []
        for wo in work_orders:
            org = orgs[wo.organisation_id]
            tz = ZoneInfo(org.timezone if org else self._default_tz)
            steps = [PublicStep(e.event.at.astimezone(tz), e.event.to_state, e.event.note if e.event.public else "",
                                e.event.reason) for e in events.get(wo.id, [])]
            views.append(PublicView(
                id=wo.id, category=_category_in(org.categories if org else DEFAULT_CATEGORIES, wo),
                station_id=wo.station_id, station_name=wo.station_name, state=wo.state,
                state_type=STATE_TYPES[wo.state], close_reason=wo.close_reason,
                description=(wo.description or None) if wo.source in PUBLIC_DESCRIPTION_SOURCES else None,
                created_at=wo.created_at.astimezone(tz), updated_at=wo.updated_at.astimezone(tz),
                due_at=wo.resolution_due_at.astimezone(tz), due_estimated=wo.due_estimated, reports=wo.reports,
                lat=wo.lat, lng=wo.lng, organisation=org.name if org else None, steps=steps,
                photos=[a.sha256 for a in attachments.get(wo.id, []) if a.public],
            ))
        return views

    def public_view_by_id(self, work_order_id: int) -> PublicView | None:
        wo = self.store.work_order(work_order_id)
        return self.public_view(wo) if wo else None

    def public_list(self, *, ids: Sequence[int] | None = None, categories: Sequence[str] | None = None,
                    states: Sequence[str] | None = None, start: datetime | None = None,
                    end: datetime | None = None, limit: int = 1000) -> list[PublicView]:
        """Work orders for Open311's public list, newest first."""
        return self.public_views(self.store.public_work_orders(
            ids=ids, categories=categories, states=states, start=start, end=end, limit=limit))

    def _category_or_placeholder(self, wo: WorkOrder) -> Category:
        return _category_in(self.categories(wo.organisation_id), wo)

    # -- staff: work orders -----------------------------------------------------------

    def list_work_orders(self, principal, *, status: str | None = None, station_id: int | None = None,
                         category: str | None = None, overdue: bool | None = None,
                         now: datetime | None = None, limit: int = 500) -> list[WorkOrder]:
        now = now or utcnow()
        states = _states_for(status)
        found = self.store.work_orders(scope_for(principal), states=states, station_id=station_id,
                                       category=category, overdue_at=now if overdue else None, limit=limit)
        if overdue is False:
            found = [wo for wo in found if not wo.overdue(now)]
        return found

    def _visible(self, principal, work_order_id: int) -> WorkOrder:
        wo = self.store.work_order(work_order_id)
        if wo is None or not can_see(principal, wo):
            raise NotFound(f"No work order with id {work_order_id}.", "id")
        return wo

    def get_work_order(self, principal, work_order_id: int) -> WorkOrderDetail:
        """A work order as the caller may see it: reporters' contact details only for those who
        may call them back (``contacts_visible_to``); for anyone else they never leave here."""
        wo = self._visible(principal, work_order_id)
        shown = contacts_visible_to(principal, wo)
        reports = self.store.reports(wo.id)
        if not shown:
            reports = [replace(r, phone=None, email=None, device_id=None) for r in reports]
        return WorkOrderDetail(wo, self._category_or_placeholder(wo), self.store.events(wo.id), reports,
                               self.store.attachments(wo.id), self._allowed(principal, wo), shown,
                               Feedback(self.stations).counts(wo.id))

    def _allowed(self, principal, wo: WorkOrder) -> tuple[str, ...]:
        from app.ops.workflow import allowed_next

        nexts = allowed_next(wo.state)
        if principal.role == "worker":
            return tuple(s for s in nexts if s in WORKER_TRANSITIONS)
        return nexts

    def transition(self, principal, work_order_id: int, to: str, *, note: str = "", public: bool = False,
                   assignee: str | None = None, reason: str | None = None, photos: Sequence[bytes] = (),
                   now: datetime | None = None) -> WorkOrderDetail:
        now = now or utcnow()
        wo = self._visible(principal, work_order_id)
        if to not in STATES:
            raise Invalid(f"unknown state {to!r}; states are {', '.join(STATES)}", "to")
        if principal.role == "worker" and to not in WORKER_TRANSITIONS:
            raise Forbidden(f"a worker may only move work orders to {', '.join(sorted(WORKER_TRANSITIONS))}", "to")
        note = _text(note, MAX_NOTE, "note")
        assignee_user = self._assignee(wo, assignee) if to == "assigned" else None
        if to != "assigned" and assignee:
            raise Invalid("an assignee is only given when assigning (to = 'assigned')", "assignee")
        stored = self.photos.ingest_all(list(photos)) if photos else []
        try:
            with self.stations.transaction():
                current = self.store.work_order(work_order_id, lock=True)
                try:
                    check_transition(current.state, to, reason)
                except TransitionNotAllowed as exc:
                    raise Conflict(str(exc), "to") from None
                except (UnknownState, InvalidReason) as exc:
                    raise Invalid(str(exc), "reason" if isinstance(exc, InvalidReason) else "to") from None
                if to == "reopened" and current.station_id is not None:
                    other = self.store.open_work_order(current.station_id, current.category)
                    if other is not None:  # one open work order per problem and station
                        raise Conflict(f"work order #{other.id} is open for this problem at this station; "
                                       "add to that one instead of reopening this", "to")
                at = max(now, current.updated_at)  # the log never goes backwards
                event = Event(wo.id, at, principal.email, current.state, to, note, bool(public), reason,
                              assignee_user.email if assignee_user else None)
                event_id = self.store.append_event(event, principal.id, assignee_user.id if assignee_user else None)
                if stored:
                    self.store.attach(stored, at, work_order_id=wo.id, event_id=event_id, public=bool(public))
                state = replay(e.event for e in self.store.events(wo.id))
                values = {"state": state.state, "close_reason": state.reason, "updated_at": at,
                          "responded_at": state.responded_at, "resolved_at": state.resolved_at}
                if assignee_user:
                    values["assignee_id"] = assignee_user.id
                if to == "reopened":  # the resolution clock runs again
                    category = self._category_or_placeholder(current)
                    due = _due(at, category.resolution, self.timezone_of(current.organisation_id))
                    values.update(resolution_due_at=due.at, resolution_breached_at=None,
                                  due_estimated=due.estimated)
                self.store.update_work_order(wo.id, values)
                self._after_done(current, state.state, at)
                if assignee_user:
                    self._notify_assignee(assignee_user, self.store.work_order(wo.id), at)
        except BaseException:
            self._discard(stored)
            raise
        return self.get_work_order(principal, wo.id)

    def _after_done(self, wo: WorkOrder, state: str, at: datetime) -> None:
        """A cleaning work order fixed or closed (in the queue, or by the cleaner's check-in) is
        the station cleaned: its visitor count starts again (app.ops.sensors)."""
        from app.ops import sensors  # it builds on this module

        if wo.category == sensors.CLEANING and wo.station_id is not None and STATE_TYPES[state] != "open":
            sensors.reset_count(self.stations, wo.station_id, at)

    def resolve(self, work_order_id: int, actor: str, actor_id: int | None, note: str,
                now: datetime) -> WorkOrder | None:
        """Fix and close (as resolved) an open work order, through the states the table allows
        (a new one is confirmed first): the sensors' own moves, when the cleaner checks in on site or
        a silent device speaks again. None when it was no longer open."""
        with self.stations.transaction():
            current = self.store.work_order(work_order_id, lock=True)
            if current is None or not current.is_open:
                return None
            at = max(now, current.updated_at)
            path = (["confirmed"] if current.state in ("new",) else []) + ["fixed", "closed"]
            state = current.state
            for to in path:
                reason = "resolved" if to == "closed" else None
                check_transition(state, to, reason)
                self.store.append_event(Event(current.id, at, actor, state, to, note if to == "fixed" else "",
                                              False, reason), actor_id, None)
                state = to
            done = replay(e.event for e in self.store.events(current.id))
            self.store.update_work_order(current.id, {
                "state": done.state, "close_reason": done.reason, "updated_at": at,
                "responded_at": done.responded_at, "resolved_at": done.resolved_at})
            self._after_done(current, done.state, at)
        return self.store.work_order(work_order_id)

    def _assignee(self, wo: WorkOrder, email: str | None):
        if not email:
            raise Invalid("assigning needs an assignee (a staff member's e-mail)", "assignee")
        user = self.accounts.user_by_email(email)
        if (user is None or user.role not in ASSIGNABLE_ROLES or wo.organisation_id is None
                or user.organisation_id != wo.organisation_id):
            raise Invalid(f"{email!r} is not a staff member of the organisation responsible for this work order",
                          "assignee")
        return user

    # -- notifications ----------------------------------------------------------------

    def _recipients(self, organisation_id: int | None, users) -> list[tuple[str, str]]:
        """(url, format) for each user's own webhook, else the organisation's; without duplicates."""
        org = self._organisation(organisation_id)
        out: list[tuple[str, str]] = []
        for user in users:
            if user.webhook_url:
                target = (user.webhook_url, "json" if not org else org.webhook_format)
            elif org and org.webhook_url:
                target = (org.webhook_url, org.webhook_format)
            else:
                continue
            if target not in out:
                out.append(target)
        return out

    def _staff_link(self, wo: WorkOrder) -> str | None:
        """The work order's staff page as an absolute URL; None when the site's address is unknown
        (the periodic job runs outside any request: YIZHAN_PUBLIC_URL says where the site is)."""
        link = self._link(f"/staff/work-orders/{wo.id}")
        return link if link.startswith(("https://", "http://")) else None

    def _describe(self, wo: WorkOrder) -> list[str]:
        category = self._category_or_placeholder(wo)
        tz = ZoneInfo(self.timezone_of(wo.organisation_id))
        due = wo.due_at or wo.resolution_due_at
        return [f"问题 Problem: {category.names['zh-CN']} / {category.names['en']}",
                f"站点 Station: {wo.station_name or '-'} (#{wo.station_id or '-'})",
                f"期限 Due: {due.astimezone(tz):%Y-%m-%d %H:%M}"]

    def _notify_assignee(self, user, wo: WorkOrder, now: datetime) -> None:
        message = Message(
            title=f"工单 #{wo.id} 已派给您 / Work order #{wo.id} assigned to you",
            lines=self._describe(wo), link=self._staff_link(wo), mentions=[],
            data={"work_order_id": wo.id, "assignee": user.email, "category": wo.category,
                  "station_id": wo.station_id})
        for url, fmt in self._recipients(wo.organisation_id, [user]):
            self.outbox.enqueue("assigned", url, fmt, message, now)

    def _escalate(self, wo: WorkOrder, clock_name: str, now: datetime) -> int:
        managers = self.accounts.staff_of(wo.organisation_id, roles=("org_manager",)) if wo.organisation_id else []
        label = {"response": "响应超时 / response overdue", "resolution": "处理超时 / resolution overdue"}[clock_name]
        message = Message(
            title=f"工单 #{wo.id} {label}", lines=self._describe(wo),
            link=self._staff_link(wo), mentions=[],
            data={"work_order_id": wo.id, "breach": clock_name, "category": wo.category,
                  "station_id": wo.station_id, "state": wo.state})
        targets = self._recipients(wo.organisation_id, managers)
        for url, fmt in targets:
            self.outbox.enqueue("breach", url, fmt, message, now)
        return len(targets)

    # -- the periodic job ---------------------------------------------------------------

    def tick(self, now: datetime | None = None, deliver: bool = True, send=None) -> TickResult:
        """Mark SLA breaches and escalate them, end temporary closures whose time is up, then
        deliver the notifications that are due. Safe to run as often as wanted: each breach is
        marked and escalated once."""
        now = now or utcnow()
        response_ids, resolution_ids, escalations = [], [], 0
        with self.stations.transaction():
            late_response, late_resolution = self.store.breach_candidates(now)
            for clock_name, late, marked in (("response", late_response, response_ids),
                                             ("resolution", late_resolution, resolution_ids)):
                for wo in late:
                    if self.store.mark_breached(wo.id, clock_name, now):  # once, however many ticks run
                        escalations += self._escalate(wo, clock_name, now)
                        marked.append(wo.id)
            reopened = self.store.expired_closures(now)
            for station_id in reopened:
                self.store.set_closure(station_id, None, None)
                self.store.station_status_event(station_id, now, None, "system", "status", "status", "open",
                                                "temporary closure ended", None)
        from app.ops.sensors import Sensors  # it builds on this module

        offline = Sensors(self).check_offline(now)
        delivered = failed = 0
        if deliver:
            counts = self.outbox.deliver_due(now, send) if send else self.outbox.deliver_due(now)
            delivered, failed = counts.delivered, counts.failed
        return TickResult(response_ids, resolution_ids, escalations, reopened, delivered, failed, offline)

    def purge(self, older_than: timedelta, now: datetime | None = None) -> int:
        """Erase reporters' contact details on work orders fixed or closed more than ``older_than`` ago."""
        now = now or utcnow()
        return self.store.purge_personal(now - older_than, now)

    def prune_notifications(self, older_than: timedelta, now: datetime | None = None) -> int:
        """Forget notifications delivered more than ``older_than`` ago (they name staff and places)."""
        return self.outbox.prune((now or utcnow()) - older_than)

    # -- stations: status and inspections ------------------------------------------------

    def managed_station(self, principal, station_id: int) -> Station:
        """The station, if the caller looks after it: 404 outside their organisation, 403 for a role
        that may not change stations."""
        station = self.stations.get(station_id)
        organisation_id, manager_id = self.accounts.station_owner(station_id) if station else (None, None)
        if station is None or (principal.role != "admin" and organisation_id != principal.organisation_id):
            raise NotFound(f"No station with id {station_id}.", "station_id")
        if principal.role == "worker" or (principal.role == "station_manager" and manager_id != principal.id):
            raise Forbidden("only the station's manager, its organisation's managers and admins may do this")
        return station

    def set_station_status(self, principal, station_id: int, status: str, reason: str | None = None,
                           until: datetime | None = None, now: datetime | None = None) -> Station:
        now = now or utcnow()
        station = self.managed_station(principal, station_id)
        if status not in STATION_STATUSES:
            raise Invalid(f"status must be one of {', '.join(STATION_STATUSES)}", "status")
        reason = _text(reason, MAX_REASON, "reason") or None
        if status == "temporarily_closed":
            if not reason:
                raise Invalid("closing a station needs a reason (people see it in the finder)", "reason")
            if until is not None and not now < until <= now + MAX_CLOSURE:
                raise Invalid(f"'until' must be in the future, at most {MAX_CLOSURE.days} days ahead "
                              "(longer closures: close without 'until' and reopen by hand)", "until")
        elif until is not None:
            raise Invalid("'until' is only given when closing", "until")
        with self.stations.transaction():
            self.store.set_closure(station.id, reason if status != "open" else None, until)
            self.store.station_status_event(station.id, now, principal.id, principal.email, "status", "status",
                                            status, reason, until)
        return self.stations.get(station.id)

    def set_amenity(self, principal, station_id: int, amenity: str, out_of_order: bool,
                    reason: str | None = None, now: datetime | None = None) -> Station:
        now = now or utcnow()
        station = self.managed_station(principal, station_id)
        if amenity not in AMENITIES:
            raise Invalid(f"unknown amenity {amenity!r}; see /api/v1/meta", "amenity")
        bit = amenity_mask((amenity,))
        if out_of_order and not station.amenities_yes & bit:
            raise Invalid(f"station {station_id} is not listed as having {amenity!r}", "amenity")
        reason = _text(reason, MAX_REASON, "reason") or None
        with self.stations.transaction():
            self.store.set_out_of_order(station.id, bit, out_of_order)
            self.store.station_status_event(station.id, now, principal.id, principal.email, "amenity", amenity,
                                            "out_of_order" if out_of_order else "in_order", reason, None)
        return self.stations.get(station.id)

    def inspect(self, principal, station_id: int, results: dict[str, bool], *, lat: float | None = None,
                lng: float | None = None, photos: dict[str, Sequence[bytes]] | None = None, note: str = "",
                now: datetime | None = None) -> InspectionResult:
        """Record a daily inspection; every failed item opens (or joins) a work order."""
        now = now or utcnow()
        station = self.managed_station(principal, station_id)
        items = checklist_for(station.kind)
        codes = [item.code for item in items]
        unknown = sorted(set(results) - set(codes))
        missing = [code for code in codes if code not in results]
        if unknown or missing:
            raise Invalid("the checklist for this station is " + ", ".join(codes)
                          + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                          + (f"; missing: {', '.join(missing)}" if missing else ""), "results")
        photos = photos or {}
        if set(photos) - set(codes):
            raise Invalid("photos must be keyed by checklist item", "photos")
        if (lat is None) != (lng is None) or (lat is not None and not (-90 <= lat <= 90 and -180 <= lng <= 180)):
            raise Invalid("the device position needs lat and lng within range", "lat")
        note = _text(note, MAX_INSPECTION_NOTE, "note")
        distance = distance_m(lat, lng, station.lat, station.lng) if lat is not None else None
        far = distance is not None and distance > FAR_FROM_STATION_M
        stored: dict[str, list] = {}
        failed = []
        try:  # photos first, all of them, so a bad one leaves no inspection and no file behind
            for code, blobs in photos.items():
                if blobs:
                    stored[code] = self.photos.ingest_all(list(blobs))
            with self.stations.transaction():
                inspection_id = self.store.insert_inspection(station.id, principal.id, now, lat, lng, distance,
                                                             far, note)
                for item in items:
                    passed = bool(results[item.code])
                    wo_id = joined = None
                    if not passed:
                        submitted = self.submit_report(ReportInput(
                            category=self._inspection_category(station.id, item.category),
                            station_id=station.id, source="inspection",
                            description=f"巡查未通过 Inspection failed: {item.names['zh-CN']} / {item.names['en']}"
                                        + (f" — {note}" if note else "")), now)
                        wo_id, joined = submitted.work_order_id, submitted.joined
                        failed.append((item.code, wo_id, joined))
                    item_id = self.store.insert_inspection_item(inspection_id, item.code, passed, wo_id)
                    if item.code in stored:
                        self.store.attach(stored[item.code], now, work_order_id=wo_id, inspection_item_id=item_id)
        except BaseException:
            self._discard([photo for photos_of_item in stored.values() for photo in photos_of_item])
            raise
        return InspectionResult(inspection_id, station.id, distance, far, failed)

    def _inspection_category(self, station_id: int, wanted: str) -> str:
        """The checklist item's problem category, or "other" (else the first) when the station's
        organisation has removed it from its list: a failed check is never lost."""
        codes = [c.code for c in self.categories_for_station(station_id)]
        return wanted if wanted in codes else ("other" if "other" in codes else codes[0])

    def stations_of(self, principal) -> list[dict]:
        """The stations a caller looks after (admins: every owned station)."""
        if principal.role == "admin":
            return self.store.stations_in_scope(None, None)
        if principal.role == "station_manager":
            return self.store.stations_in_scope(principal.organisation_id, principal.id)
        if principal.role == "org_manager":
            return self.store.stations_in_scope(principal.organisation_id, None)
        raise Forbidden("workers do not look after stations")

    def not_inspected_today(self, principal, now: datetime | None = None) -> list[dict]:
        """Stations in the caller's care with no inspection since local midnight (station's zone)."""
        now = now or utcnow()
        out = []
        for row in self.stations_of(principal):
            zone = ZoneInfo(row["timezone"])
            midnight = datetime.combine(now.astimezone(zone).date(), time(0), zone)
            if row["last_inspected_at"] is None or row["last_inspected_at"] < midnight:
                out.append(row)
        return out

    def overview(self, principal, now: datetime | None = None) -> dict:
        """Open, overdue and fixed-today counts (of all of them, in SQL) and the open work orders due
        soonest (for the map; the store's page of 500)."""
        now = now or utcnow()
        scope = scope_for(principal)
        zone = ZoneInfo(self.timezone_of(principal.organisation_id))
        midnight = datetime.combine(now.astimezone(zone).date(), time(0), zone)
        counts = self.store.work_order_counts(scope, now, midnight)
        return {"open": counts["open"], "overdue": counts["overdue"], "fixed_today": counts["fixed"],
                "open_orders": self.store.work_orders(scope, states=sorted(OPEN_STATES))}


# -- helpers -----------------------------------------------------------------------------


def _category_in(categories: Sequence[Category], wo: WorkOrder) -> Category:
    """The work order's category; if its organisation has since removed it, a stand-in that still
    names the code (history is never rewritten)."""
    found = find_category(categories, wo.category)
    if found is not None:
        return found
    return Category(wo.category, {"zh-CN": wo.category, "en": wo.category}, {"zh-CN": "", "en": ""},
                    wo.priority, Limit(minutes=1), Limit(minutes=1))


def _due(start: datetime, limit: Limit, tz: str) -> clock.Due:
    return clock.due_at(start, minutes=limit.minutes, working_days=limit.working_days, tz=tz)


def _states_for(status: str | None) -> tuple[str, ...] | None:
    """A state, or a group ('open' / 'closed', as Open311 groups them), as the states it means."""
    if status is None:
        return None
    if status == "open":
        return tuple(sorted(OPEN_STATES))
    if status == "closed":
        return ("fixed", "closed")
    if status in STATES:
        return (status,)
    raise Invalid(f"status must be a state ({', '.join(STATES)}) or open / closed", "status")


def _text(value: str | None, limit: int, name: str) -> str:
    value = (value or "").strip()
    if _CONTROL.search(value):  # NUL and friends: no text needs them, PostgreSQL refuses NUL
        raise Invalid(f"{name} contains control characters", name)
    if len(value) > limit:
        raise Invalid(f"{name} must be at most {limit:,} characters (got {len(value):,})", name)
    return value


def _phone(value: str | None) -> str | None:
    value = _text(value, 40, "phone")
    if not value:
        return None
    if not _PHONE.match(value):
        raise Invalid("the phone number should be digits (e.g. 13812345678), optionally with +, spaces or dashes",
                      "phone")
    return value


def _email(value: str | None) -> str | None:
    value = _text(value, 254, "email")
    if not value:
        return None
    if len(value) > 254 or not _EMAIL.match(value):
        raise Invalid("the e-mail address is not valid", "email")
    return value
