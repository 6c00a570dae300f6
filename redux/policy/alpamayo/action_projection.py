"""The flow expert's doors: noisy actions in, velocities out, and the action-space constants.

Module and parameter names follow the published checkpoint (``action_in_proj.sinus.0.freqs``,
``action_in_proj.encoder.trunk.3.weight``, ``action_space.accel_mean`` …) so that its
weights load without renaming. Each waypoint's (acceleration, curvature) and the flow
time are encoded with log-spaced Fourier features, concatenated, and lifted by a small
MLP to the expert's width.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from redux.policy.action_space import ACCEL_MEAN, ACCEL_STD, CURVATURE_MEAN, CURVATURE_STD


class FourierFeatures(nn.Module):
    def __init__(self, dim: int, min_freq: float, max_freq: float):
        super().__init__()
        if not 0 < min_freq <= max_freq:
            raise ValueError(f"need 0 < min_freq <= max_freq, got {min_freq}, {max_freq}")
        self.out_dim = dim
        freqs = torch.logspace(math.log10(min_freq), math.log10(max_freq), steps=dim // 2)
        self.register_buffer("freqs", freqs[None, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phase = x[..., None] * self.freqs * (2 * math.pi)
        return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1) * math.sqrt(2)


class MLPEncoder(nn.Module):
    """Linear → SiLU → [RMSNorm → Linear → SiLU]* → RMSNorm → Linear, indexed as published."""

    def __init__(self, in_features: int, layers: int, hidden: int, out_features: int):
        super().__init__()
        modules: list[nn.Module] = [nn.Linear(in_features, hidden), nn.SiLU()]
        for i in range(layers):
            last = i == layers - 1
            modules += [nn.RMSNorm(hidden, eps=1e-5), nn.Linear(hidden, out_features if last else hidden)]
            if not last:
                modules.append(nn.SiLU())
        self.trunk = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)


class ActionInProjection(nn.Module):
    """(B, 64, 2) noisy normalised actions and (B,) flow times → (B, 64, width) expert inputs."""

    def __init__(
        self, width: int, hidden: int, layers: int, fourier_features: int, min_freq: float, max_freq: float,
        action_dim: int = 2,
    ):  # fmt: skip
        super().__init__()
        self.sinus = nn.ModuleList(FourierFeatures(fourier_features, min_freq, max_freq) for _ in range(action_dim))
        self.timestep_fourier_encoder = FourierFeatures(fourier_features, min_freq, max_freq)
        self.encoder = MLPEncoder((action_dim + 1) * fourier_features, layers, hidden, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = x.float()
        per_axis = [encode(x[..., i]) for i, encode in enumerate(self.sinus)]
        time = self.timestep_fourier_encoder(t.float().reshape(-1))[:, None, :].expand(-1, x.shape[1], -1)
        features = torch.cat([*per_axis, time], dim=-1)
        dtype = self.norm.weight.dtype
        return self.norm(self.encoder(features.to(dtype)))


class ActionSpaceStats(nn.Module):
    """The published normalisation, stored with the weights so a checkpoint says what it was trained in."""

    def __init__(self):
        super().__init__()
        for name, value in (
            ("accel_mean", ACCEL_MEAN),
            ("accel_std", ACCEL_STD),
            ("curvature_mean", CURVATURE_MEAN),
            ("curvature_std", CURVATURE_STD),
        ):
            self.register_buffer(name, torch.tensor(value, dtype=torch.float32))
