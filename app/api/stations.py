"""/api/v1 station routes: parse, validate, call one store function, serialise."""
from __future__ import annotations

from flask import jsonify, request

from app.api import params, serialize
from app.api.blueprint import bp, store, timezone
from app.api.errors import ApiError
from app.api.openapi import openapi_document
from app.geo.coordsys import WGS84, COORDSYS, from_wgs84
from app.geo.geodesic import Box
from app.stations import hours
from app.stations.model import NearestQuery, StationFilter
from app.stations.vocabulary import ACCESS, AMENITIES, KIND_CORE_AMENITY, KINDS, OPEN_STATES

MAX_NEAREST = 100
MAX_BOX = 5000
DEFAULT_BOX = 500
# Upper bound of the GCJ-02 + BD-09 shift in degrees (measured maximum ~0.0135°);
# a box padded by it surely holds every station whose shifted position is inside.
_SHIFT_PAD_DEG = 0.025


@bp.get("/stations/nearest")
def nearest():
    args = request.args
    system = params.coordsys(args)
    lat, lng = params.point(args, system)
    out = params.out_coordsys(args, system)
    query = NearestQuery(
        lat=lat,
        lng=lng,
        at=params.instant(args, "at", timezone()),
        limit=params.integer(args, "limit", 1, MAX_NEAREST, 10),
        filter=StationFilter(
            kinds=params.kinds(args),
            amenities=params.amenities(args),
            open_only=params.flag(args, "open_now"),
            include_unknown=params.flag(args, "include_unknown"),
        ),
        max_distance_m=params.number(args, "max_distance", 0.0, 20_100_000.0, required=False),
    )
    hits = store().nearest(query)
    return jsonify({
        "coordsys": out,
        "origin": serialize.point(lat, lng, out),
        "at": query.at.isoformat(),
        "count": len(hits),
        "results": [serialize.hit(h, out) for h in hits],
    })


@bp.get("/stations")
def in_box():
    args = request.args
    system = params.coordsys(args)
    min_lng, min_lat, max_lng, max_lat = params.bbox(args)
    limit = params.integer(args, "limit", 1, MAX_BOX, DEFAULT_BOX)
    flt = StationFilter(kinds=params.kinds(args), amenities=params.amenities(args))
    if system == WGS84:
        box, keep = Box(min_lat, min_lng, max_lat, max_lng), None
    else:
        pad = _SHIFT_PAD_DEG
        box = Box(max(min_lat - pad, -90), max(min_lng - pad, -180), min(max_lat + pad, 90), min(max_lng + pad, 180))

        def keep(st):
            y, x = from_wgs84(st.lat, st.lng, system)
            return min_lat <= y <= max_lat and min_lng <= x <= max_lng

    stations, truncated = store().within(box, flt, limit, keep)
    return jsonify(serialize.feature_collection(stations, system, truncated, limit))


@bp.get("/stations/<int(max=9223372036854775807):station_id>")
def station_detail(station_id: int):
    system = params.out_coordsys(request.args, params.coordsys(request.args))
    st = store().get(station_id)
    if st is None:
        raise ApiError(404, "not_found", f"No station with id {station_id}.", "id")
    state = hours.evaluate(st.opening_hours, params.instant(request.args, "at", timezone()), st.timezone)
    return jsonify(serialize.station(st, system, state, detail=True))


@bp.get("/meta")
def meta():
    return jsonify({
        "kinds": [
            {"id": k, "labels": labels, "core_amenity": KIND_CORE_AMENITY.get(k)} for k, labels in KINDS.items()
        ],
        "amenities": [{"id": a, "labels": labels} for a, labels in AMENITIES.items()],
        "access": [{"id": a, "labels": labels} for a, labels in ACCESS.items()],
        "open_states": [{"id": s, "labels": labels} for s, labels in OPEN_STATES.items()],
        "coordsys": list(COORDSYS),
        "timezone": timezone(),
        "limits": {"nearest": MAX_NEAREST, "bbox": MAX_BOX},
    })


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())
