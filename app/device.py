"""The anonymous device: a random id in a signed cookie, known to the server only as its SHA-256.

Ratings (one per device per station per 12 hours) and the tracking page's questionnaire (one
answer per device per work order) count devices with it. HttpOnly and SameSite=Lax; signed with
the site's secret, so a made-up value is a new device, not someone else's.
"""
from __future__ import annotations

import hashlib
import secrets

from flask import after_this_request, current_app, request
from itsdangerous import BadSignature, URLSafeSerializer

DEVICE_COOKIE = "yizhan_device"
_SALT = "yizhan-device"
# Far longer than any window it enforces: a short life would let a device start afresh by waiting.
_COOKIE_SECONDS = 365 * 24 * 3600


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def _hash(device: str) -> str:
    return hashlib.sha256(device.encode()).hexdigest()


def known_device() -> str | None:
    """The caller's device hash, or None without a cookie we signed."""
    try:
        device = _signer().loads(request.cookies.get(DEVICE_COOKIE, ""))
    except BadSignature:
        return None
    return _hash(device) if isinstance(device, str) and len(device) == 32 else None


def device_hash() -> str:
    """The caller's device hash; a new device, its cookie set with this answer, when it has none."""
    known = known_device()
    if known is not None:
        return known
    device = secrets.token_hex(16)
    cookie = _signer().dumps(device)

    @after_this_request
    def _set(response):
        response.set_cookie(DEVICE_COOKIE, cookie, max_age=_COOKIE_SECONDS, httponly=True, samesite="Lax",
                            secure=request.is_secure)
        return response

    return _hash(device)
