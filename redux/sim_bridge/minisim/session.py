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
from redux.sim_bridge.minisim.route import RoutePath
from redux.sim_bridge.minisim.scene import EGO_WHEELBASE_M, Scene
from redux.sim_bridge.minisim.suites import generate_scene
from redux.sim_bridge.minisim.vehicle_control import BicycleParams, bicycle_step, rig_to_world, track, world_to_rig
from redux.sim_bridge.session import Observation, Plan, StepResult

HISTORY_POSES = 16
CAMERA_FRAMES = 4
ROUTE_WAYPOINTS = 20
ROUTE_SPACING_M = 4.2


@dataclass
class RolloutLog:
    """What a slot did since its reset: enough to score it with redux.eval."""

    ego: list[np.ndarray] = field(default_factory=list)  # world rig poses (x, y, yaw, speed) per step
    plans: list[np.ndarray] = field(default_factory=list)  # world plan poses (64, 3) per policy step
    samples: list[np.ndarray] = field(default_factory=list)  # world sampled plans (K, 64, 3) per policy step
    plan_steps: list[int] = field(default_factory=list)  # scene step at which each plan was issued


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
        cfg = self.cfg
        scene = generate_scene(cfg.suite, scene_id, episode_steps=cfg.episode_steps)
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
            log=RolloutLog(ego=[scene.ego[start].copy()]),
        )
        if self.renderer is not None:
            slot.frames = {
                name: deque(
                    (self.renderer.camera(name, scene, scene.ego[k, :3], k) for k in range(start - CAMERA_FRAMES + 1, start + 1)),
                    maxlen=CAMERA_FRAMES,
                )
                for name in self.renderer.camera_names
            }
        self.slots[index] = slot
        return self._observe(slot)

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

        results = []
        for i, slot in enumerate(slots):
            slot.state = states[i]
            slot.step += 1
            slot.steps_taken += 1
            slot.history.append(states[i, :3].copy())
            slot.log.ego.append(states[i].copy())
            if self.renderer is not None:
                for name, frames in slot.frames.items():
                    frames.append(self.renderer.camera(name, slot.scene, states[i, :3], slot.step))
            done = slot.steps_taken >= self.cfg.episode_steps
            results.append(StepResult(self._observe(slot), done, {"speed": float(states[i, 3])}))
        return results

    def expert_continuation(self, index: int) -> np.ndarray:
        slot = self._slot(index)
        return self._recorded_future(slot)

    @staticmethod
    def _recorded_future(slot: _Slot) -> np.ndarray:
        future = slot.scene.ego[slot.step + 1 : slot.step + 1 + HORIZON, :3]
        return world_to_rig(future[None], slot.state[None])[0].astype(np.float32)

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

    def _observe(self, slot: _Slot) -> Observation:
        state = slot.state
        history = world_to_rig(np.stack(slot.history)[None], state[None])[0]
        if self.cfg.egomotion_noise_m > 0:
            noise = slot.rng.normal(0.0, self.cfg.egomotion_noise_m, size=(HISTORY_POSES, 2))
            noise[-1] = 0.0  # t0 is the origin of the rig frame by definition
            history[:, :2] += noise
        route = slot.route.waypoints_ahead(state[:2], ROUTE_WAYPOINTS, ROUTE_SPACING_M)
        route_rig = np.full((ROUTE_WAYPOINTS, 3), np.nan, dtype=np.float32)
        valid = ~np.isnan(route[:, 0])
        if valid.any():
            local = world_to_rig(np.concatenate([route[valid], np.zeros((valid.sum(), 1))], axis=1)[None], state[None])[0]
            route_rig[valid, :2] = local[:, :2]
            route_rig[valid, 2] = 0.0
        cameras = {name: np.stack(frames) for name, frames in slot.frames.items()}
        return Observation(
            cameras=cameras,
            ego_history=history.astype(np.float32),
            route=route_rig,
            time_us=int(round(slot.step * DT_S * 1e6)),
            labels=self._labels(slot),
        )

    def _labels(self, slot: _Slot) -> dict[str, np.ndarray]:
        """Privileged: the recorded future (RoaD, minADE, the expert reference) and, when
        configured, the expert's plan from the current state and its reasoning labels."""
        recorded_future = self._recorded_future(slot)
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
