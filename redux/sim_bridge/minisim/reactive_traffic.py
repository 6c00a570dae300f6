"""Reactive traffic: recorded vehicles that brake for the ego instead of driving through it.

Log replay (the default, as in Alpasim) moves every actor exactly as recorded, so a
vehicle behind an ego that brakes harder than the expert did drives into it. In
reactive mode each moving vehicle keeps to its recorded path but chooses its speed
along it: it tracks its recorded schedule, and an IDM term brakes for the ego when the
ego is in its path ahead. Pedestrians, cyclists and parked cars stay log replay.
Vectorised over the actors of one scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redux.sim_bridge.minisim.scene import (
    DT_S,
    EGO_LENGTH_M,
    EGO_REAR_AXLE_TO_CENTRE_M,
    EGO_WIDTH_M,
    ActorKind,
    Scene,
)

IDM_MAX_ACCEL = 2.0
IDM_COMFORT_DECEL = 3.0
IDM_MIN_GAP_M = 2.0
IDM_HEADWAY_S = 1.2
HARD_DECEL = 8.0
SCHEDULE_GAIN = 0.5  # 1/s²: pulls a vehicle back onto its recorded timing once the way is clear
SPEED_GAIN = 1.0  # 1/s
LOOKAHEAD_M = 60.0  # the ego matters to a vehicle only this far ahead on its path
CORRIDOR_MARGIN_M = 0.3


@dataclass
class ReactiveTraffic:
    arc: np.ndarray  # (A, T) cumulative distance along each actor's recorded path
    reactive: np.ndarray  # (A,) bool: moving vehicles; the rest replay their log
    s: np.ndarray  # (A,) where each actor is along its path now
    v: np.ndarray  # (A,) its speed now

    @classmethod
    def start(cls, scene: Scene, step: int) -> ReactiveTraffic:
        actors = scene.actors
        steps = np.diff(actors.states[:, :, :2], axis=1)
        arc = np.concatenate([np.zeros((actors.count, 1)), np.cumsum(np.linalg.norm(steps, axis=2), axis=1)], axis=1)
        reactive = (actors.kind == ActorKind.VEHICLE) & (arc[:, -1] > 1.0)
        return cls(arc, reactive, arc[:, step].copy(), actors.states[:, step, 3].astype(np.float64).copy())

    def advance(self, scene: Scene, step: int, ego_state: np.ndarray) -> np.ndarray:
        """Move from ``step − 1`` to ``step`` given the ego's rig state; returns actor states (A, 4)."""
        recorded = scene.actors.states
        now = step - 1
        current = self.states(scene, now)
        # on schedule and at the recorded speed, the recorded acceleration keeps it there
        accel = (
            SCHEDULE_GAIN * (self.arc[:, now] - self.s)
            + SPEED_GAIN * (recorded[:, now, 3] - self.v)
            + (recorded[:, step, 3] - recorded[:, now, 3]) / DT_S
        )
        accel = np.minimum(np.minimum(accel, IDM_MAX_ACCEL), self._ego_brake(current, scene.actors.size, ego_state))
        accel = np.maximum(accel, -self.v / DT_S)  # stop, never reverse
        v_next = self.v + accel * DT_S
        self.s = np.where(self.reactive, self.s + 0.5 * (self.v + v_next) * DT_S, self.arc[:, step])
        self.v = np.where(self.reactive, v_next, recorded[:, step, 3])
        return self.states(scene, step)

    def states(self, scene: Scene, step: int) -> np.ndarray:
        """(A, 4) x, y, yaw, speed at ``step``: reactive vehicles where their arc position puts them."""
        actors = scene.actors
        out = actors.states[:, step].astype(np.float64).copy()
        for a in np.flatnonzero(self.reactive):  # a handful of vehicles per scene
            track, arc = actors.states[a], self.arc[a]
            s = min(max(self.s[a], 0.0), arc[-1])
            k = int(np.clip(np.searchsorted(arc, s, side="right") - 1, 0, len(arc) - 2))
            span = arc[k + 1] - arc[k]
            u = (s - arc[k]) / span if span > 1e-9 else 0.0
            out[a, :2] = track[k, :2] + u * (track[k + 1, :2] - track[k, :2])
            out[a, 2] = track[k + 1, 2] if u > 0.5 else track[k, 2]
            out[a, 3] = self.v[a]
        return out

    def _ego_brake(self, current: np.ndarray, size: np.ndarray, ego_state: np.ndarray) -> np.ndarray:
        """IDM deceleration toward the ego for vehicles that have it in their lane ahead; +inf otherwise."""
        yaw = current[:, 2]
        ego_centre = ego_state[:2] + EGO_REAR_AXLE_TO_CENTRE_M * np.array([np.cos(ego_state[2]), np.sin(ego_state[2])])
        offset = ego_centre[None, :] - current[:, :2]
        along = np.cos(yaw) * offset[:, 0] + np.sin(yaw) * offset[:, 1]
        across = -np.sin(yaw) * offset[:, 0] + np.cos(yaw) * offset[:, 1]
        in_path = (along > 0) & (along < LOOKAHEAD_M) & (np.abs(across) < 0.5 * (size[:, 1] + EGO_WIDTH_M) + CORRIDOR_MARGIN_M)
        gap = along - 0.5 * (size[:, 0] + EGO_LENGTH_M)
        ego_speed = ego_state[3] * np.cos(ego_state[2] - yaw)
        wanted = IDM_MIN_GAP_M + self.v * IDM_HEADWAY_S + self.v * (self.v - ego_speed) / (
            2.0 * np.sqrt(IDM_MAX_ACCEL * IDM_COMFORT_DECEL)
        )
        idm = IDM_MAX_ACCEL * (1.0 - (np.maximum(wanted, 0.0) / np.maximum(gap, 0.1)) ** 2)
        idm = np.where(gap <= 0.1, -HARD_DECEL, np.maximum(idm, -HARD_DECEL))
        return np.where(self.reactive & in_path, idm, np.inf)

