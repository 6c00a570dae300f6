"""Other road users, simulated once per scene and then replayed as log tracks.

Parked cars stand still; pedestrians walk scripted polylines (waiting at the kerb
until their start step); vehicles and cyclists drive lane routes with the same
longitudinal rules as the expert (IDM, lights, stop signs, yielding). Vehicles are
simulated one after another in the order given: each reacts to the recorded tracks
of everyone before it, so a scenario lists leaders before their followers and
right-of-way holders before those who yield. Nobody reacts to the ego: the expert
is recorded afterwards and avoids them all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redux.sim_bridge.minisim.boxes import box_corners, boxes_overlap
from redux.sim_bridge.minisim.longitudinal import STOP_SIGN_DWELL_STEPS, Driver, LongitudinalPlanner, path_stop_lines
from redux.sim_bridge.minisim.obstacles import path_obstacles
from redux.sim_bridge.minisim.polyline import arc_lengths
from redux.sim_bridge.minisim.road_map import RoadMap
from redux.sim_bridge.minisim.route import LANE_CHANGE_M, RoutePath, route_path
from redux.sim_bridge.minisim.scene import DT_S, ActorKind, ActorTracks

CAR_SIZE = (4.6, 1.9)
CYCLIST_SIZE = (1.8, 0.7)
PEDESTRIAN_SIZE = (0.6, 0.6)


@dataclass(frozen=True)
class Brake:
    """Scripted braking: from ``step`` on, decelerate at least ``decel`` until ``floor_mps``."""

    step: int
    decel: float
    floor_mps: float


@dataclass(frozen=True)
class VehiclePlan:
    route: tuple[int, ...]
    s0: float  # box-centre arc length on the route's path at step 0
    speed0: float
    role: str  # what the scenario placed it for, e.g. "lead", "cut_in", "oncoming" (labels use it)
    kind: ActorKind = ActorKind.VEHICLE
    size: tuple[float, float] = CAR_SIZE
    lateral_m: float = 0.0  # offset from the lane centre (+ left): cyclists keep to the right
    driver: Driver = Driver()
    brake: Brake | None = None
    lane_change_m: float = LANE_CHANGE_M  # length of a lane change in the route (short: a cut-in)


@dataclass(frozen=True)
class WalkerPlan:
    waypoints: np.ndarray  # (K, 2) the walk; the pedestrian stands at the first point until start_step
    speed: float
    start_step: int
    role: str


@dataclass(frozen=True)
class ParkedPlan:
    pose: tuple[float, float, float]  # box centre x, y and yaw
    role: str
    size: tuple[float, float] = CAR_SIZE


ActorPlan = VehiclePlan | WalkerPlan | ParkedPlan


@dataclass(frozen=True)
class SimulatedActors:
    tracks: ActorTracks
    roles: tuple[str, ...]

    def without(self, drop: np.ndarray) -> SimulatedActors:
        keep = ~np.isin(np.arange(self.tracks.count), drop)
        t = self.tracks
        tracks = ActorTracks(t.kind[keep], t.size[keep], t.states[keep], t.valid[keep])
        return SimulatedActors(tracks, tuple(r for r, k in zip(self.roles, keep) if k))


def _walk(plan: WalkerPlan, steps: int) -> np.ndarray:
    s_points = arc_lengths(plan.waypoints)
    walked = np.clip((np.arange(steps) - plan.start_step) * DT_S * plan.speed, 0.0, s_points[-1])
    x = np.interp(walked, s_points, plan.waypoints[:, 0])
    y = np.interp(walked, s_points, plan.waypoints[:, 1])
    segment = np.clip(np.searchsorted(s_points, walked, side="right") - 1, 0, len(s_points) - 2)
    direction = np.diff(plan.waypoints, axis=0)[segment]
    moving = (walked > 0.0) & (walked < s_points[-1])
    speed = np.where(moving, plan.speed, 0.0)
    return np.stack([x, y, np.arctan2(direction[:, 1], direction[:, 0]), speed], axis=1)


def _drive(
    road_map: RoadMap, plan: VehiclePlan, path: RoutePath, earlier: ActorTracks, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    length, width = plan.size
    obstacles, conflicts = path_obstacles(path, 0.5 * width, earlier.kind, earlier.size, earlier.states, earlier.valid)
    stop_lines = path_stop_lines(road_map, path, steps)
    planner = LongitudinalPlanner(path, plan.driver, 0.5 * length, 0.5 * length, obstacles, conflicts, stop_lines)
    s_track, v_track = np.empty(steps), np.empty(steps)
    s, v = plan.s0, plan.speed0
    stopped_at: list[int | None] = [None] * len(stop_lines)
    brake = plan.brake
    for t in range(steps):
        s_track[t], v_track[t] = s, v
        planner.note_stops(t, s, v, stopped_at)
        served = [at is not None and t >= at + STOP_SIGN_DWELL_STEPS for at in stopped_at]
        accel = planner.accel(t, s, v, served)[0]
        if brake is not None and t >= brake.step and v > brake.floor_mps:
            accel = min(accel, -brake.decel)
        accel = max(accel, -v / DT_S)
        s += v * DT_S + 0.5 * accel * DT_S * DT_S
        v += accel * DT_S
    heading = np.interp(s_track, path.s, path.heading)
    x = np.interp(s_track, path.s, path.xy[:, 0]) - plan.lateral_m * np.sin(heading)
    y = np.interp(s_track, path.s, path.xy[:, 1]) + plan.lateral_m * np.cos(heading)
    valid = (s_track >= 0.5 * length) & (s_track <= path.length_m - 0.5 * length)
    return np.stack([x, y, heading, v_track], axis=1), valid


def simulate_actors(road_map: RoadMap, plans: list[ActorPlan], steps: int) -> SimulatedActors:
    """Tracks for every plan: static and scripted actors first, then vehicles in the given order.

    A vehicle that still overlaps someone simulated before it (a rare corner of the
    rules, e.g. a merge into a gap that closed) is left out of the log.
    """
    ordered = [p for p in plans if not isinstance(p, VehiclePlan)] + [p for p in plans if isinstance(p, VehiclePlan)]
    count = len(ordered)
    kind = np.zeros(count, dtype=np.int64)
    size = np.zeros((count, 2))
    states = np.zeros((count, steps, 4))
    valid = np.zeros((count, steps), dtype=bool)
    paths: dict[tuple, RoutePath] = {}
    kept = np.ones(count, dtype=bool)
    for i, plan in enumerate(ordered):
        if isinstance(plan, ParkedPlan):
            kind[i], size[i] = ActorKind.PARKED, plan.size
            states[i] = (*plan.pose, 0.0)
            valid[i] = True
        elif isinstance(plan, WalkerPlan):
            kind[i], size[i] = ActorKind.PEDESTRIAN, PEDESTRIAN_SIZE
            states[i] = _walk(plan, steps)
            valid[i] = True
        else:
            kind[i], size[i] = plan.kind, plan.size
            key = (plan.route, plan.lane_change_m)
            if key not in paths:
                paths[key] = route_path(road_map, plan.route, plan.lane_change_m)
            path = paths[key]
            before = np.flatnonzero(kept[:i])
            earlier = ActorTracks(kind[before], size[before], states[before], valid[before])
            states[i], valid[i] = _drive(road_map, plan, path, earlier, steps)
            if len(before) and _overlaps_any(states[i], valid[i], size[i], earlier):
                kept[i] = False
    tracks = ActorTracks(kind[kept], size[kept], states[kept], valid[kept])
    return SimulatedActors(tracks, tuple(p.role for p, k in zip(ordered, kept) if k))


def _overlaps_any(states: np.ndarray, valid: np.ndarray, size: np.ndarray, others: ActorTracks) -> bool:
    reach = 0.5 * (np.hypot(*size) + np.hypot(others.size[:, 0], others.size[:, 1]))[:, None]
    near = (
        valid[None]
        & others.valid
        & (np.hypot(*(others.states[..., :2] - states[None, :, :2]).transpose(2, 0, 1)) < reach)
    )
    if not near.any():
        return False
    actor, step = np.nonzero(near)
    mine = box_corners(states[step, :2], states[step, 2], size[0], size[1])
    theirs = box_corners(
        others.states[actor, step, :2], others.states[actor, step, 2], others.size[actor, 0], others.size[actor, 1]
    )
    return bool(boxes_overlap(mine, theirs).any())
