"""A route as one smooth reference path: lane centre lines chained, lane changes blended in.

A route is a sequence of lane ids. Consecutive lanes are either successors, or the
second is a successor of the first one's left/right neighbour: then the path blends
from the lane to that neighbour over the last ``LANE_CHANGE_M`` of the lane (a lane
change that is complete where the neighbour's successor begins). The path is
resampled to vertices exactly 0.5 m apart so that arc length maps to a vertex index
by a division, which keeps the per-step scalar code of the expert O(1).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from redux.sim_bridge.minisim.polyline import SPACING_M, arc_lengths, headings, project, resample
from redux.sim_bridge.minisim.road_map import RoadMap

if TYPE_CHECKING:
    from redux.sim_bridge.minisim.scene import Scene

LANE_CHANGE_M = 40.0
_SEARCH_LIMIT = 2000  # vertices a local search may walk (1 km) before it gives up


def smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


class RoutePath:
    """Reference path of a route with per-vertex attributes, plus scalar twins for control loops."""

    def __init__(
        self,
        xy: np.ndarray,
        speed_limit: np.ndarray,
        lane_id: np.ndarray,
        lane_shift: np.ndarray,
        in_junction: np.ndarray,
    ):
        self.xy = xy
        self.s = arc_lengths(xy)
        self.heading = np.unwrap(headings(xy))
        raw = np.gradient(self.heading) / SPACING_M
        self.curvature = np.convolve(np.pad(raw, 2, mode="edge"), np.full(5, 0.2), mode="valid")
        self.speed_limit = speed_limit
        self.lane_id = lane_id
        self.lane_shift = lane_shift  # how far the path has moved off the route's first lane (+ left): lane changes
        self.in_junction = in_junction
        self.length_m = float(self.s[-1])
        # python lists: indexing them is ~10x faster than numpy scalars in per-step loops
        self.xs, self.ys = xy[:, 0].tolist(), xy[:, 1].tolist()
        self.hs, self.ks = self.heading.tolist(), self.curvature.tolist()
        self.last = len(xy) - 1

    @classmethod
    def of(cls, scene: Scene) -> RoutePath:
        """The reference path of a scene's route (the path its expert drives)."""
        return route_path(scene.road_map, scene.route_lanes)

    @property
    def points(self) -> np.ndarray:
        """(N, 2) the path's vertices, 0.5 m apart."""
        return self.xy

    def waypoints_ahead(self, xy: np.ndarray, count: int, spacing_m: float) -> np.ndarray:
        """(count, 2) path points every ``spacing_m`` ahead of where ``xy`` projects; NaN past the end."""
        x, y = float(xy[0]), float(xy[1])
        _, s, _ = self.locate(x, y, self.nearest_index(x, y))
        return self.waypoints_from(s, count, spacing_m)

    def waypoints_from(self, s: float, count: int, spacing_m: float) -> np.ndarray:
        """(count, 2) path points every ``spacing_m`` after arc length ``s``; NaN past the end."""
        ahead = s + spacing_m * np.arange(1, count + 1)
        points = np.stack([np.interp(ahead, self.s, self.xy[:, 0]), np.interp(ahead, self.s, self.xy[:, 1])], axis=1)
        points[ahead > self.length_m] = np.nan
        return points

    def index_at(self, s: float) -> int:
        return min(max(int(s / SPACING_M), 0), self.last - 1)

    def pose_at(self, s: float) -> tuple[float, float, float]:
        """(x, y, heading) of the path at arc length s, clamped to the path."""
        s = min(max(s, 0.0), self.length_m)
        i = self.index_at(s)
        u = (s - i * SPACING_M) / max(SPACING_M if i + 1 < self.last else self.length_m - i * SPACING_M, 1e-9)
        x = self.xs[i] + u * (self.xs[i + 1] - self.xs[i])
        y = self.ys[i] + u * (self.ys[i + 1] - self.ys[i])
        return x, y, self.hs[i] + u * (self.hs[i + 1] - self.hs[i])

    def locate(self, x: float, y: float, hint: int) -> tuple[int, float, float]:
        """(segment index, s, lateral offset d, positive left) of the point, searching from ``hint``.

        Walks vertex to vertex while the distance shrinks: the path is smooth and
        callers move a few vertices per step, so this is O(1) in practice.
        """
        xs, ys, last = self.xs, self.ys, self.last
        i = min(max(hint, 0), last)
        best = (xs[i] - x) ** 2 + (ys[i] - y) ** 2
        for direction in (1, -1):
            for _ in range(_SEARCH_LIMIT):
                j = i + direction
                if j < 0 or j > last:
                    break
                dist = (xs[j] - x) ** 2 + (ys[j] - y) ** 2
                if dist >= best:
                    break
                i, best = j, dist
        seg = min(i, last - 1)
        ax, ay = xs[seg], ys[seg]
        ux, uy = xs[seg + 1] - ax, ys[seg + 1] - ay
        length = math.hypot(ux, uy)
        t = ((x - ax) * ux + (y - ay) * uy) / length
        if t < 0.0 and seg > 0:  # the nearest vertex ends the previous segment
            seg -= 1
            ax, ay = xs[seg], ys[seg]
            ux, uy = xs[seg + 1] - ax, ys[seg + 1] - ay
            length = math.hypot(ux, uy)
            t = ((x - ax) * ux + (y - ay) * uy) / length
        d = (ux * (y - ay) - uy * (x - ax)) / length
        return seg, seg * SPACING_M + min(max(t, 0.0), length), d

    def nearest_index(self, x: float, y: float) -> int:
        """Global nearest vertex, for a first fix without a hint."""
        return int(np.argmin((self.xy[:, 0] - x) ** 2 + (self.xy[:, 1] - y) ** 2))

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised (s, d, beyond) of many points; see ``polyline.project``."""
        return project(self.xy, self.s, points)


def route_path(road_map: RoadMap, lane_ids: tuple[int, ...], lane_change_m: float = LANE_CHANGE_M) -> RoutePath:
    lanes = road_map.lanes
    points: list[np.ndarray] = []
    limits: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    shifts: list[np.ndarray] = []
    shift = 0.0
    for k, lane_id in enumerate(lane_ids):
        lane = lanes[lane_id]
        line = lane.centerline
        local_shift = np.full(len(line), shift)
        next_id = lane_ids[k + 1] if k + 1 < len(lane_ids) else None
        if next_id is not None and next_id not in lane.successors:
            neighbour = next(
                (n for n in (lane.left, lane.right) if n is not None and next_id in lanes[n].successors), None
            )
            if neighbour is None:
                raise ValueError(f"route {lane_ids}: lane {next_id} neither follows lane {lane_id} nor its neighbours")
            s_line = arc_lengths(line)
            start = s_line[-1] - min(lane_change_m, 0.9 * s_line[-1])
            w = smoothstep((s_line - start) / (s_line[-1] - start))[:, None]
            line = (1.0 - w) * line + w * lanes[neighbour].centerline
            sign = 1.0 if neighbour == lane.left else -1.0
            local_shift = shift + sign * lane.width_m * w[:, 0]
            shift += sign * lane.width_m
        if points and np.hypot(*(line[0] - points[-1][-1])) < 1e-6:
            line, local_shift = line[1:], local_shift[1:]
        points.append(line)
        shifts.append(local_shift)
        limits.append(np.full(len(line), lane.speed_limit_mps))
        ids.append(np.full(len(line), lane_id))
    raw = np.concatenate(points)
    xy = resample(raw)
    s_raw, s_new = arc_lengths(raw), arc_lengths(xy)
    source = np.clip(np.searchsorted(s_raw, s_new, side="right") - 1, 0, len(raw) - 1)
    lane_id = np.concatenate(ids)[source]
    in_junction = np.array([lanes[int(i)].in_junction for i in lane_id])
    return RoutePath(
        xy, np.concatenate(limits)[source], lane_id, np.interp(s_new, s_raw, np.concatenate(shifts)), in_junction
    )
