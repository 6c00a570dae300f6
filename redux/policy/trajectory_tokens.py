"""Discrete trajectory tokens, in Alpamayo-R1's layout.

The trajectory block of the vocabulary holds 4000 ids: 3000 bins for the future
plan (ids 0..2999) followed by 1000 bins for the ego history (ids 3000..3999).
A plan becomes 128 tokens, (accel, curvature) interleaved per step; a history
becomes 48 tokens, (x, y, yaw) interleaved per pose. Every channel is quantised
uniformly over a fixed range; values outside it go to the end bins, and a
decoded value is its bin's centre, so decode(encode(v)) is within half a bin of
v clipped to the range (:data:`FUTURE_BIN_WIDTH`, :data:`HISTORY_BIN_WIDTH`).
"""

from __future__ import annotations

import numpy as np

from redux.policy.action_space import (
    ACCEL_BOUND,
    ACCEL_MEAN,
    ACCEL_STD,
    CURVATURE_BOUND,
    CURVATURE_MEAN,
    CURVATURE_STD,
    HORIZON,
)

FUTURE_BINS = 3000
HISTORY_BINS = 1000
TRAJ_VOCAB = FUTURE_BINS + HISTORY_BINS
HISTORY_POSES = 16
FUTURE_TOKENS = HORIZON * 2
HISTORY_TOKENS = HISTORY_POSES * 3
HISTORY_OFFSET = FUTURE_BINS

# The physical bounds in normalised units, (accel, curvature) rows of (low, high):
# about ±14.4 and ±12.6, so bins of 0.0096 and 0.0084 (6.5 mm/s², 2.2e-4 1/m).
FUTURE_RANGE = np.array([
    [(-ACCEL_BOUND - ACCEL_MEAN) / ACCEL_STD, (ACCEL_BOUND - ACCEL_MEAN) / ACCEL_STD],
    [(-CURVATURE_BOUND - CURVATURE_MEAN) / CURVATURE_STD, (CURVATURE_BOUND - CURVATURE_MEAN) / CURVATURE_STD],
])
# History poses span 1.5 s before t0 in the t0 rig frame. x: 64 m back is 43 m/s
# (154 km/h) held for 1.5 s, 8 m ahead is 5 m/s in reverse. y: lateral offset
# over 1.5 s is at most a_lat·t²/2 ≈ 11 m at the 9.8 m/s² grip limit. yaw: a car
# turns at most √(0.33 m⁻¹·9.8 m/s²) ≈ 1.8 rad/s, 2.7 rad in 1.5 s, so the full
# circle is needed; yaw is wrapped rather than clipped. Bins: 7.2 cm, 3.2 cm, 6.3 mrad.
HISTORY_RANGE = np.array([[-64.0, 8.0], [-16.0, 16.0], [-np.pi, np.pi]])

FUTURE_BIN_WIDTH = (FUTURE_RANGE[:, 1] - FUTURE_RANGE[:, 0]) / FUTURE_BINS
HISTORY_BIN_WIDTH = (HISTORY_RANGE[:, 1] - HISTORY_RANGE[:, 0]) / HISTORY_BINS


def _quantise(values: np.ndarray, value_range: np.ndarray, bins: int, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).any():
        raise ValueError(f"{what} holds NaN, which has no token")
    low, high = value_range[:, 0], value_range[:, 1]
    width = (high - low) / bins
    # the top edge itself lands one past the last bin; clipping the index keeps it in
    index = np.floor((np.clip(values, low, high) - low) / width)
    return np.clip(index, 0, bins - 1).astype(np.int64)


def _bin_centres(ids: np.ndarray, first: int, value_range: np.ndarray, bins: int, what: str) -> np.ndarray:
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{what} token ids must be integers, got dtype {ids.dtype}")
    bad = (ids < first) | (ids >= first + bins)
    if bad.any():
        raise ValueError(f"{what} token id {ids[bad].flat[0]} is outside {first}..{first + bins - 1}")
    low, high = value_range[:, 0], value_range[:, 1]
    return (low + (ids - first + 0.5) * (high - low) / bins).astype(np.float32)


def _check_trailing(array: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    if array.shape[-len(shape):] != shape:
        raise ValueError(f"{what} must end in shape {shape}, got {array.shape}")


def encode_future(normalised_actions: np.ndarray) -> np.ndarray:
    """Normalised controls (…, 64, 2) → ids (…, 128) in 0..2999, interleaved a0, k0, a1, k1, …"""
    actions = np.asarray(normalised_actions)
    _check_trailing(actions, (HORIZON, 2), "future actions")
    ids = _quantise(actions, FUTURE_RANGE, FUTURE_BINS, "future actions")
    return ids.reshape(ids.shape[:-2] + (FUTURE_TOKENS,))


def decode_future(ids: np.ndarray) -> np.ndarray:
    """Ids (…, 128) → normalised controls (…, 64, 2) at the bin centres, float32."""
    ids = np.asarray(ids)
    _check_trailing(ids, (FUTURE_TOKENS,), "future ids")
    steps = ids.reshape(ids.shape[:-1] + (HORIZON, 2))
    return _bin_centres(steps, 0, FUTURE_RANGE, FUTURE_BINS, "future")


def encode_history(history: np.ndarray) -> np.ndarray:
    """Poses (…, 16, 3) of (x, y, yaw) in the rig frame → ids (…, 48) in 3000..3999."""
    history = np.asarray(history, dtype=np.float64)
    _check_trailing(history, (HISTORY_POSES, 3), "history")
    wrapped = history.copy()
    wrapped[..., 2] = (history[..., 2] + np.pi) % (2 * np.pi) - np.pi
    ids = _quantise(wrapped, HISTORY_RANGE, HISTORY_BINS, "history") + HISTORY_OFFSET
    return ids.reshape(ids.shape[:-2] + (HISTORY_TOKENS,))


def decode_history(ids: np.ndarray) -> np.ndarray:
    """Ids (…, 48) → poses (…, 16, 3) at the bin centres, float32."""
    ids = np.asarray(ids)
    _check_trailing(ids, (HISTORY_TOKENS,), "history ids")
    poses = ids.reshape(ids.shape[:-1] + (HISTORY_POSES, 3))
    return _bin_centres(poses, HISTORY_OFFSET, HISTORY_RANGE, HISTORY_BINS, "history")
