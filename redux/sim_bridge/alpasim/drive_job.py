"""`redux drive`: minisim drives any egodriver server over a suite, scored like `redux eval`.

Scenes run in batches of ``concurrent`` sessions (as `redux eval` batches
``sim.sessions_per_actor``), are scored by the same ``score_rollout`` and summarised
by the same code, so against our own server the numbers are `redux eval`'s for the
same policy and seeds. What cannot be the same: ``decision_ms`` here is the drive
call's round trip; ``min_ade_6`` (open loop) comes from the first drive call's
samples when the driver sends at least 6, else it is NaN (`redux eval` samples 6
plans in a separate call); failed rollouts (Alpasim's ``success = false``) are listed
under ``failed_rollouts`` and left out of the scores.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import numpy as np

from redux.actors.evaluation_job import evaluation_summary, metrics_table
from redux.actors.generators.evaluation import EvaluatedRollout, ReasoningStats
from redux.config import RunConfig, config_to_yaml
from redux.eval.plans import OPEN_LOOP_SAMPLES, open_loop_min_ade
from redux.proto import common_pb2, egodriver_pb2_grpc
from redux.sim_bridge.alpasim.runtime_client import DrivenRollout, MinisimRuntime
from redux.sim_bridge.alpasim.settings import DriveSettings
from redux.sim_bridge.minisim.cameras import ALPAMAYO_CAMERAS
from redux.sim_bridge.minisim.observation_renderer import BEV
from redux.sim_bridge.minisim.scoring import score_rollout
from redux.sim_bridge.minisim.suites import parse_suite, suite_scene_ids

ALL_MINISIM_CAMERAS = [*ALPAMAYO_CAMERAS, BEV]


def run_drive(cfg: RunConfig, driver: str, suite: str, out: Path, settings: DriveSettings = DriveSettings(),
              progress=None) -> dict:  # fmt: skip
    name, count = parse_suite(suite)
    cfg = cfg.model_copy(deep=True)
    cfg.sim.kind, cfg.sim.suite = "minisim", name
    cfg.sim.step_metrics = False  # as in redux eval: whole rollouts are scored afterwards
    cfg.sim.expert_labels = False
    cfg.sim.cameras = settings.cameras if settings.cameras is not None else cfg.sim.cameras or ALL_MINISIM_CAMERAS
    scene_ids = suite_scene_ids(name, count)
    size = settings.concurrent or cfg.sim.sessions_per_actor
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(config_to_yaml(cfg))

    limit = settings.max_message_mb * 1024 * 1024
    options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
    started = time.time()
    with grpc.insecure_channel(driver, options=options) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=settings.connect_timeout_s)
        except grpc.FutureTimeoutError:
            raise ConnectionError(f"no egodriver server answers at {driver}") from None
        driver_info = _driver_info(channel, driver, settings.rpc_timeout_s)
        runtime = MinisimRuntime(channel, cfg.sim, cfg.seed, settings.image_format, settings.send_recording,
                                 settings.rpc_timeout_s)  # fmt: skip
        driven: list[DrivenRollout] = []
        for first in range(0, len(scene_ids), size):
            driven += runtime.run(scene_ids[first : first + size])
            if progress is not None:
                progress(len(driven), len(scene_ids))
    wall_s = time.time() - started

    scored = [_evaluated(cfg, rollout) for rollout in driven if rollout.error is None]
    summary = evaluation_summary(scored, f"egodriver at {driver}", suite, wall_s)
    summary["driver"] = driver_info
    summary["image_format"] = settings.image_format
    summary["terminated_rollouts"] = [r.scene_id for r in driven if r.terminated]
    summary["failed_rollouts"] = [{"scene_id": r.scene_id, "error": r.error} for r in driven if r.error is not None]
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    metrics_table(scored).to_parquet(out / "metrics.parquet", index=False)
    return summary


def _evaluated(cfg: RunConfig, rollout: DrivenRollout) -> EvaluatedRollout:
    scene, log = rollout.scene, rollout.log
    metrics = score_rollout(
        scene, cfg.sim.warmup_steps, np.stack(log.ego), log.plans, log.plan_steps, log.samples,
        episode_steps=cfg.sim.episode_steps, actor_states=np.stack(log.actors),
    )  # fmt: skip
    return EvaluatedRollout(
        rollout.scene_id, scene.scenario, scene.hard, metrics,
        float(np.mean(rollout.drive_ms)) if rollout.drive_ms else float("nan"),
        _open_loop_min_ade(rollout), None, _reasoning(rollout.debug),
    )  # fmt: skip


def _open_loop_min_ade(rollout: DrivenRollout) -> float:
    samples = rollout.first_samples
    if samples is None or len(samples) < OPEN_LOOP_SAMPLES:
        return float("nan")
    return float(open_loop_min_ade(samples[None, :, :, :2], rollout.recorded_future[None, :, :2])[0])


def _reasoning(debug: list[dict]) -> ReasoningStats | None:
    """What our drivers' debug info says about the driven sample's reasoning (None from other drivers)."""
    said = [d for d in debug if d.get("consistent")]
    if not said:
        return None
    return ReasoningStats(
        decisions=len(said),
        consistent=sum(bool(d["consistent"][0]) for d in said),
        thought=sum(bool(d.get("thinking", [False])[0]) for d in said),
        examples=[d["reasoning"][0] for d in said[:3] if d.get("reasoning")],
    )


def _driver_info(channel: grpc.Channel, address: str, timeout_s: float) -> dict:
    """Who drove: the driver's get_version, when it answers one (it is not needed to drive)."""
    try:
        version = egodriver_pb2_grpc.EgodriverServiceStub(channel).get_version(common_pb2.Empty(), timeout=timeout_s)
    except grpc.RpcError as err:
        return {"address": address, "version_error": f"{err.code().name}: {err.details()}"}
    api = version.grpc_api_version
    return {"address": address, "version_id": version.version_id, "git_hash": version.git_hash,
            "grpc_api_version": f"{api.major}.{api.minor}.{api.patch}"}  # fmt: skip
