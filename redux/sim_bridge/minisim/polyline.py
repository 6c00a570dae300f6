"""Polylines: arc length, uniform resampling, offsetting, and projecting points onto them.

Every centre line in minisim is a polyline sampled about every 0.5 m. Projection
is vectorised coarse-to-fine (nearest coarse vertex, then the segments around it)
because scene generation projects thousands of actor positions per path and a
dense all-pairs search would cost ~10x more.
"""

from __future__ import annotations

import numpy as np

SPACING_M = 0.5
_COARSE_STRIDE = 10  # vertices per coarse cell: 5 m at 0.5 m spacing


def arc_lengths(points: np.ndarray) -> np.ndarray:
    """Cumulative arc length (N,) at each vertex of ``points`` (N, 2)."""
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])


def resample(points: np.ndarray, spacing: float = SPACING_M) -> np.ndarray:
    """Vertices exactly ``spacing`` apart along the polyline (the last segment may be shorter)."""
    keep = np.concatenate([[True], np.hypot(*np.diff(points, axis=0).T) > 1e-9])
    points = points[keep]
    s = arc_lengths(points)
    grid = np.arange(int(s[-1] / spacing + 1e-9) + 1) * spacing
    if s[-1] - grid[-1] > 1e-6:
        grid = np.append(grid, s[-1])
    return np.stack([np.interp(grid, s, points[:, 0]), np.interp(grid, s, points[:, 1])], axis=1)


def headings(points: np.ndarray) -> np.ndarray:
    """Direction (N,) of travel at each vertex: central differences, one-sided at the ends."""
    tangent = np.gradient(points, axis=0)
    return np.arctan2(tangent[:, 1], tangent[:, 0])


def offset(points: np.ndarray, lateral_m: float | np.ndarray) -> np.ndarray:
    """The polyline shifted ``lateral_m`` to its left (negative: right), vertex by vertex.

    Vertex counts are preserved, so lanes offset from one reference line correspond
    vertex for vertex (a lane change blends two of them pointwise).
    """
    heading = headings(points)
    normal = np.stack([-np.sin(heading), np.cos(heading)], axis=1)
    return points + np.asarray(lateral_m, dtype=np.float64).reshape(-1, 1) * normal


def project(points: np.ndarray, cumulative: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, ...]:
    """Nearest point on the polyline for each query (M, 2).

    Returns arc length s (M,), signed lateral offset d (M,, positive left of the
    direction of travel) and ``beyond`` (M,) — True where the nearest point is an
    end vertex approached from outside, i.e. the query lies past the polyline's end.
    Good for queries within a few metres of the line; far queries get a nearby,
    not necessarily the nearest, segment (they are far from the line either way).
    """
    queries = np.asarray(queries, dtype=np.float64).reshape(-1, 2)
    n_seg = len(points) - 1
    coarse_idx = np.arange(0, len(points), _COARSE_STRIDE)
    coarse = points[coarse_idx]
    # |q - c|² up to the per-query constant |q|²: one matrix product instead of an (M, C, 2) temporary
    nearest = coarse_idx[np.argmin((coarse**2).sum(-1)[None] - 2.0 * queries @ coarse.T, axis=1)]
    window = np.arange(-_COARSE_STRIDE - 1, _COARSE_STRIDE + 1)
    seg = np.clip(nearest[:, None] + window[None], 0, n_seg - 1)  # (M, K)
    start_x, start_y = points[seg, 0], points[seg, 1]
    along_x, along_y = points[seg + 1, 0] - start_x, points[seg + 1, 1] - start_y
    length_sq = np.maximum(along_x * along_x + along_y * along_y, 1e-12)
    rel_x, rel_y = queries[:, 0:1] - start_x, queries[:, 1:2] - start_y
    t = (rel_x * along_x + rel_y * along_y) / length_sq
    t_clamped = np.clip(t, 0.0, 1.0)
    gap_x, gap_y = rel_x - t_clamped * along_x, rel_y - t_clamped * along_y
    best = np.argmin(gap_x * gap_x + gap_y * gap_y, axis=1)
    rows = np.arange(len(queries))
    seg, t, t_clamped = seg[rows, best], t[rows, best], t_clamped[rows, best]
    along_x, along_y, rel_x, rel_y = along_x[rows, best], along_y[rows, best], rel_x[rows, best], rel_y[rows, best]
    length = np.sqrt(length_sq[rows, best])
    s = cumulative[seg] + t_clamped * length
    d = (along_x * rel_y - along_y * rel_x) / length
    beyond = ((seg == 0) & (t < 0.0)) | ((seg == n_seg - 1) & (t > 1.0))
    return s, d, beyond


def points_in_lanes(lanes: list, points: np.ndarray, tolerance_m: float = 0.0) -> np.ndarray:
    """(M,) bool: does each point lie in the polygon of some lane (centre line ± width / 2)?"""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    inside = np.zeros(len(points), dtype=bool)
    for lane in lanes:
        line = lane.centerline
        reach = 0.5 * lane.width_m + tolerance_m
        lo, hi = line.min(axis=0) - reach, line.max(axis=0) + reach
        near = ~inside & np.all((points >= lo) & (points <= hi), axis=1)
        if not near.any():
            continue
        _, d, beyond = project(line, arc_lengths(line), points[near])
        inside[np.flatnonzero(near)[(np.abs(d) <= reach) & ~beyond]] = True
    return inside
