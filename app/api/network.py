"""/api/v1 routes for the 15-minute service circle, service areas and coverage."""
from __future__ import annotations

from flask import jsonify, request

from app.api import params, serialize
from app.api.blueprint import bp, graphs, speed_kmh, store, timezone
from app.api.errors import ApiError
from app.geo.coordsys import to_wgs84
from app.geo.geodesic import Box
from app.network import service


def _graph(mode: str):
    entry = graphs().get(store(), mode)
    return entry[1] if entry else None


@bp.get("/service-circle")
def service_circle():
    args = request.args
    lat, lng = params.point(args, params.coordsys(args))
    system = params.out_coordsys(args, params.coordsys(args))
    mode = params.mode(args)
    speed = speed_kmh(mode)
    circle = service.service_circle(
        store(), _graph(mode), lat, lng,
        minutes=params.minutes(args), mode=mode, speed_kmh=speed,
        flt=params.station_filter(args), at=params.instant(args, "at", timezone()),
        limit=params.integer(args, "limit", 1, 200, 50),
    )
    return jsonify({
        "method": circle.method,
        "reason": circle.reason,
        "mode": circle.mode,
        "minutes": circle.minutes,
        "speed_kmh": circle.speed_kmh,
        "coordsys": system,
        "origin": serialize.point(lat, lng, system),
        "polygon": serialize.geometry(circle.polygon, system),
        "area_km2": round(circle.area_km2, 3),
        "count": len(circle.results),
        "truncated": circle.truncated,
        "results": [serialize.circle_result(r, system, circle.method, speed) for r in circle.results],
    })


@bp.get("/stations/<int(max=9223372036854775807):station_id>/service-area")
def station_service_area(station_id: int):
    args = request.args
    system = params.coordsys(args)
    mode, minutes = params.mode(args), params.minutes(args)
    if store().get(station_id) is None:
        raise ApiError(404, "not_found", f"No station with id {station_id}.", "id")
    area = store().service_area(station_id, mode, minutes)
    if area is None:
        raise ApiError(
            404, "not_computed",
            f"No {minutes}-minute {mode} service area for station {station_id} yet; "
            f"run `flask --app wsgi network service-areas --minutes {minutes} --mode {mode}`.",
            "id",
        )
    return jsonify({
        "station_id": station_id,
        "mode": mode,
        "minutes": minutes,
        "coordsys": system,
        "area_km2": round(area.area_km2, 3),
        "road_km": round(area.road_km, 3),
        "on_network": not area.geom.is_empty,
        "computed_at": area.computed_at.isoformat() if area.computed_at else None,
        "polygon": serialize.geometry(area.geom, system),
    })


@bp.get("/stations/serving")
def stations_serving():
    """Which stations serve this address: it lies in their precomputed service area."""
    args = request.args
    system = params.coordsys(args)
    lat, lng = params.point(args, system)
    mode, minutes = params.mode(args), params.minutes(args)
    found = store().stations_serving(lat, lng, mode, minutes, params.station_filter(args, with_hours=False))
    return jsonify({
        "mode": mode, "minutes": minutes, "coordsys": system, "count": len(found),
        "results": [serialize.station(st, system) for st, _ in found],
    })


@bp.get("/coverage")
def coverage():
    args = request.args
    system = params.coordsys(args)
    min_lng, min_lat, max_lng, max_lat = params.bbox(args)
    south, west = to_wgs84(min_lat, min_lng, system)
    north, east = to_wgs84(max_lat, max_lng, system)
    mode, minutes = params.mode(args), params.minutes(args)
    result = service.coverage(
        store(), _graph(mode), Box(south, west, north, east),
        mode=mode, minutes=minutes, flt=params.station_filter(args, with_hours=False),
    )
    ranked = sorted(result.areas, key=lambda pair: (-pair[1].road_km, pair[0].id))

    def brief(pair):
        st, area = pair
        return {"id": st.id, "name": st.name, "kind": st.kind,
                "road_km": round(area.road_km, 3), "area_km2": round(area.area_km2, 3)}

    share = result.served_road_km / result.road_km if result.road_km else None
    return jsonify({
        "mode": mode,
        "minutes": minutes,
        "coordsys": system,
        "stations": len(result.areas),
        "stations_without_service_area": result.stations_without_area,
        "road_km": round(result.road_km, 3),
        "served_road_km": round(result.served_road_km, 3),
        "served_road_share": round(share, 4) if share is not None else None,
        "served": serialize.geometry(result.served, system),
        "unserved": serialize.geometry(result.unserved, system),
        "serving_most": [brief(p) for p in ranked[:5]],
        "serving_least": [brief(p) for p in ranked[::-1][:5]],
    })
