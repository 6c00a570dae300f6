"""Weight sync latency: publish on the learner → fetched and loaded by a replica.

For each transport and model size, the driver publishes a state_dict and a Ray
actor (another process, as a replica is) fetches it through its handle and loads
it into a model of the same shape; the latency is measured from the publish call
to the actor's reply. Models are stacks of square Linear layers of about the
requested size (MB = 2**20 bytes of fp32 parameters).
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time

import ray
from torch import nn

from redux.actors.local_ray import init_local_ray
from redux.buffer.redis_server import EmbeddedRedis
from redux.config import BufferConfig
from redux.learner.weight_transport import WeightHandle, fetch_weights, make_transport

MB = 2**20
# Layers of width 1024 (4 MB each): big payloads are many mid-sized tensors, as in a real model.
_LAYER_MB = 4.0


def stacked_linear(layers: int, width: int) -> nn.Sequential:
    return nn.Sequential(*(nn.Linear(width, width) for _ in range(layers)))


def shape_for(size_mb: float) -> tuple[int, int]:
    """(layers, width) of a :func:`stacked_linear` holding about ``size_mb`` of fp32."""
    layers = max(1, round(size_mb / _LAYER_MB))
    width = max(1, round(math.sqrt(size_mb * MB / 4 / layers)))
    return layers, width


@ray.remote(num_cpus=0)  # it mostly waits; must not compete for the CPUs other work holds
class _Replica:
    def build(self, layers: int, width: int) -> None:
        self.model = stacked_linear(layers, width)

    def load(self, handle: WeightHandle) -> float:
        start = time.perf_counter()
        self.model.load_state_dict(fetch_weights(handle), strict=True)
        return (time.perf_counter() - start) * 1e3


def run_sync_bench(sizes_mb: list[float], transports: list[str], repeats: int) -> dict:
    """Median latencies over ``repeats`` timed publishes per (transport, size), after one warm-up."""
    own_ray = not ray.is_initialized()
    if own_ray:
        init_local_ray(include_dashboard=False, configure_logging=False)
    replica = _Replica.remote()
    try:
        with tempfile.TemporaryDirectory(prefix="redux-bench-sync-") as workdir, EmbeddedRedis(
            workdir, append_only=False
        ) as redis_server:
            rows = [
                _measure(replica, name, size_mb, repeats, redis_server.url)
                for name in transports
                for size_mb in sizes_mb
            ]
    finally:
        ray.kill(replica)
        if own_ray:
            ray.shutdown()
    return {"rows": rows, "repeats": repeats}


def _measure(
    replica: ray.actor.ActorHandle, transport_name: str, size_mb: float, repeats: int, redis_url: str
) -> dict:
    layers, width = shape_for(size_mb)
    named = stacked_linear(layers, width).state_dict()
    actual_mb = sum(t.numel() * t.element_size() for t in named.values()) / MB
    # A namespace per row: each row counts versions from 0 again.
    namespace = f"redux:bench-sync:{transport_name}:{layers}x{width}"
    transport = make_transport(
        transport_name, redis_url=redis_url, namespace=namespace, connect_timeout_s=BufferConfig().connect_timeout_s
    )
    ray.get(replica.build.remote(layers, width))
    publish_ms, load_ms, total_ms = [], [], []
    for version in range(repeats + 1):
        start = time.perf_counter()
        handle = transport.publish(named, version)
        published = time.perf_counter()
        replica_ms = ray.get(replica.load.remote(handle))
        if version > 0:  # version 0 warms up the connections and the replica's allocations
            total_ms.append((time.perf_counter() - start) * 1e3)
            publish_ms.append((published - start) * 1e3)
            load_ms.append(replica_ms)
    total = statistics.median(total_ms)
    return {
        "transport": transport_name,
        "size_mb": actual_mb,
        "publish_ms": statistics.median(publish_ms),
        "fetch_load_ms": statistics.median(load_ms),
        "total_ms": total,
        "mb_per_s": actual_mb / (total / 1e3),
    }
