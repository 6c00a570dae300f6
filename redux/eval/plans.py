"""Scores of the plans themselves: closed-loop minADE, plan deviation, open-loop minADE_6.

Plans are compared in the world frame, as positions of the same reference point as
the recorded path (Alpasim moves both to the box centre), at their own timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redux.eval.path import interpolate_path

MIN_ADE_HORIZONS_S = (0.5, 1.0, 2.5, 5.0)
PLAN_DEVIATION_DECAY = 0.1  # weight exp(−0.1 · i) on the i-th common waypoint: near future counts most
OPEN_LOOP_SAMPLES = 6  # minADE_6


def min_ade_name(horizon_s: float) -> str:
    return f"min_ade@{horizon_s:g}s"


@dataclass(frozen=True)
class DriveCall:
    """One ``drive`` call's output, in the world frame.

    Poses at or before ``time_us`` (Alpasim's pose 0, the current pose) are not
    predictions and are ignored by every score here.
    """

    time_us: int  # time_now_us of the call
    plan_timestamps_us: np.ndarray  # (H,) increasing
    sampled_xy: np.ndarray  # (K, H, 2) the K sampled plans
    selected_xy: np.ndarray | None = None  # (H, 2) the plan that was driven; default: sample 0

    @property
    def driven_xy(self) -> np.ndarray:
        if self.selected_xy is None:
            return np.asarray(self.sampled_xy, dtype=np.float64)[0]
        return np.asarray(self.selected_xy, dtype=np.float64)


def min_ade_for_call(
    call: DriveCall, recorded_timestamps_us: np.ndarray, recorded_path: np.ndarray, horizon_s: float
) -> float:
    """Best-of-K mean 2-D error to the recorded path over the plan's poses in (now, now + horizon].

    NaN when the plan or the recording does not reach the horizon (Alpasim skips
    those calls near the end of a rollout).
    """
    times = np.asarray(call.plan_timestamps_us, dtype=np.int64)
    end = call.time_us + round(horizon_s * 1e6)
    window = (times > call.time_us) & (times <= end)
    if not window.any() or times[-1] < end:
        return float("nan")
    reference = interpolate_path(times[window], recorded_timestamps_us, recorded_path)
    if np.isnan(reference).any():  # the recording ends before the horizon
        return float("nan")
    errors = np.linalg.norm(np.asarray(call.sampled_xy, dtype=np.float64)[:, window] - reference, axis=-1)
    return float(errors.mean(axis=1).min())


def plan_deviation(previous: DriveCall, current: DriveCall, decay: float = PLAN_DEVIATION_DECAY) -> float:
    """How far the current driven plan moved from the previous one, near future weighted most.

    Compared at the current plan's timestamps after its pose 0 that the previous
    plan still covers; the previous plan is interpolated there. NaN when they share
    no timestamp.
    """
    prev_times = np.asarray(previous.plan_timestamps_us, dtype=np.float64)
    times = np.asarray(current.plan_timestamps_us, dtype=np.float64)
    common = (times > current.time_us) & (times <= prev_times[-1]) & (times >= prev_times[0])
    if not common.any():
        return float("nan")
    previous_xy = interpolate_path(times[common], prev_times, previous.driven_xy)
    distances = np.linalg.norm(current.driven_xy[common] - previous_xy, axis=-1)
    weights = np.exp(-decay * np.arange(len(distances)))
    return float(np.sum(weights * distances) / np.sum(weights))


def plan_metrics(
    calls: list[DriveCall],
    timestamps_us: np.ndarray,
    recorded_timestamps_us: np.ndarray,
    recorded_path: np.ndarray,
    horizons_s: tuple[float, ...] = MIN_ADE_HORIZONS_S,
) -> dict[str, np.ndarray]:
    """Per-timestep min_ade@{horizons} and plan_deviation: values at drive-call steps, NaN elsewhere.

    Each call must fall on a simulation timestep. As in Alpasim, a horizon that
    runs past the rollout's last timestep is not scored for that call. A mean over
    time of these (NaN-skipping) is Alpasim's "averaged over drive calls".
    """
    timestamps_us = np.asarray(timestamps_us, dtype=np.int64)
    recorded_timestamps_us = np.asarray(recorded_timestamps_us, dtype=np.int64)
    out = {min_ade_name(h): np.full(len(timestamps_us), np.nan) for h in horizons_s}
    out["plan_deviation"] = np.full(len(timestamps_us), np.nan)
    for k, call in enumerate(calls):
        step = int(np.searchsorted(timestamps_us, call.time_us))
        if step == len(timestamps_us) or timestamps_us[step] != call.time_us:
            raise ValueError(f"drive call at {call.time_us} us is not a simulation timestep")
        for h in horizons_s:
            if call.time_us + round(h * 1e6) <= timestamps_us[-1]:
                out[min_ade_name(h)][step] = min_ade_for_call(call, recorded_timestamps_us, recorded_path, h)
        if k > 0:
            out["plan_deviation"][step] = plan_deviation(calls[k - 1], call)
    return out


def open_loop_min_ade(samples: np.ndarray, expert: np.ndarray, num_samples: int = OPEN_LOOP_SAMPLES) -> np.ndarray:
    """(N,) open-loop minADE_k per example: best of the first k samples (N, K, H, 2), mean XY error to expert (N, H, 2).

    With Alpamayo's plans H = 64 poses at 0.1 s, the 6.4 s horizon.
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.shape[1] < num_samples:
        raise ValueError(f"minADE_{num_samples} needs {num_samples} samples per example, got {samples.shape[1]}")
    errors = np.linalg.norm(samples[:, :num_samples] - np.asarray(expert, dtype=np.float64)[:, None], axis=-1)
    return errors.mean(axis=2).min(axis=1)
