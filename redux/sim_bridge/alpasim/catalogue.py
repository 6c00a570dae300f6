"""The camera catalogue of ``start_session``: minisim's cameras as ``AvailableCamera`` messages, and back.

minisim's Alpamayo-rig cameras are ideal pinholes, which the OpenCV pinhole
parameters express exactly (``minisim.cameras.spec_as_dict``). The BEV raster
``bev`` is minisim-only and orthographic; it is announced under logical id ``bev``
with a placeholder pinhole that approximates it — a camera 1 km above the rig origin
looking straight down, image up = forward, focal length 1 km / metres-per-pixel, the
principal point where the rig origin sits in the raster — so the catalogue stays
well-formed for any reader. Its frames travel as stacked-plane PNGs (``images.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from google.protobuf import json_format

from redux.config import SimConfig
from redux.proto import sensorsim_pb2
from redux.sim_bridge.alpasim.images import MAX_SIDE_PX
from redux.sim_bridge.minisim.bev import EGO_ROW_FRACTION
from redux.sim_bridge.minisim.cameras import CameraSpec, alpamayo_rig, spec_as_dict
from redux.sim_bridge.minisim.observation_renderer import BEV

AvailableCamera = sensorsim_pb2.AvailableCamerasReturn.AvailableCamera
BEV_PLACEHOLDER_HEIGHT_M = 1000.0
# optical x (image right) = rig right, optical y (image down) = rig backward, optical z = rig down
_LOOKING_DOWN = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


def bev_camera_spec(pixels: int, metres_per_pixel: float) -> CameraSpec:
    pose = np.eye(4)
    pose[:3, :3] = _LOOKING_DOWN
    pose[2, 3] = BEV_PLACEHOLDER_HEIGHT_M
    focal = BEV_PLACEHOLDER_HEIGHT_M / metres_per_pixel
    return CameraSpec(BEV, pixels, pixels, focal, focal, 0.5 * pixels, EGO_ROW_FRACTION * pixels, pose)


def minisim_catalogue(sim: SimConfig) -> list[AvailableCamera]:
    """``AvailableCamera`` messages of the cameras a minisim session renders (``sim.cameras``)."""
    rig = {spec.logical_id: spec for spec in alpamayo_rig(sim.camera_width, sim.camera_height)}
    rig[BEV] = bev_camera_spec(sim.bev_pixels, sim.bev_metres_per_pixel)
    return [json_format.ParseDict(spec_as_dict(rig[name]), AvailableCamera()) for name in sim.cameras]


@dataclass(frozen=True)
class CatalogueCamera:
    logical_id: str
    height: int  # 0: not given, any size is accepted
    width: int


def read_catalogue(cameras) -> dict[str, CatalogueCamera]:
    """The catalogue of a ``DriveSessionRequest`` by logical id; ValueError on duplicates or absurd sizes."""
    read: dict[str, CatalogueCamera] = {}
    for camera in cameras:
        logical_id = camera.logical_id or camera.intrinsics.logical_id
        height, width = camera.intrinsics.resolution_h, camera.intrinsics.resolution_w
        if not logical_id:
            raise ValueError("a catalogue camera has no logical_id")
        if logical_id in read:
            raise ValueError(f"camera {logical_id!r} appears twice in the catalogue")
        if max(height, width) > MAX_SIDE_PX:
            raise ValueError(f"camera {logical_id!r} is {width}x{height}; at most {MAX_SIDE_PX} px a side")
        read[logical_id] = CatalogueCamera(logical_id, height, width)
    return read
