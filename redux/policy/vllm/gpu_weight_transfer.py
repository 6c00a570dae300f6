"""GPU weight transfer from the DeepSpeed learner into vLLM-served replicas (``policy.vllm.weight_transfer``).

``in_process`` (the default, and the CPU path) needs none of this: each replica pushes
its own torch copy into its engine (``ServedLanguageModel.load_weights``). ``nccl`` and
``ipc`` use vLLM 0.32's weight-transfer engines (``vllm/distributed/weight_transfer/``)
to move the served language model from the learner's GPU straight into every engine:

* trainer side: :class:`GpuWeightPublisher` wraps the learner's module in a vLLM
  ``WeightSource`` (:class:`ServedWeightSource`) that yields the served tensors under
  their Qwen3 names (``served_weights``), bucket by bucket, and hands it to
  ``WeightTransferTrainerFactory.trainer_init``; ``publish(version)`` is one
  ``send_weights()``. vLLM packs the stream into buffers of ``transfer_bucket_mib``;
  the source gathers (ZeRO-3) and casts one bucket of parameters at a time, so the
  learner never holds a second full copy of the model, and an engine receives into
  vLLM's bounded packed buffers.
* replica side: the engine is started with ``weight_transfer_config``
  (:func:`engine_kwargs`), and :class:`ReplicaWeightReceiver` answers the learner's
  four calls. It holds the policy's push turn from ``start_weight_update`` to
  ``finish_weight_update`` and records the version only after the finish, so no
  decode runs on, or is labelled with, a half-loaded model.

The torch replica still loads the full state dict from the learner's weight-transport
handle: it computes the prompt embeddings, the vision features, the re-prefill and the
flow expert. Only the engine's copy of the language model travels here.

Written against the installed vLLM source; it has not run on a GPU in this repository
(README, "vLLM engine").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from vllm.distributed.weight_transfer.base import ParamMeta, WeightSource, materialize_full_tensor

from redux.config import VllmConfig
from redux.policy.vllm.native_vl import native_name, serves_natively
from redux.policy.vllm.served_model import served_name

KNOB = "policy.vllm.weight_transfer"
GPU_MODES = ("nccl", "ipc")
# Served engines set no tensor_parallel_size: one vLLM worker, hence one NCCL rank, per replica.
WORKERS_PER_REPLICA = 1
TRAINER_RANKS = 1  # the learner is one process (deepspeed_trainer: a one-process world)


def require_cuda(mode: str) -> None:
    if mode in GPU_MODES and not torch.cuda.is_available():
        raise RuntimeError(
            f"{KNOB}={mode} moves weights between GPUs, but torch.cuda.is_available() is False here; "
            f"use {KNOB}=in_process on CPU"
        )


def engine_kwargs(cfg: VllmConfig) -> dict[str, Any]:
    """Extra ``vllm.LLM`` arguments for the replica's engine: its weight-transfer engine, if any."""
    if cfg.weight_transfer == "in_process":
        return {}
    require_cuda(cfg.weight_transfer)
    from vllm.config.weight_transfer import WeightTransferConfig

    return {"weight_transfer_config": WeightTransferConfig(backend=cfg.weight_transfer)}


# ---- trainer side -------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedParam:
    """One parameter vLLM serves: our name, its Qwen3 name and its full shape."""

    ours: str
    served: str
    param: torch.Tensor
    shape: tuple[int, ...]


def served_params(module: torch.nn.Module) -> list[ServedParam]:
    """The served parameters in module order.

    ``named_parameters`` lists a tied ``lm_head`` once, under the embedding, which is what
    the export does too (Qwen3 re-ties). Under ZeRO-3 a parameter is a partition
    until gathered; ``ds_shape`` is its full shape. A model whose preset vLLM serves
    natively (``native_vl``) sends its whole backbone under Qwen3-VL checkpoint names.
    """
    preset = getattr(module, "preset", None)
    name_of = native_name if preset is not None and serves_natively(preset) else served_name
    out = []
    for ours, param in module.named_parameters():
        served = name_of(ours)
        if served is not None:
            out.append(ServedParam(ours, served, param, tuple(getattr(param, "ds_shape", param.shape))))
    return out


def plan_buckets(params: list[ServedParam], bucket_bytes: int, dtype: torch.dtype) -> list[list[ServedParam]]:
    """Consecutive runs of ``params`` of at most ``bucket_bytes`` at ``dtype``; a larger tensor is a bucket alone."""
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes}")
    buckets: list[list[ServedParam]] = []
    used = 0
    for p in params:
        size = _nbytes(p.shape, dtype)
        if not buckets or used + size > bucket_bytes:
            buckets.append([])
            used = 0
        buckets[-1].append(p)
        used += size
    return buckets


def _nbytes(shape: tuple[int, ...], dtype: torch.dtype) -> int:
    return torch.Size(shape).numel() * dtype.itemsize


Gather = Callable[[list[torch.Tensor]], AbstractContextManager]


class ServedWeightSource(WeightSource):
    """The learner's served weights as vLLM's ``WeightSource``: re-iterable, one bucket gathered at a time.

    ``gather`` makes a bucket's parameters whole for the duration of a ``with``
    (``deepspeed.zero.GatheredParameters`` under ZeRO-3; nothing otherwise). Tensors go
    out at ``wire_dtype``, the served dtype, so a float32 learner does not ship twice the
    bytes a bfloat16 engine keeps; the cast is per tensor.
    """

    def __init__(
        self, module: torch.nn.Module, bucket_bytes: int, wire_dtype: torch.dtype, gather: Gather | None = None
    ):
        self.wire_dtype = wire_dtype
        self.buckets = plan_buckets(served_params(module), bucket_bytes, wire_dtype)
        self._gather = gather or (lambda params: nullcontext())

    def metadata(self) -> list[ParamMeta]:
        return [ParamMeta(p.served, self.wire_dtype, p.shape) for bucket in self.buckets for p in bucket]

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        for bucket in self.buckets:
            with self._gather([p.param for p in bucket]):
                for p in bucket:
                    yield p.served, materialize_full_tensor(p.param).detach().to(self.wire_dtype)

    def largest_bytes(self) -> int:
        return max((_nbytes(p.shape, self.wire_dtype) for bucket in self.buckets for p in bucket), default=0)


def trainer_init_info(
    mode: str, source: ServedWeightSource, bucket_bytes: int, replicas: int, master_address: str, master_port: int
):
    """vLLM's trainer init info for ``mode``: packed transfers of ``bucket_bytes``, the learner as rank 0."""
    if mode == "nccl":
        from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerInitInfo

        return NCCLTrainerInitInfo(
            master_address=master_address,
            master_port=master_port,
            world_size=TRAINER_RANKS + replicas * WORKERS_PER_REPLICA,
            packed=True,
            packed_buffer_size_bytes=bucket_bytes,
            rank=0,
        )
    if mode == "ipc":
        from vllm.distributed.weight_transfer.ipc_engine import IPCTrainerInitInfo

        # vLLM's packed IPC producer refuses a tensor larger than its one shared buffer
        # (a 10B model's embedding is over 1 GiB in bfloat16): grow the buffer to fit.
        return IPCTrainerInitInfo(
            packed=True, packed_buffer_size_bytes=max(bucket_bytes, source.largest_bytes()), rank=0
        )
    raise ValueError(f"{KNOB}={mode!r} is not a GPU transfer; expected one of {GPU_MODES}")


def replica_init_payloads(init_info: dict[str, Any], replicas: int) -> list[dict[str, Any]]:
    """The init payload each replica's engine gets.

    vLLM's NCCL trainer sends every engine ``rank_offset=1`` and lets data-parallel
    ranks inside one deployment tell the workers apart; our replicas are separate
    engines, each at data-parallel rank 0, so each gets its own offset instead.
    IPC has no ranks and its payload goes out unchanged.
    """
    if "rank_offset" not in init_info:
        return [dict(init_info) for _ in range(replicas)]
    first = init_info["rank_offset"]
    return [{**init_info, "rank_offset": first + i * WORKERS_PER_REPLICA} for i in range(replicas)]


class ReplicaClient:
    """vLLM's ``VLLMWeightSyncClient`` over our replicas: Ray actors exposing :class:`ReplicaWeightReceiver`'s methods.

    Every call fans out to all replicas at once and waits for all (the NCCL rendezvous
    and broadcasts need every rank in). vLLM's trainer engines call
    ``finish_weight_update()`` without a version, so the publisher sets ``version``
    before each round.
    """

    def __init__(self, replicas: list):
        self.replicas = replicas
        self.version: int | None = None

    def _all(self, method: str, args: list[tuple]) -> list:
        import ray

        return ray.get([getattr(r, method).remote(*a) for r, a in zip(self.replicas, args, strict=True)])

    def _versioned(self) -> list[tuple]:
        if self.version is None:
            raise RuntimeError("ReplicaClient.version is unset: publish through GpuWeightPublisher.publish")
        return [(self.version,)] * len(self.replicas)

    def init_weight_transfer_engine(self, init_info: dict[str, Any]) -> None:
        self._all("init_weight_transfer_engine", [(p,) for p in replica_init_payloads(init_info, len(self.replicas))])

    def start_weight_update(self) -> None:
        self._all("start_weight_update", self._versioned())

    def update_weights(self, update_info) -> None:
        self._all("update_weights", [(update_info,)] * len(self.replicas))

    def finish_weight_update(self, weight_version: str | None = None) -> None:
        self._all("finish_weight_update", self._versioned())


class GpuWeightPublisher:
    """The learner's end: one instance for the run, ``publish(version)`` after each update.

    ``replicas`` are Ray handles to every actor serving a vLLM engine; each must run
    its calls on more than one thread (``max_concurrency`` > 1), since the finish of a
    transfer arrives while decode calls wait for it. ``gather``: see
    :class:`ServedWeightSource`. A failed round leaves vLLM's transfer group unusable
    (vLLM does not recover it): restart the replicas.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        cfg: VllmConfig,
        replicas: list,
        gather: Gather | None = None,
        master_address: str | None = None,
        master_port: int | None = None,
    ):
        if cfg.weight_transfer not in GPU_MODES:
            raise ValueError(
                f"{KNOB}={cfg.weight_transfer!r}: replicas load from their own torch copy, nothing to publish"
            )
        require_cuda(cfg.weight_transfer)
        from vllm.distributed.weight_transfer.factory import WeightTransferTrainerFactory
        from vllm.utils.network_utils import get_ip, get_open_port

        bucket_bytes = cfg.transfer_bucket_mib * 2**20
        self.source = ServedWeightSource(module, bucket_bytes, getattr(torch, cfg.dtype), gather)
        self.client = ReplicaClient(replicas)
        init_info = trainer_init_info(
            cfg.weight_transfer, self.source, bucket_bytes, len(replicas),
            master_address or get_ip(), master_port or get_open_port(),
        )  # fmt: skip
        # the NCCL rendezvous: the replicas join inside this call
        self.engine = WeightTransferTrainerFactory.trainer_init(init_info, client=self.client, source=self.source)

    def publish(self, version: int) -> None:
        """Send the current weights as ``version``; returns once every replica serves them."""
        self.client.version = version
        self.engine.send_weights()

    def close(self) -> None:
        self.engine.shutdown()


# ---- replica side -------------------------------------------------------------------------


class ReplicaWeightReceiver:
    """The replica's end of a transfer into ``served`` (a ``ServedLanguageModel``).

    ``exclusive()`` is the policy's push turn (``VllmAlpamayoPolicy``): held from
    ``start_weight_update`` to ``finish_weight_update``, so the decisions it serialises
    never run between two buckets. The version is recorded after vLLM's finish, which
    completes the layerwise reload. A transfer that fails after bytes began to land
    leaves the engine torn: it refuses to decode until a later transfer completes.
    """

    def __init__(self, served, exclusive: Callable[[], AbstractContextManager]):
        self.served = served
        self._exclusive = exclusive
        self._turn: ExitStack | None = None

    def init_weight_transfer_engine(self, init_info: dict[str, Any]) -> None:
        self.served.init_transfer(init_info)

    def start_weight_update(self, version: int) -> None:
        if self._turn is not None:
            raise RuntimeError("a weight transfer is already under way on this replica")
        turn = ExitStack()
        turn.enter_context(self._exclusive())
        try:
            served = self.served.served_version()
            if version < served:
                raise ValueError(f"weight version {version} is older than the served {served}")
            self.served.start_transfer()
        except BaseException:
            turn.close()
            raise
        self._turn = turn

    def update_weights(self, update_info) -> None:
        if self._turn is None:
            raise RuntimeError("update_weights before start_weight_update")
        try:
            self.served.receive(update_info)
        except BaseException:
            self._abort()
            raise

    def finish_weight_update(self, version: int) -> int:
        if self._turn is None:
            raise RuntimeError("finish_weight_update before start_weight_update")
        try:
            served = self.served.finish_transfer(version)
        except BaseException:
            self._abort()
            raise
        self.served.torn = False
        self._release()
        return served

    def _abort(self) -> None:
        self.served.torn = True
        self._release()

    def _release(self) -> None:
        turn, self._turn = self._turn, None
        turn.close()
