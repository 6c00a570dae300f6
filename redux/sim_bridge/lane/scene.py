"""Seeded lane-following scenes with a recorded expert drive and a lead vehicle.

A scene is everything the log would hold: the road, the lead's track and the
expert ego's track, sampled at 0.1 s for the whole episode plus one planning
horizon (so the recorded future exists at every step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from redux.config import SimConfig
from redux.policy.action_space import DT_S, HORIZON
from redux.sim_bridge.lane.expert import following_gap, idm_accel, no_reverse
from redux.sim_bridge.lane.road import ArcRoad

ROUTE_LOOKAHEAD_M = 90.0  # route waypoints reach 80 m; keep the road longer than that
MAX_ARC_TURN_RAD = 0.9 * math.pi  # Frenet coordinates on an arc are unique below π


@dataclass(frozen=True)
class LaneScene:
    scene_id: int
    seed: int
    road: ArcRoad
    speed_limit: float
    lead_s: np.ndarray  # (steps,) lead box centre arc length
    ego_s: np.ndarray  # (steps,) recorded expert rear-axle arc length
    ego_speed: np.ndarray  # (steps,)
    ego_accel: np.ndarray  # (steps,) control applied from each step to the next

    @property
    def num_steps(self) -> int:
        return len(self.ego_s)

    def recorded_pose(self, step: int | np.ndarray) -> np.ndarray:
        """World (x, y, yaw) of the recorded expert at ``step``."""
        return self.road.point(self.ego_s[step])


def _lead_speeds(rng: np.random.Generator, cfg: SimConfig, steps: int, v0: float) -> np.ndarray:
    """Cruise, and in some scenes brake hard at a random moment after the hand-over."""
    speeds = np.full(steps, v0)
    if rng.random() < cfg.lead_brake_probability:
        start = cfg.warmup_steps + int(rng.uniform(1.0, 5.0) / DT_S)
        decel = rng.uniform(2.5, 5.0)
        floor = v0 * rng.uniform(0.0, 0.4)
        for k in range(start, steps):
            speeds[k] = max(floor, speeds[k - 1] - decel * DT_S)
    return speeds


def generate_scene(cfg: SimConfig, scene_id: int, seed: int) -> LaneScene:
    rng = np.random.default_rng([seed, scene_id])
    steps = cfg.warmup_steps + cfg.episode_steps + HORIZON + 2
    speed_limit = rng.uniform(*cfg.speed_limit_mps)
    lead_v = _lead_speeds(rng, cfg, steps, speed_limit * rng.uniform(0.5, 0.9))
    lead_s = rng.uniform(*cfg.lead_gap_m) + np.concatenate([[0.0], np.cumsum(lead_v[:-1] * DT_S)])

    ego_s = np.zeros(steps)
    ego_v = np.zeros(steps)
    ego_a = np.zeros(steps)
    ego_v[0] = speed_limit * rng.uniform(0.6, 1.0)
    for k in range(steps - 1):
        accel = idm_accel(ego_v[k], speed_limit, following_gap(ego_s[k], lead_s[k]), lead_v[k])
        ego_a[k] = no_reverse(ego_v[k], accel)
        ego_v[k + 1] = ego_v[k] + ego_a[k] * DT_S
        ego_s[k + 1] = ego_s[k] + 0.5 * (ego_v[k] + ego_v[k + 1]) * DT_S

    length = max(lead_s[-1], ego_s[-1]) + ROUTE_LOOKAHEAD_M
    curvature = 0.0
    if rng.random() < 0.7:
        curvature = rng.uniform(-cfg.max_curvature, cfg.max_curvature)
        curvature = float(np.clip(curvature, -MAX_ARC_TURN_RAD / length, MAX_ARC_TURN_RAD / length))
    road = ArcRoad(curvature, length, cfg.lane_width_m, cfg.shoulder_m)
    return LaneScene(scene_id, seed, road, speed_limit, lead_s, ego_s, ego_v, ego_a)
