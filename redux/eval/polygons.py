"""Convex polygons in batches: intersection, distance, and distance to polylines.

Every function takes N *pairs* at once — polygons as (N, V, 2) vertex arrays in
either winding order, closed implicitly (last vertex joins the first) — because the
metrics ask the same question for every actor at every timestep, and a Python loop
over pairs would dominate an evaluation run. A segment is the 2-vertex polygon
(p0, p1), so segments go through the same code.

Contact is closed: polygons that merely touch intersect, and their distance is 0.
"""

from __future__ import annotations

import numpy as np

CHUNK_PAIRS = 2048  # pairs per batch: bounds the (pairs, V, V) temporaries to a few MB


def _edge_normals(polygons: np.ndarray) -> np.ndarray:
    edges = np.roll(polygons, -1, axis=1) - polygons
    return np.stack([-edges[..., 1], edges[..., 0]], axis=-1)


def convex_polygons_intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) bool: does convex polygon a[i] (N, Va, 2) intersect b[i] (N, Vb, 2)? Touching counts.

    Separating-axis theorem: two convex sets are disjoint iff their projections are
    disjoint on the normal of some edge of one of them.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    axes = np.concatenate([_edge_normals(a), _edge_normals(b)], axis=1)  # (N, Va+Vb, 2)
    proj_a = np.einsum("nkd,nvd->nkv", axes, a)
    proj_b = np.einsum("nkd,nvd->nkv", axes, b)
    separated = (proj_a.max(axis=2) < proj_b.min(axis=2)) | (proj_b.max(axis=2) < proj_a.min(axis=2))
    return ~separated.any(axis=1)


def points_to_segments_distance(points: np.ndarray, seg_start: np.ndarray, seg_end: np.ndarray) -> np.ndarray:
    """Distance from each point (…, P, 2) to each segment (…, S, 2)→(…, S, 2); returns (…, P, S)."""
    d = (seg_end - seg_start)[..., None, :, :]
    rel = points[..., :, None, :] - seg_start[..., None, :, :]
    length_sq = np.sum(d * d, axis=-1)
    t = np.clip(np.sum(rel * d, axis=-1) / np.where(length_sq > 0, length_sq, 1.0), 0.0, 1.0)
    return np.linalg.norm(rel - t[..., None] * d, axis=-1)


def _vertex_edge_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) smallest distance from a vertex of a to an edge of b."""
    return points_to_segments_distance(a, b, np.roll(b, -1, axis=1)).min(axis=(1, 2))


def convex_polygon_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) Euclidean distance between convex polygons a[i] and b[i]; 0 when they touch or overlap.

    For disjoint convex polygons the closest pair of points always includes a
    vertex of one of them, so the distance is the smallest vertex-to-edge distance
    taken both ways.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.empty(len(a))
    for lo in range(0, len(a), CHUNK_PAIRS):
        pa, pb = a[lo : lo + CHUNK_PAIRS], b[lo : lo + CHUNK_PAIRS]
        gap = np.minimum(_vertex_edge_distance(pa, pb), _vertex_edge_distance(pb, pa))
        out[lo : lo + CHUNK_PAIRS] = np.where(convex_polygons_intersect(pa, pb), 0.0, gap)
    return out


def bounding_boxes(shapes: np.ndarray) -> np.ndarray:
    """(…, 4) axis-aligned bounds (xmin, ymin, xmax, ymax) of point sets (…, V, 2)."""
    return np.concatenate([shapes.min(axis=-2), shapes.max(axis=-2)], axis=-1)


def bounding_box_gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Lower bound on the distance between shapes with bounds a (…, 4) and b (…, 4)."""
    dx = np.maximum(0.0, np.maximum(a[..., 0] - b[..., 2], b[..., 0] - a[..., 2]))
    dy = np.maximum(0.0, np.maximum(a[..., 1] - b[..., 3], b[..., 1] - a[..., 3]))
    return np.hypot(dx, dy)


def polygon_polyline_distance(polygons: np.ndarray, polyline: np.ndarray, max_distance: float = np.inf) -> np.ndarray:
    """(N,) distance from each convex polygon (N, V, 2) to one polyline (M, 2); 0 where they touch.

    Segments whose bounding box is farther than ``max_distance`` from a polygon's
    bounding box are skipped (a broad phase for long road edges), so distances
    beyond ``max_distance`` may read as inf.
    """
    polygons = np.asarray(polygons, dtype=np.float64)
    polyline = np.asarray(polyline, dtype=np.float64)
    out = np.full(len(polygons), np.inf)
    if len(polyline) < 2 or len(polygons) == 0:
        return out
    segments = np.stack([polyline[:-1], polyline[1:]], axis=1)  # (S, 2, 2)
    near = bounding_box_gap(bounding_boxes(polygons)[:, None], bounding_boxes(segments)[None]) <= max_distance
    poly_index, seg_index = np.nonzero(near)
    if len(poly_index):
        np.minimum.at(out, poly_index, convex_polygon_distance(polygons[poly_index], segments[seg_index]))
    return out
