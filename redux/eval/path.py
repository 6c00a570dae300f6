"""How the ego's box centre relates to the recorded (expert) path, and how far it drove.

Alpasim measures these from the ego polygon's centroid — for a rounded box, its
centre — against the recorded drive's box-centre path, so callers pass box centres
(see ``footprint.box_centres``) for both.
"""

from __future__ import annotations

import numpy as np


def polyline_length(polyline: np.ndarray) -> float:
    """Arc length of a polyline (M, 2)."""
    return float(np.sum(np.linalg.norm(np.diff(np.asarray(polyline, dtype=np.float64), axis=0), axis=1)))


def project_onto_polyline(points: np.ndarray, polyline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arc length along the polyline (M, 2) of each point's (P, 2) nearest point, and the distance to it.

    Like shapely's ``LineString.project``/``distance``: a point beyond either end
    projects onto that end; of equally near segments the first wins.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    polyline = np.asarray(polyline, dtype=np.float64)
    if len(polyline) == 1:
        return np.zeros(len(points)), np.linalg.norm(points - polyline[0], axis=1)
    start, d = polyline[:-1], np.diff(polyline, axis=0)
    seg_len_sq = np.sum(d * d, axis=1)
    rel = points[:, None, :] - start[None]
    t = np.clip(np.sum(rel * d, axis=-1) / np.where(seg_len_sq > 0, seg_len_sq, 1.0), 0.0, 1.0)
    dist = np.linalg.norm(rel - t[..., None] * d, axis=-1)
    nearest = np.argmin(dist, axis=1)
    rows = np.arange(len(points))
    cumulative = np.concatenate([[0.0], np.cumsum(np.sqrt(seg_len_sq))])
    along = cumulative[nearest] + t[rows, nearest] * np.sqrt(seg_len_sq[nearest])
    return along, dist[rows, nearest]


def progress(centres: np.ndarray, recorded_path: np.ndarray) -> np.ndarray:
    """(T,) fraction of the recorded path (M, 2) covered by the projection of each box centre (T, 2).

    A recorded path of zero length counts as fully covered (1.0): there was nothing to drive.
    """
    total = polyline_length(recorded_path)
    if total == 0.0:
        return np.ones(len(np.atleast_2d(centres)))
    along, _ = project_onto_polyline(centres, recorded_path)
    return along / total


def dist_to_gt_trajectory(centres: np.ndarray, recorded_path: np.ndarray) -> np.ndarray:
    """(T,) distance from each box centre to the recorded path polyline."""
    return project_onto_polyline(centres, recorded_path)[1]


def dist_traveled_m(centres: np.ndarray) -> np.ndarray:
    """(T,) arc length of the box-centre path from the first given timestep up to each one.

    As in Alpasim this counts from the start of the rollout, warm-up replay
    included; after warm-up removal and truncation the LAST value is still the
    distance from the rollout's start.
    """
    steps = np.linalg.norm(np.diff(np.asarray(centres, dtype=np.float64), axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def interpolate_path(times: np.ndarray, path_times: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Positions (…, 2) on a timed path (M,)→(M, 2) at ``times``; NaN outside its time span."""
    times = np.asarray(times, dtype=np.float64)
    path_times = np.asarray(path_times, dtype=np.float64)
    path = np.asarray(path, dtype=np.float64)
    out = np.stack([np.interp(times, path_times, path[:, k]) for k in range(2)], axis=-1)
    outside = (times < path_times[0]) | (times > path_times[-1])
    out[outside] = np.nan
    return out
