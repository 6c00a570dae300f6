"""A minisim scene: what a driving log holds, generated from a seed.

Tracks are sampled at 10 Hz for the whole scene (warm-up + episode + one planning
horizon), so the recorded future exists at every step of the episode. Poses are
(x, y, yaw, speed) in the world frame; the ego's is its rig origin (rear-axle
centre), every other actor's is its box centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from redux.sim_bridge.minisim.road_map import RoadMap

DT_S = 0.1
EGO_LENGTH_M = 4.8
EGO_WIDTH_M = 2.0
EGO_REAR_AXLE_TO_CENTRE_M = 1.4  # the box centre is this far ahead of the rig origin
EGO_WHEELBASE_M = 2.8


class ActorKind(IntEnum):
    VEHICLE = 0
    PEDESTRIAN = 1
    CYCLIST = 2
    PARKED = 3


@dataclass(frozen=True)
class ActorTracks:
    kind: np.ndarray  # (A,) ActorKind
    size: np.ndarray  # (A, 2) length, width in metres
    states: np.ndarray  # (A, T, 4) x, y, yaw, speed of the box centre
    valid: np.ndarray  # (A, T) bool: the actor exists at that step

    @property
    def count(self) -> int:
        return len(self.kind)


@dataclass(frozen=True)
class StepLabels:
    """Privileged per-step training targets (only the embedded simulator has them)."""

    decision: np.ndarray  # (T,) index into minisim.vocabulary.DECISIONS: the expert's closed-set driving decision
    factors: np.ndarray  # (T, F) bool over minisim.vocabulary.FACTORS: causal factors visible in the history
    meta_actions: np.ndarray  # (T, 3) longitudinal, lateral, lane indices over the next 6.4 s (first segment)


@dataclass(frozen=True)
class Scene:
    scene_id: int
    seed: int
    scenario: str  # generator name, e.g. "straight", "intersection_light", "ped_stepout"
    hard: bool  # part of the long tail on purpose
    road_map: RoadMap
    route_lanes: tuple[int, ...]  # lane ids the expert drives, in order
    ego: np.ndarray  # (T, 4) the recorded expert drive
    actors: ActorTracks
    labels: StepLabels

    @property
    def num_steps(self) -> int:
        return len(self.ego)
