"""Distances on the WGS-84 ellipsoid and provable search boxes around a point."""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from pyproj import Geod

# PROJ's C implementation of Karney's algorithm (the one geographiclib ports), on WGS-84.
_WGS84 = Geod(ellps="WGS84")
_A = _WGS84.a
_E2 = _WGS84.es
# Smallest meridional radius of curvature (at the equator): a(1 - e^2).
_MIN_MERIDIAN_RADIUS = _A * (1 - _E2)
# Widen boxes by a hair so float rounding can never lose a point on the edge.
_SAFETY = 1.0 + 1e-9
_RAD = math.radians(1)


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Geodesic distance in metres on the WGS-84 ellipsoid (Karney's algorithm)."""
    return float(_WGS84.inv(lng1, lat1, lng2, lat2)[2])


def distances_m(lat: float, lng: float, lats, lngs) -> np.ndarray:
    """Geodesic distances in metres from one point to many (numpy arrays), in one C call."""
    lats = np.asarray(lats, dtype=np.float64)
    lngs = np.asarray(lngs, dtype=np.float64)
    if lats.size == 0:
        return np.zeros(0)
    _, _, dist = _WGS84.inv(np.full_like(lngs, lng), np.full_like(lats, lat), lngs, lats)
    return np.asarray(dist, dtype=np.float64)


def destination(lat: float, lng: float, azimuths_deg, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Points ``distance`` metres from (lat, lng) along each azimuth: (lats, lngs)."""
    az = np.asarray(azimuths_deg, dtype=np.float64)
    lngs, lats, _ = _WGS84.fwd(np.full_like(az, lng), np.full_like(az, lat), az, np.full_like(az, distance))
    return np.asarray(lats), np.asarray(lngs)


class Box(NamedTuple):
    """A latitude/longitude rectangle, west <= east (never crosses 180°)."""

    south: float
    west: float
    north: float
    east: float


def _parallel_radius(lat_deg):
    """Radius of the circle of latitude: metres per radian of longitude (scalars or numpy arrays)."""
    phi = np.radians(lat_deg)
    return _A * np.cos(phi) / np.sqrt(1 - _E2 * np.sin(phi) ** 2)


def boxes_within(lat: float, lng: float, radius_m: float) -> list[Box]:
    """Rectangles that together contain every point within ``radius_m`` of (lat, lng).

    Along any path, ds >= M_min |dphi| and ds >= p(phi) |dlambda| (M: meridional
    radius, p: radius of the parallel), so a geodesic of length r changes latitude
    by at most r/M_min and longitude by at most r/p_min, where p_min is taken over
    the latitude band the path can reach. The boxes are therefore a proven
    superset of the geodesic circle; they are split at the antimeridian.
    """
    d_lat = math.degrees(radius_m / _MIN_MERIDIAN_RADIUS) * _SAFETY
    south, north = lat - d_lat, lat + d_lat
    if south <= -90 or north >= 90:
        return [Box(max(south, -90.0), -180.0, min(north, 90.0), 180.0)]
    p_min = _parallel_radius(max(abs(south), abs(north)))
    d_lng = math.degrees(radius_m / p_min) * _SAFETY
    if d_lng >= 180:
        return [Box(south, -180.0, north, 180.0)]
    west, east = lng - d_lng, lng + d_lng
    if west < -180:
        return [Box(south, west + 360, north, 180.0), Box(south, -180.0, north, east)]
    if east > 180:
        return [Box(south, west, north, 180.0), Box(south, -180.0, north, east - 360)]
    return [Box(south, west, north, east)]


def max_degree_distance(lat: float, lng: float, boxes: list[Box]) -> float:
    """Largest planar distance in degrees from (lat, lng) to any point of ``boxes``.

    PostGIS's ``<->`` on SRID 4326 geometries orders by this planar degree
    distance; a KNN scan that has passed it has seen every point in the boxes.
    """
    far = 0.0
    for b in boxes:
        dy = max(abs(b.south - lat), abs(b.north - lat))
        dx = max(abs(b.west - lng), abs(b.east - lng))
        far = max(far, math.hypot(dx, dy))
    return far


def degree_reach(lat: float, lng: float, radius_m: float) -> float:
    """Largest planar distance in degrees from (lat, lng) of any point within ``radius_m``.

    A KNN scan in planar degrees (PostGIS ``<->``) that has passed this distance has seen
    every point within ``radius_m``. Inside the latitude band a path of that length can
    reach, ds² >= (M_min dphi)² + (p_min dlambda)², so every such point lies in the ellipse
    with the half-sides of ``boxes_within``'s box as semi-axes, and the farthest point of an
    ellipse from its centre is at its semi-major axis: max(half-height, half-width). That is
    up to ~25 % less than the box's corner at mid latitudes, so the scan can stop sooner.
    Where the box reaches a pole or is split at the antimeridian, the corners are used.
    """
    boxes = boxes_within(lat, lng, radius_m)
    (b,) = boxes if len(boxes) == 1 else (None,)
    if b is None or b.south <= -90 or b.north >= 90 or b.west <= -180 or b.east >= 180:
        return max_degree_distance(lat, lng, boxes)
    return max(lat - b.south, b.north - lat, lng - b.west, b.east - lng)


def _meridian_radius(lat_deg):
    """Meridional radius of curvature: metres per radian of latitude (scalars or numpy arrays)."""
    s2 = np.sin(np.radians(lat_deg)) ** 2
    return _A * (1 - _E2) / (1 - _E2 * s2) ** 1.5


def metres_per_degree(lat):
    """(metres per degree of latitude, of longitude) on the WGS-84 ellipsoid at ``lat``.

    Works on a float or a numpy array of latitudes: the local plane used for short
    distances (segment lengths, snapping, rasters)."""
    return _RAD * _meridian_radius(lat), _RAD * _parallel_radius(lat)
