"""WGS-84, GCJ-02 and BD-09: the three coordinate systems a Chinese map app meets.

Phones (GPS) and OpenStreetMap speak WGS-84; Amap, Tencent Maps and WeChat speak
GCJ-02 (a deliberately obfuscated WGS-84, shifted 300-700 m); Baidu speaks BD-09
(a further shift of GCJ-02). Yizhan stores WGS-84 and converts at every edge.

Forward formulas are the standard public GCJ-02/BD-09 algorithms (Krasovsky 1940
ellipsoid constants). There is no closed-form inverse, so the inverses here
iterate the forward function to a fixed point (well under 1 cm), instead of the
common one-step approximation which is off by up to ~5 m.

Shift policy (where the forward shift is applied): mainland China, Hong Kong and
Macau are shifted; Taiwan and every other country are not. That is what Amap,
Tencent and Baidu do with their own data. The region is the widely used set of
inclusion/exclusion rectangles published by Aimeast (cnblogs.com, 2012-08-09),
which is coarse along land borders (a few km); points outside it pass through
unchanged. Every point inside round-trips exactly (see _invert for the edge).
"""
from __future__ import annotations

import math

WGS84 = "wgs84"
GCJ02 = "gcj02"
BD09 = "bd09"
COORDSYS = (WGS84, GCJ02, BD09)

_KRASOVSKY_A = 6378245.0
_KRASOVSKY_EE = 0.00669342162296594323
_BD_X_PI = math.pi * 3000.0 / 180.0

# (south, west, north, east) in degrees.
_SHIFTED_REGIONS = (
    (42.889900, 79.446200, 49.220400, 96.330000),
    (39.374200, 109.687200, 54.141500, 135.000200),
    (29.529700, 73.124600, 42.889900, 124.143255),
    (26.718600, 82.968400, 29.529700, 97.035200),
    (20.414096, 97.025300, 29.529700, 124.367395),
    (17.871542, 107.975793, 20.414096, 111.744104),
)
_UNSHIFTED_HOLES = (
    (21.785006, 119.921265, 25.398623, 122.497559),  # Taiwan
    (20.098800, 101.865200, 22.284000, 106.665000),  # northern Laos / Vietnam
    (20.487800, 106.452500, 21.542200, 108.051000),  # Gulf of Tonkin coast, Vietnam
    (50.325700, 109.032300, 55.817500, 119.127000),  # Russia, east of Lake Baikal
    (49.557400, 127.456800, 55.817500, 137.022700),  # Russia, Amur
    (42.569200, 131.266200, 44.892200, 137.022700),  # Russia, Primorye
)

_MAX_ITERATIONS = 30
_CONVERGED_DEG = 1e-12  # ~0.1 micrometre


def _in_rect(rect, lat, lng):
    south, west, north, east = rect
    return south <= lat <= north and west <= lng <= east


def is_shifted(lat: float, lng: float) -> bool:
    """True where Chinese map providers apply the GCJ-02 shift."""
    return any(_in_rect(r, lat, lng) for r in _SHIFTED_REGIONS) and not any(
        _in_rect(r, lat, lng) for r in _UNSHIFTED_HOLES
    )


# The shifted rectangles' overall bounds, widened by more than the largest shift (~0.02°).
_REGION_BOUNDS = (
    min(r[0] for r in _SHIFTED_REGIONS) - 0.1, min(r[1] for r in _SHIFTED_REGIONS) - 0.1,
    max(r[2] for r in _SHIFTED_REGIONS) + 0.1, max(r[3] for r in _SHIFTED_REGIONS) + 0.1,
)


def _near_region(lat, lng) -> bool:
    south, west, north, east = _REGION_BOUNDS
    return south <= lat <= north and west <= lng <= east


def _gcj_offset(lat, lng):
    """GCJ-02 minus WGS-84 at a WGS-84 point, in degrees (lat, lng)."""
    x, y = lng - 105.0, lat - 35.0
    d_lat = (
        -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
        + (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
        + (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
        + (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    )
    d_lng = (
        300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
        + (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
        + (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
        + (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    )
    rad_lat = math.radians(lat)
    magic = 1.0 - _KRASOVSKY_EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_KRASOVSKY_A * (1.0 - _KRASOVSKY_EE)) / (magic * sqrt_magic) * math.pi)
    d_lng = (d_lng * 180.0) / (_KRASOVSKY_A / sqrt_magic * math.cos(rad_lat) * math.pi)
    return d_lat, d_lng


def _gcj_shift(lat, lng):
    d_lat, d_lng = _gcj_offset(lat, lng)
    return lat + d_lat, lng + d_lng


def _bd_shift(lat, lng):
    z = math.hypot(lng, lat) + 0.00002 * math.sin(lat * _BD_X_PI)
    theta = math.atan2(lat, lng) + 0.000003 * math.cos(lng * _BD_X_PI)
    return z * math.sin(theta) + 0.006, z * math.cos(theta) + 0.0065


def wgs84_to_gcj02(lat: float, lng: float) -> tuple[float, float]:
    return _gcj_shift(lat, lng) if is_shifted(lat, lng) else (lat, lng)


def gcj02_to_bd09(lat: float, lng: float) -> tuple[float, float]:
    return _bd_shift(lat, lng) if is_shifted(lat, lng) else (lat, lng)


def _invert(shift, lat: float, lng: float) -> tuple[float, float]:
    """The point p with shift(p) == (lat, lng) if p lies in the shifted region, else (lat, lng).

    The shifts are smooth and tiny compared with their argument, so the fixed-point
    iteration p <- p + (target - shift(p)) converges in a handful of steps. Deciding
    on the solution (not the input) makes every shifted point round-trip exactly,
    even next to the region's edge; only unshifted points within ~1 km outside the
    edge are ambiguous (two points map to them), and there the shifted one wins.
    """
    if not _near_region(lat, lng):
        return lat, lng  # no shifted point can map this far out (and far north the formula diverges)
    p_lat, p_lng = lat, lng
    for _ in range(_MAX_ITERATIONS):
        f_lat, f_lng = shift(p_lat, p_lng)
        e_lat, e_lng = lat - f_lat, lng - f_lng
        p_lat, p_lng = p_lat + e_lat, p_lng + e_lng
        if abs(e_lat) < _CONVERGED_DEG and abs(e_lng) < _CONVERGED_DEG:
            break
    return (p_lat, p_lng) if is_shifted(p_lat, p_lng) else (lat, lng)


def gcj02_to_wgs84(lat: float, lng: float) -> tuple[float, float]:
    return _invert(_gcj_shift, lat, lng)


def bd09_to_gcj02(lat: float, lng: float) -> tuple[float, float]:
    return _invert(_bd_shift, lat, lng)


def _wgs_to_bd_shift(lat, lng):
    return _bd_shift(*_gcj_shift(lat, lng))


def to_wgs84(lat: float, lng: float, coordsys: str) -> tuple[float, float]:
    """Convert a point given in ``coordsys`` to WGS-84."""
    if coordsys == WGS84:
        return lat, lng
    if coordsys == GCJ02:
        return gcj02_to_wgs84(lat, lng)
    if coordsys == BD09:
        # One region decision, on the WGS-84 point, for both shifts.
        return _invert(_wgs_to_bd_shift, lat, lng)
    raise ValueError(f"unknown coordinate system {coordsys!r}")


def from_wgs84(lat: float, lng: float, coordsys: str) -> tuple[float, float]:
    """Convert a WGS-84 point to ``coordsys``."""
    if coordsys == WGS84:
        return lat, lng
    if coordsys == GCJ02:
        return wgs84_to_gcj02(lat, lng)
    if coordsys == BD09:
        return _wgs_to_bd_shift(lat, lng) if is_shifted(lat, lng) else (lat, lng)
    raise ValueError(f"unknown coordinate system {coordsys!r}")
