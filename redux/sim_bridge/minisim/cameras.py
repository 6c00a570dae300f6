"""Pinhole cameras of minisim, named and mounted like Alpasim's Alpamayo-R1 rig.

Frames (specs/egodriver.md): the rig frame has x forward, y left, z up with its
origin at the rear-axle centre on the ground; a camera's optical frame has x right,
y down, z forward (OpenCV). ``CameraSpec.rig_to_camera`` is the pose of the optical
frame in the rig frame, i.e. the 4x4 matrix that maps optical-frame points to
rig-frame points — the same thing the egodriver ``AvailableCamera.rig_to_camera``
carries as translation + quaternion.

Pixel convention: continuous image coordinates with pixel (col, row) covering
[col, col + 1) x [row, row + 1), so the principal point of an ideal centred camera
is (width / 2, height / 2).

The real Alpamayo-R1 cameras are f-theta fisheyes delivered at 1080x1916; minisim
uses ideal pinholes with the same horizontal field of view and no distortion, which
is what the OpenCV pinhole parameters of the egodriver catalogue can express exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Mount shared by the four cameras: near the top of the windshield. The ego is
# 4.8 m long with its box centre 1.4 m ahead of the rear axle, so its nose is 3.8 m
# ahead of the rig origin; 1.8 m puts the cameras about at the windshield's top edge.
MOUNT_FORWARD_M = 1.8
MOUNT_HEIGHT_M = 1.5
# The cross cameras sit at the A-pillars and look 70° off the nose. With 120° of
# horizontal FOV each they see from 10° to 130° off the nose on their side: crossing
# traffic from ahead to behind abeam, overlapping the front-wide camera (±60°) by 50°,
# while the lane straight ahead (a lead vehicle) stays out of them.
CROSS_LATERAL_M = 0.7
CROSS_YAW_DEG = 70.0
# All cameras are level (zero pitch, zero roll): the horizon runs through the
# principal point, which keeps the images easy to read and to test.

ALPAMAYO_CAMERAS = (
    "camera_cross_left_120fov",
    "camera_front_wide_120fov",
    "camera_cross_right_120fov",
    "camera_front_tele_30fov",
)

# optical axes (x right, y down, z forward) expressed in a level, forward-looking body
# frame (x forward, y left, z up): columns are the optical x, y, z axes
_OPTICAL_IN_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True, eq=False)
class CameraSpec:
    logical_id: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    rig_to_camera: np.ndarray  # (4, 4) optical-frame points -> rig-frame points

    @property
    def horizontal_fov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(0.5 * self.width / self.fx))


def pinhole_from_fov(width: int, height: int, horizontal_fov_deg: float) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of a centred pinhole with square pixels and the given horizontal FOV."""
    cx, cy = 0.5 * width, 0.5 * height
    fx = cx / math.tan(math.radians(0.5 * horizontal_fov_deg))
    return fx, fx, cx, cy


def camera_pose(
    forward_m: float, left_m: float, up_m: float, yaw_deg: float, pitch_down_deg: float = 0.0
) -> np.ndarray:
    """rig_to_camera (4, 4) of a camera at (forward, left, up) yawed left by yaw and pitched down by pitch."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_down_deg)
    cz, sz, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    yaw_rotation = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    pitch_rotation = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])  # about y (left): +pitch looks down
    pose = np.eye(4)
    pose[:3, :3] = yaw_rotation @ pitch_rotation @ _OPTICAL_IN_BODY
    pose[:3, 3] = (forward_m, left_m, up_m)
    return pose


def alpamayo_rig(width: int, height: int) -> list[CameraSpec]:
    """The four Alpamayo-R1 cameras at ``width`` x ``height`` pixels, in ALPAMAYO_CAMERAS order."""
    mounts = {
        "camera_cross_left_120fov": (120.0, CROSS_LATERAL_M, CROSS_YAW_DEG),
        "camera_front_wide_120fov": (120.0, 0.0, 0.0),
        "camera_cross_right_120fov": (120.0, -CROSS_LATERAL_M, -CROSS_YAW_DEG),
        "camera_front_tele_30fov": (30.0, 0.0, 0.0),
    }
    specs = []
    for logical_id in ALPAMAYO_CAMERAS:
        fov_deg, left_m, yaw_deg = mounts[logical_id]
        fx, fy, cx, cy = pinhole_from_fov(width, height, fov_deg)
        pose = camera_pose(MOUNT_FORWARD_M, left_m, MOUNT_HEIGHT_M, yaw_deg)
        specs.append(CameraSpec(logical_id, width, height, fx, fy, cx, cy, pose))
    return specs


def project(points_rig: np.ndarray, spec: CameraSpec) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N, 2) and optical depth (N,) of rig-frame points (N, 3).

    Points at or behind the camera (depth <= 0) get NaN pixel coordinates: they
    are not in the image, whatever a naive division would say.
    """
    rotation, translation = spec.rig_to_camera[:3, :3], spec.rig_to_camera[:3, 3]
    optical = (np.asarray(points_rig, dtype=np.float64) - translation) @ rotation  # R^T (p - t), row-wise
    depth = optical[:, 2]
    uv = np.full((len(optical), 2), np.nan)
    front = depth > 0.0
    uv[front, 0] = spec.fx * optical[front, 0] / depth[front] + spec.cx
    uv[front, 1] = spec.fy * optical[front, 1] / depth[front] + spec.cy
    return uv, depth


def rotation_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) with w >= 0 of a 3x3 rotation matrix."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    # branch on the largest diagonal term for numerical stability (Shepperd)
    if trace > 0.0:
        s = 2.0 * math.sqrt(1.0 + trace)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0.0 else q


def quaternion_to_rotation(quaternion: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix of a quaternion (w, x, y, z); normalises it first."""
    w, x, y, z = np.asarray(quaternion, dtype=np.float64) / np.linalg.norm(quaternion)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def spec_as_dict(spec: CameraSpec) -> dict:
    """The egodriver ``AvailableCamera`` message as a dict (proto field names, ParseDict-ready).

    Intrinsics are an OpenCV pinhole without distortion; the pose is the optical
    frame's position (vec) and orientation (quat, w x y z) in the rig frame.
    """
    w, x, y, z = (float(v) for v in rotation_to_quaternion(spec.rig_to_camera[:3, :3]))
    tx, ty, tz = (float(v) for v in spec.rig_to_camera[:3, 3])
    return {
        "logical_id": spec.logical_id,
        "intrinsics": {
            "logical_id": spec.logical_id,
            "resolution_w": spec.width,
            "resolution_h": spec.height,
            "shutter_type": "GLOBAL",
            "opencv_pinhole_param": {
                "principal_point_x": spec.cx,
                "principal_point_y": spec.cy,
                "focal_length_x": spec.fx,
                "focal_length_y": spec.fy,
                "radial_coeffs": [0.0] * 6,
                "tangential_coeffs": [0.0] * 2,
                "thin_prism_coeffs": [0.0] * 4,
            },
        },
        "rig_to_camera": {"vec": {"x": tx, "y": ty, "z": tz}, "quat": {"w": w, "x": x, "y": y, "z": z}},
    }


def spec_from_dict(message: dict) -> CameraSpec:
    """Inverse of :func:`spec_as_dict`, e.g. for a camera catalogue received from Alpasim."""
    intrinsics = message["intrinsics"]
    pinhole = intrinsics["opencv_pinhole_param"]
    vec, quat = message["rig_to_camera"]["vec"], message["rig_to_camera"]["quat"]
    pose = np.eye(4)
    pose[:3, :3] = quaternion_to_rotation([quat["w"], quat["x"], quat["y"], quat["z"]])
    pose[:3, 3] = (vec["x"], vec["y"], vec["z"])
    return CameraSpec(
        logical_id=message["logical_id"],
        width=int(intrinsics["resolution_w"]),
        height=int(intrinsics["resolution_h"]),
        fx=float(pinhole["focal_length_x"]),
        fy=float(pinhole["focal_length_y"]),
        cx=float(pinhole["principal_point_x"]),
        cy=float(pinhole["principal_point_y"]),
        rig_to_camera=pose,
    )
