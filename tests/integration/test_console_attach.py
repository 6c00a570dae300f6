"""`redux console --redis URL` follows a job's stats stream from another process."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from redux.buffer.codec import RolloutRecord
from redux.buffer.connection import connect
from redux.buffer.redis_server import EmbeddedRedis
from redux.buffer.rollout_buffer import RolloutBuffer
from redux.buffer.stats_channel import StatsChannel
from redux.config import BufferConfig

pytestmark = pytest.mark.integration


def test_console_attaches_to_the_most_recent_run(tmp_path):
    with EmbeddedRedis(tmp_path / "redis", append_only=False) as redis:
        client = connect(redis.url, 5.0)
        StatsChannel(client, "redux:older").publish({"source": "learner", "step": 1, "version": 0, "time": time.time()})
        namespace = "redux:live-run"
        buffer = RolloutBuffer(client, namespace, BufferConfig())
        buffer.put([RolloutRecord(0, 0, 0, 0, 3, time.time(), {"reward": np.zeros(4, np.float32)}, {})])
        channel = StatsChannel(client, namespace)
        channel.publish({"source": "actor", "actor": 0, "version": 3, "env_steps": 64, "rollouts": 1, "time": time.time()})
        channel.publish({"source": "learner", "step": 9, "steps_total": 40, "version": 3, "loss": 0.25, "steps_per_s": 2.0, "time": time.time()})

        out = subprocess.run(
            [sys.executable, "-m", "redux", "console", "--redis", redis.url, "--seconds", "2"],
            capture_output=True, text=True, timeout=60,
        )
    assert out.returncode == 0, out.stderr
    assert "redux console redux:live-run" in out.stdout
    assert "produced=1" in out.stdout and "step=9/40" in out.stdout and "actors=[0:v3]" in out.stdout
    assert "loss=0.25" in out.stdout


def test_console_names_an_unreachable_redis(tmp_path):
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "redux", "console", "--redis", "redis://:pw@127.0.0.1:9/0", "--seconds", "1"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 1
    assert "127.0.0.1:9" in out.stderr and "pw" not in out.stderr
    assert time.monotonic() - started < 20
