"""Tune actor counts: the rollout path alone, against the same work in-process.

For each actor count N the full rollout path runs (Ray actors → Redis buffer)
with a simulated learner that only takes and acks, and its env-steps/s is
compared with N × the rate of one generator stepping the same sessions and
policy in this process with no Ray and no Redis. The ratio is the efficiency:
1.0 means distribution costs nothing; it falls when actors outnumber cores.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import ray

from redux.actors.generators import make_generator
from redux.actors.job import redis_for, start_ray
from redux.actors.manager import ActorManager
from redux.config import RunConfig
from redux.learner.intake import LearnerStarved
from redux.learner.simulated import SimulatedLearner


def in_process_rate(cfg: RunConfig, seconds: float) -> float:
    """env-steps/s of one generator stepping its sessions with no Ray or Redis."""
    generator = make_generator(cfg, actor_id=0)
    generator.generate(cfg.actors.rollout_steps)  # warm-up: first calls pay allocation costs
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, stats = generator.generate(cfg.actors.rollout_steps)
        steps += stats.env_steps
    return steps / (time.perf_counter() - start)


def distributed_rate(cfg: RunConfig, num_actors: int, seconds: float, redis_url: str, run_dir: Path) -> float:
    """env-steps/s of N Ray actors writing to Redis, drained by a take-and-ack consumer."""
    consumer_cfg = cfg.model_copy(deep=True)
    consumer_cfg.learner.steps = 2**62  # consume for as long as the measurement lasts
    consumer_cfg.learner.take_timeout_s = 1.0  # so that the consumer notices the stop quickly
    namespace = f"redux:{run_dir.name}"
    learner = SimulatedLearner(consumer_cfg, redis_url, namespace)
    manager = ActorManager(cfg, redis_url, namespace, num_actors=num_actors)
    stop = threading.Event()
    # the consumer runs beside the driver loop so that actors are topped up while it waits for data
    consumer = threading.Thread(target=lambda: _consume(learner, stop), daemon=True)
    try:
        manager.set_weights(learner.initial_handle())
        consumer.start()
        while min(manager.versions) < 0:  # warm-up: every actor has loaded weights and produced once
            manager.pump(0.5)
        steps0, start = manager.env_steps, time.perf_counter()
        while time.perf_counter() - start < seconds:
            manager.pump(0.05)
        elapsed = time.perf_counter() - start
        return (manager.env_steps - steps0) / elapsed
    finally:
        stop.set()
        manager.shutdown()
        consumer.join(timeout=10.0)
        learner.close()


def _consume(learner: SimulatedLearner, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            learner.train(1)
        except LearnerStarved:
            continue  # actors still starting, or already stopped: look at the stop flag again


def run_actor_bench(cfg: RunConfig, actor_counts: list[int], seconds: float, progress=None) -> dict:
    baseline = in_process_rate(cfg, seconds)
    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="redux-bench-"))
    with redis_for(cfg, scratch) as redis_url:
        own_ray = start_ray(cfg, sim_slots=max(actor_counts))
        try:
            for n in actor_counts:
                rate = distributed_rate(cfg, n, seconds, redis_url, scratch / f"bench-actors-{n}")
                rows.append(
                    {
                        "actors": n,
                        "env_steps_per_s": rate,
                        "in_process_env_steps_per_s": baseline,
                        "efficiency": rate / (n * baseline),
                    }
                )
                if progress is not None:
                    progress(rows[-1])
        finally:
            if own_ray:
                ray.shutdown()
    return {
        "seconds_per_point": seconds,
        "sessions_per_actor": cfg.sim.sessions_per_actor,
        "rollout_steps": cfg.actors.rollout_steps,
        "cpus": os.cpu_count(),
        "rows": rows,
    }
