"""Poses and frames between numpy and the egodriver wire (redux.sim_bridge.alpasim.frames / images)."""

import math

import numpy as np
import pytest

from redux.proto import common_pb2
from redux.sim_bridge.alpasim.frames import (
    local_to_rig,
    planar_poses,
    rig_to_local,
    sample_track,
    trajectory_message,
    yaw_of_quaternion,
)
from redux.sim_bridge.alpasim.images import decode_frame, encode_frame


def test_level_poses_survive_the_wire_to_float32():
    poses = np.array([[100.0, -50.0, 1.5, 0.3], [101.0, -49.0, 1.5, -3.1], [0.0, 0.0, 0.0, math.pi - 1e-3]])
    times, back = planar_poses(trajectory_message([0, 100_000, 200_000], poses).poses)
    assert times.tolist() == [0, 100_000, 200_000]
    np.testing.assert_allclose(back, poses, atol=1e-5)


def test_yaw_ignores_pitch_and_the_quaternions_length():
    yaw, pitch = 0.7, 0.2
    # z-y intrinsic: yaw about z, then pitch about the new y
    cy, sy, cp, sp = math.cos(yaw / 2), math.sin(yaw / 2), math.cos(pitch / 2), math.sin(pitch / 2)
    q = np.array([cy * cp, -sy * sp, cy * sp, sy * cp])
    assert yaw_of_quaternion(3.0 * q) == pytest.approx(yaw)


def test_non_finite_poses_are_refused():
    message = trajectory_message([0], np.zeros((1, 4)))
    message.poses[0].pose.quat.w = math.nan
    with pytest.raises(ValueError, match="finite"):
        planar_poses(message.poses)


def test_rig_and_local_are_inverse():
    origin = np.array([10.0, 20.0, 2.0])
    rig = np.array([[1.0, 0.0, 0.0], [5.0, -2.0, 0.4]])
    local = rig_to_local(rig, origin)
    np.testing.assert_allclose(local[0], [10.0 + math.cos(2.0), 20.0 + math.sin(2.0), 2.0])
    np.testing.assert_allclose(local_to_rig(local, origin), rig, atol=1e-12)


def test_tracks_are_exact_at_samples_interpolated_between_and_carried_on_outside():
    times = np.array([0, 100_000, 200_000, 300_000])
    poses = np.array([[0.0, 0.0, 3.1], [1.0, 0.0, -3.1], [2.0, 0.0, -3.0], [3.0, 0.0, -2.9]])
    out = sample_track(times, poses, np.array([100_000, 150_000, -200_000, 500_000]))
    assert out[0].tolist() == [1.0, 0.0, poses[1, 2] + 2 * math.pi]  # exact; yaw unwrapped across ±π
    np.testing.assert_allclose(out[1, :2], [1.5, 0.0])
    np.testing.assert_allclose(out[2, :2], [-2.0, 0.0])  # back at the first step's velocity
    np.testing.assert_allclose(out[3], [5.0, 0.0, -2.7 + 2 * math.pi])  # on at the last step's velocity
    assert sample_track(times[:1], poses[:1], np.array([900_000])).tolist() == [poses[0].tolist()]


def test_multi_channel_frames_travel_as_lossless_stacked_png_planes():
    rng = np.random.default_rng(0)
    bev = rng.integers(0, 256, size=(6, 48, 40), dtype=np.uint8)
    data = encode_frame(bev, "jpeg")  # not RGB: PNG whatever is asked
    assert data.startswith(b"\x89PNG")
    np.testing.assert_array_equal(decode_frame(data, 48, 40), bev)


def test_rgb_frames_as_png_are_exact_and_as_jpeg_close():
    y, x = np.mgrid[0:96, 0:160]
    rgb = np.stack([x, y, (x + y) // 2]).astype(np.uint8)
    np.testing.assert_array_equal(decode_frame(encode_frame(rgb, "png"), 96, 160), rgb)
    jpeg = decode_frame(encode_frame(rgb, "jpeg"), 96, 160)
    assert jpeg.shape == rgb.shape and np.abs(jpeg.astype(int) - rgb).mean() < 2.0


@pytest.mark.parametrize("data, height, width, match", [
    (b"not an image", 8, 8, "undecodable"),
    (encode_frame(np.zeros((3, 8, 8), np.uint8), "png"), 9, 8, "tall"),
    (encode_frame(np.zeros((3, 8, 8), np.uint8), "png"), 8, 7, "wide"),
    (encode_frame(np.zeros((6, 8, 8), np.uint8), "png"), 5, 8, "planes"),
])  # fmt: skip
def test_frames_that_do_not_fit_the_camera_are_refused(data, height, width, match):
    with pytest.raises(ValueError, match=match):
        decode_frame(data, height, width)


def test_a_pose_message_is_translation_then_rotation():
    # the pose of a rig 10 m east, heading north: its x axis points along local +y
    (message,) = trajectory_message([0], np.array([[10.0, 0.0, 0.0, math.pi / 2]])).poses
    assert isinstance(message, common_pb2.PoseAtTime)
    q = message.pose.quat
    assert (message.pose.vec.x, q.w, q.z) == (10.0, pytest.approx(math.sqrt(0.5)), pytest.approx(math.sqrt(0.5)))


def test_recorded_actions_clone_the_recording_from_where_the_car_is():
    """A car that lags 3 s behind the recording's clock and 1.5 m beside it still gets the
    recording's own controls from its nearest recorded pose, not a dash to catch up."""
    from types import SimpleNamespace

    from redux.policy.action_space import integrate
    from redux.sim_bridge.alpasim.driver_session import DriverSession

    steps = np.arange(300)
    controls = np.stack([0.3 * np.sin(steps / 40.0), 0.01 * np.cos(steps / 25.0)], axis=1)
    poses = np.concatenate([np.zeros((1, 3)), integrate(controls, 6.0)])
    recording = SimpleNamespace(timestamps_us=100_000 * np.arange(len(poses)), poses=poses)
    k = 100  # the car is at the recording's pose k, shifted sideways
    yaw = poses[k, 2]
    car = poses[k] + np.array([-1.5 * np.sin(yaw), 1.5 * np.cos(yaw), 0.0])
    actions = DriverSession._recorded_actions(recording, car, 100_000 * np.arange(1, 65))
    assert actions.shape == (64, 2)
    np.testing.assert_allclose(actions[:, 1], controls[k : k + 64, 1], atol=2e-4)
    np.testing.assert_allclose(actions[:, 0], controls[k : k + 64, 0], atol=0.05)
