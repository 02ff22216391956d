"""What can be reached in N minutes: reachable roads, their area, and travel times to points."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from app.geo.geodesic import destination
from app.network.graph import Anchor, Graph
from app.network.modes import SNAP_MAX_M
from app.network.polygon import area_km2, buffer_pieces


@dataclass
class Reach:
    """The outcome of one bounded search from (or, reversed, towards) a snapped point."""

    graph: Graph
    start: Anchor
    costs: np.ndarray  # metres to every node (inf beyond the limit)
    limit_m: float
    reverse: bool

    def cost_to(self, target: Anchor) -> float:
        return self.graph.cost_to(self.costs, self.start, target, self.reverse)

    def costs_to(self, targets: list[Anchor | None]) -> np.ndarray:
        return self.graph.costs_to(self.costs, self.start, targets, self.reverse)

    def pieces(self):
        """Reachable and unreachable road as endpoint arrays (a_lat, a_lng, b_lat, b_lng, lengths m)."""
        g = self.graph
        reach_parts, blocked_parts = g.pieces(self.costs, self.limit_m, self.reverse)
        reachable = self._segments(*reach_parts)
        # The start's own segments, from each snap point as far as the budget allows
        # (the search only knows nodes).
        may_uv, may_vu = g.directions(self.reverse)
        ids, t0, t1 = [], [], []
        for s in self.start.snaps:
            seg_len = g.seg_len[s.segment]
            budget = self.limit_m - s.offset_m
            if budget <= 0 or seg_len <= 0:
                continue
            if may_uv[s.segment]:
                ids.append(s.segment); t0.append(s.t); t1.append(min(1.0, s.t + budget / seg_len))
            if may_vu[s.segment]:
                ids.append(s.segment); t0.append(max(0.0, s.t - budget / seg_len)); t1.append(s.t)
        if ids:
            extra = self._segments(np.array(ids, dtype=np.int64), np.array(t0), np.array(t1))
            reachable = tuple(np.concatenate([a, b]) for a, b in zip(reachable, extra))
        return reachable, self._segments(*blocked_parts)

    def _segments(self, ids, t0, t1):
        g = self.graph
        u, v = g.seg_u[ids], g.seg_v[ids]
        d_lat, d_lng = g.node_lat[v] - g.node_lat[u], g.node_lng[v] - g.node_lng[u]
        return (g.node_lat[u] + t0 * d_lat, g.node_lng[u] + t0 * d_lng,
                g.node_lat[u] + t1 * d_lat, g.node_lng[u] + t1 * d_lng, (t1 - t0) * g.seg_len[ids])


def reach_from(graph: Graph, lat: float, lng: float, limit_m: float, reverse: bool = False) -> Reach | None:
    """Bounded search from the point (or towards it, if ``reverse``), from all its snaps at once;
    None if it is off the network."""
    anchor = graph.snap(lat, lng, SNAP_MAX_M)
    if anchor is None:
        return None
    costs = graph.costs_from(graph.snap_sources(anchor, reverse), limit_m, reverse)
    return Reach(graph, anchor, costs, limit_m, reverse)


def reach_polygon(reach: Reach, origin: tuple[float, float]):
    """The honest area of a reach: its reachable road pieces (and the leg from ``origin``), buffered,
    less the ground nearer to road that cannot be reached in time (across a river, a fence, a tunnel).

    Returns (geometry in lng/lat, area km², road km).
    """
    (a_lat, a_lng, b_lat, b_lng, lengths), blocked = reach.pieces()
    road_km = float(lengths.sum()) / 1000
    for snap in reach.start.snaps:  # the legs from the point to the road
        if snap.offset_m <= reach.limit_m:
            s_lat, s_lng = reach.graph.snap_point(snap)
            a_lat = np.append(a_lat, origin[0]); a_lng = np.append(a_lng, origin[1])
            b_lat = np.append(b_lat, s_lat); b_lng = np.append(b_lng, s_lng)
    geom, _cell = buffer_pieces(origin[0], origin[1], (a_lat, a_lng, b_lat, b_lng), blocked[:4])
    return geom, area_km2(geom, origin[0]), road_km


def geodesic_circle(lat: float, lng: float, radius_m: float, points: int = 72):
    """A circle of ``radius_m`` on the ellipsoid, as a lng/lat polygon (for the radius fallback)."""
    lats, lngs = destination(lat, lng, np.arange(points) * (360.0 / points), radius_m)
    return shapely.Polygon(np.column_stack([lngs, lats]))
