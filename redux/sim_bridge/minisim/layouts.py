"""Road layouts: multi-lane roads (straight or curved), 4-way intersections and on-ramp merges.

Each builder returns a :class:`RoadMap` plus the lane-id handles a scenario needs
("the kerb lane of the second segment", "the left-turn connector from the west").
Conventions, shared by every builder:

- right-hand traffic; a lane is 3.5 m wide and its centre line is sampled every 0.5 m;
- lane lists are ordered from the kerb outwards: index 0 is the kerb (rightmost)
  lane of its direction, so ``left`` points to index + 1;
- a road is cut into segments (``splits_m``) so that a route can change lanes:
  a route goes from a lane to the successor of its neighbour (see ``route.py``);
- all lanes of a road are offsets of one reference line, so parallel lanes have the
  same vertex count and correspond vertex for vertex.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from redux.sim_bridge.minisim.polyline import SPACING_M, offset
from redux.sim_bridge.minisim.road_map import Crosswalk, Lane, LightState, RoadMap, StopLine, TrafficLight

LANE_WIDTH_M = 3.5
JUNCTION_CORNER_M = (
    7.0  # junction box beyond the crossing road's lanes: turn radii ≥ 8.75 m keep a car's swept corners on the lanes
)
CROSSWALK_M = (1.0, 4.0)  # crosswalk extent before the junction box edge
STOP_SETBACK_M = 5.0  # stop line before the junction box edge (behind the crosswalk)
ARM_LENGTH_M = 300.0
LIGHT_HEIGHT_M = 5.0
RAMP_GORE_M = 1.0  # gap between ramp and main road before the taper
RAMP_TAPER_M = 70.0

ARMS = ("W", "S", "E", "N")  # an arm's vehicles drive into the junction heading 0, π/2, π, -π/2
_INWARD_HEADING = {"W": 0.0, "S": 0.5 * math.pi, "E": math.pi, "N": -0.5 * math.pi}
# seen from a vehicle entering from an arm: which arm it leaves by
EXIT_ARM = {
    ("W", "straight"): "E", ("W", "left"): "N", ("W", "right"): "S",
    ("S", "straight"): "N", ("S", "left"): "W", ("S", "right"): "E",
    ("E", "straight"): "W", ("E", "left"): "S", ("E", "right"): "N",
    ("N", "straight"): "S", ("N", "left"): "E", ("N", "right"): "W",
}  # fmt: skip


def integrate_path(start: tuple[float, float], heading: float, pieces: list[tuple[float, float]]) -> np.ndarray:
    """Points every ~0.5 m along consecutive (length, curvature) pieces: straights and exact arcs."""
    x, y, h = float(start[0]), float(start[1]), heading
    points = [(x, y)]
    for length, curvature in pieces:
        if length <= 1e-9:
            continue
        n = max(1, int(math.ceil(length / SPACING_M)))
        u = np.arange(1, n + 1) * (length / n)
        if abs(curvature) < 1e-12:
            px, py = x + u * math.cos(h), y + u * math.sin(h)
        else:
            px = x + (np.sin(h + curvature * u) - math.sin(h)) / curvature
            py = y - (np.cos(h + curvature * u) - math.cos(h)) / curvature
        points.extend(zip(px.tolist(), py.tolist()))
        x, y, h = float(px[-1]), float(py[-1]), h + curvature * length
    return np.asarray(points)


# -- roads -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Road:
    """A two-way road: ``forward`` / ``oncoming`` lane ids per segment, kerb lane first.

    Segments are listed in the forward direction for both, so ``oncoming[k]`` lies
    beside ``forward[k]`` and flows into ``oncoming[k - 1]``.
    """

    road_map: RoadMap
    reference: np.ndarray  # (N, 2) the line between the two directions, in the forward direction
    forward: tuple[tuple[int, ...], ...]
    oncoming: tuple[tuple[int, ...], ...]


def _road_lanes(
    reference: np.ndarray,
    n_forward: int,
    n_oncoming: int,
    speed_limit: float,
    splits_m: tuple[float, ...],
    ids: itertools.count,
) -> tuple[dict[int, Lane], list[list[int]], list[list[int]]]:
    step = np.hypot(*np.diff(reference, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(step)])
    cuts = [0] + [int(np.searchsorted(s, cut)) for cut in splits_m] + [len(reference) - 1]
    forward_ids = [[next(ids) for _ in range(n_forward)] for _ in cuts[:-1]]
    oncoming_ids = [[next(ids) for _ in range(n_oncoming)] for _ in cuts[:-1]]
    lanes: dict[int, Lane] = {}
    for seg, (i0, i1) in enumerate(itertools.pairwise(cuts)):
        for j in range(n_forward):
            line = offset(reference, -(n_forward - 0.5 - j) * LANE_WIDTH_M)[i0 : i1 + 1]
            lanes[forward_ids[seg][j]] = Lane(
                id=forward_ids[seg][j],
                centerline=line,
                width_m=LANE_WIDTH_M,
                speed_limit_mps=speed_limit,
                successors=(forward_ids[seg + 1][j],) if seg + 1 < len(forward_ids) else (),
                left=forward_ids[seg][j + 1] if j + 1 < n_forward else None,
                right=forward_ids[seg][j - 1] if j > 0 else None,
            )
        for j in range(n_oncoming):
            line = offset(reference, (n_oncoming - 0.5 - j) * LANE_WIDTH_M)[i0 : i1 + 1][::-1]
            lanes[oncoming_ids[seg][j]] = Lane(
                id=oncoming_ids[seg][j],
                centerline=np.ascontiguousarray(line),
                width_m=LANE_WIDTH_M,
                speed_limit_mps=speed_limit,
                successors=(oncoming_ids[seg - 1][j],) if seg > 0 else (),
                left=oncoming_ids[seg][j + 1] if j + 1 < n_oncoming else None,
                right=oncoming_ids[seg][j - 1] if j > 0 else None,
            )
    return lanes, forward_ids, oncoming_ids


def road_from_reference(
    reference: np.ndarray,
    n_forward: int,
    n_oncoming: int,
    speed_limit: float,
    splits_m: tuple[float, ...] = (),
) -> Road:
    lanes, forward, oncoming = _road_lanes(reference, n_forward, n_oncoming, speed_limit, splits_m, itertools.count())
    edges = (offset(reference, -n_forward * LANE_WIDTH_M), offset(reference, n_oncoming * LANE_WIDTH_M))
    return Road(
        RoadMap(lanes=lanes, road_edges=edges),
        reference,
        tuple(map(tuple, forward)),
        tuple(map(tuple, oncoming)),
    )


def straight_road(
    length_m: float, n_forward: int, n_oncoming: int, speed_limit: float, splits_m: tuple[float, ...] = ()
) -> Road:
    """A straight road along +x from the origin."""
    reference = integrate_path((0.0, 0.0), 0.0, [(length_m, 0.0)])
    return road_from_reference(reference, n_forward, n_oncoming, speed_limit, splits_m)


def curved_road(
    length_m: float,
    n_forward: int,
    n_oncoming: int,
    speed_limit: float,
    curve_start_m: float,
    radius_m: float,
    turn_rad: float,
    splits_m: tuple[float, ...] = (),
) -> Road:
    """Straight, then an arc of ``radius_m`` turning ``turn_rad`` (positive: left), then straight."""
    arc = radius_m * abs(turn_rad)
    pieces = [
        (curve_start_m, 0.0),
        (arc, math.copysign(1.0 / radius_m, turn_rad)),
        (length_m - curve_start_m - arc, 0.0),
    ]
    reference = integrate_path((0.0, 0.0), 0.0, pieces)
    return road_from_reference(reference, n_forward, n_oncoming, speed_limit, splits_m)


# -- merges ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Merge:
    """A straight road whose kerb lane is joined by an on-ramp ending at ``merge_m``."""

    road: Road  # segment 0 ends where the ramp has merged, segment 1 continues
    ramp: int  # the ramp lane; its successor is the kerb lane of segment 1


def merge_road(
    length_m: float, n_forward: int, n_oncoming: int, speed_limit: float, merge_m: float, ramp_m: float
) -> Merge:
    reference = integrate_path((0.0, 0.0), 0.0, [(length_m, 0.0)])
    ids = itertools.count()
    lanes, forward, oncoming = _road_lanes(reference, n_forward, n_oncoming, speed_limit, (merge_m,), ids)
    kerb_d = -(n_forward - 0.5) * LANE_WIDTH_M
    x = np.arange(merge_m - ramp_m, merge_m + 1e-9, SPACING_M)
    taper = np.clip((x - (merge_m - RAMP_TAPER_M)) / RAMP_TAPER_M, 0.0, 1.0)
    separation = (LANE_WIDTH_M + RAMP_GORE_M) * (1.0 - taper * taper * (3.0 - 2.0 * taper))
    ramp_line = np.stack([x, kerb_d - separation], axis=1)
    ramp_id = next(ids)
    lanes[ramp_id] = Lane(ramp_id, ramp_line, LANE_WIDTH_M, speed_limit, successors=(forward[1][0],))
    # the main road's right edge gives way to the ramp between the gore and the merge point
    main_right = offset(reference, -n_forward * LANE_WIDTH_M)
    ramp_left = ramp_line[:, 1] + 0.5 * LANE_WIDTH_M
    gore_x = float(x[np.argmax(ramp_left >= -n_forward * LANE_WIDTH_M - 1e-6)])
    edges = (
        offset(reference, n_oncoming * LANE_WIDTH_M),
        main_right[main_right[:, 0] <= gore_x],
        np.stack([x, ramp_left], axis=1)[x <= gore_x],
        np.stack([x, ramp_line[:, 1] - 0.5 * LANE_WIDTH_M], axis=1),
        main_right[main_right[:, 0] >= merge_m],
    )
    road = Road(
        RoadMap(lanes=lanes, road_edges=edges), reference, tuple(map(tuple, forward)), tuple(map(tuple, oncoming))
    )
    return Merge(road, ramp_id)


# -- intersections -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LightCycle:
    """Fixed-time signal plan: W–E green, amber, all-red, then S–N green, amber, all-red."""

    green_we_s: float
    green_sn_s: float
    amber_s: float = 3.0
    all_red_s: float = 2.0
    offset_s: float = 0.0  # how far into the cycle the scene starts

    def schedule(self, axis: str, horizon_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Change times (from 0.0) and states of the lights on ``axis`` ("WE" or "SN") up to ``horizon_s``."""
        durations = [self.green_we_s, self.amber_s, self.all_red_s, self.green_sn_s, self.amber_s, self.all_red_s]
        green, amber, red = LightState.GREEN, LightState.AMBER, LightState.RED
        states = [green, amber, red, red, red, red] if axis == "WE" else [red, red, red, green, amber, red]
        cycle = sum(durations)
        t = -(self.offset_s % cycle)
        times: list[float] = []
        values: list[int] = []
        while t < horizon_s:
            for duration, state in zip(durations, states):
                if t + duration > 0.0 and t < horizon_s and (not values or values[-1] != state):
                    times.append(max(t, 0.0))
                    values.append(int(state))
                t += duration
        return np.asarray(times), np.asarray(values)


@dataclass(frozen=True)
class Intersection:
    road_map: RoadMap
    incoming: dict[str, tuple[int, ...]]  # arm → lanes entering the junction, kerb lane first
    outgoing: dict[str, tuple[int, ...]]  # arm → lanes leaving the junction, kerb lane first
    connectors: dict[tuple[str, str, int], int]  # (arm, movement, incoming lane index) → connector lane
    lanes_per_arm: dict[str, int]


def _arm_frame(arm: str) -> tuple[np.ndarray, float]:
    h = _INWARD_HEADING[arm]
    return np.array([[math.cos(h), -math.sin(h)], [math.sin(h), math.cos(h)]]), h


def _turn_pieces(p0: np.ndarray, h0: float, p1: np.ndarray, h1: float) -> list[tuple[float, float]]:
    """Straight, quarter arc, straight between two poses whose headings differ by ±90°."""
    u0 = np.array([math.cos(h0), math.sin(h0)])
    u1 = np.array([math.cos(h1), math.sin(h1)])
    # corner X = p0 + a·u0 = p1 − b·u1
    a, b = np.linalg.solve(np.stack([u0, u1], axis=1), p1 - p0)
    radius = min(a, b)
    turn = math.atan2(math.sin(h1 - h0), math.cos(h1 - h0))
    return [(a - radius, 0.0), (radius * abs(turn), math.copysign(1.0 / radius, turn)), (b - radius, 0.0)]


def intersection(
    lanes_we: int,
    lanes_sn: int,
    speed_limit: float,
    cycle: LightCycle | None,
    horizon_s: float,
) -> Intersection:
    """A 4-way junction at the origin; lights when ``cycle`` is given, else an all-way stop.

    W–E arms have ``lanes_we`` lanes per direction, S–N arms ``lanes_sn``. Connectors:
    straight from every lane, right turns from the kerb lane, left turns from the
    innermost lane (into the innermost lane of the exit arm).
    """
    ids = itertools.count()
    per_arm = {"W": lanes_we, "E": lanes_we, "S": lanes_sn, "N": lanes_sn}
    half = {arm: per_arm[_cross(arm)] * LANE_WIDTH_M + JUNCTION_CORNER_M for arm in ARMS}
    lanes: dict[int, Lane] = {}
    incoming: dict[str, tuple[int, ...]] = {}
    outgoing: dict[str, tuple[int, ...]] = {}
    edges: list[np.ndarray] = []
    stop_lines: list[StopLine] = []
    crosswalks: list[Crosswalk] = []
    lights: dict[int, TrafficLight] = {}
    for light_id, arm in enumerate(ARMS):
        rot, heading = _arm_frame(arm)
        k, h = per_arm[arm], half[arm]
        x = np.arange(-h - ARM_LENGTH_M, -h + 1e-9, SPACING_M)

        def world(local_x: np.ndarray, local_y: float | np.ndarray) -> np.ndarray:
            return np.stack(np.broadcast_arrays(local_x, local_y), axis=1) @ rot.T

        in_ids = tuple(next(ids) for _ in range(k))
        out_ids = tuple(next(ids) for _ in range(k))
        for j in range(k):
            in_line = world(x, -(k - 0.5 - j) * LANE_WIDTH_M)
            out_line = world(x[::-1], (k - 0.5 - j) * LANE_WIDTH_M)
            lanes[in_ids[j]] = Lane(in_ids[j], in_line, LANE_WIDTH_M, speed_limit)
            lanes[out_ids[j]] = Lane(out_ids[j], out_line, LANE_WIDTH_M, speed_limit)
        incoming[arm], outgoing[arm] = in_ids, out_ids
        edges += [world(x, -k * LANE_WIDTH_M), world(x, k * LANE_WIDTH_M)]
        if cycle is not None:
            times, states = cycle.schedule("WE" if arm in "WE" else "SN", horizon_s)
            position = np.append(world(np.array([-h]), -k * LANE_WIDTH_M - 0.5)[0], LIGHT_HEIGHT_M)
            lights[light_id] = TrafficLight(light_id, position, times, states)
        for j, lane_id in enumerate(in_ids):
            y = -(k - 0.5 - j) * LANE_WIDTH_M
            segment = world(np.full(2, -h - STOP_SETBACK_M), np.array([y - 0.5 * LANE_WIDTH_M, y + 0.5 * LANE_WIDTH_M]))
            s_line = lanes[lane_id].length_m - STOP_SETBACK_M
            stop_lines.append(StopLine(lane_id, s_line, segment, light_id if cycle is not None else None))
        near, far = -h - CROSSWALK_M[0], -h - CROSSWALK_M[1]
        reach = k * LANE_WIDTH_M + 0.5
        crosswalks.append(Crosswalk(world(np.array([far, near, near, far]), np.array([-reach, -reach, reach, reach]))))
        # kerb corner to the arm on the right: a quarter arc around the junction-box corner
        right_arm = EXIT_ARM[(arm, "right")]
        corner = world(np.array([-h]), -half[right_arm])[0]
        angle = heading + np.linspace(0.5 * math.pi, 0.0, 9)
        edges.append(corner + JUNCTION_CORNER_M * np.stack([np.cos(angle), np.sin(angle)], axis=1))

    connectors: dict[tuple[str, str, int], int] = {}
    for arm in ARMS:
        k = per_arm[arm]
        for movement in ("straight", "left", "right"):
            exit_arm = EXIT_ARM[(arm, movement)]
            sources = {"straight": range(k), "right": [0], "left": [k - 1]}[movement]
            for j in sources:
                target_j = {"straight": j, "right": 0, "left": per_arm[exit_arm] - 1}[movement]
                src, dst = lanes[incoming[arm][j]], lanes[outgoing[exit_arm][target_j]]
                p0, p1 = src.centerline[-1], dst.centerline[0]
                h0, h1 = _INWARD_HEADING[arm], _INWARD_HEADING[exit_arm] + math.pi
                if movement == "straight":
                    line = integrate_path(p0, h0, [(float(np.hypot(*(p1 - p0))), 0.0)])
                else:
                    line = integrate_path(p0, h0, _turn_pieces(p0, h0, p1, h1))
                line[-1] = p1  # close the float gap so the connector meets its exit lane exactly
                lane_id = next(ids)
                lanes[lane_id] = Lane(lane_id, line, LANE_WIDTH_M, speed_limit, successors=(dst.id,), in_junction=True)
                connectors[(arm, movement, j)] = lane_id
                lanes[src.id] = _add_successor(lanes[src.id], lane_id)
    # same-direction neighbours on the arms, for completeness of the map
    for group in (*incoming.values(), *outgoing.values()):
        for j, lane_id in enumerate(group):
            lane = lanes[lane_id]
            lanes[lane_id] = Lane(
                lane.id, lane.centerline, lane.width_m, lane.speed_limit_mps, lane.successors,
                left=group[j + 1] if j + 1 < len(group) else None,
                right=group[j - 1] if j > 0 else None,
            )  # fmt: skip
    road_map = RoadMap(lanes, tuple(edges), tuple(stop_lines), lights, tuple(crosswalks))
    return Intersection(road_map, incoming, outgoing, connectors, per_arm)


def _cross(arm: str) -> str:
    return {"W": "S", "E": "S", "S": "W", "N": "W"}[arm]


def _add_successor(lane: Lane, successor: int) -> Lane:
    return Lane(
        lane.id, lane.centerline, lane.width_m, lane.speed_limit_mps, lane.successors + (successor,),
        lane.left, lane.right, lane.in_junction,
    )  # fmt: skip
