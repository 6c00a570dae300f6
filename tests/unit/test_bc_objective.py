import numpy as np
import pytest
import torch
from torch import nn

from redux.bench.learner import synthetic_rollout_tensors
from redux.buffer.codec import RolloutRecord
from redux.config import RunConfig
from redux.learner.batch import collate
from redux.config import LearnerConfig
from redux.learner.objectives import make_objective
from redux.policy import build_model

BC = make_objective(LearnerConfig())


def small_cfg() -> RunConfig:
    cfg = RunConfig()
    cfg.sim.bev_pixels = 32
    cfg.policy.hidden = 32
    return cfg


def record(cfg: RunConfig, steps: int, seed: int) -> RolloutRecord:
    tensors = synthetic_rollout_tensors(cfg, steps, np.random.default_rng(seed))
    return RolloutRecord(actor_id=0, session=seed, episode=0, step_start=0, weight_version=0, created_s=0.0,
                         tensors={**tensors, "log_probs": np.zeros(steps, np.float32)})


class Plan(nn.Module):
    """Predicts a fixed plan whatever it sees."""

    def __init__(self, plan: torch.Tensor):
        super().__init__()
        self.plan = nn.Parameter(plan.clone())

    def forward(self, bev, ego_history):
        return self.plan.expand(bev.shape[0], -1, -1)


def test_loss_is_zero_when_the_model_predicts_the_target():
    cfg = small_cfg()
    model = build_model(cfg.policy, cfg.sim)
    batch = collate([record(cfg, 4, seed=0)], BC.batch_keys)
    with torch.no_grad():
        batch["target_actions"] = model(batch["bev"], batch["ego_history"])
    loss, metrics = BC(model, batch)
    assert loss.item() == 0.0
    assert metrics == {"loss": 0.0, "mse_accel": 0.0, "mse_curvature": 0.0}


def test_metrics_separate_the_two_action_axes():
    cfg = small_cfg()
    batch = collate([record(cfg, 3, seed=0)], BC.batch_keys)
    batch["target_actions"] = torch.zeros(3, 64, 2)
    loss, metrics = BC(Plan(torch.tensor([[1.0, 2.0]]).expand(64, 2)), batch)
    assert metrics["mse_accel"] == pytest.approx(1.0)
    assert metrics["mse_curvature"] == pytest.approx(4.0)
    assert loss.item() == pytest.approx(2.5) == metrics["loss"]


def test_a_few_steps_on_a_fixed_batch_lower_the_loss():
    cfg = small_cfg()
    torch.manual_seed(0)
    model = build_model(cfg.policy, cfg.sim)
    batch = collate([record(cfg, 8, seed=1)], BC.batch_keys)
    batch["target_actions"] = torch.tensor([0.8, -0.5]).expand(8, 64, 2)  # a plan a few steps can learn
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        loss, metrics = BC(model, batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(metrics["loss"])
    assert losses[-1] < 0.8 * losses[0]


def test_collate_concatenates_records_along_the_step_axis():
    cfg = small_cfg()
    first, second = record(cfg, 3, seed=0), record(cfg, 2, seed=1)
    batch = collate([first, second], BC.batch_keys)
    assert set(batch) == {"bev", "ego_history", "target_actions"}  # log_probs: not needed by BC
    assert batch["bev"].shape == (5, 2, 3, 32, 32) and batch["bev"].dtype == torch.uint8
    assert batch["ego_history"].shape == (5, 16, 3) and batch["ego_history"].dtype == torch.float32
    assert batch["target_actions"].shape == (5, 64, 2)
    for key in batch:
        np.testing.assert_array_equal(batch[key][:3].numpy(), first.tensors[key])
        np.testing.assert_array_equal(batch[key][3:].numpy(), second.tensors[key])


def test_collate_of_one_record_shares_its_memory():
    cfg = small_cfg()
    only = record(cfg, 2, seed=0)
    batch = collate([only], BC.batch_keys)
    assert all(np.shares_memory(batch[key].numpy(), only.tensors[key]) for key in batch)


def test_collate_names_the_records_missing_a_tensor():
    cfg = small_cfg()
    incomplete = record(cfg, 2, seed=0)
    del incomplete.tensors["target_actions"]
    with pytest.raises(KeyError, match="target_actions"):
        collate([record(cfg, 2, seed=1), incomplete], BC.batch_keys)
    with pytest.raises(ValueError):
        collate([], BC.batch_keys)
