"""The rule-based expert: IDM car following along the lane, pure pursuit to its centre.

It records the logged drive of every scene and, from any closed-loop state,
produces the plan the expert would drive from there (the behaviour-cloning
target and the `expert` reference policy).
"""

from __future__ import annotations

import math

import numpy as np

from redux.policy.action_space import ACCEL_BOUND, CURVATURE_BOUND, DT_S, HORIZON
from redux.sim_bridge.lane.road import ArcRoad
from redux.sim_bridge.lane.vehicles import EGO_FRONT_M, LEAD_LENGTH_M

IDM_MAX_ACCEL = 2.0
IDM_COMFORT_DECEL = 3.0
IDM_MIN_GAP_M = 2.5
IDM_HEADWAY_S = 1.2
HARD_BRAKE = 8.0


def idm_accel(speed: float, desired_speed: float, gap_m: float, lead_speed: float) -> float:
    """Intelligent Driver Model acceleration toward ``desired_speed`` behind a lead."""
    free = 1.0 - (speed / max(desired_speed, 0.1)) ** 4
    if gap_m <= 0.1:
        return -HARD_BRAKE
    closing = speed * (speed - lead_speed) / (2.0 * math.sqrt(IDM_MAX_ACCEL * IDM_COMFORT_DECEL))
    wanted_gap = IDM_MIN_GAP_M + speed * IDM_HEADWAY_S + closing
    accel = IDM_MAX_ACCEL * (free - (max(wanted_gap, 0.0) / gap_m) ** 2)
    return min(max(accel, -HARD_BRAKE), IDM_MAX_ACCEL)


def no_reverse(speed: float, accel: float, dt: float = DT_S) -> float:
    """Braking stops the car; it never drives it backwards."""
    return max(accel, -speed / dt)


def following_gap(ego_s: float, lead_s: float) -> float:
    return lead_s - ego_s - EGO_FRONT_M - 0.5 * LEAD_LENGTH_M


def expert_plan(
    road: ArcRoad,
    lead_s: np.ndarray,
    speed_limit: float,
    x: float,
    y: float,
    yaw: float,
    speed: float,
    horizon: int = HORIZON,
    dt: float = DT_S,
) -> np.ndarray:
    """Controls (horizon, 2) the expert would apply from this state.

    ``lead_s`` holds the lead's arc length at now, now + dt, … (horizon + 1 values).
    """
    actions = np.empty((horizon, 2), dtype=np.float32)
    lead_s = lead_s.tolist()  # python floats: this loop is scalar arithmetic
    for k in range(horizon):
        s, _ = road.frenet_of(x, y)
        lookahead = max(6.0, 1.2 * speed)
        tx, ty, _ = road.point_at(s + lookahead)
        alpha = wrap_angle(math.atan2(ty - y, tx - x) - yaw)
        curvature = 2.0 * math.sin(alpha) / lookahead
        curvature = min(max(curvature, -CURVATURE_BOUND), CURVATURE_BOUND)
        lead_speed = (lead_s[k + 1] - lead_s[k]) / dt
        accel = idm_accel(speed, speed_limit, following_gap(s, lead_s[k]), lead_speed)
        accel = no_reverse(speed, min(max(accel, -ACCEL_BOUND), ACCEL_BOUND), dt)
        actions[k] = (accel, curvature)
        x, y, yaw, speed = unicycle_step(x, y, yaw, speed, accel, curvature, dt)
    return actions


def wrap_angle(angle: float) -> float:
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def unicycle_step(x: float, y: float, yaw: float, speed: float, accel: float, curvature: float, dt: float = DT_S):
    """One step of the same scheme as ``action_space.integrate``, in world coordinates."""
    v_next = speed + accel * dt
    v_mean = 0.5 * (speed + v_next)
    yaw_next = yaw + curvature * v_mean * dt
    heading = 0.5 * (yaw + yaw_next)
    return x + v_mean * dt * math.cos(heading), y + v_mean * dt * math.sin(heading), yaw_next, v_next
