"""`redux select` scores every checkpoint closed loop and picks the best driver, not the last."""

import json

import numpy as np
import torch

from redux.actors.checkpoint_selection import SELECTION_FILE, select_checkpoint
from redux.buffer.codec import encode_tensors
from redux.config import RunConfig, config_to_yaml
from redux.policy.loading import POLICY_WEIGHTS
from redux.policy.torch_engine import TorchPolicy


def constant_plan_weights(policy: TorchPolicy, normalised_curvature: float) -> dict[str, torch.Tensor]:
    """The planner's head ignores its input and always plans the same actions."""
    weights = policy.named_weights()
    weights["head.4.weight"] = torch.zeros_like(weights["head.4.weight"])
    bias = torch.zeros(64, 2)
    bias[:, 1] = normalised_curvature
    weights["head.4.bias"] = bias.reshape(-1)
    return weights


def test_the_steady_driver_wins_over_the_later_circling_one(tmp_path):
    cfg = RunConfig()
    cfg.sim.kind, cfg.sim.cameras = "minisim", ["bev"]
    cfg.policy.hidden = 32
    cfg.sim.sessions_per_actor = 4
    cfg.sim.episode_steps = 40
    (tmp_path / "config.yaml").write_text(config_to_yaml(cfg))
    policy = TorchPolicy(cfg.policy, cfg.sim, seed=0)
    # the later checkpoint turns at the curvature bound the whole time and leaves the road
    for step, curvature in ((100, 0.0), (200, 3.0)):
        directory = tmp_path / "checkpoints" / f"step{step:08d}"
        directory.mkdir(parents=True)
        (directory / POLICY_WEIGHTS).write_bytes(encode_tensors(constant_plan_weights(policy, curvature)))

    seen = []
    result = select_checkpoint(cfg, tmp_path, "minisim-val:4", actors=1, progress=seen.append)

    assert [row["step"] for row in result["rows"]] == [100, 200] == [row["step"] for row in seen]
    steady, circling = result["rows"]
    assert circling["offroad_rate"] > steady["offroad_rate"]
    assert circling["driving_score"] < steady["driving_score"]
    assert result["best"]["step"] == 100
    assert json.loads((tmp_path / SELECTION_FILE).read_text()) == result
    assert np.isfinite(steady["decision_ms"])
    assert (tmp_path / "selection" / "step00000100" / "summary.json").is_file()

    # a later call scores only what it has not scored on this suite (a marked earlier score proves reuse)
    earlier = tmp_path / "selection" / "step00000200" / "summary.json"
    earlier.write_text(json.dumps(json.loads(earlier.read_text()) | {"driving_score": 2.0}))
    again = select_checkpoint(cfg, tmp_path, "minisim-val:4", actors=1)
    assert again["best"]["step"] == 200 and again["rows"][0] == result["rows"][0]
    other_suite = select_checkpoint(cfg, tmp_path, "minisim-val:2", actors=1)
    assert other_suite["rows"][1]["driving_score"] < 2.0

    # decoding set by the evaluation (--set policy.flow_steps=4) is scored apart, and named
    decoded = cfg.model_copy(deep=True)
    decoded.policy.flow_steps = 4
    tagged = select_checkpoint(decoded, tmp_path, "minisim-val:2", actors=1)
    assert tagged["decoding"] == {"flow_steps": 4} and result["decoding"] == {}
    assert (tmp_path / "selection" / "step00000200-flow_steps=4" / "summary.json").is_file()
