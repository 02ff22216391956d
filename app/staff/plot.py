"""A small map without tiles: positions as dots on a metre grid, drawn as inline SVG by the pages.

The staff pages load nothing from another host, and the finder's tiles come from one; a work
order's neighbourhood or an organisation's open work orders read well enough as dots at their
true distances from each other, with a grid saying how far apart they are. No Flask here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from app.geo.geodesic import distance_m

WIDTH, HEIGHT, PAD = 320, 200, 16  # px: fits a 360 px wide phone with the page's margins
MIN_SPAN_M = 200.0  # one dot alone still shows a street's worth of grid around it
_DEG = 0.01  # the short arc used to measure metres per degree at the centre


@dataclass(frozen=True)
class Point:
    lat: float
    lng: float
    label: str
    href: str | None = None
    kind: str = "report"  # "station" | "report" | "overdue": how the dot is drawn


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    label: str
    href: str | None
    kind: str


@dataclass(frozen=True)
class Plot:
    width: int
    height: int
    dots: list[Dot]
    grid_x: list[float]  # vertical grid lines (px)
    grid_y: list[float]  # horizontal grid lines (px)
    step_m: int  # metres between grid lines


def nice_step(metres: float) -> int:
    """The smallest 1, 2 or 5 × 10ⁿ metres not below ``metres`` (at least 1)."""
    if metres <= 1:
        return 1
    power = 10 ** math.floor(math.log10(metres))
    for factor in (1, 2, 5, 10):
        if factor * power >= metres:
            return int(factor * power)
    return int(10 * power)  # unreachable: factor 10 always fits


def plot(points: list[Point], width: int = WIDTH, height: int = HEIGHT, pad: int = PAD,
         min_span_m: float = MIN_SPAN_M) -> Plot | None:
    """Dots for ``points`` around their middle, north up, the same scale both ways; None without points."""
    if not points:
        return None
    lat0 = (min(p.lat for p in points) + max(p.lat for p in points)) / 2
    lng0 = (min(p.lng for p in points) + max(p.lng for p in points)) / 2
    # Metres per degree here (east-west shrinks with latitude), by the project's own geodesic.
    per_lng = distance_m(lat0, lng0 - _DEG / 2, lat0, lng0 + _DEG / 2) / _DEG
    per_lat = distance_m(lat0 - _DEG / 2, lng0, lat0 + _DEG / 2, lng0) / _DEG
    xs = [(p.lng - lng0) * per_lng for p in points]
    ys = [(p.lat - lat0) * per_lat for p in points]
    span_x = max(max(xs) - min(xs), min_span_m)
    span_y = max(max(ys) - min(ys), min_span_m)
    scale = min((width - 2 * pad) / span_x, (height - 2 * pad) / span_y)  # px per metre
    cx, cy = width / 2, height / 2
    dots = [Dot(round(cx + x * scale, 1), round(cy - y * scale, 1), p.label, p.href, p.kind)
            for p, x, y in zip(points, xs, ys)]
    step = nice_step(max(width, height) / scale / 6)  # about six cells across
    px = step * scale
    grid_x = [round(cx + k * px, 1) for k in range(-int(cx // px), int((width - cx) // px) + 1)]
    grid_y = [round(cy + k * px, 1) for k in range(-int(cy // px), int((height - cy) // px) + 1)]
    return Plot(width, height, dots, grid_x, grid_y, step)
