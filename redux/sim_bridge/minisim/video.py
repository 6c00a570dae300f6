"""Rollout videos: a top-down view per step, written as an animated GIF.

GIF because it plays everywhere and Pillow writes it without ffmpeg. Frames are
drawn straight into palette mode with one fixed palette, so colours are exact (an
incident is findable by its colour in the decoded file) and no quantisation runs.

The view is north-up (world x right, world y up) and follows the ego, which sits
at the centre. Per step it shows the road, the actors, the ego box, the recorded
expert path, the plan the policy committed to at that step, traffic-light states,
and a header (step, time, incident) and a footer caption (e.g. the reasoning).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TypedDict

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from redux.sim_bridge.minisim.bev import draw_primitives, to_pillow
from redux.sim_bridge.minisim.bev_geometry import MarkingStyle, box_corners, road_paint
from redux.sim_bridge.minisim.render_camera import ACTOR_RGB
from redux.sim_bridge.minisim.road_map import LightState, RoadMap
from redux.sim_bridge.minisim.scene import EGO_LENGTH_M, EGO_REAR_AXLE_TO_CENTRE_M, EGO_WIDTH_M, ActorKind

INCIDENT_RGB = (255, 0, 0)  # the ego box and marker on incident steps; used for nothing else
HEADER_PX, LINE_PX, CAPTION_LINES = 16, 13, 2

_PALETTE_RGB = {
    "background": (52, 62, 46),
    "panel": (16, 16, 20),
    "road": (86, 86, 92),
    "crosswalk": (170, 170, 170),
    "marking": (225, 225, 225),
    "centre_marking": (230, 185, 40),
    "light_red": (210, 40, 40),
    "light_amber": (240, 170, 0),
    "light_green": (40, 200, 80),
    "ego": (245, 245, 245),
    "incident": INCIDENT_RGB,
    "plan": (0, 225, 255),
    "recorded": (205, 140, 255),
    "text": (240, 240, 240),
    **{f"actor_{kind.name.lower()}": rgb for kind, rgb in ACTOR_RGB.items()},
}
_INDEX = {name: i for i, name in enumerate(_PALETTE_RGB)}
_PALETTE = [v for rgb in _PALETTE_RGB.values() for v in rgb] + [0] * (3 * (256 - len(_PALETTE_RGB)))
_LIGHT_INDEX = {
    LightState.RED: _INDEX["light_red"],
    LightState.AMBER: _INDEX["light_amber"],
    LightState.GREEN: _INDEX["light_green"],
}
_FONT = ImageFont.load_default()


class RolloutFrame(TypedDict):
    """What one step of a rollout video shows. Poses and points are in the world frame."""

    step: int
    t_s: float  # scene time: sets the traffic lights and the header
    ego_pose: np.ndarray  # (3,) x, y, yaw of the ego rig origin (rear-axle centre)
    actor_boxes: np.ndarray  # (A, 5) x, y, yaw, length, width of box centres
    actor_kinds: np.ndarray  # (A,) ActorKind
    plan_xy: np.ndarray | None  # (H, 2) the plan's future rig positions, None before the policy drives
    recorded_path_xy: np.ndarray  # (M, 2) the recorded expert drive, for comparison
    incident: str | None  # e.g. "collision", "offroad"; None on a clean step
    caption: str  # one line of text, e.g. the reasoning; wrapped to CAPTION_LINES lines


def _ego_box(ego_pose: np.ndarray) -> np.ndarray:
    x, y, yaw = (float(v) for v in ego_pose[:3])
    centre = (x + EGO_REAR_AXLE_TO_CENTRE_M * np.cos(yaw), y + EGO_REAR_AXLE_TO_CENTRE_M * np.sin(yaw))
    return np.array([[centre[0], centre[1], yaw, EGO_LENGTH_M, EGO_WIDTH_M]])


def render_video_frame(road_map: RoadMap, frame: RolloutFrame, metres_per_pixel: float, size_px: int) -> Image.Image:
    """One video frame: a palette image of width size_px, the map square plus header and caption."""
    paint = road_paint(road_map)
    ego_xy = np.asarray(frame["ego_pose"][:2], dtype=np.float64)
    scale = 1.0 / metres_per_pixel
    # north-up, ego at the centre of the map square (below the header)
    affine = np.array(
        [[scale, 0.0, 0.5 * size_px - scale * ego_xy[0]], [0.0, -scale, HEADER_PX + 0.5 * size_px + scale * ego_xy[1]]]
    )
    reach_m = 0.75 * size_px * metres_per_pixel

    def to_image(points: np.ndarray) -> np.ndarray:
        return np.asarray(points, dtype=np.float64).reshape(-1, 2) @ affine[:, :2].T + affine[:, 2]

    image = Image.new("P", (size_px, HEADER_PX + size_px + CAPTION_LINES * LINE_PX + 4), _INDEX["background"])
    image.putpalette(_PALETTE)
    draw = ImageDraw.Draw(image)

    draw_primitives(draw, paint.surface, paint.surface.within(ego_xy, reach_m), affine, _INDEX["road"], polygon=True)
    draw_primitives(
        draw, paint.crosswalks, paint.crosswalks.within(ego_xy, reach_m), affine, _INDEX["crosswalk"], polygon=True
    )
    markings = paint.markings.within(ego_xy, reach_m)
    centre = paint.marking_styles[markings] == MarkingStyle.CENTRE
    draw_primitives(draw, paint.markings, markings[~centre], affine, _INDEX["marking"], polygon=False)
    draw_primitives(draw, paint.markings, markings[centre], affine, _INDEX["centre_marking"], polygon=False)
    stop_width = max(1, round(0.5 * scale))
    for i in paint.stop_lines.within(ego_xy, reach_m):
        light_id = paint.stop_light_ids[i]
        state = LightState.RED if light_id is None else road_map.traffic_lights[light_id].state_at(frame["t_s"])
        draw_primitives(draw, paint.stop_lines, [i], affine, _LIGHT_INDEX[state], polygon=False, width=stop_width)
    for light in road_map.traffic_lights.values():
        u, v = to_image(light.position[:2])[0]
        draw.ellipse(
            [u - 3, v - 3, u + 3, v + 3], fill=_LIGHT_INDEX[light.state_at(frame["t_s"])], outline=_INDEX["panel"]
        )

    recorded = to_image(frame["recorded_path_xy"])
    if len(recorded) >= 2:
        draw.line(to_pillow(recorded), fill=_INDEX["recorded"], width=1)

    boxes = np.asarray(frame["actor_boxes"], dtype=np.float64).reshape(-1, 5)
    kinds = np.asarray(frame["actor_kinds"], dtype=np.int64).reshape(-1)
    for corners, kind in zip(box_corners(boxes), kinds):
        draw.polygon(
            to_pillow(to_image(corners)),
            fill=_INDEX[f"actor_{ActorKind(int(kind)).name.lower()}"],
            outline=_INDEX["panel"],
        )

    incident = frame["incident"]
    ego_colour = _INDEX["incident"] if incident else _INDEX["ego"]
    ego_corners = to_image(box_corners(_ego_box(frame["ego_pose"]))[0])
    draw.polygon(to_pillow(ego_corners), fill=ego_colour, outline=_INDEX["panel"])
    draw.line(to_pillow(ego_corners[[0, 3]]), fill=_INDEX["panel"], width=2)  # the nose
    if incident:
        u, v = to_image(ego_xy)[0]
        radius = 4.0 * scale
        draw.ellipse([u - radius, v - radius, u + radius, v + radius], outline=_INDEX["incident"], width=2)

    if frame["plan_xy"] is not None:
        plan = to_image(frame["plan_xy"])
        plan = plan[np.isfinite(plan).all(axis=1)]
        if len(plan) >= 2:
            draw.line(to_pillow(plan), fill=_INDEX["plan"], width=1)
        for u, v in plan[::5]:
            draw.ellipse([u - 1.5, v - 1.5, u + 1.5, v + 1.5], fill=_INDEX["plan"])

    draw.rectangle([0, 0, size_px, HEADER_PX - 1], fill=_INDEX["panel"])
    draw.text((4, 2), f"step {frame['step']}   t = {frame['t_s']:.1f} s", fill=_INDEX["text"], font=_FONT)
    if incident:
        draw.text((size_px - 4, 2), incident.upper(), fill=_INDEX["incident"], font=_FONT, anchor="ra")
    caption_top = HEADER_PX + size_px
    draw.rectangle([0, caption_top, size_px, image.height], fill=_INDEX["panel"])
    characters = max(8, int(size_px / 6.2))  # the default font is about 6 px per character
    for k, line in enumerate(textwrap.wrap(frame["caption"], characters)[:CAPTION_LINES]):
        draw.text((4, caption_top + 2 + k * LINE_PX), line, fill=_INDEX["text"], font=_FONT)
    return image


def write_rollout_video(
    road_map: RoadMap,
    frames: list[RolloutFrame],
    path: Path,
    metres_per_pixel: float = 0.25,
    fps: float = 10.0,
    size_px: int = 400,
) -> Path:
    """Write the rollout as an animated GIF (loops forever) at ``path``; returns the path."""
    if not frames:
        raise ValueError("a rollout video needs at least one frame")
    images = [render_video_frame(road_map, frame, metres_per_pixel, size_px) for frame in frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000.0 / fps), loop=0, optimize=False)
    return path


def save_frame_png(image: np.ndarray | Image.Image, path: Path) -> Path:
    """Save one picture as PNG: an (H, W, 3) or (H, W) uint8 array (a camera frame) or a Pillow image."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
