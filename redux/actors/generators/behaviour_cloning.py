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

from redux.actors.generators.demo_perturbation import DemoPerturbation
from redux.buffer.codec import RolloutRecord
from redux.config import RunConfig
from redux.policy.action_space import estimate_speed, integrate, normalise
from redux.policy.alpamayo.targets import TargetBuilder, world_model_targets
from redux.policy.torch_engine import make_policy_replica
from redux.sim_bridge import Plan, make_batch, scene_order

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
    reasoning_tokens: int = 0
    progress: list[float] = field(default_factory=list)


class BehaviourCloningGenerator:
    def __init__(self, cfg: RunConfig, actor_id: int, policy=None, first_episode: int = 0):
        """``first_episode``: where each session's scene order starts, so that a resumed run
        drives on to new scenes instead of replaying those its first part trained on."""
        if first_episode < 0:
            raise ValueError(f"first_episode must be >= 0, got {first_episode}")
        self.cfg = cfg
        self.actor_id = actor_id
        self.policy = policy or make_policy_replica(cfg.policy, cfg.sim, seed=cfg.seed + actor_id)
        self.sessions = make_batch(cfg.sim, cfg.sim.sessions_per_actor)
        self.scene_order = scene_order(cfg.sim)
        self.episodes = [first_episode] * self.sessions.size
        self.session_steps = [0] * self.sessions.size
        self.observations = [self._reset(i) for i in range(self.sessions.size)]
        self.perturbation = None
        if cfg.actors.generator == "expert" and cfg.actors.demo_noise > 0:
            self.perturbation = DemoPerturbation(
                self.sessions.size, cfg.actors.demo_noise, cfg.actors.demo_noise_correlation_s, cfg.seed + actor_id
            )
        self.targets = None
        if cfg.policy.kind == "alpamayo":
            preset = self.policy.preset
            self.targets = TargetBuilder(
                self.policy.tokenizer, self.policy.ids, cfg.policy.reasoning, preset.max_reasoning_tokens,
                cfg.policy.trajectory_tokens, preset.latent_blocks, preset.proposal_tokens,
            )  # fmt: skip

    def _scene_id(self, session: int) -> int:
        """Sessions of all actors interleave over the scenes, so none drives a scene twice
        before every scene has been driven once."""
        sessions = self.cfg.actors.num * self.cfg.sim.sessions_per_actor
        slot = self.actor_id * self.cfg.sim.sessions_per_actor + session
        index = slot + sessions * self.episodes[session]
        return index if self.scene_order is None else self.scene_order[index % len(self.scene_order)]

    def _reset(self, session: int):
        return self.sessions.reset(session, self._scene_id(session), self.cfg.seed)

    def generate(self, num_steps: int) -> tuple[list[RolloutRecord], GenerationStats]:
        """Step every session ``num_steps`` times; one record per session."""
        stats = GenerationStats()
        traces = [_Trace(self.session_steps[i], self.episodes[i]) for i in range(self.sessions.size)]
        for _ in range(num_steps):
            self._step(traces, stats, record=True)
            for _ in range(self.cfg.actors.demo_stride - 1):
                self._step(traces, stats, record=False)
        records = [self._record(i, trace, self.policy.weight_version) for i, trace in enumerate(traces)]
        return records, stats

    def _step(self, traces: list[_Trace], stats: GenerationStats, record: bool) -> None:
        """One simulator step of every session. Steps between recorded decisions
        (``actors.demo_stride``) add their reward and episode end to the last recorded one."""
        t0 = time.perf_counter()
        plans, log_probs, tokens = self._plans()
        t1 = time.perf_counter()
        inputs = self.policy.model_inputs(self.observations) if record else None
        results = self.sessions.step(plans)
        for i, (obs, result) in enumerate(zip(self.observations, results)):
            if record:
                target = normalise(obs.labels["expert_actions"])
                traces[i].add(
                    **{name: value[i] for name, value in inputs.items()},
                    **self._reasoning_targets(obs, target, inputs["ego_history"][i]),
                    target_actions=target,
                    plan_actions=plans[i].actions,
                    log_prob=np.float32(log_probs[i]),
                    reward=np.float32(result.metrics["reward"]),
                    done=np.bool_(result.done),
                )
            else:
                traces[i].steps["reward"][-1] += np.float32(result.metrics["reward"])
                traces[i].steps["done"][-1] |= np.bool_(result.done)
            self.session_steps[i] += 1
            if result.done:
                stats.episodes += 1
                stats.collisions += int(result.metrics["collision_at_fault"])
                stats.offroad += int(result.metrics["offroad"])
                stats.progress.append(result.metrics["progress"])
                self.episodes[i] += 1
                self.observations[i] = self._reset(i)
                if self.perturbation is not None:
                    self.perturbation.reset(i)
            else:
                self.observations[i] = result.observation
        stats.policy_ms += (t1 - t0) * 1e3
        stats.reasoning_tokens += tokens
        stats.sim_ms += (time.perf_counter() - t1) * 1e3
        stats.env_steps += self.sessions.size
        if self.perturbation is not None:
            self.perturbation.step()

    def _plans(self) -> tuple[list[Plan], np.ndarray, int]:
        """The plans that drive: the policy's (DAgger-style coverage), or the expert's own
        (demonstrations, perturbed when ``actors.demo_noise`` > 0, and no policy call at all);
        their log-probs, and the reasoning tokens the policy generated for them."""
        if self.cfg.actors.generator == "expert":
            plans = []
            for i, obs in enumerate(self.observations):
                actions = obs.labels["expert_actions"]
                if self.perturbation is not None:
                    actions = self.perturbation.apply(i, actions)
                speed = estimate_speed(obs.ego_history[None, :, :2])[0]
                plans.append(Plan(actions, integrate(actions, speed)))
            return plans, np.zeros(len(plans), dtype=np.float32), 0
        out = self.policy.act(self.observations, num_samples=self.cfg.policy.num_samples)
        plans = [Plan(out.actions[i, 0], out.poses[i, 0]) for i in range(self.sessions.size)]
        tokens = int(out.extras["reasoning_lengths"].sum()) if "reasoning_lengths" in out.extras else 0
        return plans, out.log_probs[:, 0], tokens

    def _reasoning_targets(self, obs, target: np.ndarray, history: np.ndarray) -> dict[str, np.ndarray]:
        """Alpamayo records also carry the reasoning the model should produce, as token ids."""
        if self.targets is None:
            return {}
        speed = float(estimate_speed(history[None, :, :2])[0])
        reasoning = self.targets.build(obs.labels, target, speed)
        preset = self.policy.preset
        return {
            "target_ids": reasoning.ids,
            "target_categories": reasoning.categories,
            "latent_targets": world_model_targets(obs.labels, target, speed, preset.latent_blocks, preset.latent_dim),
            "decision": np.int64(obs.labels["decision"]),
            "factors": np.asarray(obs.labels["factors"], dtype=bool),
            "meta_actions": np.asarray(obs.labels["meta_actions"], dtype=np.int64),
        }

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
