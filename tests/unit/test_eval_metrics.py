"""Per-timestep metrics on hand-built scenes, with the numbers worked out by hand.

Vehicles are 5.0 × 2.0 m: shrunk 2 % to 4.9 × 1.96 m, corner radius 0.5 · 1.96 / 2 = 0.49 m.
The ego's rig (rear axle) sits 1.5 m behind its box centre, so an ego at rig x = 0,
heading +x, spans x ∈ [1.5 − 2.45, 1.5 + 2.45] = [−0.95, 3.95] and y ∈ [−0.98, 0.98];
its front bumper cap is x ≥ 3.95 − 0.49 = 3.46 and its rear cap x ≤ −0.95 + 0.49 = −0.46.
"""

import numpy as np
import pytest

from redux.eval.collision import collision_metrics
from redux.eval.footprint import box_centres, ego_polygons
from redux.eval.path import dist_to_gt_trajectory, dist_traveled_m, progress
from redux.eval.plans import DriveCall, min_ade_for_call, open_loop_min_ade, plan_deviation, plan_metrics
from redux.eval.road import RoadGeometry, offroad, wrong_lane

LENGTH, WIDTH, REAR_AXLE_TO_CENTRE = 5.0, 2.0, 1.5


def ego_contacts(ego_xy_yaw, actor_xy_yaw, actor_size=(LENGTH, WIDTH)):
    ego = np.asarray(ego_xy_yaw, dtype=np.float64)
    actor = np.asarray(actor_xy_yaw, dtype=np.float64)
    boxes = np.concatenate([actor, np.tile(actor_size, (len(actor), 1))], axis=1)[None]
    return collision_metrics(ego, LENGTH, WIDTH, REAR_AXLE_TO_CENTRE, boxes, np.ones(boxes.shape[:2], dtype=bool))


def test_stopped_ego_hit_from_behind_is_a_rear_collision_not_at_fault():
    # the follower's front is at x + 2.45; the ego's rear at −0.95
    follower_x = np.array([-7.0, -6.0, -5.0, -3.8, -3.3])  # gaps 3.6, 2.6, 1.6, 0.4, overlap 0.1
    steps = len(follower_x)
    m = ego_contacts(np.zeros((steps, 3)), np.stack([follower_x, np.zeros(steps), np.zeros(steps)], axis=1))
    np.testing.assert_allclose(m["min_distance_to_obstacle_m"], [3.6, 2.6, 1.6, 0.4, 0.0], atol=1e-9)
    np.testing.assert_array_equal(m["collision_rear"], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(m["collision_any"], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(m["collision_front"], 0)
    np.testing.assert_array_equal(m["collision_lateral"], 0)
    np.testing.assert_array_equal(m["collision_at_fault"], 0)
    np.testing.assert_array_equal(m["close_encounter"], [0, 0, 0, 1, 1])  # < 0.5 m, or contact


def test_driving_into_an_oncoming_car_is_a_front_collision_at_fault():
    # the stopped car faces −x with its front at 10 − 2.45 = 7.55; the ego's front is at rig x + 3.95
    ego_x = np.array([0.0, 1.0, 2.0, 3.0, 3.7])  # gaps 3.6, 2.6, 1.6, 0.6, overlap 0.1
    steps = len(ego_x)
    ego = np.stack([ego_x, np.zeros(steps), np.zeros(steps)], axis=1)
    m = ego_contacts(ego, np.tile([10.0, 0.0, np.pi], (steps, 1)))
    np.testing.assert_allclose(m["min_distance_to_obstacle_m"], [3.6, 2.6, 1.6, 0.6, 0.0], atol=1e-9)
    np.testing.assert_array_equal(m["collision_front"], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(m["collision_at_fault"], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(m["collision_rear"] + m["collision_lateral"], 0)


def test_side_swipe_is_lateral_and_at_fault():
    # a 2.0 × 0.8 m motorbike (shrunk 1.96 × 0.784) alongside the ego's middle (x = 1.5), closing in from the left:
    # its right side is at y − 0.392 against the ego's left side at 0.98
    bike_y = np.array([2.5, 1.5, 1.272])  # gaps 1.128, 0.128, overlap 0.1
    steps = len(bike_y)
    bike = np.stack([np.full(steps, 1.5), bike_y, np.zeros(steps)], axis=1)
    m = ego_contacts(np.zeros((steps, 3)), bike, actor_size=(2.0, 0.8))
    np.testing.assert_allclose(m["min_distance_to_obstacle_m"], [1.128, 0.128, 0.0], atol=1e-9)
    np.testing.assert_array_equal(m["collision_lateral"], [0, 0, 1])
    np.testing.assert_array_equal(m["collision_at_fault"], [0, 0, 1])
    np.testing.assert_array_equal(m["collision_front"] + m["collision_rear"], 0)
    np.testing.assert_array_equal(m["close_encounter"], [0, 1, 1])


def test_invalid_actors_are_ignored_and_no_actor_means_infinite_distance():
    boxes = np.array([[[0.0, 0.0, 0.0, LENGTH, WIDTH]] * 2])  # sitting right on the ego
    m = collision_metrics(np.zeros((2, 3)), LENGTH, WIDTH, REAR_AXLE_TO_CENTRE, boxes, np.array([[False, True]]))
    np.testing.assert_array_equal(m["collision_any"], [0, 1])
    assert m["min_distance_to_obstacle_m"][0] == np.inf


# A straight two-lane road along x: lane centres y = 0 and y = 3.5, 3.5 m wide, edges at y = −1.75 and 5.25.
# The left lane runs the other way (centre line drawn from +x to −x).
xs = np.array([-50.0, 50.0])
TWO_LANE_ROAD = RoadGeometry(
    lane_centerlines=(np.stack([xs, [0.0, 0.0]], 1), np.stack([xs[::-1], [3.5, 3.5]], 1)),
    lane_widths=(3.5, 3.5),
    road_edges=(np.stack([xs, [-1.75, -1.75]], 1), np.stack([xs, [5.25, 5.25]], 1)),
)


def ego_offroad(rig_poses, road=TWO_LANE_ROAD):
    return offroad(ego_polygons(np.asarray(rig_poses, float), LENGTH, WIDTH, REAR_AXLE_TO_CENTRE), road)


def test_offroad_when_the_box_pokes_over_the_road_edge_not_when_straddling_the_lane_line():
    poses = [
        [0.0, 0.0, 0.0],  # inside the right lane: y ∈ [−0.98, 0.98]
        [0.0, 1.75, 0.0],  # on the lane line: y ∈ [0.77, 2.73], covered by the two lanes together
        [0.0, -1.0, 0.0],  # y ∈ [−1.98, −0.02]: over the edge at −1.75
        [0.0, 4.5, 0.0],  # y ∈ [3.52, 5.48]: over the left edge at 5.25
        [0.0, -5.0, 0.0],  # wholly past the edge, not touching it: Alpasim's rule does not flag it
    ]
    np.testing.assert_array_equal(ego_offroad(poses), [False, False, True, True, False])


def test_not_offroad_across_the_joint_of_consecutive_lanes():
    road = RoadGeometry(
        lane_centerlines=(np.array([[-50.0, 0.0], [0.0, 0.0]]), np.array([[0.0, 0.0], [50.0, 0.0]])),
        lane_widths=(3.5, 3.5),
        road_edges=(np.array([[-50.0, -1.75], [50.0, -1.75]]), np.array([[-50.0, 1.75], [50.0, 1.75]])),
    )
    # straddling x = 0, 0.72 m from the right edge: fine; shifted 0.8 m right it touches the edge
    np.testing.assert_array_equal(ego_offroad([[-1.5, 0.0, 0.0], [-1.5, -0.8, 0.0]], road), [False, True])


def test_wrong_lane_when_driving_against_the_lane():
    centres = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 3.5], [0.0, 3.5], [0.0, 10.0]])
    yaw = np.array([np.pi, 0.0, np.pi / 2, 0.0, np.pi - 0.1, np.pi])  # last: off every lane
    # right lane heads 0: π is wrong, π/2 is within 2π/3; left lane heads π: 0 is wrong, π − 0.1 is fine
    np.testing.assert_array_equal(wrong_lane(centres, yaw, TWO_LANE_ROAD), [True, False, False, True, False, False])
    # heading differences wrap: −π + 0.05 is 0.15 rad from π − 0.1
    assert not wrong_lane(centres[3:4], np.array([-np.pi + 0.05]), TWO_LANE_ROAD)[0]


def test_progress_distance_to_path_and_distance_traveled():
    recorded = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])  # 20 m, turning left at (10, 0)
    centres = np.array([[0.0, 0.0], [5.0, 1.0], [12.0, 5.0], [10.0, 30.0]])
    np.testing.assert_allclose(progress(centres, recorded), [0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(dist_to_gt_trajectory(centres, recorded), [0.0, 1.0, 2.0, 20.0])
    np.testing.assert_allclose(
        dist_traveled_m(centres), np.cumsum([0, np.hypot(5, 1), np.hypot(7, 4), np.hypot(2, 25)])
    )


def test_box_centre_sits_ahead_of_the_rig_along_the_heading():
    np.testing.assert_allclose(box_centres([[1.0, 2.0, np.pi / 2]], 1.5), [[1.0, 3.5]], atol=1e-12)


# The expert drives +x at 10 m/s; poses every 0.1 s for 20 s.
EXPERT_T_US = np.arange(201) * 100_000
EXPERT_PATH = np.stack([EXPERT_T_US * 1e-5, np.zeros(201)], axis=1)


def expert_call(step: int, offset=(0.0, 0.0), samples: int = 1) -> DriveCall:
    """The expert's own future from ``step`` as a 65-pose plan (pose 0 = now), shifted by ``offset``."""
    times = EXPERT_T_US[step : step + 65]
    plan = EXPERT_PATH[step : step + 65] + np.asarray(offset)
    return DriveCall(int(EXPERT_T_US[step]), times, np.repeat(plan[None], samples, axis=0))


def test_min_ade_of_the_experts_own_plan_is_zero_and_of_a_shifted_plan_is_the_shift():
    exact = expert_call(20)
    for horizon in (0.5, 1.0, 2.5, 5.0):
        assert min_ade_for_call(exact, EXPERT_T_US, EXPERT_PATH, horizon) == pytest.approx(0.0, abs=1e-9)
    shifted = expert_call(20, offset=(0.0, 1.0))
    assert min_ade_for_call(shifted, EXPERT_T_US, EXPERT_PATH, 2.5) == pytest.approx(1.0)
    # best of K: one good sample among bad ones
    both = DriveCall(exact.time_us, exact.plan_timestamps_us, np.concatenate([shifted.sampled_xy, exact.sampled_xy]))
    assert min_ade_for_call(both, EXPERT_T_US, EXPERT_PATH, 5.0) == pytest.approx(0.0, abs=1e-9)
    # near the end of the recording the horizon cannot be scored
    assert np.isnan(min_ade_for_call(expert_call(170), EXPERT_T_US, EXPERT_PATH, 5.0))


def test_min_ade_averages_the_error_over_the_horizon():
    call = expert_call(0)
    drift = np.arange(65)[:, None] * np.array([0.0, 0.1])  # 0.1 m more lateral error every 0.1 s
    call = DriveCall(call.time_us, call.plan_timestamps_us, call.sampled_xy + drift[None])
    # poses 1..5 within 0.5 s: errors 0.1..0.5, mean 0.3
    assert min_ade_for_call(call, EXPERT_T_US, EXPERT_PATH, 0.5) == pytest.approx(0.3)


def test_plan_deviation_of_identical_consecutive_plans_is_zero():
    assert plan_deviation(expert_call(20), expert_call(21)) == pytest.approx(0.0, abs=1e-9)
    # a constant 1 m shift of the new plan is a weighted average of 1 m
    assert plan_deviation(expert_call(20), expert_call(21, offset=(0.0, 1.0))) == pytest.approx(1.0)


def test_plan_deviation_weights_the_near_future_most():
    previous, current = expert_call(20), expert_call(21)
    growing = np.arange(65)[:, None] * np.array([0.0, 1.0])  # error i m at the current plan's pose i
    current = DriveCall(current.time_us, current.plan_timestamps_us, current.sampled_xy + growing[None])
    i = np.arange(63)  # common poses: current 1..63 (pose 64 lies past the previous plan's end)
    expected = np.sum(np.exp(-0.1 * i) * (i + 1)) / np.sum(np.exp(-0.1 * i))
    assert plan_deviation(previous, current) == pytest.approx(expected)


def test_plan_metrics_sit_at_drive_call_steps():
    sim_t = EXPERT_T_US[:80]  # the rollout ends at 7.9 s
    m = plan_metrics([expert_call(20), expert_call(30), expert_call(70)], sim_t, EXPERT_T_US, EXPERT_PATH)
    assert sorted(m) == ["min_ade@0.5s", "min_ade@1s", "min_ade@2.5s", "min_ade@5s", "plan_deviation"]
    assert np.flatnonzero(~np.isnan(m["min_ade@0.5s"])).tolist() == [20, 30, 70]
    assert np.flatnonzero(~np.isnan(m["min_ade@5s"])).tolist() == [20]  # 3.0 + 5 s > 7.9 s: not scored
    assert np.flatnonzero(~np.isnan(m["plan_deviation"])).tolist() == [30, 70]


def test_open_loop_min_ade_6_takes_the_best_of_six_samples():
    expert = np.zeros((2, 64, 2))
    samples = np.ones((2, 8, 64, 2)) * np.arange(8)[None, :, None, None]  # sample k off by (k, k)
    samples[:, 0] += 10.0  # the best of the first six is sample 1: error √2
    np.testing.assert_allclose(open_loop_min_ade(samples, expert), [np.sqrt(2)] * 2)
    with pytest.raises(ValueError):
        open_loop_min_ade(samples[:, :5], expert)
