"""GET /gbfs/*.json: Yizhan's stations published as a GBFS v2.3 feed (see app.gbfs.feed)."""
from __future__ import annotations

import hashlib
import json

from flask import Blueprint, Response, current_app, request

from app.gbfs import feed
from app.dbtime import utcnow
from app.web import absolute_url

bp = Blueprint("gbfs", __name__, url_prefix="/gbfs")


def _store():
    return current_app.extensions["yizhan_store"]


def _answer(data: dict) -> Response:
    """The file with its envelope, an ETag over the body, and 304 when the client has it."""
    body = json.dumps(feed.envelope(data, utcnow()), ensure_ascii=False, separators=(",", ":")).encode()
    etag = hashlib.sha256(body).hexdigest()[:32]
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    else:
        response = Response(body, mimetype="application/json")
    response.set_etag(etag)
    response.cache_control.public = True
    response.cache_control.max_age = feed.TTL_S
    return response


@bp.get("/gbfs.json")
def discovery():
    return _answer(feed.discovery(_feed_url))


def _feed_url(name: str, lang: str) -> str:
    query = f"?lang={lang}" if name == "system_information" and lang != feed.LANGUAGES[0] else ""
    return absolute_url(f"{bp.url_prefix}/{name}.json{query}")


@bp.get("/system_information.json")
def system_information():
    lang = request.args.get("lang", feed.LANGUAGES[0])
    if lang not in feed.LANGUAGES:
        lang = feed.LANGUAGES[0]
    return _answer(feed.system_information(lang, current_app.config["YIZHAN_TIMEZONE"]))


@bp.get("/station_information.json")
def station_information():
    return _answer(feed.station_information(_store().active_batches()))


@bp.get("/station_status.json")
def station_status():
    return _answer(feed.station_status(_store().active_batches(), utcnow()))


def init_app(app) -> None:
    app.register_blueprint(bp)
