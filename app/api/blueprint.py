"""The /api/v1 blueprint and what its routes share."""
from __future__ import annotations

from flask import Blueprint, current_app, request

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def store():
    return current_app.extensions["yizhan_store"]


def graphs():
    return current_app.extensions["yizhan_graphs"]


def timezone() -> str:
    return current_app.config["YIZHAN_TIMEZONE"]


def speed_kmh(mode: str) -> float:
    return current_app.config["YIZHAN_SPEEDS_KMH"][mode]


@bp.after_request
def _cache_headers(response):
    # Answers depend on "now" and on live data; only the vocabulary and the
    # API description are safe to cache.
    if request.endpoint in ("api.meta", "api.openapi"):
        response.cache_control.public = True
        response.cache_control.max_age = 3600
    else:
        response.cache_control.no_cache = True
    return response
