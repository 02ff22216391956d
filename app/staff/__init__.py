"""The staff pages under /staff: my queue, a work order (map, photos, timeline, actions), the daily
inspection, a station's status and the organisation overview. Server-rendered plain HTML forms,
mobile-first, zh-CN and en, nothing from another host; they work without JavaScript and without
the service worker (the inspection's position is the one progressive extra).

Login and logout are app.auth's (blueprint ``staff_auth``, same /staff prefix); every page here
needs a logged-in principal, else app.auth's login redirect (``/staff/login?next=…``). Every form
carries Flask-WTF's CSRF token (app.auth checks it). The rules are app.ops.service's; here they
are only asked, and their errors (app.ops.errors) written as pages, in one handler.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, g, make_response, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import RequestEntityTooLarge

from app.auth import current_principal
from app.ops.categories import SENSOR_CATEGORIES
from app.ops.sensors import Sensors
from app.ops.checklists import FAR_FROM_STATION_M, checklist_for
from app.dbtime import utcnow
from app.ops.errors import Conflict, Forbidden, Invalid, NotFound, OpsError
from app.ops.feedback import ANSWERS as FEEDBACK_ANSWERS
from app.ops.checkins import OUTCOMES as CHECKIN_OUTCOMES
from app.ops.photos import MAX_PHOTOS
from app.ops.service import ASSIGNABLE_ROLES, MANAGING_ROLES
from app.ops.workflow import CLOSING_REASONS, STATE_TYPES
from app.ops.assessment import ASSESSING_ROLES, CATEGORY_FIGURES, FIGURE, FIGURES, UNITS, assess, current_period_code
from app.staff import charts
from app.staff import plot as maps
from app.staff.texts import (
    ACTION_WORDS, IOC_STATE_WORDS, IOC_TEXTS, PRIORITY_WORDS, REASON_WORDS, ROLE_WORDS, SOURCE_WORDS, STATE_WORDS, TEXTS,
)
from app.stations.hours import evaluate_station
from app.stations.vocabulary import AMENITIES, KINDS, amenity_mask, amenity_names
from app.web import LANGS, page_lang  # the finder's rule: ?lang=, else Accept-Language

# Blueprint "staff"; app.auth's "staff_auth" holds /staff/login and /staff/logout.
bp = Blueprint("staff", __name__, url_prefix="/staff", template_folder="templates")

OVERVIEW_ROLES = ("admin", "org_manager")
IOC_POLL_S = 5  # how often the operations centre page asks for the feed
TIME_FORMAT = "%Y-%m-%d %H:%M"  # the organisation's wall clock, the same in both languages
MB = 1024 * 1024
# A post-only endpoint -> the page its form is on.
FORM_PAGES = {"staff.transition": "staff.work_order"}
ID = "<int(max=9223372036854775807):{}>"


# -- who, where, when ---------------------------------------------------------------------


def _ops():
    return current_app.extensions["yizhan_ops"]


def _who():
    return current_principal()


@bp.before_request
def _logged_in():
    """Every page here is for staff: anyone else goes to app.auth's login (or gets its 401 JSON)."""
    if _who() is None:
        return current_app.login_manager.unauthorized()
    return None


def _chosen_lang() -> dict:
    """``{"lang": …}`` when the page was asked for in a language, so links and forms keep it."""
    asked = request.args.get("lang")
    return {"lang": asked} if asked in LANGS else {}


def _link(endpoint: str, **values) -> str:
    return url_for(endpoint, **values, **_chosen_lang())


def _zone(organisation_id: int | None) -> ZoneInfo:
    """The organisation's time zone (the service's default without one), once per request."""
    zones = g.setdefault("staff_zones", {})
    if organisation_id not in zones:
        zones[organisation_id] = ZoneInfo(_ops().timezone_of(organisation_id))
    return zones[organisation_id]


def _when(moment: datetime | None, organisation_id: int | None) -> str:
    return moment.astimezone(_zone(organisation_id)).strftime(TIME_FORMAT) if moment else ""


def _category_name(organisation_id: int | None, code: str, lang: str) -> str:
    """The organisation's name for a category code (the code itself if it has since removed it)."""
    names = g.setdefault("staff_categories", {})
    if organisation_id not in names:
        names[organisation_id] = {c.code: c.names for c in (*_ops().categories(organisation_id), *SENSOR_CATEGORIES)}
    found = names[organisation_id].get(code)
    return found[lang] if found else code


def _managed_station(station_id: int):
    """The station if the caller looks after it (404 outside their organisation, 403 for a role
    that may not change it): the service's own rule."""
    return _ops().managed_station(_who(), station_id)


def _station_zone(station_id: int) -> ZoneInfo:
    organisation_id, _ = _ops().accounts.station_owner(station_id)
    return _zone(organisation_id)


# -- pages ---------------------------------------------------------------------------------


def _page(template: str, status: int = 200, **context):
    lang = page_lang()
    who = _who()
    other = "en" if lang == "zh-CN" else "zh-CN"
    # The same page in the other language (after a post: the page the form was on).
    endpoint = FORM_PAGES.get(request.endpoint, request.endpoint)
    switch = None
    if endpoint:
        path_values = request.view_args or {}
        # The page's own query, except what url_for would take as its own (path values, _external ...).
        args = {k: v for k, v in request.args.items() if k != "lang" and k not in path_values
                and not k.startswith("_")} if request.method == "GET" else {}
        switch = url_for(endpoint, **path_values, **args, lang=other)
    html = render_template(
        f"staff/{template}", lang=lang, t=TEXTS[lang], other=other, switch=switch, who=who,
        role=ROLE_WORDS[who.role][lang] if who else "", link=_link,
        may_overview=who is not None and who.role in OVERVIEW_ROLES,
        may_assess=who is not None and who.role in ASSESSING_ROLES, **context)
    response = make_response(html, status)
    response.headers["Cache-Control"] = "no-store"  # personal data and CSRF tokens: never kept
    response.headers["Vary"] = "Accept-Language, Cookie"
    response.headers["X-Robots-Tag"] = "noindex"
    return response  # CSP (scripts from files only), no framing, Referer: app.security's STAFF policy


def _message(status: int, message: str):
    return _page("message.html", status, message=message)


def _say(exc: OpsError) -> str:
    """An error in the page's language: English pages show the service's own message; Chinese
    pages the field's sentence (or the message behind a Chinese lead-in)."""
    lang = page_lang()
    errors = TEXTS[lang]["errors"]
    limits = {"n": MAX_PHOTOS, "mb": _ops().photos.max_bytes // MB}
    if isinstance(exc, Conflict) and "conflict" in errors:
        return errors["conflict"]
    if lang == "en":
        return exc.message
    if exc.field in errors:
        return errors[exc.field].format(**limits)
    return errors["generic"].format(message=exc.message)


@bp.errorhandler(OpsError)
def _ops_error(exc: OpsError):
    """Whatever the service refuses and a page does not show beside its form (404, 403, …)."""
    errors = TEXTS[page_lang()]["errors"]
    if isinstance(exc, NotFound):
        return _message(404, errors["not_found"])
    if isinstance(exc, Forbidden):
        return _message(403, errors["forbidden"])
    return _message(exc.status, _say(exc))


@bp.errorhandler(CSRFError)
def _csrf_failed(exc: CSRFError):
    """A form without its token, or with an expired one: nothing was done."""
    return _message(400, TEXTS[page_lang()]["errors"]["expired"])


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc):
    return _message(413, TEXTS[page_lang()]["errors"]["too_large"])


def _photos(name: str) -> tuple[bytes, ...]:
    """The files sent in field ``name`` (a field left empty sends one part without a name);
    more than MAX_PHOTOS is refused."""
    files = [f for f in request.files.getlist(name) if f.filename]
    if len(files) > MAX_PHOTOS:
        raise Invalid(f"at most {MAX_PHOTOS} photos", "too_many_photos")
    return tuple(f.read() for f in files)


# -- my queue ------------------------------------------------------------------------------


def _rows(orders, now: datetime, lang: str) -> list[dict]:
    """Work orders as the lists show them: due in the organisation's zone, overdue marked."""
    return [{
        "id": wo.id, "href": _link(".work_order", wo_id=wo.id),
        "category": _category_name(wo.organisation_id, wo.category, lang),
        "station": wo.station_name, "state": STATE_WORDS[wo.state][lang],
        "due": _when(wo.due_at, wo.organisation_id), "due_iso": wo.due_at.isoformat() if wo.due_at else "",
        "estimated": wo.due_estimated, "overdue": wo.overdue(now), "reports": wo.reports,
        "lat": wo.lat, "lng": wo.lng, "map": _map_link(wo.lat, wo.lng),
    } for wo in orders]


def _map_link(lat: float, lng: float) -> str:
    """The finder centred on a place (its ``?lat=&lng=``, WGS-84)."""
    return url_for("web.index", lat=f"{lat:.6f}", lng=f"{lng:.6f}", **_chosen_lang())


def _stations_to_inspect(now: datetime, lang: str) -> list[dict] | None:
    """Stations in the caller's care not inspected today; None for roles that look after none."""
    who = _who()
    if who.role not in MANAGING_ROLES:
        return None
    return [{
        "id": row["id"], "name": row["name"], "kind": KINDS.get(row["kind"], {}).get(lang, row["kind"]),
        "last": _when(row["last_inspected_at"], row["organisation_id"]),
        "inspect": _link(".inspect", station_id=row["id"]), "status": _link(".station_status", station_id=row["id"]),
    } for row in _ops().not_inspected_today(who, now)]


@bp.get("/")
def queue():
    now = utcnow()
    lang = page_lang()
    orders = _ops().list_work_orders(_who(), status="open", now=now)  # by due time: the store's order
    return _page("queue.html", rows=_rows(orders, now, lang), stations=_stations_to_inspect(now, lang))


# -- a work order --------------------------------------------------------------------------


def _work_order_page(detail, status: int = 200, problem: str | None = None, typed: dict | None = None):
    ops, who, lang = _ops(), _who(), page_lang()
    wo = detail.work_order
    org = wo.organisation_id
    typed = typed or {}
    contacts = detail.contacts_shown  # reporters' phone and e-mail: the service's rule
    reports = [{
        "at": _when(r.created_at, org), "source": SOURCE_WORDS.get(r.source, {}).get(lang, r.source),
        "description": r.description, "phone": r.phone, "email": r.email, "media_url": r.media_url,
        # A link only to a web address (an Open311 client's text could be anything).
        "media_link": r.media_url if (r.media_url or "").startswith(("https://", "http://")) else None,
        "purged": contacts and r.personal_purged_at is not None,
    } for r in detail.reports]
    events = [{
        "at": _when(e.event.at, org), "iso": e.event.at.isoformat(), "actor": e.event.actor,
        "to": STATE_WORDS[e.event.to_state][lang], "note": e.event.note, "public": e.event.public,
        "reason": REASON_WORDS[e.event.reason][lang] if e.event.reason in REASON_WORDS else e.event.reason,
        "assignee": e.event.assignee,
    } for e in detail.events]
    station = ops.stations.get(wo.station_id) if wo.station_id else None
    points = [maps.Point(station.lat, station.lng, station.name, kind="station")] if station else []
    seen = {(p.lat, p.lng) for p in points}
    for n, r in enumerate(detail.reports, 1):
        if (r.lat, r.lng) not in seen:
            seen.add((r.lat, r.lng))
            points.append(maps.Point(r.lat, r.lng, f"{TEXTS[lang]['map_report']} {n}"))
    if not points:
        points.append(maps.Point(wo.lat, wo.lng, TEXTS[lang]["map_report"]))
    staff = []
    if "assigned" in detail.allowed and org is not None:
        staff = [{"email": p.email, "role": ROLE_WORDS[p.role][lang]}
                 for p in ops.accounts.staff_of(org, roles=sorted(ASSIGNABLE_ROLES))]
    chosen = typed.get("assignee") or wo.assignee_email or who.email
    reasons = [{"code": code, "name": REASON_WORDS[code][lang]}
               for code, sources in CLOSING_REASONS.items() if wo.state in sources]
    return _page(
        "work_order.html", status, wo=wo, problem=problem, typed=typed,
        category=detail.category.names[lang], priority=PRIORITY_WORDS.get(wo.priority, {}).get(lang, wo.priority),
        state=STATE_WORDS[wo.state][lang], state_type=STATE_TYPES[wo.state],
        reason=REASON_WORDS[wo.close_reason][lang] if wo.close_reason in REASON_WORDS else None,
        created=_when(wo.created_at, org), due=_when(wo.due_at, org), overdue=wo.overdue(utcnow()),
        reports=reports, events=events, contacts=contacts,
        feedback=[(FEEDBACK_ANSWERS[answer][lang], n) for answer, n in detail.feedback.items() if n],
        photos=[{"src": url_for("reporting.media", sha256=a.sha256), "public": a.public} for a in detail.attachments],
        plot=maps.plot(points), map_link=_map_link(wo.lat, wo.lng),
        actions=[{"to": to, "label": ACTION_WORDS[to][lang]} for to in detail.allowed],
        staff=staff, chosen=chosen, reasons=reasons, max_photos=MAX_PHOTOS,
        action=_link(".transition", wo_id=wo.id))


@bp.get(f"/work-orders/{ID.format('wo_id')}")
def work_order(wo_id: int):
    return _work_order_page(_ops().get_work_order(_who(), wo_id))


@bp.post(f"/work-orders/{ID.format('wo_id')}/transition")
def transition(wo_id: int):
    ops, who, form = _ops(), _who(), request.form
    to = form.get("to", "")
    typed = {"note": form.get("note", ""), "public": bool(form.get("public")),
             "assignee": form.get("assignee", ""), "reason": form.get("reason", "")}
    try:
        ops.transition(who, wo_id, to, note=typed["note"], public=typed["public"],
                       # Each select belongs to one button: sent with another, it is not meant.
                       assignee=typed["assignee"] or None if to == "assigned" else None,
                       reason=typed["reason"] or None if to == "closed" else None,
                       photos=_photos("photo"))
    except (NotFound, Forbidden):
        raise
    except OpsError as exc:  # shown beside the form, with what was typed (files cannot be kept)
        return _work_order_page(ops.get_work_order(who, wo_id), exc.status, _say(exc), typed)
    return redirect(_link(".work_order", wo_id=wo_id), 303)


# -- the daily inspection ------------------------------------------------------------------


def _position() -> tuple[float | None, float | None]:
    """The device position the page's script filled in; none when it could not (no JS, refused)."""
    raw = (request.form.get("lat", "").strip(), request.form.get("lng", "").strip())
    if not all(raw):
        return None, None
    try:
        return float(raw[0]), float(raw[1])
    except ValueError:
        raise Invalid("the device position is not a pair of numbers", "lat") from None


def _inspect_form(station, status: int = 200, problem: str | None = None, typed: dict | None = None):
    lang = page_lang()
    typed = typed or {}
    items = [{"code": item.code, "name": item.names[lang], "failed": typed.get(item.code) is False}
             for item in checklist_for(station.kind)]
    return _page("inspect.html", status, station=station, kind=KINDS[station.kind][lang], items=items,
                 problem=problem, note=typed.get("note", ""), max_photos=MAX_PHOTOS,
                 action=_link(".inspect", station_id=station.id))


@bp.route(f"/stations/{ID.format('station_id')}/inspect", methods=["GET", "POST"])
def inspect(station_id: int):
    station = _managed_station(station_id)
    if request.method == "GET":
        return _inspect_form(station)
    ops, form, lang = _ops(), request.form, page_lang()
    items = checklist_for(station.kind)
    # Each item's radio says pass or fail; anything else is left out, and the service names it.
    results = {item.code: form[f"item-{item.code}"] == "pass" for item in items
               if form.get(f"item-{item.code}") in ("pass", "fail")}
    typed = {**results, "note": form.get("note", "")}
    try:
        photos = {item.code: blobs for item in items if (blobs := _photos(f"photo-{item.code}"))}
        lat, lng = _position()
        result = ops.inspect(_who(), station.id, results, lat=lat, lng=lng, photos=photos, note=typed["note"])
    except (NotFound, Forbidden):
        raise
    except OpsError as exc:
        return _inspect_form(station, exc.status, _say(exc), typed)
    names = {item.code: item.names[lang] for item in items}
    failed = [{"name": names[code], "id": wo_id, "joined": joined, "href": _link(".work_order", wo_id=wo_id)}
              for code, wo_id, joined in result.failed]
    distance = round(result.distance_m) if result.distance_m is not None else None
    return _page("inspected.html", station=station, failed=failed, far=result.far, distance=distance,
                 limit=round(FAR_FROM_STATION_M), queue=_link(".queue"))


# -- a station's status --------------------------------------------------------------------


def _until(zone: ZoneInfo) -> datetime | None:
    """The datetime-local field, on the organisation's wall clock."""
    raw = request.form.get("until", "").strip()
    if not raw:
        return None
    try:
        local = datetime.fromisoformat(raw)
    except ValueError:
        raise Invalid("'until' must be a date and time like 2026-11-23T18:00", "until") from None
    return local.replace(tzinfo=zone) if local.tzinfo is None else local


# How far back the station page counts the public's check-ins: a week shows a pattern.
CHECKIN_DAYS = timedelta(days=7)


def _status_page(station, status: int = 200, problem: str | None = None, typed: dict | None = None):
    lang = page_lang()
    typed = typed or {}
    now = utcnow()
    zone = _station_zone(station.id)
    hours = evaluate_station(station.opening_hours, now, station.timezone, station.closure_reason,
                             station.closure_until)
    amenities = [{"name": name, "label": AMENITIES[name][lang],
                  "broken": bool(station.out_of_order & amenity_mask((name,)))}
                 for name in amenity_names(station.amenities_yes)]
    history = [{"at": row["at"].astimezone(zone).strftime(TIME_FORMAT), "actor": row["actor"],
                "what": (AMENITIES[row["subject"]][lang] + " · " if row["change"] == "amenity"
                         and row["subject"] in AMENITIES else ""),
                "value": _status_word(row["value"], lang), "reason": row["reason"]}
               for row in _ops().store.status_history(station.id, limit=10)]
    counts = _ops().store.checkin_counts(station.id, now - CHECKIN_DAYS)
    checkins = [{"label": names[lang], "count": counts.get(outcome, (0, 0))[0],
                 "devices": counts.get(outcome, (0, 0))[1]} for outcome, names in CHECKIN_OUTCOMES.items()]
    return _page(
        "status.html", status, station=station, kind=KINDS[station.kind][lang], problem=problem, typed=typed,
        checkins=checkins,
        closed=hours.reason, until=hours.next_change.astimezone(zone).strftime(TIME_FORMAT)
        if hours.reason is not None and hours.next_change else None,
        amenities=amenities, history=history, saved=bool(request.args.get("saved")) and problem is None,
        action=_link(".station_status", station_id=station.id),
        inspect=_link(".inspect", station_id=station.id))


def _status_word(value: str, lang: str) -> str:
    t = TEXTS[lang]
    return {"open": t["open_now"], "temporarily_closed": t["close"], "out_of_order": t["out_of_order"],
            "in_order": t["in_order"]}.get(value, value)


@bp.route(f"/stations/{ID.format('station_id')}/status", methods=["GET", "POST"])
def station_status(station_id: int):
    station = _managed_station(station_id)
    if request.method == "GET":
        return _status_page(station)
    ops, who, form = _ops(), _who(), request.form
    what = form.get("action", "")
    typed = {"reason": form.get("reason", ""), "until": form.get("until", ""),
             "amenity_reason": form.get("amenity_reason", "")}
    try:
        if what == "close":
            ops.set_station_status(who, station.id, "temporarily_closed", typed["reason"],
                                   _until(_station_zone(station.id)))
        elif what == "reopen":
            ops.set_station_status(who, station.id, "open")
        elif what == "amenity":
            # The button says which amenity and which way ("hot_water:out"): pressing it twice
            # cannot flip it back.
            name, _, way = form.get("amenity", "").partition(":")
            if way not in ("out", "in"):
                raise Invalid("say which amenity and whether it is out of order", "amenity")
            ops.set_amenity(who, station.id, name, way == "out", typed["amenity_reason"])
        else:
            raise Invalid("unknown action; close, reopen or amenity", "action")
    except (NotFound, Forbidden):
        raise
    except OpsError as exc:
        return _status_page(station, exc.status, _say(exc), typed)
    return redirect(_link(".station_status", station_id=station.id, saved=1), 303)


# -- the organisation overview ------------------------------------------------------------------


@bp.get("/overview")
def overview():
    who = _who()
    if who.role not in OVERVIEW_ROLES:
        raise Forbidden("the overview is for organisation managers and admins")
    now = utcnow()
    lang = page_lang()
    summary = _ops().overview(who, now)
    rows = _rows(summary["open_orders"], now, lang)
    # Overdue dots drawn last, so none hides under another work order at the same place.
    points = [maps.Point(r["lat"], r["lng"], f"#{r['id']} {r['category']}", r["href"],
                         "overdue" if r["overdue"] else "report")
              for r in sorted(rows, key=lambda r: r["overdue"])]
    return _page("overview.html", summary=summary, rows=rows, plot=maps.plot(points),
                 stations=_stations_to_inspect(now, lang))


# -- the assessment (考核) ---------------------------------------------------------------------

# Percentages drawn against their targets on one 0-100 scale (the page's first chart).
TARGET_CHART = ("satisfaction_pct", "response_on_time_pct", "resolution_on_time_pct", "inspection_pct", "intact_pct")
PERIOD_CHOICES = (6, 12)  # the last quarters and months offered by the picker


def _period_choices(now: datetime, zone: ZoneInfo, lang: str) -> list[dict]:
    """The last quarters and months, newest first, each with its label."""
    t = TEXTS[lang]
    local = now.astimezone(zone)
    quarters, months = [], []
    year, quarter = local.year, (local.month - 1) // 3 + 1
    for _ in range(PERIOD_CHOICES[0]):
        quarters.append({"code": f"{year}Q{quarter}", "label": t["quarter"].format(year=year, q=quarter)})
        year, quarter = (year, quarter - 1) if quarter > 1 else (year - 1, 4)
    year, month = local.year, local.month
    for _ in range(PERIOD_CHOICES[1]):
        months.append({"code": f"{year}-{month:02d}", "label": t["month"].format(year=year, m=month)})
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return quarters + months


def _item(figure, value, label: str) -> charts.Item:
    return charts.Item(label, value.value, value.previous, figure.met(value.value), figure.target)


def _section_view(report, section, lang: str) -> dict:
    t = TEXTS[lang]
    rows = [{"name": f.names[lang], "unit": UNITS[f.unit][lang], "value": section.figures[f.code].value,
             "previous": section.figures[f.code].previous, "target": f.target,
             "direction": "≥" if f.direction == "higher" else "≤", "met": f.met(section.figures[f.code].value),
             "code": f.code} for f in FIGURES]
    categories = [{"name": report.category_names[cat][lang],
                   "values": [values[f.code].value for f in CATEGORY_FIGURES]}
                  for cat, values in section.by_category.items()]
    title = (t["section_org"].format(n=section.stations) if section.manager_email is None
             else t["section_manager"].format(email=section.manager_email, n=section.stations))
    targets = charts.bar_chart([_item(FIGURE[code], section.figures[code], FIGURE[code].names[lang])
                                for code in TARGET_CHART], unit="%", maximum=100)
    response = charts.bar_chart([_item(FIGURE["response_median_min"], values["response_median_min"],
                                       report.category_names[cat][lang])
                                 for cat, values in section.by_category.items()])
    problems = [{"name": report.category_names[p.category][lang], "work_orders": p.work_orders,
                 "stations": [f"{r.station_name or r.station_id} ×{r.work_orders}" for r in p.stations]}
                for p in section.problems]
    return {"title": title, "id": "org" if section.manager_email is None else f"manager-{section.manager_id}",
            "rows": rows, "categories": categories, "targets": targets, "response": response,
            "problems": problems}


@bp.get("/assessment")
def assessment():
    """The assessment page: the figures, charts and downloads for a period (the API's rules)."""
    who, lang, ops = _who(), page_lang(), _ops()
    now = utcnow()
    own = ops.accounts.organisation(who.organisation_id) if who.organisation_id else None
    org_code = request.args.get("org") or (own.code if own else "")
    zone = _zone(own.id if own else None)
    chosen = request.args.get("period") or current_period_code(now, zone)
    context = {"org_code": org_code, "chosen": chosen, "choices": _period_choices(now, zone, lang),
               "ask_org": who.role == "admin", "report": None, "lang_asked": _chosen_lang().get("lang")}
    if not org_code:  # an admin, before choosing an organisation
        return _page("assessment.html", **context)
    try:
        report = assess(ops, who, org_code, chosen, now)  # 404 and 403: the blueprint's error pages
    except Invalid as exc:  # a mistyped period: shown above the picker
        return _page("assessment.html", 400, **context, problem=_say(exc))
    query = {"org": report.organisation.code, "period": report.period.code}
    on_time = FIGURE["resolution_on_time_pct"]
    managers = charts.bar_chart([_item(on_time, m.figures[on_time.code], m.manager_email) for m in report.managers],
                                unit="%", maximum=100) if report.total else None
    context["report"] = report
    return _page(
        "assessment.html", **context,
        title=TEXTS[lang]["assessment_title"].format(org=report.organisation.name, period=report.period.code),
        as_of=TEXTS[lang]["as_of"].format(time=report.as_of.astimezone(report.period.start.tzinfo).strftime(TIME_FORMAT),
                                          previous=report.previous.code),
        sections=[_section_view(report, s, lang) for s in report.sections()], managers=managers,
        category_heads=[f.names[lang] for f in CATEGORY_FIGURES],
        csv=url_for("api.ops_assessment", **query, format="csv"),
        xlsx=url_for("api.ops_assessment", **query, format="xlsx"))

# -- sensor cleaning: the operations centre (IOC) and the cleaner's check-in ---------------------


@bp.get("/ioc")
def ioc():
    """Stations in the caller's care on a dot map coloured by state, today's visitors and work orders;
    the page polls /api/v1/ops/ioc (declared in the staff API) and recolours itself."""
    lang = page_lang()
    feed = Sensors(_ops()).ioc(_who(), utcnow())  # Forbidden for workers: they look after no stations
    points = [maps.Point(s["lat"], s["lng"], s["name"], None, s["state"])
              for s in feed["stations"]]
    drawn = maps.plot(points, width=640, height=400)
    return _page("ioc.html", feed=feed, plot=drawn, dots=list(zip(feed["stations"], drawn.dots if drawn else [])),
                 it=IOC_TEXTS[lang], words={k: v[lang] for k, v in IOC_STATE_WORDS.items()},
                 at=_when(feed["at"], _who().organisation_id), poll_ms=IOC_POLL_S * 1000)


@bp.route(f"/stations/{ID.format('station_id')}/cleaned", methods=["GET", "POST"])
def cleaned(station_id: int):
    """Where the QR code on a toilet's door points: the cleaner (logged in) confirms being on site;
    that resolves the cleaning work order and resets the visitor count."""
    lang = page_lang()
    station = _ops().stations.get(station_id)
    if station is None:
        raise NotFound(f"No station with id {station_id}.", "station_id")
    if request.method == "POST":
        done = Sensors(_ops()).cleaned(_who(), station_id, utcnow())
        words = IOC_TEXTS[lang]
        return _message(200, words["checkin_done"].format(id=done) if done else words["checkin_none"])
    organisation_id, _ = _ops().accounts.station_owner(station_id)
    if _who().role != "admin" and organisation_id != _who().organisation_id:
        raise NotFound(f"No station with id {station_id}.", "station_id")
    return _page("cleaned.html", station=station, it=IOC_TEXTS[lang])


def init_app(app) -> None:
    app.register_blueprint(bp)
