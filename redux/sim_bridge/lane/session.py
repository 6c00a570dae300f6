"""Closed-loop session on a lane scene: the ego tracks the policy's plan.

The recorded drive is replayed during the warm-up (as Alpasim does); then each
``step`` takes a plan, applies its control after the configured actuator delay
on a unicycle, advances the lead along its recorded track, and scores the step.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from redux.config import SimConfig
from redux.eval.geometry import box_corners, boxes_overlap
from redux.policy.action_space import DT_S, HORIZON
from redux.sim_bridge.lane.expert import expert_plan, no_reverse, unicycle_step, wrap_angle
from redux.sim_bridge.lane.render import BevRenderer
from redux.sim_bridge.lane.scene import LaneScene, generate_scene
from redux.sim_bridge.lane.vehicles import (
    EGO_LENGTH_M,
    EGO_REAR_AXLE_TO_CENTRE_M,
    EGO_WIDTH_M,
    LEAD_LENGTH_M,
    LEAD_WIDTH_M,
)
from redux.sim_bridge.session import Observation, Plan, StepResult

BEV_CAMERA = "bev"
HISTORY_POSES = 16
ROUTE_WAYPOINTS = 20
ROUTE_SPACING_M = 4.2
COLLISION_PENALTY = 10.0
OFFROAD_PENALTY = 5.0
PATH_DISTANCE_PENALTY = 0.01


def to_rig_frame(world: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """World (…, 3) poses (x, y, yaw) expressed in the rig frame of ``pose``."""
    x, y, yaw = pose
    c, s = np.cos(yaw), np.sin(yaw)
    dx, dy = world[..., 0] - x, world[..., 1] - y
    local_yaw = (world[..., 2] - yaw + np.pi) % (2 * np.pi) - np.pi
    return np.stack([c * dx + s * dy, -s * dx + c * dy, local_yaw], axis=-1).astype(np.float32)


class LaneSession:
    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self.renderer = BevRenderer(cfg.bev_pixels, cfg.bev_metres_per_pixel)
        self.scene: LaneScene | None = None

    # -- Session protocol ---------------------------------------------------
    def reset(self, scene_id: int, seed: int) -> Observation:
        cfg = self.cfg
        scene = self.scene = generate_scene(cfg, scene_id, seed)
        self.t = cfg.warmup_steps
        self.steps_taken = 0
        self.history = deque((scene.recorded_pose(k) for k in range(self.t + 1)), maxlen=HISTORY_POSES)
        self.pose = scene.recorded_pose(self.t).copy()
        self.speed = float(scene.ego_speed[self.t])
        # the expert was driving until now: its commands are what the actuator still has queued
        self.queued = deque(
            (float(scene.ego_accel[k]), scene.road.curvature) for k in range(self.t, self.t + cfg.controller_delay_steps)
        )
        self.frames = deque(
            (self._render(scene.recorded_pose(k), k) for k in range(self.t - cfg.bev_frames + 1, self.t + 1)),
            maxlen=cfg.bev_frames,
        )
        self.path_start_s = float(scene.ego_s[self.t])
        self.path_end_s = float(scene.ego_s[self.t + cfg.episode_steps])
        self.progress = 0.0
        return self._observe()

    def step(self, plan: Plan) -> StepResult:
        self._scene()  # raises if the session is not reset
        cfg = self.cfg
        delay = cfg.controller_delay_steps
        self.queued.append((float(plan.actions[delay, 0]), float(plan.actions[delay, 1])))
        accel, curvature = self.queued.popleft()
        accel = no_reverse(self.speed, accel)
        x, y, yaw, self.speed = unicycle_step(*self.pose, self.speed, accel, curvature)
        self.pose = np.array([x, y, wrap_angle(yaw)])
        self.t += 1
        self.steps_taken += 1
        self.history.append(self.pose.copy())
        self.frames.append(self._render(self.pose, self.t))

        metrics = self._score()
        done = self.steps_taken >= cfg.episode_steps or bool(metrics["collision_any"]) or bool(metrics["offroad"])
        return StepResult(self._observe(), done, metrics)

    def expert_continuation(self) -> np.ndarray:
        scene = self._scene()
        future = scene.recorded_pose(np.arange(self.t + 1, self.t + 1 + HORIZON))
        return to_rig_frame(future, self.pose)

    def close(self) -> None:
        self.scene = None

    # -- internals ------------------------------------------------------------
    def _scene(self) -> LaneScene:
        if self.scene is None:
            raise RuntimeError("session used before reset() or after close()")
        return self.scene

    def _lead_pose(self, step: int) -> np.ndarray:
        return self._scene().road.point(self._scene().lead_s[step])

    def _render(self, ego_pose: np.ndarray, step: int) -> np.ndarray:
        return self.renderer.render(self._scene().road, ego_pose, self._lead_pose(step))

    def _ego_box(self) -> np.ndarray:
        x, y, yaw = self.pose
        cx = x + EGO_REAR_AXLE_TO_CENTRE_M * np.cos(yaw)
        cy = y + EGO_REAR_AXLE_TO_CENTRE_M * np.sin(yaw)
        return box_corners(cx, cy, yaw, EGO_LENGTH_M, EGO_WIDTH_M)

    def _score(self) -> dict[str, float]:
        scene = self._scene()
        road = scene.road
        ego = self._ego_box()
        lx, ly, lyaw = self._lead_pose(self.t)
        collision = boxes_overlap(ego, box_corners(lx, ly, lyaw, LEAD_LENGTH_M, LEAD_WIDTH_M))
        _, corner_d = road.to_frenet(ego[:, 0], ego[:, 1])
        offroad = bool(np.any(np.abs(corner_d) > road.half_width_m))
        centre_s, centre_d = road.to_frenet(ego[:, 0].mean(), ego[:, 1].mean())
        progress = (float(centre_s) - self.path_start_s) / max(self.path_end_s - self.path_start_s, 1e-6)
        gained, self.progress = progress - self.progress, progress
        distance = abs(float(centre_d))
        reward = gained - COLLISION_PENALTY * collision - OFFROAD_PENALTY * offroad - PATH_DISTANCE_PENALTY * distance
        # the lead is always ahead in its lane: any contact is the ego running into it
        return {
            "collision_any": float(collision),
            "collision_at_fault": float(collision),
            "offroad": float(offroad),
            "progress": progress,
            "dist_to_gt_trajectory": distance,
            "speed": self.speed,
            "reward": reward,
        }

    def _observe(self) -> Observation:
        scene = self._scene()
        x, y, yaw = self.pose
        history = to_rig_frame(np.stack(self.history), self.pose)
        s_now, _ = scene.road.to_frenet(x, y)
        route_s = float(s_now) + ROUTE_SPACING_M * np.arange(1, ROUTE_WAYPOINTS + 1)
        route = to_rig_frame(scene.road.point(route_s), self.pose)
        route[:, 2] = 0.0  # waypoints carry height, not heading
        route[route_s > scene.road.length_m] = np.nan
        labels = {
            "expert_actions": expert_plan(
                scene.road, scene.lead_s[self.t : self.t + HORIZON + 1], scene.speed_limit, x, y, yaw, self.speed
            )
        }
        return Observation(
            cameras={BEV_CAMERA: np.stack(self.frames)},
            ego_history=history,
            route=route,
            time_us=int(round(self.t * DT_S * 1e6)),
            labels=labels,
        )
