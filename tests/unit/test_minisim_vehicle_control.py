import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from redux.policy.action_space import integrate
from redux.sim_bridge.minisim.vehicle_control import BicycleParams, bicycle_step, rig_to_world, track, world_to_rig

PARAMS = BicycleParams()


def follow(plan_world: np.ndarray, start: np.ndarray, steps: int) -> np.ndarray:
    """Track one plan open loop (never re-issued); positions (steps, 2) reached after each step."""
    state, reached = start[None].copy(), []
    for k in range(steps):
        accel, steer = track(state, plan_world[None], np.array([k]), PARAMS)
        state = bicycle_step(state, accel, steer, PARAMS)
        reached.append(state[0, :2].copy())
    return np.array(reached)


@settings(max_examples=40, deadline=None)
@given(
    speed=st.floats(3.0, 20.0),
    accel=st.floats(-1.5, 1.5),
    curvature=st.floats(-0.03, 0.03),
    yaw=st.floats(-np.pi, np.pi),
)
def test_tracking_error_stays_bounded_on_feasible_plans(speed, accel, curvature, yaw):
    # a smooth, feasible plan: constant acceleration and curvature, kept moving forward
    accel = max(accel, -(speed - 1.0) / 6.4)
    plan_rig = integrate(np.tile([accel, curvature], (64, 1)), speed)
    start = np.array([10.0, -5.0, yaw, speed])
    plan_world = rig_to_world(np.concatenate([np.zeros((1, 3)), plan_rig])[None], start[None])[0]
    reached = follow(plan_world, start, 40)
    error = np.linalg.norm(reached - plan_world[1:41, :2], axis=1)
    assert error.max() < 0.5, error.max()


def test_frames_round_trip():
    rng = np.random.default_rng(0)
    origin = rng.normal(size=(3, 4))
    poses = rng.normal(size=(3, 7, 3))
    back = rig_to_world(world_to_rig(poses, origin), origin)
    np.testing.assert_allclose(back[..., :2], poses[..., :2], atol=1e-9)
    np.testing.assert_allclose(np.cos(back[..., 2] - poses[..., 2]), 1.0, atol=1e-9)


def test_braking_stops_without_reversing():
    state = np.array([[0.0, 0.0, 0.0, 1.0]])
    for _ in range(5):
        state = bicycle_step(state, np.array([-9.8]), np.array([0.0]), PARAMS)
    assert state[0, 3] == 0.0 and state[0, 0] > 0.0


def test_a_stopped_plan_brings_the_car_to_rest():
    start = np.array([0.0, 0.0, 0.0, 8.0])
    plan_rig = integrate(np.tile([-4.0, 0.0], (64, 1)), 8.0)
    plan_rig[20:] = plan_rig[19]  # stopped after 2 s
    plan_world = rig_to_world(np.concatenate([np.zeros((1, 3)), plan_rig])[None], start[None])[0]
    state = start[None].copy()
    for k in range(50):
        accel, steer = track(state, plan_world[None], np.array([k]), PARAMS)
        state = bicycle_step(state, accel, steer, PARAMS)
    assert state[0, 3] < 0.3
    assert abs(state[0, 0] - plan_world[-1, 0]) < 1.0
