"""A single-lane road whose centreline is one constant-curvature arc.

Straight roads are the zero-curvature case. Frenet coordinates (arc length s,
lateral offset d, positive left) are closed-form on an arc, which keeps the
simulator exact and fast without polyline searches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_STRAIGHT = 1e-9


@dataclass(frozen=True)
class ArcRoad:
    curvature: float  # 1/m, positive turns left
    length_m: float
    lane_width_m: float
    shoulder_m: float

    @property
    def half_width_m(self) -> float:
        """Distance from the centreline to the road edge."""
        return 0.5 * self.lane_width_m + self.shoulder_m

    def point(self, s: np.ndarray) -> np.ndarray:
        """Centreline (x, y, heading) at arc length s (any shape → shape + (3,))."""
        s = np.asarray(s, dtype=np.float64)
        k = self.curvature
        if abs(k) < _STRAIGHT:
            return np.stack([s, np.zeros_like(s), np.zeros_like(s)], axis=-1)
        theta = k * s
        return np.stack([np.sin(theta) / k, (1.0 - np.cos(theta)) / k, theta], axis=-1)

    def to_frenet(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(s, d) of world points; valid while the arc turns less than π."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        k = self.curvature
        if abs(k) < _STRAIGHT:
            return x, y
        theta = np.arctan2(x * k, 1.0 - y * k)
        radius = np.hypot(x, y - 1.0 / k)
        return theta / k, np.sign(k) * (1.0 / abs(k) - radius)

    # Scalar twins of point/to_frenet for per-step control loops, where numpy's
    # per-call overhead costs more than the arithmetic (the expert runs 64 steps per label).
    def point_at(self, s: float) -> tuple[float, float, float]:
        k = self.curvature
        if abs(k) < _STRAIGHT:
            return s, 0.0, 0.0
        theta = k * s
        return math.sin(theta) / k, (1.0 - math.cos(theta)) / k, theta

    def frenet_of(self, x: float, y: float) -> tuple[float, float]:
        k = self.curvature
        if abs(k) < _STRAIGHT:
            return x, y
        theta = math.atan2(x * k, 1.0 - y * k)
        radius = math.hypot(x, y - 1.0 / k)
        return theta / k, math.copysign(1.0, k) * (1.0 / abs(k) - radius)

    def to_world(self, s: np.ndarray, d: np.ndarray) -> np.ndarray:
        """World (x, y, heading) of a Frenet point."""
        centre = self.point(s)
        heading = centre[..., 2]
        d = np.asarray(d, dtype=np.float64)
        x = centre[..., 0] - d * np.sin(heading)
        y = centre[..., 1] + d * np.cos(heading)
        return np.stack([x, y, heading], axis=-1)
