import math
import time

import numpy as np
import pytest

from redux.sim_bridge.minisim.bev import BEV_CHANNELS, bev_to_rgb, render_bev, world_to_bev
from redux.sim_bridge.minisim.bev_geometry import DASH_PERIOD_M, PIECE_LENGTH_M, MarkingStyle, road_paint
from redux.sim_bridge.minisim.road_map import Lane, RoadMap
from redux.sim_bridge.minisim.scene import ActorKind
from test_minisim_camera import LANE_W, LIGHT_CHANGE_S, STOP_X, crossing, no_actors, straight, two_way_road

PIXELS, MPP = 64, 1.0
CH = {name: i for i, name in enumerate(BEV_CHANNELS)}
EGO = np.array([0.0, -0.5 * LANE_W, 0.0])


def pixel_of(rig_x, rig_y):
    """(row, col) of the pixel holding a rig-frame point, for the default raster."""
    return int(math.floor(0.75 * PIXELS - rig_x / MPP)), int(math.floor(0.5 * PIXELS - rig_y / MPP))


def test_markings_dashed_between_same_direction_lanes_and_one_centre_line_between_directions():
    two_way = road_paint(two_way_road(with_light=False))
    styles = two_way.marking_styles
    assert set(styles.tolist()) == {MarkingStyle.EDGE, MarkingStyle.CENTRE}
    centre = two_way.markings.points[np.repeat(styles, np.diff(two_way.markings.offsets)) == MarkingStyle.CENTRE]
    np.testing.assert_allclose(centre[:, 1], 0.0, atol=1e-9)  # the centre line lies on y = 0 ...
    assert (styles == MarkingStyle.CENTRE).sum() == int(np.ceil(220.0 / PIECE_LENGTH_M))  # ... painted once
    # two lanes the same way: one dashed divider between them
    right = Lane(0, straight(0.0, 120.0, -0.5 * LANE_W), LANE_W, 13.9, left=1)
    left = Lane(1, straight(0.0, 120.0, 0.5 * LANE_W), LANE_W, 13.9, right=0)
    one_way = road_paint(RoadMap({0: right, 1: left}, (straight(0.0, 120.0, -LANE_W), straight(0.0, 120.0, LANE_W))))
    dividers = np.flatnonzero(one_way.marking_styles == MarkingStyle.DIVIDER)
    assert len(dividers) == int(np.ceil(120.0 / DASH_PERIOD_M))
    assert MarkingStyle.CENTRE not in one_way.marking_styles.tolist()


def test_shape_dtype_binary_and_deterministic():
    road = two_way_road()
    bev = render_bev(road, EGO, *no_actors(), 0.0, None, PIXELS, MPP)
    assert bev.shape == (len(BEV_CHANNELS), PIXELS, PIXELS) and bev.dtype == np.uint8
    assert set(np.unique(bev)) <= {0, 255}
    np.testing.assert_array_equal(bev, render_bev(road, EGO, *no_actors(), 0.0, None, PIXELS, MPP))


def test_world_to_bev_puts_forward_up_and_left_left():
    pose = np.array([10.0, 5.0, math.pi / 2])  # facing north: forward is +y, left is -x
    affine = world_to_bev(pose, PIXELS, MPP)
    np.testing.assert_allclose(affine @ [10.0, 15.0, 1.0], [32.0, 38.0], atol=1e-9)  # 10 m ahead: (col, row)
    np.testing.assert_allclose(affine @ [7.0, 5.0, 1.0], [29.0, 48.0], atol=1e-9)  # 3 m to the left


def test_drivable_on_the_lanes_and_not_off_them():
    bev = render_bev(two_way_road(with_light=False), EGO, *no_actors(), 0.0, None, PIXELS, MPP)
    drivable = bev[CH["drivable"]]
    # the road spans rig y in [-1.75, 5.25] (ego in the right lane of a 7 m road)
    for rig_y in (-1.0, 0.5, 2.5, 4.5):
        assert drivable[pixel_of(10.0, rig_y)] == 255, rig_y
    for rig_y in (-3.5, -8.0, 7.0, 15.0):
        assert drivable[pixel_of(10.0, rig_y)] == 0, rig_y
    # the road runs the whole height of the raster, and its width is 7 pixels give or take the edges
    assert np.all(drivable.max(axis=1) == 255)
    assert 6 <= int((drivable[20] > 0).sum()) <= 8
    markings = bev[CH["lane_markings"]]
    assert markings[pixel_of(10.0, 0.5 * LANE_W)] == 255  # the centre line (world y = 0)
    assert markings[pixel_of(10.0, 0.0)] == 0  # the middle of the ego lane


def test_pedestrian_lands_in_the_vru_channel_at_its_pixel():
    rig_x, rig_y = 10.5, 2.5  # a pixel centre
    boxes = np.array([[EGO[0] + rig_x, EGO[1] + rig_y, 0.3, 0.6, 0.6]])
    bev = render_bev(two_way_road(), EGO, boxes, np.array([ActorKind.PEDESTRIAN]), 0.0, None, PIXELS, MPP)
    vru = bev[CH["vulnerable_road_users"]]
    assert vru[pixel_of(rig_x, rig_y)] == 255
    assert 1 <= int((vru > 0).sum()) <= 4
    assert bev[CH["vehicles"]].sum() == 0


def test_vehicles_and_parked_share_the_vehicle_channel_and_rotate_with_the_ego():
    boxes = np.array([[15.0, -0.5 * LANE_W, 0.0, 4.5, 1.9], [10.0, 5.0, 0.0, 4.5, 1.9]])
    kinds = np.array([ActorKind.VEHICLE, ActorKind.PARKED])
    bev = render_bev(two_way_road(), EGO, boxes, kinds, 0.0, None, PIXELS, MPP)
    vehicles = bev[CH["vehicles"]]
    assert vehicles[pixel_of(15.0, 0.0)] == 255 and vehicles[pixel_of(10.0, 5.0 + 0.5 * LANE_W)] == 255
    rows, cols = np.nonzero(vehicles)
    # the lead vehicle is long along the image's vertical axis (forward is up)
    lead = cols >= 30
    assert np.ptp(rows[lead]) > np.ptp(cols[lead])
    # the same scene with the ego turned left by 90 degrees: the lead is now to the right and long across
    turned = render_bev(
        two_way_road(), np.array([EGO[0], EGO[1], math.pi / 2]), boxes[:1], kinds[:1], 0.0, None, PIXELS, MPP
    )
    rows, cols = np.nonzero(turned[CH["vehicles"]])
    assert cols.max() > 40 and np.ptp(cols) > np.ptp(rows)


def test_red_light_stop_line_toggles_with_the_light():
    ego = np.array([STOP_X - 15.0, -0.5 * LANE_W, 0.0])
    red = render_bev(two_way_road(), ego, *no_actors(), LIGHT_CHANGE_S - 0.5, None, PIXELS, MPP)
    green = render_bev(two_way_road(), ego, *no_actors(), LIGHT_CHANGE_S + 0.5, None, PIXELS, MPP)
    stop = CH["stop_lines_red"]
    # the line lies on the boundary between two pixel rows: either may hold it
    assert red[stop][pixel_of(15.0, -0.5)] == 255 or red[stop][pixel_of(15.5, -0.5)] == 255
    assert red[stop].sum() > 0 and green[stop].sum() == 0
    np.testing.assert_array_equal(np.delete(red, stop, axis=0), np.delete(green, stop, axis=0))


def test_route_channel_follows_the_route():
    route = np.stack([np.arange(0.0, 80.0, 4.2), np.full(20, -0.5 * LANE_W)], axis=1)  # along rig y = 0
    route[-3:] = np.nan  # padding is ignored
    bev = render_bev(two_way_road(), EGO, *no_actors(), 0.0, route, PIXELS, MPP)
    channel = bev[CH["route"]]
    assert channel[pixel_of(20.0, 0.0)] == 255 and channel[pixel_of(20.0, 5.0)] == 0
    assert channel[pixel_of(-5.0, 0.0)] == 0  # the route starts at the ego
    assert render_bev(two_way_road(), EGO, *no_actors(), 0.0, None, PIXELS, MPP)[CH["route"]].sum() == 0


def test_junction_and_composite_picture():
    bev = render_bev(crossing(), np.array([-15.0, -0.5 * LANE_W, 0.3]), *no_actors(), 0.0, None, PIXELS, MPP)
    assert bev[CH["drivable"]].mean() > 20 and bev[CH["stop_lines_red"]].sum() > 0
    picture = bev_to_rgb(bev)
    assert picture.shape == (PIXELS, PIXELS, 3) and picture.dtype == np.uint8


def test_bev_cost_is_about_a_millisecond():
    road, boxes = crossing(), np.array([[-0.5 * LANE_W, -12.0, math.pi / 2, 4.5, 1.9], [6.0, 6.0, 0.0, 0.6, 0.6]])
    kinds = np.array([ActorKind.VEHICLE, ActorKind.PEDESTRIAN])
    render_bev(road, EGO, boxes, kinds, 0.0, None, PIXELS, MPP)
    start = time.perf_counter()
    for _ in range(50):
        render_bev(road, EGO, boxes, kinds, 0.0, None, PIXELS, MPP)
    per_frame_ms = (time.perf_counter() - start) / 50 * 1e3
    assert per_frame_ms < 10.0, per_frame_ms  # ~0.6 ms on the 2-core dev box; loose for shared CI


def test_supersampled_raster_is_the_coverage_of_the_fine_one():
    road = two_way_road(with_light=False)
    coarse = render_bev(road, EGO, *no_actors(), 0.0, None, PIXELS, MPP, supersample=4)
    fine = render_bev(road, EGO, *no_actors(), 0.0, None, 4 * PIXELS, MPP / 4)
    assert coarse.shape == (len(BEV_CHANNELS), PIXELS, PIXELS) and coarse.dtype == np.uint8
    expected = np.round(fine.reshape(len(BEV_CHANNELS), PIXELS, 4, PIXELS, 4).mean(axis=(2, 4)))
    np.testing.assert_array_equal(coarse, expected.astype(np.uint8))
    assert 0 < coarse[CH["lane_markings"]].max() < 255  # thin paint covers part of a pixel


def test_supersampling_shows_lateral_offsets_a_binary_mask_hides():
    road = two_way_road(with_light=False)

    def raster(offset_m, supersample):
        ego = EGO + np.array([0.0, offset_m, 0.0])
        return render_bev(road, ego, *no_actors(), 0.0, None, PIXELS, MPP, supersample=supersample).astype(int)

    # the road's edges and centre line sit at x.80 and x.30 pixel columns, then at x.90 and x.40:
    # no edge crosses a pixel border, so the binary raster cannot tell; 1/8 m coverage can
    np.testing.assert_array_equal(raster(0.05, 1), raster(0.15, 1))
    assert np.abs(raster(0.05, 8) - raster(0.15, 8)).sum() > 0
    # and the coverage moves the right way: a car further left sees more road on its right
    right_edge = (slice(None), int(0.5 * PIXELS + 0.5 * LANE_W))
    drivable = raster(0.05, 8)[CH["drivable"]][right_edge].sum(), raster(0.15, 8)[CH["drivable"]][right_edge].sum()
    assert drivable[1] > drivable[0]


def test_supersample_below_one_is_refused():
    with pytest.raises(ValueError, match="supersample"):
        render_bev(two_way_road(), EGO, *no_actors(), 0.0, None, PIXELS, MPP, supersample=0)
