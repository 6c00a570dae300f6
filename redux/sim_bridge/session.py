"""The one door to simulators: what a session gives a policy and takes back.

Every simulator (the embedded one, real Alpasim through its adapter) implements
:class:`Session`; actors and evaluators see nothing else, so swapping the
simulator is a config string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class Observation:
    """What the policy sees at one decision time t0.

    ``cameras`` maps a camera id to a frame history (T, C, H, W) uint8, oldest
    first. ``ego_history`` holds 16 poses (x, y, yaw) at 0.1 s in the t0 rig
    frame, oldest first, the last one being t0 (the origin). ``route`` holds 20
    waypoints (x, y, z) in the rig frame, NaN-padded. ``labels`` are privileged
    training targets only the embedded simulator can give (e.g. the expert's
    plan); a policy must not read them when acting.
    """

    cameras: dict[str, np.ndarray]
    ego_history: np.ndarray
    route: np.ndarray
    time_us: int
    labels: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Plan:
    """One trajectory for the next 6.4 s: unicycle controls and the poses they give."""

    actions: np.ndarray  # (64, 2) acceleration m/s², curvature 1/m
    poses: np.ndarray  # (64, 3) x, y, yaw in the t0 rig frame at t0 + 0.1 s … t0 + 6.4 s


@dataclass
class StepResult:
    observation: Observation
    done: bool
    metrics: dict[str, float]


class Session(Protocol):
    def reset(self, scene_id: int, seed: int) -> Observation: ...

    def step(self, plan: Plan) -> StepResult: ...

    def expert_continuation(self) -> np.ndarray:
        """The recorded expert drive for the next 6.4 s as (64, 3) rig-frame poses."""
        ...

    def close(self) -> None: ...
