"""A learner that takes and acks records and trains nothing.

With it in place of :class:`~redux.learner.loop.LearnerLoop` the rollout side runs
unthrottled by training, so its throughput can be measured alone (how actor counts
get tuned). It reports the same stats messages and the same ``train`` summary, with
NaN losses, and never publishes beyond the initial weights. It has no run directory,
hence no TensorBoard events: benchmarks read its numbers directly.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from redux.config import RunConfig
from redux.learner.intake import gather_rollouts, staleness
from redux.learner.endpoints import LearnerEndpoints
from redux.learner.weight_transport import WeightHandle
from redux.policy import build_model


class SimulatedLearner:
    def __init__(self, cfg: RunConfig, redis_url: str, namespace: str):
        self.cfg = cfg
        self.step = 0
        self.version = 0
        self.endpoints = LearnerEndpoints.open(cfg, redis_url, namespace, "simulated-learner", tensorboard_dir=None)
        self.buffer, self.telemetry = self.endpoints.buffer, self.endpoints.telemetry
        self._handle: WeightHandle | None = None

    def initial_handle(self) -> WeightHandle:
        """Version 0: the seeded initial weights, so replicas all act with the same policy."""
        if self._handle is None:
            torch.manual_seed(self.cfg.seed)
            model = build_model(self.cfg.policy, self.cfg.sim)
            start = time.perf_counter()
            self._handle = self.endpoints.transport.publish(model.state_dict(), self.version)
            self.telemetry.record_publish((time.perf_counter() - start) * 1e3)
        return self._handle

    def train(self, num_steps: int) -> dict[str, Any]:
        learner = self.cfg.learner
        self.telemetry.begin_call()
        for _ in range(min(num_steps, learner.steps - self.step)):
            start = time.monotonic()
            taken = gather_rollouts(self.buffer, learner.rollouts_per_step, self.version, learner.take_timeout_s)
            self.buffer.ack([t.id for t in taken])
            self.step += 1
            samples = sum(t.record.num_steps for t in taken)
            self.telemetry.record_step(self.step, self.version, start, samples, staleness(taken, self.version), {})
        return self.telemetry.summary(self.step, self.version, None, done=self.step >= learner.steps)

    def close(self) -> None:
        self.endpoints.close()
