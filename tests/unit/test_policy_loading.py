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


def _tiny_alpamayo_run(path, trajectory_tokens: bool):
    from redux.policy.torch_engine import make_policy_replica

    cfg = RunConfig()
    cfg.sim.kind, cfg.sim.cameras = "minisim", ["bev"]
    cfg.policy.kind, cfg.policy.preset, cfg.policy.reasoning = "alpamayo", "tiny", "coc"
    cfg.policy.trajectory_tokens, cfg.policy.flow_steps = trajectory_tokens, 3
    (path / "config.yaml").write_text(config_to_yaml(cfg))
    directory = path / "checkpoints" / "step00000010"
    directory.mkdir(parents=True)
    (directory / POLICY_WEIGHTS).write_bytes(encode_tensors(make_policy_replica(cfg.policy, cfg.sim, seed=0).named_weights()))
    return path


def test_an_evaluation_chooses_how_a_checkpoint_decodes_not_what_it_is(tmp_path):
    from redux.config import load_config
    from redux.policy.alpamayo.reasoning import TokenPlan

    run = _tiny_alpamayo_run(tmp_path, trajectory_tokens=True)
    plain = make_policy(str(run), RunConfig())  # every other setting is the run's own
    assert plain.cfg.plan == "flow" and plain.cfg.flow_steps == 3 and plain.cfg.reasoning == "coc"
    cfg = load_config(None, ["policy.plan=trajectory_tokens", "policy.reasoning=none", "policy.preset=teacher"])
    tokens = make_policy(str(run), cfg)
    assert tokens.cfg.plan == "trajectory_tokens" and tokens.cfg.flow_steps == 3
    assert tokens.cfg.reasoning == "coc" and tokens.cfg.preset == "tiny"  # the network is not the evaluation's to change
    calls = []
    plan = tokens._plan
    tokens._plan = lambda prefix, n, greedy: calls.append(type(prefix)) or plan(prefix, n, greedy)
    obs = [make_session(RunConfig().sim.model_copy(update={"kind": "minisim", "cameras": ["bev"]})).reset(0, 0)]
    tokens.act(obs, greedy=True)
    assert calls == [TokenPlan]


def test_a_checkpoint_without_trajectory_tokens_cannot_plan_with_them(tmp_path):
    from redux.config import load_config

    run = _tiny_alpamayo_run(tmp_path, trajectory_tokens=False)
    with pytest.raises(ValueError, match="not trained on trajectory tokens"):
        make_policy(str(run), load_config(None, ["policy.plan=trajectory_tokens"]))
