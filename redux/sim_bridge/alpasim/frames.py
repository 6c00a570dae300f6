"""Poses between the wire and numpy, and between the local and the rig frame.

On the wire (specs/egodriver.md) a pose is local→rig: where the rig sits in the
scene's inertial ``local`` frame, a translation plus a unit quaternion (w, x, y, z).
Our policies are planar: they read and write (x, y, yaw) in the rig frame at t0. So a
local pose becomes (x, y, z, yaw), yaw being the heading of the rig's x axis in the
local x-y plane; pitch and roll are dropped on the way in, and plans go out level at
the current height (our plans carry no height).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from redux.proto import common_pb2
from redux.sim_bridge.minisim.vehicle_control import rig_to_world, world_to_rig

STEP_US = 100_000  # Alpasim's control period, and the spacing of our plans and histories
MAX_TIMESTAMP_US = 2**53  # float64 holds every microsecond below this (285 years): interpolation stays exact
EXTRAPOLATION_BASE_US = 100_000  # velocity for extrapolating a track is taken over at least this span


def yaw_of_quaternion(quaternion: np.ndarray) -> np.ndarray:
    """Heading (...,) of the rig x axis in the local x-y plane for quaternions (..., 4) w, x, y, z.

    Scale-invariant, so a quaternion that arrives slightly off unit length (float32)
    gives the same heading as its normalised self.
    """
    w, x, y, z = np.moveaxis(np.asarray(quaternion, dtype=np.float64), -1, 0)
    return np.arctan2(2.0 * (w * z + x * y), w * w + x * x - y * y - z * z)


def quaternion_of_yaw(yaw: np.ndarray) -> np.ndarray:
    """Level rotations (..., 4) w, x, y, z by ``yaw`` about the local z axis."""
    half = 0.5 * np.asarray(yaw, dtype=np.float64)
    zero = np.zeros_like(half)
    return np.stack([np.cos(half), zero, zero, np.sin(half)], axis=-1)


def check_timestamps(timestamps_us: Sequence[int]) -> np.ndarray:
    """Wire timestamps (fixed64) as int64; ValueError past MAX_TIMESTAMP_US."""
    late = [t for t in timestamps_us if t >= MAX_TIMESTAMP_US]
    if late:
        raise ValueError(f"timestamps must lie below 2^53 us, got {late[0]}")
    return np.array(timestamps_us, dtype=np.int64).reshape(-1)


def planar_poses(poses: Sequence[common_pb2.PoseAtTime]) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps_us (N,) int64, poses (N, 4) x, y, z, yaw float64) of ``PoseAtTime`` messages.

    ValueError on a non-finite number or an out-of-range timestamp: such a pose would
    poison every history it enters.
    """
    raw = np.array(
        [(p.pose.vec.x, p.pose.vec.y, p.pose.vec.z, p.pose.quat.w, p.pose.quat.x, p.pose.quat.y, p.pose.quat.z)
         for p in poses],
        dtype=np.float64,
    ).reshape(-1, 7)  # fmt: skip
    if not np.isfinite(raw).all():
        raise ValueError("poses must be finite")
    times = check_timestamps([p.timestamp_us for p in poses])
    return times, np.concatenate([raw[:, :3], yaw_of_quaternion(raw[:, 3:])[:, None]], axis=1)


def trajectory_message(timestamps_us: Sequence[int], poses: np.ndarray) -> common_pb2.Trajectory:
    """A Trajectory of level poses (N, 4) x, y, z, yaw at ``timestamps_us``."""
    poses = np.asarray(poses, dtype=np.float64)
    quats = quaternion_of_yaw(poses[:, 3])
    return common_pb2.Trajectory(
        poses=[
            common_pb2.PoseAtTime(
                pose=common_pb2.Pose(vec=common_pb2.Vec3(x=x, y=y, z=z), quat=common_pb2.Quat(w=qw, x=qx, y=qy, z=qz)),
                timestamp_us=int(t),
            )
            for t, (x, y, z, _), (qw, qx, qy, qz) in zip(timestamps_us, poses.tolist(), quats.tolist())
        ]
    )


def local_to_rig(poses: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Local (x, y, yaw) poses (N, 3) in the rig frame of the rig at local pose ``origin`` (x, y, yaw)."""
    return world_to_rig(np.asarray(poses, dtype=np.float64)[None, :, :3], np.asarray(origin, np.float64)[None])[0]


def rig_to_local(poses: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Inverse of :func:`local_to_rig`."""
    return rig_to_world(np.asarray(poses, dtype=np.float64)[None, :, :3], np.asarray(origin, np.float64)[None])[0]


def sample_track(timestamps_us: np.ndarray, poses: np.ndarray, query_us: np.ndarray) -> np.ndarray:
    """Poses (M, P) of a track (N, P), columns x, y, [z,] yaw, at ``query_us`` (M,).

    Inside the track: linear interpolation (yaw unwrapped first), exact at the
    track's own timestamps. Outside: constant-velocity extrapolation from the nearest
    end, the velocity taken over at least EXTRAPOLATION_BASE_US, so a short or late
    history still yields a full one rather than a failure; a single pose is held.
    """
    times = np.asarray(timestamps_us, dtype=np.float64)
    values = np.asarray(poses, dtype=np.float64).copy()
    values[:, -1] = np.unwrap(values[:, -1])
    query = np.asarray(query_us, dtype=np.float64)
    out = np.stack([np.interp(query, times, values[:, c]) for c in range(values.shape[1])], axis=1)
    if len(times) < 2:
        return out
    for end, beyond in ((0, query < times[0]), (-1, query > times[-1])):
        if not beyond.any():
            continue
        span = np.abs(times - times[end])
        far_enough = np.flatnonzero(span >= min(EXTRAPOLATION_BASE_US, span.max()))
        other = far_enough[0] if end == 0 else far_enough[-1]  # the nearest such pose to this end
        velocity = (values[other] - values[end]) / (times[other] - times[end])
        out[beyond] = values[end] + (query[beyond, None] - times[end]) * velocity
    return out
