"""A routable graph in compact arrays (numpy), one per travel mode.

Every OSM node a routable way uses is a graph node, and every consecutive pair of
nodes on a way is a straight *segment* with a length and the directions it may be
travelled (one-way streets for e-bikes). Shortest paths run on a CSR matrix with
SciPy's C Dijkstra, bounded by the distance reachable in the time asked for.
Costs are metres of travel; a mode's speed turns them into minutes.
"""
from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from app.geo.geodesic import metres_per_degree
from app.network.modes import SNAP_FIRST_M, SNAP_TOLERANCE_M

# Sources a search can start from at once without copying the adjacency (a point's
# candidate snaps give two each; more than this falls back to a copy).
ROOT_EDGES = 64


class Snap(NamedTuple):
    """One place a point meets the network: on ``segment`` at fraction ``t`` from its u end."""

    segment: int
    t: float
    offset_m: float  # straight distance from the point to the network


@dataclass(frozen=True)
class Anchor:
    """Where a point joins the network: every candidate snap (see ``Graph.snap_many``), nearest first.

    Travel to or from the point may use any of them, and the best wins. The first,
    nearest candidate stands for the point where one place is needed; ``segment``,
    ``t`` and ``offset_m`` are its.
    """

    snaps: tuple[Snap, ...]

    @property
    def segment(self) -> int:
        return self.snaps[0].segment

    @property
    def t(self) -> float:
        return self.snaps[0].t

    @property
    def offset_m(self) -> float:
        return self.snaps[0].offset_m


class Graph:
    """Nodes (lat/lng arrays) and segments (u, v, length, allowed directions, above or below street level)."""

    def __init__(self, node_lat, node_lng, seg_u, seg_v, seg_len, seg_fwd, seg_bwd, seg_off_ground=None):
        self.node_lat = np.asarray(node_lat, dtype=np.float64)
        self.node_lng = np.asarray(node_lng, dtype=np.float64)
        self.seg_u = np.asarray(seg_u, dtype=np.int32)
        self.seg_v = np.asarray(seg_v, dtype=np.int32)
        self.seg_len = np.asarray(seg_len, dtype=np.float64)
        self.seg_fwd = np.asarray(seg_fwd, dtype=bool)  # may travel u -> v
        self.seg_bwd = np.asarray(seg_bwd, dtype=bool)  # may travel v -> u
        # On a bridge, in a tunnel or on another layer (osm_import.off_ground); graphs
        # stored before this was kept have it all False: everything at street level.
        self.seg_off_ground = (np.zeros(len(self.seg_u), dtype=bool) if seg_off_ground is None
                               else np.asarray(seg_off_ground, dtype=bool))
        self._forward = self._reverse = None
        self._tree = None
        self._component = None
        self._road = None
        self._rooted_cache: dict[bool, tuple[csr_matrix, int]] = {}
        self._rooted_lock = threading.Lock()

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
            seg_len=self.seg_len, seg_fwd=self.seg_fwd, seg_bwd=self.seg_bwd, seg_off_ground=self.seg_off_ground,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Graph":
        with np.load(io.BytesIO(data)) as z:
            off_ground = z["seg_off_ground"] if "seg_off_ground" in z.files else None
            return cls(z["node_lat"], z["node_lng"], z["seg_u"], z["seg_v"], z["seg_len"], z["seg_fwd"], z["seg_bwd"],
                       off_ground)

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

    def roads(self) -> np.ndarray:
        """Road label of every segment: segments chained through nodes that join exactly two of
        them, with the same level and travel directions, are one road between junctions (an edge,
        in routing terms). A point takes one candidate per road, where the road is nearest."""
        if self._road is None:
            ends = np.concatenate([self.seg_u, self.seg_v])
            segs = np.tile(np.arange(self.segment_count), 2)
            at_v = np.repeat([False, True], self.segment_count)  # the node is the segment's v end
            order = np.argsort(ends, kind="stable")
            ends, segs, at_v = ends[order], segs[order], at_v[order]
            counts = np.bincount(ends, minlength=self.node_count)
            first = np.nonzero((counts[ends] == 2) & np.r_[True, ends[1:] != ends[:-1]])[0]
            a, b, a_at_v, b_at_v = segs[first], segs[first + 1], at_v[first], at_v[first + 1]
            # Travel into the shared node along a, and out of it along b (and the other way round).
            a_in = np.where(a_at_v, self.seg_fwd[a], self.seg_bwd[a])
            a_out = np.where(a_at_v, self.seg_bwd[a], self.seg_fwd[a])
            b_in = np.where(b_at_v, self.seg_fwd[b], self.seg_bwd[b])
            b_out = np.where(b_at_v, self.seg_bwd[b], self.seg_fwd[b])
            same = ((a_in == b_out) & (a_out == b_in) & (self.seg_off_ground[a] == self.seg_off_ground[b])
                    & (a != b))
            n = self.segment_count
            links = csr_matrix((np.ones(int(same.sum())), (a[same], b[same])), shape=(n, n))
            _, self._road = connected_components(links, directed=False)
        return self._road

    def directions(self, reverse: bool) -> tuple[np.ndarray, np.ndarray]:
        """(may go u->v, may go v->u) in the search's direction."""
        return (self.seg_bwd, self.seg_fwd) if reverse else (self.seg_fwd, self.seg_bwd)

    def costs_from(self, sources: list[tuple[int, float]], limit_m: float, reverse: bool = False) -> np.ndarray:
        """Network distance (m) from the nearest source (node, starting cost) to every node; inf beyond ``limit_m``.

        All sources are searched at once: one bounded Dijkstra from a virtual root node
        joined to each source node by an edge as long as its starting cost.
        """
        kept = [(n, c) for n, c in sources if c <= limit_m]
        if not kept:
            return np.full(self.node_count, np.inf)
        nodes = np.array([n for n, _ in kept], dtype=np.int32)
        start = np.array([c for _, c in kept], dtype=np.float64)
        # One root edge per node, the cheapest (several snaps often share a node).
        order = np.lexsort((start, nodes))
        nodes, start = nodes[order], start[order]
        first = np.r_[True, nodes[1:] != nodes[:-1]]
        nodes, start = nodes[first], start[first]
        n = self.node_count
        if len(nodes) == 1:
            return dijkstra(self._matrix(reverse), directed=True, indices=int(nodes[0]),
                            limit=limit_m - start[0]) + start[0]
        if len(nodes) > ROOT_EDGES:
            rooted = _with_root(self._matrix(reverse), nodes, start)
            return dijkstra(rooted, directed=True, indices=n, limit=limit_m)[:n]
        rooted, first_slot = self._rooted(reverse)
        with self._rooted_lock:  # the root's edges are written in place
            rooted.indices[first_slot:] = n  # unused slots: loops at the root
            rooted.data[first_slot:] = 0.0
            rooted.indices[first_slot:first_slot + len(nodes)] = nodes
            rooted.data[first_slot:first_slot + len(nodes)] = start
            return dijkstra(rooted, directed=True, indices=n, limit=limit_m)[:n]

    def _rooted(self, reverse: bool) -> tuple[csr_matrix, int]:
        """The adjacency plus a root node n with ROOT_EDGES edges for ``costs_from`` to fill in,
        and where those edges start in the matrix's arrays.

        Kept rather than built per search: copying the whole matrix to add a root costs
        half as much as a 15-minute e-bike search itself in a dense city (0.4 of 0.8 ms).
        """
        if reverse not in self._rooted_cache:
            matrix = self._matrix(reverse)
            loops = np.full(ROOT_EDGES, self.node_count, dtype=np.int32)
            self._rooted_cache[reverse] = (_with_root(matrix, loops, np.zeros(ROOT_EDGES)), matrix.nnz)
        return self._rooted_cache[reverse]

    def snap_sources(self, anchor: Anchor, reverse: bool = False) -> list[tuple[int, float]]:
        """Graph nodes a point reaches first through each of its snaps, with their cost (offset leg included)."""
        may_uv, may_vu = self.directions(reverse)
        out = []
        for snap in anchor.snaps:
            s = snap.segment
            length = self.seg_len[s]
            if may_vu[s]:  # towards u, i.e. travelling v -> u
                out.append((int(self.seg_u[s]), snap.offset_m + snap.t * length))
            if may_uv[s]:
                out.append((int(self.seg_v[s]), snap.offset_m + (1 - snap.t) * length))
        return out

    def cost_to(self, costs: np.ndarray, start: Anchor | None, target: Anchor, reverse: bool = False) -> float:
        """Cost to reach a point anchored at ``target`` given node ``costs`` (and the start's own segments)."""
        return float(self.costs_to(costs, start, [target], reverse)[0])

    def costs_to(self, costs: np.ndarray, start: Anchor | None, targets: list[Anchor | None],
                 reverse: bool = False) -> np.ndarray:
        """``cost_to`` for many targets at once: each the best over its snaps (inf for None)."""
        out = np.full(len(targets), np.inf)
        owner = np.array([i for i, a in enumerate(targets) if a is not None for _ in a.snaps], dtype=np.int64)
        if len(owner) == 0:
            return out
        snaps = [s for a in targets if a is not None for s in a.snaps]
        seg = np.array([s.segment for s in snaps], dtype=np.int64)
        t = np.array([s.t for s in snaps])
        may_uv, may_vu = (m[seg] for m in self.directions(reverse))
        length = self.seg_len[seg]
        best = np.minimum(np.where(may_uv, costs[self.seg_u[seg]] + t * length, np.inf),
                          np.where(may_vu, costs[self.seg_v[seg]] + (1 - t) * length, np.inf))
        # Start and target on one segment: straight along it, if its direction allows.
        for s in start.snaps if start is not None else ():
            along = (t - s.t) * length
            direct = (seg == s.segment) & (((along >= 0) & may_uv) | ((along <= 0) & may_vu))
            best = np.where(direct, np.minimum(best, s.offset_m + np.abs(along)), best)
        np.minimum.at(out, owner, best + np.array([s.offset_m for s in snaps]))
        return out

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

    def snap(self, lat: float, lng: float, max_m: float) -> Anchor | None:
        """Where the point joins the network (see ``snap_many``), or None farther than ``max_m`` from it."""
        return self.snap_many(np.array([lat]), np.array([lng]), max_m)[0]

    def snap_many(self, lats: np.ndarray, lngs: np.ndarray, max_m: float) -> list[Anchor | None]:
        """Where each point joins the network: its candidate snaps, or None farther than ``max_m`` from every road.

        A point's candidates are the segments within SNAP_TOLERANCE_M of the nearest
        one (and within ``max_m``), each at its nearest point. Segments above or below
        the street (bridges, viaducts, tunnels, another layer) are candidates only when
        no street-level segment is: a toilet under an elevated road joins the street it
        stands on, not the road overhead, which it could reach only by the ramps.

        Most points lie within a few tens of metres of a road, so a first pass looks
        only that far; the rest get a second pass out to ``max_m``. Distances are
        measured on the local plane at each point, which agrees with the ellipsoid
        to millimetres within a few hundred metres.
        """
        lats, lngs = np.asarray(lats, dtype=np.float64), np.asarray(lngs, dtype=np.float64)
        out: list[Anchor | None] = [None] * len(lats)
        if self.segment_count == 0 or len(lats) == 0:
            return out
        todo = np.arange(len(lats))
        for radius in sorted({min(SNAP_FIRST_M, max_m), max_m}):
            found = self._snap_within(lats[todo], lngs[todo], radius, last_pass=radius == max_m)
            for i, anchor in zip(todo, found):
                out[i] = anchor
            todo = np.array([i for i, anchor in zip(todo, found) if anchor is None], dtype=np.int64)
            if len(todo) == 0:
                break
        return out

    def _snap_within(self, lats, lngs, radius: float, last_pass: bool) -> list[Anchor | None]:
        """Anchors of the points whose candidates all lie within ``radius``; None for the rest.

        The index query sees every segment within ``radius``, so before the last pass a
        point is settled only if its nearest segment is nearer than ``radius`` less the
        tolerance (otherwise a candidate could lie just outside what was looked at).
        """
        out: list[Anchor | None] = [None] * len(lats)
        ky, kx = metres_per_degree(lats)
        kx = np.maximum(kx, 1e-9)
        d_lat, d_lng = radius / ky, radius / kx
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
        new_point = np.r_[True, point_idx[1:] != point_idx[:-1]]
        starts = np.nonzero(new_point)[0]
        group = np.cumsum(new_point) - 1
        nearest = np.minimum.reduceat(d, starts)
        near = (d <= nearest[group] + SNAP_TOLERANCE_M) & (d <= radius)
        at_street = near & ~self.seg_off_ground[cand]
        street_near = np.logical_or.reduceat(at_street, starts)
        settled = nearest <= (radius if last_pass else radius - SNAP_TOLERANCE_M)
        keep = np.nonzero((at_street | (near & ~street_near[group])) & settled[group])[0]
        if len(keep) == 0:
            return out
        # One candidate per road, where it is nearest (another segment of the same road
        # only cuts across its bends); ties by the lowest segment index.
        keep = keep[np.lexsort((cand[keep], d[keep], self.roads()[cand[keep]], point_idx[keep]))]
        road = self.roads()[cand[keep]]
        first = np.r_[True, (point_idx[keep][1:] != point_idx[keep][:-1]) | (road[1:] != road[:-1])]
        keep = keep[first]
        # Per point, nearest first; ties by the lowest segment index (stable across runs and stores).
        keep = keep[np.lexsort((cand[keep], d[keep], point_idx[keep]))]
        snaps = list(map(Snap, cand[keep].tolist(), t[keep].tolist(), d[keep].tolist()))
        owner = point_idx[keep]
        bounds = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1], True]).tolist()
        for a, b in zip(bounds[:-1], bounds[1:]):
            out[int(owner[a])] = Anchor(tuple(snaps[a:b]))
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


def _with_root(matrix: csr_matrix, targets: np.ndarray, weights: np.ndarray) -> csr_matrix:
    """``matrix`` with one more node (the root, numbered n) and edges from it to ``targets``."""
    n = matrix.shape[0]
    return csr_matrix(
        (np.concatenate([matrix.data, weights]), np.concatenate([matrix.indices, targets.astype(np.int32)]),
         np.append(matrix.indptr, np.int32(matrix.nnz + len(targets)))),
        shape=(n + 1, n + 1),
    )
