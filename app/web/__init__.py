"""Pages: the app shell at / and /s/<id> (share cards), the service worker, the manifest, hashed assets."""
from __future__ import annotations

import json
import mimetypes
import re
import time
from urllib.parse import urlsplit

from flask import Blueprint, current_app, has_request_context, make_response, render_template, request, send_from_directory
from sqlalchemy.exc import SQLAlchemyError

from app.api.serialize import json_response
from app.network.modes import DEFAULT_MINUTES, MAX_MINUTES, MIN_MINUTES, MODE_NAMES
from app.stations.vocabulary import KINDS
from app.web.assets import Assets
from app.web.tiles import PRESETS, preset
from app.wechat import origin

bp = Blueprint("web", __name__, template_folder="templates")
LANGS = ("zh-CN", "en")
YEAR = 365 * 24 * 3600
# A host name in ASCII (an internationalised name in its xn-- form), or an IPv6 literal.
_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?|[0-9a-f:.]*:[0-9a-f:.]*")


def public_url(raw: str | None) -> str:
    """YIZHAN_PUBLIC_URL checked and without its trailing slash; "" when unset.

    ``https://yizhan.example.cn/`` gives ``https://yizhan.example.cn``; the site's own paths
    (``/s/5``) are appended to it, so a path prefix names where the proxy mounts the app.
    """
    raw = (raw or "").strip()
    if not raw:
        return ""
    parts = urlsplit(raw)
    if (origin(raw) is None or not _HOST.fullmatch(parts.hostname) or "?" in raw or "#" in raw
            or any(ch.isspace() or ch == "\\" or not ch.isprintable() for ch in raw)):
        raise ValueError(
            "YIZHAN_PUBLIC_URL must be http(s)://host[:port] with an optional path prefix and no query or "
            f"fragment (an internationalised host in its xn-- form), e.g. https://yizhan.example.cn; got {raw!r}"
        )
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def _site_url() -> str:
    """The base of absolute URLs: YIZHAN_PUBLIC_URL, else (development) this request's own host."""
    return current_app.config.get("YIZHAN_PUBLIC_URL") or request.url_root.rstrip("/")


def absolute_url(path: str, app=None) -> str:
    """``path`` of this site as an absolute URL (in notifications, share cards); outside a request
    (the periodic job) only YIZHAN_PUBLIC_URL can say where the site is, else the path stays relative."""
    base = (app or current_app).config.get("YIZHAN_PUBLIC_URL")
    if not base and has_request_context():
        base = request.url_root.rstrip("/")
    return (base or "") + path


# Without a configured centre and no station at all (a fresh install): mainland China.
COUNTRY_VIEW = {"center": [35.0, 105.0], "zoom": 4}
# How long the stations' extent is reused: imports change it rarely, and it costs a table scan.
EXTENT_TTL_S = 600


def start_view() -> dict:
    """Where the page opens when it has no position (WGS-84): the configured centre and zoom,
    else the active stations' extent ({"bounds": [[south, west], [north, east]]}), else the country."""
    cfg = current_app.config
    if cfg.get("YIZHAN_DEFAULT_CENTER"):
        return {"center": list(cfg["YIZHAN_DEFAULT_CENTER"]), "zoom": cfg["YIZHAN_DEFAULT_ZOOM"]}
    cached = current_app.extensions.get("yizhan_start_view")
    now = time.monotonic()
    if cached and cached[0] > now:
        return cached[1]
    try:
        box = current_app.extensions["yizhan_store"].active_extent()
    except SQLAlchemyError:  # the page still opens (the API then says the database is down); asked again next time
        return COUNTRY_VIEW
    view = {"bounds": [[box.south, box.west], [box.north, box.east]]} if box else COUNTRY_VIEW
    current_app.extensions["yizhan_start_view"] = (now + EXTENT_TTL_S, view)
    return view


def _assets() -> Assets:
    return current_app.extensions["yizhan_assets"]


def page_lang() -> str:
    """The page's language, for every page of the site: ?lang=, else the browser's Accept-Language."""
    asked = request.args.get("lang")
    if asked in LANGS:
        return asked
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"], default="zh-CN")
    return "en" if best == "en" else "zh-CN"


def _shell(title: str, description: str, station=None, status: int = 200):
    assets = _assets()
    lang = page_lang()
    cfg = current_app.config
    tiles_name = request.args.get("tiles") if request.args.get("tiles") in PRESETS else cfg["YIZHAN_TILES"]
    wechat_on = current_app.extensions.get("yizhan_wechat") is not None
    page_config = {
        "version": assets.version,
        "lang": lang,
        "tiles": preset(tiles_name, cfg["TIANDITU_KEY"]),
        "wechat": {"enabled": wechat_on, "jssdk": cfg["WECHAT_JSSDK_URL"] if wechat_on else ""},
        "station": station["id"] if station else None,
        "catalogs": {code: assets.url(f"i18n/{code}.json") for code in LANGS},
        "start": start_view(),
        "description": description,
        "icon": assets.url("icons/icon-512.png"),
        # Travel modes and their speeds, as /api/v1/meta publishes them (for before it answers).
        "modes": [{"id": name, "metres_per_minute": round(kmh * 1000 / 60, 3)}
                  for name, kmh in cfg["YIZHAN_SPEEDS_KMH"].items()],
        "minutes": {"min": MIN_MINUTES, "max": MAX_MINUTES, "default": DEFAULT_MINUTES},
    }
    html = render_template(
        "app.html",
        lang=lang,
        title=title,
        description=description,
        canonical=_site_url() + request.path,
        image=_site_url() + assets.url("icons/icon-512.png"),
        asset=assets.url,
        app_css=assets.read_text("app/app.css"),
        config=page_config,
        messages=assets.messages(lang),
        station=station,
        circles=[{"token": f"{name}{DEFAULT_MINUTES}", "mode": name} for name in MODE_NAMES],
    )
    response = make_response(html, status)
    # Network-first everywhere: WeChat must not keep an old page that names old assets.
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Vary"] = "Accept-Language"
    return response


@bp.get("/")
def index():
    msgs = _assets().messages(page_lang())
    return _shell(msgs["app.title"], msgs["app.description"])


@bp.get("/s/<int(max=9223372036854775807):station_id>")
def station_page(station_id: int):
    """A station's own URL (QR codes on its door, share cards): title and og: tags name it."""
    st = current_app.extensions["yizhan_store"].get(station_id)
    if st is None or st.status == "removed":
        msgs = _assets().messages(page_lang())
        return _shell(msgs["app.title"], msgs["station.missing"], status=404)
    kind = KINDS[st.kind][page_lang()]
    description = " · ".join(p for p in (kind, st.address, st.opening_hours) if p)
    info = {"id": st.id, "name": st.name, "kind": kind, "address": st.address, "opening_hours": st.opening_hours}
    return _shell(f"{st.name} · {kind}", description, station=info)


@bp.get("/a/<digest>/<path:name>")
def asset(digest: str, name: str):
    assets = _assets()
    if name in assets.digests:
        # The shell's own files: small, read once, sent whole (so they can be gzipped).
        response = make_response(assets.read_bytes(name))
        response.mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    else:
        response = send_from_directory(current_app.static_folder, name)
    if assets.digests.get(name) == digest:
        response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    else:  # an old page asking for an old hash: give the current file, uncached
        response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/sw.js")
def service_worker():
    assets = _assets()
    body = render_template("sw.js", version=assets.version, shell=json.dumps(assets.urls()))
    response = make_response(body)
    response.headers["Content-Type"] = "text/javascript; charset=utf-8"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/manifest.webmanifest")
def manifest():
    assets = _assets()
    lang = page_lang()
    msgs = assets.messages(lang)
    body = {
        "name": msgs["app.title"],
        "short_name": msgs["app.short_name"],
        "description": msgs["app.description"],
        "lang": lang,
        "start_url": "/?source=pwa",
        "scope": "/",
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": "#0a7d5a",
        "icons": [
            {"src": assets.url("icons/icon-192.png"), "sizes": "192x192", "type": "image/png"},
            {"src": assets.url("icons/icon-512.png"), "sizes": "512x512", "type": "image/png"},
            {"src": assets.url("icons/icon-maskable-512.png"), "sizes": "512x512", "type": "image/png",
             "purpose": "maskable"},
        ],
    }
    response = json_response(body)
    response.headers["Content-Type"] = "application/manifest+json; charset=utf-8"
    response.headers["Cache-Control"] = "no-cache"
    return response


def _rebase_redirect(response):
    """Werkzeug's own redirects (``/s//5`` → ``/s/5``, on pages and API alike) name the Host
    header's host: point them at the site's URL instead."""
    location = response.headers.get("Location")
    if not location:  # nearly every response: decide before parsing any URL
        return response
    own = origin(request.host_url)
    if own is None or origin(location) != own:
        return response
    parts = urlsplit(location)
    if parts.path.startswith(request.script_root):
        query = f"?{parts.query}" if parts.query else ""
        response.headers["Location"] = _site_url() + parts.path[len(request.script_root):] + query
    return response


def init_app(app) -> None:
    app.config["YIZHAN_PUBLIC_URL"] = public_url(app.config.get("YIZHAN_PUBLIC_URL"))
    if not app.config["YIZHAN_PUBLIC_URL"] and not (app.debug or app.testing):
        app.logger.warning("YIZHAN_PUBLIC_URL is not set: share cards, canonical links, redirects and "
                           "WeChat signing trust each request's Host header. Set it in production.")
    app.extensions["yizhan_assets"] = Assets(app.static_folder)
    app.after_request(_rebase_redirect)
    app.register_blueprint(bp)
