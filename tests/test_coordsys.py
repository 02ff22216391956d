"""WGS-84 / GCJ-02 / BD-09 conversions."""
import math
import random

import pytest

from app.geo.coordsys import (
    BD09, GCJ02, WGS84, bd09_to_gcj02, from_wgs84, gcj02_to_bd09, gcj02_to_wgs84, is_shifted,
    to_wgs84, wgs84_to_gcj02,
)
from app.geo.geodesic import distance_m

# Published vectors of the standard algorithm (wandergis/coordtransform README,
# reused in hutool's CoordinateUtilTest), input (lng 116.404, lat 39.915).
def test_wgs84_to_gcj02_matches_published_vector():
    lat, lng = wgs84_to_gcj02(39.915, 116.404)
    assert lat == pytest.approx(39.91640428150164, abs=1e-12)
    assert lng == pytest.approx(116.41024449916938, abs=1e-12)


def test_gcj02_to_bd09_matches_published_vector():
    lat, lng = gcj02_to_bd09(39.915, 116.404)
    assert lat == pytest.approx(39.92133699351022, abs=1e-12)
    assert lng == pytest.approx(116.41036949371029, abs=1e-12)


def test_bd09_inverse_is_exact_where_the_published_one_step_is_close():
    # The published one-step inverse gives (39.90865673957631, 116.39762729119315);
    # ours iterates to an exact solution, a few centimetres from it.
    lat, lng = bd09_to_gcj02(39.915, 116.404)
    assert distance_m(lat, lng, 39.90865673957631, 116.39762729119315) < 0.1
    back = gcj02_to_bd09(lat, lng)
    assert distance_m(*back, 39.915, 116.404) < 0.001


def _china_points(n, seed=7):
    rng = random.Random(seed)
    points = []
    while len(points) < n:
        lat, lng = rng.uniform(18, 53), rng.uniform(74, 134)
        if is_shifted(lat, lng):
            points.append((lat, lng))
    return points


@pytest.mark.parametrize("system", [GCJ02, BD09])
def test_round_trip_is_under_a_centimetre(system):
    worst = 0.0
    for lat, lng in _china_points(2000):
        shifted = from_wgs84(lat, lng, system)
        back = to_wgs84(*shifted, system)
        worst = max(worst, distance_m(lat, lng, *back))
    assert worst < 0.01


def test_iterative_inverse_beats_the_one_step_approximation():
    """The common shortcut (subtract the offset measured at the shifted point) is metres off."""
    one_step_worst = iterative_worst = 0.0
    for lat, lng in _china_points(500, seed=3):
        g_lat, g_lng = wgs84_to_gcj02(lat, lng)
        s_lat, s_lng = wgs84_to_gcj02(g_lat, g_lng)
        one_step = (2 * g_lat - s_lat, 2 * g_lng - s_lng)
        one_step_worst = max(one_step_worst, distance_m(lat, lng, *one_step))
        iterative_worst = max(iterative_worst, distance_m(lat, lng, *gcj02_to_wgs84(g_lat, g_lng)))
    assert one_step_worst > 0.5
    assert iterative_worst < 0.01


def test_shift_is_hundreds_of_metres_in_china():
    # Zhuzhou: the offset users would notice as "the toilet is across the river".
    d = distance_m(27.83, 113.15, *wgs84_to_gcj02(27.83, 113.15))
    assert 300 < d < 800


@pytest.mark.parametrize("name,lat,lng,shifted", [
    ("Beijing", 39.9, 116.4, True),
    ("Zhuzhou", 27.83, 113.15, True),
    ("Urumqi", 43.8, 87.6, True),
    ("Sanya, Hainan", 18.25, 109.5, True),
    ("Hong Kong", 22.30, 114.17, True),
    ("Macau", 22.19, 113.54, True),
    ("Taipei", 25.03, 121.56, False),
    ("Seoul", 37.56, 126.97, False),
    ("Pyongyang", 39.03, 125.75, False),
    ("Hanoi", 21.03, 105.85, False),
    ("Ulaanbaatar", 47.9, 106.9, False),
    ("Vladivostok", 43.1, 131.9, False),
    ("Tokyo", 35.68, 139.7, False),
    ("Helsinki", 60.17, 24.94, False),
])
def test_shift_policy(name, lat, lng, shifted):
    assert is_shifted(lat, lng) is shifted, name
    for system in (GCJ02, BD09):
        out = from_wgs84(lat, lng, system)
        assert (out != (lat, lng)) is shifted
        assert to_wgs84(*out, system) == pytest.approx((lat, lng), abs=1e-9)


def test_wgs84_is_identity():
    assert to_wgs84(27.83, 113.15, WGS84) == (27.83, 113.15)
    assert from_wgs84(27.83, 113.15, WGS84) == (27.83, 113.15)


def test_unknown_system_is_rejected():
    with pytest.raises(ValueError):
        to_wgs84(1, 2, "epsg3857")


def test_total_shift_stays_under_the_bbox_padding():
    """api.routes pads map boxes by 0.025°; no shifted point may move further than that."""
    from app.api.stations import _SHIFT_PAD_DEG

    worst = 0.0
    for lat in [x * 0.25 for x in range(4 * 17, 4 * 56)]:
        for lng in [x * 0.25 for x in range(4 * 73, 4 * 136)]:
            b_lat, b_lng = from_wgs84(lat, lng, BD09)
            worst = max(worst, abs(b_lat - lat), abs(b_lng - lng))
    assert 0.005 < worst < _SHIFT_PAD_DEG
    assert math.isfinite(worst)


@pytest.mark.parametrize("lat,lng", [(90, 0), (-90, 0), (89.95, 113), (-89.99, -170), (0, 180), (55.9, 137.2)])
@pytest.mark.parametrize("system", [GCJ02, BD09])
def test_points_far_from_china_pass_through_in_both_directions(lat, lng, system):
    assert to_wgs84(lat, lng, system) == (lat, lng)
    assert from_wgs84(lat, lng, system) == (lat, lng)
