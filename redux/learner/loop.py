"""The learner: rollout records in, behaviour-cloning steps, versioned weights out.

A plain class so that a notebook can drive it; the Ray glue wraps it in an actor.
The driver calls :meth:`LearnerLoop.initial_handle` once to hand replicas the
weights they start from, then :meth:`LearnerLoop.train` in chunks, forwarding each
new handle to the replicas.

Delivery is at-least-once: a record is acked only after the optimiser step that used
it, so a learner that dies mid-step loses nothing (the buffer hands the record out
again). Weight version k is the k-th publish; version 0 is the initial weights.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from redux.buffer.codec import encode_tensors
from redux.config import RunConfig
from redux.learner.batch import collate
from redux.learner.decision_pool import DecisionPool
from redux.learner.deepspeed_trainer import DeepSpeedTrainer
from redux.learner.intake import gather_rollouts, staleness
from redux.learner.objectives import make_objective
from redux.learner.endpoints import LearnerEndpoints
from redux.learner.weight_average import WeightAverage
from redux.learner.weight_transport import WeightHandle
from redux.policy import build_model
from redux.policy.loading import POLICY_TOKENIZER, POLICY_WEIGHTS

log = logging.getLogger(__name__)


def resumed_episode(state: dict[str, Any]) -> int:
    """Where a resumed run's actors start their scene order. Checkpoints written before it was
    kept do not say; those runs start the order again, so they say so rather than quietly
    training on the scenes of their first part twice."""
    if "next_episode" not in state:
        log.warning(
            "checkpoint of step %s does not record its last trained episode (written before it was kept): "
            "the actors start the scene order again and replay the scenes the run trained on",
            state.get("step"),
        )
        return 0
    return int(state["next_episode"])


class LearnerLoop:
    def __init__(
        self, cfg: RunConfig, run_dir: Path, redis_url: str, namespace: str, resume_from: Path | None = None
    ):
        torch.set_num_threads(cfg.learner.torch_threads)
        torch.manual_seed(cfg.seed)  # the same seed gives replicas built from cfg the same initial weights
        self.cfg = cfg
        self.checkpoint_dir = Path(run_dir) / "checkpoints"
        self.objective = make_objective(cfg.learner)
        self.trainer = DeepSpeedTrainer(build_model(cfg.policy, cfg.sim), cfg.learner)
        self.step = 0
        self.version = 0
        # one past the latest episode a trained record came from: where a resumed run's actors go on
        self.next_episode = 0
        self.pool = None
        if cfg.learner.shuffle_decisions:
            step_decisions = cfg.learner.rollouts_per_step * cfg.actors.rollout_steps
            self.pool = DecisionPool(cfg.learner.shuffle_decisions, step_decisions, cfg.seed)
        state = {}
        if resume_from is not None:
            state = self.trainer.load(Path(resume_from) / "checkpoints")
            self.step, self.version = state["step"], state["version"]
            self.next_episode = resumed_episode(state)
        # after the load: a run that turns the average on at resume averages from the weights it resumed
        self.average = self._weight_average()
        if self.average is not None and "weight_average" in state:
            self.average.load(state["weight_average"]["weights"], state["weight_average"]["updates"])

        self.endpoints = LearnerEndpoints.open(cfg, redis_url, namespace, "learner", Path(run_dir) / "tb")
        self.buffer, self.telemetry = self.endpoints.buffer, self.endpoints.telemetry
        self._handle: WeightHandle | None = None
        self.namespace = namespace
        self._gpu_publisher = None  # policy.vllm.weight_transfer nccl/ipc: formed with the replicas at first publish

    def initial_handle(self) -> WeightHandle:
        """The current weights under the current version: v0 on a fresh run, the
        checkpoint's version on resume. Publishes them on the first call only."""
        if self._handle is None:
            self._handle = self._publish_as(self.version)
        return self._handle

    def first_episode(self) -> int:
        """Where the actors' scene order starts: 0 on a fresh run, after the resumed checkpoint's
        last trained episode on resume."""
        return self.next_episode

    def publish(self) -> WeightHandle:
        """The current weights as a new version."""
        self.version += 1
        self._handle = self._publish_as(self.version)
        return self._handle

    def train(self, num_steps: int) -> dict[str, Any]:
        """Up to ``num_steps`` optimiser steps, never past ``learner.steps`` in total.

        Raises LearnerStarved when no usable record arrives for ``learner.take_timeout_s``.
        """
        learner = self.cfg.learner
        self.telemetry.begin_call()
        handle = None
        for _ in range(min(num_steps, learner.steps - self.step)):
            start = time.monotonic()
            taken = gather_rollouts(self.buffer, learner.rollouts_per_step, self.version, learner.take_timeout_s)
            lags = staleness(taken, self.version)
            self.next_episode = max(self.next_episode, 1 + max(t.record.episode for t in taken))
            batch = collate([t.record for t in taken], self.objective.batch_keys)
            if self.pool is not None:
                self.pool.add(batch)
                batch = self.pool.sample(next(iter(batch.values())).shape[0])
            metrics = self.trainer.step(batch, self.objective)
            if self.average is not None:
                self.average.update(self.trainer.module)
            self.buffer.ack([t.id for t in taken])
            self.step += 1
            # the last step publishes too, so the final checkpoint's weights have a version
            if self.step % learner.publish_every == 0 or self.step >= learner.steps:
                handle = self.publish()
            # After the publish, so that a checkpoint's version names its weights.
            if self.step % learner.checkpoint_every == 0 or self.step >= learner.steps:
                self.checkpoint()
            samples = next(iter(batch.values())).shape[0]
            self.telemetry.record_step(self.step, self.version, start, samples, lags, metrics)
        return self.telemetry.summary(self.step, self.version, handle, done=self.step >= learner.steps)

    def checkpoint(self) -> Path:
        """DeepSpeed's checkpoint (to resume training) plus the bare policy weights (to act)."""
        state: dict[str, Any] = {"step": self.step, "version": self.version, "next_episode": self.next_episode}
        if self.average is not None:  # the raw weights resume training; the average resumes with them
            state["weight_average"] = {"weights": self.average.average, "updates": self.average.updates}
        path = self.trainer.save(self.checkpoint_dir, state)
        (path / POLICY_WEIGHTS).write_bytes(encode_tensors(self.acting_weights()))
        tokenizer = getattr(self.trainer.module, "tokenizer", None)
        if tokenizer is not None:  # a checkpoint carries the ids its embeddings were trained with
            tokenizer.save_pretrained(str(path / POLICY_TOKENIZER))
        return path

    def acting_weights(self) -> dict[str, torch.Tensor]:
        """What replicas act with and checkpoints keep for acting: the weight average when
        ``learner.ema_decay`` is set, else the trained weights."""
        return self.average.weights() if self.average is not None else self.trainer.named_weights()

    def close(self) -> None:
        if self._gpu_publisher is not None:
            self._gpu_publisher.close()
        self.endpoints.close()

    def _publish_as(self, version: int) -> WeightHandle:
        start = time.perf_counter()
        handle = self.endpoints.transport.publish(self.acting_weights(), version)
        if version > 0 and self._gpu_transfer():
            # the torch side of each replica still loads the handle (vision, re-prefill, flow)
            self._served_publisher().publish(version)
        self.telemetry.record_publish((time.perf_counter() - start) * 1e3)
        return handle

    def _weight_average(self) -> WeightAverage | None:
        if not self.cfg.learner.ema_decay:
            return None
        if self.cfg.learner.zero_stage == 3 or self._gpu_transfer():
            # both hand replicas the module's own (partitioned or device) parameters, not a copy we could average
            raise ValueError("learner.ema_decay needs zero_stage < 3 and policy.vllm.weight_transfer: in_process")
        return WeightAverage(self.trainer.module, self.cfg.learner.ema_decay)

    def _gpu_transfer(self) -> bool:
        policy = self.cfg.policy
        return policy.engine == "vllm" and policy.vllm.weight_transfer != "in_process"

    def _served_publisher(self):
        """The learner's end of the GPU transfer group; the replicas join it when it forms,
        so it is made at the first publish after version 0, when they exist."""
        if self._gpu_publisher is None:
            import deepspeed
            import ray

            from redux.actors.replica_pool import replica_name
            from redux.policy.vllm.gpu_weight_transfer import GpuWeightPublisher

            replicas = [ray.get_actor(replica_name(self.namespace, i)) for i in range(self.cfg.policy.vllm.replicas)]
            self._gpu_publisher = GpuWeightPublisher(
                self.trainer.module, self.cfg.policy.vllm, replicas,
                gather=deepspeed.zero.GatheredParameters,  # whole parameters under ZeRO-3, a no-op otherwise
            )  # fmt: skip
        return self._gpu_publisher
