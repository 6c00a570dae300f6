"""A policy replica shared by many rollout actors (``policy.vllm.replicas: N``).

One Ray actor holds the policy on its engine (vLLM) and serves every rollout actor
routed to it: their concurrent ``act`` calls are batched into one policy call
(:class:`RequestBatcher`). Each call carries the newest published weight handle, as a
rollout actor's ``sample`` does, and the replica loads it before acting if it is
behind, so a replica Ray has just restarted reloads the current weights before it
serves anything, and no output ever comes from weights older than its caller knew of.
Loading and acting never interleave (the vLLM policy's own lock).

After each load, and at most once a second as it serves, the replica publishes its served version, tokens
generated and decisions to the run's stats stream for the console.
"""

from __future__ import annotations

import os
import threading
import time

from redux.buffer.connection import connect
from redux.buffer.stats_channel import StatsChannel
from redux.config import PolicyConfig, SimConfig
from redux.learner.weight_transport import WeightHandle, fetch_weights
from redux.policy.interface import PolicyOutput
from redux.policy.request_batcher import RequestBatcher

_REPORT_EVERY_S = 1.0


class PolicyReplicaServer:
    def __init__(self, policy: PolicyConfig, sim: SimConfig, replica_id: int, redis_url: str, namespace: str,
                 connect_timeout_s: float):  # fmt: skip
        from redux.policy.torch_engine import make_policy_replica

        self.replica_id = replica_id
        self.policy = make_policy_replica(policy, sim, seed=replica_id)
        self.policy.weight_version = -1  # nothing loaded yet: the first call always loads
        client = connect(redis_url, connect_timeout_s)
        self.telemetry = StatsChannel(client, namespace)
        self.incarnation = client.hincrby(f"{namespace}:replica-incarnations", str(replica_id), 1)
        self.batcher = RequestBatcher(self._act, policy.vllm.max_batch, policy.vllm.max_wait_ms / 1e3)
        self._loading = threading.Lock()
        self.tokens = 0
        self.decisions = 0
        self.policy_s = 0.0
        self.loads = 0
        self._reported = 0.0

    def pid(self) -> int:
        return os.getpid()

    def served_version(self) -> int:
        return getattr(self.policy, "served_version", self.policy.weight_version)

    def catch_up(self, latest: list[WeightHandle]) -> int:
        """Load ``latest`` if behind; returns the version served."""
        self._catch_up(latest[0])
        return self.served_version()

    def act(self, latest: list[WeightHandle], observations: list, num_samples: int = 1, greedy: bool = False) -> PolicyOutput:
        self._catch_up(latest[0])
        out = self.batcher.submit(observations, num_samples, greedy)
        self._report()  # after the batcher counted the call
        return out

    # --- policy.vllm.weight_transfer nccl / ipc: the learner's calls (gpu_weight_transfer.ReplicaClient) ---

    def init_weight_transfer_engine(self, init_info: dict) -> None:
        self._receiver().init_weight_transfer_engine(init_info)

    def start_weight_update(self, version: int) -> None:
        self._receiver().start_weight_update(version)

    def update_weights(self, update_info) -> None:
        self._receiver().update_weights(update_info)

    def finish_weight_update(self, version: int) -> int:
        served = self._receiver().finish_weight_update(version)
        self._report(force=True)
        return served

    def _receiver(self):
        receiver = getattr(self.policy, "receiver", None)
        if receiver is None:
            raise RuntimeError("this replica loads its engine from its own torch copy (policy.vllm.weight_transfer=in_process)")
        return receiver

    def stats(self) -> dict:
        return {
            "source": "replica",
            "replica": self.replica_id,
            "pid": os.getpid(),
            "incarnation": self.incarnation,
            "version": self.policy.weight_version,
            "served_version": self.served_version(),
            "tokens": self.tokens,
            "decisions": self.decisions,
            "policy_s": self.policy_s,
            "tokens_per_s": self.tokens / self.policy_s if self.policy_s else 0.0,
            "batches": self.batcher.calls,
            "mean_batch": self.batcher.mean_batch,
            "loads": self.loads,
            "time": time.time(),
        }

    def _catch_up(self, handle: WeightHandle) -> None:
        if handle.version <= self.policy.weight_version:
            return
        with self._loading:  # callers carrying the same new handle load it once
            if handle.version > self.policy.weight_version:
                self.policy.load_weights(fetch_weights(handle), handle.version)
                self.loads += 1
                self._report(force=True)

    def _act(self, observations: list, num_samples: int, greedy: bool) -> PolicyOutput:
        start = time.perf_counter()
        out = self.policy.act(observations, num_samples=num_samples, greedy=greedy)
        self.policy_s += time.perf_counter() - start
        self.decisions += len(observations) * num_samples
        if "reasoning_lengths" in out.extras:
            self.tokens += int(out.extras["reasoning_lengths"].sum())
        return out

    def _report(self, force: bool = False) -> None:
        """At most one periodic report a second; a forced one (a new version) does not delay the next."""
        now = time.monotonic()
        if force or now - self._reported >= _REPORT_EVERY_S:
            if not force:
                self._reported = now
            self.telemetry.publish(self.stats())
