"""Actor footprints as Alpasim's evaluator draws them: shrunk boxes with rounded corners.

Alpasim scores contacts between *rounded* boxes: each box (length × width, in its
own frame) is shrunk by 2 % and its corners are rounded with radius
``0.5 · min(length', width') / 2`` (primes: after shrinking), which is what
``box.buffer(-r).buffer(r)`` gives in shapely. Cutting the corners keeps two cars
that pass each other diagonally at a hair's breadth from counting as a crash.

We approximate each quarter-circle corner by ``arc_vertices`` points ON the arc
(an inscribed polygon, like shapely's own buffer), so the polygon is convex and lies
inside the true shape. Its boundary is at most

    r · (1 − cos(π / (4 · (arc_vertices − 1))))

inside the true boundary (see :func:`arc_error_bound`): with the default 6 vertices
per corner that is 1.23 % of r, 5.7 mm for a 1.9 m wide car (r ≈ 0.47 m). Contacts
closer than that to grazing may be missed; Alpasim's own 16-segment arcs err by
0.6 mm the same way.

Vertex order is counter-clockwise, starting at the front-right corner arc, so the
first ``2 · arc_vertices`` vertices are the front corner arcs and the next
``2 · arc_vertices`` the rear ones. The *bumpers* (see :func:`bumper_polygons`) are
the polygon's front and rear caps of depth r: the straight bumper edge plus its two
corner arcs, closed by a chord across the car.
"""

from __future__ import annotations

import numpy as np

SHRINK_FACTOR = 0.02  # Alpasim's vehicle_shrink_factor
CORNER_ROUNDNESS = 0.5  # Alpasim's vehicle_corner_roundness: r = roundness · min side / 2
ARC_VERTICES = 6  # vertices per quarter-circle corner, both arc ends included


def arc_error_bound(radius: float | np.ndarray, arc_vertices: int = ARC_VERTICES) -> float | np.ndarray:
    """Largest gap between the polygonal corner and the true circular arc (metres).

    A chord spanning angle θ sits r·(1 − cos(θ/2)) inside its arc at its midpoint;
    each quarter circle is split into ``arc_vertices − 1`` equal chords.
    """
    return radius * (1.0 - np.cos(np.pi / (4 * (arc_vertices - 1))))


def shrunk_size_and_radius(length: np.ndarray, width: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(length', width', corner radius) of the rounded box Alpasim scores with."""
    length = np.asarray(length, dtype=np.float64) * (1.0 - SHRINK_FACTOR)
    width = np.asarray(width, dtype=np.float64) * (1.0 - SHRINK_FACTOR)
    radius = CORNER_ROUNDNESS * np.minimum(length, width) / 2
    return length, width, radius


def _corner_arcs_local(length: np.ndarray, width: np.ndarray, arc_vertices: int) -> np.ndarray:
    """Rounded-box vertices (N, 4·arc_vertices, 2) in each box's own frame (x forward, y left)."""
    length, width, radius = shrunk_size_and_radius(length, width)
    inner_x = (length / 2 - radius)[:, None]  # corner-circle centres sit at (±inner_x, ±inner_y)
    inner_y = (width / 2 - radius)[:, None]
    quarter = np.linspace(0.0, np.pi / 2, arc_vertices)
    # corners in counter-clockwise order: front-right, front-left, rear-left, rear-right
    centre_signs = ((1, -1), (1, 1), (-1, 1), (-1, -1))
    start_angles = (-np.pi / 2, 0.0, np.pi / 2, np.pi)
    arcs = []
    for (sx, sy), start in zip(centre_signs, start_angles):
        angles = start + quarter
        x = sx * inner_x + radius[:, None] * np.cos(angles)
        y = sy * inner_y + radius[:, None] * np.sin(angles)
        arcs.append(np.stack([x, y], axis=-1))
    return np.concatenate(arcs, axis=1)


def _place(local: np.ndarray, centre_xy: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Rotate (N, V, 2) box-frame points by yaw (N,) and move them to centre_xy (N, 2)."""
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x = c * local[..., 0] - s * local[..., 1] + centre_xy[:, None, 0]
    y = s * local[..., 0] + c * local[..., 1] + centre_xy[:, None, 1]
    return np.stack([x, y], axis=-1)


def _as_batch(centre_xy, yaw, length, width):
    """Centres as (N, 2) and yaw, length, width broadcast to (N,)."""
    centre_xy = np.asarray(centre_xy, dtype=np.float64).reshape(-1, 2)
    n = len(centre_xy)
    yaw, length, width = (np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for v in (yaw, length, width))
    return centre_xy, yaw, length, width


def rounded_box_polygons(
    centre_xy: np.ndarray, yaw: np.ndarray, length: np.ndarray, width: np.ndarray, arc_vertices: int = ARC_VERTICES
) -> np.ndarray:
    """Footprint polygons (N, 4·arc_vertices, 2) of N boxes given by centre (N, 2), yaw, length, width.

    ``yaw``, ``length`` and ``width`` broadcast to (N,). Sizes are the nominal box
    sizes; the 2 % shrink and the corner rounding are applied here.
    """
    centre_xy, yaw, length, width = _as_batch(centre_xy, yaw, length, width)
    return _place(_corner_arcs_local(length, width, arc_vertices), centre_xy, yaw)


def bumper_polygons(
    centre_xy: np.ndarray, yaw: np.ndarray, length: np.ndarray, width: np.ndarray, arc_vertices: int = ARC_VERTICES
) -> tuple[np.ndarray, np.ndarray]:
    """Front and rear bumper caps, each (N, 2·arc_vertices, 2), of the boxes' footprints.

    Alpasim's front bumper is the box's front edge buffered by r and clipped to the
    footprint; inside the footprint that is exactly the cap in front of the chord
    x = length'/2 − r, i.e. the straight front edge plus its two corner arcs. Being
    regions rather than lines, the caps also classify a contact that has already
    pushed past the edge (a deep overlap between two 10 Hz steps).
    """
    centre_xy, yaw, length, width = _as_batch(centre_xy, yaw, length, width)
    local = _corner_arcs_local(length, width, arc_vertices)
    front = local[:, : 2 * arc_vertices]  # front-right then front-left arc: convex, chord closes it
    rear = local[:, 2 * arc_vertices :]
    return _place(front, centre_xy, yaw), _place(rear, centre_xy, yaw)


def box_centres(rig_poses: np.ndarray, rear_axle_to_centre: float) -> np.ndarray:
    """Box centres (…, 2) of a vehicle whose rig poses (…, 3: x, y, yaw) are at the rear axle.

    The rig origin is the rear-axle centre; the box centre lies
    ``rear_axle_to_centre`` metres ahead of it along the heading.
    """
    rig_poses = np.asarray(rig_poses, dtype=np.float64)
    yaw = rig_poses[..., 2]
    offset = rear_axle_to_centre * np.stack([np.cos(yaw), np.sin(yaw)], axis=-1)
    return rig_poses[..., :2] + offset


def ego_polygons(
    rig_poses: np.ndarray, length: float, width: float, rear_axle_to_centre: float, arc_vertices: int = ARC_VERTICES
) -> np.ndarray:
    """Ego footprints (T, V, 2) from rig poses (T, 3)."""
    rig_poses = np.asarray(rig_poses, dtype=np.float64).reshape(-1, 3)
    return rounded_box_polygons(
        box_centres(rig_poses, rear_axle_to_centre), rig_poses[:, 2], length, width, arc_vertices
    )


def ego_bumpers(
    rig_poses: np.ndarray, length: float, width: float, rear_axle_to_centre: float, arc_vertices: int = ARC_VERTICES
) -> tuple[np.ndarray, np.ndarray]:
    """Front and rear bumper caps (T, 2·arc_vertices, 2) of the ego from rig poses (T, 3)."""
    rig_poses = np.asarray(rig_poses, dtype=np.float64).reshape(-1, 3)
    return bumper_polygons(box_centres(rig_poses, rear_axle_to_centre), rig_poses[:, 2], length, width, arc_vertices)
