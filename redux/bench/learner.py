"""Learner throughput: what the DeepSpeed engine costs over a plain torch loop.

Both train a model built from the same config and seed, on the same synthetic
batches (random tensors with the shapes actors write), with the same AdamW and
clipping, so the ratio isolates the engine. No Redis: this measures the optimiser
step alone, which is what bounds the learner once the buffer keeps it fed.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from redux.config import RunConfig
from redux.learner.deepspeed_trainer import DeepSpeedTrainer
from redux.learner.objectives import Objective, make_objective
from redux.policy import build_model
from redux.policy.action_space import HORIZON
from redux.sim_bridge import bev_shape
from redux.sim_bridge.lane.session import HISTORY_POSES


def synthetic_rollout_tensors(cfg: RunConfig, steps: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Record tensors for ``steps`` policy steps with the shapes and dtypes actors store.

    The vla objective reads token ids whose structure random numbers would not have, so
    for an alpamayo policy the tensors are real expert demonstrations (cheap: no policy
    call); the bev-planner gets random arrays of the stored shapes.
    """
    if cfg.policy.kind == "alpamayo":
        return _demonstration_tensors(cfg, steps)
    side = cfg.sim.bev_pixels
    frames, channels = bev_shape(cfg.sim)
    return {
        "bev": rng.integers(0, 256, (steps, frames, channels, side, side), dtype=np.uint8),
        "ego_history": rng.standard_normal((steps, HISTORY_POSES, 3), dtype=np.float32),
        "target_actions": rng.standard_normal((steps, HORIZON, 2), dtype=np.float32),
    }


def _demonstration_tensors(cfg: RunConfig, steps: int) -> dict[str, np.ndarray]:
    from redux.actors.generators.behaviour_cloning import BehaviourCloningGenerator

    demo = cfg.model_copy(deep=True)
    demo.actors.generator = "expert"
    generator = BehaviourCloningGenerator(demo, actor_id=0)
    per_call = generator.sessions.size
    records, _ = generator.generate(-(-steps // per_call))
    return {key: np.concatenate([r.tensors[key] for r in records])[:steps] for key in records[0].tensors}


def run_learner_bench(cfg: RunConfig, steps: int) -> dict:
    """samples/s of ``steps`` optimiser steps per trainer, after one untimed warm-up step."""
    torch.set_num_threads(cfg.learner.torch_threads)
    samples_per_step = cfg.learner.rollouts_per_step * cfg.actors.rollout_steps
    rng = np.random.default_rng(cfg.seed)
    batches = [
        {k: torch.from_numpy(v) for k, v in synthetic_rollout_tensors(cfg, samples_per_step, rng).items()}
        for _ in range(steps + 1)
    ]
    objective = make_objective(cfg.learner)

    torch.manual_seed(cfg.seed)
    trainer = DeepSpeedTrainer(build_model(cfg.policy, cfg.sim), cfg.learner)
    deepspeed_row = _measure(lambda batch: trainer.step(batch, objective)["loss"], batches)

    torch.manual_seed(cfg.seed)
    torch_row = _measure(_plain_torch_step(cfg, objective), batches)

    rows = [
        {"trainer": f"deepspeed-zero{cfg.learner.zero_stage}", **deepspeed_row},
        {"trainer": "torch", **torch_row},
    ]
    return {
        "rows": rows,
        "steps": steps,
        "samples_per_step": samples_per_step,
        "deepspeed_over_torch": deepspeed_row["samples_per_s"] / torch_row["samples_per_s"],
    }


def _plain_torch_step(cfg: RunConfig, objective: Objective) -> Callable[[dict[str, torch.Tensor]], float]:
    """The loop DeepSpeed stands in for: AdamW with the learner's settings and clipping."""
    learner = cfg.learner
    model = build_model(cfg.policy, cfg.sim).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=learner.lr, weight_decay=learner.weight_decay)

    def step(batch: dict[str, torch.Tensor]) -> float:
        loss, metrics = objective(model, batch)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if learner.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), learner.grad_clip)
        optimiser.step()
        return metrics["loss"]

    return step


def _measure(step: Callable[[dict[str, torch.Tensor]], float], batches: list[dict[str, torch.Tensor]]) -> dict:
    step(batches[0])  # warm-up: first steps pay for allocations and optimiser state
    start = time.perf_counter()
    losses = [step(batch) for batch in batches[1:]]
    elapsed = time.perf_counter() - start
    samples = sum(next(iter(b.values())).shape[0] for b in batches[1:])
    return {
        "samples_per_s": samples / elapsed,
        "steps_per_s": len(losses) / elapsed,
        "final_loss": losses[-1],
    }
