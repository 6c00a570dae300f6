"""Ego-centric bird's-eye raster: drivable area, lane edges, other vehicles.

Forward is up; the ego's rear axle sits three quarters down the image, so the
policy sees three times more road ahead than behind.
"""

from __future__ import annotations

import numpy as np

from redux.sim_bridge.lane.road import ArcRoad
from redux.sim_bridge.lane.vehicles import LEAD_LENGTH_M, LEAD_WIDTH_M

LANE_MARK_HALF_WIDTH_M = 0.3


class BevRenderer:
    def __init__(self, pixels: int, metres_per_pixel: float):
        rows, cols = np.meshgrid(np.arange(pixels), np.arange(pixels), indexing="ij")
        ego_row, ego_col = 0.75 * pixels, 0.5 * pixels
        # pixel centres in the rig frame: x forward (up), y left
        self._x = (ego_row - rows - 0.5) * metres_per_pixel
        self._y = (ego_col - cols - 0.5) * metres_per_pixel
        self.pixels = pixels

    def render(self, road: ArcRoad, ego_pose: np.ndarray, lead_pose: np.ndarray) -> np.ndarray:
        """(3, H, W) uint8 raster for an ego at world pose (x, y, yaw)."""
        ex, ey, eyaw = ego_pose
        c, s = np.cos(eyaw), np.sin(eyaw)
        wx = ex + c * self._x - s * self._y
        wy = ey + s * self._x + c * self._y
        _, d = road.to_frenet(wx, wy)
        drivable = np.abs(d) <= road.half_width_m
        lane_edge = np.abs(np.abs(d) - 0.5 * road.lane_width_m) <= LANE_MARK_HALF_WIDTH_M

        lx, ly, lyaw = lead_pose
        dx, dy = wx - lx, wy - ly
        along = np.cos(lyaw) * dx + np.sin(lyaw) * dy
        across = -np.sin(lyaw) * dx + np.cos(lyaw) * dy
        vehicle = (np.abs(along) <= 0.5 * LEAD_LENGTH_M) & (np.abs(across) <= 0.5 * LEAD_WIDTH_M)
        return (np.stack([drivable, lane_edge, vehicle]) * np.uint8(255)).astype(np.uint8)
