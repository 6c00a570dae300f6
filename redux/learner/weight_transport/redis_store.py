"""Weights through Redis: one key per version, the latest two kept.

Keys: ``{namespace}:weights:{version}`` holds the payload, ``{namespace}:weights:latest``
the newest version, and ``{namespace}:weights:versions`` indexes what is stored, so a
resumed learner (a new process) still evicts what its predecessor published. Two
versions stay because a replica handed version k may still be fetching it when k+1
lands. Works across machines without Ray, at the cost of the payload passing through
the Redis server, which caps one value at 512 MB (``proto-max-bulk-len``): models
bigger than that need the object store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis
import torch

from redux.buffer.codec import decode_tensors, encode_tensors
from redux.buffer.connection import connect, redact
from redux.learner.weight_transport.base import WeightHandle

NAME = "redis"
KEPT_VERSIONS = 2


class WeightVersionEvicted(LookupError):
    """The handle's version was replaced twice before it was fetched: fetch the latest instead."""


@dataclass(frozen=True)
class RedisLocator:
    # The URL may carry the password; keep it out of reprs (handles end up in logs).
    url: str = field(repr=False)
    key: str
    connect_timeout_s: float


# One client per URL per process: replicas fetch every few steps and a connection
# handshake (with AUTH) would cost more than a small model's payload.
_clients: dict[str, redis.Redis] = {}


def _client(url: str, connect_timeout_s: float) -> redis.Redis:
    if url not in _clients:
        _clients[url] = connect(url, connect_timeout_s)
    return _clients[url]


class RedisTransport:
    def __init__(self, url: str, namespace: str, connect_timeout_s: float):
        self._url = url
        self._prefix = f"{namespace}:weights"
        self._connect_timeout_s = connect_timeout_s

    def publish(self, named: dict[str, torch.Tensor], version: int) -> WeightHandle:
        key = f"{self._prefix}:{version}"
        index = f"{self._prefix}:versions"  # a sorted set: republishing a version (on resume) adds no duplicate
        client = _client(self._url, self._connect_timeout_s)
        stored = {int(v) for v in client.zrange(index, 0, -1)} | {version}
        evicted = sorted(stored)[:-KEPT_VERSIONS]
        pipe = client.pipeline(transaction=True)
        pipe.set(key, encode_tensors(named))
        pipe.set(f"{self._prefix}:latest", version)
        pipe.zadd(index, {str(version): version})
        if evicted:
            pipe.zrem(index, *(str(v) for v in evicted))
            pipe.delete(*(f"{self._prefix}:{v}" for v in evicted))
        pipe.execute()
        return WeightHandle(version, NAME, RedisLocator(self._url, key, self._connect_timeout_s))

    @staticmethod
    def fetch(handle: WeightHandle) -> dict[str, torch.Tensor]:
        locator: RedisLocator = handle.locator
        payload = _client(locator.url, locator.connect_timeout_s).get(locator.key)
        if payload is None:
            raise WeightVersionEvicted(
                f"weights v{handle.version} are no longer in Redis at {redact(locator.url)} (key {locator.key!r}); "
                f"only the latest {KEPT_VERSIONS} versions are kept"
            )
        return decode_tensors(payload)
