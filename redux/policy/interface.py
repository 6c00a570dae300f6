"""What every policy engine returns and accepts, whatever runs underneath."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from redux.sim_bridge.session import Observation


@dataclass
class PolicyOutput:
    """K sampled plans per observation, as one batch.

    ``actions`` (B, K, 64, 2) in physical units, ``poses`` (B, K, 64, 3) in each
    observation's rig frame, ``log_probs`` (B, K) of each sample under the
    policy that drew it, ``weight_version`` the weights that acted, ``timings``
    in milliseconds.
    """

    actions: np.ndarray
    poses: np.ndarray
    log_probs: np.ndarray
    weight_version: int
    timings: dict[str, float]
    reasoning: list[str] | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)


class Policy(Protocol):
    weight_version: int

    def act(self, observations: list[Observation], num_samples: int = 1, greedy: bool = False) -> PolicyOutput: ...

    def load_weights(self, named: dict[str, torch.Tensor], version: int) -> None: ...

    def named_weights(self) -> dict[str, torch.Tensor]: ...
