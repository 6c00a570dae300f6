import numpy as np
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
    # as float32 on the wire, rounding of ~1e-5 m becomes ~1e-2 m/s² after two differences
    recovered = A.to_actions(poses.astype(np.float32), speed)
    np.testing.assert_allclose(recovered, actions, atol=3e-2)
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
