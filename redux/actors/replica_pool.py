"""The shared policy replicas of a run (``policy.vllm.replicas: N``), as Ray actors.

Each replica is a named, threaded actor (its batcher gathers the concurrent calls of
many rollout actors) that Ray restarts when it dies (``actors.max_restarts``). A
restarted replica loads the current weights before it serves: every call carries the
newest handle, and on each publish the pool also asks every replica to load it at
once, so that no replica waits for its next caller to find out.
"""

from __future__ import annotations

import time

import ray

from redux.config import RunConfig
from redux.learner.weight_transport import WeightHandle
from redux.policy.replica_server import PolicyReplicaServer

# concurrent calls a replica accepts: every rollout actor may have a few in flight
_MAX_CONCURRENCY = 256


def replica_name(namespace: str, index: int) -> str:
    return f"{namespace}:policy-replica-{index}"


class ReplicaPool:
    def __init__(self, cfg: RunConfig, redis_url: str, namespace: str):
        count = cfg.policy.vllm.replicas
        remote = ray.remote(PolicyReplicaServer)
        self.replicas = [
            remote.options(
                name=replica_name(namespace, i),
                num_cpus=cfg.policy.vllm.replica_cpus,
                max_restarts=cfg.actors.max_restarts,
                max_task_retries=0,
                max_concurrency=_MAX_CONCURRENCY,
            ).remote(cfg.policy, cfg.sim, i, redis_url, namespace, cfg.buffer.connect_timeout_s)
            for i in range(count)
        ]
        self._loading: list[ray.ObjectRef] = []
        self._published_at = 0.0

    @property
    def size(self) -> int:
        return len(self.replicas)

    def set_weights(self, handle: WeightHandle) -> None:
        """Start loading ``handle`` everywhere now; calls carry it anyway, so a failure here costs nothing."""
        self._loading = [replica.catch_up.remote([handle]) for replica in self.replicas]
        self._published_at = time.perf_counter()

    def loaded_ms(self) -> float | None:
        """Publish → every replica serving it, once all have answered (None before, and after it was read)."""
        if not self._loading or ray.wait(self._loading, num_returns=len(self._loading), timeout=0)[1]:
            return None
        loading, self._loading = self._loading, []
        try:
            ray.get(loading)
        except ray.exceptions.RayError:  # a replica died meanwhile: it loads on its next call instead
            return None
        return (time.perf_counter() - self._published_at) * 1e3

    def served_versions(self, timeout_s: float = 30.0) -> list[int]:
        """Each replica's served version; -1 for one that does not answer in time."""
        refs = [r.served_version.remote() for r in self.replicas]
        versions = []
        for ref in refs:
            try:
                versions.append(ray.get(ref, timeout=timeout_s))
            except (ray.exceptions.RayError, TimeoutError):
                versions.append(-1)
        return versions

    def stats(self) -> list[dict]:
        return ray.get([r.stats.remote() for r in self.replicas])

    def pids(self) -> list[int]:
        return ray.get([r.pid.remote() for r in self.replicas])

    def shutdown(self) -> None:
        for replica in self.replicas:
            ray.kill(replica, no_restart=True)
        self.replicas = []
