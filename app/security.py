"""Security headers on every response (pages, API, static files, errors), declared once per area.

Which area a response belongs to follows the endpoint that answered it (its blueprint, or an
endpoint of its own for the photos); anything else — the API, feeds, health, an unknown path — gets
the strict default. No area allows inline script: the staff pages' scripts are files under
``static/staff/``, and the finder's inline ``<script type="application/json">`` blocks are data,
which browsers never run.

Framing: WeChat shows the finder and the report pages in its in-app browser and in mini-programs'
``<web-view>``; so public pages send neither ``X-Frame-Options`` nor ``frame-ancestors`` (any site
may frame them: they hold no staff session, and the report form needs a person's typing). Staff
pages and the login deny framing (a framed form could be clickjacked with a staff session).

HSTS only on a request that came in over HTTPS: ``request.is_secure`` (behind a proxy, ProxyFix
takes the scheme from ``X-Forwarded-Proto`` when ``YIZHAN_PROXY_HOPS`` trusts it). A browser ignores
HSTS over plain HTTP anyway; sending it there would only mislead whoever reads the headers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, current_app, request

HSTS = "max-age=31536000"  # a year; no includeSubDomains: a city's other hosts are not ours to pin


@dataclass(frozen=True)
class Policy:
    csp: str  # may name {tiles} and {wechat}: the finder's other hosts, filled in from the config
    referrer: str  # the default; a page may choose a stricter one itself (tracking links: no-referrer)
    framable: bool


# Strict: nothing loads, nothing frames. JSON, feeds, health, metrics and every error of an unknown path.
STRICT = Policy("default-src 'none'; frame-ancestors 'none'; base-uri 'none'", "no-referrer", False)
# The finder (/, /s/<id>, its assets, the service worker): scripts from this site and, when WeChat is
# configured, the JS-SDK's host; tiles from the base-map hosts (images, and the service worker's
# fetches of them); inline styles (the shell inlines its CSS; Leaflet positions by style).
FINDER = Policy(
    "default-src 'self'; script-src 'self' {wechat}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: {tiles}; connect-src 'self' {tiles} {wechat}; worker-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'",
    "strict-origin-when-cross-origin", True)
# The report form and tracking pages: no scripts at all, photos from this site, posts to it.
REPORTING = Policy(
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'",
    "same-origin", True)
# Staff pages and the login: scripts from files on this site; the IOC polls its JSON feed here.
# Same-origin Referer kept: Flask-WTF checks it on HTTPS posts.
STAFF = Policy(
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "same-origin", False)
# Photos: never run as anything, even when opened on their own.
MEDIA = Policy("default-src 'none'; sandbox", "no-referrer", False)

# Blueprint (or, first, endpoint) -> policy. "static" is Flask's own /static endpoint.
BY_ENDPOINT = {"reporting.media": MEDIA}
BY_BLUEPRINT = {"web": FINDER, "reporting": REPORTING, "staff": STAFF, "staff_auth": STAFF}
BY_APP_ENDPOINT = {"static": FINDER}


def policy_for(endpoint: str | None, blueprint: str | None) -> Policy:
    if endpoint in BY_ENDPOINT:
        return BY_ENDPOINT[endpoint]
    if endpoint in BY_APP_ENDPOINT:
        return BY_APP_ENDPOINT[endpoint]
    return BY_BLUEPRINT.get(blueprint, STRICT)


def tile_sources() -> str:
    """Every base-map host a page may draw from (any preset: ``?tiles=`` chooses per page), as CSP
    sources; a ``{s}`` subdomain label becomes ``*``."""
    from app.web.tiles import PRESETS  # here: app.web's package imports the API, which imports app.auth

    hosts = set()
    for preset in PRESETS.values():
        for key in ("url", "labels"):
            if preset.get(key):
                parts = urlsplit(preset[key])
                labels = parts.netloc.split(".")
                if "{s}" in labels[0]:
                    labels[0] = "*"
                hosts.add(f"{parts.scheme}://{'.'.join(labels)}")
    return " ".join(sorted(hosts))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _compiled(app: Flask) -> dict[Policy, str]:
    """Each policy's CSP with this app's hosts filled in (once, at start)."""
    wechat = ""
    if app.config.get("WECHAT_APP_ID") and app.config.get("WECHAT_APP_SECRET"):
        wechat = _origin(app.config.get("WECHAT_JSSDK_URL", ""))
    tiles = tile_sources()
    return {p: re.sub(r"\s+;", ";", " ".join(p.csp.format(tiles=tiles, wechat=wechat).split()))
            for p in (STRICT, FINDER, REPORTING, STAFF, MEDIA)}


def _headers(response):
    policy = policy_for(request.endpoint, request.blueprint)
    headers = response.headers
    headers["Content-Security-Policy"] = current_app.extensions["yizhan_csp"][policy]
    headers["X-Content-Type-Options"] = "nosniff"
    headers.setdefault("Referrer-Policy", policy.referrer)
    if not policy.framable:
        headers["X-Frame-Options"] = "DENY"  # for browsers older than frame-ancestors
    if request.is_secure:
        headers["Strict-Transport-Security"] = HSTS
    return response


def init_app(app: Flask) -> None:
    app.extensions["yizhan_csp"] = _compiled(app)
    app.after_request(_headers)
