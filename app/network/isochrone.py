"""What can be reached in N minutes: reachable roads, their area, and travel times to points."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from geographiclib.geodesic import Geodesic

from app.network.graph import Graph, Snap
from app.network.polygon import area_km2, buffer_pieces

SNAP_MAX_M = 300.0


@dataclass
class Reach:
    """The outcome of one bounded search from (or, reversed, towards) a snapped point."""

    graph: Graph
    start: Snap
    costs: np.ndarray  # metres to every node (inf beyond the limit)
    limit_m: float
    reverse: bool

    def cost_to(self, target: Snap) -> float:
        return self.graph.cost_to(self.costs, self.start, target, self.reverse)

    def pieces(self):
        """Reachable parts of segments as endpoint arrays (a_lat, a_lng, b_lat, b_lng) and their lengths (m)."""
        g = self.graph
        ids, t0, t1 = g.reachable_pieces(self.costs, self.limit_m, self.reverse)
        u, v = g.seg_u[ids], g.seg_v[ids]
        d_lat, d_lng = g.node_lat[v] - g.node_lat[u], g.node_lng[v] - g.node_lng[u]
        a_lat, a_lng = g.node_lat[u] + t0 * d_lat, g.node_lng[u] + t0 * d_lng
        b_lat, b_lng = g.node_lat[u] + t1 * d_lat, g.node_lng[u] + t1 * d_lng
        lengths = (t1 - t0) * g.seg_len[ids]
        # The start's own segment, from the snap point as far as the budget allows
        # (the search above only knows nodes), plus the leg from the point to the road.
        s = self.start
        seg_len = g.seg_len[s.segment]
        budget = self.limit_m - s.offset_m
        extra = []
        if budget > 0 and seg_len > 0:
            may_uv, may_vu = g.directions(self.reverse)
            reach = budget / seg_len
            if may_uv[s.segment]:
                extra.append((s.t, min(1.0, s.t + reach)))
            if may_vu[s.segment]:
                extra.append((max(0.0, s.t - reach), s.t))
        u0, v0 = g.seg_u[s.segment], g.seg_v[s.segment]
        lat_u, lng_u = g.node_lat[u0], g.node_lng[u0]
        dl, dg = g.node_lat[v0] - lat_u, g.node_lng[v0] - lng_u
        add = [(lat_u + x0 * dl, lng_u + x0 * dg, lat_u + x1 * dl, lng_u + x1 * dg, (x1 - x0) * seg_len)
               for x0, x1 in extra]
        if add:
            extra_arr = np.array(add)
            a_lat = np.concatenate([a_lat, extra_arr[:, 0]]); a_lng = np.concatenate([a_lng, extra_arr[:, 1]])
            b_lat = np.concatenate([b_lat, extra_arr[:, 2]]); b_lng = np.concatenate([b_lng, extra_arr[:, 3]])
            lengths = np.concatenate([lengths, extra_arr[:, 4]])
        return a_lat, a_lng, b_lat, b_lng, lengths


def reach_from(graph: Graph, lat: float, lng: float, limit_m: float, reverse: bool = False) -> Reach | None:
    """Bounded search from the point (or towards it, if ``reverse``); None if it is off the network."""
    snap = graph.snap(lat, lng, SNAP_MAX_M)
    if snap is None:
        return None
    costs = graph.costs_from(graph.snap_sources(snap, reverse), limit_m, reverse)
    return Reach(graph, snap, costs, limit_m, reverse)


def reach_polygon(reach: Reach, origin: tuple[float, float]):
    """The honest area of a reach: its reachable road pieces (and the leg from ``origin``), buffered.

    Returns (geometry in lng/lat, area km², road km).
    """
    a_lat, a_lng, b_lat, b_lng, lengths = reach.pieces()
    s_lat, s_lng = reach.graph.snap_point(reach.start)
    if reach.start.offset_m <= reach.limit_m:
        a_lat = np.append(a_lat, origin[0]); a_lng = np.append(a_lng, origin[1])
        b_lat = np.append(b_lat, s_lat); b_lng = np.append(b_lng, s_lng)
    geom, _cell = buffer_pieces(origin[0], origin[1], a_lat, a_lng, b_lat, b_lng)
    return geom, area_km2(geom, origin[0]), float(lengths.sum()) / 1000


def geodesic_circle(lat: float, lng: float, radius_m: float, points: int = 72):
    """A circle of ``radius_m`` on the ellipsoid, as a lng/lat polygon (for the radius fallback)."""
    ring = []
    for i in range(points):
        p = Geodesic.WGS84.Direct(lat, lng, 360.0 * i / points, radius_m)
        ring.append((p["lon2"], p["lat2"]))
    return shapely.Polygon(ring)
