"""Contacts between the ego and other actors (Alpasim's CollisionScorer, plus our close encounter).

A contact is classified by where it touches the ego: the front bumper cap →
front, else the rear bumper cap → rear, else lateral (see
``footprint.bumper_polygons``). Being rear-ended is not the ego's fault, so
collision_at_fault = front ∨ lateral.

With several actors in contact at one step, each kind that occurs is flagged
(Alpasim's loop keeps only the last actor's kind, an accident of its code).
"""

from __future__ import annotations

import numpy as np

from redux.eval.footprint import ego_bumpers, ego_polygons, rounded_box_polygons
from redux.eval.polygons import (
    bounding_box_gap,
    bounding_boxes,
    convex_polygon_distance,
    convex_polygons_intersect,
)

CLOSE_ENCOUNTER_M = 0.5  # OURS: no Alpasim definition exists


def collision_metrics(
    ego_rig_poses: np.ndarray,
    ego_length: float,
    ego_width: float,
    rear_axle_to_centre: float,
    actor_boxes: np.ndarray,
    actor_valid: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per-timestep contact metrics for one rollout.

    Args:
        ego_rig_poses: (T, 3) x, y, yaw of the ego rig (rear-axle centre).
        actor_boxes: (A, T, 5) x, y, yaw, length, width of the other actors; x, y
            is the box centre.
        actor_valid: (A, T) whether actor a exists at step t.

    Returns (T,) float arrays: collision_front, collision_rear, collision_lateral,
    collision_any, collision_at_fault (0/1); min_distance_to_obstacle_m (inf with
    no actor present); close_encounter (0/1).

    close_encounter is OURS (the Alpamayo-R1 paper reports a close-encounter rate
    but Alpasim publishes no definition): the smallest footprint distance to any
    actor is below 0.5 m — which includes every contact, where it is 0.
    """
    ego_rig_poses = np.asarray(ego_rig_poses, dtype=np.float64).reshape(-1, 3)
    actor_boxes = np.asarray(actor_boxes, dtype=np.float64).reshape(-1, len(ego_rig_poses), 5)
    actor_valid = np.asarray(actor_valid, dtype=bool).reshape(actor_boxes.shape[:2])
    steps = len(ego_rig_poses)

    ego = ego_polygons(ego_rig_poses, ego_length, ego_width, rear_axle_to_centre)
    front_cap, rear_cap = ego_bumpers(ego_rig_poses, ego_length, ego_width, rear_axle_to_centre)

    actor_index, t = np.nonzero(actor_valid)  # one row per (actor, step) pair that exists
    boxes = actor_boxes[actor_index, t]
    others = rounded_box_polygons(boxes[:, :2], boxes[:, 2], boxes[:, 3], boxes[:, 4])

    # Broad phase: the nearest actor's centre bounds the ego's distance to the nearest
    # footprint from above; an actor whose bounding box is farther than that at the
    # same step is neither the nearest nor in contact, so its exact distance is skipped.
    centre_distance = np.linalg.norm(ego[t].mean(axis=1) - others.mean(axis=1), axis=1)
    nearest_centre = np.full(steps, np.inf)
    np.minimum.at(nearest_centre, t, centre_distance)
    gap_lower_bound = bounding_box_gap(bounding_boxes(ego[t]), bounding_boxes(others))
    candidate = np.nonzero(gap_lower_bound <= nearest_centre[t])[0]
    distance = np.full(len(t), np.inf)
    distance[candidate] = convex_polygon_distance(ego[t[candidate]], others[candidate])
    contact = distance == 0.0

    front = np.zeros(len(t), dtype=bool)
    rear = np.zeros(len(t), dtype=bool)
    hit = np.nonzero(contact)[0]
    if len(hit):
        front[hit] = convex_polygons_intersect(front_cap[t[hit]], others[hit])
        rear[hit] = ~front[hit] & convex_polygons_intersect(rear_cap[t[hit]], others[hit])
    lateral = contact & ~front & ~rear

    def any_at_step(pair_flags: np.ndarray) -> np.ndarray:
        return np.bincount(t, weights=pair_flags, minlength=steps) > 0

    min_distance = np.full(steps, np.inf)
    np.minimum.at(min_distance, t, distance)
    out = {
        "collision_front": any_at_step(front),
        "collision_rear": any_at_step(rear),
        "collision_lateral": any_at_step(lateral),
    }
    out["collision_any"] = out["collision_front"] | out["collision_rear"] | out["collision_lateral"]
    out["collision_at_fault"] = out["collision_front"] | out["collision_lateral"]
    out["close_encounter"] = min_distance < CLOSE_ENCOUNTER_M
    out = {name: flags.astype(np.float64) for name, flags in out.items()}
    out["min_distance_to_obstacle_m"] = min_distance
    return out
