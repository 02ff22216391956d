"""The one place answers become JSON: stations, GeoJSON and errors, in the caller's coordinate system.

Which station fields an answer shows, under which name and how each is written
come from the station declaration (app.stations.model); the shapes are those of
app.api.bodies. Bytes are written by orjson (UTF-8, no \\u escapes for Chinese).
"""
from __future__ import annotations

from datetime import datetime

import numpy as np
import orjson
import shapely
import shapely.geometry
from flask import Response, current_app

from app.dbtime import utcnow
from app.geo.coordsys import WGS84, from_wgs84
from app.stations.hours import HoursState
from app.stations.live import live_of
from app.stations.model import STATION_FIELDS, Hit, Station
from app.stations.ratings import rating_of
from app.stations.vocabulary import amenity_names, amenity_states


def json_response(body, status: int = 200, mimetype: str = "application/json") -> Response:
    """A JSON answer; ``body`` may be (body, status) as handlers return it."""
    if isinstance(body, tuple):
        body, status = body
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status=status, mimetype=mimetype)


def error(code: str, message: str, field: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field}}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def point(lat: float, lng: float, coordsys: str) -> dict:
    """A WGS-84 point as {"lat", "lng"} in ``coordsys``."""
    y, x = from_wgs84(lat, lng, coordsys) if coordsys != WGS84 else (lat, lng)
    return {"lat": round(y, 7), "lng": round(x, 7)}


# (attribute, name in answers, how it is written) for each public station field, by level.
_SUMMARY = [(f.name, f.metadata["json"] or f.name, f.metadata["wire"])
            for f in STATION_FIELDS if f.metadata["public"] == "summary"]
_DETAIL = [(f.name, f.metadata["json"] or f.name, f.metadata["wire"])
           for f in STATION_FIELDS if f.metadata["public"] == "detail"]
# Identifier first: it is what clients key on.
_SUMMARY.sort(key=lambda entry: entry[0] != "id")


def _fields(st: Station, wanted, coords: tuple[float, float], out: dict) -> dict:
    for attr, name, wire in wanted:
        value = getattr(st, attr)
        if wire == "coordinate":
            value = round(coords[0] if attr == "lat" else coords[1], 7)
        elif wire == "amenities":
            value = amenity_names(value)
        elif wire == "time":
            value = _iso(value)
        out[name] = value
    return out


def station(st: Station, coordsys: str, hours: HoursState | None = None, detail: bool = False) -> dict:
    coords = from_wgs84(st.lat, st.lng, coordsys) if coordsys != WGS84 else (st.lat, st.lng)
    out = _fields(st, _SUMMARY, coords, {})
    out["rating"] = rating_of(st)
    out["live"] = live_of(st, utcnow(), current_app.config["YIZHAN_LIVE_STALE_AFTER_S"])
    if hours is not None:
        out["open_state"] = hours.state
        out["next_change"] = _iso(hours.next_change)
        out["closed_reason"] = hours.reason
    if detail:
        _fields(st, _DETAIL, coords, out)
        out["amenity_states"] = amenity_states(st.amenities_yes, st.amenities_no)
    return out


def hit(h: Hit, coordsys: str) -> dict:
    out = station(h.station, coordsys, h.hours)
    out["distance_m"] = round(h.distance_m, 1)
    return out


def feature_collection(stations: list[Station], coordsys: str, truncated: bool, limit: int) -> dict:
    features = []
    for st in stations:
        props = station(st, coordsys)
        lat, lng = props.pop("lat"), props.pop("lng")
        features.append({
            "type": "Feature",
            "id": st.id,
            "geometry": {"type": "Point", "coordinates": [lng, lat]},
            "properties": props,
        })
    return {
        "type": "FeatureCollection",
        "features": features,
        "numberReturned": len(features),
        "limit": limit,
        "truncated": truncated,
        "coordsys": coordsys,
    }


def geometry(geom, coordsys: str) -> dict:
    """A shapely lng/lat WGS-84 geometry as GeoJSON in ``coordsys``, to ~0.1 m (6 decimals)."""

    def convert(coords):
        out = np.empty_like(coords)
        for i, (lng, lat) in enumerate(coords):
            y, x = from_wgs84(lat, lng, coordsys)
            out[i] = (x, y)
        return np.round(out, 6)

    return shapely.geometry.mapping(shapely.transform(geom, convert))


def circle_result(r, coordsys: str, method: str, speed_kmh: float) -> dict:
    out = station(r.station, coordsys, r.hours)
    out["distance_m"] = round(r.straight_m, 1)
    out["network_distance_m"] = round(r.travel_m, 1) if method == "network" else None
    out["travel_minutes"] = round(r.travel_m / (speed_kmh * 1000 / 60), 1)
    return out


def nearest(hits: list[Hit], origin: tuple[float, float], at: datetime, coordsys: str) -> dict:
    return {
        "coordsys": coordsys,
        "origin": point(*origin, coordsys),
        "at": at.isoformat(),
        "count": len(hits),
        "results": [hit(h, coordsys) for h in hits],
    }


def service_circle(circle, origin: tuple[float, float], coordsys: str) -> dict:
    return {
        "method": circle.method,
        "reason": circle.reason,
        "mode": circle.mode,
        "minutes": circle.minutes,
        "speed_kmh": circle.speed_kmh,
        "coordsys": coordsys,
        "origin": point(*origin, coordsys),
        "polygon": geometry(circle.polygon, coordsys),
        "area_km2": round(circle.area_km2, 3),
        "count": len(circle.results),
        "truncated": circle.truncated,
        "results": [circle_result(r, coordsys, circle.method, circle.speed_kmh) for r in circle.results],
    }


def service_area(area, coordsys: str) -> dict:
    return {
        "station_id": area.station_id,
        "mode": area.mode,
        "minutes": area.minutes,
        "coordsys": coordsys,
        "area_km2": round(area.area_km2, 3),
        "road_km": round(area.road_km, 3),
        "on_network": not area.geom.is_empty,
        "computed_at": _iso(area.computed_at),
        "polygon": geometry(area.geom, coordsys),
    }


def serving(found, mode: str, minutes: int, coordsys: str) -> dict:
    return {
        "mode": mode, "minutes": minutes, "coordsys": coordsys, "count": len(found),
        "results": [station(st, coordsys) for st, _ in found],
    }


def coverage(result, mode: str, minutes: int, coordsys: str) -> dict:
    ranked = sorted(result.areas, key=lambda pair: (-pair[1].road_km, pair[0].id))

    def brief(pair):
        st, area = pair
        return {"id": st.id, "name": st.name, "kind": st.kind,
                "road_km": round(area.road_km, 3), "area_km2": round(area.area_km2, 3)}

    share = result.served_road_km / result.road_km if result.road_km else None
    return {
        "mode": mode,
        "minutes": minutes,
        "coordsys": coordsys,
        "stations": len(result.areas),
        "stations_without_service_area": result.stations_without_area,
        "road_km": round(result.road_km, 3),
        "served_road_km": round(result.served_road_km, 3),
        "served_road_share": round(share, 4) if share is not None else None,
        "served": geometry(result.served, coordsys),
        "unserved": geometry(result.unserved, coordsys),
        "serving_most": [brief(p) for p in ranked[:5]],
        "serving_least": [brief(p) for p in ranked[::-1][:5]],
    }


def labelled(vocabulary: dict, **extra) -> list[dict]:
    """A vocabulary (id -> labels) as a list of terms, with per-term extras given as dicts by id."""
    return [{"id": key, "labels": labels, **{k: v[key] for k, v in extra.items()}} for key, labels in vocabulary.items()]


def search_results(query: str, hits, coordsys: str) -> dict:
    """/search's answer: each SearchHit with its point in ``coordsys``."""
    return {"query": query, "results": [{
        "type": h.type, "id": h.id, "name": h.name, "kind": h.kind, "matched": h.matched, "match": h.match,
        **point(h.lat, h.lng, coordsys),
        "distance_m": None if h.distance_m is None else round(h.distance_m, 1),
    } for h in hits]}
