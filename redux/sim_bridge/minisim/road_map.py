"""The static world of a minisim scene: lanes, road edges, stop lines, lights, crosswalks.

World frame: a per-scene inertial frame in metres (x east, y north, z up), as
Alpasim's ``local`` frame. Lanes are directed centre-line polylines; a lane's
polygon is its centre line swept by half its width on each side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np


class LightState(IntEnum):
    GREEN = 0
    AMBER = 1
    RED = 2


@dataclass(frozen=True)
class Lane:
    id: int
    centerline: np.ndarray  # (N, 2) in the direction of travel, points ~0.5 m apart
    width_m: float
    speed_limit_mps: float
    successors: tuple[int, ...] = ()
    left: int | None = None  # neighbour in the same direction, for lane changes
    right: int | None = None
    in_junction: bool = False  # connector lanes inside an intersection

    @property
    def length_m(self) -> float:
        return float(np.sum(np.linalg.norm(np.diff(self.centerline, axis=0), axis=1)))


@dataclass(frozen=True)
class StopLine:
    lane_id: int
    s_m: float  # arc length along the lane where the vehicle's front must stop
    segment: np.ndarray  # (2, 2) the painted line across the lane
    light_id: int | None  # None: a stop sign


@dataclass(frozen=True)
class TrafficLight:
    id: int
    position: np.ndarray  # (3,) where the light head hangs, for cameras
    change_times_s: np.ndarray  # (K,) scene times at which the state changes, increasing, first 0.0
    states: np.ndarray  # (K,) LightState from each change time on

    def state_at(self, t_s: float) -> LightState:
        index = int(np.searchsorted(self.change_times_s, t_s, side="right")) - 1
        return LightState(int(self.states[max(index, 0)]))


@dataclass(frozen=True)
class Crosswalk:
    polygon: np.ndarray  # (4, 2)


@dataclass(frozen=True)
class RoadMap:
    lanes: dict[int, Lane]
    road_edges: tuple[np.ndarray, ...]  # polylines (N, 2) bounding the drivable surface
    stop_lines: tuple[StopLine, ...] = ()
    traffic_lights: dict[int, TrafficLight] = field(default_factory=dict)
    crosswalks: tuple[Crosswalk, ...] = ()
