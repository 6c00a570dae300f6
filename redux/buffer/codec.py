"""The wire format of everything the buffer carries: rollout records, named weight
tensors and small stats messages.

msgpack only, never pickle: records arrive from other processes and machines, and
decoding one must not be able to run code. Decoding validates every field and turns
any malformed input into :class:`RecordDecodeError`, so a consumer can dead-letter a
bad record instead of crashing on it.

Arrays travel as ``{"dtype": name, "shape": [...], "data": raw bytes}`` with C-order,
little-endian data. Decoded arrays are writable copies that own their memory: the
learner may normalise them in place or hand them to ``torch.from_numpy`` without
keeping the received bytes alive.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
import torch

SCHEMA_VERSION = 1

Scalar = float | int | str | bool

# dtypes a rollout record may carry (numpy names; data always little-endian).
_RECORD_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name).newbyteorder("<")
    for name in "bool uint8 int8 uint16 int16 uint32 int32 uint64 int64 float16 float32 float64".split()
}

# dtypes of weight payloads: wire name -> (torch dtype, numpy dtype carrying its bytes).
# numpy has no bfloat16, so its raw bits travel as int16 and are viewed back in torch.
_TENSOR_DTYPES: dict[str, tuple[torch.dtype, np.dtype]] = {
    "float32": (torch.float32, np.dtype("<f4")),
    "float16": (torch.float16, np.dtype("<f2")),
    "bfloat16": (torch.bfloat16, np.dtype("<i2")),
    "int64": (torch.int64, np.dtype("<i8")),
    "int32": (torch.int32, np.dtype("<i4")),
    "uint8": (torch.uint8, np.dtype("u1")),
    "bool": (torch.bool, np.dtype("bool")),
}
_TENSOR_CARRIERS = {name: carrier for name, (_, carrier) in _TENSOR_DTYPES.items()}

_INT_FIELDS = ("actor_id", "session", "episode", "step_start", "weight_version")
_RECORD_KEYS = frozenset({"schema", *_INT_FIELDS, "created_s", "tensors", "scalars"})
_ARRAY_KEYS = frozenset({"dtype", "shape", "data"})


class RecordDecodeError(ValueError):
    """Bytes that are not a valid encoding; the message says what is wrong."""


@dataclass(eq=False)  # arrays have no single truth value, so no generated __eq__
class RolloutRecord:
    """A slice of one episode of one session, as an actor produced it."""

    actor_id: int
    session: int
    episode: int
    step_start: int
    weight_version: int
    created_s: float
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    scalars: dict[str, Scalar] = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return next(iter(self.tensors.values())).shape[0] if self.tensors else 0

    @property
    def key(self) -> str:
        return f"a{self.actor_id}-s{self.session}-e{self.episode}-t{self.step_start}"


def encode_record(rec: RolloutRecord) -> bytes:
    tensors = {name: np.asarray(array) for name, array in rec.tensors.items()}
    if problem := _steps_problem(tensors):
        raise ValueError(f"record {rec.key}: {problem}")
    return msgpack.packb(
        {
            "schema": SCHEMA_VERSION,
            **{name: getattr(rec, name) for name in _INT_FIELDS},
            "created_s": float(rec.created_s),
            "tensors": {name: _pack_array(array, _record_dtype_name(name, array)) for name, array in tensors.items()},
            "scalars": {name: _plain_scalar(name, value) for name, value in rec.scalars.items()},
        }
    )


def decode_record(data: bytes) -> RolloutRecord:
    top = _unpack_map(data, "record")
    _check_schema(top, "record")
    _check_keys(top, _RECORD_KEYS, "record")
    for name in _INT_FIELDS:
        if not _is_int(top[name]):
            raise RecordDecodeError(f"record field {name!r} must be an integer, got {_describe(top[name])}")
    created_s = top["created_s"]
    if not (isinstance(created_s, float) or _is_int(created_s)):
        raise RecordDecodeError(f"record field 'created_s' must be a number, got {_describe(created_s)}")
    tensors = _unpack_array_map(top["tensors"], _RECORD_DTYPES, "record tensors")
    if problem := _steps_problem(tensors):
        raise RecordDecodeError(f"record {problem}")
    return RolloutRecord(
        **{name: top[name] for name in _INT_FIELDS},
        created_s=float(created_s),
        tensors=tensors,
        scalars=_unpack_scalars(top["scalars"]),
    )


def encode_tensors(named: Mapping[str, torch.Tensor | np.ndarray]) -> bytes:
    """Named tensors (a state_dict) as bytes; dtypes: see ``_TENSOR_DTYPES``."""
    tensors = {name: _pack_tensor(name, value) for name, value in named.items()}
    return msgpack.packb({"schema": SCHEMA_VERSION, "tensors": tensors})


def decode_tensors(data: bytes) -> dict[str, torch.Tensor]:
    top = _unpack_map(data, "tensor payload")
    _check_schema(top, "tensor payload")
    _check_keys(top, frozenset({"schema", "tensors"}), "tensor payload")
    entries = top["tensors"]
    arrays = _unpack_array_map(entries, _TENSOR_CARRIERS, "tensor payload")
    # Every dtype name was validated above; .view restores bfloat16 from its int16 carrier.
    return {
        name: torch.from_numpy(array).view(_TENSOR_DTYPES[entries[name]["dtype"]][0]) for name, array in arrays.items()
    }


def encode_message(message: dict[str, Any]) -> bytes:
    """A small JSON-like dict (stats, telemetry) as bytes."""
    if not isinstance(message, dict):
        raise TypeError(f"a message must be a dict, got {type(message).__name__}")
    return msgpack.packb(message)


def decode_message(data: bytes) -> dict[str, Any]:
    return _unpack_map(data, "message")


# --- encoding helpers ---------------------------------------------------------------


def _pack_array(array: np.ndarray, dtype_name: str) -> dict[str, Any]:
    little_endian = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return {"dtype": dtype_name, "shape": list(array.shape), "data": little_endian.tobytes(order="C")}


def _record_dtype_name(name: str, array: np.ndarray) -> str:
    if array.dtype.name not in _RECORD_DTYPES:
        raise ValueError(f"tensor {name!r} has dtype {array.dtype}; records carry {sorted(_RECORD_DTYPES)}")
    return array.dtype.name


def _pack_tensor(name: str, value: torch.Tensor | np.ndarray) -> dict[str, Any]:
    is_torch = isinstance(value, torch.Tensor)
    dtype_name = str(value.dtype).removeprefix("torch.") if is_torch else np.asarray(value).dtype.name
    if dtype_name not in _TENSOR_DTYPES:
        raise ValueError(f"tensor {name!r} has dtype {value.dtype}; weight payloads carry {sorted(_TENSOR_DTYPES)}")
    if is_torch:
        tensor = value.detach().cpu()
        # numpy has no bfloat16: hand its raw bits over as int16.
        value = (tensor.view(torch.int16) if tensor.dtype == torch.bfloat16 else tensor).numpy()
    return _pack_array(np.asarray(value), dtype_name)


def _plain_scalar(name: str, value: Any) -> Scalar:
    # Actors often compute rewards with numpy; accept its scalars as their Python twins.
    plain = value.item() if isinstance(value, np.generic) else value
    if not isinstance(plain, (bool, int, float, str)):
        raise TypeError(f"scalar {name!r} must be a bool, int, float or str, got {type(value).__name__}")
    return plain


def _steps_problem(tensors: Mapping[str, np.ndarray]) -> str | None:
    """Why these arrays cannot be the per-step tensors of one record, or None if they can."""
    no_step_dim = [name for name, array in tensors.items() if array.ndim == 0]
    if no_step_dim:
        return f"tensors {no_step_dim} have no leading step dimension"
    steps = {name: array.shape[0] for name, array in tensors.items()}
    if len(set(steps.values())) > 1:
        return f"tensors disagree on the number of steps: {steps}"
    return None


# --- decoding helpers: each raises RecordDecodeError and nothing else -----------------
# Messages are built only on failure: rendering a multi-megabyte payload is not free.


def _unpack_map(data: Any, what: str) -> dict[Any, Any]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise RecordDecodeError(f"{what} must be bytes, got {_describe(data)}")
    try:
        top = msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.UnpackException) as err:  # ValueError covers bad UTF-8, extra data, bad format
        raise RecordDecodeError(f"{what} is not valid msgpack ({len(data)} bytes): {type(err).__name__} {err}") from err
    if not isinstance(top, dict):
        raise RecordDecodeError(f"{what} must be a msgpack map, got {_describe(top)}")
    return top


def _check_schema(top: dict[Any, Any], what: str) -> None:
    version = top.get("schema")
    if not (_is_int(version) and version == SCHEMA_VERSION):
        raise RecordDecodeError(
            f"{what} has schema version {_describe(version)}; this code reads version {SCHEMA_VERSION}"
        )


def _check_keys(top: dict[Any, Any], expected: frozenset[str], what: str) -> None:
    if top.keys() != expected:
        missing = sorted(expected - top.keys())
        unexpected = sorted(str(key) for key in top.keys() - expected)
        raise RecordDecodeError(f"{what} keys: missing {missing}, unexpected {unexpected}")


def _unpack_array_map(value: Any, wire_dtypes: Mapping[str, np.dtype], what: str) -> dict[str, np.ndarray]:
    if not isinstance(value, dict):
        raise RecordDecodeError(f"{what} must be a map, got {_describe(value)}")
    arrays = {}
    for name, entry in value.items():
        if not isinstance(name, str):
            raise RecordDecodeError(f"{what}: tensor names must be strings, got {_describe(name)}")
        arrays[name] = _unpack_array(entry, wire_dtypes, f"{what}[{name!r}]")
    return arrays


def _unpack_array(entry: Any, wire_dtypes: Mapping[str, np.dtype], what: str) -> np.ndarray:
    if not isinstance(entry, dict):
        raise RecordDecodeError(f"{what} must be a map, got {_describe(entry)}")
    _check_keys(entry, _ARRAY_KEYS, what)
    dtype_name, shape, data = entry["dtype"], entry["shape"], entry["data"]
    if not (isinstance(dtype_name, str) and dtype_name in wire_dtypes):
        raise RecordDecodeError(f"{what}: dtype {_describe(dtype_name)} is not one of {sorted(wire_dtypes)}")
    if not (isinstance(shape, list) and all(_is_int(d) and d >= 0 for d in shape)):
        raise RecordDecodeError(f"{what}: shape {_describe(shape)} is not a list of non-negative integers")
    if not isinstance(data, bytes):
        raise RecordDecodeError(f"{what}: data must be bytes, got {_describe(data)}")
    expected = math.prod(shape) * wire_dtypes[dtype_name].itemsize
    if len(data) != expected:
        raise RecordDecodeError(f"{what}: {len(data)} bytes, but shape {shape} of {dtype_name} needs {expected}")
    try:
        return np.frombuffer(data, dtype=wire_dtypes[dtype_name]).reshape(shape).copy()
    except (ValueError, OverflowError) as err:  # empty shapes numpy cannot represent, e.g. [2**62, 0, 2**62]
        raise RecordDecodeError(f"{what}: shape {_describe(shape)} is not representable: {err}") from err


def _unpack_scalars(value: Any) -> dict[str, Scalar]:
    if not isinstance(value, dict):
        raise RecordDecodeError(f"record scalars must be a map, got {_describe(value)}")
    for name, scalar in value.items():
        if not isinstance(name, str):
            raise RecordDecodeError(f"record scalar names must be strings, got {_describe(name)}")
        if not isinstance(scalar, (bool, int, float, str)):
            raise RecordDecodeError(
                f"record scalar {name!r} must be a bool, int, float or str, got {_describe(scalar)}"
            )
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    """A short rendering of a decoded value for error messages; inputs may be huge."""
    return f"{type(value).__name__} {reprlib.repr(value)}"
