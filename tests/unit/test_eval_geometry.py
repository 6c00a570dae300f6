"""Footprints and convex-polygon geometry against shapely (the reference Alpasim itself uses)."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

shapely = pytest.importorskip("shapely")
from shapely import affinity  # noqa: E402
from shapely.geometry import LineString, Point, Polygon, box  # noqa: E402

from redux.eval.collision import collision_metrics  # noqa: E402
from redux.eval.footprint import (  # noqa: E402
    arc_error_bound,
    bumper_polygons,
    ego_polygons,
    rounded_box_polygons,
    shrunk_size_and_radius,
)
from redux.eval.path import project_onto_polyline  # noqa: E402
from redux.eval.polygons import (  # noqa: E402
    convex_polygon_distance,
    convex_polygons_intersect,
    polygon_polyline_distance,
)
from redux.eval.road import points_in_lane  # noqa: E402

SHAPELY_ARC_ERROR = 1 - np.cos(np.pi / 64)  # shapely's buffer: 16 segments per quarter circle, times r
TOUCH_BAND = 1e-7

boxes = st.tuples(
    st.floats(-8, 8),  # x
    st.floats(-8, 8),  # y
    st.floats(-np.pi, np.pi),  # yaw
    st.floats(0.3, 12.0),  # length
    st.floats(0.3, 4.0),  # width
)
coord = st.floats(-20, 20, allow_subnormal=False)
points_2d = st.tuples(coord, coord)
box_pairs = st.lists(st.tuples(boxes, boxes), min_size=1, max_size=12)


def footprints(params) -> np.ndarray:
    p = np.array(params, dtype=np.float64).reshape(-1, 5)
    return rounded_box_polygons(p[:, :2], p[:, 2], p[:, 3], p[:, 4])


def shapely_rounded_box(x, y, yaw, length, width) -> Polygon:
    """Alpasim's construction: shrink, then box.buffer(-r).buffer(r), then place."""
    length, width, r = (float(v) for v in shrunk_size_and_radius(length, width))
    shape = box(-length / 2, -width / 2, length / 2, width / 2).buffer(-r).buffer(r)
    return affinity.translate(affinity.rotate(shape, yaw, origin=(0, 0), use_radians=True), x, y)


@settings(max_examples=150, deadline=None)
@given(boxes)
def test_footprint_matches_shapely_rounded_box_within_the_arc_bound(params):
    ours = Polygon(footprints(params)[0])
    reference = shapely_rounded_box(*params)
    _, _, r = shrunk_size_and_radius(params[3], params[4])
    bound = float(arc_error_bound(r)) + r * SHAPELY_ARC_ERROR + 1e-9
    assert ours.is_valid and ours.exterior.is_ccw
    assert ours.hausdorff_distance(reference) <= bound
    assert abs(ours.area - reference.area) <= reference.length * bound
    # inscribed: never larger than the true shape (up to shapely's own arc error)
    assert reference.buffer(r * SHAPELY_ARC_ERROR + 1e-9).contains(ours)


@settings(max_examples=60, deadline=None)
@given(boxes)
def test_bumper_caps_are_the_footprint_near_the_bumper_lines(params):
    """Alpasim's bumper: the front edge of the shrunk box buffered by r, clipped to the footprint."""
    x, y, yaw, length, width = params
    front, rear = (Polygon(p[0]) for p in bumper_polygons([[x, y]], yaw, length, width))
    reference = shapely_rounded_box(*params)
    length_s, width_s, r = (float(v) for v in shrunk_size_and_radius(length, width))
    for cap, sign in ((front, 1), (rear, -1)):
        line = LineString([(sign * length_s / 2, -width_s / 2), (sign * length_s / 2, width_s / 2)])
        line = affinity.translate(affinity.rotate(line, yaw, origin=(0, 0), use_radians=True), x, y)
        expected = line.buffer(r).intersection(reference)
        assert cap.is_valid
        assert cap.symmetric_difference(expected).area <= 4 * reference.length * (arc_error_bound(r) + r * 0.01)


@settings(max_examples=150, deadline=None)
@given(box_pairs)
def test_intersection_and_distance_agree_with_shapely(pairs):
    a = footprints([p for p, _ in pairs])
    b = footprints([q for _, q in pairs])
    intersects = convex_polygons_intersect(a, b)
    distance = convex_polygon_distance(a, b)
    for i in range(len(pairs)):
        pa, pb = Polygon(a[i]), Polygon(b[i])
        expected = pa.intersects(pb)
        if intersects[i] != expected:  # only allowed within a hair of touching
            assert not pa.buffer(-TOUCH_BAND).intersects(pb) and pa.buffer(TOUCH_BAND).intersects(pb)
        assert distance[i] == pytest.approx(pa.distance(pb), abs=1e-6)
        assert (distance[i] == 0.0) == intersects[i]


def test_touching_boxes_intersect_and_distance_is_zero():
    # two axis-aligned 2 m squares side by side, sharing the edge x = 1 (sizes pre-shrink: 2 / 0.98)
    side = 2.0 / 0.98
    a = rounded_box_polygons([[0.0, 0.0]], 0.0, side, side)
    b = rounded_box_polygons([[2.0, 0.0]], 0.0, side, side)
    assert convex_polygons_intersect(a, b)[0]
    assert convex_polygon_distance(a, b)[0] == 0.0
    c = rounded_box_polygons([[2.5, 0.0]], 0.0, side, side)
    assert convex_polygon_distance(a, c)[0] == pytest.approx(0.5)


@settings(max_examples=80, deadline=None)
@given(boxes, st.lists(points_2d, min_size=2, max_size=8))
def test_polygon_to_polyline_distance_agrees_with_shapely(params, vertices):
    polygon = footprints(params)
    polyline = np.array(vertices)
    ours = polygon_polyline_distance(polygon, polyline)[0]
    assert ours == pytest.approx(Polygon(polygon[0]).distance(LineString(polyline)), abs=1e-6)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(points_2d, min_size=2, max_size=6),
    st.lists(points_2d, min_size=1, max_size=10),
)
def test_projection_onto_polyline_agrees_with_shapely(vertices, points):
    line = LineString(vertices)
    assume(line.length > 1e-6)  # shapely treats a degenerate line as empty
    along, dist = project_onto_polyline(np.array(points), np.array(vertices))
    for p, s, d in zip(points, along, dist):
        assert d == pytest.approx(line.distance(Point(p)), abs=1e-6)
        # equal distances to two segments may project to different places; compare the projected points
        assert line.interpolate(s).distance(Point(p)) == pytest.approx(d, abs=1e-6)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(points_2d, min_size=2, max_size=5, unique=True),
    st.floats(1.0, 5.0),
    st.lists(points_2d, min_size=1, max_size=30),
)
def test_lane_polygon_is_the_flat_capped_sweep_of_its_centre_line(vertices, width, points):
    assume(min(LineString(vertices[k : k + 2]).length for k in range(len(vertices) - 1)) > 1e-3)
    # a lane's centre line never folds back on itself; at a hairpin shapely's buffer of the
    # overlapping sweep is not the lane either (it fills the pocket between the two caps)
    d = np.diff(np.asarray(vertices, dtype=np.float64), axis=0)
    assume(all(np.dot(d[k], d[k + 1]) > 0 for k in range(len(d) - 1)))
    lane = LineString(vertices).buffer(width / 2, cap_style="flat")
    inside = points_in_lane(np.array(points), np.array(vertices), width)
    for p, ours in zip(points, inside):
        if ours != lane.covers(Point(p)):  # shapely's round joins are 16-gons: allow a thin band
            assert lane.boundary.distance(Point(p)) < width / 2 * SHAPELY_ARC_ERROR + 1e-6


@settings(max_examples=60, deadline=None)
@given(st.lists(boxes, min_size=1, max_size=8), st.floats(-np.pi, np.pi))
def test_collision_broad_phase_keeps_the_nearest_actor_and_every_contact(actors, ego_yaw):
    """The broad phase in collision_metrics must not change the answer of a brute-force check."""
    ego_pose = np.array([[0.0, 0.0, ego_yaw]])
    boxes_ = np.array(actors, dtype=np.float64)[:, None, :]  # (A, 1, 5)
    m = collision_metrics(ego_pose, 4.5, 1.9, 1.4, boxes_, np.ones(boxes_.shape[:2], dtype=bool))
    ego = Polygon(ego_polygons(ego_pose, 4.5, 1.9, 1.4)[0])
    others = [Polygon(p) for p in footprints(actors)]
    assert m["min_distance_to_obstacle_m"][0] == pytest.approx(min(ego.distance(o) for o in others), abs=1e-6)
    touching = [ego.intersects(o) for o in others]
    if m["collision_any"][0] != any(touching):
        assert all(not ego.buffer(-TOUCH_BAND).intersects(o) for o in others)


@settings(max_examples=150, deadline=None)
@given(boxes, st.floats(-np.pi, np.pi))
def test_contact_classification_matches_alpasims_bumper_lines(actor, ego_yaw):
    """Alpasim: front if the actor meets the front bumper line buffered by r and clipped to the ego, else rear, else lateral."""
    ego_pose = np.array([[0.0, 0.0, ego_yaw]])
    m = collision_metrics(ego_pose, 4.5, 1.9, 1.4, np.array(actor)[None, None], np.ones((1, 1), dtype=bool))
    ego = Polygon(ego_polygons(ego_pose, 4.5, 1.9, 1.4)[0])
    other = Polygon(footprints([actor])[0])
    length, width, r = (float(v) for v in shrunk_size_and_radius(4.5, 1.9))

    def bumper(sign):
        line = LineString([(sign * length / 2, -width / 2), (sign * length / 2, width / 2)])
        line = affinity.translate(
            affinity.rotate(line, ego_yaw, origin=(0, 0), use_radians=True),
            1.4 * np.cos(ego_yaw),
            1.4 * np.sin(ego_yaw),
        )
        return line.buffer(r).intersection(ego)

    front, rear = bumper(1), bumper(-1)

    def classify(o):
        if not ego.intersects(o):
            return None
        return "front" if o.intersects(front) else "rear" if o.intersects(rear) else "lateral"

    got = next((kind for kind in ("front", "rear", "lateral") if m[f"collision_{kind}"][0]), None)
    # a grazing contact may go either way: accept the answer for the actor grown or shrunk by a hair
    assert got in {classify(other.buffer(-TOUCH_BAND)), classify(other), classify(other.buffer(TOUCH_BAND))}
