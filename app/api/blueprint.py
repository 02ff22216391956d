"""The /api/v1 blueprint and what its routes share."""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import Blueprint, current_app

from app.dbtime import utcnow

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def store():
    return current_app.extensions["yizhan_store"]


def ops():
    return current_app.extensions["yizhan_ops"]


def graphs():
    return current_app.extensions["yizhan_graphs"]


def timezone() -> str:
    return current_app.config["YIZHAN_TIMEZONE"]


def stale_after_s() -> int:
    """Seconds after which a live status is served as unknown (YIZHAN_LIVE_STALE_AFTER_S)."""
    return current_app.config["YIZHAN_LIVE_STALE_AFTER_S"]


def fresh_since() -> datetime:
    """The instant a live status must be newer than to count as fresh now."""
    return utcnow() - timedelta(seconds=stale_after_s())


def speeds_kmh() -> dict[str, float]:
    return current_app.config["YIZHAN_SPEEDS_KMH"]


@bp.after_request
def _cache_headers(response):
    # Errors and anything not declared cacheable depend on "now" and on live data.
    if response.cache_control.max_age is None:
        response.cache_control.no_cache = True
    return response
