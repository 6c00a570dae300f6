"""Score a minisim rollout with redux.eval, the functions that also score Alpasim.

The warm-up replay is part of the rollout (eval_relevant = 0 there), as in an
Alpasim log, so distance travelled and the aggregation's warm-up removal behave
the same on both.
"""

from __future__ import annotations

import numpy as np

from redux.eval.footprint import box_centres
from redux.eval.metrics import TimestepMetrics, rollout_timestep_metrics
from redux.eval.plans import DriveCall
from redux.eval.road import RoadGeometry
from redux.policy.action_space import DT_S
from redux.sim_bridge.minisim.scene import EGO_LENGTH_M, EGO_REAR_AXLE_TO_CENTRE_M, EGO_WIDTH_M, Scene

STEP_US = int(round(DT_S * 1e6))


def road_geometry(scene: Scene) -> RoadGeometry:
    lanes = list(scene.road_map.lanes.values())
    return RoadGeometry(
        tuple(lane.centerline for lane in lanes), tuple(lane.width_m for lane in lanes), scene.road_map.road_edges
    )


def score_rollout(scene: Scene, start_step: int, ego: np.ndarray, plans: list[np.ndarray],
                  plan_steps: list[int], samples: list[np.ndarray] | None = None,
                  episode_steps: int | None = None, actor_states: np.ndarray | None = None) -> TimestepMetrics:
    """Per-timestep metrics of a rollout that took over at ``start_step``.

    ``ego`` (S, 4) world rig states from the hand-over on; ``plans`` the driven
    plans (64, 3) world poses issued at ``plan_steps``; ``samples`` the K sampled
    plans (K, 64, 3) of each call (minADE), the driven plan alone if None;
    ``actor_states`` (S, A, 4) where the actors were from the hand-over on, when they
    did not replay their log.
    """
    warmup = scene.ego[:start_step, :3]
    rig = np.concatenate([warmup, ego[:, :3]], axis=0)
    steps = len(rig)
    timestamps = np.arange(steps, dtype=np.int64) * STEP_US
    actors = scene.actors
    where = actors.states[:, :steps, :3]
    if actor_states is not None:
        where = np.concatenate([actors.states[:, :start_step, :3], np.swapaxes(actor_states, 0, 1)[:, :, :3]], axis=1)
    boxes = np.concatenate([where, np.broadcast_to(actors.size[:, None, :], (actors.count, steps, 2))], axis=2)
    recorded_end = len(scene.ego) if episode_steps is None else min(start_step + episode_steps + 1, len(scene.ego))
    recorded = box_centres(scene.ego[:recorded_end, :3], EGO_REAR_AXLE_TO_CENTRE_M)
    calls = []
    for k, (step, plan) in enumerate(zip(plan_steps, plans)):
        sampled = plan[None] if samples is None else samples[k]
        calls.append(
            DriveCall(
                time_us=step * STEP_US,
                plan_timestamps_us=(step + 1 + np.arange(len(plan))) * STEP_US,
                sampled_xy=box_centres(sampled, EGO_REAR_AXLE_TO_CENTRE_M),
                selected_xy=box_centres(plan, EGO_REAR_AXLE_TO_CENTRE_M),
            )
        )
    return rollout_timestep_metrics(
        timestamps_us=timestamps,
        ego_rig_poses=rig,
        ego_length=EGO_LENGTH_M,
        ego_width=EGO_WIDTH_M,
        rear_axle_to_centre=EGO_REAR_AXLE_TO_CENTRE_M,
        actor_boxes=boxes,
        actor_valid=actors.valid[:, :steps],
        road=road_geometry(scene),
        recorded_timestamps_us=np.arange(recorded_end, dtype=np.int64) * STEP_US,
        recorded_path=recorded,
        drive_calls=calls,
        eval_relevant=(np.arange(steps) >= start_step).astype(np.float64),
    )
