"""Where the ego stands relative to the road: offroad and wrong_lane (Alpasim's OffRoadScorer).

Lanes come as directed centre-line polylines plus a width. A lane's polygon is its
centre line swept by half the width on each side, with flat ends and rounded
joints (shapely's ``buffer(w/2, cap_style="flat")``): flat ends so that a lane and
its successor meet edge to edge instead of overlapping in round caps.

Reading of Alpasim's offroad rule ("no single lane polygon, nor the union of the
nearby lanes, fully contains the ego polygon, AND the ego polygon touches a road
edge"):
- Containment is tested on sample points — every footprint vertex and every edge
  midpoint — each of which must lie in SOME lane. A single lane containing the ego
  is a special case of that, and adjacent lanes (a lane change across a dashed
  line) or consecutive lanes (a junction) cover it jointly. Lanes are curved only
  gently at car scale, so an edge bulging out of the lanes between two samples
  (≤ 1.7 m apart on a car's side) is a sagitta of s²/(8R) ≤ 4 cm at R = 10 m.
- All lanes are considered rather than Alpasim's "within 6 m of the ego": a lane
  that contains a point of a 5 m car is within 6 m of it anyway.
- "Touches a road edge": the distance from the ego polygon to ANY road-edge
  polyline is below 1 mm (Alpasim checks only the edge closest to the ego's
  position; the nearest edge is the one that matters, and this is robust to ties).
- As in Alpasim, an ego entirely beyond the road edge and no longer touching it
  does not read as offroad; it must have crossed the edge to get there, and that
  step counts (the rollout is then truncated at it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redux.eval.polygons import polygon_polyline_distance

ROAD_EDGE_CONTACT_M = 1e-3  # Alpasim: distance < 1 mm to a road edge is contact
WRONG_LANE_HEADING_RAD = 2 * np.pi / 3  # Alpasim's threshold against the lane direction
ON_LANE_TOLERANCE_M = 1e-6  # so a point on the line shared by two lanes lies in both


@dataclass(frozen=True)
class RoadGeometry:
    """The parts of a map the metrics need, in the world frame (metres)."""

    lane_centerlines: tuple[np.ndarray, ...]  # each (N, 2), in the direction of travel
    lane_widths: tuple[float, ...]
    road_edges: tuple[np.ndarray, ...]  # each (N, 2), bounding the drivable surface


def points_in_lane(points: np.ndarray, centerline: np.ndarray, width: float) -> np.ndarray:
    """(P,) bool: is each point (P, 2) inside the lane swept from ``centerline`` (N, 2) by ``width``?"""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    centerline = np.asarray(centerline, dtype=np.float64)
    half = width / 2 + ON_LANE_TOLERANCE_M
    start, d = centerline[:-1], np.diff(centerline, axis=0)
    seg_len = np.linalg.norm(d, axis=1)
    keep = seg_len > 0
    start, d, seg_len = start[keep], d[keep], seg_len[keep]
    rel = points[:, None, :] - start[None]
    along = np.sum(rel * d, axis=-1) / seg_len  # metres along each segment, unclamped
    across = np.abs(rel[..., 0] * d[:, 1] - rel[..., 1] * d[:, 0]) / seg_len
    in_strip = (along >= -ON_LANE_TOLERANCE_M) & (along <= seg_len + ON_LANE_TOLERANCE_M) & (across <= half)
    inside = in_strip.any(axis=1)
    joints = centerline[1:-1]  # rounded joints fill the wedge on the outside of a bend
    if len(joints):
        inside |= (np.linalg.norm(points[:, None, :] - joints[None], axis=-1) <= half).any(axis=1)
    return inside


def lane_heading_at(points: np.ndarray, centerline: np.ndarray) -> np.ndarray:
    """(P,) direction of the centre-line segment nearest to each point."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    centerline = np.asarray(centerline, dtype=np.float64)
    start, d = centerline[:-1], np.diff(centerline, axis=0)
    seg_len_sq = np.sum(d * d, axis=1)
    rel = points[:, None, :] - start[None]
    t = np.clip(np.sum(rel * d, axis=-1) / np.where(seg_len_sq > 0, seg_len_sq, 1.0), 0.0, 1.0)
    dist = np.linalg.norm(rel - t[..., None] * d, axis=-1)
    dist[:, seg_len_sq == 0] = np.inf
    nearest = d[np.argmin(dist, axis=1)]
    return np.arctan2(nearest[:, 1], nearest[:, 0])


def _lanes_around(points: np.ndarray, road: RoadGeometry):
    """Yield (centerline, width, near) per lane; ``near`` (P,) marks the points inside the lane's bounding box.

    A broad phase: only those points can be in the lane, and most lanes of a map
    are nowhere near the ego.
    """
    for centerline, width in zip(road.lane_centerlines, road.lane_widths):
        centerline = np.asarray(centerline, dtype=np.float64)
        if len(centerline) < 2:
            continue
        margin = width / 2 + ON_LANE_TOLERANCE_M
        lo, hi = centerline.min(axis=0) - margin, centerline.max(axis=0) + margin
        near = np.all((points >= lo) & (points <= hi), axis=1)
        if near.any():
            yield centerline, width, near


def lane_covered(polygons: np.ndarray, road: RoadGeometry) -> np.ndarray:
    """(T,) bool: do the lanes jointly contain every vertex and edge midpoint of each polygon (T, V, 2)?"""
    polygons = np.asarray(polygons, dtype=np.float64)
    midpoints = (polygons + np.roll(polygons, -1, axis=1)) / 2
    samples = np.concatenate([polygons, midpoints], axis=1)  # (T, 2V, 2)
    flat = samples.reshape(-1, 2)
    on_lane = np.zeros(len(flat), dtype=bool)
    for centerline, width, near in _lanes_around(flat, road):
        check = near & ~on_lane
        on_lane[check] = points_in_lane(flat[check], centerline, width)
    return on_lane.reshape(samples.shape[:2]).all(axis=1)


def offroad(ego_polygons: np.ndarray, road: RoadGeometry) -> np.ndarray:
    """(T,) bool: ego footprint not covered by lanes AND touching a road edge (Alpasim's rule)."""
    ego_polygons = np.asarray(ego_polygons, dtype=np.float64)
    touches_edge = np.zeros(len(ego_polygons), dtype=bool)
    for edge in road.road_edges:
        touches_edge |= polygon_polyline_distance(ego_polygons, edge, ROAD_EDGE_CONTACT_M) < ROAD_EDGE_CONTACT_M
    # lane coverage is the expensive half: test it only where an edge is touched
    result = np.zeros(len(ego_polygons), dtype=bool)
    if touches_edge.any():
        result[touches_edge] = ~lane_covered(ego_polygons[touches_edge], road)
    return result


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def wrong_lane(centres: np.ndarray, yaw: np.ndarray, road: RoadGeometry) -> np.ndarray:
    """(T,) bool: heading differs by more than 2π/3 from a lane that contains the box centre.

    As in Alpasim, any containing lane pointing the other way flags the step (at a
    junction, overlapping lanes may disagree); no containing lane, no flag. Unlike
    Alpasim we wrap the heading difference to [−π, π), so headings of +179° and
    −179° count as 2° apart rather than 358°.
    """
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    yaw = np.asarray(yaw, dtype=np.float64)
    flagged = np.zeros(len(centres), dtype=bool)
    for centerline, width, near in _lanes_around(centres, road):
        inside = near.copy()
        inside[near] = points_in_lane(centres[near], centerline, width)
        if inside.any():
            heading = lane_heading_at(centres[inside], centerline)
            flagged[inside] |= np.abs(wrap_angle(heading - yaw[inside])) > WRONG_LANE_HEADING_RAD
    return flagged
