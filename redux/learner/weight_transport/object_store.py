"""Weights through Ray's object store: one ``ray.put`` per version.

The payload lives in the publishing process's object store (shared memory on its
node) and is pinned while any handle to it is alive, so old versions disappear once
the learner and every replica have dropped their handles. The ObjectRef sits inside
the handle rather than being passed as a call argument itself: Ray resolves only
top-level ObjectRef arguments, so a replica receives the handle, not the bytes, and
pays for the transfer only if it decides to fetch.
"""

from __future__ import annotations

import ray
import torch

from redux.buffer.codec import decode_tensors, encode_tensors
from redux.learner.weight_transport.base import WeightHandle

NAME = "object_store"


class ObjectStoreTransport:
    def publish(self, named: dict[str, torch.Tensor], version: int) -> WeightHandle:
        return WeightHandle(version, NAME, ray.put(encode_tensors(named)))

    @staticmethod
    def fetch(handle: WeightHandle) -> dict[str, torch.Tensor]:
        return decode_tensors(ray.get(handle.locator))
