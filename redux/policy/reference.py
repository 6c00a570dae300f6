"""Reference policies that every result is compared against.

- ``expert`` replays the recorded drive (privileged: it reads the recorded future);
- ``constant-velocity`` keeps the current speed and heading: no map, no obstacles;
- ``lane-keeper`` follows the route at the current speed with pure pursuit: the map
  but no obstacles.
They return the same PolicyOutput as a learned policy, so the evaluator cannot
tell them apart.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np

from redux.policy.action_space import DT_S, HORIZON, clip_to_bounds, estimate_speed, integrate, to_actions
from redux.policy.interface import PolicyOutput
from redux.sim_bridge.session import Observation

LOOKAHEAD_M = 8.0


class _Reference(ABC):
    weight_version = 0

    def act(self, observations: list[Observation], num_samples: int = 1, greedy: bool = False) -> PolicyOutput:
        start = time.perf_counter()
        speeds = estimate_speed(np.stack([o.ego_history[:, :2] for o in observations]))
        actions = clip_to_bounds(np.stack([self._plan(o, float(v)) for o, v in zip(observations, speeds)]))
        poses = self._poses(observations, actions, speeds)
        ms = (time.perf_counter() - start) * 1e3
        repeat = lambda a: np.repeat(a[:, None], num_samples, axis=1)  # noqa: E731 - deterministic: K copies
        return PolicyOutput(
            repeat(actions.astype(np.float32)), repeat(poses), np.zeros((len(observations), num_samples), np.float32), 0,
            {"forward_ms": ms, "total_ms": ms},
        )

    def load_weights(self, named, version: int) -> None:
        raise TypeError(f"{type(self).__name__} has no weights")

    def named_weights(self) -> dict:
        return {}

    @abstractmethod
    def _plan(self, observation: Observation, speed: float) -> np.ndarray:
        """Controls (64, 2) for one observation."""

    def _poses(self, observations: list[Observation], actions: np.ndarray, speeds: np.ndarray) -> np.ndarray:
        return integrate(actions.astype(np.float32), speeds)


class ExpertReplay(_Reference):
    """The recorded poses are the plan; its controls are only derived from them.

    Stops make the pose → control inversion ill-conditioned (curvature is
    undefined at rest), so the poses are handed to the controller as recorded.
    """

    def _plan(self, observation: Observation, speed: float) -> np.ndarray:
        return to_actions(observation.labels["recorded_future"].astype(np.float64), speed)

    def _poses(self, observations: list[Observation], actions: np.ndarray, speeds: np.ndarray) -> np.ndarray:
        return np.stack([o.labels["recorded_future"] for o in observations]).astype(np.float32)


class ConstantVelocity(_Reference):
    def _plan(self, observation: Observation, speed: float) -> np.ndarray:
        return np.zeros((HORIZON, 2))


class LaneKeeper(_Reference):
    """Pure pursuit on the route waypoints, re-aimed at every step of the horizon."""

    def _plan(self, observation: Observation, speed: float) -> np.ndarray:
        route = observation.route[:, :2]
        route = np.concatenate([np.zeros((1, 2)), route[~np.isnan(route[:, 0])]])
        if len(route) < 2:
            return np.zeros((HORIZON, 2))
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(route, axis=0), axis=1))])
        x = y = yaw = 0.0
        travelled = 0.0
        actions = np.zeros((HORIZON, 2))
        for k in range(HORIZON):
            target_s = min(travelled + LOOKAHEAD_M, arc[-1])
            tx, ty = np.interp(target_s, arc, route[:, 0]), np.interp(target_s, arc, route[:, 1])
            alpha = np.arctan2(ty - y, tx - x) - yaw
            distance = max(np.hypot(tx - x, ty - y), 1e-3)
            curvature = 2.0 * np.sin(alpha) / distance
            actions[k, 1] = curvature
            yaw += curvature * speed * DT_S
            x += speed * DT_S * np.cos(yaw)
            y += speed * DT_S * np.sin(yaw)
            travelled += speed * DT_S
        return actions


REFERENCE_POLICIES = {"expert": ExpertReplay, "constant-velocity": ConstantVelocity, "lane-keeper": LaneKeeper}
