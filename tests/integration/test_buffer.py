"""RolloutBuffer and StatsChannel against a real redis-server: capacity, at-least-once
delivery across processes, dead letters, staleness, and the counters invariant."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest
import redis

from redux.buffer import (
    BufferFullTimeout,
    BufferStats,
    EmbeddedRedis,
    RolloutBuffer,
    RolloutRecord,
    StatsChannel,
    connect,
    encode_record,
    is_stale,
)
from redux.config import BufferConfig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedRedis:
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), append_only=False) as embedded:
        yield embedded


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def make_buffer(server: EmbeddedRedis, namespace: str, consumer: str = "learner-0", **cfg) -> RolloutBuffer:
    return RolloutBuffer.from_url(server.url, namespace, BufferConfig(**cfg), consumer=consumer)


def make_record(episode: int, weight_version: int = 0, actor_id: int = 0) -> RolloutRecord:
    steps = 2
    return RolloutRecord(
        actor_id=actor_id,
        session=0,
        episode=episode,
        step_start=0,
        weight_version=weight_version,
        created_s=time.time(),
        tensors={
            "bev": np.full((steps, 3, 8, 8), episode % 256, np.uint8),
            "ego_history": np.full((steps, 16, 3), episode, np.float32),
            "target_actions": np.zeros((steps, 64, 2), np.float32),
        },
        scalars={"reward": float(episode), "done": False},
    )


def assert_balanced(stats: BufferStats) -> None:
    assert stats.produced == stats.acked + stats.dead_lettered + stats.dropped_stale + stats.depth, stats


def spawn_python(code: str, *args: str, url: str) -> subprocess.Popen[str]:
    # The URL carries the password: pass it in the environment, not on the command line.
    env = {**os.environ, "REDUX_TEST_REDIS_URL": url}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, text=True)


def test_is_stale_compares_version_gap_with_the_limit() -> None:
    assert not is_stale(record_version=5, current_version=5, max_staleness=0)
    assert is_stale(record_version=4, current_version=5, max_staleness=0)
    assert not is_stale(record_version=1, current_version=5, max_staleness=4)
    assert is_stale(record_version=0, current_version=5, max_staleness=4)
    # A learner restarted from an older checkpoint sees records "from the future": keep them.
    assert not is_stale(record_version=7, current_version=5, max_staleness=0)


def test_put_take_ack_round_trip(server: EmbeddedRedis, namespace: str) -> None:
    buffer = make_buffer(server, namespace)
    records = [make_record(episode) for episode in range(3)]
    ids = buffer.put(records)
    taken = buffer.take(10, current_version=0)
    assert [t.id for t in taken] == ids
    for got, want in zip(taken, records, strict=True):
        assert got.record.key == want.key and got.record.scalars == want.scalars
        for name, array in want.tensors.items():
            np.testing.assert_array_equal(got.record.tensors[name], array)
    stats = buffer.stats()
    assert (stats.depth, stats.pending, stats.produced, stats.consumed, stats.acked) == (3, 3, 3, 3, 0)
    assert buffer.ack(ids) == 3
    assert buffer.ack(ids) == 0, "a second ack of the same records must not count them again"
    stats = buffer.stats()
    assert (stats.depth, stats.pending, stats.acked) == (0, 0, 3)
    assert_balanced(stats)


def test_take_waits_at_most_block_ms(server: EmbeddedRedis, namespace: str) -> None:
    buffer = make_buffer(server, namespace, take_block_ms=200)
    started = time.monotonic()
    assert buffer.take(4, current_version=0) == []
    assert 0.2 <= time.monotonic() - started < 1.0
    started = time.monotonic()
    assert buffer.take(4, current_version=0, block_ms=0) == []
    assert time.monotonic() - started < 0.5


def test_put_on_a_full_buffer_times_out_without_dropping(server: EmbeddedRedis, namespace: str) -> None:
    buffer = make_buffer(server, namespace, capacity=2, put_timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(BufferFullTimeout, match="1 records were not written"):
        buffer.put([make_record(episode) for episode in range(3)])
    assert time.monotonic() - started >= 0.3
    with pytest.raises(BufferFullTimeout):
        buffer.put_raw(b"anything")
    stats = buffer.stats()
    assert (stats.produced, stats.depth) == (2, 2)
    assert_balanced(stats)


def test_an_ack_unblocks_a_waiting_put(server: EmbeddedRedis, namespace: str) -> None:
    buffer = make_buffer(server, namespace, capacity=2, put_timeout_s=10)
    buffer.put([make_record(0), make_record(1)])
    outcome: list[list[str]] = []

    def put_more_than_capacity() -> None:  # written as room frees up
        outcome.append(make_buffer(server, namespace, capacity=2).put([make_record(e) for e in range(2, 7)]))

    producer = threading.Thread(target=put_more_than_capacity)
    producer.start()
    episodes: list[int] = []
    deadline = time.monotonic() + 10
    while len(episodes) < 7 and time.monotonic() < deadline:
        assert buffer.stats().depth <= 2
        taken = buffer.take(1, current_version=0, block_ms=100)
        buffer.ack([t.id for t in taken])
        episodes += [t.record.episode for t in taken]
    producer.join(timeout=5)
    assert episodes == list(range(7))
    assert len(outcome) == 1 and len(outcome[0]) == 5
    assert_balanced(buffer.stats())


_CONSUME_ACK_ONE_AND_HANG = """
import os, sys, time
from redux.buffer import RolloutBuffer
from redux.config import BufferConfig
buffer = RolloutBuffer.from_url(os.environ["REDUX_TEST_REDIS_URL"], sys.argv[1], BufferConfig(), consumer="learner-a")
taken = buffer.take(3, current_version=0)
buffer.ack([taken[0].id])
print(" ".join(t.record.key for t in taken), flush=True)
time.sleep(120)
"""


def test_records_of_a_killed_consumer_are_reclaimed_and_trained_on(server: EmbeddedRedis, namespace: str) -> None:
    producer = make_buffer(server, namespace)
    keys = [record.key for record in (make_record(e) for e in range(4))]
    producer.put([make_record(e) for e in range(4)])
    consumer_a = spawn_python(_CONSUME_ACK_ONE_AND_HANG, namespace, url=server.url)
    try:
        taken_by_a = consumer_a.stdout.readline().split()
    finally:
        consumer_a.send_signal(signal.SIGKILL)
        consumer_a.wait()
    assert taken_by_a == keys[:3]

    # Not idle long enough yet: a second learner gets only the record nobody took.
    patient = make_buffer(server, namespace, consumer="learner-b", reclaim_idle_ms=60_000)
    first = patient.take(10, current_version=0, block_ms=0)
    assert [t.record.key for t in first] == keys[3:]
    patient.ack([t.id for t in first])

    time.sleep(0.3)
    eager = make_buffer(server, namespace, consumer="learner-b", reclaim_idle_ms=200)
    reclaimed = eager.take(10, current_version=0, block_ms=0)
    # The record A acked is gone for good; the two it never acked come back.
    assert [t.record.key for t in reclaimed] == keys[1:3]
    eager.ack([t.id for t in reclaimed])
    stats = eager.stats()
    assert (stats.reclaimed, stats.consumed, stats.acked, stats.depth, stats.pending) == (2, 6, 4, 0, 0)
    assert_balanced(stats)


_PRODUCE = """
import os, sys, time
import numpy as np
from redux.buffer import RolloutBuffer, RolloutRecord
from redux.config import BufferConfig
actor = int(sys.argv[2])
cfg = BufferConfig(capacity=4, put_timeout_s=30)
buffer = RolloutBuffer.from_url(os.environ["REDUX_TEST_REDIS_URL"], sys.argv[1], cfg)
for first in range(0, 12, 3):
    buffer.put([
        RolloutRecord(actor, 0, episode, 0, 0, time.time(), {"x": np.full((2, 4), episode, np.float32)})
        for episode in range(first, first + 3)
    ])
"""


def test_producer_processes_share_the_capacity(server: EmbeddedRedis, namespace: str) -> None:
    learner = make_buffer(server, namespace, capacity=4)
    producers = [spawn_python(_PRODUCE, namespace, str(actor), url=server.url) for actor in (1, 2)]
    keys: list[str] = []
    deadline = time.monotonic() + 30
    while len(keys) < 24 and time.monotonic() < deadline:
        assert learner.stats().depth <= 4
        taken = learner.take(4, current_version=0, block_ms=200)
        learner.ack([t.id for t in taken])
        keys += [t.record.key for t in taken]
    for producer in producers:
        assert producer.wait(timeout=10) == 0
    assert sorted(keys) == sorted(f"a{actor}-s0-e{episode}-t0" for actor in (1, 2) for episode in range(12))
    stats = learner.stats()
    assert (stats.produced, stats.acked, stats.depth) == (24, 24, 0)
    assert_balanced(stats)


def test_undecodable_entries_are_dead_lettered_and_good_ones_flow(server: EmbeddedRedis, namespace: str) -> None:
    buffer = make_buffer(server, namespace)
    wrong_schema = encode_record(make_record(9)).replace(b"\xa6schema\x01", b"\xa6schema\x02")
    buffer.put([make_record(0)])
    bad_ids = [buffer.put_raw(b"\x00 not msgpack"), buffer.put_raw(wrong_schema)]
    buffer.put([make_record(1)])

    taken = buffer.take(10, current_version=0)
    assert [t.record.episode for t in taken] == [0, 1]
    dead = connect(server.url, timeout_s=5).xrange(buffer.dead_letter_stream)
    assert [fields[b"source_id"].decode() for _, fields in dead] == bad_ids
    assert [fields[b"r"] for _, fields in dead] == [b"\x00 not msgpack", wrong_schema]
    assert b"not valid msgpack" in dead[0][1][b"error"] and b"schema version int 2" in dead[1][1][b"error"]
    stats = buffer.stats()
    assert (stats.dead_lettered, stats.pending, stats.depth) == (2, 2, 2)
    buffer.ack([t.id for t in taken])
    assert_balanced(buffer.stats())


def test_stale_records_are_dropped_and_counted(server: EmbeddedRedis, namespace: str) -> None:
    buffer = make_buffer(server, namespace, max_staleness=2)
    buffer.put([make_record(episode=v, weight_version=v) for v in range(6)])
    taken = buffer.take(10, current_version=5)
    assert [t.record.weight_version for t in taken] == [3, 4, 5]
    stats = buffer.stats()
    assert (stats.dropped_stale, stats.dropped_staleness, stats.depth) == (3, 5 + 4 + 3, 3)
    buffer.ack([t.id for t in taken])

    buffer.put([make_record(episode=6, weight_version=4)])
    assert buffer.take(10, current_version=5, max_staleness=0) == []
    stats = buffer.stats()
    assert (stats.dropped_stale, stats.consumed, stats.depth) == (4, 3, 0)
    assert_balanced(stats)


def test_a_client_that_decodes_replies_is_refused(server: EmbeddedRedis, namespace: str) -> None:
    with pytest.raises(ValueError, match="decode_responses=False"):
        RolloutBuffer(redis.Redis.from_url(server.url, decode_responses=True), namespace, BufferConfig())


def test_stats_channel_round_trip(server: EmbeddedRedis, namespace: str) -> None:
    publisher = StatsChannel.from_url(server.url, namespace, connect_timeout_s=5)
    console = StatsChannel.from_url(server.url, namespace, connect_timeout_s=5)
    messages = [{"actor": a, "steps_per_s": 10.5 * a, "phase": "rollout"} for a in range(3)]
    for message in messages:
        publisher.publish(message)
    last_id, received = console.read()
    assert received == messages

    connect(server.url, timeout_s=5).xadd(console.stream, {"m": b"\xc1"})
    publisher.publish({"actor": 3})
    last_id, received = console.read(last_id)
    assert received == [{"actor": 3}], "an undecodable message is skipped, the stream goes on"

    started = time.monotonic()
    assert console.read(last_id, block_ms=150) == (last_id, [])
    assert time.monotonic() - started >= 0.15
