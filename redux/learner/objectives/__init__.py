"""Training objectives, chosen by name; one file per objective.

An objective is a loss over a batch plus the record tensors that batch needs, so the
learner collates exactly those and nothing else (images dominate a record's size).
Calling an :class:`Objective` computes its loss: ``make_objective(cfg.learner)(model, batch)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from redux.config import LearnerConfig
from redux.learner.objectives import bc

Loss = Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]


@dataclass(frozen=True)
class Objective:
    loss: Loss
    batch_keys: tuple[str, ...]

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        return self.loss(model, batch)


def make_objective(cfg: LearnerConfig) -> Objective:
    """The objective ``learner.objective`` names, with its configured weights."""
    if cfg.objective == "vla":
        from redux.learner.objectives import vla

        loss = vla.make_vla_loss(cfg.loss_weights, cfg.flow_trains_backbone, cfg.flow_samples, cfg.history_dropout)
        return Objective(loss, vla.BATCH_KEYS)
    return Objective(bc.bc_loss, bc.BATCH_KEYS)
