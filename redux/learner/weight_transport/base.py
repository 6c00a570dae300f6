"""How versioned weights travel from the learner to policy replicas.

The learner publishes a state_dict under a version and gets a small handle back;
the handle is what crosses process boundaries (Ray calls, messages) and a replica
turns it into tensors with :func:`fetch_weights` only when it is behind. Payloads are
always data (:func:`redux.buffer.codec.encode_tensors` bytes, or the flat buckets of
``buckets.py``), never pickles: a replica must not run code it receives. One file per
backend, chosen by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch


@dataclass(frozen=True)
class WeightHandle:
    """Where version ``version`` of the weights can be fetched; small and picklable.

    ``transport`` names the backend that published it and ``locator`` is that
    backend's address for the payload (see each backend's module).
    """

    version: int
    transport: str
    locator: Any


class WeightTransport(Protocol):
    def publish(self, named: dict[str, torch.Tensor], version: int) -> WeightHandle: ...

    @staticmethod
    def fetch(handle: WeightHandle) -> dict[str, torch.Tensor]:
        """Receiver side: needs nothing but the handle, so any process can call it."""
        ...


def make_transport(
    name: str, *, redis_url: str, namespace: str, connect_timeout_s: float, bucket_bytes: int | None = None
) -> WeightTransport:
    """The publisher for ``learner.weight_transport``; it takes what its backend needs."""
    if name == "object_store":
        from redux.learner.weight_transport.object_store import DEFAULT_BUCKET_BYTES, ObjectStoreTransport

        return ObjectStoreTransport(bucket_bytes or DEFAULT_BUCKET_BYTES)
    if name == "redis":
        from redux.learner.weight_transport.redis_store import RedisTransport

        return RedisTransport(redis_url, namespace, connect_timeout_s)
    raise ValueError(f"unknown weight transport {name!r}")


def fetch_weights(handle: WeightHandle) -> dict[str, torch.Tensor]:
    """The tensors a handle points at, whichever backend published them."""
    if handle.transport == "object_store":
        from redux.learner.weight_transport.object_store import ObjectStoreTransport

        return ObjectStoreTransport.fetch(handle)
    if handle.transport == "redis":
        from redux.learner.weight_transport.redis_store import RedisTransport

        return RedisTransport.fetch(handle)
    raise ValueError(f"weight handle v{handle.version} names unknown transport {handle.transport!r}")
