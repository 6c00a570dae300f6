"""Oriented boxes: footprints of vehicles and their overlap."""

from __future__ import annotations

import numpy as np


def box_corners(cx: float, cy: float, yaw: float, length: float, width: float) -> np.ndarray:
    """Corners (4, 2) of a box centred at (cx, cy), counter-clockwise from front-left."""
    c, s = np.cos(yaw), np.sin(yaw)
    half = np.array([[length, width], [-length, width], [-length, -width], [length, -width]]) * 0.5
    rot = np.array([[c, -s], [s, c]])
    return half @ rot.T + np.array([cx, cy])


def boxes_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Separating-axis test for two convex quadrilaterals given as corners (4, 2)."""
    for poly in (a, b):
        edges = np.roll(poly, -1, axis=0) - poly
        normals = np.stack([-edges[:, 1], edges[:, 0]], axis=1)
        proj_a = a @ normals.T
        proj_b = b @ normals.T
        if np.any(proj_a.max(axis=0) < proj_b.min(axis=0)) or np.any(proj_b.max(axis=0) < proj_a.min(axis=0)):
            return False
    return True
