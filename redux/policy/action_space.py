"""Alpamayo-R1's action space: 64 steps of (acceleration, curvature) at 0.1 s.

A plan is a sequence of unicycle controls. Integrating it from the current speed
gives poses (x forward, y left, yaw) in the rig frame at t0; the inverse recovers
the controls from poses. Normalisation constants and bounds are the published ones
(specs/alpamayo.md) so that a checkpoint trained here reads the same numbers as the
real model.
"""

from __future__ import annotations

import numpy as np

DT_S = 0.1
HORIZON = 64
ACCEL_MEAN, ACCEL_STD = 0.02903, 0.68104
CURVATURE_MEAN, CURVATURE_STD = 0.000269, 0.026148
ACCEL_BOUND, CURVATURE_BOUND = 9.8, 0.33

_MEAN = np.array([ACCEL_MEAN, CURVATURE_MEAN], dtype=np.float32)
_STD = np.array([ACCEL_STD, CURVATURE_STD], dtype=np.float32)
_BOUND = np.array([ACCEL_BOUND, CURVATURE_BOUND], dtype=np.float32)


def normalise(actions: np.ndarray) -> np.ndarray:
    return ((actions - _MEAN) / _STD).astype(np.float32)


def denormalise(normalised: np.ndarray) -> np.ndarray:
    return (normalised * _STD + _MEAN).astype(np.float32)


def clip_to_bounds(actions: np.ndarray) -> np.ndarray:
    return np.clip(actions, -_BOUND, _BOUND)


def integrate(actions: np.ndarray, speed: np.ndarray | float, dt: float = DT_S) -> np.ndarray:
    """Unicycle roll-out of ``actions`` (..., T, 2) from ``speed`` (...,).

    Returns poses (..., T, 3) = (x, y, yaw) after each step, starting from the
    origin facing +x. Speed is integrated without clamping so that
    :func:`to_actions` inverts this exactly; heading and position use the
    step's mean speed and mid-step heading (second-order accurate). Poses are
    float32 (as on the wire) unless the actions are float64.
    """
    out_dtype = np.result_type(np.asarray(actions).dtype, np.float32)
    actions = np.asarray(actions, dtype=np.float64)
    accel, curvature = actions[..., 0], actions[..., 1]
    v0 = np.broadcast_to(np.asarray(speed, dtype=np.float64), accel.shape[:-1])[..., None]
    v_next = v0 + np.cumsum(accel * dt, axis=-1)
    v_prev = np.concatenate([v0, v_next[..., :-1]], axis=-1)
    v_mean = 0.5 * (v_prev + v_next)
    yaw_next = np.cumsum(curvature * v_mean * dt, axis=-1)
    yaw_prev = np.concatenate([np.zeros_like(v0), yaw_next[..., :-1]], axis=-1)
    heading = 0.5 * (yaw_prev + yaw_next)
    step = v_mean * dt
    x = np.cumsum(step * np.cos(heading), axis=-1)
    y = np.cumsum(step * np.sin(heading), axis=-1)
    return np.stack([x, y, yaw_next], axis=-1).astype(out_dtype)


def to_actions(poses: np.ndarray, speed: np.ndarray | float, dt: float = DT_S, min_speed: float = 0.1) -> np.ndarray:
    """Inverse of :func:`integrate` for forward-moving plans.

    Curvature is undefined when the vehicle does not move; below ``min_speed``
    the curvature is reported as 0. Speeds come from a recurrence over chord
    lengths, so float32 poses (~1e-5 m of rounding at 100 m) give accelerations
    good to ~1e-2 m/s²; float64 poses give them exactly.
    """
    out_dtype = np.result_type(np.asarray(poses).dtype, np.float32)
    poses = np.asarray(poses, dtype=np.float64)
    origin = np.zeros(poses.shape[:-2] + (1, 3))
    full = np.concatenate([origin, poses], axis=-2)
    steps = np.diff(full, axis=-2)
    chord = np.hypot(steps[..., 0], steps[..., 1])
    v = np.empty(chord.shape[:-1] + (chord.shape[-1] + 1,))
    v[..., 0] = np.broadcast_to(np.asarray(speed, dtype=np.float64), chord.shape[:-1])
    for k in range(chord.shape[-1]):  # v_{k+1} = 2·chord/dt − v_k, a recurrence
        v[..., k + 1] = 2.0 * chord[..., k] / dt - v[..., k]
    accel = np.diff(v, axis=-1) / dt
    v_mean = 0.5 * (v[..., :-1] + v[..., 1:])
    dyaw = steps[..., 2]
    moving = np.abs(v_mean) > min_speed
    curvature = np.where(moving, dyaw / np.where(moving, v_mean * dt, 1.0), 0.0)
    return np.stack([accel, curvature], axis=-1).astype(out_dtype)


def estimate_speed(history_xy: np.ndarray, dt: float = DT_S, window: int = 5) -> np.ndarray:
    """Speed at t0 from the last ``window`` history positions (…, 16, 2).

    A least-squares line through the recent positions is robust to the pose
    noise a real egomotion estimate carries; the last pose is t0.
    """
    xy = np.asarray(history_xy, dtype=np.float64)[..., -window:, :]
    t = (np.arange(window) - (window - 1)) * dt
    t_c = t - t.mean()
    slope = np.einsum("t,...tc->...c", t_c, xy - xy.mean(axis=-2, keepdims=True)) / np.sum(t_c**2)
    return np.hypot(slope[..., 0], slope[..., 1]).astype(np.float32)
