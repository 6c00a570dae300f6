"""The expert's per-step training labels: one driving decision, its visible causes, meta-actions.

The longitudinal decision comes from the binding rule of the recorded drive
(``longitudinal.Reason``); the lateral one from the route ahead (a turn through a
junction, a lane change blended into the path, a planned nudge). They are folded
into one primary decision as documented in ``vocabulary.py``. Causes tied to an
actor are set only when that actor was in the log during the last 2 s (the
history a policy sees).
"""

from __future__ import annotations

import math

import numpy as np

from redux.policy.action_space import HORIZON
from redux.sim_bridge.minisim.expert import ExpertContext, RecordedDrive
from redux.sim_bridge.minisim.longitudinal import Reason
from redux.sim_bridge.minisim.meta_actions import segment_labels, step_labels
from redux.sim_bridge.minisim.polyline import SPACING_M
from redux.sim_bridge.minisim.scene import ActorKind, ActorTracks, StepLabels
from redux.sim_bridge.minisim.vocabulary import DECISIONS, FACTORS

HISTORY_STEPS = 20  # 2 s: what a policy's history shows
BINDING_MPS2 = 0.2  # a rule decides when it takes at least this off the free-road acceleration …
WAITING_MPS = 1.0  # … or holds the ego (nearly) stopped
ACCEL_DECISION_MPS2 = 0.3
TURN_MIN_RAD = math.radians(30.0)
TURN_LOOKAHEAD_M = 25.0
LANE_CHANGE_LOOKAHEAD_M = 20.0
NUDGE_LOOKAHEAD_M = 20.0
CURVE_LOOKAHEAD_M = 40.0
CURVE_MIN_CURVATURE = 1.0 / 150.0
GREEN_LOOKAHEAD_M = 50.0
CUT_IN_STEPS = 30  # a vehicle is "cutting in" / "merging" until 3 s after it entered the ego's corridor
_DECISION = {name: i for i, name in enumerate(DECISIONS)}
_FACTOR = {name: i for i, name in enumerate(FACTORS)}


def _route_manoeuvres(ctx: ExpertContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per path vertex: upcoming turn (+1 left, -1 right), lane change and nudge direction, else 0."""
    path = ctx.path
    n = len(path.s)
    turn, lane_change = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    flags = np.diff(np.concatenate([[0], path.in_junction.astype(np.int8), [0]]))
    for start, stop in zip(np.flatnonzero(flags == 1), np.flatnonzero(flags == -1)):
        change = path.heading[stop - 1] - path.heading[start]
        if abs(change) >= TURN_MIN_RAD:
            turn[max(start - int(TURN_LOOKAHEAD_M / SPACING_M), 0) : stop] = np.sign(change)
    shift_rate = np.gradient(path.lane_shift)
    moving = np.abs(shift_rate) > 1e-4
    for i in np.flatnonzero(moving):
        lane_change[max(i - int(LANE_CHANGE_LOOKAHEAD_M / SPACING_M), 0) : i + 1] = np.sign(shift_rate[i])
    reach = int(NUDGE_LOOKAHEAD_M / SPACING_M)
    padded = np.pad(ctx.lateral, (0, reach), mode="edge")
    window = np.lib.stride_tricks.sliding_window_view(padded, reach + 1)
    strongest = window[np.arange(n), np.argmax(np.abs(window), axis=1)]
    nudge = np.where(np.abs(strongest) > 0.2, np.sign(strongest), 0).astype(np.int64)
    return turn, lane_change, nudge


def _seen(tracks: ActorTracks, actor: int, t: int) -> bool:
    """Was the actor in the last 2 s of the log — for a pedestrian, walking (standing behind cars is unseen)?"""
    window = slice(max(t - HISTORY_STEPS, 0), t + 1)
    present = tracks.valid[actor, window]
    if tracks.kind[actor] == ActorKind.PEDESTRIAN:
        present = present & (tracks.states[actor, window, 3] > 0.2)
    return bool(present.any())


def _actor_factors(
    tracks: ActorTracks,
    roles: tuple[str, ...],
    actor: int,
    t: int,
    ego: np.ndarray,
    yielding: bool,
    in_path: list[bool],
) -> list[str]:
    kind, role = ActorKind(int(tracks.kind[actor])), roles[actor]
    if role in ("cut_in", "merging") and not all(in_path[max(t - CUT_IN_STEPS, 0) : t + 1]):
        return ["cut-in vehicle" if role == "cut_in" else "merging vehicle"]  # still entering the ego's lane
    if kind == ActorKind.PEDESTRIAN:
        return ["pedestrian stepping out" if role == "stepping_out" else "pedestrian crossing"]
    if kind == ActorKind.CYCLIST:
        return ["cyclist"]
    if kind == ActorKind.PARKED:
        return ["parked car"]
    speed = tracks.states[actor, :, 3]
    if yielding:
        relative = tracks.states[actor, t, 2] - ego[t, 2]
        oncoming = abs(math.remainder(relative, 2.0 * math.pi)) > 0.75 * math.pi
        return ["oncoming traffic" if oncoming else "crossing traffic"]
    if speed[t] < 0.5:
        return ["stopped vehicle"]
    factors = ["lead vehicle"]
    if speed[t] < ego[t, 3] - 1.0:
        factors.append("slower lead")
    if speed[max(t - 10, 0)] - speed[t] > 1.5:
        factors.append("braking lead")
    return factors


def step_decisions(
    ctx: ExpertContext, drive: RecordedDrive, tracks: ActorTracks, roles: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(T,) decision indices and (T, F) factor flags of a recorded drive."""
    steps = len(drive.states)
    decisions = np.zeros(steps, dtype=np.int64)
    factors = np.zeros((steps, len(FACTORS)), dtype=bool)
    turn, lane_change, nudge = _route_manoeuvres(ctx)
    path = ctx.path
    curvy = (np.abs(path.curvature) > CURVE_MIN_CURVATURE) & (lane_change == 0)  # a lane change is no road curve
    entering = {ob.actor: ob.in_path for ob in ctx.obstacles}
    blocked = "blocker" in roles
    ego = drive.states
    for t in range(steps):
        i = min(int(drive.s[t] / SPACING_M), len(path.s) - 1)
        reason, cause = Reason(int(drive.reason[t])), int(drive.cause[t])
        binding = drive.accel[t] <= drive.cruise_accel[t] - BINDING_MPS2 or ego[t, 3] < WAITING_MPS
        if not binding:
            reason = Reason.CRUISE
        causes: list[str] = []
        if reason == Reason.LIGHT:
            line = ctx.stop_lines[cause]
            longitudinal = "stop for traffic light"
            causes = ["red light" if line.red_in[min(t, len(line.red_in) - 1)] == 0 else "amber light"]
        elif reason == Reason.STOP_SIGN:
            longitudinal, causes = "stop for stop sign", ["stop sign"]
        elif reason == Reason.YIELD:
            longitudinal = "yield to agent"
            causes = (
                _actor_factors(tracks, roles, cause, t, ego, True, entering[cause]) if _seen(tracks, cause, t) else []
            )
        elif reason == Reason.LEAD:
            longitudinal = "follow lead"
            causes = (
                _actor_factors(tracks, roles, cause, t, ego, False, entering[cause]) if _seen(tracks, cause, t) else []
            )
        elif drive.accel[t] > ACCEL_DECISION_MPS2:
            longitudinal, causes = "accelerate", ["clear road"]
        elif drive.accel[t] < -ACCEL_DECISION_MPS2:
            ahead = curvy[i : i + int(CURVE_LOOKAHEAD_M / SPACING_M)].any()
            longitudinal, causes = "decelerate", ["curve ahead" if ahead else "speed limit"]
        else:
            longitudinal, causes = "keep speed", ["speed limit"]
        if longitudinal in ("keep speed", "accelerate"):  # driving on through a green or amber light ahead
            front = drive.s[t] + ctx.planner.front_m
            for line in ctx.stop_lines:
                if line.red_in is not None and 0.0 < line.s - front < GREEN_LOOKAHEAD_M:
                    if line.red_in[t] > 0:
                        causes.append("amber light" if line.amber[t] else "green light")
                    break

        if longitudinal in ("stop for traffic light", "stop for stop sign", "yield to agent"):
            decision = longitudinal
        elif turn[i]:
            decision, causes = ("turn left" if turn[i] > 0 else "turn right"), ["route turn"]
        elif lane_change[i]:
            decision = "lane change left" if lane_change[i] > 0 else "lane change right"
            causes = ["blocked lane" if blocked else "route lane change"]
        elif nudge[i]:
            decision, causes = ("nudge left" if nudge[i] > 0 else "nudge right"), ["parked car"]
        elif longitudinal == "keep speed" and curvy[i : i + int(CURVE_LOOKAHEAD_M / SPACING_M)].any():
            decision, causes = "keep lane", ["curve ahead"]
        else:
            decision = longitudinal
        decisions[t] = _DECISION[decision]
        factors[t, [_FACTOR[c] for c in causes]] = True
    return decisions, factors


def meta_action_labels(ctx: ExpertContext, drive: RecordedDrive) -> np.ndarray:
    """(T, 3) the first meta-action segment of the recorded drive over the next 6.4 s from each step."""
    lane_offset = drive.d + np.interp(drive.s, ctx.path.s, ctx.path.lane_shift)
    per_step = step_labels(drive.states, lane_offset)
    firsts = np.empty_like(per_step)
    for t in range(len(per_step)):
        firsts[t] = segment_labels(per_step[t : t + HORIZON + 1])[0][2:]
    return firsts


def step_labels_of(ctx: ExpertContext, drive: RecordedDrive, tracks: ActorTracks, roles: tuple[str, ...]) -> StepLabels:
    decisions, factors = step_decisions(ctx, drive, tracks, roles)
    return StepLabels(decisions, factors, meta_action_labels(ctx, drive))
