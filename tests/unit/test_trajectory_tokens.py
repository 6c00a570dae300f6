import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from redux.policy import action_space as A
from redux.policy import trajectory_tokens as T

# any finite or infinite value: out-of-range ones must land in the end bins
wide = st.floats(allow_nan=False, width=32)


def _within_half_bin(decoded, expected, width):
    # half a bin, plus float32 rounding of the decoded centre
    slack = 0.5 * width + 1e-6 + np.spacing(np.abs(expected).astype(np.float32))
    assert np.all(np.abs(decoded.astype(np.float64) - expected) <= slack)


def test_vocabulary_layout():
    assert (T.FUTURE_BINS, T.HISTORY_BINS, T.TRAJ_VOCAB) == (3000, 1000, 4000)
    assert (T.FUTURE_TOKENS, T.HISTORY_TOKENS) == (128, 48)


def test_future_range_is_the_physical_bounds_normalised():
    bounds = np.array([[-A.ACCEL_BOUND, -A.CURVATURE_BOUND], [A.ACCEL_BOUND, A.CURVATURE_BOUND]], np.float32)
    np.testing.assert_allclose(T.FUTURE_RANGE.T, A.normalise(bounds), rtol=1e-6)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float32, (3, 64, 2), elements=wide))
def test_future_round_trip_is_within_half_a_bin(normalised):
    ids = T.encode_future(normalised)
    assert ids.shape == (3, 128) and ids.dtype == np.int64
    assert ids.min() >= 0 and ids.max() < T.FUTURE_BINS
    decoded = T.decode_future(ids)
    assert decoded.shape == (3, 64, 2) and decoded.dtype == np.float32
    clipped = np.clip(normalised.astype(np.float64), T.FUTURE_RANGE[:, 0], T.FUTURE_RANGE[:, 1])
    _within_half_bin(decoded, clipped, T.FUTURE_BIN_WIDTH)
    np.testing.assert_array_equal(T.encode_future(decoded), ids)  # centres are fixed points


def test_future_tokens_interleave_accel_and_curvature():
    actions = np.zeros((64, 2), np.float32)
    actions[:, 1] = T.FUTURE_RANGE[1, 1]  # every curvature in the top bin
    ids = T.encode_future(actions)
    assert np.all(ids[1::2] == T.FUTURE_BINS - 1)
    assert np.all(ids[0::2] == ids[0]) and ids[0] != T.FUTURE_BINS - 1
    assert T.encode_future(np.full((64, 2), -1e9))[0] == 0


@pytest.mark.parametrize("bad", [-1, 3000, 3999])
def test_future_ids_outside_their_bins_are_refused(bad):
    ids = np.zeros(128, np.int64)
    ids[7] = bad
    with pytest.raises(ValueError, match=str(bad)):
        T.decode_future(ids)


def test_future_shape_and_nan_are_refused():
    with pytest.raises(ValueError, match="shape"):
        T.encode_future(np.zeros((32, 2)))
    with pytest.raises(ValueError, match="NaN"):
        T.encode_future(np.full((64, 2), np.nan))


@settings(max_examples=100, deadline=None)
@given(
    arrays(np.float64, (2, 16, 2), elements=st.floats(-200, 200)),
    arrays(np.float64, (2, 16), elements=st.floats(-10, 10)),
)
def test_history_round_trip_is_within_half_a_bin(xy, yaw):
    history = np.concatenate([xy, yaw[..., None]], axis=-1)
    ids = T.encode_history(history)
    assert ids.shape == (2, 48) and ids.dtype == np.int64
    assert ids.min() >= T.FUTURE_BINS and ids.max() < T.TRAJ_VOCAB
    decoded = T.decode_history(ids)
    assert decoded.shape == (2, 16, 3)
    expected = np.clip(history, T.HISTORY_RANGE[:, 0], T.HISTORY_RANGE[:, 1])
    _within_half_bin(decoded[..., :2], expected[..., :2], T.HISTORY_BIN_WIDTH[:2])
    # yaw is an angle: compare on the circle
    yaw_error = np.angle(np.exp(1j * (decoded[..., 2] - yaw)))
    assert np.all(np.abs(yaw_error) <= 0.5 * T.HISTORY_BIN_WIDTH[2] + 1e-6)


def test_history_of_a_real_drive_is_fine_grained():
    t = (np.arange(16) - 15) * A.DT_S
    history = np.stack([30.0 * t, 0.02 * t**2, 0.1 * t], axis=-1)  # 108 km/h, gently turning
    error = np.abs(T.decode_history(T.encode_history(history)) - history)
    assert error[..., :2].max() <= 0.04 and error[..., 2].max() <= 0.004


def test_history_nan_and_foreign_ids_are_refused():
    history = np.zeros((16, 3))
    history[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        T.encode_history(history)
    with pytest.raises(ValueError, match="2999"):
        T.decode_history(np.full(48, 2999))
    with pytest.raises(ValueError, match="integers"):
        T.decode_history(np.full(48, 3000.0))
