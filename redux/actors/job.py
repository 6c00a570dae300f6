"""The main job: rollout actors → Redis buffer → DeepSpeed learner → weights back.

The driver (this process) orchestrates and renders the console; the learner
and every rollout actor are Ray actors placed by custom resources, so the same
code runs on this machine and on a ``ray up`` cluster. Everything started here
is stopped here, on success, on error and on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

import ray
from tensorboardX import SummaryWriter

from redux.actors.local_ray import init_local_ray
from redux.actors.manager import SIM_SLOT, ActorManager
from redux.buffer.redis_server import EmbeddedRedis
from redux.buffer.connection import connect
from redux.buffer.rollout_buffer import RolloutBuffer
from redux.buffer.stats_channel import StatsChannel
from redux.config import ConfigError, RunConfig, config_to_yaml
from redux.console import Console, RunStats
from redux.learner.loop import LearnerLoop

log = logging.getLogger(__name__)

LEARNER_SLOT = "learner"
PUMP_S = 0.2  # how long one driver iteration waits for actor results


def make_run_dir(cfg: RunConfig, resume: Path | None) -> Path:
    if resume is not None:
        if not (resume / "config.yaml").is_file():
            raise FileNotFoundError(f"{resume} is not a run directory (no config.yaml)")
        return resume
    base = Path(cfg.runs_dir) / cfg.name
    run_dir, n = base, 1
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{cfg.name}-{n}")
    run_dir.mkdir(parents=True)
    return run_dir


def start_ray(cfg: RunConfig, sim_slots: int) -> bool:
    """Join the configured cluster, or start a local one; True if we started it."""
    if ray.is_initialized():
        return False
    if cfg.ray.address:
        ray.init(address=cfg.ray.address, log_to_driver=True)
        return True
    init_local_ray(
        num_cpus=cfg.ray.num_cpus,
        resources={SIM_SLOT: sim_slots, LEARNER_SLOT: 1},
        include_dashboard=False,
        log_to_driver=True,
        configure_logging=False,
    )
    return True


def requested_cpus(cfg: RunConfig) -> float:
    """CPUs the job's actors reserve: the learner, the rollout actors, shared policy replicas."""
    replicas = cfg.policy.vllm.replicas * cfg.policy.vllm.replica_cpus if cfg.policy.engine == "vllm" else 0.0
    return cfg.learner.num_cpus + cfg.actors.num * cfg.actors.num_cpus + replicas


def check_cpus_fit(cfg: RunConfig, cluster_cpus: float) -> None:
    """On a local cluster an actor that does not fit waits forever: say so at once instead."""
    needed = requested_cpus(cfg)
    if needed > cluster_cpus + 1e-9:
        raise ConfigError(
            f"the job reserves {needed:g} CPUs (learner.num_cpus {cfg.learner.num_cpus:g} + actors.num × "
            f"actors.num_cpus {cfg.actors.num} × {cfg.actors.num_cpus:g}"
            + (f" + policy.vllm.replicas × replica_cpus {cfg.policy.vllm.replicas} × {cfg.policy.vllm.replica_cpus:g}"
               if cfg.policy.engine == "vllm" and cfg.policy.vllm.replicas else "")
            + f") but the local cluster has {cluster_cpus:g}; lower a share or set ray.num_cpus"
        )


@contextlib.contextmanager
def redis_for(cfg: RunConfig, run_dir: Path):
    """The configured Redis URL, or an embedded server that lives as long as the job."""
    if cfg.buffer.redis_url:
        yield cfg.buffer.redis_url
        return
    with EmbeddedRedis(run_dir / "redis", append_only=cfg.buffer.append_only) as server:
        yield server.url


def run_job(cfg: RunConfig, resume: Path | None = None, console_out=None) -> dict:
    run_dir = make_run_dir(cfg, resume)
    (run_dir / "config.yaml").write_text(config_to_yaml(cfg))  # on resume: the effective config, overrides included
    namespace = f"redux:{run_dir.name}"
    started = time.time()
    with redis_for(cfg, run_dir) as redis_url:
        connect(redis_url, cfg.buffer.connect_timeout_s).close()  # fail fast, before Ray starts
        own_ray = start_ray(cfg, sim_slots=cfg.actors.num)
        try:
            if own_ray and not cfg.ray.address:
                check_cpus_fit(cfg, ray.cluster_resources().get("CPU", 0.0))
            summary = _drive(cfg, run_dir, redis_url, namespace, resume, console_out)
        finally:
            if own_ray:
                ray.shutdown()
    summary["wall_s"] = time.time() - started
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _drive(cfg: RunConfig, run_dir: Path, redis_url: str, namespace: str, resume: Path | None, console_out) -> dict:
    client = connect(redis_url, cfg.buffer.connect_timeout_s)
    buffer = RolloutBuffer(client, namespace, cfg.buffer, consumer="driver")
    telemetry = StatsChannel(client, namespace)
    learner = (
        ray.remote(LearnerLoop)
        .options(num_cpus=cfg.learner.num_cpus, resources={LEARNER_SLOT: 1}, max_restarts=0)
        .remote(cfg, run_dir, redis_url, namespace, resume)
    )
    # on resume the actors drive on from the scenes the checkpoint was trained on instead of replaying them
    first_episode = ray.get(learner.first_episode.remote()) if resume is not None else 0
    manager = ActorManager(cfg, redis_url, namespace, first_episode=first_episode)
    stats = RunStats()
    console = Console(cfg.console, f"redux run {run_dir.name}  ·  redux console --redis {redis_url}", console_out)
    writer = SummaryWriter(str(run_dir / "tb" / "driver"))
    last_id = "0-0"
    result: dict = {}
    try:
        manager.set_weights(ray.get(learner.initial_handle.remote()))
        training = learner.train.remote(cfg.learner.publish_every)
        while True:
            manager.pump(PUMP_S)
            done, _ = ray.wait([training], timeout=0)
            if done:
                result = ray.get(training)
                if result["handle"] is not None:
                    manager.set_weights(result["handle"])
                if result["done"]:
                    break
                training = learner.train.remote(cfg.learner.publish_every)
            telemetry.publish(_driver_message(manager))
            last_id, messages = telemetry.read(last_id)
            for message in messages:
                stats.ingest(message)
            snap = stats.snapshot(buffer.stats())
            console.update(snap)
            _write_scalars(writer, snap)
        manager.drain(timeout_s=cfg.buffer.put_timeout_s)
        last_id, messages = telemetry.read(last_id)
        for message in messages:
            stats.ingest(message)
        final = stats.snapshot(buffer.stats())
        console.close(final)
        console = None
        return _summary(cfg, manager, final, result)
    finally:
        if console is not None:
            console.close()
        writer.close()
        manager.shutdown()
        with contextlib.suppress(Exception):
            ray.get(learner.close.remote(), timeout=30)
        ray.kill(learner)


def _driver_message(manager: ActorManager) -> dict:
    return {
        "source": "driver",
        "versions": manager.versions,
        "restarts": {str(i): n for i, n in enumerate(manager.restarts)},
        "publish_to_loaded_ms": manager.publish_to_loaded_ms,
        "publish_to_replicas_loaded_ms": manager.publish_to_replicas_loaded_ms,
        "time": time.time(),
    }


def _write_scalars(writer: SummaryWriter, snap: dict) -> None:
    step = int(snap["learner_step"])
    for key in ("env_steps_per_s_10s", "rollouts_per_s_10s", "loss", "staleness_mean", "publish_ms"):
        if snap.get(key) is not None:
            writer.add_scalar(f"run/{key}", snap[key], step)
    for key in ("depth", "dead_lettered", "dropped_stale"):
        if key in snap["buffer"]:
            writer.add_scalar(f"buffer/{key}", snap["buffer"][key], step)


def _summary(cfg: RunConfig, manager: ActorManager, snap: dict, result: dict) -> dict:
    buf = snap["buffer"]
    return {
        "actors": manager.size,
        "env_steps": manager.env_steps,
        "env_steps_per_s": snap["env_steps_per_s"],
        "rollout_s": snap["rolling_s"],
        "rollouts_produced": buf["produced"],
        "rollouts_consumed": buf["consumed"],
        "rollouts_acked": buf["acked"],
        "rollouts_dead_lettered": buf["dead_lettered"],
        "rollouts_dropped_stale": buf["dropped_stale"],
        "rollouts_reclaimed": buf["reclaimed"],
        "learner_steps": result.get("step", 0),
        "weight_version_final": result.get("version", 0),
        "min_actor_weight_version": min(manager.versions),
        "actor_weight_versions": manager.versions,
        "actor_restarts": sum(manager.restarts),
        "restart_checks": manager.restart_checks,
        "final_loss": result.get("loss"),
        "publish_ms": result.get("publish_ms"),
        "publish_to_loaded_ms": manager.publish_to_loaded_ms,
        "publish_to_replicas_loaded_ms": manager.publish_to_replicas_loaded_ms,
        "reasoning_tokens": snap["reasoning_tokens"],
        "reasoning_tokens_per_s": snap["reasoning_tokens_per_s"],
        "served_versions": snap["served_versions"],
        "replica_restarts": snap["replica_restarts"],
        "staleness_mean": snap["staleness_mean"],
        "staleness_max": snap["staleness_max"],
        "episodes": snap["episodes"],
        "first_episode": manager.first_episode,
        "at_fault_collisions": snap["collisions"],
        "buffer": buf,
    }
