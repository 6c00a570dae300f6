"""`redux eval` as a user runs it, in-process and spread over Ray actors."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from PIL import Image

from redux.actors.evaluation_job import run_evaluation
from redux.config import RunConfig

pytestmark = pytest.mark.e2e

HEADLINE = ("rollouts", "collision_rate", "offroad_rate", "close_encounter_rate", "driving_score",
            "alpasim_score_km", "alpasim_score_km_at_fault", "min_ade_6")


def test_eval_writes_summary_metrics_and_videos(tmp_path):
    out = tmp_path / "eval"
    done = subprocess.run(
        [sys.executable, "-m", "redux", "eval", "--policy", "lane-keeper", "--suite", "minisim-test:3",
         "--out", str(out), "--video", "1", "--set", "sim.episode_steps=40"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    for key in HEADLINE:
        assert key in summary, key
    for key in ("collision_rate", "offroad_rate", "close_encounter_rate", "driving_score", "min_ade_6"):
        assert f"{key}_std" in summary, key
    assert summary["rollouts"] == 3 and "hard" in summary
    table = pd.read_parquet(out / "metrics.parquet")
    assert sorted(table["scene_id"].unique()) == [0, 1, 2]
    assert {"collision_at_fault", "offroad", "progress", "eval_relevant", "min_ade@1s"} <= set(table.columns)
    assert len(table) == 3 * (17 + 40 + 1)  # warm-up, the episode, and the hand-over step
    gifs = list((out / "videos").glob("*.gif"))
    assert len(gifs) == 1 and Image.open(gifs[0]).n_frames == 41


def test_ray_actors_give_the_same_numbers_as_one_process(tmp_path):
    cfg = RunConfig()
    cfg.sim.episode_steps = 30
    cfg.sim.sessions_per_actor = 2
    local = run_evaluation(cfg, "constant-velocity", "minisim-test:6", tmp_path / "local", actors=1)
    spread = run_evaluation(cfg, "constant-velocity", "minisim-test:6", tmp_path / "ray", actors=2)
    for key in HEADLINE:
        assert local[key] == spread[key], key
    assert pd.read_parquet(tmp_path / "local" / "metrics.parquet").equals(
        pd.read_parquet(tmp_path / "ray" / "metrics.parquet")
    )
