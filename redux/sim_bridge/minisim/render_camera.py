"""Perspective camera images of a minisim scene: what the policy's cameras see.

A flat-shaded rasteriser built for speed on a CPU: numpy transforms every vertex of
the road in one product, Pillow's ImageDraw fills the projected polygons. Drawing
order is the painter's: sky, ground, road surface, crosswalks, markings, stop lines,
then actors and traffic-light heads from the farthest to the nearest. Everything is
clipped against the near plane (Sutherland–Hodgman) before projection, so geometry
behind or beside the camera never wraps around into the image.

Pixel coordinates follow cameras.py (pixel (c, r) covers [c, c+1) x [r, r+1)); vertices
go to ImageDraw as the index of the pixel holding them (floor), which is what it does
with floats itself (truncation) except left of or above the image.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from redux.sim_bridge.minisim.bev_geometry import MarkingStyle, Primitives, box_corners, road_paint
from redux.sim_bridge.minisim.cameras import CameraSpec
from redux.sim_bridge.minisim.road_map import LightState, RoadMap
from redux.sim_bridge.minisim.scene import ActorKind

NEAR_M = 0.5
# Ground farther than this is not drawn. 80 m puts the cut within a pixel of the
# horizon for the 120° cameras at the default 160 px width; narrower or larger images
# (the 30° tele camera, full-resolution frames) get up to MAX_GROUND_RANGE_M.
GROUND_RANGE_M = 80.0
MAX_GROUND_RANGE_M = 250.0
OBJECT_RANGE_M = 150.0

SKY_RGB = (168, 196, 226)
GROUND_RGB = (104, 122, 84)  # off-road: verge and grass
ROAD_RGB = (74, 74, 80)
CROSSWALK_RGB = (200, 200, 200)
STOP_LINE_RGB = (240, 240, 240)
MARKING_RGB = {
    MarkingStyle.DIVIDER: (230, 230, 230),
    MarkingStyle.EDGE: (230, 230, 230),
    MarkingStyle.CENTRE: (235, 190, 40),
}

ACTOR_RGB = {
    ActorKind.VEHICLE: (40, 90, 215),
    ActorKind.PARKED: (150, 95, 175),
    ActorKind.PEDESTRIAN: (255, 140, 20),
    ActorKind.CYCLIST: (20, 200, 190),
}
ACTOR_HEIGHT_M = {ActorKind.VEHICLE: 1.6, ActorKind.PARKED: 1.6, ActorKind.PEDESTRIAN: 1.75, ActorKind.CYCLIST: 1.7}

_MARKING_RGB_BY_STYLE = np.array([MARKING_RGB[style] for style in MarkingStyle])

LIGHT_RGB = {LightState.RED: (255, 35, 35), LightState.AMBER: (255, 185, 0), LightState.GREEN: (40, 235, 90)}
HOUSING_RGB = (28, 28, 28)
LIGHT_SLOT = {LightState.RED: -1, LightState.AMBER: 0, LightState.GREEN: 1}  # lamp position, top to bottom
LAMP_RADIUS_M, LAMP_SPACING_M = 0.15, 0.32
HOUSING_HALF_WIDTH_M, HOUSING_HALF_HEIGHT_M = 0.22, 0.52

# Box faces over the 8 corners (bottom front-left, rear-left, rear-right, front-right,
# then the same on top) and their brightness: fixed per face so that two visible faces
# never share a shade, and front and rear differ (which way a vehicle points).
_FACES = np.array([[0, 3, 7, 4], [1, 2, 6, 5], [0, 1, 5, 4], [2, 3, 7, 6], [4, 5, 6, 7]])
_FACE_SHADE = np.array([1.0, 0.74, 0.6, 0.6, 1.15])
_FACE_RGB = {
    kind: [tuple(int(v) for v in np.clip(np.array(rgb) * shade, 0, 255)) for shade in _FACE_SHADE]
    for kind, rgb in ACTOR_RGB.items()
}
_ANGLES = np.linspace(0.0, 2.0 * np.pi, 72, endpoint=False)
_HORIZON_DISC = 20.0 * MAX_GROUND_RANGE_M * np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1)
_HEIGHTS = np.array([ACTOR_HEIGHT_M[ActorKind(k)] for k in range(len(ActorKind))])


def ground_range_m(spec: CameraSpec) -> float:
    """How far the ground is drawn: until it is within a pixel of the horizon, 80–250 m."""
    camera_height = spec.rig_to_camera[2, 3]
    return float(np.clip(spec.fy * camera_height, GROUND_RANGE_M, MAX_GROUND_RANGE_M))


def world_to_optical(spec: CameraSpec, ego_pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) with optical = R @ world + t for an ego rig at world pose (x, y, yaw) on the ground."""
    x, y, yaw = (float(v) for v in ego_pose[:3])
    world_from_rig = np.eye(4)
    world_from_rig[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
    world_from_rig[:2, 3] = (x, y)
    world_from_optical = world_from_rig @ spec.rig_to_camera
    rotation = world_from_optical[:3, :3].T
    return rotation, -rotation @ world_from_optical[:3, 3]


def clip_polygon_near(points: np.ndarray, near: float = NEAR_M) -> np.ndarray:
    """Sutherland–Hodgman clip of a polygon (N, 3) in the optical frame to z >= near; (0, 3) if none is left.

    Walking the edges p_i -> p_i+1 in order, the output is p_i when it is in front,
    followed by the edge's crossing point when the edge crosses the plane.
    """
    inside = points[:, 2] >= near
    if inside.all():
        return points
    if not inside.any():
        return points[:0]
    following = np.roll(points, -1, axis=0)
    crossing = inside != np.roll(inside, -1)
    dz = following[:, 2] - points[:, 2]
    t = np.where(crossing, (near - points[:, 2]) / np.where(crossing, dz, 1.0), 0.0)
    cut = points + t[:, None] * (following - points)
    cut[:, 2] = near
    candidates = np.stack([points, cut], axis=1).reshape(-1, 3)
    return candidates[np.stack([inside, crossing], axis=1).reshape(-1)]


def _pixels(optical: np.ndarray, spec: CameraSpec) -> list[float]:
    """Flat [u0, v0, u1, v1, ...] pixel coordinates of optical points in front of the camera, for ImageDraw."""
    uv = np.empty((len(optical), 2))
    uv[:, 0] = spec.fx * optical[:, 0] / optical[:, 2] + spec.cx
    uv[:, 1] = spec.fy * optical[:, 1] / optical[:, 2] + spec.cy
    return np.floor(uv).ravel().tolist()


def _fill_ground(
    draw, prims: Primitives, colours: np.ndarray, rotation, translation, spec, camera_xy, range_m, outline=False
):
    """Fill the ground polygons ``prims`` within range_m (``colours`` (P, 3): one per polygon).

    ``outline`` also strokes the outline, which keeps thin paint at least a pixel wide.
    """
    chosen = prims.within(camera_xy, range_m)
    if len(chosen) == 0:
        return
    points, offsets = prims.gather(chosen)
    optical = points @ rotation[:, :2].T + translation
    starts = offsets[:-1]
    x, y, z = optical.T
    # frustum culling without dividing by depth: a piece whose vertices all lie outside
    # one plane of the frustum (near, left, right, top, bottom) is invisible
    z_min = np.minimum.reduceat(z, starts)
    hidden = (
        (np.maximum.reduceat(z, starts) <= NEAR_M)
        | (np.maximum.reduceat(spec.fx * x + spec.cx * z, starts) < 0)
        | (np.minimum.reduceat(spec.fx * x + (spec.cx - spec.width) * z, starts) > 0)
        | (np.maximum.reduceat(spec.fy * y + spec.cy * z, starts) < 0)
        | (np.minimum.reduceat(spec.fy * y + (spec.cy - spec.height) * z, starts) > 0)
    )
    depth = np.maximum(z, NEAR_M)  # pixels of the vertices in front; pieces that cross the near plane are redone
    uv = np.stack([spec.fx * x / depth + spec.cx, spec.fy * y / depth + spec.cy], axis=1)
    for k in np.flatnonzero(~hidden):
        if z_min[k] >= NEAR_M:
            pixels = np.floor(uv[offsets[k] : offsets[k + 1]]).ravel().tolist()
        else:
            piece = clip_polygon_near(optical[offsets[k] : offsets[k + 1]])
            if len(piece) < 3:
                continue
            pixels = _pixels(piece, spec)
        rgb = tuple(colours[chosen[k]].tolist())
        draw.polygon(pixels, fill=rgb, outline=rgb if outline else None)


def render_camera(
    spec: CameraSpec,
    road_map: RoadMap,
    ego_pose: np.ndarray,
    actor_boxes: np.ndarray,
    actor_kinds: np.ndarray,
    t_s: float,
) -> np.ndarray:
    """(H, W, 3) uint8 image of camera ``spec`` on an ego at world pose (x, y, yaw).

    ``actor_boxes`` (A, 5) are world x, y, yaw, length, width of box centres,
    ``actor_kinds`` (A,) their ActorKind; ``t_s`` is the scene time that sets the
    traffic lights.
    """
    paint = road_paint(road_map)
    rotation, translation = world_to_optical(spec, ego_pose)
    camera_world = -rotation.T @ translation
    camera_xy = camera_world[:2]
    range_m = ground_range_m(spec)
    image = Image.new("RGB", (spec.width, spec.height), SKY_RGB)
    draw = ImageDraw.Draw(image)

    # the ground plane: a disc far beyond the range, clipped to what is in front. A
    # many-sided disc (not a square) keeps its far rim level in the image: the horizon.
    ground = clip_polygon_near((camera_xy + _HORIZON_DISC) @ rotation[:, :2].T + translation)
    if len(ground) >= 3:
        draw.polygon(_pixels(ground, spec), fill=GROUND_RGB)

    view = (rotation, translation, spec, camera_xy, range_m)
    _fill_ground(draw, paint.surface, np.broadcast_to(ROAD_RGB, (len(paint.surface), 3)), *view)
    _fill_ground(draw, paint.crosswalks, np.broadcast_to(CROSSWALK_RGB, (len(paint.crosswalks), 3)), *view)
    _fill_ground(draw, paint.marking_ribbons, _MARKING_RGB_BY_STYLE[paint.marking_styles], *view, outline=True)
    _fill_ground(
        draw, paint.stop_line_ribbons, np.broadcast_to(STOP_LINE_RGB, (len(paint.stop_lines), 3)), *view, outline=True
    )

    # actors and light heads, farthest first
    objects = _actor_faces(actor_boxes, actor_kinds, rotation, translation, camera_world)
    objects += _light_heads(road_map, paint.light_facing, t_s, rotation, translation, camera_world, spec)
    for _, kind, payload in sorted(objects, key=lambda o: -o[0]):
        if kind == "faces":
            for face, rgb in payload:
                face = clip_polygon_near(face)
                if len(face) >= 3:
                    draw.polygon(_pixels(face, spec), fill=rgb)
        else:
            housing, lamp, lamp_rgb = payload
            draw.rectangle(housing, fill=HOUSING_RGB)
            if lamp is not None:
                draw.ellipse(lamp, fill=lamp_rgb)
    return np.asarray(image)


def _actor_faces(actor_boxes, actor_kinds, rotation, translation, camera_world) -> list:
    """(distance, "faces", [(face (4, 3) optical, rgb), ...]) per actor in range with a face toward the camera."""
    boxes = np.asarray(actor_boxes, dtype=np.float64).reshape(-1, 5)
    if len(boxes) == 0:
        return []
    kinds = np.asarray(actor_kinds, dtype=np.int64).reshape(-1)
    distance = np.linalg.norm(boxes[:, :2] - camera_world[:2], axis=1)
    footprint = box_corners(boxes)  # (A, 4, 2)
    heights = _HEIGHTS[kinds]
    corners = np.concatenate(
        [
            np.concatenate([footprint, np.zeros((len(boxes), 4, 1))], axis=2),
            np.concatenate([footprint, np.broadcast_to(heights[:, None, None], (len(boxes), 4, 1))], axis=2),
        ],
        axis=1,
    )  # (A, 8, 3) world
    c, s, zero = np.cos(boxes[:, 2]), np.sin(boxes[:, 2]), np.zeros(len(boxes))
    normals = np.stack(
        [
            np.stack([c, s, zero], axis=1),
            np.stack([-c, -s, zero], axis=1),
            np.stack([-s, c, zero], axis=1),
            np.stack([s, -c, zero], axis=1),
            np.stack([zero, zero, zero + 1.0], axis=1),
        ],
        axis=1,
    )  # (A, 5, 3)
    face_centres = corners[:, _FACES].mean(axis=2)  # (A, 5, 3)
    facing = np.sum(normals * (camera_world - face_centres), axis=-1) > 0.0
    optical = corners @ rotation.T + translation  # (A, 8, 3)
    in_front = optical[:, :, 2].max(axis=1) > NEAR_M
    objects = []
    for a in np.flatnonzero(in_front & (distance < OBJECT_RANGE_M)):
        rgb = _FACE_RGB[ActorKind(int(kinds[a]))]
        faces = [(optical[a, _FACES[f]], rgb[f]) for f in np.flatnonzero(facing[a])]
        objects.append((float(distance[a]), "faces", faces))
    return objects


def _light_heads(road_map, light_facing, t_s, rotation, translation, camera_world, spec) -> list:
    """(distance, "light", (housing box, lamp box or None, lamp rgb)) per light head in view.

    Heads are drawn as camera-facing billboards. A head whose back is to the camera
    (known from the stop lines it controls) shows no lamp, as a real one would not.
    """
    objects = []
    for light_id, light in road_map.traffic_lights.items():
        position = np.asarray(light.position, dtype=np.float64)
        distance = float(np.linalg.norm(position - camera_world))
        optical = rotation @ position + translation
        if optical[2] < NEAR_M or distance > OBJECT_RANGE_M:
            continue
        u = spec.fx * optical[0] / optical[2] + spec.cx
        v = spec.fy * optical[1] / optical[2] + spec.cy
        scale = spec.fx / optical[2]
        radius = max(1.0, LAMP_RADIUS_M * scale)
        spacing = max(2.0 * radius + 1.0, LAMP_SPACING_M * scale)
        half_w = max(radius + 1.0, HOUSING_HALF_WIDTH_M * scale)
        half_h = max(spacing + radius + 1.0, HOUSING_HALF_HEIGHT_M * scale)
        housing = [u - half_w, v - half_h, u + half_w, v + half_h]
        lamp, lamp_rgb = None, None
        facing = light_facing.get(light_id)
        if facing is None or np.dot(facing, camera_world[:2] - position[:2]) > 0.0:
            state = light.state_at(t_s)
            lamp_v = v + LIGHT_SLOT[state] * spacing
            lamp = [u - radius, lamp_v - radius, u + radius, lamp_v + radius]
            lamp_rgb = LIGHT_RGB[state]
        objects.append((distance, "light", (housing, lamp, lamp_rgb)))
    return objects
