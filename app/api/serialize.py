"""The one place stations become JSON and GeoJSON, in the caller's coordinate system."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import shapely
import shapely.geometry

from app.geo.coordsys import from_wgs84
from app.stations.hours import HoursState
from app.stations.model import Hit, Station
from app.stations.vocabulary import amenity_names, amenity_states


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def point(lat: float, lng: float, coordsys: str) -> dict:
    """A WGS-84 point as {"lat", "lng"} in ``coordsys``."""
    y, x = from_wgs84(lat, lng, coordsys)
    return {"lat": round(y, 7), "lng": round(x, 7)}


def station(st: Station, coordsys: str, hours: HoursState | None = None, detail: bool = False) -> dict:
    lat, lng = from_wgs84(st.lat, st.lng, coordsys)
    out = {
        "id": st.id,
        "source": st.source,
        "source_id": st.source_id,
        "name": st.name,
        "kind": st.kind,
        "lat": round(lat, 7),
        "lng": round(lng, 7),
        "amenities": amenity_names(st.amenities_yes),
        "amenities_no": amenity_names(st.amenities_no),
        "opening_hours": st.opening_hours,
        "address": st.address,
        "operator": st.operator,
        "access": st.access,
        "fee": st.fee,
        "batteries_available": st.batteries_available,
    }
    if hours is not None:
        out["open_state"] = hours.state
        out["next_change"] = _iso(hours.next_change)
    if detail:
        out.update(
            amenity_states=amenity_states(st.amenities_yes, st.amenities_no),
            status=st.status,
            timezone=st.timezone,
            created_at=_iso(st.created_at),
            updated_at=_iso(st.updated_at),
        )
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
