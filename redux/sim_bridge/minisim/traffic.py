"""Placing actors on layouts: lane routes, traffic streams, parked cars, pedestrians.

Helpers shared by the scenario generators; each returns actor plans (``actors.py``)
placed in the layout's own terms (a lane index, metres before a stop line).
"""

from __future__ import annotations

import math

import numpy as np

from redux.sim_bridge.minisim.actors import CAR_SIZE, CYCLIST_SIZE, ParkedPlan, VehiclePlan, WalkerPlan
from redux.sim_bridge.minisim.layouts import (
    LANE_WIDTH_M,
    STOP_SETBACK_M,
    Intersection,
    LightCycle,
    Road,
)
from redux.sim_bridge.minisim.longitudinal import Driver
from redux.sim_bridge.minisim.boxes import box_corners
from redux.sim_bridge.minisim.polyline import arc_lengths, points_in_lanes
from redux.sim_bridge.minisim.scene import DT_S, ActorKind

KERB_PARKING_M = 0.3  # parked cars stand this far beyond the road edge
SIDEWALK_M = 2.0  # pedestrians walk this far beyond the road edge


def forward_route(road: Road, lane: int) -> tuple[int, ...]:
    return tuple(segment[lane] for segment in road.forward)


def oncoming_route(road: Road, lane: int) -> tuple[int, ...]:
    return tuple(segment[lane] for segment in reversed(road.oncoming))


def road_pose(road: Road, s: float, lateral_m: float) -> tuple[float, float, float]:
    """World (x, y, heading) at arc length s along the road's reference, ``lateral_m`` to its left."""
    ref = road.reference
    s_ref = arc_lengths(ref)
    i = int(np.clip(np.searchsorted(s_ref, s), 1, len(ref) - 1))
    heading = math.atan2(ref[i, 1] - ref[i - 1, 1], ref[i, 0] - ref[i - 1, 0])
    x, y = np.interp(s, s_ref, ref[:, 0]), np.interp(s, s_ref, ref[:, 1])
    return float(x - lateral_m * math.sin(heading)), float(y + lateral_m * math.cos(heading)), heading


def kerb_lateral(road: Road, side: str) -> float:
    """Lateral position (from the reference) of a parked car's centre beyond the kerb."""
    lanes = len(road.forward[0]) if side == "forward" else len(road.oncoming[0])
    reach = lanes * LANE_WIDTH_M + KERB_PARKING_M + 0.5 * CAR_SIZE[1]
    return -reach if side == "forward" else reach


def parked_cars(road: Road, s_values: np.ndarray, side: str = "forward", role: str = "parked") -> list[ParkedPlan]:
    """Cars parked along the kerb, facing the direction of traffic on that side.

    A spot where the car would stand on a lane (an on-ramp running beside the
    kerb) is left empty.
    """
    plans = []
    lanes = list(road.road_map.lanes.values())
    for s in np.asarray(s_values).tolist():
        x, y, heading = road_pose(road, s, kerb_lateral(road, side))
        heading = heading if side == "forward" else heading + math.pi
        if not points_in_lanes(lanes, box_corners(np.array([x, y]), heading, *CAR_SIZE)).any():
            plans.append(ParkedPlan((x, y, heading), role))
    return plans


def sidewalk_walkers(rng: np.random.Generator, road: Road, count: int, length_m: float) -> list[WalkerPlan]:
    """Pedestrians strolling along the sidewalks, off the road (none where a ramp runs beside it)."""
    plans = []
    road_lanes = list(road.road_map.lanes.values())
    for _ in range(count):
        side = rng.choice([-1.0, 1.0])
        lanes = len(road.forward[0]) if side < 0 else len(road.oncoming[0])
        lateral = side * (lanes * LANE_WIDTH_M + SIDEWALK_M + KERB_PARKING_M + CAR_SIZE[1])
        start = rng.uniform(20.0, length_m - 60.0)
        end = start + rng.choice([-1.0, 1.0]) * 40.0
        points = np.array([road_pose(road, s, lateral)[:2] for s in np.linspace(start, end, 9)])
        speed, start_step = float(rng.uniform(1.0, 1.6)), int(rng.integers(0, 40))
        if not points_in_lanes(road_lanes, points, tolerance_m=1.0).any():
            plans.append(WalkerPlan(points, speed, start_step, "walker"))
    return plans


def stream(
    rng: np.random.Generator,
    route: tuple[int, ...],
    s_front: float,
    count: int,
    speed: float,
    gaps_m: tuple[float, float],
    role: str,
    speed_factor: tuple[float, float] = (0.85, 1.0),
) -> list[VehiclePlan]:
    """``count`` vehicles on a route, the first with its centre at ``s_front``, then spaced backwards."""
    plans, s = [], s_front
    for _ in range(count):
        if s < 5.0:
            break
        driver = Driver(speed_factor=float(rng.uniform(*speed_factor)))
        plans.append(VehiclePlan(route, s, speed, role, driver=driver))
        s -= rng.uniform(*gaps_m)
    return plans


def cyclist(route: tuple[int, ...], s0: float, speed: float, limit: float) -> VehiclePlan:
    """A cyclist riding the right-hand part of a lane (1 m right of its centre) at a steady speed."""
    return VehiclePlan(route, s0, speed, "cyclist", ActorKind.CYCLIST, CYCLIST_SIZE, lateral_m=-1.0,
                       driver=Driver(speed_factor=speed / limit))  # fmt: skip


# -- intersections -----------------------------------------------------------------------------------


def through_route(ix: Intersection, arm: str, movement: str, lane: int) -> tuple[int, int, int]:
    """(approach lane, connector, exit lane) of a movement through the junction."""
    connector = ix.connectors[(arm, movement, lane)]
    return ix.incoming[arm][lane], connector, ix.road_map.lanes[connector].successors[0]


def before_line(ix: Intersection, arm: str, lane: int, distance_m: float) -> float:
    """Arc length on an approach lane ``distance_m`` before its stop line."""
    return ix.road_map.lanes[ix.incoming[arm][lane]].length_m - STOP_SETBACK_M - distance_m


def crossing_walker(ix: Intersection, arm: str, start_step: int, speed: float, reverse: bool, role: str) -> WalkerPlan:
    """A pedestrian crossing the arm's road on its crosswalk, from kerb to kerb."""
    polygon = ix.road_map.crosswalks["WSEN".index(arm)].polygon
    near_side, far_side = 0.5 * (polygon[0] + polygon[1]), 0.5 * (polygon[2] + polygon[3])
    across = (far_side - near_side) / np.linalg.norm(far_side - near_side)
    start, end = near_side - 1.5 * across, far_side + 1.5 * across
    points = np.stack([end, start]) if reverse else np.stack([start, end])
    return WalkerPlan(points, speed, start_step, role)


def green_onsets(cycle: LightCycle, axis: str, steps: int) -> list[int]:
    """Steps at which the lights of ``axis`` ("WE" or "SN") turn green within the scene."""
    times, states = cycle.schedule(axis, steps * DT_S)
    return [int(round(t / DT_S)) for t, s in zip(times.tolist(), states.tolist()) if s == 0 and t > 0.0]
