"""`redux bench policy`: the report's structure (never its timings)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from redux.bench.policy import BenchConfigError, run_policy_bench, synthetic_observations
from redux.cli import app
from redux.config import PolicyConfig
from redux.policy.alpamayo.factory import build_alpamayo
from redux.policy.alpamayo.presets import get_preset
from redux.policy.alpamayo.reasoning import MODES


@pytest.fixture(scope="module")
def report():
    threads = torch.get_num_threads()
    seen = []
    result = run_policy_bench("tiny", "torch", batches=[1, 2], repeats=1, warmup=1, progress=seen.append)
    assert torch.get_num_threads() == threads  # the bench leaves the process as it found it
    assert seen == ["latency at batch 1", "samples/s at batch 1", "samples/s at batch 2"]
    return result


def test_report_has_a_row_per_mode_with_latency_and_throughput(report):
    assert report["preset"] == "tiny" and report["engine"] == "torch" and report["batches"] == [1, 2]
    assert [row["mode"] for row in report["rows"]] == list(MODES)
    keys = ["engine", "mode", "p50_ms", "p95_ms", "prepare_ms", "reasoning_ms", "flow_ms", "tokens", "samples_per_s@1",
            "samples_per_s@2"]  # fmt: skip
    preset = get_preset("tiny")
    for row in report["rows"]:
        assert list(row) == [*keys, "best_samples_per_s", "best_batch"]  # one column order: one table
        assert row["p95_ms"] >= row["p50_ms"] > 0
        assert row["best_batch"] in (1, 2)
        assert row["best_samples_per_s"] == max(row["samples_per_s@1"], row["samples_per_s@2"])
    tokens = {row["mode"]: row["tokens"] for row in report["rows"]}
    assert tokens["none"] == 0
    assert tokens["lcdrive"] == preset.latent_blocks * (preset.proposal_tokens + 1) + 2
    assert 1 <= tokens["coc"] <= preset.max_reasoning_tokens
    json.dumps(report)  # bench.json


def test_ratios_are_to_mode_none_of_the_same_run(report):
    rows = {row["mode"]: row for row in report["rows"]}
    assert set(report["ratios"]) == {"coc", "cfvla", "lcdrive"}
    for mode, ratio in report["ratios"].items():
        assert ratio["latency_over_none"] == pytest.approx(rows[mode]["p50_ms"] / rows["none"]["p50_ms"])
        assert ratio["throughput_over_none"] == pytest.approx(
            rows[mode]["best_samples_per_s"] / rows["none"]["best_samples_per_s"]
        )


def test_synthetic_observations_fit_the_preset():
    preset = get_preset("teacher")
    obs = synthetic_observations(preset, 3)
    assert len(obs) == 3
    for o in obs:
        assert set(o.cameras) == set(preset.cameras)
        shape = (preset.frames, preset.vision.channels, preset.image_height, preset.image_width)
        assert o.cameras[preset.cameras[0]].shape == shape and o.cameras[preset.cameras[0]].dtype == np.uint8
        assert o.ego_history.shape == (16, 3)


@pytest.mark.parametrize(
    "kwargs",
    [dict(preset="nope"), dict(preset="tiny", modes=["fast"]), dict(preset="tiny", engine="jax"),
     dict(preset="tiny", batches=[0]), dict(preset="tiny-0.5b"), dict(preset="tiny", dtype="fp8"),
     dict(preset="tiny", engine="vllm", dtype="bfloat16")],
)  # fmt: skip
def test_invalid_requests_fail_before_measuring(kwargs):
    with pytest.raises(BenchConfigError):
        run_policy_bench(**kwargs)


def test_cli_prints_json_and_writes_bench_json(tmp_path):
    result = CliRunner().invoke(
        app,
        ["bench", "policy", "--preset", "tiny", "--engine", "torch", "--modes", "none,lcdrive", "--batches", "1",
         "--repeats", "1", "--dtype", "bfloat16", "--flow-steps", "3", "--json", "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert (printed["device"], printed["dtype"], printed["flow_steps"]) == ("cpu", "bfloat16", 3)
    prompt = build_alpamayo(PolicyConfig(kind="alpamayo", preset="tiny")).prompts
    assert printed["prompt_tokens"] == prompt.length + 1  # the template and the mode's opening token
    assert [row["mode"] for row in printed["rows"]] == ["none", "lcdrive"]
    assert set(printed["ratios"]) == {"lcdrive"}
    assert json.loads((tmp_path / "bench.json").read_text()) == printed


def test_cli_rejects_an_unknown_mode(tmp_path):
    result = CliRunner().invoke(app, ["bench", "policy", "--modes", "none,fast", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert not (tmp_path / "bench.json").exists()


def test_cli_prints_tables(tmp_path):
    result = CliRunner().invoke(
        app, ["bench", "policy", "--modes", "none,coc", "--batches", "1", "--repeats", "1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    for title in ("latency at batch 1", "samples/s", "ratios to mode none"):
        assert title in result.output
    assert f"wrote {tmp_path / 'bench.json'}" in result.output.replace("\n", "")
