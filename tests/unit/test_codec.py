"""The buffer's wire format: exact round trips, and nothing but RecordDecodeError on bad input."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import msgpack
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import redux.buffer
from redux.buffer.codec import (
    SCHEMA_VERSION,
    RecordDecodeError,
    RolloutRecord,
    decode_message,
    decode_record,
    decode_tensors,
    encode_message,
    encode_record,
    encode_tensors,
)

RECORD_DTYPES = [
    "bool",
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "uint64",
    "int64",
    "float16",
    "float32",
    "float64",
]
TORCH_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8, torch.bool]

int64s = st.integers(-(2**63), 2**63 - 1)
names = st.text(min_size=1, max_size=12)
scalar_values = st.one_of(int64s, st.floats(allow_nan=False), st.text(max_size=20), st.booleans())


@st.composite
def records(draw: st.DrawFn) -> RolloutRecord:
    steps = draw(st.integers(0, 4))
    tensors = {}
    for name in draw(st.lists(names, max_size=4, unique=True)):
        shape = (steps, *draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)))
        dtype = np.dtype(draw(st.sampled_from(RECORD_DTYPES))).newbyteorder(draw(st.sampled_from("<>")))
        tensors[name] = draw(hnp.arrays(dtype, shape))
    return RolloutRecord(
        actor_id=draw(int64s),
        session=draw(int64s),
        episode=draw(int64s),
        step_start=draw(int64s),
        weight_version=draw(int64s),
        created_s=draw(st.floats(allow_nan=False)),
        tensors=tensors,
        scalars=draw(st.dictionaries(names, scalar_values, max_size=5)),
    )


def make_record(**changes) -> RolloutRecord:
    fields = dict(
        actor_id=3,
        session=1,
        episode=7,
        step_start=16,
        weight_version=2,
        created_s=1.5,
        tensors={
            "bev": np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4),
            "ego_history": np.ones((2, 16, 3), np.float32),
            "target_actions": np.zeros((2, 64, 2), np.float32),
        },
        scalars={"reward": 0.5, "done": False, "scene": "s-12", "collisions": 0},
    )
    return RolloutRecord(**{**fields, **changes})


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    little_endian = want.dtype.newbyteorder("<")
    assert got.dtype == little_endian and got.shape == want.shape
    assert got.tobytes() == want.astype(little_endian).tobytes()


def assert_same_record(got: RolloutRecord, want: RolloutRecord) -> None:
    for name in ("actor_id", "session", "episode", "step_start", "weight_version", "created_s", "scalars"):
        assert getattr(got, name) == getattr(want, name), name
    assert list(got.tensors) == list(want.tensors)
    for name, array in want.tensors.items():
        assert_same_bits(got.tensors[name], array)
    assert got.num_steps == want.num_steps and got.key == want.key


@settings(deadline=None, max_examples=150)
@given(records())
def test_record_round_trip_is_exact(rec: RolloutRecord) -> None:
    decoded = decode_record(encode_record(rec))
    assert_same_record(decoded, rec)
    assert all(array.flags.writeable and array.flags.owndata for array in decoded.tensors.values())
    assert all(type(value) is type(rec.scalars[name]) for name, value in decoded.scalars.items())


def test_record_properties() -> None:
    rec = make_record()
    assert rec.num_steps == 2
    assert rec.key == "a3-s1-e7-t16"
    assert make_record(tensors={}).num_steps == 0


def test_non_contiguous_and_numpy_scalar_inputs_are_encoded_by_value() -> None:
    transposed = np.arange(12, dtype=np.float32).reshape(3, 4).T
    rec = make_record(tensors={"x": transposed}, scalars={"reward": np.float32(0.25), "steps": np.int64(3)})
    decoded = decode_record(encode_record(rec))
    np.testing.assert_array_equal(decoded.tensors["x"], transposed)
    assert decoded.scalars == {"reward": 0.25, "steps": 3}


@pytest.mark.parametrize(
    "tensors, message",
    [
        ({"a": np.zeros((2, 3)), "b": np.zeros((3, 3))}, "disagree on the number of steps"),
        ({"a": np.float32(1.0) * np.ones(())}, "no leading step dimension"),
        ({"a": np.array(["x", "y"])}, "dtype"),
    ],
)
def test_encode_rejects_tensors_that_cannot_be_per_step(tensors: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_record(make_record(tensors=tensors))


def test_encode_rejects_unsupported_scalars() -> None:
    with pytest.raises(TypeError, match="scalar 'bad'"):
        encode_record(make_record(scalars={"bad": [1, 2]}))


tensor_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


@st.composite
def named_tensors(draw: st.DrawFn) -> dict[str, torch.Tensor]:
    out = {}
    for name in draw(st.lists(names, max_size=4, unique=True)):
        dtype = draw(st.sampled_from(TORCH_DTYPES))
        shape = draw(tensor_shapes)
        # Random bit patterns (NaNs, infinities, subnormals) through a same-width integer view.
        bits = draw(hnp.arrays({1: np.uint8, 2: np.int16, 4: np.int32, 8: np.int64}[dtype.itemsize], shape))
        if dtype == torch.bool:
            bits = np.asarray(bits % 2 == 1)  # a 0-d comparison yields a numpy scalar, not an array
        out[name] = torch.from_numpy(bits).view(dtype)
    return out


@settings(deadline=None, max_examples=150)
@given(named_tensors())
def test_tensor_round_trip_is_bitwise(named: dict[str, torch.Tensor]) -> None:
    decoded = decode_tensors(encode_tensors(named))
    assert list(decoded) == list(named)
    for name, tensor in named.items():
        got = decoded[name]
        assert got.dtype == tensor.dtype and got.shape == tensor.shape
        assert raw_bits(got) == raw_bits(tensor)


def raw_bits(tensor: torch.Tensor) -> bytes:
    if tensor.dtype.is_floating_point:  # compare bits, so that NaN payloads count too
        tensor = tensor.view({2: torch.int16, 4: torch.int32}[tensor.dtype.itemsize])
    return tensor.numpy().tobytes()


def test_bfloat16_state_dict_round_trip() -> None:
    model = torch.nn.Linear(4, 3).to(torch.bfloat16)
    state = {**model.state_dict(), "step": torch.tensor(7), "mask": torch.tensor([True, False])}
    decoded = decode_tensors(encode_tensors(state))
    for name, tensor in state.items():
        assert decoded[name].dtype == tensor.dtype
        assert torch.equal(decoded[name], tensor)
    decoded["weight"].add_(1)  # writable, owns its memory


def test_encode_tensors_accepts_numpy_and_rejects_unsupported_dtypes() -> None:
    decoded = decode_tensors(encode_tensors({"w": np.arange(6, dtype=">f4").reshape(2, 3)}))
    assert torch.equal(decoded["w"], torch.arange(6, dtype=torch.float32).reshape(2, 3))
    with pytest.raises(ValueError, match="complex64"):
        encode_tensors({"z": torch.zeros(2, dtype=torch.complex64)})


def test_message_round_trip() -> None:
    message = {"actor": 2, "steps_per_s": 41.5, "name": "eval", "ok": True, "hist": [1, 2, 3], "nested": {"a": None}}
    assert decode_message(encode_message(message)) == message
    with pytest.raises(RecordDecodeError, match="map"):
        decode_message(msgpack.packb([1, 2]))
    with pytest.raises(RecordDecodeError):
        decode_message(b"\xc1")


# --- bad input: RecordDecodeError, never anything else ---------------------------------

DECODERS = [decode_record, decode_tensors, decode_message]


def decodes_or_rejects(decode, data: bytes) -> None:
    """The contract under fuzzing: a value, or RecordDecodeError; any other exception fails."""
    try:
        decode(data)
    except RecordDecodeError:
        pass


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=200), st.sampled_from(DECODERS))
def test_random_bytes_never_raise_anything_else(data: bytes, decode) -> None:
    decodes_or_rejects(decode, data)


json_like = st.recursive(
    st.none() | st.booleans() | int64s | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@settings(deadline=None, max_examples=200)
@given(json_like, st.sampled_from(DECODERS))
def test_well_formed_msgpack_of_the_wrong_shape_is_rejected(value, decode) -> None:
    decodes_or_rejects(decode, msgpack.packb(value))


VALID_RECORD = encode_record(make_record())
VALID_TENSORS = encode_tensors({"w": torch.ones(2, 3, dtype=torch.bfloat16), "step": torch.tensor(3)})
VALID_ENCODINGS = [VALID_RECORD, VALID_TENSORS]


mutations = st.tuples(st.integers(0, 10_000), st.integers(0, 255), st.sampled_from(["set", "insert", "delete"]))


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID_ENCODINGS), st.lists(mutations, min_size=1, max_size=6), st.sampled_from(DECODERS))
def test_mutated_encodings_never_raise_anything_else(valid: bytes, mutations, decode) -> None:
    data = bytearray(valid)
    for position, byte, kind in mutations:
        position %= len(data) + 1
        if kind == "insert":
            data.insert(position, byte)
        elif position < len(data):
            if kind == "set":
                data[position] = byte
            else:
                del data[position]
    decodes_or_rejects(decode, bytes(data))


@settings(deadline=None, max_examples=100)
@given(st.sampled_from([(VALID_RECORD, decode_record), (VALID_TENSORS, decode_tensors)]), st.data())
def test_truncated_encodings_are_rejected(case, data: st.DataObject) -> None:
    valid, decode = case
    with pytest.raises(RecordDecodeError):
        decode(valid[: data.draw(st.integers(0, len(valid) - 1))])


def record_map(**changes) -> bytes:
    """A valid record's map with fields replaced; ``...`` removes a field."""
    top = msgpack.unpackb(VALID_RECORD)
    top.update(changes)
    return msgpack.packb({key: value for key, value in top.items() if value is not ...})


def tensor_entry(**changes) -> dict:
    return {"dtype": "float32", "shape": [2, 3], "data": bytes(24), **changes}


@pytest.mark.parametrize(
    "data, message",
    [
        (record_map(schema=SCHEMA_VERSION + 1), f"schema version int {SCHEMA_VERSION + 1}"),
        (record_map(schema=...), "schema version NoneType"),
        (record_map(schema=True), "schema version bool"),
        (record_map(actor_id="3"), "'actor_id' must be an integer"),
        (record_map(weight_version=2.0), "'weight_version' must be an integer"),
        (record_map(created_s="now"), "'created_s' must be a number"),
        (record_map(episode=...), "missing \\['episode'\\]"),
        (record_map(extra=1), "unexpected \\['extra'\\]"),
        (record_map(tensors=[1]), "tensors must be a map"),
        (record_map(tensors={"x": tensor_entry(dtype="object")}), "dtype str 'object' is not one of"),
        (record_map(tensors={"x": tensor_entry(dtype="bfloat16")}), "dtype str 'bfloat16' is not one of"),
        (record_map(tensors={"x": tensor_entry(shape=[2, -3])}), "not a list of non-negative integers"),
        (record_map(tensors={"x": tensor_entry(shape=(2, 3.0))}), "not a list of non-negative integers"),
        (record_map(tensors={"x": tensor_entry(data=bytes(23))}), "23 bytes, but shape \\[2, 3\\] of float32 needs 24"),
        (record_map(tensors={"x": tensor_entry(data="text")}), "data must be bytes"),
        (record_map(tensors={"x": tensor_entry(shape=[2**62, 0, 2**62], data=b"")}), "not representable"),
        (record_map(tensors={"x": tensor_entry(), "y": tensor_entry(shape=[3, 2])}), "disagree on the number of steps"),
        (record_map(tensors={"x": tensor_entry(shape=[], data=bytes(4))}), "no leading step dimension"),
        (record_map(scalars={"r": [1]}), "scalar 'r' must be"),
        (record_map(scalars={"r": None}), "scalar 'r' must be"),
        (b"", "not valid msgpack"),
        (encode_record(make_record()) + b"\x00", "not valid msgpack"),
    ],
)
def test_bad_records_name_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(RecordDecodeError, match=message):
        decode_record(data)


def test_wrong_schema_version_is_named_for_tensor_payloads_too() -> None:
    payload = msgpack.packb({"schema": 99, "tensors": {}})
    with pytest.raises(RecordDecodeError, match="schema version int 99; this code reads version 1"):
        decode_tensors(payload)


def test_non_bytes_input_is_rejected() -> None:
    with pytest.raises(RecordDecodeError, match="must be bytes"):
        decode_record("not bytes")  # type: ignore[arg-type]


def test_no_pickle_in_the_buffer_package() -> None:
    forbidden = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve"}
    for path in Path(redux.buffer.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not imported & forbidden, f"{path.name} imports {imported & forbidden}"


def test_decoded_floats_keep_nan_and_infinity() -> None:
    values = np.array([[math.nan, math.inf, -0.0]], dtype=np.float32)
    decoded = decode_record(encode_record(make_record(tensors={"x": values})))
    assert decoded.tensors["x"].tobytes() == values.tobytes()
