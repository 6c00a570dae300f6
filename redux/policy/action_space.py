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


# Ridge weight on the quadratic coefficient c (half the tangential
# acceleration), in s⁴: the MAP value σ_pos²/σ_c² for 5 cm of pose noise and a
# 1 m/s² prior on c. Sixteen poses over 1.5 s already pin c down, so this only
# steadies short or degenerate histories; at 10 m/s with 5 cm noise, λ = 0.05
# would cut the error only from 0.102 to 0.095 m/s RMS but bias accelerating
# histories by −0.06 s·a (−0.003 s·a here).
SPEED_RIDGE_S4 = 0.0025
# Yaw rates are clamped to what a car can turn (√(0.33 m⁻¹ · 9.8 m/s²) ≈ 1.8
# rad/s), and their correction is damped below walking pace, where noise alone
# bends a fitted path.
_MAX_YAW_RATE = 2.0
_YAW_RATE_SPEED_FLOOR = 0.5
_YAW_RATE_ITERATIONS = 5


def _rotating_basis(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """φ1(z) = (eᶻ − 1)/z and φ2(z) = 2(eᶻ(z − 1) + 1)/z², both → 1 as z → 0.

    ``t·φ1(iωt)`` and ``t²·φ2(iωt)`` are the displacements of a constant speed and
    of a constant acceleration along a heading that turns at ω; the closed forms
    cancel catastrophically near 0, where a short series takes over.
    """
    small = np.abs(z) < 1e-2
    zs = np.where(small, 1.0, z)
    e = np.exp(zs)
    phi1 = np.where(small, 1 + z / 2 + z**2 / 6 + z**3 / 24, (e - 1) / zs)
    phi2 = np.where(small, 1 + 2 * z / 3 + z**2 / 4 + z**3 / 15, 2 * (e * (zs - 1) + 1) / zs**2)
    return phi1, phi2


def _fit_turning_quadratic(z: np.ndarray, t: np.ndarray, omega: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ridge least squares of z (…, T) on z0 + b·t·φ1(iωt) + c·t²·φ2(iωt); returns (b, c)."""
    phi1, phi2 = _rotating_basis(1j * omega[..., None] * t)
    basis = np.stack([np.ones_like(phi1), t * phi1, t**2 * phi2], axis=-1)
    normal = np.einsum("...ti,...tj->...ij", basis.conj(), basis) + np.diag([0.0, 0.0, SPEED_RIDGE_S4])
    coef = np.linalg.solve(normal, np.einsum("...ti,...t->...i", basis.conj(), z)[..., None])[..., 0]
    return coef[..., 1], coef[..., 2]


def estimate_speed(history_xy: np.ndarray, dt: float = DT_S) -> np.ndarray:
    """Speed at t0 from the whole position history (…, T, 2), the last pose at t0.

    x(t) and y(t), t ≤ 0, are fitted as quadratics by ridge least squares (a
    penalty :data:`SPEED_RIDGE_S4` on the quadratic coefficient), which averages
    out pose noise that a finite difference would divide by dt. A quadratic
    cannot follow a turn at constant speed (on a 10 m radius at 5 m/s it reads
    0.26 m/s high), so the quadratic is fitted in a frame turning at a yaw rate
    ω, refined from the centripetal acceleration the fit still finds; ω = 0 is
    the plain fit. The estimate is exact for constant speed on a line or circle
    and constant acceleration on a line (up to the ridge's small bias).
    Speed = |d/dt at t0|, float32 of shape ``history_xy.shape[:-2]``.
    """
    xy = np.asarray(history_xy, dtype=np.float64)
    z = xy[..., 0] + 1j * xy[..., 1]
    t = (np.arange(z.shape[-1]) - (z.shape[-1] - 1)) * dt
    omega = np.zeros(z.shape[:-1])
    for _ in range(_YAW_RATE_ITERATIONS):
        b, c = _fit_turning_quadratic(z, t, omega)
        # a yaw rate off by δω leaves a centripetal 2c ≈ iδω·b in the fit
        correction = np.imag(2 * c * b.conj()) / (np.abs(b) ** 2 + _YAW_RATE_SPEED_FLOOR**2)
        omega = np.clip(omega + correction, -_MAX_YAW_RATE, _MAX_YAW_RATE)
    b, _ = _fit_turning_quadratic(z, t, omega)
    return np.abs(b).astype(np.float32)


def history_to_xyz_rot(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ego history (…, T, 3) of (x, y, yaw) as the real model reads it.

    Alpamayo-R1 takes positions (…, T, 3) with z = 0 on the ground plane and
    rotations (…, T, 3, 3) about the z axis by yaw, both in the t0 rig frame.
    """
    history = np.asarray(history)
    dtype = np.result_type(history.dtype, np.float32)
    xyz = np.concatenate([history[..., :2], np.zeros_like(history[..., :1])], axis=-1).astype(dtype)
    cos, sin = np.cos(history[..., 2]), np.sin(history[..., 2])
    zero, one = np.zeros_like(cos), np.ones_like(cos)
    rot = np.stack([
        np.stack([cos, -sin, zero], axis=-1),
        np.stack([sin, cos, zero], axis=-1),
        np.stack([zero, zero, one], axis=-1),
    ], axis=-2).astype(dtype)
    return xyz, rot
