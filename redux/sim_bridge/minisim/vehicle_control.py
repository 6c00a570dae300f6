"""How the ego moves: a plan tracker with actuator delay driving a kinematic bicycle.

Vectorised over a batch of sessions: every array has a leading batch axis B, so
one numpy call advances all of an actor's sessions. Plans arrive as world-frame
poses (pose 0 = the ego at the time the plan was issued, then one pose per
0.1 s); the tracker follows the newest plan that is at least ``delay_steps`` old,
as a real stack does when planning, transport and actuation take time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DT_S = 0.1
MAX_STEER_RAD = 0.6
ACCEL_LIMITS = (-9.8, 4.0)
SPEED_GAIN = 1.5  # 1/s: closes a speed error in ~0.7 s
POSITION_GAIN = 0.5  # 1/s²: pulls the ego along-track onto the plan's timing
MIN_LOOKAHEAD_M = 4.0
LOOKAHEAD_TIME_S = 0.8


@dataclass(frozen=True)
class BicycleParams:
    wheelbase_m: float = 2.8


def bicycle_step(state: np.ndarray, accel: np.ndarray, steer: np.ndarray, params: BicycleParams, dt: float = DT_S):
    """Advance rear-axle states (B, 4) = x, y, yaw, speed by one step; speed never goes negative."""
    x, y, yaw, v = state.T
    accel = np.maximum(accel, -v / dt)  # braking stops the car, it does not reverse it
    v_next = v + accel * dt
    v_mean = 0.5 * (v + v_next)
    yaw_rate = v_mean * np.tan(steer) / params.wheelbase_m
    yaw_next = yaw + yaw_rate * dt
    heading = 0.5 * (yaw + yaw_next)
    return np.stack(
        [x + v_mean * dt * np.cos(heading), y + v_mean * dt * np.sin(heading), _wrap(yaw_next), v_next], axis=1
    )


def track(state: np.ndarray, plan: np.ndarray, age_steps: np.ndarray, params: BicycleParams, dt: float = DT_S):
    """Acceleration and steering (B,) that follow ``plan`` (B, P, 3) world poses issued ``age_steps`` ago.

    Longitudinal: the plan's own acceleration (feed-forward) plus corrections for
    the speed and the along-track position error at the current time. Lateral: pure pursuit to the
    first plan point at least the lookahead distance away.
    """
    batch, points = plan.shape[0], plan.shape[1]
    rows = np.arange(batch)
    now = np.clip(age_steps, 0, points - 3)
    segment_speed = np.linalg.norm(np.diff(plan[:, :, :2], axis=1), axis=2) / dt  # (B, P-1)
    feedforward = (segment_speed[rows, now + 1] - segment_speed[rows, now]) / dt
    heading = np.stack([np.cos(state[:, 2]), np.sin(state[:, 2])], axis=1)
    along_error = np.einsum("bi,bi->b", plan[rows, now, :2] - state[:, :2], heading)
    accel = feedforward + SPEED_GAIN * (segment_speed[rows, now] - state[:, 3]) + POSITION_GAIN * along_error
    accel = np.clip(accel, *ACCEL_LIMITS)

    lookahead = np.maximum(MIN_LOOKAHEAD_M, LOOKAHEAD_TIME_S * state[:, 3])
    offsets = plan[:, :, :2] - state[:, None, :2]
    distance = np.linalg.norm(offsets, axis=2)
    ahead = (np.arange(points)[None, :] > now[:, None]) & (distance >= lookahead[:, None])
    # the first far-enough point ahead; the plan's last point when none is far enough
    target = np.where(ahead.any(axis=1), ahead.argmax(axis=1), points - 1)
    local = _to_local(offsets[rows, target], state[:, 2])
    chord = np.maximum(np.linalg.norm(local, axis=1), 1e-3)
    alpha = np.arctan2(local[:, 1], local[:, 0])
    steer = np.arctan(2.0 * params.wheelbase_m * np.sin(alpha) / chord)
    # a plan that has (almost) stopped gives no direction worth steering toward
    steer = np.where(distance[rows, target] < 0.5, 0.0, steer)
    return accel, np.clip(steer, -MAX_STEER_RAD, MAX_STEER_RAD)


def rig_to_world(poses_rig: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Rig-frame poses (B, N, 3) of a vehicle at world poses ``origin`` (B, 3+) into the world frame."""
    x, y, yaw = origin[:, 0:1], origin[:, 1:2], origin[:, 2:3]
    c, s = np.cos(yaw), np.sin(yaw)
    px, py = poses_rig[..., 0], poses_rig[..., 1]
    return np.stack([x + c * px - s * py, y + s * px + c * py, _wrap(yaw + poses_rig[..., 2])], axis=-1)


def world_to_rig(poses_world: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """World poses (B, N, 3) expressed in the rig frames at ``origin`` (B, 3+)."""
    x, y, yaw = origin[:, 0:1], origin[:, 1:2], origin[:, 2:3]
    c, s = np.cos(yaw), np.sin(yaw)
    dx, dy = poses_world[..., 0] - x, poses_world[..., 1] - y
    return np.stack([c * dx + s * dy, -s * dx + c * dy, _wrap(poses_world[..., 2] - yaw)], axis=-1)


def _to_local(vectors: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * vectors[:, 0] + s * vectors[:, 1], -s * vectors[:, 0] + c * vectors[:, 1]], axis=1)


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi
