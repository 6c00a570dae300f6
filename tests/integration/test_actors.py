"""Rollout actors on a real local Ray cluster writing into a real Redis."""

from __future__ import annotations

import os
import signal
import time

import pytest
import ray
import torch

from redux.actors.local_ray import init_local_ray
from redux.actors.manager import ActorManager
from redux.buffer.redis_server import EmbeddedRedis
from redux.buffer.rollout_buffer import RolloutBuffer
from redux.config import RunConfig
from redux.learner.weight_transport.object_store import ObjectStoreTransport
from redux.policy.torch_engine import TorchPolicy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), append_only=False) as server:
        init_local_ray(num_cpus=2, resources={"sim_slot": 4, "learner": 1}, include_dashboard=False, configure_logging=False)
        yield server.url
        ray.shutdown()


def small_config() -> RunConfig:
    cfg = RunConfig()
    cfg.sim.bev_pixels = 32
    cfg.sim.sessions_per_actor = 1
    cfg.policy.hidden = 32
    cfg.actors.rollout_steps = 4
    cfg.actors.max_in_flight = 2
    cfg.actors.max_restarts = 2
    return cfg


def pump_until(manager: ActorManager, predicate, timeout_s: float) -> list[dict]:
    reports, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reports += manager.pump(0.2)
        in_flight = len(manager.pending)
        assert in_flight <= manager.size * manager.cfg.actors.max_in_flight
        if predicate(reports):
            return reports
    raise AssertionError("condition not reached in time")


def test_killed_actor_restarts_and_acts_with_the_current_weights(redis_url):
    cfg = small_config()
    namespace = "redux:test-restart"
    transport = ObjectStoreTransport()
    reference = TorchPolicy(cfg.policy, cfg.sim, seed=123)
    manager = ActorManager(cfg, redis_url, namespace, num_actors=1)
    try:
        manager.set_weights(transport.publish(reference.named_weights(), 1))
        first = pump_until(manager, lambda r: len(r) >= 1, 120)
        assert first[0]["version"] == 1 and not first[0]["restarted"]

        victim = manager.pids()[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.time()
        changed = {k: v + 1.0 if v.is_floating_point() else v for k, v in reference.named_weights().items()}
        manager.set_weights(transport.publish(changed, 2))

        after = pump_until(manager, lambda r: any(x["restarted"] for x in r), 120)
        assert manager.restarts == [1]
        assert manager.restart_checks[0] == {"actor": 0, "loaded_version": 2, "current_version": 2}
        assert all(x["version"] == 2 for x in after if x["restarted"])
        assert manager.pids()[0] != victim
    finally:
        manager.shutdown()

    # every record written after the kill was produced with the weights current at the time
    buffer = RolloutBuffer.from_url(redis_url, namespace, cfg.buffer, consumer="checker")
    taken = buffer.take(1000, current_version=2, max_staleness=100, block_ms=100)
    late = [t.record for t in taken if t.record.created_s > killed_at]
    assert late and all(r.weight_version == 2 for r in late)
    assert all(r.tensors["bev"].shape[0] == cfg.actors.rollout_steps for r in late)


def test_records_carry_inputs_targets_and_version(redis_url):
    cfg = small_config()
    namespace = "redux:test-records"
    policy = TorchPolicy(cfg.policy, cfg.sim)
    manager = ActorManager(cfg, redis_url, namespace, num_actors=2)
    try:
        manager.set_weights(ObjectStoreTransport().publish(policy.named_weights(), 5))
        pump_until(manager, lambda r: {x["actor"] for x in r} == {0, 1}, 120)
    finally:
        manager.shutdown()
    assert manager.versions == [5, 5]
    buffer = RolloutBuffer.from_url(redis_url, namespace, cfg.buffer, consumer="checker")
    # everything in the stream (at most its capacity): a fast actor's first 100 records may
    # all come before a slow-starting actor's first one
    records = [t.record for t in buffer.take(cfg.buffer.capacity, current_version=5, block_ms=100)]
    assert {r.actor_id for r in records} == {0, 1}
    record = records[0]
    steps = cfg.actors.rollout_steps
    assert record.weight_version == 5
    assert record.tensors["bev"].shape == (steps, cfg.sim.bev_frames, 3, 32, 32)
    assert record.tensors["ego_history"].shape == (steps, 16, 3)
    assert record.tensors["target_actions"].shape == (steps, 64, 2)
    assert record.tensors["reward"].shape == (steps,)
    assert torch.isfinite(torch.from_numpy(record.tensors["target_actions"])).all()
