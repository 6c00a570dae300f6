import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from redux.policy import action_space as A

accels = arrays(np.float64, 64, elements=st.floats(-3.0, 3.0))
curvatures = arrays(np.float64, 64, elements=st.floats(-0.05, 0.05))


@settings(max_examples=60, deadline=None)
@given(accels, curvatures, st.floats(3.0, 20.0))
def test_plan_to_actions_to_plan_round_trip(accel, curvature, speed):
    # keep the vehicle moving forward so curvature is defined everywhere
    accel = np.clip(accel, -(speed - 1.0) / 6.4, None)
    actions = np.stack([accel, curvature], axis=-1)
    poses = A.integrate(actions, speed)
    assert poses.dtype == np.float64
    np.testing.assert_allclose(A.to_actions(poses, speed), actions, atol=1e-7)
    # as float32 on the wire, rounding of ~1e-5 m becomes ~1e-2 m/s² after two differences;
    # a fast plan ends ~200 m out, where float32 spacing is 1.5e-5 m and errors reach ~3.5e-2
    recovered = A.to_actions(poses.astype(np.float32), speed)
    np.testing.assert_allclose(recovered, actions, atol=5e-2)
    np.testing.assert_allclose(A.integrate(recovered, speed), poses, atol=3e-3)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, (5, 64, 2), elements=st.floats(-5, 5, width=32)))
def test_normalisation_round_trip(normalised):
    np.testing.assert_allclose(A.normalise(A.denormalise(normalised)), normalised, atol=1e-4)


def test_constant_speed_straight_line():
    poses = A.integrate(np.zeros((64, 2)), 10.0)
    np.testing.assert_allclose(poses[:, 0], 1.0 * np.arange(1, 65), atol=1e-4)
    np.testing.assert_allclose(poses[:, 1:], 0.0, atol=1e-6)


def test_constant_curvature_follows_a_circle():
    radius = 50.0
    poses = A.integrate(np.tile([0.0, 1 / radius], (64, 1)), 10.0)
    centre = np.array([0.0, radius])
    np.testing.assert_allclose(np.hypot(*(poses[:, :2] - centre).T), radius, rtol=1e-4)


def test_bounds_are_the_published_ones():
    clipped = A.clip_to_bounds(np.array([[20.0, 1.0], [-20.0, -1.0]], dtype=np.float32))
    np.testing.assert_allclose(clipped, [[9.8, 0.33], [-9.8, -0.33]], rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 30.0), st.floats(-np.pi, np.pi))
def test_speed_estimate_from_history(speed, heading):
    t = (np.arange(16) - 15) * A.DT_S
    xy = np.stack([np.cos(heading) * speed * t, np.sin(heading) * speed * t], axis=-1)
    assert abs(A.estimate_speed(xy) - speed) < 1e-3


HISTORY_T = (np.arange(16) - 15) * A.DT_S


def _rotate(xy, heading):
    c, s = np.cos(heading), np.sin(heading)
    return xy @ np.array([[c, s], [-s, c]])


@settings(max_examples=60, deadline=None)
@given(st.floats(0.5, 30.0), st.floats(-0.33, 0.33), st.floats(-np.pi, np.pi))
def test_speed_estimate_on_a_constant_speed_turn(speed, curvature, heading):
    # yaw rates above what a car can do (κ·v > 1.8 rad/s) are outside the estimator's range
    curvature = float(np.clip(curvature, -1.8 / speed, 1.8 / speed))
    if abs(curvature) < 1e-9:
        xy = np.stack([speed * HISTORY_T, 0 * HISTORY_T], axis=-1)
    else:
        yaw = curvature * speed * HISTORY_T
        xy = np.stack([np.sin(yaw), 1 - np.cos(yaw)], axis=-1) / curvature
    assert abs(A.estimate_speed(_rotate(xy, heading)) - speed) < 1e-3


@pytest.mark.parametrize("accel", [-4.0, -1.0, 2.0])
def test_speed_estimate_on_constant_acceleration(accel):
    x = 12.0 * HISTORY_T + 0.5 * accel * HISTORY_T**2
    # the ridge shrinks the acceleration a little: a bias of ~0.003 s·a
    assert abs(A.estimate_speed(np.stack([x, 0 * x], axis=-1)) - 12.0) < 0.005 * abs(accel)


def test_speed_estimate_on_an_accelerating_turn_follows_a_roll_out():
    # a real plan: the roll-out of constant controls, seen from its last pose
    actions = np.tile([1.5, 0.04], (15, 1))
    poses = np.concatenate([np.zeros((1, 3)), A.integrate(actions, 6.0)])
    c, s = np.cos(poses[-1, 2]), np.sin(poses[-1, 2])
    xy = (poses[:, :2] - poses[-1, :2]) @ np.array([[c, -s], [s, c]])
    assert abs(A.estimate_speed(xy) - (6.0 + 1.5 * 1.5)) < 0.02


def test_speed_estimate_beats_a_finite_difference_under_pose_noise():
    rng = np.random.default_rng(0)
    yaw = 0.05 * 10.0 * HISTORY_T
    clean = np.stack([np.sin(yaw), 1 - np.cos(yaw)], axis=-1) / 0.05  # 10 m/s on a 20 m radius
    noisy = clean + rng.normal(0.0, 0.05, size=(500, 16, 2))
    fitted = A.estimate_speed(noisy) - 10.0
    finite_difference = np.hypot(*(noisy[:, -1] - noisy[:, -2]).T) / A.DT_S - 10.0
    assert np.sqrt(np.mean(fitted**2)) < 0.25 * np.sqrt(np.mean(finite_difference**2))


def test_speed_estimate_shapes_and_dtype():
    history = np.zeros((4, 3, 16, 3), np.float32)
    speeds = A.estimate_speed(history[..., :2])
    assert speeds.shape == (4, 3) and speeds.dtype == np.float32
    assert np.all(speeds == 0.0)


def test_history_to_xyz_rot():
    history = np.zeros((2, 16, 3), np.float32)
    history[1, 5] = [3.0, -1.0, np.pi / 2]
    xyz, rot = A.history_to_xyz_rot(history)
    assert xyz.shape == (2, 16, 3) and rot.shape == (2, 16, 3, 3) and rot.dtype == np.float32
    np.testing.assert_array_equal(xyz[1, 5], [3.0, -1.0, 0.0])
    np.testing.assert_allclose(rot[1, 5] @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-7)  # +x turns to +y
    np.testing.assert_allclose(rot @ np.swapaxes(rot, -1, -2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-6)
    np.testing.assert_array_equal(rot[0], np.broadcast_to(np.eye(3), (16, 3, 3)))
