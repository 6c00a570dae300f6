import numpy as np
import pytest

from redux.buffer.codec import encode_tensors
from redux.config import RunConfig, config_to_yaml
from redux.policy.loading import POLICY_WEIGHTS, make_policy
from redux.policy.reference import ConstantVelocity
from redux.policy.torch_engine import TorchPolicy
from redux.sim_bridge import make_session


def test_reference_policies_by_name():
    assert isinstance(make_policy("constant-velocity", RunConfig()), ConstantVelocity)


def test_a_run_directory_loads_its_newest_checkpoint(tmp_path):
    cfg = RunConfig()
    cfg.policy.hidden = 32
    (tmp_path / "config.yaml").write_text(config_to_yaml(cfg))
    old, new = TorchPolicy(cfg.policy, cfg.sim, seed=1), TorchPolicy(cfg.policy, cfg.sim, seed=2)
    for step, policy in ((5, old), (10, new)):
        directory = tmp_path / "checkpoints" / f"step{step:08d}"
        directory.mkdir(parents=True)
        (directory / POLICY_WEIGHTS).write_bytes(encode_tensors(policy.named_weights()))
    loaded = make_policy(str(tmp_path), RunConfig())
    obs = [make_session(cfg.sim).reset(0, 0)]
    np.testing.assert_allclose(loaded.act(obs, greedy=True).actions, new.act(obs, greedy=True).actions, atol=1e-6)


def test_neither_a_name_nor_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a reference policy"):
        make_policy(str(tmp_path), RunConfig())
