"""/api/v1 station routes: parse (declared args), one store call, serialise."""
from __future__ import annotations

from app.api import bodies, serialize
from app.api.args import MAX_BOX, MAX_CIRCLE, MAX_NEAREST, BoxArgs, DetailArgs, NearestArgs
from app.api.blueprint import bp, fresh_since, ops, speeds_kmh, store, timezone
from app.api.contract import STORE_DOWN, endpoint, openapi_document
from app.api.errors import ApiError
from app.geo.coordsys import COORDSYS, WGS84, from_wgs84
from app.geo.geodesic import Box
from app.network.modes import MAX_MINUTES, MIN_MINUTES, MODES, SNAP_MAX_M
from app.stations import hours
from app.stations.model import MAX_SEARCH_M, NearestQuery
from app.ops.checkins import OUTCOMES as CHECKIN_OUTCOMES
from app.stations.ratings import TAGS as RATING_TAGS
from app.stations.vocabulary import ACCESS, AMENITIES, KIND_CORE_AMENITY, KINDS, OPEN_STATES

# Upper bound of the GCJ-02 + BD-09 shift in degrees (measured maximum ~0.0135°);
# a box padded by it surely holds every station whose shifted position is inside.
_SHIFT_PAD_DEG = 0.025
_NOT_FOUND = {404: "No such station."}


@endpoint(bp, "/stations/nearest", query=NearestArgs, body=bodies.NearestAnswer, errors=STORE_DOWN,
          summary="Nearest active stations, nearest first (ties by id).")
def nearest(args: NearestArgs):
    """Distances are WGS-84 ellipsoid geodesics; the search looks at most 50 km away."""
    lat, lng = args.point
    query = NearestQuery(lat=lat, lng=lng, at=args.instant(timezone()), limit=args.limit,
                         filter=args.station_filter(fresh_since()), max_distance_m=args.max_distance)
    return serialize.nearest(store().nearest(query), (lat, lng), query.at, args.answer_in)


@endpoint(bp, "/stations", query=BoxArgs, body=bodies.StationCollection, errors=STORE_DOWN,
          media_type="application/geo+json", summary="Active stations in a map area, as GeoJSON.")
def in_box(args: BoxArgs):
    min_lng, min_lat, max_lng, max_lat = args.bbox
    system = args.coordsys
    if system == WGS84:
        box, keep = Box(min_lat, min_lng, max_lat, max_lng), None
    else:
        pad = _SHIFT_PAD_DEG
        box = Box(max(min_lat - pad, -90), max(min_lng - pad, -180), min(max_lat + pad, 90), min(max_lng + pad, 180))

        def keep(st):
            y, x = from_wgs84(st.lat, st.lng, system)
            return min_lat <= y <= max_lat and min_lng <= x <= max_lng

    stations, truncated = store().within(box, args.station_filter(fresh_since()), args.limit, keep)
    return serialize.feature_collection(stations, args.answer_in, truncated, args.limit)


@endpoint(bp, "/stations/<int(max=9223372036854775807):station_id>", query=DetailArgs,
          body=bodies.StationDetail, errors={**_NOT_FOUND, **STORE_DOWN},
          summary="Everything known about one station.")
def station_detail(args: DetailArgs, station_id: int):
    st = store().get(station_id)
    if st is None:
        raise ApiError(404, "not_found", f"No station with id {station_id}.", "id")
    state = hours.evaluate_station(st.opening_hours, args.instant(timezone()), st.timezone,
                                   st.closure_reason, st.closure_until)
    return serialize.station(st, args.answer_in, state, detail=True)


@endpoint(bp, "/meta", query=None, body=bodies.Meta, cache_seconds=3600,
          summary="Kinds, amenities, access values, open states and travel modes with zh-CN and en labels.")
def meta():
    """Clients build their filters and travel-time estimates from this."""
    speeds = speeds_kmh()
    return {
        "kinds": serialize.labelled(KINDS, core_amenity={k: KIND_CORE_AMENITY.get(k) for k in KINDS}),
        "amenities": serialize.labelled(AMENITIES),
        "access": serialize.labelled(ACCESS),
        "open_states": serialize.labelled(OPEN_STATES),
        "rating_tags": serialize.labelled(RATING_TAGS),
        "checkin_outcomes": serialize.labelled(CHECKIN_OUTCOMES),
        "brands": [{"code": code, "name": name} for code, name in ops().accounts.brands()],
        "modes": serialize.labelled(
            {name: mode.labels for name, mode in MODES.items()},
            speed_kmh=speeds, metres_per_minute={m: round(v * 1000 / 60, 3) for m, v in speeds.items()},
        ),
        "coordsys": list(COORDSYS),
        "timezone": timezone(),
        "limits": {
            "nearest": MAX_NEAREST, "bbox": MAX_BOX, "service_circle": MAX_CIRCLE,
            "max_distance_m": MAX_SEARCH_M, "minutes": {"min": MIN_MINUTES, "max": MAX_MINUTES},
            "snap_max_m": SNAP_MAX_M,
        },
    }


_INFO = {
    "title": "Yizhan (驿站) station finder API",
    "version": "1.1.0",
    "description": (
        "Find public toilets, outdoor-worker rest stations, drinking water, battery-swap "
        "cabinets and e-bike charging. Coordinates are given in `coordsys` (wgs84 default; gcj02 "
        "for Amap/Tencent/WeChat; bd09 for Baidu) and answered in `out_coordsys` (default: the "
        "same). Distances are WGS-84 ellipsoid geodesics in metres."
    ),
}


@endpoint(bp, "/openapi.json", query=None, body=bodies.OpenApiDocument, cache_seconds=3600,
          summary="This document (OpenAPI 3.1), generated from the declarations that validate the API.")
def openapi():
    return openapi_document(bp.url_prefix, _INFO, bodies.Error)
