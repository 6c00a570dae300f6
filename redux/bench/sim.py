"""`redux bench sim`: how fast minisim steps on one core, and what each camera costs.

The simulator must be a rounding error next to the policy: this measures
session-steps/s of a batch stepping together (constant-velocity plans, so no
policy time is counted) without images, with the expert's labels, and with every
camera; and the milliseconds one frame of each camera takes to draw.
"""

from __future__ import annotations

import time

import numpy as np

from redux.config import RunConfig
from redux.policy.reference import ConstantVelocity
from redux.sim_bridge.minisim.cameras import ALPAMAYO_CAMERAS
from redux.sim_bridge.minisim.observation_renderer import BEV, ObservationRenderer
from redux.sim_bridge.minisim.session import MinisimBatch
from redux.sim_bridge.minisim.suites import suite_scene_ids
from redux.sim_bridge.session import Plan


def _steps_per_s(cfg: RunConfig, batch_size: int, steps: int) -> float:
    renderer = ObservationRenderer(cfg.sim) if cfg.sim.cameras else None
    batch = MinisimBatch(cfg.sim, batch_size, renderer)
    ids = suite_scene_ids(cfg.sim.suite, batch_size)
    observations = [batch.reset(i, scene_id, cfg.seed) for i, scene_id in enumerate(ids)]
    out = ConstantVelocity().act(observations)
    plans = [Plan(out.actions[i, 0], out.poses[i, 0]) for i in range(batch_size)]
    batch.step(plans)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        batch.step(plans)
    return steps * batch_size / (time.perf_counter() - start)


def _frame_ms(cfg: RunConfig, camera: str, frames: int) -> float:
    cfg = cfg.model_copy(deep=True)
    cfg.sim.cameras = [camera]
    renderer = ObservationRenderer(cfg.sim)
    batch = MinisimBatch(cfg.sim, 1, renderer)
    batch.reset(0, suite_scene_ids(cfg.sim.suite, 1)[0], cfg.seed)
    scene, pose = batch.scene(0), batch.log(0).ego[0][:3]
    renderer.camera(camera, scene, pose, cfg.sim.warmup_steps)  # warm-up: per-map setup is cached
    start = time.perf_counter()
    for k in range(frames):
        renderer.camera(camera, scene, pose, cfg.sim.warmup_steps + k % 50)
    return (time.perf_counter() - start) / frames * 1e3


def run_sim_bench(cfg: RunConfig, batch_size: int, steps: int) -> dict:
    base = cfg.model_copy(deep=True)
    base.sim.kind, base.sim.cameras, base.sim.expert_labels, base.sim.step_metrics = "minisim", [], False, False
    scored = base.model_copy(deep=True)
    scored.sim.step_metrics = True
    labelled = base.model_copy(deep=True)
    labelled.sim.expert_labels = True
    rendered = base.model_copy(deep=True)
    rendered.sim.cameras = [*ALPAMAYO_CAMERAS, BEV]
    rows = [
        {"mode": "no rendering", "session_steps_per_s": _steps_per_s(base, batch_size, steps)},
        {"mode": "step metrics + reward", "session_steps_per_s": _steps_per_s(scored, batch_size, max(steps // 10, 5))},
        {"mode": "expert labels", "session_steps_per_s": _steps_per_s(labelled, batch_size, max(steps // 10, 5))},
        {"mode": "4 cameras + bev", "session_steps_per_s": _steps_per_s(rendered, batch_size, max(steps // 20, 3))},
    ]
    frames = {camera: _frame_ms(base, camera, 40) for camera in (*ALPAMAYO_CAMERAS, BEV)}
    return {
        "batch_size": batch_size,
        "camera_resolution": [base.sim.camera_width, base.sim.camera_height],
        "bev_pixels": base.sim.bev_pixels,
        "rows": rows,
        "frame_ms": frames,
        "frame_ms_mean": float(np.mean(list(frames.values()))),
    }
