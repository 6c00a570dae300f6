"""Weight transports on a real local Ray and a real redis-server: bitwise round trips,
handles fetched inside a Ray actor, Redis eviction, and the sync benchmark."""

import pytest
import ray
import redis
import torch

from redux.actors.local_ray import init_local_ray
from redux.bench.sync import run_sync_bench
from redux.buffer.redis_server import EmbeddedRedis
from redux.config import BufferConfig, RunConfig
from redux.learner.weight_transport import WeightHandle, fetch_weights, make_transport
from redux.learner.weight_transport.redis_store import WeightVersionEvicted
from redux.policy import build_model

pytestmark = pytest.mark.integration

TRANSPORTS = ["object_store", "redis"]


@pytest.fixture(scope="module")
def local_ray():
    init_local_ray(num_cpus=1, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), append_only=False) as server:
        yield server


def transport(name: str, redis_server: EmbeddedRedis, namespace: str):
    return make_transport(name, redis_url=redis_server.url, namespace=namespace,
                          connect_timeout_s=BufferConfig().connect_timeout_s)


def small_cfg() -> RunConfig:
    cfg = RunConfig()
    cfg.sim.bev_pixels = 32
    cfg.policy.hidden = 32
    return cfg


def state_dict() -> dict[str, torch.Tensor]:
    """A policy's weights plus the awkward cases: bfloat16, integers, NaN and -0.0."""
    cfg = small_cfg()
    torch.manual_seed(0)
    named = build_model(cfg.policy, cfg.sim).state_dict()
    named["extra.bf16"] = torch.randn(3, 5).to(torch.bfloat16)
    named["extra.steps"] = torch.tensor([7, -1], dtype=torch.int64)
    named["extra.special"] = torch.tensor([float("nan"), -0.0, float("inf")])
    return named


def assert_bitwise_equal(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> None:
    assert list(actual) == list(expected)
    for name, tensor in expected.items():
        assert actual[name].dtype == tensor.dtype and actual[name].shape == tensor.shape, name
        assert torch.equal(actual[name].flatten().view(torch.uint8), tensor.flatten().view(torch.uint8)), name


@ray.remote(num_cpus=0)
class Replica:
    """A policy replica in another process, as rollout actors hold one."""

    def __init__(self, cfg: RunConfig):
        self.model = build_model(cfg.policy, cfg.sim)

    def load(self, handle: WeightHandle) -> dict:
        received = type(handle.locator).__name__  # before fetching: what Ray handed over
        if received == "BucketRefs":
            received += "" if all(isinstance(r, ray.ObjectRef) for r in handle.locator.buckets) else " (resolved!)"
        self.model.load_state_dict(fetch_weights(handle), strict=True)
        return {"received": received, "weights": {k: v.clone() for k, v in self.model.state_dict().items()}}


@pytest.mark.parametrize("name", TRANSPORTS)
def test_a_state_dict_round_trips_bitwise(name, local_ray, redis_server):
    named = state_dict()
    handle = transport(name, redis_server, f"test:round-trip:{name}").publish(named, 3)
    assert (handle.version, handle.transport) == (3, name)
    assert_bitwise_equal(named, fetch_weights(handle))


@pytest.mark.parametrize("name", TRANSPORTS)
def test_a_replica_actor_fetches_the_handle_it_is_given(name, local_ray, redis_server):
    cfg = small_cfg()
    torch.manual_seed(1)
    named = build_model(cfg.policy, cfg.sim).state_dict()
    handle = transport(name, redis_server, f"test:actor:{name}").publish(named, 1)
    replica = Replica.remote(cfg)
    try:
        reply = ray.get(replica.load.remote(handle))
    finally:
        ray.kill(replica)
    # the payload travels only when the replica fetches it, not with the call
    assert reply["received"] == {"object_store": "BucketRefs", "redis": "RedisLocator"}[name]
    assert_bitwise_equal(named, reply["weights"])


def test_redis_keeps_the_latest_two_versions(redis_server):
    namespace = "test:eviction"
    publisher = transport("redis", redis_server, namespace)
    named = {"w": torch.arange(4.0)}
    handles = {v: publisher.publish({"w": named["w"] + v}, v) for v in (1, 2, 3)}
    with pytest.raises(WeightVersionEvicted, match="v1 are no longer in Redis"):
        fetch_weights(handles[1])
    assert torch.equal(fetch_weights(handles[3])["w"], named["w"] + 3)

    client = redis.Redis.from_url(redis_server.url)
    assert int(client.get(f"{namespace}:weights:latest")) == 3
    publisher.publish({"w": named["w"] + 3}, 3)  # a resumed learner republishes its version
    handles[4] = publisher.publish({"w": named["w"] + 4}, 4)
    assert sorted(k.decode() for k in client.keys(f"{namespace}:weights:[0-9]*")) == [
        f"{namespace}:weights:3", f"{namespace}:weights:4"]
    assert torch.equal(fetch_weights(handles[3])["w"], named["w"] + 3)
    client.close()


def test_a_handle_keeps_the_redis_password_out_of_its_repr(redis_server):
    handle = transport("redis", redis_server, "test:repr").publish({"w": torch.zeros(1)}, 0)
    assert redis_server.password not in repr(handle)


def test_unknown_transports_are_named():
    with pytest.raises(ValueError, match="'carrier-pigeon'"):
        make_transport("carrier-pigeon", redis_url="redis://x", namespace="n", connect_timeout_s=1.0)
    with pytest.raises(ValueError, match="'carrier-pigeon'"):
        fetch_weights(WeightHandle(1, "carrier-pigeon", None))


def test_sync_bench_reports_a_row_per_transport_and_size(local_ray):
    result = run_sync_bench([0.01, 0.1], TRANSPORTS, repeats=2)
    rows = result["rows"]
    assert [(r["transport"], round(r["size_mb"], 1)) for r in rows] == [
        ("object_store", 0.0), ("object_store", 0.1), ("redis", 0.0), ("redis", 0.1)]
    for row in rows:
        assert row.keys() == {"transport", "size_mb", "publish_ms", "fetch_load_ms", "total_ms", "mb_per_s"}
        assert 0 < row["publish_ms"] <= row["total_ms"] and row["fetch_load_ms"] > 0 and row["mb_per_s"] > 0
