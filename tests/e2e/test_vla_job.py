"""The Alpamayo recipe end to end: expert demonstrations → DeepSpeed vla objective →
checkpoint → closed-loop evaluation of that checkpoint with its reasoning mode."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_teacher_recipe_trains_a_checkpoint_that_drives(tmp_path):
    run = [
        sys.executable, "-m", "redux", "run", "configs/teacher.yaml",
        "--set", f"runs_dir={tmp_path}", "--set", "name=vla",
        "--set", "policy.preset=tiny", "--set", "sim.sessions_per_actor=2", "--set", "actors.rollout_steps=2",
        "--set", "learner.steps=4", "--set", "learner.publish_every=2", "--set", "learner.checkpoint_every=4",
        "--set", "learner.rollouts_per_step=2", "--set", "ray.num_cpus=2",
    ]  # fmt: skip
    done = subprocess.run(run, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "vla" / "summary.json").read_text())
    assert summary["learner_steps"] == 4 and summary["weight_version_final"] >= 2
    assert (tmp_path / "vla" / "checkpoints" / "step00000004" / "policy.weights").is_file()

    out = tmp_path / "eval"
    evaluate = [
        sys.executable, "-m", "redux", "eval", "--policy", str(tmp_path / "vla"), "--suite", "minisim-test:2",
        "--out", str(out), "--set", "sim.episode_steps=5", "--set", "sim.sessions_per_actor=2",
    ]  # fmt: skip
    done = subprocess.run(evaluate, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    scored = json.loads((out / "summary.json").read_text())
    assert scored["rollouts"] == 2 and 0.0 <= scored["driving_score"] <= 1.0
    assert scored["decision_ms"] > 0
    assert 0.0 <= scored["reasoning_consistency"] <= 1.0 and scored["think_rate"] == 0.0  # coc never thinks
    assert scored["reasoning_examples"]
