import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redux.sim_bridge.minisim.cameras import (
    ALPAMAYO_CAMERAS,
    alpamayo_rig,
    pinhole_from_fov,
    project,
    quaternion_to_rotation,
    rotation_to_quaternion,
    spec_as_dict,
    spec_from_dict,
)
from redux.sim_bridge.minisim.render_camera import ACTOR_RGB, LIGHT_RGB, clip_polygon_near, render_camera
from redux.sim_bridge.minisim.road_map import Crosswalk, Lane, LightState, RoadMap, StopLine, TrafficLight
from redux.sim_bridge.minisim.scene import ActorKind

WIDTH, HEIGHT = 160, 96
LANE_W = 3.5
STOP_X = 40.0  # the eastbound lane's stop line; its light turns green at LIGHT_CHANGE_S
LIGHT_CHANGE_S = 5.0


def segment(start, end, step=0.5):
    """Points every ``step`` metres from start to end (2-vectors)."""
    start, end = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    n = int(round(np.linalg.norm(end - start) / step)) + 1
    return start + np.linspace(0.0, 1.0, n)[:, None] * (end - start)


def straight(x0, x1, y):
    return segment((x0, y), (x1, y))


def two_way_road(with_light=True):
    """A straight two-way road along x, one lane each way (eastbound y < 0), edges at y = ±3.5.

    With ``with_light``: a stop line on the eastbound lane at x = 40 under a light that
    is red until t = 5 s and green after, and a crosswalk just beyond it.
    """
    east = Lane(0, straight(-60.0, 160.0, -0.5 * LANE_W), LANE_W, 13.9)
    west = Lane(1, straight(160.0, -60.0, 0.5 * LANE_W), LANE_W, 13.9)
    edges = (straight(-60.0, 160.0, -LANE_W), straight(-60.0, 160.0, LANE_W))
    if not with_light:
        return RoadMap({0: east, 1: west}, edges)
    light = TrafficLight(
        0,
        np.array([STOP_X + 2.0, -LANE_W, 5.5]),
        np.array([0.0, LIGHT_CHANGE_S]),
        np.array([LightState.RED, LightState.GREEN]),
    )
    stop = StopLine(0, STOP_X + 60.0, np.array([[STOP_X, -LANE_W], [STOP_X, 0.0]]), light_id=0)
    crosswalk = Crosswalk(
        np.array([[STOP_X + 1, -LANE_W], [STOP_X + 4, -LANE_W], [STOP_X + 4, LANE_W], [STOP_X + 1, LANE_W]])
    )
    return RoadMap({0: east, 1: west}, edges, (stop,), {0: light}, (crosswalk,))


def crossing():
    """A four-way junction at the origin: two-way roads along x and y, connector lanes inside, lights on x."""
    half = LANE_W
    lanes = {
        0: Lane(0, straight(-80.0, -half, -0.5 * LANE_W), LANE_W, 13.9, successors=(4,)),
        1: Lane(1, straight(-half, -80.0, 0.5 * LANE_W), LANE_W, 13.9),
        2: Lane(2, straight(half, 80.0, -0.5 * LANE_W), LANE_W, 13.9),
        3: Lane(3, straight(80.0, half, 0.5 * LANE_W), LANE_W, 13.9),
        4: Lane(4, straight(-half, half, -0.5 * LANE_W), LANE_W, 13.9, successors=(2,), in_junction=True),
    }
    lanes[5] = Lane(5, segment((0.5 * LANE_W, -80.0), (0.5 * LANE_W, -half)), LANE_W, 13.9)
    lanes[6] = Lane(6, segment((-0.5 * LANE_W, -half), (-0.5 * LANE_W, -80.0)), LANE_W, 13.9)
    lanes[7] = Lane(7, segment((0.5 * LANE_W, half), (0.5 * LANE_W, 80.0)), LANE_W, 13.9)
    lanes[8] = Lane(8, segment((-0.5 * LANE_W, 80.0), (-0.5 * LANE_W, half)), LANE_W, 13.9)
    for lane_id, (start, end) in enumerate(
        [
            ((half, 0.5 * LANE_W), (-half, 0.5 * LANE_W)),
            ((0.5 * LANE_W, -half), (0.5 * LANE_W, half)),
            ((-0.5 * LANE_W, half), (-0.5 * LANE_W, -half)),
        ],
        start=9,
    ):
        lanes[lane_id] = Lane(lane_id, segment(start, end), LANE_W, 13.9, in_junction=True)
    edges = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            edges.append(np.array([[sx * 80.0, sy * half], [sx * half, sy * half], [sx * half, sy * 80.0]]))
    light = TrafficLight(0, np.array([-half - 1.0, -half, 5.5]), np.array([0.0]), np.array([LightState.RED]))
    stop = StopLine(0, 80.0 - half - 1.0, np.array([[-half - 1.0, -half], [-half - 1.0, 0.0]]), light_id=0)
    return RoadMap(lanes, tuple(edges), (stop,), {0: light})


def no_actors():
    return np.zeros((0, 5)), np.zeros(0, dtype=np.int64)


EGO = np.array([0.0, -0.5 * LANE_W, 0.0])  # in the eastbound lane, facing east


def rig():
    return {spec.logical_id: spec for spec in alpamayo_rig(WIDTH, HEIGHT)}


# --- cameras ----------------------------------------------------------------------------------


def test_rig_has_the_four_alpamayo_cameras_and_a_narrow_tele():
    specs = alpamayo_rig(WIDTH, HEIGHT)
    assert (
        [s.logical_id for s in specs]
        == list(ALPAMAYO_CAMERAS)
        == [
            "camera_cross_left_120fov",
            "camera_front_wide_120fov",
            "camera_cross_right_120fov",
            "camera_front_tele_30fov",
        ]
    )
    fovs = {s.logical_id: s.horizontal_fov_deg for s in specs}
    assert fovs["camera_front_tele_30fov"] == pytest.approx(30.0)
    assert fovs["camera_front_wide_120fov"] == pytest.approx(120.0)
    for spec in specs:
        assert spec.rig_to_camera[2, 3] == pytest.approx(1.5, abs=0.3)
        assert spec.rig_to_camera[0, 3] == pytest.approx(1.8, abs=0.3)
        np.testing.assert_allclose(spec.rig_to_camera[:3, :3] @ spec.rig_to_camera[:3, :3].T, np.eye(3), atol=1e-12)


def test_intrinsics_from_fov():
    fx, fy, cx, cy = pinhole_from_fov(WIDTH, HEIGHT, 120.0)
    assert (cx, cy) == (80.0, 48.0)
    assert fx == pytest.approx(cx / math.tan(math.radians(60.0))) and fy == fx


def test_projection_centre_left_and_behind():
    spec = rig()["camera_front_wide_120fov"]
    mount = spec.rig_to_camera[:3, 3]
    ahead, left, behind = mount + [10.0, 0, 0], mount + [10.0, 3.0, 0], mount + [-5.0, 0, 0]
    uv, depth = project(np.array([ahead, left, behind]), spec)
    np.testing.assert_allclose(uv[0], [spec.cx, spec.cy], atol=1e-9)
    assert depth[0] == pytest.approx(10.0)
    assert uv[1, 0] < spec.cx and uv[1, 1] == pytest.approx(spec.cy)
    assert depth[2] < 0 and np.isnan(uv[2]).all()
    # a point above the camera is above the centre (v grows downward)
    uv_up, _ = project(np.array([mount + [10.0, 0.0, 2.0]]), spec)
    assert uv_up[0, 1] < spec.cy


def test_cross_cameras_look_to_their_side():
    specs = rig()
    left_point = np.array([[1.8, 20.0, 1.5]])  # abeam on the left, at camera height
    _, depth_left = project(left_point, specs["camera_cross_left_120fov"])
    _, depth_right = project(left_point, specs["camera_cross_right_120fov"])
    assert depth_left[0] > 0 > depth_right[0]


def test_spec_dict_round_trips_the_pose():
    for spec in alpamayo_rig(WIDTH, HEIGHT):
        message = spec_as_dict(spec)
        assert message["logical_id"] == spec.logical_id
        pinhole = message["intrinsics"]["opencv_pinhole_param"]
        assert (pinhole["focal_length_x"], pinhole["principal_point_y"]) == (spec.fx, spec.cy)
        assert (message["intrinsics"]["resolution_w"], message["intrinsics"]["resolution_h"]) == (WIDTH, HEIGHT)
        quat = message["rig_to_camera"]["quat"]
        assert math.isclose(sum(v * v for v in quat.values()), 1.0, rel_tol=1e-9) and quat["w"] >= 0
        back = spec_from_dict(message)
        np.testing.assert_allclose(back.rig_to_camera, spec.rig_to_camera, atol=1e-12)
        assert (back.width, back.height, back.fx, back.cx) == (spec.width, spec.height, spec.fx, spec.cx)


def test_quaternion_matrix_round_trip_on_random_rotations():
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[0] >= 0 else -q
        np.testing.assert_allclose(rotation_to_quaternion(quaternion_to_rotation(q)), q, atol=1e-9)


def test_near_plane_clip_keeps_the_front_part():
    square = np.array([[-1.0, 0.0, -2.0], [1.0, 0.0, -2.0], [1.0, 0.0, 4.0], [-1.0, 0.0, 4.0]])
    clipped = clip_polygon_near(square, near=0.5)
    assert len(clipped) == 4 and clipped[:, 2].min() == pytest.approx(0.5)
    assert len(clip_polygon_near(square - [0, 0, 10.0], near=0.5)) == 0


# --- rendering --------------------------------------------------------------------------------


def test_render_shape_dtype_and_determinism():
    specs = rig()
    road = two_way_road()
    boxes, kinds = np.array([[15.0, -1.75, 0.0, 4.5, 1.9]]), np.array([ActorKind.VEHICLE])
    for spec in specs.values():
        a = render_camera(spec, road, EGO, boxes, kinds, 0.0)
        b = render_camera(spec, road, EGO, boxes, kinds, 0.0)
        assert a.shape == (HEIGHT, WIDTH, 3) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)


def _changed(image, reference):
    return np.any(image != reference, axis=2)


def test_vehicle_ahead_shows_in_front_wide_near_the_centre_and_not_in_cross_right():
    specs, road = rig(), two_way_road(with_light=False)
    boxes, kinds = np.array([[EGO[0] + 15.0, EGO[1], 0.0, 4.5, 1.9]]), np.array([ActorKind.VEHICLE])
    front = specs["camera_front_wide_120fov"]
    image = render_camera(front, road, EGO, boxes, kinds, 0.0)
    changed = _changed(image, render_camera(front, road, EGO, *no_actors(), 0.0))
    rows, cols = np.nonzero(changed)
    assert len(cols) > 10
    assert abs(cols.mean() - front.cx) < 0.1 * WIDTH
    blue = ACTOR_RGB[ActorKind.VEHICLE][2]
    assert np.all(image[changed][:, 2] >= 0.5 * blue) and np.all(image[changed][:, 2] > image[changed][:, 0] + 60)
    cross_right = specs["camera_cross_right_120fov"]
    np.testing.assert_array_equal(
        render_camera(cross_right, road, EGO, boxes, kinds, 0.0),
        render_camera(cross_right, road, EGO, *no_actors(), 0.0),
    )


def test_nearer_box_is_drawn_over_farther():
    spec, road = rig()["camera_front_wide_120fov"], two_way_road(with_light=False)
    near_pedestrian = [EGO[0] + 8.0, EGO[1], 0.0, 0.6, 0.6]
    far_vehicle = [EGO[0] + 20.0, EGO[1], 0.0, 4.5, 1.9]
    for order in ([near_pedestrian, far_vehicle], [far_vehicle, near_pedestrian]):
        kinds = np.array(
            [ActorKind.PEDESTRIAN, ActorKind.VEHICLE]
            if order[0] is near_pedestrian
            else [ActorKind.VEHICLE, ActorKind.PEDESTRIAN]
        )
        image = render_camera(spec, road, EGO, np.array(order), kinds, 0.0)
        # the pedestrian stands in front of the vehicle's centre: the centre column shows the pedestrian
        centre = image[int(spec.cy) - 2, int(spec.cx)]
        assert centre[0] > 150 and centre[0] > centre[2] + 100, centre  # orange (shaded), not blue


def test_red_light_turns_green_in_the_front_camera():
    spec, road = rig()["camera_front_wide_120fov"], two_way_road()
    ego = np.array([STOP_X - 25.0, -0.5 * LANE_W, 0.0])

    def count(image, state):
        return int(np.all(image == LIGHT_RGB[state], axis=2).sum())

    red = render_camera(spec, road, ego, *no_actors(), LIGHT_CHANGE_S - 0.1)
    green = render_camera(spec, road, ego, *no_actors(), LIGHT_CHANGE_S + 0.1)
    assert count(red, LightState.RED) > 0 and count(red, LightState.GREEN) == 0
    assert count(green, LightState.GREEN) > 0 and count(green, LightState.RED) == 0
    # seen from behind (driving west past it), the head shows no lamp
    west = np.array([STOP_X + 25.0, 0.5 * LANE_W, math.pi])
    behind = render_camera(spec, road, west, *no_actors(), 0.0)
    assert count(behind, LightState.RED) == 0


def test_geometry_behind_the_camera_draws_nothing():
    specs, road = rig(), two_way_road()
    behind = np.array([[EGO[0] - 6.0, EGO[1], 0.0, 4.5, 1.9], [EGO[0] + 0.5, EGO[1], 0.0, 0.6, 0.6]])
    kinds = np.array([ActorKind.VEHICLE, ActorKind.PEDESTRIAN])  # the pedestrian is behind the camera mount
    for name in ("camera_front_wide_120fov", "camera_front_tele_30fov"):
        empty = render_camera(specs[name], road, EGO, *no_actors(), 0.0)
        np.testing.assert_array_equal(render_camera(specs[name], road, EGO, behind, kinds, 0.0), empty)


def test_junction_renders_from_every_camera_without_wraparound():
    road = crossing()
    ego = np.array([-15.0, -0.5 * LANE_W, 0.0])
    boxes = np.array([[-0.5 * LANE_W, -12.0, math.pi / 2, 4.5, 1.9], [6.0, 6.0, 0.0, 0.6, 0.6]])
    kinds = np.array([ActorKind.VEHICLE, ActorKind.PEDESTRIAN])
    for spec in alpamayo_rig(WIDTH, HEIGHT):
        image = render_camera(spec, road, ego, boxes, kinds, 0.0)
        # level cameras: the sky fills the top rows, nothing on the ground reaches above the horizon by much
        assert np.all(image[0] == image[0, 0])


def test_render_cost_is_a_few_milliseconds():
    spec, road = rig()["camera_front_wide_120fov"], two_way_road()
    boxes = np.array(
        [[EGO[0] + d, EGO[1] + lat, 0.0, 4.5, 1.9] for d, lat in [(10, 0), (25, 3.5), (40, 0), (-8, 3.5), (60, 3.5)]]
    )
    kinds = np.full(len(boxes), ActorKind.VEHICLE)
    render_camera(spec, road, EGO, boxes, kinds, 0.0)
    start = time.perf_counter()
    for _ in range(20):
        render_camera(spec, road, EGO, boxes, kinds, 0.0)
    per_frame_ms = (time.perf_counter() - start) / 20 * 1e3
    assert per_frame_ms < 20.0, per_frame_ms  # ~2 ms on the 2-core dev box; loose for shared CI


# --- properties -------------------------------------------------------------------------------

coordinate = st.floats(-30.0, 30.0, allow_nan=False)


@given(st.lists(st.tuples(coordinate, coordinate, coordinate), min_size=3, max_size=8), st.floats(0.1, 5.0))
def test_clipped_polygon_lies_in_front_and_keeps_what_was_in_front(vertices, near):
    polygon = np.array(vertices)
    clipped = clip_polygon_near(polygon, near)
    assert np.all(clipped[:, 2] >= near - 1e-9)
    for vertex in polygon[polygon[:, 2] >= near]:  # every vertex that was in front survives
        assert any(np.array_equal(row, vertex) for row in clipped)
    if np.all(polygon[:, 2] >= near):
        np.testing.assert_array_equal(clipped, polygon)


@settings(max_examples=25, deadline=None)
@given(
    st.floats(-math.pi, math.pi),
    st.lists(
        st.tuples(
            st.floats(-40.0, -3.0),
            st.floats(-20.0, 20.0),
            st.floats(-math.pi, math.pi),
            st.sampled_from(list(ActorKind)),
        ),
        max_size=6,
    ),
)
def test_actors_behind_the_front_cameras_never_show(yaw, actors):
    """Actors whose every point is behind the camera plane (rig x < mount - near) leave the front images untouched."""
    road, specs = two_way_road(), rig()
    ego = np.array([20.0, -0.5 * LANE_W, yaw])
    c, s = math.cos(yaw), math.sin(yaw)
    boxes = np.array(
        [[ego[0] + c * x - s * y, ego[1] + s * x + c * y, yaw + a, 4.5, 1.9] for x, y, a, _ in actors]
    ).reshape(-1, 5)
    kinds = np.array([k for *_, k in actors], dtype=np.int64)
    for name in ("camera_front_wide_120fov", "camera_front_tele_30fov"):
        np.testing.assert_array_equal(
            render_camera(specs[name], road, ego, boxes, kinds, 0.0),
            render_camera(specs[name], road, ego, *no_actors(), 0.0),
        )
