"""From per-timestep metrics to per-rollout numbers to means over rollouts, in Alpasim's order.

1. drop the warm-up: steps before the first with eval_relevant > 0;
2. add offroad_or_collision (collision_any ∨ offroad) and its _at_fault variant
   (collision_at_fault ∨ offroad), deriving collision_at_fault = front ∨ lateral
   where a table lacks it (Alpasim computes it only here);
3. truncate at the first offroad_or_collision, KEEPING that step (the incident
   itself must count; Alpasim keeps steps with timestamp ≤ the event's);
4. truncate at the first step ≥ 4.0 m from the recorded path, again keeping it
   (the renderer is unreliable that far off the recording);
5. aggregate each metric over the remaining steps by its own function, ignoring
   NaN (a metric with no value at a step), then across rollouts mean ± std.

The order matters: an incident is counted before the 4 m cut can hide it, and
truncation uses the any-variant, so an at-fault crash after being rear-ended is
not counted (as in Alpasim).
"""

from __future__ import annotations

import numpy as np

from redux.eval.metrics import TimeAggregation, TimestepMetrics

MAX_DIST_TO_GT_TRAJECTORY_M = 4.0


def _flag(values: np.ndarray) -> np.ndarray:
    return np.nan_to_num(values) > 0  # NaN (no value at that step) is not an event


def without_warmup(metrics: TimestepMetrics) -> TimestepMetrics:
    """Keep the steps from the first one under policy control on (none if it never took control).

    Alpasim drops the steps *before* the first eval_relevant step, which equals
    dropping eval_relevant = 0 since control is never handed back. A rollout in
    which the policy never drove has nothing to score and becomes empty (Alpasim
    would keep all its replayed steps).
    """
    relevant = _flag(metrics.values["eval_relevant"])
    first = int(np.argmax(relevant)) if relevant.any() else len(metrics)
    return metrics.select(slice(first, None))


def with_incidents(metrics: TimestepMetrics) -> TimestepMetrics:
    """Add collision_at_fault and collision_any (if absent), offroad_or_collision and its _at_fault variant."""
    values, aggregation = dict(metrics.values), dict(metrics.aggregation)
    front, rear, lateral = (_flag(values[f"collision_{kind}"]) for kind in ("front", "rear", "lateral"))
    values.setdefault("collision_at_fault", (front | lateral).astype(np.float64))
    values.setdefault("collision_any", (front | rear | lateral).astype(np.float64))
    offroad = _flag(values["offroad"])
    values["offroad_or_collision"] = (_flag(values["collision_any"]) | offroad).astype(np.float64)
    values["offroad_or_collision_at_fault"] = (_flag(values["collision_at_fault"]) | offroad).astype(np.float64)
    for name in ("collision_at_fault", "collision_any", "offroad_or_collision", "offroad_or_collision_at_fault"):
        aggregation.setdefault(name, TimeAggregation.MAX)
    return TimestepMetrics(metrics.timestamps_us, values, aggregation)


def truncated_at_first(metrics: TimestepMetrics, event: np.ndarray) -> TimestepMetrics:
    """Steps up to and including the first where ``event`` (T,) bool holds; all steps if it never does."""
    if not event.any():
        return metrics
    return metrics.select(slice(0, int(np.argmax(event)) + 1))


def scored_steps(metrics: TimestepMetrics, max_dist_to_gt_m: float = MAX_DIST_TO_GT_TRAJECTORY_M) -> TimestepMetrics:
    """Steps 1–4 above: the part of a rollout that its scores are computed from."""
    metrics = with_incidents(without_warmup(metrics))
    metrics = truncated_at_first(metrics, _flag(metrics.values["offroad_or_collision"]))
    far = np.nan_to_num(metrics.values["dist_to_gt_trajectory"]) >= max_dist_to_gt_m
    return truncated_at_first(metrics, far)


def aggregate_over_time(values: np.ndarray, how: TimeAggregation) -> float:
    """One number from a metric's (T,) values; NaN entries are skipped, and no value at all gives NaN."""
    present = values[~np.isnan(values)]
    if len(present) == 0 or how == TimeAggregation.UNSPECIFIED:
        return float("nan")
    if how == TimeAggregation.MEAN:
        return float(present.mean())
    if how == TimeAggregation.MEDIAN:
        return float(np.median(present))
    if how == TimeAggregation.MAX:
        return float(present.max())
    if how == TimeAggregation.MIN:
        return float(present.min())
    if how == TimeAggregation.LAST:
        return float(present[-1])
    raise ValueError(f"unknown time aggregation {how!r}")


def rollout_scores(metrics: TimestepMetrics, max_dist_to_gt_m: float = MAX_DIST_TO_GT_TRAJECTORY_M) -> dict[str, float]:
    """Each metric of one rollout aggregated over its scored steps; {} when no step is scored."""
    steps = scored_steps(metrics, max_dist_to_gt_m)
    if len(steps) == 0:
        return {}
    return {name: aggregate_over_time(v, steps.aggregation[name]) for name, v in steps.values.items()}


def mean_and_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1, as Alpasim's polars std) over rollouts, skipping NaN.

    The std of fewer than two values is NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    mean = float(values.mean()) if len(values) else float("nan")
    std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return mean, std


# Two-sided 95 % Student-t quantiles t_{0.975, df} for df = 1..30 (no scipy in the runtime deps).
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip


def _t975(df: int) -> float:
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964  # Cornish–Fisher expansion of the t quantile around the normal one, error < 1e-4 for df > 30
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def seed_interval_95(per_seed_values) -> tuple[float, float, float]:
    """(mean, low, high): a 95 % Student-t interval for the mean of a number measured once per seed.

    For ablation tables, where each seed is a full evaluation run; NaN bounds with
    fewer than two seeds.
    """
    values = np.asarray(per_seed_values, dtype=np.float64)
    values = values[~np.isnan(values)]
    mean, std = mean_and_std(values)
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = _t975(len(values) - 1) * std / np.sqrt(len(values))
    return mean, mean - half, mean + half
