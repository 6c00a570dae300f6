"""Closed-loop minisim sessions, many stepping together.

:class:`MinisimBatch` holds B sessions whose ego vehicles advance in one
vectorised controller + bicycle call per step, so one rollout actor can batch all
its sessions into one policy call. :class:`MinisimSession` is one slot of a batch
behind the plain ``Session`` protocol.

As in Alpasim, the recorded drive is replayed for the warm-up, then the policy's
plans (pose 0 = now, one pose per 0.1 s, rig frame) are tracked by a controller
that acts on the newest plan at least ``controller_delay_steps`` old. Per-step
metrics are computed after the fact from the logged trajectory by ``redux.eval``,
the same functions that score an Alpasim rollout.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from redux.config import SimConfig
from redux.policy.action_space import DT_S, HORIZON
from redux.eval.collision import collision_metrics
from redux.eval.footprint import ego_polygons
from redux.eval.road import offroad
from redux.sim_bridge.minisim.reactive_traffic import ReactiveTraffic
from redux.sim_bridge.minisim.route import RoutePath
from redux.sim_bridge.minisim.scoring import road_geometry
from redux.sim_bridge.minisim.scene import (
    EGO_LENGTH_M,
    EGO_REAR_AXLE_TO_CENTRE_M,
    EGO_WHEELBASE_M,
    EGO_WIDTH_M,
    Scene,
)
from redux.sim_bridge.minisim.suites import generate_scene
from redux.sim_bridge.minisim.vehicle_control import BicycleParams, bicycle_step, rig_to_world, track, world_to_rig
from redux.sim_bridge.session import Observation, Plan, StepResult

HISTORY_POSES = 16
CAMERA_FRAMES = 4
COLLISION_PENALTY = 10.0  # NVIDIA's closed-loop GRPO reward weights (specs/alpamayo.md)
OFFROAD_PENALTY = 5.0
PATH_DISTANCE_PENALTY = 0.01
ROUTE_WAYPOINTS = 20
ROUTE_SPACING_M = 4.2


@dataclass
class RolloutLog:
    """What a slot did since its reset: enough to score it with redux.eval."""

    ego: list[np.ndarray] = field(default_factory=list)  # world rig poses (x, y, yaw, speed) per step
    plans: list[np.ndarray] = field(default_factory=list)  # world plan poses (64, 3) per policy step
    samples: list[np.ndarray] = field(default_factory=list)  # world sampled plans (K, 64, 3) per policy step
    plan_steps: list[int] = field(default_factory=list)  # scene step at which each plan was issued
    actors: list[np.ndarray] = field(default_factory=list)  # world actor states (A, 4) per step


@dataclass
class _Slot:
    scene: Scene
    route: RoutePath
    step: int
    state: np.ndarray  # (4,) x, y, yaw, speed of the rig origin
    plans: deque  # (issue step, world poses (65, 3) incl. pose 0)
    history: deque  # world poses (3,), newest last
    frames: dict[str, deque]
    rng: np.random.Generator
    log: RolloutLog
    steps_taken: int = 0
    actor_states: np.ndarray | None = None  # (A, 4) where the other actors are now
    traffic: ReactiveTraffic | None = None  # None: the actors replay their log
    route_hint: int = 0  # route vertex nearest the ego at the last step: where the next search starts
    route_s: float = 0.0  # where the ego is along its route, and how far off it (positive left)
    route_d: float = 0.0
    progress_start_s: float = 0.0  # route arc lengths of the recorded drive at hand-over and at the episode's end
    progress_span_m: float = 0.0
    progress: float = 0.0


class MinisimBatch:
    def __init__(self, cfg: SimConfig, size: int, renderer=None):
        """``renderer`` (a minisim ObservationRenderer) draws cameras; None: no images."""
        self.cfg = cfg
        self.renderer = renderer
        self.params = BicycleParams(EGO_WHEELBASE_M)
        self.slots: list[_Slot | None] = [None] * size

    @property
    def size(self) -> int:
        return len(self.slots)

    def reset(self, index: int, scene_id: int, seed: int) -> Observation:
        """Start slot ``index`` on scene ``scene_id`` of the configured suite."""
        scene = generate_scene(self.cfg.suite, scene_id, episode_steps=self.cfg.episode_steps)
        return self.reset_to(index, scene, seed)

    def reset_to(self, index: int, scene: Scene, seed: int) -> Observation:
        """Start slot ``index`` on a given scene (a suite's, or one built by hand)."""
        cfg = self.cfg
        scene_id = scene.scene_id
        start = cfg.warmup_steps
        delay = cfg.controller_delay_steps
        # the recorded drive keeps steering the car until the first plan is old enough
        recorded_plan = scene.ego[start - delay : start - delay + HORIZON + 1, :3]
        slot = _Slot(
            scene=scene,
            route=RoutePath.of(scene),
            step=start,
            state=scene.ego[start].astype(np.float64).copy(),
            plans=deque([(start - delay, recorded_plan)], maxlen=delay + 1),
            history=deque((scene.ego[k, :3] for k in range(start - HISTORY_POSES + 1, start + 1)), maxlen=HISTORY_POSES),
            frames={},
            rng=np.random.default_rng([seed, scene_id]),
            log=RolloutLog(ego=[scene.ego[start].copy()], actors=[scene.actors.states[:, start].copy()]),
            actor_states=scene.actors.states[:, start].copy(),
            traffic=ReactiveTraffic.start(scene, start) if cfg.reactive_actors else None,
        )
        if self.renderer is not None:
            slot.frames = {
                name: deque(
                    (self.renderer.camera(name, scene, scene.ego[k, :3], k) for k in range(start - CAMERA_FRAMES + 1, start + 1)),
                    maxlen=CAMERA_FRAMES,
                )
                for name in self.renderer.camera_names
            }
        slot.route_hint = slot.route.nearest_index(float(slot.state[0]), float(slot.state[1]))
        end = scene.ego[min(start + cfg.episode_steps, len(scene.ego) - 1)]
        _, slot.progress_start_s, _ = slot.route.locate(float(slot.state[0]), float(slot.state[1]), slot.route_hint)
        _, end_s, _ = slot.route.locate(float(end[0]), float(end[1]), slot.route_hint)
        slot.progress_span_m = end_s - slot.progress_start_s
        self.slots[index] = slot
        return self._observe([slot])[0]

    def step(self, plans: list[Plan], sampled: list[np.ndarray] | None = None) -> list[StepResult]:
        """Advance every slot by 0.1 s with its new plan (rig frame at the current step)."""
        slots = self._live()
        states = np.stack([s.state for s in slots])
        poses_rig = np.stack([np.concatenate([np.zeros((1, 3)), p.poses]) for p in plans])
        world = rig_to_world(poses_rig, states)
        for i, slot in enumerate(slots):
            slot.plans.append((slot.step, world[i]))
            slot.log.plans.append(world[i, 1:])
            slot.log.plan_steps.append(slot.step)
            if sampled is not None:
                slot.log.samples.append(rig_to_world(sampled[i][..., :3], np.repeat(states[i : i + 1], len(sampled[i]), 0)))
        active = [self._active_plan(s) for s in slots]
        ages = np.array([s.step - issued for s, (issued, _) in zip(slots, active)])
        accel, steer = track(states, np.stack([p for _, p in active]), ages, self.params)
        states = bicycle_step(states, accel, steer, self.params)

        for i, slot in enumerate(slots):
            slot.state = states[i]
            slot.step += 1
            slot.steps_taken += 1
            slot.history.append(states[i, :3].copy())
            slot.log.ego.append(states[i].copy())
            if slot.traffic is None:
                slot.actor_states = slot.scene.actors.states[:, slot.step]
            else:
                slot.actor_states = slot.traffic.advance(slot.scene, slot.step, states[i])
            slot.log.actors.append(slot.actor_states.copy())
            if self.renderer is not None:
                for name, frames in slot.frames.items():
                    frames.append(self.renderer.camera(name, slot.scene, states[i, :3], slot.step, slot.actor_states))
        observations = self._observe(slots)  # also locates every ego on its route
        results = []
        for slot, obs in zip(slots, observations):
            metrics = self._step_metrics(slot) if self.cfg.step_metrics else {"speed": float(slot.state[3])}
            incident = bool(metrics.get("collision_any", 0.0) or metrics.get("offroad", 0.0))
            done = slot.steps_taken >= self.cfg.episode_steps or (incident and self.cfg.end_episode_on_incident)
            results.append(StepResult(obs, done, metrics))
        return results

    def _step_metrics(self, slot: _Slot) -> dict[str, float]:
        """This step's incidents and the closed-loop reward NVIDIA's GRPO uses (specs/alpamayo.md).

        The same redux.eval functions as the after-the-fact scoring, on one step;
        progress and the distance to the recorded path are taken along the route.
        """
        step = slot.step
        pose = slot.state[None, :3]
        actors = slot.scene.actors
        boxes = np.concatenate([slot.actor_states[:, None, :3], actors.size[:, None, :]], axis=2)
        contact = collision_metrics(
            pose, EGO_LENGTH_M, EGO_WIDTH_M, EGO_REAR_AXLE_TO_CENTRE_M, boxes, actors.valid[:, step : step + 1]
        )
        footprint = ego_polygons(pose, EGO_LENGTH_M, EGO_WIDTH_M, EGO_REAR_AXLE_TO_CENTRE_M)
        off = float(offroad(footprint, road_geometry(slot.scene))[0])
        progress = (slot.route_s - slot.progress_start_s) / max(slot.progress_span_m, 1e-6)
        gained, slot.progress = progress - slot.progress, progress
        collision = float(contact["collision_any"][0])
        distance = abs(slot.route_d)
        return {
            "collision_any": collision,
            "collision_at_fault": float(contact["collision_at_fault"][0]),
            "offroad": off,
            "progress": progress,
            "dist_to_gt_trajectory": distance,
            "speed": float(slot.state[3]),
            "reward": gained - COLLISION_PENALTY * collision - OFFROAD_PENALTY * off - PATH_DISTANCE_PENALTY * distance,
        }

    def expert_continuation(self, index: int) -> np.ndarray:
        slot = self._slot(index)
        return world_to_rig(self._recorded_poses(slot)[None], slot.state[None])[0].astype(np.float32)

    def log(self, index: int) -> RolloutLog:
        return self._slot(index).log

    def scene(self, index: int) -> Scene:
        return self._slot(index).scene

    def close(self, index: int) -> None:
        self.slots[index] = None

    # -- internals ---------------------------------------------------------------
    def _slot(self, index: int) -> _Slot:
        slot = self.slots[index]
        if slot is None:
            raise RuntimeError(f"session {index} used before reset() or after close()")
        return slot

    def _live(self) -> list[_Slot]:
        return [self._slot(i) for i in range(self.size)]

    def _active_plan(self, slot: _Slot) -> tuple[int, np.ndarray]:
        """The newest plan issued at least ``controller_delay_steps`` ago."""
        ready = [(issued, plan) for issued, plan in slot.plans if slot.step - issued >= self.cfg.controller_delay_steps]
        return ready[-1] if ready else slot.plans[0]

    def _observe(self, slots: list[_Slot]) -> list[Observation]:
        """Observations of ``slots``, frame changes done for all of them in one call each."""
        states = np.stack([s.state for s in slots])
        history = world_to_rig(np.stack([np.stack(s.history) for s in slots]), states)
        if self.cfg.egomotion_noise_m > 0:
            for i, slot in enumerate(slots):
                noise = slot.rng.normal(0.0, self.cfg.egomotion_noise_m, size=(HISTORY_POSES - 1, 2))
                history[i, :-1, :2] += noise  # t0 is the origin of the rig frame by definition
        route = np.stack([self._route_ahead(s) for s in slots])
        route = world_to_rig(np.concatenate([route, np.zeros(route.shape[:2] + (1,))], axis=2), states)
        route[..., 2] = 0.0  # waypoints carry height, not heading; NaN padding stays NaN
        route[np.isnan(route[..., 0])] = np.nan
        futures = world_to_rig(np.stack([self._recorded_poses(s) for s in slots]), states).astype(np.float32)
        return [
            Observation(
                cameras={name: np.stack(frames) for name, frames in slot.frames.items()},
                ego_history=history[i].astype(np.float32),
                route=route[i].astype(np.float32),
                time_us=int(round(slot.step * DT_S * 1e6)),
                labels=self._labels(slot, futures[i]),
            )
            for i, slot in enumerate(slots)
        ]

    @staticmethod
    def _route_ahead(slot: _Slot) -> np.ndarray:
        """Alpasim's route: waypoints every 4.2 m ahead of the ego, NaN past the route's end."""
        slot.route_hint, slot.route_s, slot.route_d = slot.route.locate(
            float(slot.state[0]), float(slot.state[1]), slot.route_hint
        )
        return slot.route.waypoints_from(slot.route_s, ROUTE_WAYPOINTS, ROUTE_SPACING_M)

    @staticmethod
    def _recorded_poses(slot: _Slot) -> np.ndarray:
        return slot.scene.ego[slot.step + 1 : slot.step + 1 + HORIZON, :3]

    def _labels(self, slot: _Slot, recorded_future: np.ndarray) -> dict[str, np.ndarray]:
        """Privileged: the recorded future (RoaD, minADE, the expert reference) and, when
        configured, the expert's plan from the current state and its reasoning labels."""
        if not self.cfg.expert_labels:
            return {"recorded_future": recorded_future}
        from redux.sim_bridge.minisim.expert import expert_plan

        labels = slot.scene.labels
        step = min(slot.step, len(labels.decision) - 1)
        return {
            "recorded_future": recorded_future,
            "expert_actions": expert_plan(slot.scene, slot.step, slot.state),
            "decision": np.int64(labels.decision[step]),
            "factors": labels.factors[step],
            "meta_actions": labels.meta_actions[step],
        }


class MinisimSession:
    """One minisim session behind the ``Session`` protocol (a batch of one)."""

    def __init__(self, cfg: SimConfig, renderer=None):
        self.batch = MinisimBatch(cfg, 1, renderer)

    def reset(self, scene_id: int, seed: int) -> Observation:
        return self.batch.reset(0, scene_id, seed)

    def step(self, plan: Plan) -> StepResult:
        return self.batch.step([plan])[0]

    def expert_continuation(self) -> np.ndarray:
        return self.batch.expert_continuation(0)

    def close(self) -> None:
        self.batch.close(0)
