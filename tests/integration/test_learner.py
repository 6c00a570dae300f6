"""The learner on real DeepSpeed and a real redis-server: training, checkpoints,
the consume-train-ack-publish loop, resume, and staleness accounting."""

import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.utils.cpp_extension import _get_build_directory

from redux.bench.learner import run_learner_bench, synthetic_rollout_tensors
from redux.buffer.codec import RolloutRecord, decode_tensors, encode_tensors
from redux.buffer.redis_server import EmbeddedRedis
from redux.buffer.rollout_buffer import RolloutBuffer
from redux.buffer.stats_channel import StatsChannel
from redux.config import RunConfig
from redux.learner.batch import collate
from redux.learner.deepspeed_trainer import DeepSpeedTrainer
from redux.learner.intake import LearnerStarved
from redux.learner.loop import LearnerLoop
from redux.config import LearnerConfig
from redux.learner.objectives import make_objective
from redux.learner.simulated import SimulatedLearner
from redux.learner.weight_transport import fetch_weights
from redux.policy import build_model
from redux.policy.action_space import normalise
from redux.policy.inputs import model_inputs
from redux.policy.loading import POLICY_WEIGHTS, make_policy
from redux.policy.torch_engine import TorchPolicy
from redux.sim_bridge import Plan, make_session

pytestmark = pytest.mark.integration

BC = make_objective(LearnerConfig())


def small_cfg(**learner) -> RunConfig:
    cfg = RunConfig()
    cfg.sim.bev_pixels = 32
    cfg.policy.hidden = 32
    cfg.actors.rollout_steps = 4
    cfg.buffer.take_block_ms = 100
    cfg.buffer.max_staleness = 1
    cfg.learner.take_timeout_s = 1.0
    cfg.learner.weight_transport = "redis"
    for key, value in learner.items():
        setattr(cfg.learner, key, value)
    return cfg


def synthetic_records(cfg: RunConfig, n: int, version: int, seed: int = 0) -> list[RolloutRecord]:
    rng = np.random.default_rng(seed)
    return [
        RolloutRecord(actor_id=0, session=i, episode=0, step_start=0, weight_version=version, created_s=0.0,
                      tensors=synthetic_rollout_tensors(cfg, cfg.actors.rollout_steps, rng))
        for i in range(n)
    ]


def real_records(cfg: RunConfig, n: int) -> list[RolloutRecord]:
    """What an actor stores: model inputs and the expert's normalised plan at each visited state."""
    policy = TorchPolicy(cfg.policy, cfg.sim, seed=cfg.seed)
    records = []
    for i in range(n):
        session = make_session(cfg.sim)
        observation = session.reset(i, cfg.seed)
        steps = {"bev": [], "ego_history": [], "target_actions": []}
        for _ in range(cfg.actors.rollout_steps):
            inputs = model_inputs([observation])
            steps["bev"].append(inputs["bev"][0])
            steps["ego_history"].append(inputs["ego_history"][0])
            steps["target_actions"].append(normalise(observation.labels["expert_actions"]))
            out = policy.act([observation])
            observation = session.step(Plan(out.actions[0, 0], out.poses[0, 0])).observation
        records.append(RolloutRecord(actor_id=0, session=i, episode=0, step_start=0, weight_version=0,
                                     created_s=0.0, tensors={k: np.stack(v) for k, v in steps.items()}))
    return records


def fixed_batch(cfg: RunConfig) -> dict[str, torch.Tensor]:
    batch = collate(synthetic_records(cfg, 2, version=0), BC.batch_keys)
    batch["target_actions"] = torch.tensor([0.8, -0.5]).expand_as(batch["target_actions"]).contiguous()
    return batch


def trainer_for(cfg: RunConfig, seed: int) -> DeepSpeedTrainer:
    torch.manual_seed(seed)
    return DeepSpeedTrainer(build_model(cfg.policy, cfg.sim), cfg.learner)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), append_only=False) as server:
        yield server.url


# --- DeepSpeedTrainer ----------------------------------------------------------------


@pytest.mark.parametrize("zero_stage", [0, 2])
def test_trainer_lowers_the_loss_on_a_fixed_batch(zero_stage):
    cfg = small_cfg(zero_stage=zero_stage, lr=3e-3)
    trainer = trainer_for(cfg, seed=0)
    batch = fixed_batch(cfg)
    metrics = [trainer.step(batch, BC) for _ in range(20)]
    assert metrics[-1]["loss"] < 0.5 * metrics[0]["loss"]
    assert all(math.isfinite(m["grad_norm"]) and m["grad_norm"] > 0 for m in metrics)
    assert {"mse_accel", "mse_curvature"} <= metrics[0].keys()


def test_checkpoint_restores_weights_optimiser_and_client_state(tmp_path):
    cfg = small_cfg(zero_stage=1)
    batch = fixed_batch(cfg)
    trainer = trainer_for(cfg, seed=0)
    for _ in range(3):
        trainer.step(batch, BC)
    path = trainer.save(tmp_path, {"step": 3, "version": 1})
    assert path.is_dir() and (tmp_path / "latest").read_text() == path.name

    restored = trainer_for(cfg, seed=1)  # different initial weights, overwritten by the load
    assert restored.load(tmp_path) == {"step": 3, "version": 1}
    expected, actual = trainer.named_weights(), restored.named_weights()
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    # the optimiser moments came back too: one more step keeps the two identical
    trainer.step(batch, BC)
    restored.step(batch, BC)
    expected, actual = trainer.named_weights(), restored.named_weights()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)


def test_old_checkpoints_are_pruned(tmp_path):
    cfg = small_cfg(keep_checkpoints=2)
    batch = fixed_batch(cfg)
    trainer = trainer_for(cfg, seed=0)
    for step in range(4):
        trainer.step(batch, BC)
        trainer.save(tmp_path, {"step": step + 1, "version": 0})
    assert sorted(p.name for p in tmp_path.glob("step*")) == ["step00000003", "step00000004"]
    assert trainer_for(cfg, seed=1).load(tmp_path) == {"step": 4, "version": 0}


def test_cosine_schedule_warms_up_decays_and_resumes_where_it_stopped(tmp_path):
    cfg = small_cfg(lr=1e-3, lr_schedule="cosine", warmup_steps=4, min_lr_ratio=0.1, steps=12)
    batch = fixed_batch(cfg)
    trainer = trainer_for(cfg, seed=0)
    lrs = [trainer.step(batch, BC)["lr"] for _ in range(12)]
    peak = lrs.index(max(lrs))
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1 : peak + 1])), lrs  # warm-up rises
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1 :])), lrs  # then decays
    assert max(lrs) == pytest.approx(1e-3, rel=0.05) and lrs[-1] == pytest.approx(1e-4, rel=0.1)

    # the schedule's position is part of the checkpoint
    again = trainer_for(cfg, seed=0)
    for _ in range(6):
        again.step(batch, BC)
    again.save(tmp_path, {"step": 6, "version": 0})
    resumed = trainer_for(cfg, seed=1)
    resumed.load(tmp_path)
    assert resumed.step(batch, BC)["lr"] == pytest.approx(lrs[6])


def test_load_without_a_checkpoint_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no DeepSpeed checkpoint"):
        trainer_for(small_cfg(), seed=0).load(tmp_path)


def test_a_lock_left_by_a_killed_extension_build_does_not_hang_the_next_engine():
    # torch waits for ever on this file; without the clean-up the test runs into its timeout
    lock = Path(_get_build_directory("deepspeed_shm_comm", False)) / "lock"
    lock.touch()
    try:
        hour_ago = time.time() - 3600
        os.utime(lock, (hour_ago, hour_ago))
        trainer_for(small_cfg(), seed=0).step(fixed_batch(small_cfg()), BC)
        assert not lock.exists()
    finally:
        lock.unlink(missing_ok=True)


def test_named_weights_load_strictly_into_a_replica():
    cfg = small_cfg(zero_stage=3)
    trainer = trainer_for(cfg, seed=0)
    trainer.step(fixed_batch(cfg), BC)
    named = trainer.named_weights()
    assert all(t.device.type == "cpu" and t.is_contiguous() and not t.requires_grad for t in named.values())
    replica = TorchPolicy(cfg.policy, cfg.sim, seed=5)
    replica.load_weights(named, version=1)
    assert all(torch.equal(named[k], v) for k, v in replica.named_weights().items())


def test_train_only_updates_the_named_modules_and_no_other():
    cfg = small_cfg(zero_stage=1, lr=3e-3, train_only=["head"])
    trainer = trainer_for(cfg, seed=0)
    before = trainer.named_weights()
    for _ in range(3):
        trainer.step(fixed_batch(cfg), BC)
    after = trainer.named_weights()
    changed = {k.split(".", 1)[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"head"}


def test_train_only_refuses_a_module_the_network_lacks():
    with pytest.raises(ValueError, match=r"\['expert'\], which the network lacks.*'encoder'"):
        trainer_for(small_cfg(train_only=["expert"]), seed=0)


def test_init_from_starts_the_network_from_a_runs_checkpoint(tmp_path):
    cfg = small_cfg()
    trained = build_model(cfg.policy, cfg.sim)
    with torch.no_grad():
        next(trained.parameters()).add_(1.0)  # unlike any fresh initialisation
    (tmp_path / POLICY_WEIGHTS).write_bytes(encode_tensors(trained.state_dict()))
    cfg.policy.init_from = str(tmp_path)
    started = build_model(cfg.policy, cfg.sim)
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in started.state_dict().items())
    other = cfg.model_copy(deep=True)
    other.policy.hidden = 16  # another network: refused with the mismatch, not half-loaded
    with pytest.raises(ValueError, match="does not fit the configured network"):
        build_model(other.policy, other.sim)
    # a checkpoint of the run that started there loads without its starting point
    run = tmp_path / "stage2"
    (run / "checkpoints" / "step00000001").mkdir(parents=True)
    (run / "checkpoints" / "step00000001" / POLICY_WEIGHTS).write_bytes(encode_tensors(trained.state_dict()))
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    (tmp_path / POLICY_WEIGHTS).unlink()
    loaded = make_policy(str(run), cfg)
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in loaded.named_weights().items())


# --- LearnerLoop -----------------------------------------------------------------------


def test_learner_loop_trains_acks_publishes_checkpoints_and_resumes(redis_url, tmp_path):
    namespace = "test:learner-loop"
    run_dir = tmp_path / "run"
    cfg = small_cfg(steps=4, rollouts_per_step=2, publish_every=2, checkpoint_every=2)
    buffer = RolloutBuffer.from_url(redis_url, namespace, cfg.buffer, consumer="checker")
    records = real_records(cfg, 8)
    for episode, record in enumerate(records):
        record.episode = episode
    buffer.put(records)

    learner = LearnerLoop(cfg, run_dir, redis_url, namespace)
    try:
        initial = learner.initial_handle()
        assert initial.version == 0 and learner.initial_handle() is initial and learner.first_episode() == 0
        first = learner.train(3)
        assert (first["step"], first["version"], first["handle"].version, first["done"]) == (3, 1, 1, False)
        second = learner.train(10)  # stops at learner.steps
        assert (second["step"], second["version"], second["handle"].version, second["done"]) == (4, 2, 2, True)
        assert learner.train(1)["step"] == 4
        # steps 1-2 ran at version 0, steps 3-4 at version 1, all on version-0 records
        assert second["staleness_max"] == 1 and second["staleness_mean"] == 1.0
        assert first["staleness_mean"] == pytest.approx(1 / 3)
        assert math.isfinite(second["loss"]) and second["samples_per_s"] > 0 and second["publish_ms"] > 0
        final_weights = learner.trainer.named_weights()
        published = fetch_weights(second["handle"])
        assert all(torch.equal(published[k], final_weights[k]) for k in final_weights)
    finally:
        learner.close()

    stats = buffer.stats()
    assert stats.acked == stats.consumed == 8 and stats.depth == 0 and stats.pending == 0
    _, messages = StatsChannel.from_url(redis_url, namespace, cfg.buffer.connect_timeout_s).read()
    steps = [m for m in messages if m["source"] == "learner"]
    assert [m["step"] for m in steps] == [1, 2, 3, 4] and [m["version"] for m in steps] == [0, 1, 1, 2]
    expected_fields = {"loss", "steps_per_s", "samples", "staleness_mean", "staleness_max", "publish_ms", "time"}
    assert expected_fields <= steps[0].keys()
    assert steps[0]["samples"] == 2 * cfg.actors.rollout_steps
    assert any((run_dir / "tb").glob("events.out.tfevents*"))
    # checkpoint_every=2
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("step*")) == ["step00000002", "step00000004"]

    resumed_cfg = small_cfg(steps=6, rollouts_per_step=2, publish_every=2, checkpoint_every=2)
    resumed = LearnerLoop(resumed_cfg, run_dir, redis_url, namespace, resume_from=run_dir)
    try:
        assert (resumed.step, resumed.version) == (4, 2)
        assert resumed.first_episode() == 8  # one past the last episode it trained on: the actors go on from there
        handle = resumed.initial_handle()
        assert handle.version == 2  # the checkpoint's weights, under the version they were published as
        restored = fetch_weights(handle)
        assert all(torch.equal(restored[k], final_weights[k]) for k in final_weights)

        # version-0 records are two versions behind a version-2 learner: dropped and counted
        buffer.put(synthetic_records(resumed_cfg, 3, version=0) + synthetic_records(resumed_cfg, 4, version=2))
        result = resumed.train(5)
        assert (result["step"], result["version"], result["done"]) == (6, 3, True)
        assert result["staleness_max"] == 0
        stats = buffer.stats()
        assert stats.dropped_stale == 3 and stats.dropped_staleness == 6
        assert stats.acked == stats.consumed == 12 and stats.depth == 0
        assert stats.produced == stats.acked + stats.dropped_stale + stats.dead_lettered + stats.depth
    finally:
        resumed.close()


def test_the_last_step_publishes_so_the_final_checkpoint_has_a_version(redis_url, tmp_path):
    cfg = small_cfg(steps=3, rollouts_per_step=1, publish_every=2, checkpoint_every=2)
    namespace = "test:final-publish"
    RolloutBuffer.from_url(redis_url, namespace, cfg.buffer).put(synthetic_records(cfg, 3, version=0))
    learner = LearnerLoop(cfg, tmp_path, redis_url, namespace)
    try:
        result = learner.train(3)
        assert (result["step"], result["version"], result["handle"].version) == (3, 2, 2)
        published = fetch_weights(result["handle"])
        final = learner.trainer.named_weights()
        assert all(torch.equal(published[k], final[k]) for k in final)
    finally:
        learner.close()


def test_shuffled_cloning_with_a_weight_average_publishes_and_resumes_the_average(redis_url, tmp_path):
    namespace = "test:shuffle-average"
    cfg = small_cfg(steps=4, rollouts_per_step=2, publish_every=4, checkpoint_every=4,
                    shuffle_decisions=24, ema_decay=0.9)  # fmt: skip
    buffer = RolloutBuffer.from_url(redis_url, namespace, cfg.buffer, consumer="checker")
    buffer.put(synthetic_records(cfg, 8, version=0) + synthetic_records(cfg, 2, version=0, seed=1))
    learner = LearnerLoop(cfg, tmp_path, redis_url, namespace)
    try:
        result = learner.train(4)
        assert result["done"] and learner.pool.size == 24  # 32 decisions arrived; the oldest made room
        average, trained = learner.average.weights(), learner.trainer.named_weights()
        assert any(not torch.equal(average[k], trained[k]) for k in trained)  # the average lags the raw weights
        published = fetch_weights(result["handle"])
        kept = decode_tensors((tmp_path / "checkpoints" / "step00000004" / POLICY_WEIGHTS).read_bytes())
        assert all(torch.equal(published[k], average[k]) and torch.equal(kept[k], average[k]) for k in average)
    finally:
        learner.close()
    assert buffer.stats().acked == 8  # every record taken was trained on and acked

    resumed_cfg = cfg.model_copy(deep=True)
    resumed_cfg.learner.steps = 5
    resumed = LearnerLoop(resumed_cfg, tmp_path, redis_url, namespace, resume_from=tmp_path)
    try:
        assert resumed.average.updates == 4 and resumed.pool.size == 0  # the pool refills; the average resumes
        restored = fetch_weights(resumed.initial_handle())
        assert all(torch.equal(restored[k], average[k]) for k in average)
        resumed.train(1)
        assert resumed.pool.size == 2 * cfg.actors.rollout_steps and resumed.average.updates == 5
    finally:
        resumed.close()


def test_an_average_turned_on_at_resume_starts_from_the_resumed_weights(redis_url, tmp_path):
    namespace = "test:average-at-resume"
    cfg = small_cfg(steps=2, rollouts_per_step=1, publish_every=2, checkpoint_every=2)
    RolloutBuffer.from_url(redis_url, namespace, cfg.buffer).put(synthetic_records(cfg, 2, version=0))
    learner = LearnerLoop(cfg, tmp_path, redis_url, namespace)
    try:
        learner.train(2)
        trained = learner.trainer.named_weights()
    finally:
        learner.close()
    resumed_cfg = small_cfg(steps=3, rollouts_per_step=1, publish_every=2, checkpoint_every=2, ema_decay=0.9)
    resumed = LearnerLoop(resumed_cfg, tmp_path, redis_url, namespace, resume_from=tmp_path)
    try:
        average = resumed.acting_weights()
        assert resumed.average.updates == 0 and all(torch.equal(average[k], trained[k]) for k in trained)
    finally:
        resumed.close()


def test_a_weight_average_refuses_partitioned_parameters(redis_url, tmp_path):
    cfg = small_cfg(ema_decay=0.9, zero_stage=3)
    with pytest.raises(ValueError, match="ema_decay needs zero_stage < 3"):
        LearnerLoop(cfg, tmp_path, redis_url, "test:average-zero3")


def test_a_learner_with_no_data_fails_clearly(redis_url, tmp_path):
    cfg = small_cfg(steps=2, rollouts_per_step=2)
    namespace = "test:starved"
    RolloutBuffer.from_url(redis_url, namespace, cfg.buffer).put(synthetic_records(cfg, 1, version=0))
    learner = LearnerLoop(cfg, tmp_path, redis_url, namespace)
    try:
        with pytest.raises(LearnerStarved, match="have 1 of the 2 records"):
            learner.train(1)
        assert learner.step == 0
    finally:
        learner.close()
    stats = RolloutBuffer.from_url(redis_url, namespace, cfg.buffer, consumer="checker").stats()
    assert stats.acked == 0 and stats.pending == 1  # not trained on, so not acked: it will be handed out again


def test_simulated_learner_takes_and_acks_without_training(redis_url):
    cfg = small_cfg(steps=3, rollouts_per_step=2)
    namespace = "test:simulated"
    buffer = RolloutBuffer.from_url(redis_url, namespace, cfg.buffer, consumer="checker")
    buffer.put(synthetic_records(cfg, 6, version=0))
    learner = SimulatedLearner(cfg, redis_url, namespace)
    try:
        handle = learner.initial_handle()
        torch.manual_seed(cfg.seed)
        seeded = build_model(cfg.policy, cfg.sim).state_dict()
        assert handle.version == 0 and all(torch.equal(fetch_weights(handle)[k], v) for k, v in seeded.items())
        result = learner.train(10)
    finally:
        learner.close()
    assert (result["step"], result["version"], result["handle"], result["done"]) == (3, 0, None, True)
    assert math.isnan(result["loss"]) and result["samples_per_s"] > 0
    assert buffer.stats().acked == 6


# --- benchmark --------------------------------------------------------------------------


def test_learner_bench_compares_deepspeed_with_plain_torch():
    cfg = small_cfg(rollouts_per_step=2)
    result = run_learner_bench(cfg, steps=3)
    deepspeed_row, torch_row = result["rows"]
    assert deepspeed_row["trainer"] == "deepspeed-zero0" and torch_row["trainer"] == "torch"
    assert deepspeed_row.keys() == torch_row.keys()
    assert all(row["samples_per_s"] > 0 and row["steps_per_s"] > 0 for row in result["rows"])
    assert result["samples_per_step"] == 2 * cfg.actors.rollout_steps
    assert result["deepspeed_over_torch"] == deepspeed_row["samples_per_s"] / torch_row["samples_per_s"]
    # same model, data, optimiser and clipping: the engines must agree on the numbers
    assert deepspeed_row["final_loss"] == pytest.approx(torch_row["final_loss"], rel=1e-4)


def test_learner_bench_builds_batches_for_the_minisim_bev():
    """minisim's BEV has its own channels and frame history; the bench's batches must match the model."""
    cfg = small_cfg(rollouts_per_step=1)
    cfg.sim.kind, cfg.sim.cameras = "minisim", ["bev"]
    result = run_learner_bench(cfg, steps=2)
    assert all(row["samples_per_s"] > 0 for row in result["rows"])
