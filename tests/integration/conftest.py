"""Fixtures shared by the integration tests."""

from pathlib import Path

import pytest

from redux.buffer.codec import encode_tensors
from redux.config import RunConfig, config_to_yaml
from redux.policy.loading import POLICY_WEIGHTS
from redux.policy.torch_engine import make_policy_replica


@pytest.fixture(scope="module")
def tiny_alpamayo_run(tmp_path_factory) -> Path:
    """An untrained tiny Alpamayo run directory: it reads two frames of the BEV raster."""
    run = tmp_path_factory.mktemp("tiny-alpamayo")
    cfg = RunConfig()
    cfg.sim.kind, cfg.sim.cameras = "minisim", ["bev"]
    cfg.policy.kind, cfg.policy.preset = "alpamayo", "tiny"
    (run / "config.yaml").write_text(config_to_yaml(cfg))
    weights = make_policy_replica(cfg.policy, cfg.sim, seed=0).named_weights()
    directory = run / "checkpoints" / "step00000001"
    directory.mkdir(parents=True)
    (directory / POLICY_WEIGHTS).write_bytes(encode_tensors(weights))
    return run
