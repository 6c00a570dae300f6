"""The bucketed weight layout: bitwise round trips at any bucket size, bounded buckets,
and corrupt payloads rejected with the tensor named."""

import msgpack
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from redux.buffer.codec import RecordDecodeError
from redux.learner.weight_transport.buckets import pack_buckets, unpack_buckets

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8, torch.bool]


@st.composite
def state_dicts(draw):
    count = draw(st.integers(0, 8))
    named = {}
    for i in range(count):
        shape = tuple(draw(st.lists(st.integers(0, 7), min_size=0, max_size=3)))
        dtype = draw(st.sampled_from(DTYPES))
        seed = draw(st.integers(0, 2**16))
        values = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 100
        named[f"layer.{i}.weight"] = values.to(dtype)
    return named


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().reshape(-1).view(torch.uint8)


@settings(max_examples=60, deadline=None)
@given(state_dicts(), st.integers(1, 600))
def test_any_state_dict_round_trips_bitwise_at_any_bucket_size(named, bucket_bytes):
    header, buckets = pack_buckets(named, bucket_bytes)
    buckets = list(buckets)
    out = unpack_buckets(header, buckets)
    assert list(out) == list(named)
    for name, tensor in named.items():
        assert out[name].dtype == tensor.dtype and out[name].shape == tensor.shape
        assert torch.equal(bits(out[name]), bits(tensor)), name
    # a bucket exceeds the limit only when it holds one tensor larger than the limit
    sizes = {name: t.numel() * t.element_size() for name, t in named.items()}
    for bucket in buckets:
        assert bucket.size <= bucket_bytes or bucket.size in sizes.values()


def test_views_share_the_buckets_memory_no_copy():
    named = {"a": torch.arange(1000, dtype=torch.float32), "b": torch.ones(3, 3)}
    header, buckets = pack_buckets(named, 2**20)
    (bucket,) = list(buckets)
    out = unpack_buckets(header, [bucket])
    bucket[:4] = np.frombuffer(np.float32(42.0).tobytes(), dtype=np.uint8)
    assert out["a"][0].item() == 42.0


def test_buckets_are_built_one_at_a_time():
    named = {f"t{i}": torch.full((256,), float(i)) for i in range(4)}  # 1 KiB each
    header, buckets = pack_buckets(named, 1024)
    first = next(buckets)
    assert first.size == 1024 and torch.equal(torch.from_numpy(first.view(np.float32)), named["t0"])
    assert len(list(buckets)) == 3


def test_a_non_weight_dtype_is_refused_by_name():
    with pytest.raises(ValueError, match="'flags' has dtype torch.complex64"):
        pack_buckets({"flags": torch.zeros(3, dtype=torch.complex64)}, 1024)


def corrupt(header: bytes, **changes) -> bytes:
    top = msgpack.unpackb(header)
    entry = top["tensors"][0]
    for index, value in changes.items():
        entry[int(index.removeprefix("i"))] = value
    return msgpack.packb(top)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda h, b: (b"\xc1garbage", b), "not msgpack"),
        (lambda h, b: (msgpack.packb({"schema": 99, "tensors": []}), b), "schema 1"),
        (lambda h, b: (corrupt(h, i1="complex64"), b), "dtype 'complex64'"),
        (lambda h, b: (corrupt(h, i2=[-1, 4]), b), "non-negative ints"),
        (lambda h, b: (corrupt(h, i5=3), b), "needs more or less"),
        (lambda h, b: (corrupt(h, i3=5), b), "lies in bucket 5, but 1 arrived"),
        (lambda h, b: (h, [b[0][:10]]), "runs past the end of bucket 0"),
    ],
)
def test_corrupt_payloads_are_errors_naming_the_tensor(make, message):
    header, buckets = pack_buckets({"w": torch.ones(4, 4)}, 1024)
    bad_header, bad_buckets = make(header, list(buckets))
    with pytest.raises(RecordDecodeError, match=message):
        unpack_buckets(bad_header, bad_buckets)
