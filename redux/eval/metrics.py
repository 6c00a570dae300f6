"""The per-timestep metrics of specs/metrics.md for one rollout, and how each aggregates over time.

A rollout's metrics are a small table: one (T,) float array per metric name, NaN
where a metric has no value at a step (min_ade and plan_deviation exist only at
drive calls), plus the time aggregation of each name. Our simulator's rollouts and
Alpasim's ``timestep_metrics`` (see ``alpasim.py``) both become this table, and
``aggregation.py`` / ``summary.py`` score either the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from redux.eval.collision import collision_metrics
from redux.eval.footprint import box_centres, ego_polygons
from redux.eval.path import dist_to_gt_trajectory, dist_traveled_m, polyline_length, progress
from redux.eval.plans import MIN_ADE_HORIZONS_S, DriveCall, min_ade_name, plan_metrics
from redux.eval.road import RoadGeometry, offroad, wrong_lane


class TimeAggregation(IntEnum):
    """Alpasim's TimeAggregation enum (same numbering, so values cross the wire as is)."""

    UNSPECIFIED = 0
    MEAN = 1
    MEDIAN = 2
    MAX = 3
    MIN = 4
    LAST = 5


TIME_AGGREGATION: dict[str, TimeAggregation] = {
    "collision_front": TimeAggregation.MAX,
    "collision_rear": TimeAggregation.MAX,
    "collision_lateral": TimeAggregation.MAX,
    "collision_any": TimeAggregation.MAX,
    "collision_at_fault": TimeAggregation.MAX,
    "offroad": TimeAggregation.MAX,
    "wrong_lane": TimeAggregation.MAX,
    "min_distance_to_obstacle_m": TimeAggregation.MIN,
    "close_encounter": TimeAggregation.MAX,  # OURS
    "progress": TimeAggregation.LAST,
    "dist_to_gt_trajectory": TimeAggregation.MAX,
    "dist_traveled_m": TimeAggregation.LAST,
    "gt_dist_traveled_m": TimeAggregation.LAST,  # recorded path length, for the driving score's short-path rule
    **{min_ade_name(h): TimeAggregation.MEAN for h in MIN_ADE_HORIZONS_S},
    "plan_deviation": TimeAggregation.MEAN,
    "eval_relevant": TimeAggregation.MAX,
    # added by aggregation.with_incidents
    "offroad_or_collision": TimeAggregation.MAX,
    "offroad_or_collision_at_fault": TimeAggregation.MAX,
}


@dataclass
class TimestepMetrics:
    """One rollout's per-timestep metrics."""

    timestamps_us: np.ndarray  # (T,) int64, increasing
    values: dict[str, np.ndarray]  # name → (T,) float64; NaN: no value at that step
    aggregation: dict[str, TimeAggregation]  # name → how it aggregates over time

    def __len__(self) -> int:
        return len(self.timestamps_us)

    def select(self, steps: np.ndarray | slice) -> TimestepMetrics:
        """The same table restricted to some steps (a slice or a boolean/index array)."""
        return TimestepMetrics(
            self.timestamps_us[steps], {name: v[steps] for name, v in self.values.items()}, dict(self.aggregation)
        )


def rollout_timestep_metrics(
    *,
    timestamps_us: np.ndarray,
    ego_rig_poses: np.ndarray,
    ego_length: float,
    ego_width: float,
    rear_axle_to_centre: float,
    actor_boxes: np.ndarray,
    actor_valid: np.ndarray,
    road: RoadGeometry,
    recorded_timestamps_us: np.ndarray,
    recorded_path: np.ndarray,
    drive_calls: list[DriveCall],
    eval_relevant: np.ndarray,
) -> TimestepMetrics:
    """Every metric of the metrics.md table for one rollout of T steps.

    Args:
        timestamps_us: (T,) simulation times.
        ego_rig_poses: (T, 3) x, y, yaw of the ego rig (rear-axle centre), world frame.
        ego_length, ego_width, rear_axle_to_centre: the ego box and where its centre
            sits ahead of the rig origin.
        actor_boxes: (A, T, 5) x, y (box centre), yaw, length, width; actor_valid (A, T).
        road: lanes and road edges.
        recorded_timestamps_us, recorded_path: (M,), (M, 2) the recorded drive's box
            centres (``footprint.box_centres`` of its rig poses).
        drive_calls: the policy's plans, world-frame box-centre positions.
        eval_relevant: (T,) 1 once the policy has control (after the warm-up replay).
    """
    timestamps_us = np.asarray(timestamps_us, dtype=np.int64)
    ego_rig_poses = np.asarray(ego_rig_poses, dtype=np.float64).reshape(-1, 3)
    steps = len(timestamps_us)
    centres = box_centres(ego_rig_poses, rear_axle_to_centre)
    footprints = ego_polygons(ego_rig_poses, ego_length, ego_width, rear_axle_to_centre)

    values = collision_metrics(ego_rig_poses, ego_length, ego_width, rear_axle_to_centre, actor_boxes, actor_valid)
    values["offroad"] = offroad(footprints, road).astype(np.float64)
    values["wrong_lane"] = wrong_lane(centres, ego_rig_poses[:, 2], road).astype(np.float64)
    values["progress"] = progress(centres, recorded_path)
    values["dist_to_gt_trajectory"] = dist_to_gt_trajectory(centres, recorded_path)
    values["dist_traveled_m"] = dist_traveled_m(centres)
    values["gt_dist_traveled_m"] = np.full(steps, polyline_length(recorded_path))
    values.update(plan_metrics(drive_calls, timestamps_us, recorded_timestamps_us, recorded_path))
    values["eval_relevant"] = np.asarray(eval_relevant, dtype=np.float64).reshape(steps)
    return TimestepMetrics(timestamps_us, values, {name: TIME_AGGREGATION[name] for name in values})
