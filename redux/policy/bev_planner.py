"""A small planner from the BEV raster and ego history to a 64-step plan.

The stand-in policy until the Alpamayo-R1-shaped model replaces it behind the
same interface: a conv encoder for the raster frames, an MLP for the ego
history, and a head that outputs normalised (acceleration, curvature) for
every step of the horizon.
"""

from __future__ import annotations

import torch
from torch import nn

from redux.config import PolicyConfig, SimConfig
from redux.policy.action_space import HORIZON
from redux.sim_bridge import bev_shape

HISTORY_FEATURES = 16 * 3


class BevPlanner(nn.Module):
    def __init__(self, policy: PolicyConfig, sim: SimConfig):
        super().__init__()
        c = policy.channels
        frames, channels = bev_shape(sim)
        in_channels = frames * channels
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, c, 5, stride=2, padding=2),
            nn.GELU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.encoder(torch.zeros(1, in_channels, sim.bev_pixels, sim.bev_pixels)).shape[1]
        self.history = nn.Sequential(nn.Linear(HISTORY_FEATURES, policy.hidden), nn.GELU())
        self.head = nn.Sequential(
            nn.Linear(flat + policy.hidden, policy.hidden),
            nn.GELU(),
            nn.Linear(policy.hidden, policy.hidden),
            nn.GELU(),
            nn.Linear(policy.hidden, HORIZON * 2),
        )

    def forward(self, bev: torch.Tensor, ego_history: torch.Tensor) -> torch.Tensor:
        """bev (N, F, 3, H, W) uint8 or float in [0, 255]; ego_history (N, 16, 3) → (N, 64, 2) normalised."""
        frames = bev.float().flatten(1, 2) / 255.0
        features = torch.cat([self.encoder(frames), self.history(ego_history.float().flatten(1))], dim=1)
        return self.head(features).view(-1, HORIZON, 2)
