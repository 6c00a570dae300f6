"""On-policy rollouts labelled with the expert's plan at every visited state.

The current policy drives (so the data covers the states it actually reaches,
as in DAgger); every step stores the model inputs and the plan the rule-based
expert would drive from that state, which is the behaviour-cloning target.
Plain Python: usable in a notebook or a benchmark without Ray or Redis.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from redux.buffer.codec import RolloutRecord
from redux.config import RunConfig
from redux.policy.action_space import normalise
from redux.policy.inputs import model_inputs
from redux.policy.torch_engine import TorchPolicy
from redux.sim_bridge import Plan, make_batch, scene_count

@dataclass
class _Trace:
    """Per-session step data gathered during one ``generate`` call."""

    start_step: int
    episode: int
    steps: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, **arrays: np.ndarray) -> None:
        for name, value in arrays.items():
            self.steps.setdefault(name, []).append(value)


@dataclass
class GenerationStats:
    env_steps: int = 0
    episodes: int = 0
    collisions: int = 0
    offroad: int = 0
    policy_ms: float = 0.0
    sim_ms: float = 0.0
    progress: list[float] = field(default_factory=list)


class BehaviourCloningGenerator:
    def __init__(self, cfg: RunConfig, actor_id: int):
        self.cfg = cfg
        self.actor_id = actor_id
        self.policy = TorchPolicy(cfg.policy, cfg.sim, seed=cfg.seed + actor_id)
        self.sessions = make_batch(cfg.sim, cfg.sim.sessions_per_actor)
        self.scene_count = scene_count(cfg.sim)
        self.episodes = [0] * self.sessions.size
        self.session_steps = [0] * self.sessions.size
        self.observations = [self._reset(i) for i in range(self.sessions.size)]

    def _scene_id(self, session: int) -> int:
        """Sessions of all actors interleave over the scenes, so none drives a scene twice
        before every scene has been driven once."""
        sessions = self.cfg.actors.num * self.cfg.sim.sessions_per_actor
        slot = self.actor_id * self.cfg.sim.sessions_per_actor + session
        index = slot + sessions * self.episodes[session]
        return index if self.scene_count is None else index % self.scene_count

    def _reset(self, session: int):
        return self.sessions.reset(session, self._scene_id(session), self.cfg.seed)

    def generate(self, num_steps: int) -> tuple[list[RolloutRecord], GenerationStats]:
        """Step every session ``num_steps`` times; one record per session."""
        stats = GenerationStats()
        traces = [_Trace(self.session_steps[i], self.episodes[i]) for i in range(self.sessions.size)]
        for _ in range(num_steps):
            t0 = time.perf_counter()
            out = self.policy.act(self.observations, num_samples=self.cfg.policy.num_samples)
            t1 = time.perf_counter()
            inputs = model_inputs(self.observations)
            results = self.sessions.step([Plan(out.actions[i, 0], out.poses[i, 0]) for i in range(self.sessions.size)])
            for i, (obs, result) in enumerate(zip(self.observations, results)):
                traces[i].add(
                    bev=inputs["bev"][i],
                    ego_history=inputs["ego_history"][i],
                    target_actions=normalise(obs.labels["expert_actions"]),
                    plan_actions=out.actions[i, 0],
                    log_prob=np.float32(out.log_probs[i, 0]),
                    reward=np.float32(result.metrics["reward"]),
                    done=np.bool_(result.done),
                )
                self.session_steps[i] += 1
                if result.done:
                    stats.episodes += 1
                    stats.collisions += int(result.metrics["collision_at_fault"])
                    stats.offroad += int(result.metrics["offroad"])
                    stats.progress.append(result.metrics["progress"])
                    self.episodes[i] += 1
                    self.observations[i] = self._reset(i)
                else:
                    self.observations[i] = result.observation
            stats.policy_ms += (t1 - t0) * 1e3
            stats.sim_ms += (time.perf_counter() - t1) * 1e3
            stats.env_steps += self.sessions.size
        records = [self._record(i, trace, out.weight_version) for i, trace in enumerate(traces)]
        return records, stats

    def _record(self, session: int, trace: _Trace, version: int) -> RolloutRecord:
        return RolloutRecord(
            actor_id=self.actor_id,
            session=session,
            episode=trace.episode,
            step_start=trace.start_step,
            weight_version=version,
            created_s=time.time(),
            tensors={name: np.stack(values) for name, values in trace.steps.items()},
            scalars={"generator": "bc"},
        )
