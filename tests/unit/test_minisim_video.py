import math

import numpy as np
from PIL import Image

from redux.sim_bridge.minisim.scene import ActorKind
from redux.sim_bridge.minisim.video import INCIDENT_RGB, render_video_frame, save_frame_png, write_rollout_video
from test_minisim_camera import LANE_W, crossing, two_way_road


def rollout(steps=5, incident_steps=(3,)):
    recorded = np.stack([np.arange(-20.0, 60.0, 1.0), np.full(80, -0.5 * LANE_W)], axis=1)
    frames = []
    for k in range(steps):
        ego = np.array([-15.0 + 1.0 * k, -0.5 * LANE_W, 0.01 * k])
        frames.append(
            {
                "step": k,
                "t_s": 1.7 + 0.1 * k,
                "ego_pose": ego,
                "actor_boxes": np.array([[-0.5 * LANE_W, -12.0 + k, math.pi / 2, 4.5, 1.9], [6.0, 6.0, 0.0, 0.6, 0.6]]),
                "actor_kinds": np.array([ActorKind.VEHICLE, ActorKind.PEDESTRIAN]),
                "plan_xy": ego[:2] + np.stack([np.arange(1, 65) * 0.5, np.zeros(64)], axis=1) if k else None,
                "recorded_path_xy": recorded,
                "incident": "collision" if k in incident_steps else None,
                "caption": "stop for the red light; a vehicle crosses from the right",
            }
        )
    return frames


def has_colour(image: Image.Image, rgb) -> bool:
    return bool(np.all(np.asarray(image.convert("RGB")) == rgb, axis=2).any())


def test_gif_has_one_frame_per_step_and_incidents_in_red(tmp_path):
    frames = rollout(5, incident_steps=(3,))
    path = write_rollout_video(crossing(), frames, tmp_path / "videos" / "rollout.gif", fps=10)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 5
        assert gif.info["duration"] == 100
        decoded = []
        for k in range(gif.n_frames):
            gif.seek(k)
            decoded.append(gif.convert("RGB"))
    assert [has_colour(image, INCIDENT_RGB) for image in decoded] == [False, False, False, True, False]


def test_frame_is_deterministic_and_centred_on_the_ego():
    frame = rollout(1)[0]
    a = np.asarray(render_video_frame(two_way_road(), frame, 0.25, 200).convert("RGB"))
    b = np.asarray(render_video_frame(two_way_road(), frame, 0.25, 200).convert("RGB"))
    np.testing.assert_array_equal(a, b)
    assert a.shape[1] == 200 and a.shape[0] > 200
    ego_rgb = (245, 245, 245)
    rows, cols = np.nonzero(np.all(a == ego_rgb, axis=2))
    assert abs(cols.mean() - 100) < 10  # the ego box sits mid-width (its centre is 1.4 m ahead of the rig)


def test_save_frame_png(tmp_path):
    image = np.zeros((12, 20, 3), dtype=np.uint8)
    image[3, 4] = (1, 2, 3)
    path = save_frame_png(image, tmp_path / "frame.png")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (20, 12)
        assert png.getpixel((4, 3)) == (1, 2, 3)
