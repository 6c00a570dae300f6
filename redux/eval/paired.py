"""Does policy A drive better than policy B? A paired comparison of two evaluations.

Two `redux eval` runs of the same suite drive the same scenes, so the question is
answered scene by scene: the difference of the two driving scores in each scene, its
mean, and a bootstrap interval over scenes. Pairing removes what the scenes themselves
contribute (a hard scene is hard for both); it narrows the interval only as far as the two
policies fail in the same scenes, and the count of scenes each wins shows how far that is.
Split by scenario, the same counts show where each policy loses its scenes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from redux.eval.aggregation import rollout_scores
from redux.eval.metrics import TIME_AGGREGATION, TimestepMetrics
from redux.eval.summary import rollout_driving_scores

METRICS_FILE = "metrics.parquet"
SUMMARY_FILE = "summary.json"


def table_rollouts(table: pd.DataFrame) -> list[tuple[int, TimestepMetrics]]:
    """(scene id, per-timestep metrics) of each rollout in an evaluation's metrics table,
    whose rollouts follow one another, each starting at step 0."""
    missing = {"scene_id", "step", "time_us"} - set(table.columns)
    if missing:
        raise ValueError(f"not an evaluation metrics table: no column {sorted(missing)}")
    starts = np.flatnonzero(table["step"].to_numpy() == 0).tolist()
    if not starts or starts[0] != 0:
        raise ValueError("metrics table: the first row must start a rollout (step 0)")
    names = [c for c in table.columns if c in TIME_AGGREGATION]  # the metrics, not the scene and step keys
    rollouts = []
    for begin, end in zip(starts, starts[1:] + [len(table)]):
        block = table.iloc[begin:end]
        values = {name: block[name].to_numpy(dtype=np.float64) for name in names}
        metrics = TimestepMetrics(block["time_us"].to_numpy(dtype=np.int64), values, {n: TIME_AGGREGATION[n] for n in names})
        rollouts.append((int(block["scene_id"].iloc[0]), metrics))
    return rollouts


def scene_driving_scores(table: pd.DataFrame) -> pd.Series:
    """Driving score per scene (the mean over that scene's rollouts), scored as `summarize`
    scores them; rollouts in which the policy never took control are left out, as there."""
    scene_ids, scores = [], []
    for scene_id, metrics in table_rollouts(table):
        scored = rollout_scores(metrics)
        if scored:
            scene_ids.append(scene_id)
            scores.append(scored)
    values = rollout_driving_scores(scores)
    return pd.Series(values, index=pd.Index(scene_ids, name="scene_id")).groupby(level=0).mean()


def scene_scenarios(table: pd.DataFrame) -> pd.Series:
    """The scenario of each scene of an evaluation's metrics table (empty for tables without one)."""
    if "scenario" not in table.columns:
        return pd.Series(dtype=object, index=pd.Index([], name="scene_id"))
    return table.groupby("scene_id")["scenario"].first()


@dataclass(frozen=True)
class ScenarioSplit:
    """The paired comparison restricted to one scenario's scenes."""

    scenes: int
    difference: float  # mean over these scenes of A's score minus B's
    better_a: int
    better_b: int


@dataclass(frozen=True)
class PairedComparison:
    scenes: int
    score_a: float
    score_b: float
    difference: float  # mean over scenes of A's score minus B's
    interval_95: tuple[float, float]  # bootstrap percentile interval of the difference
    better_a: int  # scenes A scores higher in
    better_b: int
    ties: int
    resamples: int
    by_scenario: dict[str, ScenarioSplit] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def compare_scene_scores(
    a: pd.Series, b: pd.Series, resamples: int = 10_000, seed: int = 0, scenarios: pd.Series | None = None
) -> PairedComparison:
    """Paired comparison of two per-scene score series over the same scenes; ``scenarios``
    (scene id → scenario name) splits the counts by scenario."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    only_a, only_b = sorted(set(a.index) - set(b.index)), sorted(set(b.index) - set(a.index))
    if only_a or only_b:
        raise ValueError(
            f"the evaluations scored different scenes (only in A: {only_a[:10]}, only in B: {only_b[:10]}); "
            "compare runs of the same suite"
        )
    if len(a) == 0:
        raise ValueError("no scored scene to compare")
    b = b.reindex(a.index)
    differences = a.to_numpy() - b.to_numpy()
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(differences), size=(resamples, len(differences)))
    means = differences[draws].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return PairedComparison(
        scenes=len(differences),
        score_a=float(a.mean()),
        score_b=float(b.mean()),
        difference=float(differences.mean()),
        interval_95=(float(low), float(high)),
        better_a=int((differences > 0).sum()),
        better_b=int((differences < 0).sum()),
        ties=int((differences == 0).sum()),
        resamples=resamples,
        by_scenario=_split_by_scenario(pd.Series(differences, index=a.index), scenarios),
    )


def _split_by_scenario(differences: pd.Series, scenarios: pd.Series | None) -> dict[str, ScenarioSplit]:
    if scenarios is None or scenarios.empty:
        return {}
    unnamed = sorted(set(differences.index) - set(scenarios.index))
    if unnamed:
        raise ValueError(f"no scenario for scenes {unnamed[:10]}")
    splits = {}
    for name, group in differences.groupby(scenarios.reindex(differences.index)):
        splits[str(name)] = ScenarioSplit(
            scenes=len(group),
            difference=float(group.mean()),
            better_a=int((group > 0).sum()),
            better_b=int((group < 0).sum()),
        )
    return splits


def compare_evaluations(a: Path, b: Path, resamples: int = 10_000, seed: int = 0) -> PairedComparison:
    """Paired comparison of two `redux eval` output folders (each with metrics.parquet)."""
    tables, suites = [], []
    for folder in (Path(a), Path(b)):
        path = folder / METRICS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{folder} has no {METRICS_FILE}: pass the --out folder of a `redux eval`")
        tables.append(pd.read_parquet(path))
        summary = folder / SUMMARY_FILE
        suites.append(json.loads(summary.read_text()).get("suite") if summary.is_file() else None)
    if None not in suites and suites[0] != suites[1]:
        # scene ids number the scenes of one suite: the same id in two suites is another scene
        raise ValueError(f"the evaluations drove different suites ({suites[0]} and {suites[1]})")
    scores = [scene_driving_scores(t) for t in tables]
    return compare_scene_scores(*scores, resamples=resamples, seed=seed, scenarios=scene_scenarios(tables[0]))
