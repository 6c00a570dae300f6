"""Longitudinal driving along a path: IDM behind leads, stops at lines, yields at conflicts.

Shared by the expert ego and by every simulated vehicle, so that both obey the
same rules. Each constraint proposes an acceleration; the smallest wins and is
reported as the *reason* (the expert's longitudinal decision for its labels):

- cruise: IDM free road toward the speed cap (limit, curves ahead);
- lead: IDM behind actors in the corridor; for aligned ones about to enter it
  (cut-ins, merges, the lane the route changes into), an even deceleration that
  makes the following gap by the time they enter;
- light: stop at the line on red, and on amber when a comfortable stop is possible
  (or the line cannot be cleared before red);
- stop sign: stop at the line until the stop has been served (a full stop + dwell);
- yield: a crossing or oncoming actor will occupy a stretch of the path; unless the
  driver clears it well before the actor arrives, or arrives well after it left, it
  stops short of the stretch — at the junction's stop line when the stretch is in
  the junction, so as not to block it.

Scalar ``math`` on python lists throughout: this runs once per simulated step of
every vehicle and 64 times per ``expert_plan`` call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from redux.sim_bridge.minisim.obstacles import Conflict, PathObstacle
from redux.sim_bridge.minisim.polyline import SPACING_M, arc_lengths
from redux.sim_bridge.minisim.road_map import LightState, RoadMap
from redux.sim_bridge.minisim.route import RoutePath
from redux.sim_bridge.minisim.scene import DT_S

HARD_DECEL = 8.0
STOP_MARGIN = 1.2  # for a standing target, brake at most this much harder than stopping exactly at the gap needs
STOP_GAP_M = 0.5  # front bumper to the stop line once stopped
STOP_ZONE_M = 1.5  # stopped closer than this to a stop-sign line counts as having stopped there
STOP_SIGN_DWELL_STEPS = 10  # 1 s standstill at a stop sign
STOPPED_MPS = 0.05
COMMIT_DECEL = 6.0  # a yield that needs harder braking than this comes too late: drive on
PASS_MARGIN_STEPS = 15  # clear a conflict stretch this long before its actor arrives …
AFTER_MARGIN_STEPS = 10  # … or arrive this long after it left
CONFLICT_HORIZON_STEPS = 120
JUNCTION_HOLD_REACH_M = 8.0  # conflicts this far past a junction's exit still hold the driver at its entry
REASON_TIE_MPS2 = 0.3  # see LongitudinalPlanner.accel


class Reason(IntEnum):
    """Why the driver accelerates as it does; ordered by priority for reporting (see ``accel``)."""

    CRUISE = 0
    LEAD = 1
    YIELD = 2
    LIGHT = 3
    STOP_SIGN = 4


@dataclass(frozen=True)
class Driver:
    max_accel: float = 1.5
    comfort_decel: float = 2.0
    headway_s: float = 1.2
    min_gap_m: float = 2.0
    lateral_accel: float = 2.0  # speed cap in curves: v² κ ≤ this
    amber_decel: float = 3.0  # stops for amber when this deceleration suffices
    speed_factor: float = 1.0  # desired speed relative to the limit


def idm_accel(v: float, v_des: float, gap: float, v_lead: float, driver: Driver, min_gap: float) -> float:
    """Intelligent Driver Model, plus a final snap to standstill behind stopped things."""
    if gap <= 0.05:
        return -HARD_DECEL
    closing = v * (v - v_lead) / (2.0 * math.sqrt(driver.max_accel * driver.comfort_decel))
    wanted = min_gap + max(0.0, v * driver.headway_s + closing)
    accel = driver.max_accel * (1.0 - (v / max(v_des, 0.1)) ** 4 - (wanted / gap) ** 2)
    if v_lead < 0.1:  # stopping behind something that stands: IDM over-brakes early and creeps at the end
        if gap > min_gap:
            accel = max(accel, -STOP_MARGIN * v * v / (2.0 * (gap - min_gap)))
        if gap < min_gap + 0.5 and v < 0.3:
            accel = min(accel, -v / DT_S)
    return min(max(accel, -HARD_DECEL), driver.max_accel)


def free_accel(v: float, v_des: float, driver: Driver) -> float:
    accel = driver.max_accel * (1.0 - (v / max(v_des, 0.1)) ** 4)
    return min(max(accel, -HARD_DECEL), driver.max_accel)


def time_to_cover(distance: float, v: float, accel: float, v_max: float) -> float:
    """Seconds to drive ``distance`` from speed v accelerating at ``accel`` up to ``v_max``."""
    if distance <= 0.0:
        return 0.0
    v_max = max(v_max, v, 1.0)
    t_ramp = (v_max - v) / accel
    d_ramp = 0.5 * (v + v_max) * t_ramp
    if distance <= d_ramp:
        return (math.sqrt(v * v + 2.0 * accel * distance) - v) / accel
    return t_ramp + (distance - d_ramp) / v_max


def speed_cap(path: RoutePath, driver: Driver) -> list[float]:
    """Desired speed per path vertex: the limit, curves, and braking (at 1 m/s²) ahead of both."""
    curve = np.sqrt(driver.lateral_accel / np.maximum(np.abs(path.curvature), 1e-6))
    cap = np.minimum(path.speed_limit * driver.speed_factor, curve)
    reach = cap**2 + 2.0 * 1.0 * path.s  # v_i² ≤ v_j² + 2 b (s_j - s_i) for every j ≥ i
    return np.sqrt(np.maximum(np.minimum.accumulate(reach[::-1])[::-1] - 2.0 * path.s, 0.0)).tolist()


@dataclass(frozen=True)
class PathStopLine:
    s: float  # along the path
    red_in: list[int] | None  # per step: steps until the light is red (0: red now); None for a stop sign
    amber: list[bool] | None


def path_stop_lines(road_map: RoadMap, path: RoutePath, num_steps: int) -> list[PathStopLine]:
    """Stop lines on the path's lanes, with each light's state unrolled over the scene's steps."""
    first_vertex = {}
    for i, lane_id in enumerate(path.lane_id.tolist()):
        first_vertex.setdefault(lane_id, i)
    lines = []
    for line in road_map.stop_lines:
        if line.lane_id not in first_vertex:
            continue
        centerline = road_map.lanes[line.lane_id].centerline
        along = arc_lengths(centerline)
        x, y = (float(np.interp(line.s_m, along, centerline[:, k])) for k in (0, 1))
        _, s, _ = path.locate(x, y, first_vertex[line.lane_id])
        if line.light_id is None:
            lines.append(PathStopLine(s, None, None))
            continue
        light = road_map.traffic_lights[line.light_id]
        phase = np.searchsorted(light.change_times_s, np.arange(num_steps) * DT_S, side="right") - 1
        states = light.states[np.maximum(phase, 0)].tolist()
        red_in, countdown = [0] * num_steps, 10**6
        for t in range(num_steps - 1, -1, -1):
            countdown = 0 if states[t] == LightState.RED else countdown + 1
            red_in[t] = countdown
        lines.append(PathStopLine(s, red_in, [state == LightState.AMBER for state in states]))
    return sorted(lines, key=lambda line: line.s)


def junction_holds(path: RoutePath, stop_lines: list[PathStopLine]) -> list[tuple[float, float, float]]:
    """(entry s, exit s, hold s) per junction the path crosses; hold at its stop line if it has one."""
    flags = np.concatenate([[False], path.in_junction, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(flags))
    holds = []
    for start, stop in zip(edges[::2], edges[1::2]):
        entry, exit_ = float(path.s[start]), float(path.s[stop - 1])
        before = [line.s for line in stop_lines if entry - 12.0 <= line.s <= entry]
        holds.append((entry, exit_, before[-1] if before else entry))
    return holds


class LongitudinalPlanner:
    """The acceleration a driver applies at step t, for a vehicle reference point at arc length s."""

    def __init__(
        self,
        path: RoutePath,
        driver: Driver,
        front_m: float,
        rear_m: float,
        obstacles: list[PathObstacle],
        conflicts: list[Conflict],
        stop_lines: list[PathStopLine],
    ):
        self.driver = driver
        self.front_m, self.rear_m = front_m, rear_m
        self.cap = speed_cap(path, driver)
        self.last = len(self.cap) - 1
        self.obstacles = obstacles
        self.conflicts = conflicts
        self.stop_lines = stop_lines
        self.holds = junction_holds(path, stop_lines)

    def desired_speed(self, s: float) -> float:
        return self.cap[min(max(int(s / SPACING_M), 0), self.last)]

    def accel(self, t: int, s: float, v: float, served: list[bool]) -> tuple[float, Reason, int, float]:
        """(acceleration, reason, obstacle or stop-line index, cruise acceleration).

        ``served[j]``: stop sign ``j`` of ``stop_lines`` no longer binds. The
        acceleration is the smallest any rule asks for; the reason is the rule that
        asks for it, except that a rule of higher priority (stop line, then yield,
        then lead) keeps the reason when it asks for nearly as little (within
        ``REASON_TIE_MPS2``): stopped at a red light behind the crosswalk the expert
        is stopping for the light, whatever else would hold it there too.
        """
        driver = self.driver
        front, rear = s + self.front_m, s - self.rear_m
        v_des = self.desired_speed(s)
        cruise = free_accel(v, v_des, driver)
        best = reason_accel = cruise
        reason, who = Reason.CRUISE, -1

        for j, line in enumerate(self.stop_lines):
            gap = line.s - front
            if gap <= 0.0:
                continue
            if line.red_in is None:
                if served[j]:
                    continue
                kind = Reason.STOP_SIGN
            else:
                tt = min(t, len(line.red_in) - 1)
                if line.red_in[tt] > 0 and not (line.amber[tt] and self._stops_for_amber(gap, v, line.red_in[tt])):
                    continue
                kind = Reason.LIGHT
            accel = idm_accel(v, v_des, gap, 0.0, driver, STOP_GAP_M)
            if accel < best:
                best = reason_accel = accel
                reason, who = kind, j
            break  # lines further on wait until this one is passed

        for conflict in self.conflicts:
            target = self._yield_target(conflict, t, front, rear, v, v_des)
            if target is not None:
                accel = idm_accel(v, v_des, target[0] - front, 0.0, driver, target[1])
                best = min(best, accel)
                tie = REASON_TIE_MPS2 if reason > Reason.YIELD else 0.0
                if accel < reason_accel - tie:
                    reason, who, reason_accel = Reason.YIELD, conflict.obstacle, accel

        for index, ob in enumerate(self.obstacles):
            if not ob.soon[t]:
                continue
            if ob.enters_in[t] > 0:
                if not ob.aligned[t]:
                    continue  # crossing actors are conflicts
                accel = self._make_room(ob, t, front, v)
            elif ob.s_hi[t] <= front:
                continue
            elif ob.aligned[t]:
                accel = idm_accel(v, v_des, ob.s_lo[t] - front, ob.v_along[t], driver, driver.min_gap_m)
            elif self._inside_conflict(index, t, front):
                accel = idm_accel(v, v_des, ob.s_lo[t] - front, min(ob.v_along[t], 0.0), driver, driver.min_gap_m)
            else:
                continue
            if accel is None:
                continue
            best = min(best, accel)
            tie = REASON_TIE_MPS2 if reason > Reason.LEAD else 0.0
            if accel < reason_accel - tie:
                reason, who, reason_accel = Reason.LEAD, index, accel
        return max(best, -v / DT_S), reason, who, cruise

    def note_stops(self, t: int, s: float, v: float, stopped_at: list[int | None]) -> None:
        """Record the step the driver first stands still at each stop-sign line (its stop-sign memory)."""
        front = s + self.front_m
        for j, line in enumerate(self.stop_lines):
            if line.red_in is None and stopped_at[j] is None and v < STOPPED_MPS and 0.0 < line.s - front < STOP_ZONE_M:
                stopped_at[j] = t

    def _make_room(self, ob: PathObstacle, t: int, front: float, v: float) -> float | None:
        """Deceleration that opens a following gap before an aligned actor enters the corridor ahead.

        It will enter in tau steps (a cut-in, a merge, the lane the route changes
        into): where the driver would be by then at its current speed, is the actor
        far enough ahead? If not, slow down evenly to make the gap by then, instead
        of braking hard when it arrives. Actors entering behind the driver are
        ignored (they are the ones to hold back).
        """
        tau = ob.enters_in[t]
        entry = min(t + tau, len(ob.s_lo) - 1)
        travelled = v * tau * DT_S
        if ob.s_hi[entry] <= front + travelled - self.front_m - self.rear_m:
            return None
        shortfall = ob.s_lo[entry] - (front + travelled) - self.driver.min_gap_m - v * self.driver.headway_s
        if shortfall >= 0.0:
            return None
        return max(2.0 * shortfall / (tau * DT_S) ** 2, -HARD_DECEL)

    def _stops_for_amber(self, gap: float, v: float, red_in_steps: int) -> bool:
        comfortable = v * v / (2.0 * max(gap - STOP_GAP_M, 0.01)) <= self.driver.amber_decel
        return comfortable or gap / max(v, 0.1) >= red_in_steps * DT_S

    def _inside_conflict(self, obstacle: int, t: int, front: float) -> bool:
        """Is the driver already within the stretch this crossing actor occupies now?"""
        return any(c.obstacle == obstacle and c.t_in <= t <= c.t_out and front > c.s_lo - 0.5 for c in self.conflicts)

    def _yield_target(
        self, c: Conflict, t: int, front: float, rear: float, v: float, v_des: float
    ) -> tuple[float, float] | None:
        """(stop position, standstill gap) when the driver must wait for this conflict, else None."""
        if t > c.t_out + AFTER_MARGIN_STEPS or c.t_in > t + CONFLICT_HORIZON_STEPS or rear > c.s_hi:
            return None
        if front > c.s_lo - 0.5:
            return None  # inside the stretch already: following handles what is ahead
        clear = time_to_cover(c.s_hi - rear + 0.5, v, 1.0, v_des) / DT_S
        if t + clear + PASS_MARGIN_STEPS < c.t_in:
            return None
        arrive = time_to_cover(c.s_lo - front, v, 2.0, v_des) / DT_S
        if c.t_out + AFTER_MARGIN_STEPS < t + arrive:
            return None
        stop_at, gap = c.s_lo, self.driver.min_gap_m
        for entry, exit_, hold in self.holds:
            if entry - 1.0 <= c.s_lo <= exit_ + JUNCTION_HOLD_REACH_M and front < hold:
                stop_at, gap = hold, STOP_GAP_M
                break
        if v * v / (2.0 * max(stop_at - gap - front, 0.01)) > COMMIT_DECEL:
            return None  # too late to stop short of it: go on through
        return stop_at, gap
