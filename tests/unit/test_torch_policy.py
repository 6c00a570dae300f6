import numpy as np
import torch

from redux.config import RunConfig
from redux.policy.action_space import estimate_speed, integrate
from redux.policy.torch_engine import TorchPolicy, gaussian_log_prob
from redux.sim_bridge import make_session


def small_cfg(**policy):
    cfg = RunConfig()
    cfg.sim.bev_pixels = 32
    cfg.policy.hidden = 32
    for k, v in policy.items():
        setattr(cfg.policy, k, v)
    return cfg


def observations(cfg, n):
    return [make_session(cfg.sim).reset(i, 0) for i in range(n)]


def test_batched_act_shapes_and_version():
    cfg = small_cfg(num_samples=3)
    policy = TorchPolicy(cfg.policy, cfg.sim)
    out = policy.act(observations(cfg, 4), num_samples=3)
    assert out.actions.shape == (4, 3, 64, 2)
    assert out.poses.shape == (4, 3, 64, 3)
    assert out.log_probs.shape == (4, 3)
    assert out.weight_version == 0
    assert out.timings["total_ms"] >= out.timings["forward_ms"] > 0


def test_greedy_samples_are_identical_and_noise_samples_differ():
    cfg = small_cfg(sample_std=0.2)
    policy = TorchPolicy(cfg.policy, cfg.sim)
    obs = observations(cfg, 1)
    greedy = policy.act(obs, num_samples=2, greedy=True)
    np.testing.assert_array_equal(greedy.actions[0, 0], greedy.actions[0, 1])
    noisy = policy.act(obs, num_samples=2)
    assert not np.allclose(noisy.actions[0, 0], noisy.actions[0, 1])


def test_log_prob_matches_torch_normal():
    noise = np.random.default_rng(0).normal(0, 0.3, size=(2, 3, 64, 2))
    expected = torch.distributions.Normal(0.0, 0.3).log_prob(torch.from_numpy(noise)).sum(dim=(-1, -2)).numpy()
    np.testing.assert_allclose(gaussian_log_prob(noise, 0.3), expected, rtol=1e-6)


def test_load_weights_changes_the_plan_and_version():
    cfg = small_cfg()
    a, b = TorchPolicy(cfg.policy, cfg.sim, seed=1), TorchPolicy(cfg.policy, cfg.sim, seed=2)
    obs = observations(cfg, 2)
    assert not np.allclose(a.act(obs, greedy=True).actions, b.act(obs, greedy=True).actions)
    b.load_weights(a.named_weights(), version=7)
    np.testing.assert_allclose(a.act(obs, greedy=True).actions, b.act(obs, greedy=True).actions, atol=1e-6)
    assert b.weight_version == 7


def test_plan_poses_are_the_actions_integrated_from_the_observed_speed():
    cfg = small_cfg()
    obs = observations(cfg, 1)
    out = TorchPolicy(cfg.policy, cfg.sim).act(obs, greedy=True)
    speed = float(estimate_speed(obs[0].ego_history[None, :, :2])[0])
    np.testing.assert_allclose(out.poses[0, 0], integrate(out.actions[0, 0], speed), atol=1e-4)
