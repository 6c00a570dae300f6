"""Does a policy read its inputs? Its plans with one input taken away, on the expert's own drive.

A cloned policy can lower its training loss without reading the scene, since the
average plan for the current speed is a fair guess most of the time, and then it
drives blind. Here the expert drives a suite's scenes; every ``every`` steps the policy
plans greedily from the real observations and from copies with one input taken away:

- ``camera blanked``: every frame of every camera is zeros;
- ``camera swapped``: each observation gets the frames of the next one in its batch
  (another scene), so the picture is real but wrong;
- ``history straightened``: the ego history keeps the distances between its poses (so
  the speed and acceleration) but loses its lateral offsets and headings.

For each, the mean absolute change of the planned curvature and acceleration over the
first ``horizon_steps`` is reported beside two yardsticks measured on the same states:
the real plan's error to the expert's plan, and the expert plan's own spread around its
mean (what a policy that ignores everything misses). A change far below the spread
means the policy does not use that input. The real plan's own spread and its mean
minus the expert's (signed) tell a plan that barely varies (it plans one thing
everywhere) and one that is off to one side on average (it drifts).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterator, Sequence

import numpy as np

from redux.config import SimConfig
from redux.policy.action_space import estimate_speed, integrate
from redux.policy.ego_history import straightened_history
from redux.sim_bridge import make_batch
from redux.sim_bridge.session import Observation, Plan

HORIZON_STEPS = 20  # 2 s: what the tracker mostly acts on before the next decisions replace it
Ablation = Callable[[list[Observation]], list[Observation]]


def _blank_cameras(observations: list[Observation]) -> list[Observation]:
    return [replace(o, cameras={k: np.zeros_like(v) for k, v in o.cameras.items()}) for o in observations]


def _swap_cameras(observations: list[Observation]) -> list[Observation]:
    rotated = observations[1:] + observations[:1]
    return [replace(o, cameras=other.cameras) for o, other in zip(observations, rotated)]


def _straighten_history(observations: list[Observation]) -> list[Observation]:
    return [replace(o, ego_history=straightened_history(o.ego_history).astype(o.ego_history.dtype)) for o in observations]


ABLATIONS: dict[str, Ablation] = {
    "camera blanked": _blank_cameras,
    "camera swapped": _swap_cameras,
    "history straightened": _straighten_history,
}


def expert_drive_observations(sim: SimConfig, scene_ids: Sequence[int], every: int) -> Iterator[list[Observation]]:
    """The observations of the expert driving ``scene_ids`` of ``sim.suite`` together, one batch every ``every`` steps."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    sim = sim.model_copy(update={"expert_labels": True, "step_metrics": False})
    batch = make_batch(sim, len(scene_ids))
    observations = [batch.reset(i, scene_id, seed=0) for i, scene_id in enumerate(scene_ids)]
    for step in range(sim.episode_steps):
        if step % every == 0:
            yield observations
        plans = []
        for obs in observations:
            actions = obs.labels["expert_actions"]
            speed = estimate_speed(obs.ego_history[None, :, :2])[0]
            plans.append(Plan(actions, integrate(actions, speed)))
        observations = [r.observation for r in batch.step(plans)]


def measure_input_use(policy, batches: Iterator[list[Observation]], horizon_steps: int = HORIZON_STEPS) -> list[dict]:
    """One row per ablation, then the yardsticks and the real plan's own spread and signed mean offset:
    mean |Δ curvature| (1/m) and |Δ acceleration| (m/s²)."""
    changes: dict[str, list[np.ndarray]] = {name: [] for name in ABLATIONS}
    errors, experts, reals = [], [], []

    def plan(observations: list[Observation]) -> np.ndarray:
        return policy.act(observations, num_samples=1, greedy=True).actions[:, 0, :horizon_steps].astype(np.float64)

    for observations in batches:
        real = plan(observations)
        expert = np.stack([o.labels["expert_actions"][:horizon_steps] for o in observations]).astype(np.float64)
        errors.append(np.abs(real - expert))
        experts.append(expert)
        reals.append(real)
        for name, ablate in ABLATIONS.items():
            changes[name].append(np.abs(plan(ablate(observations)) - real))
    if not experts:
        raise ValueError("no observations to measure on")
    expert = np.concatenate(experts)
    spread = np.abs(expert - expert.mean(axis=0, keepdims=True))

    def row(name: str, measures: str, deviation: np.ndarray) -> dict:
        curvature, acceleration = float(deviation[..., 1].mean()), float(deviation[..., 0].mean())
        return {
            "input": name,
            "measures": measures,
            "curvature_per_m": curvature,
            "acceleration_m_s2": acceleration,
            "curvature_share_of_spread": _share(curvature, float(spread[..., 1].mean())),
            "acceleration_share_of_spread": _share(acceleration, float(spread[..., 0].mean())),
            "decisions": int(len(expert)),
        }

    rows = [row(name, "plan change", np.concatenate(values)) for name, values in changes.items()]
    rows.append(row("all (real plan)", "error to the expert", np.concatenate(errors)))
    rows.append(row("all (expert)", "spread around its mean", spread))
    real = np.concatenate(reals)
    rows.append(row("all (real plan's spread)", "spread around its mean", np.abs(real - real.mean(axis=0, keepdims=True))))
    # signed: a plan that steers to one side of the expert everywhere drifts off the road
    rows.append(row("all (real plan's mean)", "minus the expert's mean", (real.mean(axis=0) - expert.mean(axis=0))[None]))
    return rows


def _share(value: float, spread: float) -> float | None:
    """``value`` as a share of the expert's spread; None where the expert never varied."""
    return value / spread if spread > 0 else None
