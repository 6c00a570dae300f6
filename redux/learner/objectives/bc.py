"""Behaviour cloning: regress the plan the policy outputs onto the expert's plan.

Both live in normalised action space (``policy.action_space``), where acceleration
and curvature have unit scale, so one unweighted MSE treats the two axes alike. The
per-axis errors are reported separately because a policy can learn to brake long
before it learns to steer.
"""

from __future__ import annotations

import torch
from torch import nn

BATCH_KEYS = ("bev", "ego_history", "target_actions")


def bc_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    predicted = model(batch["bev"], batch["ego_history"])
    squared_error = (predicted - batch["target_actions"]).square()
    loss = squared_error.mean()
    accel, curvature = squared_error.detach().mean(dim=(0, 1)).tolist()
    return loss, {"loss": loss.item(), "mse_accel": accel, "mse_curvature": curvature}
