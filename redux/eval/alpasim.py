"""Recompute our headline numbers from a real Alpasim run's per-timestep metrics.

Alpasim's ``simulate`` returns, per rollout, ``timestep_metrics``: one record per
metric with its own timestamps, values, valid flags and time aggregation. Its
``aggregated_metrics`` are raw (no warm-up removal, no at-fault flag, no truncation
at the first incident), so we rebuild the per-timestep table and run it through the
same aggregation as our own rollouts. The gRPC layer converts the protobuf to plain
dicts: ``{"name", "timestamps_us", "values", "valid", "time_aggregation"}``.

Assumptions about Alpasim's metric names (those of its evaluator's scorers):
- required: collision_front, collision_rear, collision_lateral, progress,
  dist_traveled_m, dist_to_gt_trajectory, eval_relevant;
- offroad: filled with 0 when absent (Alpasim does the same when no map is loaded);
- collision_any is taken as sent, or derived as front ∨ rear ∨ lateral; collision_at_fault
  is always derived as front ∨ lateral, as Alpasim's aggregation does;
- gt_dist_traveled_m (recorded path length; newer Alpasim sends it) feeds the driving
  score's short-path rule; without it, pass ``recorded_path_lengths_m``, or every
  path counts as long;
- Alpasim sends no close_encounter (ours), so its rate is NaN unless a metric of that
  name is present;
- every other metric (min_ade@…(gt), plan_deviation, wrong_lane, …) is carried
  along under its own name and aggregation.
Values whose ``valid`` flag is false count as missing (NaN); an empty ``valid`` list
means all valid.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from redux.eval.aggregation import MAX_DIST_TO_GT_TRAJECTORY_M
from redux.eval.metrics import TimeAggregation, TimestepMetrics
from redux.eval.summary import summarize

logger = logging.getLogger(__name__)

REQUIRED_METRICS = (
    "collision_front",
    "collision_rear",
    "collision_lateral",
    "progress",
    "dist_traveled_m",
    "dist_to_gt_trajectory",
    "eval_relevant",
)


def _time_aggregation(value) -> TimeAggregation:
    """Accept the enum, its number, or its name with or without the protobuf prefix."""
    if isinstance(value, str):
        return TimeAggregation[value.upper().removeprefix("TIME_AGGREGATION_")]
    return TimeAggregation(int(value))


def timestep_metrics_from_alpasim(records: Sequence[Mapping]) -> TimestepMetrics:
    """One rollout's ``timestep_metrics`` records as our per-timestep table (on the union of their timestamps)."""
    names = {r["name"] for r in records}
    missing = [name for name in REQUIRED_METRICS if name not in names]
    if missing:
        raise ValueError(f"Alpasim timestep_metrics lack {missing}; have {sorted(names)}")
    timestamps = np.unique(np.concatenate([np.asarray(r["timestamps_us"], dtype=np.int64) for r in records]))
    values, aggregation = {}, {}
    for record in records:
        at = np.searchsorted(timestamps, np.asarray(record["timestamps_us"], dtype=np.int64))
        column = np.full(len(timestamps), np.nan)
        valid = np.asarray(record["valid"], dtype=bool)
        if len(valid) == 0:  # protobuf leaves an unset repeated field empty: read it as all valid
            valid = np.ones(len(at), dtype=bool)
        column[at] = np.where(valid, np.asarray(record["values"], dtype=np.float64), np.nan)
        values[record["name"]] = column
        aggregation[record["name"]] = _time_aggregation(record["time_aggregation"])
    if "offroad" not in values:
        logger.warning("Alpasim timestep_metrics have no offroad (no map loaded?); counting it as 0")
        values["offroad"] = np.zeros(len(timestamps))
        aggregation["offroad"] = TimeAggregation.MAX
    return TimestepMetrics(timestamps, values, aggregation)


def summarize_alpasim(
    rollouts: Sequence[Sequence[Mapping]],
    recorded_path_lengths_m: Sequence[float] | None = None,
    open_loop_min_ade: np.ndarray | None = None,
    max_dist_to_gt_m: float = MAX_DIST_TO_GT_TRAJECTORY_M,
) -> dict[str, float]:
    """Headline numbers (``summary.summarize``) for Alpasim rollouts, each a list of timestep_metrics records."""
    tables = [timestep_metrics_from_alpasim(records) for records in rollouts]
    if recorded_path_lengths_m is not None:
        for table, length in zip(tables, recorded_path_lengths_m, strict=True):
            table.values["gt_dist_traveled_m"] = np.full(len(table), float(length))
            table.aggregation["gt_dist_traveled_m"] = TimeAggregation.LAST
    return summarize(tables, open_loop_min_ade, max_dist_to_gt_m)
