"""Oriented boxes in batches: corners and overlap (separating axes), for logs of many actors."""

from __future__ import annotations

import numpy as np

_SIGNS = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])  # front-left, counter-clockwise


def box_corners(centre_xy: np.ndarray, yaw: np.ndarray, length: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Corners (..., 4, 2) of boxes with centres (..., 2), yaws (...) and sizes broadcastable to yaw."""
    half = 0.5 * np.stack(np.broadcast_arrays(length, width), axis=-1)[..., None, :] * _SIGNS  # (..., 4, 2)
    c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    x = half[..., 0] * c - half[..., 1] * s
    y = half[..., 0] * s + half[..., 1] * c
    return np.stack([x, y], axis=-1) + np.asarray(centre_xy)[..., None, :]


def boxes_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(...,) bool: do the boxes a (..., 4, 2) and b (..., 4, 2) (broadcast) overlap? Touching counts."""
    a, b = np.broadcast_arrays(a, b)
    axes = np.concatenate([a[..., 1:3, :] - a[..., 0:2, :], b[..., 1:3, :] - b[..., 0:2, :]], axis=-2)  # (..., 4, 2)
    proj_a = np.einsum("...kc,...vc->...kv", axes, a)
    proj_b = np.einsum("...kc,...vc->...kv", axes, b)
    separated = (proj_a.max(-1) < proj_b.min(-1)) | (proj_b.max(-1) < proj_a.min(-1))
    return ~separated.any(-1)
