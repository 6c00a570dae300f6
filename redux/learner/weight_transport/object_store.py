"""Weights through Ray's object store: a header and flat byte buckets, one ``ray.put`` each.

The buckets (``buckets.py``) are built one at a time and shipped before the next, so
the learner never holds a second full copy of the model; a replica on the same node
maps them from shared memory and views its tensors in place, so loading costs one copy
(into its module). Payloads are pinned while any handle to them is alive, so old
versions disappear once the learner and every replica have dropped their handles. The
ObjectRefs sit inside the handle rather than being call arguments themselves: Ray
resolves only top-level ObjectRef arguments, so a replica receives the handle, not the
bytes, and pays for the transfer only if it decides to fetch.
"""

from __future__ import annotations

from dataclasses import dataclass

import ray
import torch

from redux.config import LearnerConfig
from redux.learner.weight_transport.base import WeightHandle
from redux.learner.weight_transport.buckets import pack_buckets, unpack_buckets

NAME = "object_store"
DEFAULT_BUCKET_BYTES = LearnerConfig().weight_bucket_mb * 2**20


@dataclass(frozen=True)
class BucketRefs:
    """Where one version lies: its header (small, inline) and one ObjectRef per bucket."""

    header: bytes
    buckets: list[ray.ObjectRef]


class ObjectStoreTransport:
    def __init__(self, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        self.bucket_bytes = bucket_bytes

    def publish(self, named: dict[str, torch.Tensor], version: int) -> WeightHandle:
        header, buckets = pack_buckets(named, self.bucket_bytes)
        return WeightHandle(version, NAME, BucketRefs(header, [ray.put(bucket) for bucket in buckets]))

    @staticmethod
    def fetch(handle: WeightHandle) -> dict[str, torch.Tensor]:
        refs: BucketRefs = handle.locator
        return unpack_buckets(refs.header, ray.get(refs.buckets))
