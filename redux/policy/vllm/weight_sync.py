"""Versioned weight pushes into a running vLLM engine: a worker extension.

vLLM mixes this class into its worker (``worker_extension_cls``), so its methods run
where the model lives and are reached with ``LLM.collective_rpc``. A push streams
named tensors, under our names, through the model runner's ``reload_weights`` (a plain
``load_weights`` after start-up fails on the CPU backend) and then records the version;
the version a replica reports is therefore always that of weights fully in place.
Pushes and generation never interleave: the engine runs in the replica's own thread
(in-process engine core), and a collective RPC runs between engine steps.

The tensors arrive in buckets and are renamed lazily, one at a time, so a push never
holds a second full copy of the language model: in-process the buckets are views of
the torch replica's own parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from redux.policy.vllm.native_vl import native_weights
from redux.policy.vllm.served_model import served_weights


class WeightSyncExtension:
    """Methods vLLM adds to its worker; ``self.model_runner`` is the worker's runner."""

    def load_served_weights(
        self, buckets: Iterable[dict[str, torch.Tensor]], version: int, native: bool = False
    ) -> int:
        """Reload the served weights from ``buckets`` of our named tensors; returns the version now served.

        ``native``: the engine serves the whole Qwen3-VL backbone (``native_vl``), so the
        tensors go under its checkpoint names instead of the language-model export's."""
        self._check_not_older(version)
        rename = native_weights if native else served_weights

        def tensors() -> Iterator[tuple[str, torch.Tensor]]:
            for bucket in buckets:
                yield from rename(bucket.items())

        self.model_runner.reload_weights(weights_iterator=tensors())
        self.served_version = version
        return version

    def record_version(self, version: int) -> int:
        """After vLLM's own weight transfer (nccl/ipc, ``gpu_weight_transfer``) has finished: the version now served."""
        self._check_not_older(version)
        self.served_version = version
        return version

    def _check_not_older(self, version: int) -> None:
        if version < getattr(self, "served_version", 0):
            raise ValueError(f"weight version {version} is older than the served {self.served_version}")

    def start_at_version(self, version: int) -> int:
        """The version of the weights the engine was started from."""
        self.served_version = version
        return version

    def weight_version(self) -> int:
        return getattr(self, "served_version", 0)
