"""Weights as a small header plus flat byte buckets: few copies, bounded memory.

The msgpack tensor payload (``codec.encode_tensors``) copies every tensor several times
on the way (to bytes, into the message, out of it, into a writable array). For weights
that are only read by ``load_state_dict`` the layout here needs one copy into a bucket
on the publishing side and none on the receiving side: tensors are laid back to back,
64-byte aligned, in uint8 buckets of at most ``bucket_bytes`` (a tensor larger than that
gets a bucket of its own), and the receiver views them in place. The header says where
each tensor lies; it is plain msgpack (names, dtypes, shapes, offsets) and is checked
against the buckets before any view is made, so a corrupt payload is an error naming
the tensor, never a wrong weight.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import msgpack
import numpy as np
import torch

from redux.buffer.codec import _TENSOR_DTYPES, RecordDecodeError

BUCKET_SCHEMA = 1
_ALIGN = 64


@dataclass(frozen=True)
class _Slot:
    name: str
    dtype: str
    shape: tuple[int, ...]
    bucket: int
    offset: int
    nbytes: int


def _dtype_name(name: str, tensor: torch.Tensor) -> str:
    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype not in _TENSOR_DTYPES:
        raise ValueError(f"tensor {name!r} has dtype {tensor.dtype}; weight payloads carry {sorted(_TENSOR_DTYPES)}")
    return dtype


def _layout(named: Mapping[str, torch.Tensor], bucket_bytes: int) -> list[_Slot]:
    slots, bucket, used = [], 0, 0
    for name, tensor in named.items():
        nbytes = tensor.numel() * tensor.element_size()
        start = math.ceil(used / _ALIGN) * _ALIGN
        if used and start + nbytes > bucket_bytes:
            bucket, start = bucket + 1, 0
        slots.append(_Slot(name, _dtype_name(name, tensor), tuple(tensor.shape), bucket, start, nbytes))
        used = start + nbytes
    return slots


def pack_buckets(named: Mapping[str, torch.Tensor], bucket_bytes: int) -> tuple[bytes, Iterator[np.ndarray]]:
    """The header, and the buckets one at a time (each built when asked for, so a
    publisher that ships each before taking the next holds one bucket at most)."""
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes}")
    slots = _layout(named, bucket_bytes)
    header = msgpack.packb(
        {
            "schema": BUCKET_SCHEMA,
            "tensors": [[s.name, s.dtype, list(s.shape), s.bucket, s.offset, s.nbytes] for s in slots],
        }
    )

    def buckets() -> Iterator[np.ndarray]:
        count = slots[-1].bucket + 1 if slots else 0
        for index in range(count):
            members = [s for s in slots if s.bucket == index]
            data = np.empty(members[-1].offset + members[-1].nbytes, dtype=np.uint8)
            for slot in members:
                tensor = named[slot.name].detach().cpu().contiguous()
                raw = tensor.reshape(-1).view(torch.uint8) if tensor.numel() else torch.empty(0, dtype=torch.uint8)
                data[slot.offset : slot.offset + slot.nbytes] = raw.numpy()
            yield data

    return header, buckets()


def _read_header(header: bytes) -> list[_Slot]:
    try:
        top = msgpack.unpackb(header)
    except Exception as err:  # noqa: BLE001 - msgpack raises many types for garbage
        raise RecordDecodeError(f"weight header is not msgpack: {err}") from err
    if not isinstance(top, dict) or top.get("schema") != BUCKET_SCHEMA or not isinstance(top.get("tensors"), list):
        raise RecordDecodeError(f"weight header must be a map with schema {BUCKET_SCHEMA} and a tensor list")
    slots = []
    for entry in top["tensors"]:
        if not (isinstance(entry, list) and len(entry) == 6):
            raise RecordDecodeError(f"weight header entry {entry!r:.80} is not [name, dtype, shape, bucket, offset, nbytes]")
        name, dtype, shape, bucket, offset, nbytes = entry
        if not isinstance(name, str) or dtype not in _TENSOR_DTYPES:
            raise RecordDecodeError(f"weight header entry {name!r:.80}: dtype {dtype!r:.40} is not one of {sorted(_TENSOR_DTYPES)}")
        ints = [bucket, offset, nbytes, *shape] if isinstance(shape, list) else None
        if ints is None or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints):
            raise RecordDecodeError(f"weight header entry {name!r}: bucket, offset, size and shape must be non-negative ints")
        if math.prod(shape) * _TENSOR_DTYPES[dtype][1].itemsize != nbytes:
            raise RecordDecodeError(f"weight header entry {name!r}: {nbytes} bytes, but shape {shape} of {dtype} needs more or less")
        slots.append(_Slot(name, dtype, tuple(shape), bucket, offset, nbytes))
    return slots


def unpack_buckets(header: bytes, buckets: list[np.ndarray]) -> dict[str, torch.Tensor]:
    """Views of the tensors in ``buckets`` (no copy; read-only where the buckets are)."""
    named = {}
    for slot in _read_header(header):
        if slot.bucket >= len(buckets):
            raise RecordDecodeError(f"tensor {slot.name!r} lies in bucket {slot.bucket}, but {len(buckets)} arrived")
        data = buckets[slot.bucket]
        if data.dtype != np.uint8 or data.ndim != 1 or slot.offset + slot.nbytes > data.size:
            raise RecordDecodeError(f"tensor {slot.name!r} runs past the end of bucket {slot.bucket} ({data.size} bytes)")
        carrier = _TENSOR_DTYPES[slot.dtype][1]
        array = data[slot.offset : slot.offset + slot.nbytes].view(carrier).reshape(slot.shape)
        with warnings.catch_warnings():
            # the object store hands out read-only memory; load_state_dict only reads it
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            named[slot.name] = torch.from_numpy(array).view(_TENSOR_DTYPES[slot.dtype][0])
    return named
