"""The Alpamayo objective: flow matching on the plan plus the reasoning's token and latent losses.

Every part is computed by one teacher-forced pass (``policy.alpamayo.training``) and
weighted by ``learner.loss_weights``; a part whose tokens a batch lacks (e.g. critiques
in a batch where no sample thought) simply contributes nothing, so masking per mode
needs no special case.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from redux.config import LossWeights
from redux.policy.alpamayo.training import TeacherForcedBatch, teacher_forced_losses
from redux.policy.ego_history import straightened_history

LABEL_KEYS = ("latent_targets", "decision", "factors", "meta_actions")
BATCH_KEYS = ("frames", "ego_history", "target_actions", "target_ids", "target_categories", *LABEL_KEYS)


def to_teacher_forced(model: nn.Module, batch: dict[str, torch.Tensor]) -> TeacherForcedBatch:
    prompt = model.prompts.build(batch["frames"].numpy(), batch["ego_history"].numpy())
    return TeacherForcedBatch(
        prompt=prompt,
        target_ids=batch["target_ids"].long(),
        target_categories=batch["target_categories"].long(),
        target_actions=batch["target_actions"].float(),
        **{key: batch.get(key) for key in LABEL_KEYS},
    )


def with_history_dropped(batch: dict[str, torch.Tensor], rate: float, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """``batch`` with each decision's ego history straightened with probability ``rate``."""
    if rate <= 0:
        return batch
    history = batch["ego_history"].numpy().copy()
    for row in np.flatnonzero(rng.random(len(history)) < rate):
        history[row] = straightened_history(history[row])
    return {**batch, "ego_history": torch.from_numpy(history)}


def make_vla_loss(weights: LossWeights, flow_trains_backbone: bool = False, flow_samples: int = 1, history_dropout: float = 0.0):
    rng = np.random.default_rng(0)  # which decisions lose their history: the same in every run

    def vla_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        module = getattr(model, "module", model)  # a DeepSpeed engine wraps the network
        batch = to_teacher_forced(module, with_history_dropped(batch, history_dropout, rng))
        stop = module.prompts.ids.traj_future_start
        parts = teacher_forced_losses(
            module, batch, stop, flow_trains_backbone=flow_trains_backbone, flow_samples=flow_samples
        )
        total = sum(getattr(weights, name.removeprefix("ce_")) * value for name, value in parts.items())
        metrics = {name: value.item() for name, value in parts.items()}
        metrics["loss"] = total.item()
        return total, metrics

    return vla_loss
