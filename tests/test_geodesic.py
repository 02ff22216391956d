"""Ellipsoidal distance and the search boxes the nearest-neighbour proof relies on."""
import math
import random

import pytest
from geographiclib.geodesic import Geodesic

from app.geo.geodesic import boxes_within, degree_reach, destination, distance_m, distances_m, max_degree_distance


def test_distance_matches_vincentys_flinders_peak_vector():
    # Vincenty (1975) / Geoscience Australia example: Flinders Peak -> Buninyong, 54,972.271 m.
    d = distance_m(-37.95103341666667, 144.42486788888888, -37.65282113888889, 143.92649552777777)
    assert d == pytest.approx(54972.271, abs=0.001)


def test_distance_of_a_thousandth_of_a_degree_north_in_zhuzhou():
    # By hand: meridional radius M = a(1-e²)/(1-e² sin²φ)^1.5 = 6,349,306 m at 27.83°,
    # so 0.001° of latitude is M·π/180·0.001 = 110.82 m.
    assert distance_m(27.83, 113.15, 27.831, 113.15) == pytest.approx(110.82, abs=0.01)


def _inside(boxes, lat, lng):
    return any(b.south <= lat <= b.north and b.west <= lng <= b.east for b in boxes)


@pytest.mark.parametrize("lat,lng", [
    (27.83, 113.15), (60.17, 24.94), (0.0, 0.0), (-33.9, 151.2),
    (0.0, 179.99), (-16.5, -179.95), (89.5, 10.0), (-89.9, -45.0), (70.0, 179.5),
])
@pytest.mark.parametrize("radius", [50.0, 1200.0, 50_000.0, 900_000.0])
def test_boxes_contain_the_whole_geodesic_circle(lat, lng, radius):
    for i in range(360):
        # Points on (and just inside) the circle in every direction.
        for s in (radius, radius * 0.999):
            p = Geodesic.WGS84.Direct(lat, lng, i, s)
            assert _inside(boxes_within(lat, lng, radius), p["lat2"], p["lon2"]), (i, s, p)


def test_boxes_are_tight_enough_to_be_useful():
    (box,) = boxes_within(27.83, 113.15, 1000)
    # A 1 km circle is ~0.009° tall; the box must not be much taller.
    assert 0.0180 < box.north - box.south < 0.0182


def test_max_degree_distance_bounds_every_point_in_the_boxes():
    rng = random.Random(1)
    boxes = boxes_within(27.83, 113.15, 5000)
    far = max_degree_distance(27.83, 113.15, boxes)
    for _ in range(1000):
        b = rng.choice(boxes)
        lat, lng = rng.uniform(b.south, b.north), rng.uniform(b.west, b.east)
        assert ((lat - 27.83) ** 2 + (lng - 113.15) ** 2) ** 0.5 <= far


def test_vectorised_distances_agree_with_geographiclib_everywhere():
    # geographiclib (pure Python) is the independent oracle for PROJ's C implementation.
    rng = random.Random(5)
    for lat, lng in [(27.83, 113.15), (0.0, 0.0), (60.17, 24.94), (-89.0, 0.0), (10.0, 179.99)]:
        lats = [rng.uniform(-90, 90) for _ in range(200)] + [lat + rng.uniform(-0.01, 0.01) for _ in range(200)]
        lngs = [rng.uniform(-180, 180) for _ in range(200)] + [lng + rng.uniform(-0.01, 0.01) for _ in range(200)]
        lngs = [((x + 180) % 360) - 180 for x in lngs]
        got = distances_m(lat, lng, lats, lngs)
        for d, la, ln in zip(got, lats, lngs):
            assert d == pytest.approx(Geodesic.WGS84.Inverse(lat, lng, la, ln)["s12"], abs=1e-4)
    assert len(distances_m(1.0, 2.0, [], [])) == 0


def test_destination_lies_at_the_distance_asked():
    lats, lngs = destination(27.83, 113.15, [0, 90, 180, 270, 33.3], 1200.0)
    for la, ln in zip(lats, lngs):
        assert distance_m(27.83, 113.15, la, ln) == pytest.approx(1200.0, abs=1e-6)
    assert lats[0] > 27.83 and lngs[1] > 113.15


@pytest.mark.parametrize("lat,lng", [
    (27.83, 113.15), (60.17, 24.94), (0.0, 0.0), (-33.9, 151.2), (70.0, 179.5), (89.5, 10.0), (-16.5, -179.95),
])
@pytest.mark.parametrize("radius", [50.0, 1200.0, 50_000.0, 900_000.0])
def test_degree_reach_bounds_every_point_within_the_radius(lat, lng, radius):
    reach = degree_reach(lat, lng, radius)
    lats, lngs = destination(lat, lng, [i * 0.5 for i in range(720)], radius)
    for la, ln in zip(lats, lngs):
        # Planar degrees as PostGIS measures them (no wrapping at the antimeridian).
        assert math.hypot(la - lat, ln - lng) <= reach or abs(ln - lng) > 180 - 1e-9
    boxes = boxes_within(lat, lng, radius)
    assert reach <= max_degree_distance(lat, lng, boxes)
    if len(boxes) == 1 and abs(lat) < 80 and radius <= 1200:
        # At walking scale the ellipse is tight: within 0.1 % of the circle's true farthest point
        # (the box corner would be ~50 % out at 27.83°N).
        farthest = max(math.hypot(la - lat, ln - lng) for la, ln in zip(lats, lngs))
        assert reach <= farthest * 1.001
