"""Open311 GeoReport v2 under /open311/v2 (JSON only), so civic clients and city hotline systems
can read the problem categories, file reports and follow them.

Handlers only read the question (app.open311.wire), ask ``Ops`` and write the answer; the rules
(routing to a station or an organisation, "me too", SLA clocks, what is public) live in
app.ops.service. Every error is the standard's ``[{"code", "description"}]``, with the HTTP status
as its code. GET answers need no key and show nothing personal; POST needs an api_key
(``flask --app wsgi open311 keys create NAME``) and is rate limited per address and per key.
Machine clients authenticate by that key and carry no session, so the blueprint is CSRF-exempt.
"""
from __future__ import annotations

import hashlib
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, g, request, url_for
from werkzeug.exceptions import HTTPException

from app.api.serialize import json_response
from app.auth import OPEN311_PREFIX, client_key, csrf, limit_form_field, limiter
from app.dbtime import utcnow
from app.ops.errors import Forbidden, NotFound, OpsError
from app.open311 import wire
from app.web import page_lang  # the finder's rule: ?lang=, else Accept-Language
from app.web import absolute_url

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")

# Without a valid api_key (someone guessing keys, or a revoked client), per address; a client
# application with its key is held by its key's limit, however many of its users one city
# hotline server posts for from its one address.
POSTS_PER_ADDRESS = "5 per 10 minutes"
POSTS_PER_KEY = "60 per minute"
MAX_TOKEN_LENGTH = 100


def _ops():
    return current_app.extensions["yizhan_ops"]


def _answer(body, status: int = 200, private: bool = False):
    response = json_response(body, status)
    response.headers["Vary"] = "Accept-Language"
    if private:  # it carries a tracking token
        response.headers["Cache-Control"] = "no-store"
    return response


def _error(status: int, description: str, headers=()):
    response = json_response([{"code": status, "description": description}], status)
    for name, value in headers:
        response.headers[name] = value
    return response


@bp.errorhandler(OpsError)
def _ops_error(exc: OpsError):
    return _error(exc.status, exc.message)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    """Werkzeug's own errors (a body over MAX_CONTENT_LENGTH, an unknown path, a wrong method)."""
    # Keep e.g. Allow on a 405; the body is ours.
    headers = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
    return _error(exc.code or 500, exc.description or exc.name, headers)


def _routing_error():
    """Paths under /open311/ that match no route never reach the blueprint's handlers: answer
    them here, before Flask's HTML error page."""
    exc = request.routing_exception
    if (isinstance(exc, HTTPException) and (exc.code or 0) >= 400
            and request.path.startswith(OPEN311_PREFIX)):
        return _http_error(exc)
    return None


@bp.before_request
def _json_only():
    fmt = (request.view_args or {}).get("fmt")
    if fmt is not None and fmt != "json":
        return _error(400, f"format {fmt[:20]!r} is not supported: this server speaks JSON only (use .json)")
    return None


def _site_path(endpoint: str, **values) -> str:
    """A path of this site without the mount point, as ``absolute_url`` takes it."""
    return url_for(endpoint, **values)[len(request.script_root):]


def _photo_url(sha256: str) -> str:
    return absolute_url(_site_path("reporting.media", sha256=sha256))


def _organisation_categories():
    """The categories of ``?station_id=``'s organisation, else the defaults."""
    station_id = wire.whole_number(request.args.get("station_id"), "station_id")
    if station_id is None:
        return _ops().categories()
    station = _ops().stations.get(station_id)
    if station is None or station.status != "active":
        raise NotFound(f"No station with id {station_id}.")
    return _ops().categories_for_station(station_id)


def _writer():
    """Writes work orders as service requests, in the language and ``coordsys`` asked for."""
    lang, system = page_lang(), wire.coordsys(request.args.get("coordsys"))
    return lambda view: wire.service_request(view, lang, system, _photo_url)


# -- services ---------------------------------------------------------------------------


@bp.get("/discovery.<fmt>")
def discovery(fmt: str):
    return _answer(wire.discovery(absolute_url(bp.url_prefix), page_lang()))


@bp.get("/services.<fmt>")
def services(fmt: str):
    lang = page_lang()
    return _answer([wire.service(category, lang) for category in _organisation_categories()])


@bp.get("/services/<code>.<fmt>")
def service_definition(code: str, fmt: str):
    for category in _organisation_categories():
        if category.code == code:
            return _answer(wire.definition(category, page_lang()))
    raise NotFound(f"No service with service_code {code[:40]!r}: see services.json.")


# -- service requests -------------------------------------------------------------------


def _key_bucket() -> str:
    """Rate-limit key per api_key (hashed: the key itself is never stored); without one, per address."""
    key = limit_form_field("api_key")
    if not key:
        return f"open311-key:none:{client_key()}"
    return "open311-key:" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _uploaded_photos() -> list[bytes]:
    blobs = [part.read() for part in request.files.getlist(wire.PHOTO_FIELD)]
    return [blob for blob in blobs if blob]  # an empty part is a file input left empty


def _api_key_id() -> int | None:
    """The calling client application's key id (None: missing, unknown or revoked), once per request."""
    if "open311_key_id" not in g:
        g.open311_key_id = _ops().accounts.open311_key_id(limit_form_field("api_key"))
    return g.open311_key_id


@bp.post("/requests.<fmt>")
@limiter.limit(POSTS_PER_ADDRESS, exempt_when=lambda: _api_key_id() is not None)
@limiter.limit(POSTS_PER_KEY, key_func=_key_bucket)
def create_request(fmt: str):
    ops, form = _ops(), request.form  # a body over the cap is its 413 here, before the key's 403
    key_id = _api_key_id()
    if key_id is None:
        raise Forbidden("api_key is missing, unknown or revoked: ask this site's operators for one")
    done = ops.submit_report(wire.report_input(form, _uploaded_photos(), key_id))
    track_url = absolute_url(_site_path("reporting.track", token=done.token))
    # 200 as in the standard's example, which is what clients check for.
    return _answer(wire.submitted(done, page_lang(), track_url), private=True)


@bp.get("/requests.<fmt>")
def list_requests(fmt: str):
    zone = ZoneInfo(current_app.config["YIZHAN_TIMEZONE"])
    filters, write = wire.request_filters(request.args, utcnow(), zone), _writer()
    return _answer([write(view) for view in _ops().public_list(**filters, limit=wire.MAX_ROWS)])


@bp.get("/requests/<request_id>.<fmt>")
def get_request(request_id: str, fmt: str):
    view, write = None, _writer()
    if request_id.isascii() and request_id.isdigit() and len(request_id) <= 18:
        view = _ops().public_view_by_id(int(request_id))
    if view is None:
        raise NotFound(f"No service request with id {request_id[:40]!r}.")
    return _answer([write(view)])


@bp.get("/tokens/<token>.<fmt>")
def get_token(token: str, fmt: str):
    wo = _ops().work_order_for_token(token) if len(token) <= MAX_TOKEN_LENGTH else None
    if wo is None:
        raise NotFound("No service request with this token.")
    return _answer([{"service_request_id": str(wo.id), "token": token}], private=True)


def init_app(app) -> None:
    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.before_request(_routing_error)
