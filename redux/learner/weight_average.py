"""An exponential moving average of the trained weights (Polyak averaging).

Cloned driving policies are sensitive to small weight changes in closed loop: two
checkpoints a few dozen steps apart can differ by tens of points of driving score
while the loss barely moves. The average over the last ~1 / (1 - decay) steps
smooths that step-to-step noise away, and it is what replicas act with and what
checkpoints keep for acting (diffusion-policy and image-generation trainers
evaluate their EMA weights for the same reason). The optimiser keeps stepping the
raw weights.
"""

from __future__ import annotations

import torch
from torch import nn

# TF's ExponentialMovingAverage warm-up: early on the average follows the weights
# closely instead of remembering the random initialisation for 1 / (1 - decay) steps.
_WARMUP_OFFSET = 10


class WeightAverage:
    def __init__(self, module: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"learner.ema_decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.average = {name: value.detach().clone() for name, value in module.state_dict().items()}

    def update(self, module: nn.Module) -> None:
        """Move the average toward the module's current weights (call after each optimiser step)."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (_WARMUP_OFFSET + self.updates))
        with torch.no_grad():
            for name, value in module.state_dict().items():
                kept = self.average[name]
                if kept.is_floating_point():
                    kept.lerp_(value.to(kept.dtype), 1.0 - decay)
                else:  # step counters, index buffers: nothing to average
                    kept.copy_(value)

    def weights(self) -> dict[str, torch.Tensor]:
        """CPU copies, laid out as the module's state_dict."""
        return {name: value.clone() for name, value in self.average.items()}

    def load(self, weights: dict[str, torch.Tensor], updates: int) -> None:
        """Resume: the average a checkpoint kept, after ``updates`` steps."""
        if weights.keys() != self.average.keys():
            missing, extra = self.average.keys() - weights.keys(), weights.keys() - self.average.keys()
            raise ValueError(f"the saved weight average does not fit: missing {sorted(missing)}, extra {sorted(extra)}")
        self.average = {name: value.clone() for name, value in weights.items()}
        self.updates = updates
