"""Scenario generators: name → function(rng, scene_id, seed, params) → Scene.

A scenario draws a *setup* from ``rng`` — layout, the ego's route and start, the
other actors — and ``scene_builder.build_scene`` turns it into a Scene (actors
simulated, expert recorded, labels). Distances are chosen so that what the
scenario is named for happens during the episode (the ego starts ~3-8 s before).
Road scenarios live here, junction scenarios in ``junction_scenarios.py``.

``HARD`` scenarios are the long tail on purpose: a pedestrian stepping out from
between parked cars, a lead braking hard, a cut-in, a light turning amber on
approach, an unprotected left turn across oncoming traffic.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from redux.sim_bridge.minisim import junction_scenarios, layouts
from redux.sim_bridge.minisim.actors import Brake, ParkedPlan, VehiclePlan, WalkerPlan
from redux.sim_bridge.minisim.expert import EGO_FRONT_M
from redux.sim_bridge.minisim.layouts import LANE_WIDTH_M, Road
from redux.sim_bridge.minisim.longitudinal import Driver
from redux.sim_bridge.minisim.scene import DT_S, Scene
from redux.sim_bridge.minisim.scene_builder import ScenarioParams, Setup, build_scene
from redux.sim_bridge.minisim.traffic import (
    cyclist,
    forward_route,
    oncoming_route,
    parked_cars,
    road_pose,
    sidewalk_walkers,
    stream,
)

Generator = Callable[[np.random.Generator, int, int, ScenarioParams], Scene]
SetupFn = Callable[[np.random.Generator, ScenarioParams], Setup]
ROAD_LENGTH_M = 650.0
EGO_START_M = 60.0  # where the ego's rig origin starts on road scenarios
MIN_RADIUS_M = 40.0


def _road_extras(rng: np.random.Generator, road: Road, ego_lane: int, limit: float) -> list:
    """Everyday surroundings of a road scene: oncoming traffic, parked cars, sidewalk pedestrians, a cyclist."""
    plans: list = []
    if rng.random() < (0.3 if ego_lane > 0 else 0.1):  # a cyclist in the kerb lane; rarely in the ego's own
        s0 = EGO_START_M + rng.uniform(30.0, 120.0)
        plans.append(cyclist(forward_route(road, 0), s0, float(rng.uniform(4.0, 6.0)), limit))
    for lane in range(len(road.oncoming[0])):
        route = oncoming_route(road, lane)
        plans += stream(
            rng, route, rng.uniform(250.0, 450.0), int(rng.integers(1, 4)), limit * 0.9, (30.0, 80.0), "oncoming"
        )
    parked = np.sort(rng.uniform(30.0, ROAD_LENGTH_M - 30.0, size=int(rng.integers(0, 4))))
    parked = parked[np.concatenate([[True], np.diff(parked) > 7.0])] if len(parked) else parked
    plans += parked_cars(road, parked)
    plans += sidewalk_walkers(rng, road, int(rng.integers(0, 3)), ROAD_LENGTH_M)
    return plans


def _other_forward_lanes(rng: np.random.Generator, road: Road, ego_lane: int, limit: float) -> list:
    """Traffic in the ego's direction on the lanes beside it."""
    plans: list = []
    for lane in range(len(road.forward[0])):
        if lane != ego_lane:
            front = EGO_START_M + rng.uniform(20.0, 120.0)
            plans += stream(
                rng, forward_route(road, lane), front, int(rng.integers(1, 4)), limit * 0.9, (25.0, 60.0), "traffic"
            )
    return plans


def _on_road(road: Road, ego_lane: int, speed0: float, actors: list, route: tuple[int, ...] | None = None) -> Setup:
    return Setup(road.road_map, route or forward_route(road, ego_lane), EGO_START_M, speed0, actors)


def _neighbour(rng: np.random.Generator, lane: int, lanes: int) -> int:
    """A lane next to ``lane`` (left or right at random where both exist)."""
    if lane == 0 or (lane < lanes - 1 and rng.random() < 0.5):
        return lane + 1
    return lane - 1


# -- road scenarios ------------------------------------------------------------------------------------


def straight(rng: np.random.Generator, params: ScenarioParams) -> Setup:
    """Cruising on a straight multi-lane road with traffic around."""
    limit = float(rng.uniform(11.0, 16.0))
    road = layouts.straight_road(ROAD_LENGTH_M, int(rng.integers(2, 4)), int(rng.integers(1, 3)), limit)
    ego_lane = int(rng.integers(0, len(road.forward[0])))
    actors = _other_forward_lanes(rng, road, ego_lane, limit) + _road_extras(rng, road, ego_lane, limit)
    if rng.random() < 0.5:  # a lead far ahead
        front = EGO_START_M + rng.uniform(70.0, 140.0)
        actors += stream(rng, forward_route(road, ego_lane), front, 1, limit * 0.9, (0, 1), "lead")
    return _on_road(road, ego_lane, limit * rng.uniform(0.8, 1.0), actors)


def follow_lead(rng: np.random.Generator, params: ScenarioParams) -> Setup:
    """A lead vehicle ahead in the ego's lane, sometimes slowing down for a while."""
    limit = float(rng.uniform(11.0, 16.0))
    road = layouts.straight_road(ROAD_LENGTH_M, int(rng.integers(1, 3)), 1, limit)
    ego_lane = int(rng.integers(0, len(road.forward[0])))
    factor = float(rng.uniform(0.5, 0.9))
    brake = None
    if rng.random() < 0.5:
        floor = limit * factor * float(rng.uniform(0.3, 0.7))
        brake = Brake(int(rng.integers(30, 100)), float(rng.uniform(1.0, 2.5)), floor)
    s_lead = EGO_START_M + EGO_FRONT_M + rng.uniform(15.0, 35.0)
    lead = VehiclePlan(
        forward_route(road, ego_lane), s_lead, limit * factor, "lead", driver=Driver(speed_factor=factor), brake=brake
    )
    actors = [lead] + _other_forward_lanes(rng, road, ego_lane, limit) + _road_extras(rng, road, ego_lane, limit)
    return _on_road(road, ego_lane, limit * factor, actors)


def curve(rng: np.random.Generator, params: ScenarioParams) -> Setup:
    """A curved road (every lane's radius 40-150 m): the expert slows for the bend and keeps its lane."""
    limit = float(rng.uniform(10.0, 15.0))
    n_forward, n_oncoming = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    inset = max(n_forward, n_oncoming) * LANE_WIDTH_M  # the inner lanes turn tighter than the reference line
    radius = float(1.0 / rng.uniform(1.0 / 150.0, 1.0 / (MIN_RADIUS_M + inset)))
    turn = float(rng.choice([-1.0, 1.0]) * rng.uniform(math.radians(40.0), math.radians(90.0)))
    start = EGO_START_M + rng.uniform(30.0, 100.0)
    road = layouts.curved_road(ROAD_LENGTH_M, n_forward, n_oncoming, limit, start, radius, turn)
    ego_lane = int(rng.integers(0, n_forward))
    actors = _other_forward_lanes(rng, road, ego_lane, limit) + _road_extras(rng, road, ego_lane, limit)
    return _on_road(road, ego_lane, limit * rng.uniform(0.8, 1.0), actors)


def lane_change(rng: np.random.Generator, params: ScenarioParams) -> Setup:
    """The route needs the next lane (for the route, or because a stalled car blocks the ego's)."""
    limit = float(rng.uniform(11.0, 16.0))
    n_forward = int(rng.integers(2, 4))
    split = EGO_START_M + rng.uniform(100.0, 160.0)  # the lane change ends here
    road = layouts.straight_road(ROAD_LENGTH_M, n_forward, 1, limit, splits_m=(split,))
    ego_lane = int(rng.integers(0, n_forward))
    target = _neighbour(rng, ego_lane, n_forward)
    speed = limit * float(rng.uniform(0.85, 1.0))
    actors: list = []
    if rng.random() < 0.5:  # a stalled car a little past the lane change blocks the ego's lane
        lateral = -(n_forward - 0.5 - ego_lane) * LANE_WIDTH_M
        actors.append(ParkedPlan(road_pose(road, split + rng.uniform(20.0, 40.0), lateral), "blocker"))
    # the target lane's traffic leaves a gap around where the ego moves into it
    v_target = limit * 0.9
    drift = (speed - v_target) * (split - 40.0 - EGO_START_M) / speed
    target_route = forward_route(road, target)
    ahead = EGO_START_M + 30.0 + rng.uniform(0.0, 30.0) + drift
    behind = EGO_START_M - 35.0 - rng.uniform(0.0, 20.0) + drift
    actors += stream(rng, target_route, ahead, 2, v_target, (30.0, 50.0), "traffic", (0.85, 0.9))
    if behind > 5.0:
        actors.append(VehiclePlan(target_route, behind, v_target, "traffic", driver=Driver(speed_factor=0.85)))
    actors += _road_extras(rng, road, ego_lane, limit)
    return _on_road(road, ego_lane, speed, actors, (road.forward[0][ego_lane], road.forward[1][target]))


def nudge(rng: np.random.Generator, params: ScenarioParams) -> Setup:
    """A car double-parked into the ego's lane: pass it with a lateral offset once the other lane is free."""
    limit = float(rng.uniform(9.0, 13.0))
    n_forward = int(rng.integers(1, 3))
    road = layouts.straight_road(ROAD_LENGTH_M, n_forward, 1, limit)
    intrusion = float(rng.uniform(0.8, 1.4))  # how far the parked car reaches into the kerb lane
    s_parked = EGO_START_M + rng.uniform(60.0, 110.0)
    lateral = -n_forward * LANE_WIDTH_M + intrusion - 0.95
    actors: list = [ParkedPlan(road_pose(road, s_parked, lateral), "parked")]
    actors += parked_cars(road, np.array([s_parked - 12.0, s_parked + 15.0]))
    actors += _road_extras(rng, road, 0, limit)
    return _on_road(road, 0, limit * rng.uniform(0.8, 1.0), actors)


def merge(rng: np.random.Generator, params: ScenarioParams) -> Setup:
    """An on-ramp joins the kerb lane: the ego merges from the ramp, or lets a ramp vehicle in."""
    limit = float(rng.uniform(12.0, 16.0))
    merge_m, ramp_m = float(rng.uniform(220.0, 280.0)), 180.0
    layout = layouts.merge_road(ROAD_LENGTH_M, 2, 1, limit, merge_m, ramp_m)
    road = layout.road
    main, ramp = forward_route(road, 0), (layout.ramp, road.forward[1][0])
    speed = limit * float(rng.uniform(0.85, 1.0))
    actors: list = []
    if rng.random() < 0.5:  # the ego is on the ramp; the kerb lane has traffic with gaps
        route, s0 = ramp, float(rng.uniform(10.0, 50.0))
        t_merge = (ramp_m - s0) / speed
        first = merge_m + rng.uniform(10.0, 40.0) - limit * 0.85 * t_merge  # ahead of the ego at the merge
        actors += stream(rng, main, max(first, 40.0), 3, limit * 0.85, (35.0, 60.0), "traffic", (0.8, 0.9))
    else:  # the ego drives the kerb lane; a ramp vehicle merges in 2.5-4 s ahead of it
        route, s0 = main, EGO_START_M
        t_merge = (merge_m - EGO_START_M) / speed
        v_ramp = limit * 0.85
        s_ramp = ramp_m - v_ramp * (t_merge - rng.uniform(2.5, 4.0))
        if s_ramp > 5.0:
            actors.append(VehiclePlan(ramp, s_ramp, v_ramp, "merging", driver=Driver(speed_factor=0.85)))
    front = EGO_START_M + rng.uniform(20.0, 100.0)
    actors += stream(rng, forward_route(road, 1), front, 2, limit * 0.9, (30.0, 60.0), "traffic")
    actors += _road_extras(rng, road, 0, limit)
    return Setup(road.road_map, route, s0, speed, actors)


# -- hard road scenarios -------------------------------------------------------------------------------


def ped_stepout(rng: np.random.Generator, params: ScenarioParams) -> Setup:
    """A pedestrian steps out from between parked cars into the ego's lane, 1-2 s ahead of it."""
    limit = float(rng.uniform(9.0, 13.0))
    n_forward = int(rng.integers(1, 3))
    road = layouts.straight_road(ROAD_LENGTH_M, n_forward, 1, limit)
    walk = float(rng.uniform(1.0, 1.8))
    to_lane = 2.6  # from behind the parked cars to the lane edge
    t_enter = params.warmup_steps * DT_S + rng.uniform(1.5, 4.0)
    time_to_reach = rng.uniform(1.0, 2.2)  # how far ahead of the ego (in time) the pedestrian enters its lane
    s_ped = EGO_START_M + EGO_FRONT_M + limit * (t_enter + time_to_reach)
    gap = rng.uniform(1.0, 1.6)  # between the two parked cars it steps out from
    actors: list = parked_cars(road, np.array([s_ped - 2.3 - gap, s_ped + 2.3 + gap, s_ped + 8.0 + gap]))
    start = road_pose(road, s_ped, -n_forward * LANE_WIDTH_M - to_lane)[:2]
    end = road_pose(road, s_ped + rng.uniform(-1.0, 1.0), LANE_WIDTH_M + 2.0)[:2]
    start_step = max(int((t_enter - to_lane / walk) / DT_S), 0)
    actors.append(WalkerPlan(np.array([start, end]), walk, start_step, "stepping_out"))
    actors += _road_extras(rng, road, 0, limit)
    return _on_road(road, 0, limit * float(rng.uniform(0.85, 1.0)), actors)


def lead_brake(rng: np.random.Generator, params: ScenarioParams) -> Setup:
    """The lead vehicle brakes hard (4-7 m/s²), to a near stop."""
    limit = float(rng.uniform(12.0, 17.0))
    road = layouts.straight_road(ROAD_LENGTH_M, int(rng.integers(1, 3)), 1, limit)
    ego_lane = int(rng.integers(0, len(road.forward[0])))
    factor = float(rng.uniform(0.7, 0.95))
    speed = limit * factor
    s_lead = EGO_START_M + EGO_FRONT_M + 2.3 + 2.0 + speed * rng.uniform(1.3, 2.2)  # 1.3-2.2 s behind it
    brake = Brake(int(rng.integers(30, 90)), float(rng.uniform(4.0, 7.0)), speed * float(rng.uniform(0.0, 0.3)))
    lead = VehiclePlan(
        forward_route(road, ego_lane), s_lead, speed, "lead", driver=Driver(speed_factor=factor), brake=brake
    )
    actors = [lead] + _other_forward_lanes(rng, road, ego_lane, limit) + _road_extras(rng, road, ego_lane, limit)
    return _on_road(road, ego_lane, speed, actors)


def cut_in(rng: np.random.Generator, params: ScenarioParams) -> Setup:
    """A slower vehicle from the next lane cuts in 5-12 m ahead of the ego, over 20-30 m."""
    limit = float(rng.uniform(12.0, 16.0))
    n_forward = int(rng.integers(2, 4))
    ego_lane = int(rng.integers(0, n_forward))
    from_lane = _neighbour(rng, ego_lane, n_forward)
    v_ego = limit * float(rng.uniform(0.9, 1.0))
    v_cut = v_ego * float(rng.uniform(0.7, 0.9))
    t_cut = params.warmup_steps * DT_S + rng.uniform(3.0, 6.0)  # when the cut-in is complete
    gap = rng.uniform(5.0, 12.0)  # cutter's rear to ego's front then, had the ego not slowed
    split = EGO_START_M + EGO_FRONT_M + v_ego * t_cut + gap + 2.3
    road = layouts.straight_road(ROAD_LENGTH_M, n_forward, 1, limit, splits_m=(split,))
    route = (road.forward[0][from_lane], road.forward[1][ego_lane])
    cutter = VehiclePlan(route, split - v_cut * t_cut, v_cut, "cut_in", driver=Driver(speed_factor=v_cut / limit),
                         lane_change_m=float(rng.uniform(20.0, 30.0)))  # fmt: skip
    return _on_road(road, ego_lane, v_ego, [cutter] + _road_extras(rng, road, ego_lane, limit))


# -- registry ------------------------------------------------------------------------------------------


def _generator(name: str, setup: SetupFn, hard: bool) -> Generator:
    def generate_scenario(
        rng: np.random.Generator, scene_id: int, seed: int, params: ScenarioParams = ScenarioParams()
    ) -> Scene:
        return build_scene(setup(rng, params), params, scene_id, seed, name, hard)

    generate_scenario.__name__, generate_scenario.__doc__ = name, setup.__doc__
    return generate_scenario


_NORMAL_SETUPS: dict[str, SetupFn] = {
    "straight": straight,
    "follow_lead": follow_lead,
    "curve": curve,
    "intersection_straight": junction_scenarios.intersection_straight,
    "intersection_left": junction_scenarios.intersection_left,
    "intersection_right": junction_scenarios.intersection_right,
    "all_way_stop": junction_scenarios.all_way_stop,
    "merge": merge,
    "lane_change": lane_change,
    "nudge": nudge,
}
_HARD_SETUPS: dict[str, SetupFn] = {
    "ped_stepout": ped_stepout,
    "lead_brake": lead_brake,
    "cut_in": cut_in,
    "amber_light": junction_scenarios.amber_light,
    "unprotected_left": junction_scenarios.unprotected_left,
}
NORMAL: dict[str, Generator] = {name: _generator(name, fn, False) for name, fn in _NORMAL_SETUPS.items()}
HARD: dict[str, Generator] = {name: _generator(name, fn, True) for name, fn in _HARD_SETUPS.items()}
SCENARIOS: dict[str, Generator] = {**NORMAL, **HARD}


def generate(
    name: str, rng: np.random.Generator, scene_id: int, seed: int, params: ScenarioParams = ScenarioParams()
) -> Scene:
    return SCENARIOS[name](rng, scene_id, seed, params)
