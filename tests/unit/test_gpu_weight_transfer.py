"""The CPU-checkable parts of the nccl/ipc weight transfer (redux/policy/vllm/gpu_weight_transfer.py).

What needs a GPU (the NCCL group, CUDA IPC handles, vLLM's reload on a GPU worker) is
not exercised here; these check the config, the refusal without CUDA, the buckets the
learner gathers and sends, the metadata vLLM sizes its receive buffers from, and the
replica's ordering of lock, reload and version.
"""

from contextlib import contextmanager

import pytest
import torch
from pydantic import ValidationError
from torch import nn
from vllm.distributed.weight_transfer.ipc_engine import IPCTrainerInitInfo
from vllm.distributed.weight_transfer.nccl_common import NCCLWeightTransferInitInfo, worker_init_payload
from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerInitInfo, NCCLTrainerWeightTransferEngine

from redux.config import PolicyConfig, VllmConfig
from redux.policy.alpamayo.factory import build_alpamayo
from redux.policy.vllm.gpu_weight_transfer import (
    GpuWeightPublisher,
    ReplicaWeightReceiver,
    ServedWeightSource,
    engine_kwargs,
    plan_buckets,
    replica_init_payloads,
    served_params,
    trainer_init_info,
)
from redux.policy.vllm.served_model import served_weights

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


@pytest.fixture(scope="module")
def alpamayo():
    torch.manual_seed(0)
    return build_alpamayo(PolicyConfig(kind="alpamayo", preset="tiny", reasoning="coc"))


class Toy(nn.Module):
    """Served tensors (the LM prefix) of known sizes, interleaved with tensors vLLM does not serve."""

    def __init__(self):
        super().__init__()
        lm = "vlm.model.language_model."
        self.sizes = {}  # our name -> float32 bytes
        for i, (name, numel) in enumerate(
            [(lm + "embed", 100), ("vision.w", 50), (lm + "l0", 40), (lm + "l1", 40), (lm + "l2", 300), ("expert.w", 7),
             (lm + "l3", 10), (lm + "norm", 10)]
        ):  # fmt: skip
            safe = name.replace(".", "__")
            self.register_parameter(safe, nn.Parameter(torch.full((numel,), float(i))))
            self.sizes[name] = numel * 4

    def named_parameters(self, *args, **kwargs):  # our dotted names, as a real model reports them
        for safe, p in super().named_parameters(*args, **kwargs):
            yield safe.replace("__", "."), p


# ---- config and refusal without CUDA ------------------------------------------------------


def test_config_defaults_to_in_process_and_accepts_only_the_three_modes():
    assert VllmConfig().weight_transfer == "in_process"
    assert VllmConfig(weight_transfer="nccl").weight_transfer == "nccl"
    assert VllmConfig(weight_transfer="ipc").weight_transfer == "ipc"
    with pytest.raises(ValidationError):
        VllmConfig(weight_transfer="rdma")
    with pytest.raises(ValidationError):
        VllmConfig(transfer_bucket_mib=0)
    assert PolicyConfig(vllm={"weight_transfer": "ipc"}).vllm.weight_transfer == "ipc"


def test_in_process_adds_nothing_to_the_engine():
    assert engine_kwargs(VllmConfig()) == {}


@no_cuda
@pytest.mark.parametrize("mode", ["nccl", "ipc"])
def test_gpu_modes_without_cuda_fail_naming_the_knob(mode, alpamayo):
    cfg = VllmConfig(weight_transfer=mode)
    message = rf"policy\.vllm\.weight_transfer={mode}.*torch\.cuda\.is_available\(\) is False"
    with pytest.raises(RuntimeError, match=message):
        engine_kwargs(cfg)
    with pytest.raises(RuntimeError, match=message):
        GpuWeightPublisher(alpamayo, cfg, replicas=[])
    # the engine start fails the same way, before it exports or starts anything
    from redux.policy.vllm.served_engine import ServedLanguageModel

    with pytest.raises(RuntimeError, match=message):
        ServedLanguageModel(alpamayo, cfg, max_model_len=64, seed=0)


def test_the_publisher_refuses_in_process():
    with pytest.raises(ValueError, match="in_process"):
        GpuWeightPublisher(nn.Linear(2, 2), VllmConfig(), replicas=[])


# ---- buckets ------------------------------------------------------------------------------


def test_served_params_keep_order_drop_unserved_and_rename():
    toy = Toy()
    params = served_params(toy)
    assert [p.ours for p in params] == [n for n in toy.sizes if n.startswith("vlm.")]
    assert [p.served for p in params] == ["model.embed", "model.l0", "model.l1", "model.l2", "model.l3", "model.norm"]


@pytest.mark.parametrize("bucket_bytes", [1, 80, 160, 400, 10_000])
def test_buckets_are_bounded_in_order_and_hold_every_served_tensor_once(bucket_bytes):
    toy = Toy()
    params = served_params(toy)
    buckets = plan_buckets(params, bucket_bytes, torch.float32)
    flat = [p for bucket in buckets for p in bucket]
    assert [p.ours for p in flat] == [p.ours for p in params]  # order kept, each once, nothing unserved
    for bucket in buckets:
        size = sum(toy.sizes[p.ours] for p in bucket)
        assert size <= bucket_bytes or len(bucket) == 1, (bucket_bytes, [p.ours for p in bucket])
    # greedy: a bucket closes only when the next tensor would not fit
    for bucket, following in zip(buckets, buckets[1:]):
        assert sum(toy.sizes[p.ours] for p in bucket) + toy.sizes[following[0].ours] > bucket_bytes


def test_bucket_sizes_count_the_wire_dtype():
    params = served_params(Toy())
    # embed, l0, l1 are 400 + 160 + 160 bytes in float32 and half that in bfloat16
    assert [len(b) for b in plan_buckets(params, 400, torch.float32)] == [1, 2, 1, 2]
    assert [len(b) for b in plan_buckets(params, 400, torch.bfloat16)] == [3, 1, 2]


def test_buckets_exact_contents():
    params = served_params(Toy())
    names = [[p.served for p in b] for b in plan_buckets(params, 400, torch.float32)]
    assert names == [["model.embed"], ["model.l0", "model.l1"], ["model.l2"], ["model.l3", "model.norm"]]


def test_a_bad_bucket_size_is_refused():
    with pytest.raises(ValueError, match="positive"):
        plan_buckets(served_params(Toy()), 0, torch.float32)


def test_the_source_gathers_one_bucket_at_a_time_and_yields_only_inside_it():
    toy = Toy()
    events, active = [], []

    @contextmanager
    def gather(params):
        assert not active, "a second bucket gathered while one is held"
        active.append({id(p) for p in params})
        events.append(("gather", len(params)))
        try:
            yield
        finally:
            active.pop()
            events.append(("release", len(params)))

    source = ServedWeightSource(toy, 400, torch.float32, gather)
    by_served = {p.served: p.param for b in source.buckets for p in b}
    seen = []
    for name, tensor in source:
        assert active and id(by_served[name]) in active[0], f"{name} yielded outside its bucket's gather"
        seen.append(name)
    assert seen == [m.name for m in source.metadata()]
    assert events == [(e, n) for n in (1, 2, 1, 2) for e in ("gather", "release")]
    # re-iterable: vLLM replays the source every round
    assert [n for n, _ in source] == seen


def test_stopping_mid_stream_releases_the_bucket():
    released = []

    @contextmanager
    def gather(params):
        try:
            yield
        finally:
            released.append(len(params))

    stream = iter(ServedWeightSource(Toy(), 400, torch.float32, gather))
    next(stream)
    next(stream)  # into the second bucket
    stream.close()
    assert released == [1, 2]


# ---- metadata against served_weights --------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_metadata_is_the_served_export_and_agrees_with_iteration(alpamayo, dtype):
    source = ServedWeightSource(alpamayo, 64 * 1024, dtype)
    meta = source.metadata()
    exported = dict(served_weights(alpamayo.state_dict().items()))
    if alpamayo.vlm.config.tie_word_embeddings:
        exported.pop("lm_head.weight")  # tied: the export leaves it out too and Qwen3 re-ties
    assert [m.name for m in meta] == list(exported)
    for m in meta:
        assert m.dtype == dtype and m.shape == tuple(exported[m.name].shape), m
    # vLLM's own check of what the NCCL trainer sends against what it told the workers
    pairs = list(NCCLTrainerWeightTransferEngine._checked_iter(source, meta))
    for name, tensor in pairs:
        assert torch.equal(tensor, exported[name].to(dtype)), name
    assert len(source.buckets) > 1  # the test's bucket size does split the tiny model


# ---- init info ------------------------------------------------------------------------------


def test_nccl_init_info_packs_by_the_bucket_and_gives_each_replica_its_own_ranks(alpamayo):
    source = ServedWeightSource(alpamayo, 2**20, torch.bfloat16)
    info = trainer_init_info("nccl", source, 2**20, replicas=3, master_address="10.0.0.1", master_port=29555)
    assert isinstance(info, NCCLTrainerInitInfo) and info.is_sender
    assert (info.world_size, info.packed, info.packed_buffer_size_bytes) == (4, True, 2**20)
    # what vLLM's NCCL trainer sends the workers, then what each of our replicas receives
    sent = worker_init_payload(
        NCCLWeightTransferInitInfo(
            master_address=info.master_address, master_port=info.master_port, rank_offset=1,
            world_size=info.world_size, packed=info.packed, packed_buffer_size_bytes=info.packed_buffer_size_bytes,
        )
    )  # fmt: skip
    payloads = replica_init_payloads(sent, 3)
    parsed = [NCCLWeightTransferInitInfo(**p) for p in payloads]  # as the worker parses them
    assert [p.rank_offset for p in parsed] == [1, 2, 3]  # rank 0 is the learner, no two workers share a rank
    assert all(p.world_size == 4 and p.packed_buffer_size_bytes == 2**20 for p in parsed)


def test_ipc_init_info_grows_its_buffer_to_the_largest_tensor(alpamayo):
    source = ServedWeightSource(alpamayo, 1024, torch.float32)
    largest = max(t.numel() * 4 for _, t in served_weights(alpamayo.named_parameters()))
    info = trainer_init_info("ipc", source, 1024, replicas=2, master_address="", master_port=0)
    assert isinstance(info, IPCTrainerInitInfo) and info.packed
    assert info.packed_buffer_size_bytes == largest > 1024
    big = trainer_init_info("ipc", source, 2**30, replicas=2, master_address="", master_port=0)
    assert big.packed_buffer_size_bytes == 2**30
    assert replica_init_payloads({"packed": True}, 2) == [{"packed": True}, {"packed": True}]


def test_in_process_has_no_trainer_init_info(alpamayo):
    with pytest.raises(ValueError, match="not a GPU transfer"):
        trainer_init_info("in_process", ServedWeightSource(alpamayo, 1024, torch.float32), 1024, 1, "", 0)


# ---- the replica's ordering -----------------------------------------------------------------


class RecordingEngine:
    """Stands in for our ServedLanguageModel (not for vLLM): records what the receiver asks of it."""

    def __init__(self, fail_on: str | None = None):
        self.calls, self.version, self.torn, self.fail_on = [], 0, False, fail_on

    def _call(self, what):
        self.calls.append(what)
        if what == self.fail_on:
            raise RuntimeError(f"{what} failed")

    def served_version(self):
        return self.version

    def init_transfer(self, init_info):
        self._call("init")

    def start_transfer(self):
        self._call("start")

    def receive(self, update_info):
        self._call("receive")

    def finish_transfer(self, version):
        self._call("finish")
        self.version = version
        return version


def receiver(engine):
    held = []

    @contextmanager
    def turn():
        held.append(True)
        engine.calls.append("lock")
        try:
            yield
        finally:
            held.pop()
            engine.calls.append("unlock")

    return ReplicaWeightReceiver(engine, turn), held


def test_a_transfer_holds_the_push_turn_from_start_to_finish_and_records_the_version_last():
    engine = RecordingEngine()
    r, held = receiver(engine)
    r.start_weight_update(3)
    assert held and engine.version == 0
    r.update_weights({})
    r.update_weights({})
    assert held and engine.version == 0  # mid-transfer: still the old version, decoding still shut out
    assert r.finish_weight_update(3) == 3
    assert not held and engine.version == 3 and not engine.torn
    assert engine.calls == ["lock", "start", "receive", "receive", "finish", "unlock"]


def test_an_older_version_is_refused_before_anything_lands():
    engine = RecordingEngine()
    engine.version = 5
    r, held = receiver(engine)
    with pytest.raises(ValueError, match="older than the served 5"):
        r.start_weight_update(4)
    assert not held and engine.calls == ["lock", "unlock"] and not engine.torn


@pytest.mark.parametrize("stage", ["receive", "finish"])
def test_a_transfer_failing_after_bytes_landed_leaves_the_engine_torn_and_unlocked(stage):
    engine = RecordingEngine(fail_on=stage)
    r, held = receiver(engine)
    r.start_weight_update(1)
    with pytest.raises(RuntimeError, match=f"{stage} failed"):
        r.update_weights({})
        r.finish_weight_update(1)
    assert engine.torn and not held and engine.version == 0
    engine.fail_on = None  # a later complete transfer heals it
    r.start_weight_update(2)
    r.update_weights({})
    r.finish_weight_update(2)
    assert not engine.torn and engine.version == 2


def test_updates_outside_a_transfer_are_refused():
    r, _ = receiver(RecordingEngine())
    with pytest.raises(RuntimeError, match="before start"):
        r.update_weights({})
    with pytest.raises(RuntimeError, match="before start"):
        r.finish_weight_update(1)
    r.start_weight_update(1)
    with pytest.raises(RuntimeError, match="already under way"):
        r.start_weight_update(1)
