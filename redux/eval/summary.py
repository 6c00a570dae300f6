"""The headline numbers of specs/metrics.md, from the scores of many rollouts.

Rates are percentages of rollouts. The AlpaSim score (km between incidents) pools
all rollouts into one ratio, so it has no _std twin; with no incident at all the
ratio is +inf (Alpasim's polars division gives the same), so ``km_driven`` and the
incident counts are reported beside it. (Alpasim pools per rollout index across
scenes and then averages those ratios; with one rollout per scene that is this
same pooled ratio.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from redux.eval.aggregation import MAX_DIST_TO_GT_TRAJECTORY_M, mean_and_std, rollout_scores
from redux.eval.metrics import TimestepMetrics

SHORT_PATH_M = 5.0  # recorded paths shorter than this get full progress credit
PROGRESS_SATURATION = 0.8  # progress ≥ 80 % of the recorded path earns the full progress score


def progress_score(progress: float, recorded_path_length_m: float) -> float:
    """Alpasim's scene progress score; an unknown (NaN) path length counts as a long path."""
    if recorded_path_length_m < SHORT_PATH_M:
        return 1.0
    return min(min(max(progress, 0.0), 1.0) / PROGRESS_SATURATION, 1.0)


def driving_score(progress: float, recorded_path_length_m: float, collision_at_fault: bool, offroad: bool) -> float:
    """Alpasim's scene score for one rollout: 0 after an at-fault collision or going offroad, else progress score."""
    if collision_at_fault or offroad:
        return 0.0
    return progress_score(progress, recorded_path_length_m)


def km_between_incidents(dist_traveled_m: Sequence[float], incidents: Sequence[float]) -> float:
    """The AlpaSim score: Σ distance driven / Σ incidents / 1000 (km).

    With no incident it is +inf (NaN if nothing was driven either), as the polars
    division in Alpasim's aggregation gives.
    """
    distance, count = float(np.nansum(dist_traveled_m)), float(np.nansum(incidents))
    if count > 0:
        return distance / count / 1000
    return float("inf") if distance > 0 else float("nan")


def rollout_driving_scores(scores: Sequence[dict[str, float]]) -> np.ndarray:
    """The driving score of each rollout, from its ``rollout_scores``; a flag the table lacks
    (NaN) counts as raised, so a rollout is never credited for what was not measured."""

    def flag(s: dict[str, float], name: str) -> bool:
        value = s.get(name, np.nan)
        return bool(np.isnan(value) or value > 0)

    return np.array(
        [
            driving_score(s.get("progress", np.nan), s.get("gt_dist_traveled_m", np.nan),
                          flag(s, "collision_at_fault"), flag(s, "offroad"))
            for s in scores
        ],
        dtype=np.float64,
    )  # fmt: skip


def summarize(
    rollouts: Sequence[TimestepMetrics],
    open_loop_min_ade: np.ndarray | None = None,
    max_dist_to_gt_m: float = MAX_DIST_TO_GT_TRAJECTORY_M,
) -> dict[str, float]:
    """Headline numbers over rollouts (each a per-timestep table), as in specs/metrics.md.

    Rollouts in which the policy never took control are left out (``rollouts``
    counts the scored ones). ``open_loop_min_ade`` is the per-example minADE_6 of an
    open-loop pass (``plans.open_loop_min_ade``); NaN when not given. Metrics a
    table lacks (Alpasim sends no close_encounter) give NaN rates.
    """
    scores = [s for s in (rollout_scores(r, max_dist_to_gt_m) for r in rollouts) if s]

    def column(name: str) -> np.ndarray:
        return np.array([s.get(name, np.nan) for s in scores], dtype=np.float64)

    def indicator(name: str) -> np.ndarray:
        values = column(name)
        return np.where(np.isnan(values), np.nan, values > 0)

    collision_at_fault, offroad = indicator("collision_at_fault"), indicator("offroad")
    driving = rollout_driving_scores(scores)
    summary: dict[str, float] = {"rollouts": len(scores)}
    for name, values, scale in (
        ("collision_rate", collision_at_fault, 100.0),
        ("offroad_rate", offroad, 100.0),
        ("close_encounter_rate", indicator("close_encounter"), 100.0),
        ("driving_score", np.asarray(driving, dtype=np.float64), 1.0),
    ):
        mean, std = mean_and_std(values)
        summary[name], summary[f"{name}_std"] = scale * mean, scale * std
    distance = column("dist_traveled_m")
    summary["alpasim_score_km"] = km_between_incidents(distance, indicator("offroad_or_collision"))
    summary["alpasim_score_km_at_fault"] = km_between_incidents(distance, indicator("offroad_or_collision_at_fault"))
    summary["km_driven"] = float(np.nansum(distance)) / 1000
    summary["incidents"] = float(np.nansum(indicator("offroad_or_collision")))
    summary["incidents_at_fault"] = float(np.nansum(indicator("offroad_or_collision_at_fault")))
    summary["min_ade_6"], summary["min_ade_6_std"] = mean_and_std(
        [] if open_loop_min_ade is None else open_loop_min_ade
    )
    return summary
