"""Scenario setups at a 4-way junction: signalised crossings, all-way stops, amber, unprotected left.

The ego always approaches from the west arm. Each function draws a Setup from
``rng`` (see ``scenarios.py`` for the registry that turns setups into scenes).
"""

from __future__ import annotations

import numpy as np

from redux.sim_bridge.minisim import layouts
from redux.sim_bridge.minisim.actors import VehiclePlan
from redux.sim_bridge.minisim.expert import EGO_FRONT_M
from redux.sim_bridge.minisim.layouts import Intersection, LightCycle
from redux.sim_bridge.minisim.longitudinal import Driver
from redux.sim_bridge.minisim.scene import DT_S
from redux.sim_bridge.minisim.scene_builder import ScenarioParams, Setup
from redux.sim_bridge.minisim.traffic import before_line, crossing_walker, green_onsets, stream, through_route


def _junction(
    rng: np.random.Generator,
    limit: float,
    params: ScenarioParams,
    lights: bool = True,
    green_we: float | None = None,
    offset_s: float | None = None,
) -> tuple[Intersection, LightCycle | None]:
    """A junction with 1-2 lanes per arm and a fixed-time light plan, or a single-lane all-way stop."""
    cycle = None
    if lights:
        green_we = green_we if green_we is not None else float(rng.uniform(12.0, 20.0))
        offset_s = offset_s if offset_s is not None else float(rng.uniform(0.0, 60.0))
        cycle = LightCycle(green_we, float(rng.uniform(10.0, 16.0)), offset_s=offset_s)
    lanes_we, lanes_sn = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if lights else (1, 1)
    return layouts.intersection(lanes_we, lanes_sn, limit, cycle, params.num_steps * DT_S + 1.0), cycle


def _walker(rng: np.random.Generator, ix: Intersection, arm: str, start_step: int):
    return crossing_walker(ix, arm, start_step, float(rng.uniform(1.1, 1.6)), bool(rng.random() < 0.5), "crossing")


def _junction_traffic(
    rng: np.random.Generator, ix: Intersection, cycle: LightCycle | None, params: ScenarioParams, ego_lane: int
) -> list:
    """Oncoming and crossing traffic going straight through, a neighbour beside the ego, crosswalk pedestrians."""
    plans: list = []
    for arm in ("E", "S", "N"):
        for lane in range(ix.lanes_per_arm[arm]):
            if rng.random() < 0.6:
                route = through_route(ix, arm, "straight", lane)
                speed = 0.8 * ix.road_map.lanes[route[0]].speed_limit_mps
                front = before_line(ix, arm, lane, rng.uniform(10.0, 120.0))
                role = "oncoming" if arm == "E" else "crossing"
                plans += stream(rng, route, front, int(rng.integers(1, 3)), speed, (15.0, 40.0), role)
    for lane in range(ix.lanes_per_arm["W"]):
        if lane != ego_lane and rng.random() < 0.5:
            route = through_route(ix, "W", "straight", lane)
            plans += stream(rng, route, before_line(ix, "W", lane, rng.uniform(-5.0, 40.0)), 1, 8.0, (0, 1), "traffic")
    steps = params.num_steps
    for arm in ("W", "S", "E", "N"):
        if rng.random() < 0.35:
            axis = "SN" if arm in "WE" else "WE"  # walk while the traffic parallel to the crosswalk has green
            onsets = green_onsets(cycle, axis, steps) if cycle is not None else [int(rng.integers(0, steps // 2))]
            starts = [t for t in onsets if t < steps - 60] or [0]
            plans.append(_walker(rng, ix, arm, int(rng.choice(starts)) + int(rng.integers(5, 25))))
    return plans


def _through_junction(rng: np.random.Generator, params: ScenarioParams, movement: str) -> Setup:
    limit = float(rng.uniform(10.0, 14.0))
    ix, cycle = _junction(rng, limit, params)
    k = ix.lanes_per_arm["W"]
    lane = {"straight": int(rng.integers(0, k)), "left": k - 1, "right": 0}[movement]
    s0 = before_line(ix, "W", lane, rng.uniform(40.0, 110.0)) - EGO_FRONT_M
    actors = _junction_traffic(rng, ix, cycle, params, lane)
    return Setup(ix.road_map, through_route(ix, "W", movement, lane), s0, limit * rng.uniform(0.7, 1.0), actors)


def intersection_straight(rng: np.random.Generator, params: ScenarioParams) -> Setup:
    """Straight through a signalised junction, with cross traffic and pedestrians."""
    return _through_junction(rng, params, "straight")


def intersection_left(rng: np.random.Generator, params: ScenarioParams) -> Setup:
    """A left turn at a signalised junction (yielding to oncoming traffic and pedestrians)."""
    return _through_junction(rng, params, "left")


def intersection_right(rng: np.random.Generator, params: ScenarioParams) -> Setup:
    """A right turn at a signalised junction (yielding to pedestrians on the crosswalk)."""
    return _through_junction(rng, params, "right")


def all_way_stop(rng: np.random.Generator, params: ScenarioParams) -> Setup:
    """A 4-way stop: full stop at the line, then go when the junction is clear (first come, first served)."""
    limit = float(rng.uniform(9.0, 12.0))
    ix, _ = _junction(rng, limit, params, lights=False)
    movement = str(rng.choice(["straight", "left", "right"]))
    s0 = before_line(ix, "W", 0, rng.uniform(30.0, 70.0)) - EGO_FRONT_M
    arrivals = sorted((float(rng.uniform(0.0, 10.0)), arm) for arm in ("S", "E", "N") if rng.random() < 0.7)
    speed = limit * 0.85
    actors: list = []
    for t_arrive, arm in arrivals:  # earlier arrivals are simulated first: the later ones yield to them
        route = through_route(ix, arm, str(rng.choice(["straight", "straight", "right"])), 0)
        role = "oncoming" if arm == "E" else "crossing"
        s = before_line(ix, arm, 0, speed * t_arrive + 10.0)
        actors.append(VehiclePlan(route, s, speed, role, driver=Driver(speed_factor=0.85)))
    if rng.random() < 0.3:
        actors.append(_walker(rng, ix, str(rng.choice(["S", "N", "E"])), int(rng.integers(20, 80))))
    return Setup(ix.road_map, through_route(ix, "W", movement, 0), s0, limit * rng.uniform(0.7, 1.0), actors)


def amber_light(rng: np.random.Generator, params: ScenarioParams) -> Setup:
    """The light turns amber as the ego approaches: stop hard, or go through if it cannot stop comfortably."""
    limit = float(rng.uniform(12.0, 15.0))
    distance = rng.uniform(60.0, 100.0)
    # the ego cruises at the limit; amber starts 0.6-1.5 comfortable stopping distances before the line
    at_amber = rng.uniform(0.6, 1.5) * limit * limit / (2.0 * 3.0)
    t_amber = (distance - at_amber) / limit
    green = t_amber + float(rng.uniform(2.0, 8.0))
    ix, cycle = _junction(rng, limit, params, green_we=green, offset_s=green - t_amber)
    lane = int(rng.integers(0, ix.lanes_per_arm["W"]))
    route = through_route(ix, "W", "straight", lane)
    s0 = before_line(ix, "W", lane, distance) - EGO_FRONT_M
    traffic = _junction_traffic(rng, ix, cycle, params, lane)
    actors = [p for p in traffic if not (isinstance(p, VehiclePlan) and p.route[0] == route[0])]  # nobody ahead
    return Setup(ix.road_map, route, s0, limit, actors)


def unprotected_left(rng: np.random.Generator, params: ScenarioParams) -> Setup:
    """Turn left on a green light across a stream of oncoming traffic: wait for the one gap."""
    limit = float(rng.uniform(10.0, 14.0))
    speed = limit * float(rng.uniform(0.7, 0.9))
    distance = rng.uniform(30.0, 70.0)
    ix, _ = _junction(
        rng, limit, params, green_we=float(rng.uniform(25.0, 35.0)), offset_s=float(rng.uniform(0.0, 3.0))
    )
    lane = ix.lanes_per_arm["W"] - 1
    s0 = before_line(ix, "W", lane, distance) - EGO_FRONT_M
    t_arrive = distance / speed
    # oncoming cars too close together to turn across, with one gap of 7-9 s after the first few
    arrivals, t = [], t_arrive - rng.uniform(0.0, 3.0)
    wide_gap_after = int(rng.integers(1, 4))
    while t < t_arrive + 16.0:
        arrivals.append(t)
        t += rng.uniform(7.0, 9.0) if len(arrivals) == wide_gap_after else rng.uniform(1.5, 3.5)
    v = limit * 0.9
    actors: list = []
    for t_line in arrivals:  # the earliest (farthest ahead) first: followers react to their leaders
        oncoming_lane = int(rng.integers(0, ix.lanes_per_arm["E"]))
        s = before_line(ix, "E", oncoming_lane, v * t_line)
        if s > 5.0:
            route = through_route(ix, "E", "straight", oncoming_lane)
            actors.append(VehiclePlan(route, s, v, "oncoming", driver=Driver(speed_factor=0.9)))
    if rng.random() < 0.3:
        actors.append(_walker(rng, ix, "N", int(rng.integers(20, 80))))
    return Setup(ix.road_map, through_route(ix, "W", "left", lane), s0, speed, actors)
