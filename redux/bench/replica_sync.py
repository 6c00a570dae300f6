"""Weight sync into real policy replicas: publish on the learner → the replica serves it.

For each engine a Ray actor (another process, as a rollout actor or a served replica
is) builds the Alpamayo policy of the preset on that engine; the driver publishes a
learner-side state dict of the same preset through a weight transport, and the replica
fetches it and loads it: the torch engine into its module, the vLLM engine into its
module and then, bucket by bucket, into the running vLLM engine (which must then report
the new version). The latency runs from the publish call to the replica's reply.

The physical limit is memory bandwidth: the replica process also times a plain
``copy_`` of a large buffer, and each row reports its effective GB/s (policy bytes ÷
publish → loaded time) as a fraction of that memcpy rate, measured in the same run.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import ray
import torch

from redux.actors.local_ray import init_local_ray
from redux.buffer.redis_server import EmbeddedRedis
from redux.config import BufferConfig, PolicyConfig, SimConfig
from redux.learner.weight_transport import WeightHandle, fetch_weights, make_transport

GB = 1e9
_MEMCPY_BYTES = 256 * 2**20
_MEMCPY_REPEATS = 5


def memcpy_gb_per_s(nbytes: int = _MEMCPY_BYTES, repeats: int = _MEMCPY_REPEATS) -> float:
    """This process's copy bandwidth: the median of ``repeats`` copies of ``nbytes`` (GB/s)."""
    src = torch.ones(nbytes, dtype=torch.uint8)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch of the destination pages is not bandwidth
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - start)
    return nbytes / statistics.median(times) / GB


def policy_config(preset: str, engine: str) -> PolicyConfig:
    return PolicyConfig(kind="alpamayo", preset=preset, reasoning="coc", engine=engine)


@ray.remote(num_cpus=0)  # it mostly waits on the driver; must not compete for the CPUs other work holds
class _PolicyReplica:
    def __init__(self, policy: PolicyConfig, sim: SimConfig):
        from redux.policy.torch_engine import make_policy_replica

        self.policy = make_policy_replica(policy, sim, seed=1)

    def memcpy_gb_per_s(self) -> float:
        return memcpy_gb_per_s()

    def load(self, handle: WeightHandle) -> dict:
        start = time.perf_counter()
        named = fetch_weights(handle)
        fetched = time.perf_counter()
        self.policy.load_weights(named, handle.version)
        served = getattr(self.policy, "served_version", self.policy.weight_version)
        return {"fetch_ms": (fetched - start) * 1e3, "load_ms": (time.perf_counter() - fetched) * 1e3, "served": served}

    def close(self) -> None:
        served = getattr(self.policy, "served", None)
        if served is not None:
            served.close()


def run_replica_sync_bench(preset: str, engines: list[str], transport: str, repeats: int, progress=None) -> dict:
    """Median publish → served latency per engine for ``preset``, and its share of memcpy bandwidth."""
    from redux.policy import build_model

    sim = SimConfig(kind="minisim", cameras=["bev"])
    torch.manual_seed(0)
    learner_side = build_model(policy_config(preset, "torch"), sim).state_dict()
    nbytes = sum(t.numel() * t.element_size() for t in learner_side.values())
    served_bytes = _served_bytes(learner_side)
    own_ray = not ray.is_initialized()
    if own_ray:
        init_local_ray(include_dashboard=False, configure_logging=False)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="redux-bench-sync-") as workdir, EmbeddedRedis(
            workdir, append_only=False
        ) as redis_server:
            for engine in engines:
                replica = _PolicyReplica.remote(policy_config(preset, engine), sim)
                try:
                    timed = _measure(replica, engine, learner_side, transport, repeats, redis_server.url)
                finally:
                    ray.get(replica.close.remote())
                    ray.kill(replica)
                gb_per_s = nbytes / GB / (timed["total_ms"] / 1e3)
                rows.append(
                    {"engine": engine, "policy_gb": nbytes / GB, "served_gb": served_bytes / GB}
                    | timed
                    | {"gb_per_s": gb_per_s, "of_memcpy": gb_per_s / timed["memcpy_gb_per_s"]}
                )
                if progress is not None:
                    progress(rows[-1])
    finally:
        if own_ray:
            ray.shutdown()
    return {"preset": preset, "transport": transport, "repeats": repeats, "rows": rows}


def _served_bytes(named: dict[str, torch.Tensor]) -> int:
    from redux.policy.vllm.served_model import served_name

    return sum(t.numel() * t.element_size() for k, t in named.items() if served_name(k) is not None)


def _measure(replica, engine: str, named: dict, transport_name: str, repeats: int, redis_url: str) -> dict:
    transport = make_transport(
        transport_name, redis_url=redis_url, namespace=f"redux:bench-sync:{engine}",
        connect_timeout_s=BufferConfig().connect_timeout_s,
    )  # fmt: skip
    memcpy = ray.get(replica.memcpy_gb_per_s.remote())
    publish_ms, fetch_ms, load_ms, total_ms = [], [], [], []
    for version in range(1, repeats + 2):
        start = time.perf_counter()
        handle = transport.publish(named, version)
        published = time.perf_counter()
        reply = ray.get(replica.load.remote(handle))
        if reply["served"] != version:
            raise RuntimeError(f"{engine} replica serves version {reply['served']} after a push of {version}")
        if version > 1:  # the first push warms up connections and the replica's allocations
            total_ms.append((time.perf_counter() - start) * 1e3)
            publish_ms.append((published - start) * 1e3)
            fetch_ms.append(reply["fetch_ms"])
            load_ms.append(reply["load_ms"])
    return {
        "publish_ms": statistics.median(publish_ms),
        "fetch_ms": statistics.median(fetch_ms),
        "load_ms": statistics.median(load_ms),
        "total_ms": statistics.median(total_ms),
        "memcpy_gb_per_s": memcpy,
    }
