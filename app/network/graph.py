"""A routable graph in compact arrays (numpy), one per travel mode.

Every OSM node a routable way uses is a graph node, and every consecutive pair of
nodes on a way is a straight *segment* with a length and the directions it may be
travelled (one-way streets for e-bikes). Shortest paths run on a CSR matrix with
SciPy's C Dijkstra, bounded by the distance reachable in the time asked for.
Costs are metres of travel; a mode's speed turns them into minutes.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from app.geo.geodesic import metres_per_degree
from app.network.modes import SNAP_FIRST_M



@dataclass(frozen=True)
class Snap:
    """Where a point meets the network: on ``segment`` at fraction ``t`` from its u end."""

    segment: int
    t: float
    offset_m: float  # straight distance from the point to the network


class Graph:
    """Nodes (lat/lng arrays) and segments (u, v, length, allowed directions)."""

    def __init__(self, node_lat, node_lng, seg_u, seg_v, seg_len, seg_fwd, seg_bwd):
        self.node_lat = np.asarray(node_lat, dtype=np.float64)
        self.node_lng = np.asarray(node_lng, dtype=np.float64)
        self.seg_u = np.asarray(seg_u, dtype=np.int32)
        self.seg_v = np.asarray(seg_v, dtype=np.int32)
        self.seg_len = np.asarray(seg_len, dtype=np.float64)
        self.seg_fwd = np.asarray(seg_fwd, dtype=bool)  # may travel u -> v
        self.seg_bwd = np.asarray(seg_bwd, dtype=bool)  # may travel v -> u
        self._forward = self._reverse = None
        self._tree = None
        self._component = None

    @property
    def node_count(self) -> int:
        return len(self.node_lat)

    @property
    def segment_count(self) -> int:
        return len(self.seg_u)

    # -- persistence ----------------------------------------------------------

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(
            buf, node_lat=self.node_lat, node_lng=self.node_lng, seg_u=self.seg_u, seg_v=self.seg_v,
            seg_len=self.seg_len, seg_fwd=self.seg_fwd, seg_bwd=self.seg_bwd,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Graph":
        with np.load(io.BytesIO(data)) as z:
            return cls(z["node_lat"], z["node_lng"], z["seg_u"], z["seg_v"], z["seg_len"], z["seg_fwd"], z["seg_bwd"])

    # -- shortest paths -------------------------------------------------------

    def _matrix(self, reverse: bool) -> csr_matrix:
        """Directed adjacency; ``reverse`` transposes it (who can reach a point, not where it reaches)."""
        cached = self._reverse if reverse else self._forward
        if cached is not None:
            return cached
        fwd, bwd = (self.seg_bwd, self.seg_fwd) if reverse else (self.seg_fwd, self.seg_bwd)
        rows = np.concatenate([self.seg_u[fwd], self.seg_v[bwd]])
        cols = np.concatenate([self.seg_v[fwd], self.seg_u[bwd]])
        # Zero-length segments (duplicate nodes) must still count as edges.
        weights = np.maximum(np.concatenate([self.seg_len[fwd], self.seg_len[bwd]]), 1e-6)
        # Two ways can share a node pair; a sparse matrix would add their lengths, so keep the shortest.
        order = np.lexsort((weights, cols, rows))
        rows, cols, weights = rows[order], cols[order], weights[order]
        first = np.ones(len(rows), dtype=bool)
        first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
        n = self.node_count
        matrix = csr_matrix((weights[first], (rows[first], cols[first])), shape=(n, n))
        if reverse:
            self._reverse = matrix
        else:
            self._forward = matrix
        return matrix

    def component(self) -> np.ndarray:
        """Connected-component label of every node (ignoring one-way rules)."""
        if self._component is None:
            _, self._component = connected_components(self._matrix(False), directed=True, connection="weak")
        return self._component

    def directions(self, reverse: bool) -> tuple[np.ndarray, np.ndarray]:
        """(may go u->v, may go v->u) in the search's direction."""
        return (self.seg_bwd, self.seg_fwd) if reverse else (self.seg_fwd, self.seg_bwd)

    def costs_from(self, sources: list[tuple[int, float]], limit_m: float, reverse: bool = False) -> np.ndarray:
        """Network distance (m) from the nearest source (node, starting cost) to every node; inf beyond ``limit_m``."""
        best = np.full(self.node_count, np.inf)
        sources = [(n, c) for n, c in sources if c <= limit_m]
        if not sources:
            return best
        nodes = [n for n, _ in sources]
        dist = dijkstra(self._matrix(reverse), directed=True, indices=nodes, limit=limit_m)
        dist = np.atleast_2d(dist)
        for row, (_, start) in zip(dist, sources):
            np.minimum(best, row + start, out=best)
        best[best > limit_m] = np.inf
        return best

    def snap_sources(self, snap: Snap, reverse: bool = False) -> list[tuple[int, float]]:
        """Graph nodes a point on ``snap`` reaches first, with their cost (offset leg included)."""
        s = snap.segment
        may_uv, may_vu = self.directions(reverse)
        length = self.seg_len[s]
        out = []
        if may_vu[s]:  # towards u, i.e. travelling v -> u
            out.append((int(self.seg_u[s]), snap.offset_m + snap.t * length))
        if may_uv[s]:
            out.append((int(self.seg_v[s]), snap.offset_m + (1 - snap.t) * length))
        return out

    def cost_to(self, costs: np.ndarray, start: Snap | None, target: Snap, reverse: bool = False) -> float:
        """Cost to reach a point snapped at ``target`` given node ``costs`` (and the start's own segment)."""
        s = target.segment
        may_uv, may_vu = self.directions(reverse)
        length = self.seg_len[s]
        best = math.inf
        if may_uv[s]:
            best = min(best, costs[self.seg_u[s]] + target.t * length)
        if may_vu[s]:
            best = min(best, costs[self.seg_v[s]] + (1 - target.t) * length)
        if start is not None and start.segment == s:
            along = (target.t - start.t) * length
            if (along >= 0 and may_uv[s]) or (along <= 0 and may_vu[s]):
                best = min(best, start.offset_m + abs(along))
        return best + target.offset_m

    # -- snapping -------------------------------------------------------------

    def _index(self) -> shapely.STRtree:
        if self._tree is None:
            u, v = self.seg_u, self.seg_v
            boxes = shapely.box(
                np.minimum(self.node_lng[u], self.node_lng[v]), np.minimum(self.node_lat[u], self.node_lat[v]),
                np.maximum(self.node_lng[u], self.node_lng[v]), np.maximum(self.node_lat[u], self.node_lat[v]),
            )
            self._tree = shapely.STRtree(boxes)
        return self._tree

    def snap(self, lat: float, lng: float, max_m: float) -> Snap | None:
        """The nearest point of the network within ``max_m`` metres, or None."""
        return self.snap_many(np.array([lat]), np.array([lng]), max_m)[0]

    def snap_many(self, lats: np.ndarray, lngs: np.ndarray, max_m: float) -> list[Snap | None]:
        """``snap`` for many points at once (one index query per pass, vectorised projections).

        Most points lie within a few tens of metres of a road, so a first pass looks
        only that far; the rest get a second pass out to ``max_m``. Distances are
        measured on the local plane at each point, which agrees with the ellipsoid
        to millimetres within a few hundred metres.
        """
        lats, lngs = np.asarray(lats, dtype=np.float64), np.asarray(lngs, dtype=np.float64)
        out: list[Snap | None] = [None] * len(lats)
        if self.segment_count == 0 or len(lats) == 0:
            return out
        todo = np.arange(len(lats))
        for radius in sorted({min(SNAP_FIRST_M, max_m), max_m}):
            found = self._snap_within(lats[todo], lngs[todo], radius)
            for i, snap in zip(todo, found):
                out[i] = snap
            todo = np.array([i for i, snap in zip(todo, found) if snap is None], dtype=np.int64)
            if len(todo) == 0:
                break
        return out

    def _snap_within(self, lats, lngs, max_m: float) -> list[Snap | None]:
        out: list[Snap | None] = [None] * len(lats)
        ky, kx = metres_per_degree(lats)
        kx = np.maximum(kx, 1e-9)
        d_lat, d_lng = max_m / ky, max_m / kx
        point_idx, cand = self._index().query(shapely.box(lngs - d_lng, lats - d_lat, lngs + d_lng, lats + d_lat))
        if len(cand) == 0:
            return out
        order = np.lexsort((cand, point_idx))  # group by point
        point_idx, cand = point_idx[order], cand[order]
        lat, lng, ky, kx = lats[point_idx], lngs[point_idx], ky[point_idx], kx[point_idx]
        u, v = self.seg_u[cand], self.seg_v[cand]
        ux, uy = (self.node_lng[u] - lng) * kx, (self.node_lat[u] - lat) * ky
        vx, vy = (self.node_lng[v] - lng) * kx, (self.node_lat[v] - lat) * ky
        dx, dy = vx - ux, vy - uy
        seg2 = dx * dx + dy * dy
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(seg2 > 0, np.clip(-(ux * dx + uy * dy) / seg2, 0.0, 1.0), 0.0)
        d = np.hypot(ux + t * dx, uy + t * dy)
        # Per point: the nearest segment, ties by the lowest segment index (stable across runs and stores).
        starts = np.nonzero(np.r_[True, point_idx[1:] != point_idx[:-1]])[0]
        group = np.cumsum(np.r_[False, point_idx[1:] != point_idx[:-1]])
        best_d = np.minimum.reduceat(d, starts)
        is_best = d == best_d[group]
        best_seg = np.minimum.reduceat(np.where(is_best, cand, np.iinfo(np.int64).max), starts)
        # (point, segment) pairs are unique, so exactly one pair per point is picked.
        for k in np.nonzero(is_best & (cand == best_seg[group]))[0]:
            if d[k] <= max_m:
                out[int(point_idx[k])] = Snap(int(cand[k]), float(t[k]), float(d[k]))
        return out

    def snap_point(self, snap: Snap) -> tuple[float, float]:
        u, v = self.seg_u[snap.segment], self.seg_v[snap.segment]
        return (
            float(self.node_lat[u] + snap.t * (self.node_lat[v] - self.node_lat[u])),
            float(self.node_lng[u] + snap.t * (self.node_lng[v] - self.node_lng[u])),
        )

    # -- reachable pieces -----------------------------------------------------

    def pieces(self, costs: np.ndarray, limit_m: float, reverse: bool = False, margin_m: float = 100.0):
        """Reachable and unreachable parts of segments, each as (segment ids, start fraction, end fraction).

        A segment entered at u with cost c is reachable up to (limit - c)/length of
        its length (if u -> v may be travelled), and likewise from v; a partly
        reachable segment contributes its reachable ends to the first set and the
        middle it cannot reach to the second. Unreachable road is only reported
        within ``margin_m`` of the reached nodes' bounding box (where it matters).
        """
        reached = np.isfinite(costs)
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))
        if not reached.any():
            return empty, empty
        # Only segments near what was reached: every reachable piece touches a reached node.
        lat, lng = self.node_lat[reached], self.node_lng[reached]
        ky, kx = metres_per_degree(float(lat.mean()))
        d_lat, d_lng = margin_m / ky, margin_m / kx
        ids = np.sort(self._index().query(shapely.box(
            lng.min() - d_lng, lat.min() - d_lat, lng.max() + d_lng, lat.max() + d_lat)))
        u, v = self.seg_u[ids], self.seg_v[ids]
        may_uv, may_vu = (m[ids] for m in self.directions(reverse))
        length = np.maximum(self.seg_len[ids], 1e-9)
        with np.errstate(invalid="ignore", over="ignore"):
            from_u = np.where(may_uv, (limit_m - costs[u]) / length, -np.inf)
            from_v = np.where(may_vu, (limit_m - costs[v]) / length, -np.inf)
            full = (from_u >= 1) | (from_v >= 1) | ((from_u > 0) & (from_v > 0) & (from_u + from_v >= 1))
        part_u = ~full & (from_u > 0)
        part_v = ~full & (from_v > 0)
        # Only road connected to where the search started can be "too far"; islands
        # of unconnected ways (often mapping gaps) are left out rather than treated
        # as barriers.
        labels = np.unique(self.component()[reached])
        none = ~full & ~part_u & ~part_v & np.isin(self.component()[u], labels)

        def take(mask, start, end):
            idx = np.nonzero(mask)[0]
            return ids[idx], np.broadcast_to(start, mask.shape)[idx], np.broadcast_to(end, mask.shape)[idx]

        reach = [take(full, 0.0, 1.0), take(part_u, 0.0, from_u), take(part_v, 1 - from_v, 1.0)]
        gap_start = np.where(part_u, np.clip(from_u, 0, 1), 0.0)
        gap_end = np.where(part_v, 1 - np.clip(from_v, 0, 1), 1.0)
        blocked = [take(none, 0.0, 1.0), take((part_u | part_v) & (gap_end > gap_start), gap_start, gap_end)]

        def join(parts):
            return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))

        return join(reach), join(blocked)
