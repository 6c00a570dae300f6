"""The Redis-backed rollout buffer: record codec, streams, and an embedded redis-server."""

from redux.buffer.codec import (
    SCHEMA_VERSION,
    RecordDecodeError,
    RolloutRecord,
    decode_message,
    decode_record,
    decode_tensors,
    encode_message,
    encode_record,
    encode_tensors,
)
from redux.buffer.connection import RedisUnreachable, connect, redact
from redux.buffer.redis_server import EmbeddedRedis, EmbeddedRedisError
from redux.buffer.rollout_buffer import BufferFullTimeout, BufferStats, RolloutBuffer, Taken, is_stale
from redux.buffer.stats_channel import StatsChannel

__all__ = [
    "SCHEMA_VERSION",
    "BufferFullTimeout",
    "BufferStats",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "RecordDecodeError",
    "RedisUnreachable",
    "RolloutBuffer",
    "RolloutRecord",
    "StatsChannel",
    "Taken",
    "connect",
    "decode_message",
    "decode_record",
    "decode_tensors",
    "encode_message",
    "encode_record",
    "encode_tensors",
    "is_stale",
    "redact",
]
