"""Closed-loop evaluation episodes: drive whole scenes, then score them with redux.eval.

Scenes run in batches of ``sim.sessions_per_actor`` sessions that step together,
so one policy call serves the whole batch. Plain Python: the evaluation job runs
it in-process or inside Ray actors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redux.config import RunConfig
from redux.eval.metrics import TimestepMetrics
from redux.eval.plans import OPEN_LOOP_SAMPLES, open_loop_min_ade
from redux.policy.loading import make_policy
from redux.sim_bridge.minisim.observation_renderer import ObservationRenderer, actors_at
from redux.sim_bridge.minisim.scoring import score_rollout
from redux.sim_bridge.minisim.session import MinisimBatch, RolloutLog
from redux.sim_bridge.minisim.video import RolloutFrame
from redux.sim_bridge.session import Plan

DT_S = 0.1


@dataclass
class EvaluatedRollout:
    scene_id: int
    scenario: str
    hard: bool
    metrics: TimestepMetrics
    decision_ms: float  # mean policy time per decision (the whole batch's call ÷ its size)
    open_loop_min_ade: float  # minADE_6 at the hand-over, where the ego is exactly on the recorded drive
    frames: list[RolloutFrame] | None = None
    reasoning: ReasoningStats | None = None  # policies that reason: what they said, and whether it fit the plan


@dataclass
class ReasoningStats:
    decisions: int
    consistent: int  # decisions whose stated reasoning agrees with the executed plan's meta-actions
    thought: int  # CF-VLA decisions that critiqued their first meta-actions ("Thinking:")
    examples: list[str]  # the reasoning of the first decisions, for reading


class Evaluator:
    def __init__(self, cfg: RunConfig, policy: str):
        cfg = cfg.model_copy(deep=True)
        cfg.sim.step_metrics = False  # whole rollouts are scored afterwards, as Alpasim's are
        cfg.sim.expert_labels = False  # training targets; an evaluated policy must not see them
        self.cfg = cfg
        self.policy_name = policy
        self.policy = make_policy(policy, cfg)
        self.renderer = ObservationRenderer(cfg.sim) if cfg.sim.cameras else None

    def run(self, scene_ids: list[int], video_ids: frozenset[int] = frozenset()) -> list[EvaluatedRollout]:
        size = self.cfg.sim.sessions_per_actor
        rollouts = []
        for first in range(0, len(scene_ids), size):
            rollouts += self._run_batch(scene_ids[first : first + size], video_ids)
        return rollouts

    def _run_batch(self, scene_ids: list[int], video_ids: frozenset[int]) -> list[EvaluatedRollout]:
        cfg = self.cfg
        batch = MinisimBatch(cfg.sim, len(scene_ids), self.renderer)
        observations = [batch.reset(i, scene_id, cfg.seed) for i, scene_id in enumerate(scene_ids)]
        open_loop = self._open_loop_min_ade(observations)
        policy_ms = 0.0
        stats = [ReasoningStats(0, 0, 0, []) for _ in scene_ids]
        for _ in range(cfg.sim.episode_steps):
            out = self.policy.act(observations, num_samples=cfg.policy.num_samples, greedy=True)
            policy_ms += out.timings["total_ms"]
            _count_reasoning(stats, out)
            plans = [Plan(out.actions[i, 0], out.poses[i, 0]) for i in range(len(scene_ids))]
            results = batch.step(plans, sampled=list(out.poses))
            observations = [r.observation for r in results]
        decision_ms = policy_ms / cfg.sim.episode_steps / len(scene_ids)

        rollouts = []
        for i, scene_id in enumerate(scene_ids):
            scene, log = batch.scene(i), batch.log(i)
            metrics = score_rollout(
                scene, cfg.sim.warmup_steps, np.stack(log.ego), log.plans, log.plan_steps, log.samples,
                episode_steps=cfg.sim.episode_steps, actor_states=np.stack(log.actors),
            )
            frames = self._frames(scene, log, metrics) if scene_id in video_ids else None
            rollouts.append(
                EvaluatedRollout(
                    scene_id, scene.scenario, scene.hard, metrics, decision_ms, float(open_loop[i]), frames,
                    stats[i] if "consistent" in out.extras else None,
                )  # fmt: skip
            )
        return rollouts

    def _open_loop_min_ade(self, observations) -> np.ndarray:
        """Best of 6 sampled plans against the recorded 6.4 s future (rig frame, rear axle)."""
        out = self.policy.act(observations, num_samples=OPEN_LOOP_SAMPLES)
        recorded = np.stack([o.labels["recorded_future"][:, :2] for o in observations])
        return open_loop_min_ade(out.poses[..., :2], recorded, OPEN_LOOP_SAMPLES)

    def _frames(self, scene, log: RolloutLog, metrics: TimestepMetrics) -> list[RolloutFrame]:
        start = self.cfg.sim.warmup_steps
        collision = metrics.values["collision_any"]
        offroad = metrics.values["offroad"]
        frames = []
        for k, ego in enumerate(log.ego):
            step = start + k
            boxes, kinds = actors_at(scene, step, log.actors[k])
            incident = "collision" if collision[step] else "offroad" if offroad[step] else None
            frames.append(
                RolloutFrame(
                    step=step,
                    t_s=step * DT_S,
                    ego_pose=ego[:3],
                    actor_boxes=boxes,
                    actor_kinds=kinds,
                    plan_xy=log.plans[k][:, :2] if k < len(log.plans) else None,
                    recorded_path_xy=scene.ego[:, :2],
                    incident=incident,
                    caption=f"{self.policy_name} · scene {scene.scene_id} · {scene.scenario}",
                )
            )
        return frames


def _count_reasoning(stats: list[ReasoningStats], out, examples: int = 3) -> None:
    """Tally the executed (first) sample's reasoning of each session."""
    if "consistent" not in out.extras:
        return
    for i, tally in enumerate(stats):
        tally.decisions += 1
        tally.consistent += int(out.extras["consistent"][i, 0])
        tally.thought += int(out.extras["thinking"][i, 0])
        if len(tally.examples) < examples and out.reasoning:
            tally.examples.append(out.reasoning[i * out.actions.shape[1]])
