"""POST /api/v1/stations/<id>/ratings (a satisfaction rating) and /checkins (worked / closed /
not found / info wrong) from the public page.

Who is rating is a device, not a person: a random id in a signed cookie (set on the first
rating; HttpOnly, SameSite=Lax), stored only as its SHA-256. A repeat from the same device
within 12 hours replaces its earlier rating (app.stations.ratings); a per-address limit stops a
script that throws the cookie away each time.

No CSRF token: app.auth exempts anonymous /api/v1 calls. A cross-site page can only make a
browser send this POST as a "simple" request (a form: urlencoded, multipart or text/plain), which
is answered 415 because the body must be application/json; a JSON request from another origin
needs a CORS preflight, which this API never grants. Nor would a forged rating gain anything:
it is limited exactly like a real one.
"""
from __future__ import annotations

import functools


from app import auth  # the module: app.auth imports this package, so its limiter is looked up late
from app.api import bodies
from app.api.blueprint import bp, ops, store
from app.api.contract import STORE_DOWN, endpoint
from app.api.errors import ApiError
from app.api.payloads import CheckInPayload, RatingPayload
from app.device import device_hash
from app.dbtime import utcnow
from app.ops import checkins
from app.stations.ratings import Ratings, UnknownStation

RATINGS_PER_ADDRESS = "20 per 10 minutes"  # ratings and check-ins, each counted apart


def _missing(station_id: int) -> ApiError:
    return ApiError(404, "not_found", f"No station with id {station_id}.", "id")


def _per_address(handler):
    """``auth.limiter.limit(RATINGS_PER_ADDRESS)``, applied on the first call: app.auth imports the
    API package, so its limiter does not exist yet when this module is loaded."""
    limited = None

    @functools.wraps(handler)
    def call(*args, **kwargs):
        nonlocal limited
        if limited is None:
            limited = auth.limiter.limit(RATINGS_PER_ADDRESS)(handler)
        return limited(*args, **kwargs)

    return call


@endpoint(bp, "/stations/<int(max=9223372036854775807):station_id>/ratings", query=None, payload=RatingPayload,
          body=bodies.RatingAnswer, method="POST", status=201,
          also={200: "This device's rating from the last 12 hours was replaced."},
          errors={404: "No such station.", 429: "Too many ratings from this address; see Retry-After.",
                  **STORE_DOWN},
          summary="Rate a station: 1–5 stars and optional tags (one rating per device per station per 12 h).")
@_per_address
def rate_station(payload: RatingPayload, station_id: int):
    """A repeat from the same device (cookie `yizhan_device`) within 12 hours replaces its earlier
    rating and is answered 200; otherwise the rating is new (201)."""
    try:
        rated = Ratings(store()).rate(station_id, device_hash(), payload.stars, payload.tags, utcnow())
    except UnknownStation:
        raise _missing(station_id) from None
    body = {"station_id": rated.station_id, "stars": rated.stars, "tags": list(rated.tags),
            "replaced": rated.replaced, "rating": rated.rating}
    return body, (200 if rated.replaced else 201)


@endpoint(bp, "/stations/<int(max=9223372036854775807):station_id>/checkins", query=None, payload=CheckInPayload,
          body=bodies.CheckInAnswer, method="POST", status=201,
          errors={404: "No such station.", 429: "Too many check-ins from this address; see Retry-After.",
                  **STORE_DOWN},
          summary="Say in one tap whether a station worked, was closed, could not be found or is described wrongly.")
@_per_address
def check_in(payload: CheckInPayload, station_id: int):
    """"closed" or "not_found" from at least 3 devices (cookie `yizhan_device`) within 24 hours opens
    a `closed_unexpectedly` / `info_wrong` work order, or joins the open one."""
    try:
        done = checkins.CheckIns(ops()).check_in(station_id, device_hash(), payload.outcome, utcnow())
    except checkins.UnknownStation:
        raise _missing(station_id) from None
    return {"station_id": done.station_id, "outcome": done.outcome, "devices": done.devices,
            "reported": done.reported}
