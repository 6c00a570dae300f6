"""CF-VLA meta-actions: rule-based kinematic detectors on a 10 Hz trajectory, and time segments.

Three axes, each labelled per step (indices into ``vocabulary.META_*``):

- longitudinal, from speed and acceleration (a centred 1 s difference of speed):
  reverse when moving backwards (speed < -0.1 m/s); wait when nearly stopped
  (|speed| < 0.3 m/s) and not pulling away (accel < 0.5 m/s²); else accelerate
  above +0.4 m/s², decelerate below -0.4 m/s², keep speed in between;
- lateral, from the heading change over a centred 2 s window: a turn needs at
  least 15° of heading change AND a mean curvature of at least 1/30 m⁻¹ over the
  distance driven in the window (≥ 1 m). Road bends (radius ≥ 40 m) are therefore
  "straight": the axis is about turning at junctions, not about following the road;
- lane, from the lateral offset in the frame of the starting lane (positive left):
  a lane change is a stretch where the offset moves at more than 0.25 m/s
  (centred 1 s difference) that in total moves it by at least 2 m — more than half
  a 3.5 m lane, so it crosses a lane line — in that direction. Nudges (≤ 2.5 m,
  there and back) do not qualify because each leg is short and returns. Without an
  offset the lateral displacement from the first pose's heading line is used when
  the trajectory turns by less than 15° in total (and no lane change is reported
  otherwise: one cannot tell a lane change on a curve from the curve itself).

Segments: consecutive steps with the same (longitudinal, lateral, lane) triple; a
segment shorter than 0.5 s is absorbed into the one before it (the first into the
one after), so one noisy step does not split the horizon.
"""

from __future__ import annotations

import numpy as np

from redux.sim_bridge.minisim.scene import DT_S

REVERSE_MPS = -0.1
WAIT_MPS = 0.3
PULL_AWAY_MPS2 = 0.5
ACCEL_MPS2 = 0.4
TURN_WINDOW_STEPS = 10  # each side: a 2 s window
TURN_MIN_RAD = np.deg2rad(15.0)
TURN_MIN_CURVATURE = 1.0 / 30.0
LANE_RATE_MPS = 0.25
LANE_CHANGE_M = 2.0
MIN_SEGMENT_STEPS = 5

ACCELERATE, DECELERATE, KEEP_SPEED, WAIT, REVERSE = range(5)
STRAIGHT, LEFT_TURN, RIGHT_TURN = range(3)
KEEP_LANE, LEFT_LANE_CHANGE, RIGHT_LANE_CHANGE = range(3)


def _centred_difference(values: np.ndarray, half_window: int) -> tuple[np.ndarray, np.ndarray]:
    """values[k + w] - values[k - w] with the window clipped at the ends, and its length in steps."""
    n = len(values)
    k = np.arange(n)
    hi, lo = np.minimum(k + half_window, n - 1), np.maximum(k - half_window, 0)
    return values[hi] - values[lo], np.maximum(hi - lo, 1)


def longitudinal_labels(speed: np.ndarray) -> np.ndarray:
    change, span = _centred_difference(speed, 5)
    accel = change / (span * DT_S)
    labels = np.where(accel > ACCEL_MPS2, ACCELERATE, np.where(accel < -ACCEL_MPS2, DECELERATE, KEEP_SPEED))
    labels = np.where((np.abs(speed) < WAIT_MPS) & (accel < PULL_AWAY_MPS2), WAIT, labels)
    return np.where(speed < REVERSE_MPS, REVERSE, labels)


def lateral_labels(xy: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    turn, _ = _centred_difference(np.unwrap(yaw), TURN_WINDOW_STEPS)
    travelled, _ = _centred_difference(
        np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))]), TURN_WINDOW_STEPS
    )
    turning = (np.abs(turn) >= TURN_MIN_RAD) & (travelled >= 1.0) & (np.abs(turn) >= TURN_MIN_CURVATURE * travelled)
    return np.where(turning, np.where(turn > 0.0, LEFT_TURN, RIGHT_TURN), STRAIGHT)


def lane_labels(lateral_offset: np.ndarray) -> np.ndarray:
    change, span = _centred_difference(lateral_offset, 5)
    moving = np.abs(change / (span * DT_S)) > LANE_RATE_MPS
    labels = np.full(len(lateral_offset), KEEP_LANE)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], moving.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        moved = lateral_offset[stop - 1] - lateral_offset[start]
        if abs(moved) >= LANE_CHANGE_M:
            labels[start:stop] = LEFT_LANE_CHANGE if moved > 0.0 else RIGHT_LANE_CHANGE
    return labels


def _offset_from_start(traj: np.ndarray) -> np.ndarray | None:
    yaw = np.unwrap(traj[:, 2])
    if np.ptp(yaw) >= TURN_MIN_RAD:
        return None
    dx, dy = traj[:, 0] - traj[0, 0], traj[:, 1] - traj[0, 1]
    return -np.sin(traj[0, 2]) * dx + np.cos(traj[0, 2]) * dy


def step_labels(traj: np.ndarray, lateral_offset: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) per-step (longitudinal, lateral, lane) indices of a trajectory (N, 4) = x, y, yaw, speed."""
    traj = np.asarray(traj, dtype=np.float64)
    offset = lateral_offset if lateral_offset is not None else _offset_from_start(traj)
    lane = lane_labels(np.asarray(offset, dtype=np.float64)) if offset is not None else np.full(len(traj), KEEP_LANE)
    return np.stack([longitudinal_labels(traj[:, 3]), lateral_labels(traj[:, :2], traj[:, 2]), lane], axis=1)


def segment_labels(labels: np.ndarray, min_steps: int = MIN_SEGMENT_STEPS) -> list[tuple[int, int, int, int, int]]:
    """Run-length segments (start, end exclusive, longitudinal, lateral, lane) of per-step labels."""
    change = np.flatnonzero(np.any(labels[1:] != labels[:-1], axis=1)) + 1
    bounds = np.concatenate([[0], change, [len(labels)]]).tolist()
    runs = [[a, b, *labels[a].tolist()] for a, b in zip(bounds[:-1], bounds[1:])]
    absorbed: list[list[int]] = []
    for run in runs:
        if absorbed and run[1] - run[0] < min_steps:
            absorbed[-1][1] = run[1]  # a short run joins the one before it
        elif len(absorbed) == 1 and absorbed[0][1] - absorbed[0][0] < min_steps:
            absorbed[0] = [0, run[1], *run[2:]]  # a short first run joins the one after it
        else:
            absorbed.append(run)
    segments = [absorbed[0]]
    for run in absorbed[1:]:
        if run[2:] == segments[-1][2:]:
            segments[-1][1] = run[1]
        else:
            segments.append(run)
    return [tuple(run) for run in segments]


def segment_meta_actions(
    traj: np.ndarray, lateral_offset: np.ndarray | None = None
) -> list[tuple[int, int, int, int, int]]:
    """Time segments (start_step, end_step exclusive, longitudinal, lateral, lane) of a 10 Hz trajectory.

    ``traj`` (N, 4) holds x, y, yaw, speed (e.g. the 64-step plan horizon plus its
    start); ``lateral_offset`` (N,) optionally the offset from the starting lane's
    centre, + left (the lane axis needs it on curved roads).
    """
    return segment_labels(step_labels(traj, lateral_offset))
