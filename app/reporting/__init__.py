"""The public side of reporting: the report form (/s/<id>/report), the tracking page (/r/<token>)
and the photos (/media/<sha256>). Server-rendered, no JavaScript needed, zh-CN and en.

The form is two taps: the "report a problem" link, then the problem (each problem is a submit
button). The rules live in app.ops.service (``Ops.submit_report``, ``Ops.track``); here they are
only asked and their answers written as pages. Limits: per client address and per station
(Flask-Limiter, app.auth), a honeypot field, a request size cap (MAX_CONTENT_LENGTH), CSRF.
"""
from __future__ import annotations

from flask import (
    Blueprint, abort, current_app, make_response, redirect, render_template, request, send_file, url_for,
)
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import RequestEntityTooLarge

from app import auth
from app.auth import current_principal, limiter
from app.device import device_hash, known_device
from app.dbtime import utcnow
from app.ops.errors import OpsError
from app.ops.feedback import ANSWERS, ASKED_IN, Feedback
from app.ops.photos import MAX_PHOTOS
from app.ops.service import MAX_DESCRIPTION, ReportInput
from app.ops.workflow import OPEN_STATES
from app.reporting.texts import REASON_WORDS, STATE_WORDS, TEXTS
from app.stations.vocabulary import KINDS
from app.web import LANGS, page_lang  # the finder's rule: ?lang=, else Accept-Language

bp = Blueprint("reporting", __name__, template_folder="templates")

REPORTS_PER_ADDRESS = "5 per 10 minutes"
REPORTS_PER_STATION = "30 per hour"  # many addresses, one station: a flood, not a queue of problems
FEEDBACK_PER_ADDRESS = "10 per 10 minutes"  # one answer per device per work order; this stops cookie-droppers
HONEYPOT = "website"  # hidden from people; bots that fill every field fill it
YEAR = 365 * 24 * 3600
MB = 1024 * 1024
TIME_FORMAT = "%Y-%m-%d %H:%M"  # the organisation's wall clock, the same in both languages
STATION_ID = "<int(max=9223372036854775807):station_id>"


def _ops():
    return current_app.extensions["yizhan_ops"]


def _chosen_lang() -> dict:
    """``{"lang": …}`` when the page was asked for in a language, so links keep it."""
    asked = request.args.get("lang")
    return {"lang": asked} if asked in LANGS else {}


def _limits() -> dict:
    """The numbers the page's sentences quote (declared by the service, the photo store and the config)."""
    return {"max_description": MAX_DESCRIPTION, "max_photos": MAX_PHOTOS, "photo_mb": _ops().photos.max_bytes // MB,
            "upload_mb": (current_app.config.get("MAX_CONTENT_LENGTH") or 0) // MB}


def _say(key: str, **values) -> str:
    """An error sentence in the page's language, its numbers filled in."""
    return TEXTS[page_lang()]["errors"][key].format(**_limits(), **values)


def _page(template: str, status: int = 200, *, referrer: str = "same-origin", **context):
    lang = page_lang()
    texts = TEXTS[lang]
    other = "en" if lang == "zh-CN" else "zh-CN"
    # The same page in the other language (a form re-shown after a post: the form's own address).
    endpoint = {"reporting.submit": "reporting.form"}.get(request.endpoint, request.endpoint)
    # The page's own query, except what url_for would take as its own (path values, _external ...).
    path_values = request.view_args or {}
    switch_args = {**path_values, **{k: v for k, v in request.args.items()
                                     if k != "lang" and k not in path_values and not k.startswith("_")}}
    html = render_template(
        f"reporting/{template}", lang=lang, t=texts, other=other,
        switch=url_for(endpoint, **switch_args, lang=other) if endpoint else None,
        link_label=current_app.extensions["yizhan_assets"].messages(lang)["report.link"], limits=_limits(),
        **context)
    response = make_response(html, status)
    response.headers["Cache-Control"] = "no-store"  # a CSRF token, or a tracking token in the URL
    response.headers["Vary"] = "Accept-Language"
    response.headers["X-Robots-Tag"] = "noindex"
    # The form keeps a same-origin Referer (Flask-WTF checks it on HTTPS posts); tracking pages
    # choose their own. The other security headers are app.security's.
    response.headers["Referrer-Policy"] = referrer
    return response


# -- the form ------------------------------------------------------------------------------


def _station_or_none(station_id: int):
    station = _ops().stations.get(station_id)
    return station if station is not None and station.status == "active" else None


def _missing_station():
    return _page("message.html", 404, message=TEXTS[page_lang()]["missing_station"])


def _form(station, status: int = 200, problem: str | None = None, field: str | None = None,
          values: dict | None = None):
    lang = page_lang()
    values = values or {}
    closed = None
    if station.closed_by_staff(utcnow()):
        closed = TEXTS[lang]["closed"].format(reason=station.closure_reason)
    categories = [{"code": c.code, "name": c.names[lang], "description": c.descriptions[lang]}
                  for c in _ops().categories_for_station(station.id)]
    return _page(
        "report.html", status, station=station, kind=KINDS[station.kind][lang], closed=closed,
        categories=categories, problem=problem, field=field, values=values,
        action=url_for(".submit", station_id=station.id, **_chosen_lang()),
        back=url_for("web.station_page", station_id=station.id, **_chosen_lang()),
        honeypot=HONEYPOT,
        more_open=bool(problem and field in ("description", "phone", "photos")
                       or values.get("description") or values.get("phone")))


def _typed() -> dict:
    """What the reporter typed, to show again with an error (never the honeypot, never files)."""
    return {"description": request.form.get("description", ""), "phone": request.form.get("phone", "")}


def _error_text(exc: OpsError) -> str:
    """English pages show the service's message; Chinese pages the field's own sentence."""
    if page_lang() == "en":
        return exc.message
    return _say(exc.field if exc.field in TEXTS["zh-CN"]["errors"] else "generic")


@bp.get(f"/s/{STATION_ID}/report")
def form(station_id: int):
    station = _station_or_none(station_id)
    return _form(station) if station else _missing_station()


def _station_key() -> str:
    return f"report-station:{request.view_args['station_id']}"


@bp.post(f"/s/{STATION_ID}/report")
@limiter.limit(REPORTS_PER_ADDRESS)
# Only stored reports count against the station (else a few addresses posting junk could stop
# everyone from reporting there); every post counts against its sender.
@limiter.limit(REPORTS_PER_STATION, key_func=_station_key, deduct_when=lambda response: response.status_code == 303)
def submit(station_id: int):
    station = _station_or_none(station_id)
    if station is None:
        return _missing_station()
    if request.form.get(HONEYPOT):
        # Quietly: a bot learns nothing it could adjust to, and nothing is stored.
        return _form(station, 400, _say("generic"))
    files = [f for f in request.files.getlist("photo") if f.filename]  # no file chosen: an empty part
    if len(files) > MAX_PHOTOS:
        return _form(station, 400, _say("too_many_photos"), "photos", _typed())
    report = ReportInput(
        category=request.form.get("category", ""), station_id=station.id,
        description=request.form.get("description", ""), phone=request.form.get("phone", ""),
        source="web", photos=tuple(f.read() for f in files))
    try:
        done = _ops().submit_report(report)
    except OpsError as exc:
        return _form(station, exc.status, _error_text(exc), exc.field, _typed())
    flag = {"joined": 1} if done.joined else {"new": 1}
    return redirect(url_for(".track", token=done.token, **flag, **_chosen_lang()), 303)


@bp.errorhandler(CSRFError)
def _csrf_failed(exc: CSRFError):
    """A missing or expired token: the form again, with what was typed (files cannot be kept)."""
    if request.endpoint == "reporting.feedback":
        return _track_page(request.view_args["token"], 400, problem=TEXTS[page_lang()]["feedback_expired"])
    station = _station_or_none(request.view_args.get("station_id", 0)) if request.view_args else None
    if station is None:
        return _missing_station()
    had_photos = any(f.filename for f in request.files.getlist("photo"))
    return _form(station, 400, _say("expired_photos" if had_photos else "expired"), None, _typed())


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc):
    """Over MAX_CONTENT_LENGTH: the body was not read, so nothing typed can be shown again."""
    station = _station_or_none(request.view_args.get("station_id", 0)) if request.view_args else None
    if station is None:
        return _missing_station()
    return _form(station, 413, _say("too_large"), "photos")


@bp.errorhandler(429)
def _rate_limited(exc):
    """Browsers get a page; other clients app.auth's JSON envelope. Both carry Retry-After."""
    answer = auth._rate_limited(exc)  # the one place the envelope and Retry-After are made
    accept = request.accept_mimetypes
    if accept["text/html"] <= accept["application/json"]:
        return answer
    seconds = answer.headers["Retry-After"]
    page = _page("message.html", 429, message=TEXTS[page_lang()]["limited"].format(seconds=seconds))
    page.headers["Retry-After"] = seconds
    return page


# -- the tracking page -----------------------------------------------------------------------


def _reason(code: str | None, lang: str) -> str | None:
    return REASON_WORDS[code][lang] if code in REASON_WORDS else None


@bp.get("/r/<token>")
def track(token: str):
    return _track_page(token)


def _track_page(token: str, status: int = 200, problem: str | None = None):
    lang = page_lang()
    texts = TEXTS[lang]
    view = _ops().track(token) if len(token) <= 100 else None
    if view is None:
        return _page("message.html", 404, referrer="no-referrer", message=texts["missing_report"])
    steps = [{"at": step.at.strftime(TIME_FORMAT), "iso": step.at.isoformat(), "note": step.note,
              "state": STATE_WORDS[step.state][lang], "reason": _reason(step.reason, lang)} for step in view.steps]
    due = None
    if view.state in OPEN_STATES:
        due_at = view.due_at.strftime(TIME_FORMAT)
        due = texts["due_estimated" if view.due_estimated else "due"].format(time=due_at)
    notice = None  # right after sending (while still open), the form's redirect says which
    if view.state not in OPEN_STATES:
        pass  # a bookmarked link days later: the state says it all
    elif request.args.get("joined"):
        notice = texts["joined"]
    elif request.args.get("new"):
        notice = texts["received"]
    # The questionnaire, once the work is done: asked until this device has answered.
    asked = view.state in ASKED_IN
    answered = Feedback(_ops().stations).answer_of(view.id, known_device()) if asked else None
    here = {"station_id": view.station_id, **_chosen_lang()}
    return _page(
        "track.html", status,
        # The questionnaire posts back here: on HTTPS Flask-WTF wants a same-origin Referer, and
        # "origin" sends the site alone, never the path with the tracking token.
        referrer="origin" if asked and answered is None else "no-referrer",
        view=view, category=view.category.names[lang],
        state=STATE_WORDS[view.state][lang], reason=_reason(view.close_reason, lang), steps=steps, due=due,
        notice=notice, station_link=url_for("web.station_page", **here) if view.station_id else None,
        again=url_for(".form", **here) if view.station_id else None,
        ask=asked and answered is None, answered=answered, problem=problem,
        answers=[(code, labels[lang]) for code, labels in ANSWERS.items()],
        feedback_url=url_for(".feedback", token=token, **_chosen_lang()))


@bp.post("/r/<token>/feedback")
@limiter.limit(FEEDBACK_PER_ADDRESS)
def feedback(token: str):
    """满意 / 基本满意 / 不满意 about a fixed or closed work order; then the page again, saying thanks."""
    view = _ops().track(token) if len(token) <= 100 else None
    if view is None:
        return _page("message.html", 404, referrer="no-referrer", message=TEXTS[page_lang()]["missing_report"])
    answer = request.form.get("answer", "")
    if view.state not in ASKED_IN or answer not in ANSWERS:
        return _track_page(token, 400, problem=TEXTS[page_lang()]["feedback_invalid"])
    Feedback(_ops().stations).give(view.id, view.state, device_hash(), answer, utcnow())
    return redirect(url_for(".track", token=token, **_chosen_lang()), 303)


# -- photos --------------------------------------------------------------------------------


def _staff_may_see(organisations: set[int]) -> bool:
    who = current_principal()
    return who is not None and (who.role == "admin" or who.organisation_id in organisations)


@bp.get("/media/<sha256>")
def media(sha256: str):
    """A stored photo. Public ones (fixes shown on tracking pages) to anyone, cached for good
    (the name is the content's hash); reporters' own only to staff of an organisation whose
    work order holds it, and admins. Anyone else gets the same 404 as for an unknown name."""
    ops = _ops()
    found = ops.photos.open(sha256)
    if found is None:
        abort(404)
    public, organisations = ops.store.photo_owners(sha256)
    if not public and not _staff_may_see(organisations):
        abort(404)
    path, mime = found
    response = send_file(path, mimetype=mime, conditional=True, etag=sha256)
    response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable" if public else "private, no-cache"
    if not public:
        response.headers["Vary"] = "Cookie"
    return response  # app.security's MEDIA policy: never run as anything, even opened on its own


def init_app(app) -> None:
    app.register_blueprint(bp)
