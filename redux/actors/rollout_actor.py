"""A Ray actor holding simulator sessions and a policy replica.

Each ``sample`` call carries the handle of the newest published weights; the
replica loads them first if it is behind, so a freshly (re)started actor can
never produce a record with stale weights it did not choose. The handle is
passed inside a list so Ray hands it over unresolved and the weights are only
fetched when needed.
"""

from __future__ import annotations

import os
import time

from redux.actors.generators import make_generator
from redux.buffer.connection import connect
from redux.buffer.rollout_buffer import RolloutBuffer
from redux.buffer.stats_channel import StatsChannel
from redux.config import RunConfig
from redux.learner.weight_transport import WeightHandle, fetch_weights
from redux.policy.replica_router import RoutedPolicy


class RolloutActor:
    def __init__(self, cfg: RunConfig, actor_id: int, redis_url: str, namespace: str,
                 replica_names: list[str] | None = None, first_episode: int = 0):  # fmt: skip
        """``replica_names``: shared policy replicas to act through; None holds a replica in-process.
        ``first_episode``: where the sessions' scene order starts (see make_generator)."""
        self.cfg = cfg
        self.actor_id = actor_id
        self.routed = None
        if replica_names:
            self.routed = RoutedPolicy(cfg.policy, actor_id, replica_names)
        self.generator = make_generator(cfg, actor_id, self.routed, first_episode)
        self.generator.policy.weight_version = -1  # nothing loaded yet: the first sample always loads
        client = connect(redis_url, cfg.buffer.connect_timeout_s)
        self.buffer = RolloutBuffer(client, namespace, cfg.buffer, consumer=f"actor-{actor_id}")
        self.telemetry = StatsChannel(client, namespace)
        # counted in Redis, not in the process: the count must survive the process it counts
        self.incarnation = client.hincrby(f"{namespace}:actor-incarnations", str(actor_id), 1)
        self.samples = 0

    def pid(self) -> int:
        return os.getpid()

    def weight_version(self) -> int:
        return self.generator.policy.weight_version

    def sample(self, latest: list[WeightHandle]) -> dict:
        """Load ``latest`` if behind, generate one rollout per session, put them in the buffer."""
        start = time.perf_counter()
        handle = latest[0]
        load_ms = 0.0
        if self.routed is not None:  # the replicas load it, before they act for this call
            self.routed.follow(handle)
        elif handle.version != self.generator.policy.weight_version:
            t0 = time.perf_counter()
            self.generator.policy.load_weights(fetch_weights(handle), handle.version)
            load_ms = (time.perf_counter() - t0) * 1e3
        records, stats = self.generator.generate(self.cfg.actors.rollout_steps)
        t_put = time.perf_counter()
        self.buffer.put(records)
        self.samples += 1
        report = {
            "source": "actor",
            "actor": self.actor_id,
            "pid": os.getpid(),
            "version": self.generator.policy.weight_version,
            "served_version": getattr(self.generator.policy, "served_version", None),
            "restarted": self.incarnation > 1,
            "incarnation": self.incarnation,
            "sample": self.samples,
            "rollouts": len(records),
            "env_steps": stats.env_steps,
            "episodes": stats.episodes,
            "collisions": stats.collisions,
            "offroad": stats.offroad,
            "progress_sum": float(sum(stats.progress)),
            "policy_ms": stats.policy_ms,
            "reasoning_tokens": stats.reasoning_tokens,
            "sim_ms": stats.sim_ms,
            "put_ms": (time.perf_counter() - t_put) * 1e3,
            "load_ms": load_ms,
            "sample_s": time.perf_counter() - start,
            "time": time.time(),
        }
        self.telemetry.publish(report)
        return report
