"""Warm-up removal, truncation, time aggregation, the headline numbers and the paired comparison
of two evaluations, on hand-made tables."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from redux.eval.aggregation import (
    aggregate_over_time,
    mean_and_std,
    rollout_scores,
    scored_steps,
    seed_interval_95,
)
from redux.actors.evaluation_job import metrics_table
from redux.cli import app
from redux.actors.generators.evaluation import EvaluatedRollout
from redux.eval.metrics import TIME_AGGREGATION, TimeAggregation, TimestepMetrics
from redux.eval.paired import ScenarioSplit, compare_evaluations, compare_scene_scores, scene_driving_scores
from redux.eval.summary import driving_score, km_between_incidents, progress_score, summarize

STEPS = 10


def table(**columns) -> TimestepMetrics:
    """A 10-step rollout driving 10 m per step along a 100 m recorded path; columns override the defaults."""
    values = {
        "collision_front": np.zeros(STEPS),
        "collision_rear": np.zeros(STEPS),
        "collision_lateral": np.zeros(STEPS),
        "offroad": np.zeros(STEPS),
        "close_encounter": np.zeros(STEPS),
        "progress": np.arange(STEPS) / 10,  # 0.0 … 0.9
        "dist_to_gt_trajectory": np.zeros(STEPS),
        "dist_traveled_m": np.arange(STEPS) * 10.0,
        "gt_dist_traveled_m": np.full(STEPS, 100.0),
        "eval_relevant": np.ones(STEPS),
    }
    values.update({name: np.asarray(v, dtype=np.float64) for name, v in columns.items()})
    return TimestepMetrics(np.arange(STEPS) * 100_000, values, {name: TIME_AGGREGATION[name] for name in values})


def at(step: int) -> np.ndarray:
    flags = np.zeros(STEPS)
    flags[step] = 1.0
    return flags


def test_truncation_keeps_the_first_incident_step():
    steps = scored_steps(table(collision_lateral=at(6) + at(8)))
    assert steps.timestamps_us.tolist() == [k * 100_000 for k in range(7)]
    scores = rollout_scores(table(collision_lateral=at(6) + at(8)))
    assert scores["collision_at_fault"] == 1.0
    assert scores["progress"] == pytest.approx(0.6)  # LAST, at the incident step
    assert scores["dist_traveled_m"] == 60.0


def test_truncation_uses_any_collision_so_a_rear_end_hides_a_later_at_fault_crash():
    scores = rollout_scores(table(collision_rear=at(3), collision_front=at(5)))
    assert scores["collision_any"] == 1.0
    assert scores["collision_at_fault"] == 0.0
    assert scores["offroad_or_collision_at_fault"] == 0.0


def test_offroad_is_an_incident_too():
    scores = rollout_scores(table(offroad=at(4)))
    assert scores["offroad_or_collision"] == 1.0 and scores["offroad_or_collision_at_fault"] == 1.0
    assert scores["progress"] == pytest.approx(0.4)


def test_steps_at_or_beyond_4m_from_the_recorded_path_are_cut_after_the_first():
    dist = [0.0, 0.5, 1.0, 2.0, 3.0, 3.99, 4.0, 5.0, 6.0, 7.0]
    scores = rollout_scores(table(dist_to_gt_trajectory=dist, collision_front=at(8)))
    assert scores["dist_to_gt_trajectory"] == 4.0  # the step reaching 4 m is kept, the crash at step 8 is not
    assert scores["collision_at_fault"] == 0.0
    assert scores["progress"] == pytest.approx(0.6)


def test_an_incident_before_the_4m_cut_still_counts():
    dist = [0.0, 0.0, 0.0, 0.0, 5.0, 6.0, 6.0, 6.0, 6.0, 6.0]
    assert rollout_scores(table(dist_to_gt_trajectory=dist, collision_front=at(2)))["collision_at_fault"] == 1.0


def test_warmup_steps_are_dropped_before_anything_else():
    warmup = [0, 0, 0, 1, 1, 1, 1, 1, 1, 1]
    scores = rollout_scores(table(eval_relevant=warmup, collision_front=at(1), offroad=at(2)))
    assert scores["collision_at_fault"] == 0.0 and scores["offroad"] == 0.0
    assert scores["progress"] == pytest.approx(0.9)  # not truncated: the incidents were in the warm-up
    assert len(scored_steps(table(eval_relevant=warmup))) == 7
    assert rollout_scores(table(eval_relevant=np.zeros(STEPS))) == {}  # the policy never drove


def test_time_aggregations_skip_missing_values():
    v = np.array([np.nan, 3.0, 1.0, 2.0, np.nan])
    assert aggregate_over_time(v, TimeAggregation.MEAN) == 2.0
    assert aggregate_over_time(v, TimeAggregation.MEDIAN) == 2.0
    assert aggregate_over_time(v, TimeAggregation.MAX) == 3.0
    assert aggregate_over_time(v, TimeAggregation.MIN) == 1.0
    assert aggregate_over_time(v, TimeAggregation.LAST) == 2.0
    assert np.isnan(aggregate_over_time(np.full(3, np.nan), TimeAggregation.MEAN))


def test_driving_score_cases():
    assert progress_score(0.0, 3.0) == 1.0  # recorded path shorter than 5 m: full credit
    assert progress_score(0.4, 100.0) == pytest.approx(0.5)  # 0.4 / 0.8
    assert progress_score(0.9, 100.0) == 1.0  # saturates at 80 %
    assert progress_score(-0.2, 100.0) == 0.0
    assert driving_score(0.4, 100.0, collision_at_fault=False, offroad=False) == pytest.approx(0.5)
    assert driving_score(1.0, 100.0, collision_at_fault=True, offroad=False) == 0.0
    assert driving_score(1.0, 3.0, collision_at_fault=False, offroad=True) == 0.0


def test_alpasim_km_between_incidents():
    assert km_between_incidents([1500.0, 2500.0], [1.0, 0.0]) == pytest.approx(4.0)
    assert km_between_incidents([1500.0, 2500.0], [1.0, 1.0]) == pytest.approx(2.0)
    assert km_between_incidents([1500.0, 2500.0], [0.0, 0.0]) == np.inf


def test_summary_headline_numbers():
    rollouts = [
        table(),  # clean: progress 0.9 → score 1.0, 90 m
        table(collision_front=at(4)),  # at fault at 40 m: score 0
        table(collision_rear=at(2), close_encounter=at(1)),  # rear-ended at 20 m: progress 0.2 → 0.25
        table(offroad=at(9), gt_dist_traveled_m=np.full(STEPS, 4.0)),  # offroad: 0 despite the short path
        table(eval_relevant=np.zeros(STEPS)),  # never under policy control: not scored
    ]
    s = summarize(rollouts, open_loop_min_ade=np.array([0.5, 1.5]))
    assert s["rollouts"] == 4
    assert s["collision_rate"] == pytest.approx(25.0)
    assert s["offroad_rate"] == pytest.approx(25.0)
    assert s["close_encounter_rate"] == pytest.approx(25.0)
    assert s["driving_score"] == pytest.approx((1.0 + 0.0 + 0.25 + 0.0) / 4)
    assert s["driving_score_std"] == pytest.approx(np.std([1.0, 0.0, 0.25, 0.0], ddof=1))
    assert s["collision_rate_std"] == pytest.approx(100 * np.std([0, 1, 0, 0], ddof=1))
    # 90 + 40 + 20 + 90 m = 0.24 km over 3 incidents (2 at fault)
    assert s["km_driven"] == pytest.approx(0.24)
    assert s["alpasim_score_km"] == pytest.approx(0.08)
    assert s["alpasim_score_km_at_fault"] == pytest.approx(0.12)
    assert s["min_ade_6"] == 1.0 and s["min_ade_6_std"] == pytest.approx(np.sqrt(0.5))


def test_mean_std_and_seed_interval():
    assert mean_and_std([1.0, 3.0]) == (2.0, pytest.approx(np.sqrt(2)))
    mean, std = mean_and_std([5.0])
    assert mean == 5.0 and np.isnan(std)
    mean, low, high = seed_interval_95([1.0, 2.0, 3.0])
    # t(0.975, 2) = 4.3027; std 1; half-width 4.3027 / √3
    assert mean == 2.0 and high - mean == pytest.approx(4.3027 / np.sqrt(3), rel=1e-4) and low == 2 * mean - high
    many = np.arange(100.0)
    _, low, high = seed_interval_95(many)
    assert (high - low) / 2 == pytest.approx(1.9842 * np.std(many, ddof=1) / 10, rel=1e-4)  # t(0.975, 99)


def _evaluation(tables: dict[int, TimestepMetrics], scenarios: dict[int, str] | None = None) -> pd.DataFrame:
    """The metrics.parquet table `redux eval` writes for these rollouts (scene id → table)."""
    scenarios = scenarios or {}
    return metrics_table(
        [EvaluatedRollout(scene, scenarios.get(scene, "cruise"), False, t, 1.0, 0.5) for scene, t in tables.items()]
    )


def test_scene_scores_from_the_saved_table_are_the_scores_summarize_averages():
    rollouts = {
        3: table(),  # full progress: 0.9 / 0.8 saturates at 1
        7: table(collision_front=at(5)),  # at fault: 0
        9: table(progress=np.linspace(0, 0.4, STEPS)),  # 0.4 / 0.8 = 0.5
        11: table(offroad=at(6)),
    }
    scores = scene_driving_scores(_evaluation(rollouts))
    assert scores.to_dict() == pytest.approx({3: 1.0, 7: 0.0, 9: 0.5, 11: 0.0})
    assert scores.mean() == pytest.approx(summarize(list(rollouts.values()))["driving_score"])


def test_a_policy_better_in_every_scene_is_clearly_better_and_equal_ones_tie():
    a = pd.Series([1.0, 1.0, 0.9, 1.0], index=[0, 1, 2, 3])
    b = pd.Series([0.0, 0.5, 0.4, 0.0], index=[3, 2, 1, 0])  # order does not matter: scenes pair by id
    result = compare_scene_scores(a, b, resamples=2000)
    assert (result.better_a, result.better_b, result.ties) == (4, 0, 0)
    assert result.difference == pytest.approx(a.mean() - b.reindex(a.index).mean())
    assert result.interval_95[0] > 0
    same = compare_scene_scores(a, a.copy(), resamples=100)
    assert same.difference == 0 and same.interval_95 == (0.0, 0.0) and same.ties == 4


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=40), st.integers(0, 2**31))
def test_the_paired_difference_and_its_interval_stay_within_the_scene_differences(pairs, seed):
    a = pd.Series([p[0] for p in pairs])
    b = pd.Series([p[1] for p in pairs])
    result = compare_scene_scores(a, b, resamples=200, seed=seed)
    differences = a - b
    assert result.better_a + result.better_b + result.ties == result.scenes == len(pairs)
    assert result.difference == pytest.approx(differences.mean())
    low, high = result.interval_95
    assert differences.min() - 1e-12 <= low <= high <= differences.max() + 1e-12


def test_the_comparison_splits_the_scenes_each_policy_wins_by_scenario(tmp_path):
    scenarios = {0: "curve", 1: "curve", 2: "curve", 3: "nudge", 4: "straight"}
    teacher = {0: table(offroad=at(5)), 1: table(offroad=at(5)), 2: table(), 3: table(), 4: table()}
    keeper = {0: table(), 1: table(), 2: table(), 3: table(collision_front=at(5)), 4: table()}
    for name, rollouts in (("teacher", teacher), ("keeper", keeper)):
        (tmp_path / name).mkdir()
        _evaluation(rollouts, scenarios).to_parquet(tmp_path / name / "metrics.parquet")
    result = compare_evaluations(tmp_path / "teacher", tmp_path / "keeper", resamples=50)
    assert result.by_scenario == {
        "curve": ScenarioSplit(scenes=3, difference=pytest.approx(-2 / 3), better_a=0, better_b=2),
        "nudge": ScenarioSplit(scenes=1, difference=1.0, better_a=1, better_b=0),
        "straight": ScenarioSplit(scenes=1, difference=0.0, better_a=0, better_b=0),
    }
    assert sum(split.better_b for split in result.by_scenario.values()) == result.better_b
    output = CliRunner().invoke(app, ["compare", str(tmp_path / "teacher"), str(tmp_path / "keeper")]).output
    lines = output.splitlines()
    curve, nudge = (next(i for i, line in enumerate(lines) if line.strip().startswith(n)) for n in ("curve", "nudge"))
    assert curve < nudge and "B in 2 of 3 scenes" in lines[curve] and "straight" not in output  # worst first; ties left out
    with pytest.raises(ValueError, match="no scenario for scenes \\[4\\]"):
        compare_scene_scores(pd.Series([1.0, 0.0], index=[3, 4]), pd.Series([0.0, 0.0], index=[3, 4]),
                             scenarios=pd.Series({3: "nudge"}))


def test_comparisons_refuse_different_scenes_suites_and_folders(tmp_path):
    with pytest.raises(ValueError, match="different scenes"):
        compare_scene_scores(pd.Series([1.0, 0.0], index=[0, 1]), pd.Series([1.0, 0.0], index=[0, 2]))
    with pytest.raises(ValueError, match="resamples"):
        compare_scene_scores(pd.Series([1.0]), pd.Series([1.0]), resamples=0)
    with pytest.raises(ValueError, match="no column"):
        scene_driving_scores(pd.DataFrame({"progress": [0.5]}))
    for name, suite in (("val", "minisim-val:2"), ("test", "minisim-test:2")):
        (tmp_path / name).mkdir()
        _evaluation({0: table(), 1: table(offroad=at(4))}).to_parquet(tmp_path / name / "metrics.parquet")
        (tmp_path / name / "summary.json").write_text(json.dumps({"suite": suite}))
    with pytest.raises(ValueError, match="different suites"):
        compare_evaluations(tmp_path / "val", tmp_path / "test")
    with pytest.raises(FileNotFoundError, match="metrics.parquet"):
        compare_evaluations(tmp_path / "val", tmp_path)
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "val"), str(tmp_path / "test")])
    assert result.exit_code != 0 and "different suites" in result.output
    (tmp_path / "test" / "summary.json").write_text(json.dumps({"suite": "minisim-val:2"}))
    assert compare_evaluations(tmp_path / "val", tmp_path / "test", resamples=50).difference == 0
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "val"), str(tmp_path / "test"), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["ties"] == 2
