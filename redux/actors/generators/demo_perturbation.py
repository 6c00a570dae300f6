"""Perturbed demonstrations (DART): the expert's car is pushed off its line so the data shows recoveries.

Clean demonstrations only visit the centre of the lane, so a cloned policy never
sees how to get back from the small offsets its own errors create, and they add
up until the car leaves the road. Here the executed plan is the expert's plus a
slowly varying offset in normalised (acceleration, curvature) units; the label of
every visited state stays the expert's plan from where the car really is, which
steers back to the path. The offset is an Ornstein-Uhlenbeck process: stationary
std ``std``, correlation time ``correlation_s``, so one push lasts about a second
and moves the car a few decimetres, the drift a policy has to learn to undo.
"""

from __future__ import annotations

import numpy as np

from redux.policy.action_space import DT_S, clip_to_bounds, denormalise, normalise


class DemoPerturbation:
    def __init__(self, sessions: int, std: float, correlation_s: float, seed: int):
        if std < 0 or correlation_s <= 0:
            raise ValueError(f"need std >= 0 and correlation_s > 0, got {std}, {correlation_s}")
        self.std = std
        self.decay = float(np.exp(-DT_S / correlation_s))
        self.rng = np.random.default_rng(seed)
        self.offsets = self.rng.normal(0.0, std, size=(sessions, 2)).astype(np.float32)

    def step(self) -> None:
        """Advance every session's offset by one 0.1 s step."""
        fresh = self.rng.normal(0.0, self.std * np.sqrt(1.0 - self.decay**2), size=self.offsets.shape)
        self.offsets = (self.decay * self.offsets + fresh).astype(np.float32)

    def reset(self, session: int) -> None:
        """A new episode starts from a fresh draw of the stationary distribution."""
        self.offsets[session] = self.rng.normal(0.0, self.std, size=2)

    def apply(self, session: int, actions: np.ndarray) -> np.ndarray:
        """The (T, 2) physical actions the car executes instead of ``actions``."""
        return clip_to_bounds(denormalise(normalise(actions) + self.offsets[session]))
