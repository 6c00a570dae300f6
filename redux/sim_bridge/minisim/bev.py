"""Ego-centric bird's-eye-view raster of a minisim scene: the BEV planner's camera.

Forward is up and left is left; the ego's rear axle sits at the horizontal centre,
three quarters down the image, so the raster shows three times more road ahead
than behind. Each channel is a mask drawn with Pillow into an 8-bit canvas; actor
boxes are filled together with their outline so that one smaller than a pixel (a
pedestrian at 1 m/pixel) still lights the pixel it stands in.

With ``supersample`` S > 1 the masks are drawn at S times the resolution and each
pixel is the mean of its S x S block: a pixel's value is the share of it covered.
At 1 m/pixel a binary mask hides lateral offsets under a metre, which is most of
the margin to the road edge; coverage makes them visible to a policy.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from redux.sim_bridge.minisim.bev_geometry import Primitives, box_corners, road_paint
from redux.sim_bridge.minisim.road_map import LightState, RoadMap
from redux.sim_bridge.minisim.scene import ActorKind

BEV_CHANNELS = ("drivable", "lane_markings", "vehicles", "vulnerable_road_users", "stop_lines_red", "route")
ROUTE_WIDTH_M = 2.0
STOP_LINE_DRAWN_WIDTH_M = 0.5
EGO_ROW_FRACTION = 0.75
_VEHICLE_KINDS = (ActorKind.VEHICLE, ActorKind.PARKED)
_VRU_KINDS = (ActorKind.PEDESTRIAN, ActorKind.CYCLIST)
_STOP_STATES = (LightState.RED, LightState.AMBER)


def world_to_bev(ego_pose: np.ndarray, pixels: int, metres_per_pixel: float) -> np.ndarray:
    """(2, 3) affine map from world (x, y, 1) to continuous image (col, row) of the ego-centric raster."""
    x, y, yaw = (float(v) for v in ego_pose[:3])
    c, s = np.cos(yaw), np.sin(yaw)
    scale = 1.0 / metres_per_pixel
    # rig forward = ( c, s)·(p - ego), rig left = (-s, c)·(p - ego); col = W/2 - left, row = 3H/4 - forward
    linear = scale * np.array([[s, -c], [-c, -s]])
    origin = np.array([0.5 * pixels, EGO_ROW_FRACTION * pixels]) - linear @ np.array([x, y])
    return np.concatenate([linear, origin[:, None]], axis=1)


def to_pillow(points: np.ndarray) -> list[float]:
    """Image points (N, 2) as the flat pixel indices ImageDraw takes: the pixel holding each point.

    Image coordinates are continuous: pixel (col, row) covers [col, col + 1) x [row, row + 1).
    ImageDraw truncates floats, which is the same except left of or above the image.
    """
    return np.floor(points).ravel().tolist()


def draw_primitives(
    draw: ImageDraw.ImageDraw, prims: Primitives, chosen, affine: np.ndarray, fill, polygon: bool, width: int = 1
) -> None:
    """Draw the primitives ``chosen`` (indices) of a top-down view given by ``affine`` (world -> image)."""
    if len(chosen) == 0:
        return
    points, offsets = prims.gather(np.asarray(chosen, dtype=np.int64))
    image_points = points @ affine[:, :2].T + affine[:, 2]
    for k in range(len(chosen)):
        piece = to_pillow(image_points[offsets[k] : offsets[k + 1]])
        if polygon:
            draw.polygon(piece, fill=fill)
        else:
            draw.line(piece, fill=fill, width=width)


def render_bev(
    road_map: RoadMap,
    ego_pose: np.ndarray,
    actor_boxes: np.ndarray,
    actor_kinds: np.ndarray,
    t_s: float,
    route_polyline: np.ndarray | None,
    pixels: int,
    metres_per_pixel: float,
    supersample: int = 1,
) -> np.ndarray:
    """(len(BEV_CHANNELS), pixels, pixels) uint8 raster around an ego at world pose (x, y, yaw).

    ``actor_boxes`` (A, 5) are world x, y, yaw, length, width; ``actor_kinds`` (A,)
    ActorKind; ``t_s`` sets the traffic lights; ``route_polyline`` (M, 2) world
    points of the route ahead (NaN rows ignored), or None; ``supersample`` as in the
    module docstring.
    """
    if supersample < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    if supersample > 1:
        fine = render_bev(
            road_map, ego_pose, actor_boxes, actor_kinds, t_s, route_polyline,
            pixels * supersample, metres_per_pixel / supersample,
        )  # fmt: skip
        blocks = fine.reshape(len(BEV_CHANNELS), pixels, supersample, pixels, supersample)
        return np.round(blocks.mean(axis=(2, 4), dtype=np.float32)).astype(np.uint8)
    paint = road_paint(road_map)
    affine = world_to_bev(ego_pose, pixels, metres_per_pixel)
    # everything within the circle around the ego that contains the whole raster
    reach_m = metres_per_pixel * pixels * np.hypot(0.5, EGO_ROW_FRACTION)
    ego_xy = np.asarray(ego_pose[:2], dtype=np.float64)
    canvases = [Image.new("L", (pixels, pixels), 0) for _ in BEV_CHANNELS]
    drivable, markings, vehicles, vrus, stop_lines, route = (ImageDraw.Draw(c) for c in canvases)

    draw_primitives(drivable, paint.surface, paint.surface.within(ego_xy, reach_m), affine, 255, polygon=True)
    draw_primitives(markings, paint.markings, paint.markings.within(ego_xy, reach_m), affine, 255, polygon=False)
    stopping = [
        i
        for i in paint.stop_lines.within(ego_xy, reach_m)
        if paint.stop_light_ids[i] is None
        or road_map.traffic_lights[paint.stop_light_ids[i]].state_at(t_s) in _STOP_STATES
    ]
    stop_width = max(1, round(STOP_LINE_DRAWN_WIDTH_M / metres_per_pixel))
    draw_primitives(stop_lines, paint.stop_lines, stopping, affine, 255, polygon=False, width=stop_width)

    boxes = np.asarray(actor_boxes, dtype=np.float64).reshape(-1, 5)
    kinds = np.asarray(actor_kinds, dtype=np.int64).reshape(-1)
    near = np.linalg.norm(boxes[:, :2] - ego_xy, axis=1) < reach_m + 0.5 * np.hypot(boxes[:, 3], boxes[:, 4])
    corners = box_corners(boxes) @ affine[:, :2].T + affine[:, 2]  # (A, 4, 2) image
    for a in np.flatnonzero(near):
        canvas = vehicles if kinds[a] in _VEHICLE_KINDS else vrus if kinds[a] in _VRU_KINDS else None
        if canvas is not None:
            canvas.polygon(to_pillow(corners[a]), fill=255, outline=255)

    if route_polyline is not None:
        points = np.asarray(route_polyline, dtype=np.float64).reshape(-1, 2)
        points = points[np.isfinite(points).all(axis=1)] @ affine[:, :2].T + affine[:, 2]
        if len(points) >= 2:
            route.line(to_pillow(points), fill=255, width=max(1, round(ROUTE_WIDTH_M / metres_per_pixel)))
    return np.stack([np.asarray(c) for c in canvases])


# colours of a human-readable composite, in drawing order: later channels paint over earlier ones
_CHANNEL_RGB = {
    "drivable": (80, 80, 86),
    "lane_markings": (235, 235, 235),
    "route": (60, 170, 90),
    "stop_lines_red": (235, 40, 40),
    "vehicles": (50, 100, 230),
    "vulnerable_road_users": (255, 150, 20),
}


def bev_to_rgb(bev: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 picture of a BEV raster with the ego's rear axle as a white dot, for looking at it."""
    height, width = bev.shape[1:]
    image = np.full((height, width, 3), 24, dtype=np.uint8)
    for name, rgb in _CHANNEL_RGB.items():
        image[bev[BEV_CHANNELS.index(name)] > 0] = rgb
    row, col = int(EGO_ROW_FRACTION * height), width // 2
    image[row - 1 : row + 1, col - 1 : col + 1] = 255
    return image
