"""`redux eval`: closed-loop evaluation of one policy on a minisim suite.

Writes ``summary.json`` (headline numbers with their std, per suite and for the
hard share), ``metrics.parquet`` (every metric per rollout and step) and videos of
the first K rollouts. With ``actors > 1`` the scenes are split over Ray actors.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import ray

from redux.actors.local_ray import init_local_ray
from redux.actors.generators.evaluation import EvaluatedRollout, Evaluator
from redux.config import RunConfig, config_to_yaml
from redux.eval.summary import summarize
from redux.policy.loading import with_policy_inputs
from redux.sim_bridge.minisim.suites import generate_scene, of_scenarios, parse_suite, suite_scene_ids
from redux.sim_bridge.minisim.video import write_rollout_video


def run_evaluation(cfg: RunConfig, policy: str, suite: str, out: Path, actors: int = 1, videos: int = 0,
                   progress=None, scenarios: list[str] | None = None) -> dict:
    """``scenarios``: drive only the suite's scenes of these scenarios (all when None)."""
    name, count = parse_suite(suite)
    cfg = with_policy_inputs(cfg, policy)
    cfg.sim.kind, cfg.sim.suite = "minisim", name
    scene_ids = suite_scene_ids(name, count)
    if scenarios:
        scene_ids = of_scenarios(scene_ids, scenarios)
    video_ids = frozenset(scene_ids[:videos])
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(config_to_yaml(cfg))

    started = time.time()
    if actors <= 1:
        evaluator = Evaluator(cfg, policy)
        rollouts = []
        for first in range(0, len(scene_ids), cfg.sim.sessions_per_actor):
            chunk = scene_ids[first : first + cfg.sim.sessions_per_actor]
            rollouts += evaluator.run(chunk, video_ids)
            if progress is not None:
                progress(len(rollouts), len(scene_ids))
    else:
        rollouts = _run_on_ray(cfg, policy, scene_ids, video_ids, actors, progress)
    wall_s = time.time() - started

    summary = evaluation_summary(rollouts, policy, suite, wall_s)
    if scenarios:
        summary["scenarios"] = sorted(scenarios)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    metrics_table(rollouts).to_parquet(out / "metrics.parquet", index=False)
    for rollout in rollouts:
        if rollout.frames:
            scene = generate_scene(name, rollout.scene_id, episode_steps=cfg.sim.episode_steps)
            write_rollout_video(scene.road_map, rollout.frames, out / "videos" / f"scene{rollout.scene_id:05d}.gif")
    return summary


def _run_on_ray(cfg, policy, scene_ids, video_ids, actors, progress) -> list[EvaluatedRollout]:
    own = not ray.is_initialized()
    if own:
        init_local_ray(num_cpus=cfg.ray.num_cpus, include_dashboard=False, configure_logging=False)
    try:
        remote = ray.remote(Evaluator).options(num_cpus=cfg.actors.num_cpus)
        workers = [remote.remote(cfg, policy) for _ in range(actors)]
        size = cfg.sim.sessions_per_actor
        chunks = [scene_ids[i : i + size] for i in range(0, len(scene_ids), size)]
        pending = {workers[i % actors].run.remote(chunk, video_ids): chunk for i, chunk in enumerate(chunks)}
        rollouts: list[EvaluatedRollout] = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            pending.pop(done[0])
            rollouts += ray.get(done[0])
            if progress is not None:
                progress(len(rollouts), len(scene_ids))
        return sorted(rollouts, key=lambda r: r.scene_id)
    finally:
        if own:
            ray.shutdown()


def _clean(summary: dict) -> dict:
    """JSON has no inf/NaN: write them as strings a reader can still parse with float()."""
    return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}


def evaluation_summary(rollouts: list[EvaluatedRollout], policy: str, suite: str, wall_s: float) -> dict:
    def headline(subset: list[EvaluatedRollout]) -> dict:
        open_loop = np.array([r.open_loop_min_ade for r in subset])
        return _clean(summarize([r.metrics for r in subset], open_loop_min_ade=open_loop))

    hard = [r for r in rollouts if r.hard]
    summary = {"policy": policy, "suite": suite, **headline(rollouts)}
    summary["hard"] = headline(hard) if hard else {"rollouts": 0}
    summary["decision_ms"] = float(np.mean([r.decision_ms for r in rollouts])) if rollouts else float("nan")
    reasoned = [r.reasoning for r in rollouts if r.reasoning is not None]
    if reasoned:
        decisions = sum(r.decisions for r in reasoned)
        summary["reasoning_consistency"] = sum(r.consistent for r in reasoned) / decisions
        summary["think_rate"] = sum(r.thought for r in reasoned) / decisions
        summary["reasoning_examples"] = [text for r in reasoned[:3] for text in r.examples[:2]]
    summary["close_encounter_definition"] = "OURS: min distance to an obstacle < 0.5 m without contact, or any contact"
    summary["wall_s"] = wall_s
    return summary


def metrics_table(rollouts: list[EvaluatedRollout]) -> pd.DataFrame:
    frames = []
    for r in rollouts:
        table = pd.DataFrame({name: np.asarray(v, dtype=np.float64) for name, v in r.metrics.values.items()})
        table.insert(0, "time_us", r.metrics.timestamps_us)
        table.insert(0, "step", np.arange(len(table)))
        table.insert(0, "hard", r.hard)
        table.insert(0, "scenario", r.scenario)
        table.insert(0, "scene_id", r.scene_id)
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
