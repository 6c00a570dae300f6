"""The road's top-down geometry, as the renderers draw it: built once per RoadMap.

The camera, the BEV raster and the rollout video all draw the same things: lane
surface, painted markings, crosswalks, stop lines and actor footprints. This module
turns a :class:`RoadMap` into flat arrays of short primitives (pieces of about
10 m) so that a renderer can pick the pieces in range with one vectorised test,
transform their vertices with one matrix product, and loop only over the few it
draws. The result is cached per RoadMap object (maps are immutable).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from redux.sim_bridge.minisim.road_map import Lane, RoadMap

PIECE_LENGTH_M = 10.0  # lane surface and solid lines are cut into pieces this long
DASH_ON_M, DASH_PERIOD_M = 3.0, 12.0  # lane dividers: 3 m paint, 9 m gap (US practice)
EDGE_MATCH_M = 0.6  # a lane boundary this close to a road edge is that edge
PAINT_WIDTH_M = 0.15  # lane markings
STOP_LINE_WIDTH_M = 0.45


class MarkingStyle(IntEnum):
    DIVIDER = 0  # dashed white between lanes of the same direction
    EDGE = 1  # solid white along the road edges
    CENTRE = 2  # solid yellow between opposite directions


@dataclass(frozen=True)
class Primitives:
    """P polygons or polylines stored flat: primitive p is points[offsets[p]:offsets[p + 1]]."""

    points: np.ndarray  # (V, 2) world frame
    offsets: np.ndarray  # (P + 1,) int
    centres: np.ndarray  # (P, 2) bounding circles, for range culling
    radii: np.ndarray  # (P,)

    @staticmethod
    def pack(shapes: list[np.ndarray]) -> Primitives:
        if not shapes:
            return Primitives(np.zeros((0, 2)), np.zeros(1, dtype=np.int64), np.zeros((0, 2)), np.zeros(0))
        points = np.concatenate([np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in shapes])
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in shapes])])
        starts, lengths = offsets[:-1], np.diff(offsets)
        centres = 0.5 * (np.minimum.reduceat(points, starts) + np.maximum.reduceat(points, starts))
        radii = np.sqrt(
            np.maximum.reduceat(np.sum((points - np.repeat(centres, lengths, axis=0)) ** 2, axis=1), starts)
        )
        return Primitives(points, offsets, centres, radii)

    def gather(self, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The points and offsets of the primitives ``chosen`` (indices), packed the same way."""
        lengths = np.diff(self.offsets)[chosen]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        index = np.repeat(self.offsets[chosen] - offsets[:-1], lengths) + np.arange(offsets[-1])
        return self.points[index], offsets

    def __len__(self) -> int:
        return len(self.centres)

    def within(self, xy: np.ndarray, range_m: float) -> np.ndarray:
        """Indices of the primitives that reach within range_m of the point xy."""
        return np.flatnonzero(np.linalg.norm(self.centres - xy, axis=1) - self.radii < range_m)


@dataclass(frozen=True)
class RoadPaint:
    surface: Primitives  # lane polygons, in pieces (overlapping by one segment: no seams)
    crosswalks: Primitives  # polygons
    markings: Primitives  # polylines
    marking_ribbons: Primitives  # the same, as polygons of the painted width (for perspective views)
    marking_styles: np.ndarray  # (P,) MarkingStyle of each marking
    stop_lines: Primitives  # 2-point segments, in RoadMap.stop_lines order
    stop_line_ribbons: Primitives
    stop_light_ids: tuple[int | None, ...]  # per stop line: its light, None for a stop sign
    light_facing: dict[int, np.ndarray | None]  # unit vector a light faces (toward its traffic), None: unknown


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """Footprint corners (A, 4, 2) of boxes (A, 5) x, y, yaw, length, width: front-left, rear-left, rear-right, front-right."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    c, s = np.cos(boxes[:, 2]), np.sin(boxes[:, 2])
    half_l, half_w = 0.5 * boxes[:, 3], 0.5 * boxes[:, 4]
    along = np.array([1.0, -1.0, -1.0, 1.0])[None, :] * half_l[:, None]
    across = np.array([1.0, 1.0, -1.0, -1.0])[None, :] * half_w[:, None]
    x = boxes[:, 0:1] + c[:, None] * along - s[:, None] * across
    y = boxes[:, 1:2] + s[:, None] * along + c[:, None] * across
    return np.stack([x, y], axis=-1)


def polyline_normals(line: np.ndarray) -> np.ndarray:
    """Unit left normals (N, 2) of a polyline (N, 2), from central differences."""
    tangent = np.gradient(line, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    return np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)


def lane_boundaries(lane: Lane) -> tuple[np.ndarray, np.ndarray]:
    """The lane's left and right boundary polylines (N, 2), in the direction of travel."""
    offset = 0.5 * lane.width_m * polyline_normals(lane.centerline)
    return lane.centerline + offset, lane.centerline - offset


def ribbon(line: np.ndarray, width_m: float) -> np.ndarray:
    """The polygon (2N, 2) of a polyline (N, 2) swept by width_m."""
    offset = 0.5 * width_m * polyline_normals(line)
    return np.concatenate([line + offset, (line - offset)[::-1]])


def _arc_length(line: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])


def _cut(line: np.ndarray, starts_m: np.ndarray, ends_m: np.ndarray) -> list[np.ndarray]:
    """Sub-polylines of ``line`` between arc lengths [start, end], keeping the vertices in between."""
    s = _arc_length(line)
    pieces = []
    for a, b in zip(starts_m, ends_m):
        b = min(b, s[-1])
        if b - a < 1e-3:
            continue
        inner = (s > a) & (s < b)
        at = np.concatenate([[a], s[inner], [b]])
        pieces.append(np.stack([np.interp(at, s, line[:, 0]), np.interp(at, s, line[:, 1])], axis=1))
    return pieces


def _pieces(line: np.ndarray) -> list[np.ndarray]:
    """``line`` cut into PIECE_LENGTH_M pieces."""
    total = _arc_length(line)[-1]
    starts = np.arange(0.0, max(total, 1e-6), PIECE_LENGTH_M)
    return _cut(line, starts, starts + PIECE_LENGTH_M)


def _surface_pieces(lane: Lane) -> list[np.ndarray]:
    left, right = lane_boundaries(lane)
    s = _arc_length(lane.centerline)
    # piece k spans the vertices whose arc length falls in [k, k + 1) pieces, plus the next vertex
    index = (s / PIECE_LENGTH_M).astype(int)
    pieces = []
    for k in np.unique(index):
        members = np.flatnonzero(index == k)
        lo, hi = members[0], min(members[-1] + 2, len(s))  # one extra segment of overlap
        if hi - lo >= 2:
            pieces.append(np.concatenate([left[lo:hi], right[lo:hi][::-1]]))
    return pieces


def _segments(polylines: tuple[np.ndarray, ...]) -> np.ndarray:
    """All segments (S, 2, 2) of some polylines."""
    segments = [
        np.stack([p[:-1], p[1:]], axis=1) for p in (np.asarray(q, dtype=np.float64) for q in polylines) if len(p) >= 2
    ]
    return np.concatenate(segments) if segments else np.zeros((0, 2, 2))


def _median_distance(points: np.ndarray, segments: np.ndarray) -> float:
    """Median over the points (N, 2) of the distance to the nearest of the segments (S, 2, 2); inf if none is near."""
    low, high = points.min(axis=0) - EDGE_MATCH_M, points.max(axis=0) + EDGE_MATCH_M
    a, b = segments[:, 0], segments[:, 1]
    near = np.all((np.maximum(a, b) >= low) & (np.minimum(a, b) <= high), axis=1)
    segments = segments[near]
    if len(segments) == 0:
        return np.inf
    a, ab = segments[:, 0], segments[:, 1] - segments[:, 0]
    ap = points[:, None, :] - a[None]  # (N, S, 2)
    t = np.clip(np.sum(ap * ab, axis=-1) / np.maximum(np.sum(ab * ab, axis=-1), 1e-12), 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]
    return float(np.median(np.linalg.norm(points[:, None, :] - closest, axis=-1).min(axis=1)))


def _build(road_map: RoadMap) -> RoadPaint:
    surface: list[np.ndarray] = []
    markings: list[np.ndarray] = []
    styles: list[int] = []
    edge_segments = _segments(road_map.road_edges)
    centre_segments = np.zeros((0, 2, 2))
    right_neighbours = {lane.right for lane in road_map.lanes.values() if lane.right is not None}
    for lane in road_map.lanes.values():
        surface += _surface_pieces(lane)
        if lane.in_junction:
            continue
        left, _ = lane_boundaries(lane)
        if lane.left is not None or lane.id in right_neighbours:
            # the shared boundary: drawn once, from the lane whose left neighbour it is
            length = _arc_length(left)[-1]
            starts = np.arange(0.0, length, DASH_PERIOD_M)
            dashes = _cut(left, starts, starts + DASH_ON_M)
            markings += dashes
            styles += [MarkingStyle.DIVIDER] * len(dashes)
            continue
        probe = left[:: max(1, len(left) // 8)]
        if _median_distance(probe, edge_segments) < EDGE_MATCH_M:
            continue  # the road edge, painted below
        if _median_distance(probe, centre_segments) < EDGE_MATCH_M:
            continue  # the opposite lane already painted this centre line
        centre_segments = np.concatenate([centre_segments, _segments((left,))])
        pieces = _pieces(left)
        markings += pieces
        styles += [MarkingStyle.CENTRE] * len(pieces)
    for edge in road_map.road_edges:
        pieces = _pieces(np.asarray(edge, dtype=np.float64))
        markings += pieces
        styles += [MarkingStyle.EDGE] * len(pieces)

    light_directions: dict[int, list[np.ndarray]] = {light_id: [] for light_id in road_map.traffic_lights}
    for stop in road_map.stop_lines:
        if stop.light_id is not None and stop.lane_id in road_map.lanes:
            line = road_map.lanes[stop.lane_id].centerline
            s = _arc_length(line)
            k = int(np.clip(np.searchsorted(s, stop.s_m), 1, len(line) - 1))
            light_directions.setdefault(stop.light_id, []).append(line[k - 1] - line[k])  # against traffic
    light_facing = {}
    for light_id, directions in light_directions.items():
        total = np.sum(directions, axis=0) if directions else np.zeros(2)
        norm = np.linalg.norm(total)
        light_facing[light_id] = total / norm if norm > 1e-6 else None

    return RoadPaint(
        surface=Primitives.pack(surface),
        crosswalks=Primitives.pack([c.polygon for c in road_map.crosswalks]),
        markings=Primitives.pack(markings),
        marking_ribbons=Primitives.pack([ribbon(m, PAINT_WIDTH_M) for m in markings]),
        marking_styles=np.array(styles, dtype=np.int64),
        stop_lines=Primitives.pack([s.segment for s in road_map.stop_lines]),
        stop_line_ribbons=Primitives.pack([ribbon(s.segment, STOP_LINE_WIDTH_M) for s in road_map.stop_lines]),
        stop_light_ids=tuple(s.light_id for s in road_map.stop_lines),
        light_facing=light_facing,
    )


_CACHE: dict[int, tuple[weakref.ref, RoadPaint]] = {}


def road_paint(road_map: RoadMap) -> RoadPaint:
    """The drawable geometry of ``road_map``, built on first use and cached while the map lives."""
    key = id(road_map)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is road_map:
        return hit[1]
    paint = _build(road_map)
    _CACHE[key] = (weakref.ref(road_map, lambda _, key=key: _CACHE.pop(key, None)), paint)
    return paint
