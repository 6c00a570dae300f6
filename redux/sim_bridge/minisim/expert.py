"""The rule-based expert: records every scene's ego drive and plans from any closed-loop state.

One control law does both. Per step it re-localises the rig origin (rear axle) on
the route's reference path, steers back onto the path plus a planned lateral
offset (nudges around parked cars that intrude into the lane), and takes its
acceleration from the shared longitudinal rules (``longitudinal.py``) using the
actors' recorded futures. Because the law is a function of (scene step, state) —
the only memory, having served a stop sign, is recovered from the recorded drive —
``expert_plan`` from a recorded state reproduces the recorded controls exactly, and
from a displaced state it drives back to the path.

Steering: curvature = path curvature (feed-forward) − k_d · lateral error − k_ψ ·
heading error, with gains set in arc length (k_d = 1/L², k_ψ = 2/L), so that the
correction is critically damped over ~3 L = 18 m of travel at any speed.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np

from redux.policy.action_space import ACCEL_BOUND, CURVATURE_BOUND, HORIZON
from redux.sim_bridge.minisim.boxes import box_corners
from redux.sim_bridge.minisim.longitudinal import (
    STOP_SIGN_DWELL_STEPS,
    STOP_ZONE_M,
    Driver,
    LongitudinalPlanner,
    Reason,
    path_stop_lines,
)
from redux.sim_bridge.minisim.obstacles import path_obstacles
from redux.sim_bridge.minisim.polyline import SPACING_M, points_in_lanes
from redux.sim_bridge.minisim.road_map import RoadMap
from redux.sim_bridge.minisim.route import RoutePath, route_path, smoothstep
from redux.sim_bridge.minisim.scene import (
    DT_S,
    EGO_LENGTH_M,
    EGO_REAR_AXLE_TO_CENTRE_M,
    EGO_WIDTH_M,
    ActorKind,
    ActorTracks,
    Scene,
)

EGO_FRONT_M = EGO_REAR_AXLE_TO_CENTRE_M + 0.5 * EGO_LENGTH_M  # rear axle to front bumper
EGO_REAR_M = 0.5 * EGO_LENGTH_M - EGO_REAR_AXLE_TO_CENTRE_M  # rear axle to rear bumper
EGO_DRIVER = Driver()
STEERING_LENGTH_M = 6.0
K_LATERAL = 1.0 / STEERING_LENGTH_M**2
K_HEADING = 2.0 / STEERING_LENGTH_M
NUDGE_CLEARANCE_M = 0.5  # kept between the ego's side and a parked car it passes
MAX_NUDGE_M = 2.5  # a parked car needing more than this blocks the lane instead
NUDGE_RAMP_M = 15.0
RELOCALISE_M = 6.0  # farther than this from the path, a local search may have lost it: search globally


def unicycle_step(x: float, y: float, yaw: float, v: float, accel: float, curvature: float) -> tuple[float, ...]:
    """One step of the same scheme as ``action_space.integrate`` (mean speed, mid-step heading)."""
    v_next = v + accel * DT_S
    v_mean = 0.5 * (v + v_next)
    yaw_next = yaw + curvature * v_mean * DT_S
    heading = 0.5 * (yaw + yaw_next)
    return x + v_mean * DT_S * math.cos(heading), y + v_mean * DT_S * math.sin(heading), yaw_next, v_next


def lateral_plan(path: RoutePath, road_map: RoadMap, actors: ActorTracks) -> np.ndarray:
    """Planned lateral offset (per path vertex, + left) that passes parked cars intruding into the lane.

    A nudge is planned only when the shifted ego box stays on lanes (the next lane
    or the oncoming one); otherwise the car blocks the lane and the expert stops
    behind it (the scenario then routes a lane change around it).
    """
    plan = np.zeros(len(path.s))
    clearance = 0.5 * EGO_WIDTH_M + NUDGE_CLEARANCE_M
    lanes = list(road_map.lanes.values())
    for a in np.flatnonzero(actors.kind == ActorKind.PARKED):
        t = int(np.argmax(actors.valid[a]))
        if not actors.valid[a, t]:
            continue
        corners = box_corners(actors.states[a, t, :2], actors.states[a, t, 2], *actors.size[a])
        s, d, beyond = path.project(corners)
        if beyond.any() or d.max() < -clearance or d.min() > clearance:
            continue
        shift = d.max() + clearance if d.mean() < 0.0 else d.min() - clearance
        if abs(shift) > MAX_NUDGE_M:
            continue
        # the whole band the ego sweeps while shifted must be lane: probe it on a 1 m x 0.5 m grid
        along = np.arange(s.min() - 5.0, s.max() + 5.0, 1.0)
        reach = 0.5 * EGO_WIDTH_M + 0.1
        across = np.arange(min(shift, 0.0) - reach, max(shift, 0.0) + reach + 1e-9, 0.5)
        centre = np.stack([np.interp(along, path.s, path.xy[:, 0]), np.interp(along, path.s, path.xy[:, 1])], axis=1)
        heading = np.interp(along, path.s, path.heading)
        normal = np.stack([-np.sin(heading), np.cos(heading)], axis=1)
        probe = centre[:, None, :] + across[None, :, None] * normal[:, None, :]
        if not points_in_lanes(lanes, probe.reshape(-1, 2)).all():
            continue
        start, stop = s.min() - 3.0, s.max() + 3.0
        rise = smoothstep((path.s - (start - NUDGE_RAMP_M)) / NUDGE_RAMP_M)
        fall = smoothstep(((stop + NUDGE_RAMP_M) - path.s) / NUDGE_RAMP_M)
        bump = shift * np.minimum(rise, fall)
        plan = np.where(np.abs(bump) > np.abs(plan), bump, plan)
    return plan


@dataclass
class RecordedDrive:
    """The expert's drive and why it drove so, per step."""

    states: np.ndarray  # (T, 4) x, y, yaw, speed of the rig origin
    accel: np.ndarray  # (T,) control applied from each step (the last one is not applied)
    curvature: np.ndarray  # (T,)
    reason: np.ndarray  # (T,) longitudinal.Reason
    cause: np.ndarray  # (T,) actor index for LEAD/YIELD, stop-line index for LIGHT/STOP_SIGN, else -1
    cruise_accel: np.ndarray  # (T,) what free driving alone would have done
    s: np.ndarray  # (T,) arc length of the rig origin on the route path
    d: np.ndarray  # (T,) its lateral offset from the path


class ExpertContext:
    """Everything the expert precomputes per scene: path, lateral plan, actors along the path."""

    def __init__(self, road_map: RoadMap, route_lanes: tuple[int, ...], actors: ActorTracks, num_steps: int):
        self.path = path = route_path(road_map, route_lanes)
        self.num_steps = num_steps
        self.lateral = plan = lateral_plan(path, road_map, actors)
        slope = np.gradient(plan) / SPACING_M
        self.offset, self.offset_slope = plan.tolist(), np.arctan(slope).tolist()
        self.offset_curvature = (np.gradient(slope) / SPACING_M).tolist()
        obstacles, conflicts = path_obstacles(
            path, 0.5 * EGO_WIDTH_M, actors.kind, actors.size, actors.states, actors.valid, plan
        )
        self.obstacles = obstacles
        self.stop_lines = path_stop_lines(road_map, path, num_steps)
        self.planner = LongitudinalPlanner(
            path, EGO_DRIVER, EGO_FRONT_M, EGO_REAR_M, obstacles, conflicts, self.stop_lines
        )
        self.is_sign = [line.red_in is None for line in self.stop_lines]
        self.sign_release: list[int | None] = [None] * len(self.stop_lines)
        self.recorded_index: list[int] = []

    def attach_recording(self, ego: np.ndarray) -> None:
        """Learn from the recorded drive where it was on the path and when it left each stop sign."""
        hint = self.path.nearest_index(float(ego[0, 0]), float(ego[0, 1]))
        stopped_at: list[int | None] = [None] * len(self.stop_lines)
        self.recorded_index = []
        for t, (x, y, _, v) in enumerate(ego.tolist()):
            hint, s, _ = self.path.locate(x, y, hint)
            self.recorded_index.append(hint)
            self.planner.note_stops(t, s, v, stopped_at)
        self.sign_release = [None if at is None else at + STOP_SIGN_DWELL_STEPS for at in stopped_at]

    def control(
        self, t: int, yaw: float, v: float, s: float, d: float, served: list[bool]
    ) -> tuple[float, float, tuple[Reason, int, float]]:
        """(accel, curvature, (reason, cause, cruise accel)) at scene step t, rig origin at (s, d) on the path."""
        path, hs, offset, slope = self.path, self.path.hs, self.offset, self.offset_slope
        i = min(int(s / SPACING_M), path.last - 1)
        # interpolate between vertices: in a tight turn a vertex's heading is 0.04 rad off mid-segment
        u = min(max(s / SPACING_M - i, 0.0), 1.0)
        path_heading = hs[i] + u * (hs[i + 1] - hs[i]) + slope[i] + u * (slope[i + 1] - slope[i])
        heading_error = (yaw - path_heading + math.pi) % (2.0 * math.pi) - math.pi
        lateral_error = d - offset[i] - u * (offset[i + 1] - offset[i])
        ahead = min(int((s + 0.5 * v * DT_S) / SPACING_M), path.last - 1)  # the step turns at mid-step heading
        curvature = (
            path.ks[ahead] + self.offset_curvature[ahead] - K_LATERAL * lateral_error - K_HEADING * heading_error
        )
        curvature = min(max(curvature, -CURVATURE_BOUND), CURVATURE_BOUND)
        accel, reason, cause, cruise = self.planner.accel(min(t, self.num_steps - 1), s, v, served)
        return min(max(accel, -ACCEL_BOUND), ACCEL_BOUND), curvature, (reason, cause, cruise)


def record_drive(ctx: ExpertContext, start: tuple[float, float, float, float]) -> RecordedDrive:
    """Drive the expert from ``start`` (rig origin x, y, yaw, speed) for the scene's steps."""
    steps = ctx.num_steps
    states = np.empty((steps, 4))
    accel, curvature, cruise, s_arr, d_arr = (np.zeros(steps) for _ in range(5))
    reason = np.zeros(steps, dtype=np.int64)
    cause = np.full(steps, -1, dtype=np.int64)
    x, y, yaw, v = start
    hint = ctx.path.nearest_index(x, y)
    stopped_at: list[int | None] = [None] * len(ctx.stop_lines)
    for t in range(steps):
        states[t] = (x, y, yaw, v)
        hint, s, d = ctx.path.locate(x, y, hint)
        ctx.planner.note_stops(t, s, v, stopped_at)
        served = [at is not None and t >= at + STOP_SIGN_DWELL_STEPS for at in stopped_at]
        a, k, (why, who, free) = ctx.control(t, yaw, v, s, d, served)
        accel[t], curvature[t], reason[t], cruise[t], s_arr[t], d_arr[t] = a, k, why, free, s, d
        cause[t] = ctx.obstacles[who].actor if who >= 0 and why in (Reason.LEAD, Reason.YIELD) else who
        x, y, yaw, v = unicycle_step(x, y, yaw, v, a, k)
    return RecordedDrive(states, accel, curvature, reason, cause, cruise, s_arr, d_arr)


# -- closed loop ---------------------------------------------------------------------------------------

_CONTEXTS: dict[int, tuple[weakref.ref, ExpertContext]] = {}


def expert_context(scene: Scene) -> ExpertContext:
    """The scene's expert context, built once per scene object and dropped with it."""
    key = id(scene)
    cached = _CONTEXTS.get(key)
    if cached is not None and cached[0]() is scene:
        return cached[1]
    ctx = ExpertContext(scene.road_map, scene.route_lanes, scene.actors, scene.num_steps)
    ctx.attach_recording(scene.ego)
    _CONTEXTS[key] = (weakref.ref(scene), ctx)
    weakref.finalize(scene, _CONTEXTS.pop, key, None)
    return ctx


def expert_plan(scene: Scene, step: int, ego_state: np.ndarray) -> np.ndarray:
    """(64, 2) float32 controls (acceleration m/s², curvature 1/m) the expert applies from ``ego_state``.

    ``ego_state`` is the closed-loop rig origin (x, y, yaw, speed) in the world
    frame at scene step ``step``; actors follow their recorded futures.
    """
    ctx = expert_context(scene)
    path = ctx.path
    x, y, yaw, v = (float(value) for value in ego_state[:4])
    hint = ctx.recorded_index[min(max(step, 0), len(ctx.recorded_index) - 1)]
    hint, s, d = path.locate(x, y, hint)
    if abs(d) > RELOCALISE_M:
        hint, s, d = path.locate(x, y, path.nearest_index(x, y))
    front = s + EGO_FRONT_M
    served = []
    for j, line in enumerate(ctx.stop_lines):
        release = ctx.sign_release[j]
        served.append(ctx.is_sign[j] and release is not None and step >= release and line.s - front < STOP_ZONE_M)
    stopped_at: list[int | None] = [None] * len(ctx.stop_lines)
    out = np.empty((HORIZON, 2), dtype=np.float32)
    for k in range(HORIZON):
        t = step + k
        if k:
            hint, s, d = path.locate(x, y, hint)
        ctx.planner.note_stops(t, s, v, stopped_at)
        for j, at in enumerate(stopped_at):
            if at is not None and not served[j]:
                release = ctx.sign_release[j]
                served[j] = t >= (release if release is not None else at + STOP_SIGN_DWELL_STEPS)
        accel, curvature, _ = ctx.control(t, yaw, v, s, d, served)
        out[k, 0], out[k, 1] = accel, curvature
        x, y, yaw, v = unicycle_step(x, y, yaw, v, accel, curvature)
    return out
