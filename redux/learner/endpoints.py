"""What a learner process holds open in Redis: the buffer it consumes, the stats it
publishes, and the transport its weights leave by."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import redis

from redux.buffer.connection import connect
from redux.buffer.rollout_buffer import RolloutBuffer
from redux.buffer.stats_channel import StatsChannel
from redux.config import RunConfig
from redux.learner.telemetry import LearnerTelemetry
from redux.learner.weight_transport import WeightTransport, make_transport


@dataclass
class LearnerEndpoints:
    client: redis.Redis
    buffer: RolloutBuffer
    telemetry: LearnerTelemetry
    transport: WeightTransport

    @classmethod
    def open(
        cls, cfg: RunConfig, redis_url: str, namespace: str, role: str, tensorboard_dir: Path | None
    ) -> LearnerEndpoints:
        client = connect(redis_url, cfg.buffer.connect_timeout_s)
        # One consumer name per process: a restarted learner must not pose as its
        # predecessor, whose un-acked records the buffer reclaims once they idle.
        buffer = RolloutBuffer(client, namespace, cfg.buffer, consumer=f"{role}-{os.getpid()}")
        telemetry = LearnerTelemetry(StatsChannel(client, namespace), tensorboard_dir, cfg.learner.steps)
        transport = make_transport(
            cfg.learner.weight_transport,
            redis_url=redis_url,
            namespace=namespace,
            connect_timeout_s=cfg.buffer.connect_timeout_s,
            bucket_bytes=cfg.learner.weight_bucket_mb * 2**20,
        )
        return cls(client, buffer, telemetry, transport)

    def close(self) -> None:
        self.telemetry.close()
        self.client.close()
