"""What the egodriver server remembers of one rollout, and the Observation it builds from it.

The runtime streams a session's inputs over separate calls (often concurrently):
camera frames, egomotion in the local frame, a route in the rig frame, the recorded
drive. A ``DriverSession`` keeps each of them, and at a ``drive`` call turns them into
the same :class:`~redux.sim_bridge.session.Observation` minisim hands a policy: 16
poses at 0.1 s in the rig frame at t0, the last few frames per camera, 20 route
waypoints, the recorded future as ``labels["recorded_future"]`` when it was sent (and, for
learners, ``labels["recorded_actions"]``: the recording's own controls onwards from its
pose nearest the car).

Until the session is warmed up — egomotion spanning the history a policy reads and a
frame from every camera it reads — ``observation`` returns None (the server then
answers with an empty plan, which the runtime accepts during its warm-up replay).
From then on it always builds one: poses between samples are interpolated, before
or after them extrapolated at constant velocity, missing frames repeat the oldest.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from redux.policy.action_space import HORIZON, to_actions
from redux.sim_bridge.alpasim.catalogue import CatalogueCamera
from redux.sim_bridge.alpasim.frames import STEP_US, check_timestamps, local_to_rig, rig_to_local, sample_track
from redux.sim_bridge.alpasim.images import decode_frame
from redux.sim_bridge.minisim.session import HISTORY_POSES, ROUTE_WAYPOINTS
from redux.sim_bridge.session import Observation

KEEP_EGOMOTION_US = 20_000_000  # older poses are dropped: histories read 1.5 s, a route or the recording a step back


@dataclass(frozen=True)
class SessionLimits:
    """How much history the session keeps and asks for before it plans (DriverServerSettings sets them)."""

    frames_per_camera: int  # the newest frames of each camera handed to the policy
    warmup_history_us: int  # egomotion span before the first plan


@dataclass
class _Route:
    timestamp_us: int
    waypoints: np.ndarray  # (N, 3) in the rig frame at timestamp_us, NaN padded


@dataclass
class _Recording:
    timestamp_us: int
    timestamps_us: np.ndarray  # (N,)
    poses: np.ndarray  # (N, 3) x, y, yaw in the rig frame at timestamp_us; local once anchored
    anchored: bool = False


class DriverSession:
    def __init__(self, session_uuid: str, random_seed: int, scene_id: str, catalogue: dict[str, CatalogueCamera],
                 cameras_read: tuple[str, ...], limits: SessionLimits):  # fmt: skip
        missing = [c for c in cameras_read if c not in catalogue]
        if missing:
            raise ValueError(f"the policy reads camera(s) {missing}, which the catalogue lacks (it has {sorted(catalogue)})")
        self.session_uuid = session_uuid
        self.random_seed = random_seed  # kept for the record: one batched policy call cannot seed per session
        self.scene_id = scene_id
        self.catalogue = catalogue
        self.limits = limits
        self.drive_calls = 0
        self.end_requested = False  # set by the server's end_episode: the next drive answer terminates the rollout
        self._lock = threading.Lock()
        self._frames: dict[str, deque] = {c: deque(maxlen=limits.frames_per_camera) for c in cameras_read}
        self._frame_end_us = {c: -1 for c in cameras_read}
        self._pose_times = np.zeros(0, dtype=np.int64)
        self._poses = np.zeros((0, 4))  # x, y, z, yaw in the local frame
        self._route: _Route | None = None
        self._recording: _Recording | None = None
        self._warmed_up = False

    # -- inputs --------------------------------------------------------------------
    def add_image(self, logical_id: str, frame_end_us: int, image_bytes: bytes) -> None:
        """Keep a frame of a camera the policy reads; frames of other catalogue cameras are not even decoded."""
        camera = self.catalogue.get(logical_id)
        if camera is None:
            raise ValueError(f"camera {logical_id!r} is not in the session's catalogue")
        if logical_id not in self._frames:
            return
        check_timestamps([frame_end_us])
        frame = decode_frame(image_bytes, camera.height, camera.width)  # outside the lock: the slow part
        with self._lock:
            frames = self._frames[logical_id]
            if frames and frames[-1].shape != frame.shape:
                raise ValueError(f"camera {logical_id!r} sent a {frame.shape} frame after {frames[-1].shape} ones")
            if frame_end_us <= self._frame_end_us[logical_id]:
                return  # a late or repeated frame
            frames.append(frame)
            self._frame_end_us[logical_id] = frame_end_us

    def add_egomotion(self, timestamps_us: np.ndarray, poses: np.ndarray) -> None:
        """Local poses (N, 4) x, y, z, yaw; those not newer than every pose seen before are ignored."""
        with self._lock:
            last = self._pose_times[-1] if len(self._pose_times) else -1
            newest_before = np.maximum.accumulate(np.concatenate([[last], timestamps_us]))[:-1]
            newer = timestamps_us > newest_before
            times = np.concatenate([self._pose_times, timestamps_us[newer]])
            kept = times > times[-1] - KEEP_EGOMOTION_US if len(times) else np.zeros(0, dtype=bool)
            self._pose_times = times[kept]
            self._poses = np.concatenate([self._poses, poses[newer]])[kept]

    def set_route(self, timestamp_us: int, waypoints: np.ndarray) -> None:
        if np.isinf(waypoints).any():
            raise ValueError("route waypoints must be finite or NaN (padding)")
        with self._lock:
            self._route = _Route(timestamp_us, waypoints[:ROUTE_WAYPOINTS])

    def set_recording(self, timestamp_us: int, timestamps_us: np.ndarray, poses: np.ndarray) -> None:
        """The recorded drive, (N, 3) x, y, yaw in the rig frame at ``timestamp_us``."""
        if len(timestamps_us) and (np.diff(timestamps_us) <= 0).any():
            raise ValueError("the recorded drive's timestamps must increase")
        with self._lock:
            self._recording = _Recording(timestamp_us, timestamps_us, poses) if len(timestamps_us) else None

    # -- the policy's view ------------------------------------------------------------
    def observation(self, now_us: int) -> tuple[Observation, np.ndarray] | None:
        """The observation at ``now_us`` and the current local pose (x, y, z, yaw); None while warming up."""
        with self._lock:
            if not self._ready():
                return None
            query = now_us - STEP_US * np.arange(HISTORY_POSES - 1, -1, -1)
            track = sample_track(self._pose_times, self._poses, query)
            current = track[-1]
            planar = track[:, [0, 1, 3]]
            observation = Observation(
                cameras={name: self._frame_history(name) for name in self._frames},
                ego_history=local_to_rig(planar, planar[-1]).astype(np.float32),
                route=self._route_at(now_us, planar[-1]),
                time_us=int(now_us),
                labels=self._recorded_future(now_us, planar[-1]),
            )
            self.drive_calls += 1
            return observation, current

    def _ready(self) -> bool:
        if not self._warmed_up:
            span = self._pose_times[-1] - self._pose_times[0] if len(self._pose_times) else -1
            self._warmed_up = span >= self.limits.warmup_history_us and all(self._frames.values())
        return self._warmed_up

    def _frame_history(self, name: str) -> np.ndarray:
        frames = list(self._frames[name])
        missing = self.limits.frames_per_camera - len(frames)
        return np.stack([frames[0]] * missing + frames)

    def _pose_at(self, timestamp_us: int) -> np.ndarray:
        return sample_track(self._pose_times, self._poses, np.array([timestamp_us]))[0, [0, 1, 3]]

    def _route_at(self, now_us: int, current: np.ndarray) -> np.ndarray:
        """Route waypoints (20, 3) float32 in the rig frame now, NaN padded; all NaN before any route."""
        route = np.full((ROUTE_WAYPOINTS, 3), np.nan, dtype=np.float32)
        if self._route is None:
            return route
        waypoints = self._route.waypoints.astype(np.float64)
        if self._route.timestamp_us != now_us:  # a route from another step: carried over through the local frame
            local = rig_to_local(np.concatenate([waypoints[:, :2], np.zeros((len(waypoints), 1))], axis=1),
                                 self._pose_at(self._route.timestamp_us))  # fmt: skip
            waypoints[:, :2] = local_to_rig(local, current)[:, :2]
        route[: len(waypoints)] = waypoints
        route[np.isnan(route).any(axis=1)] = np.nan
        return route

    def _recorded_future(self, now_us: int, current: np.ndarray) -> dict[str, np.ndarray]:
        """``recorded_future`` (64, 3) in the rig frame now, when the runtime sent the recorded drive."""
        recording = self._recording
        if recording is None:
            return {}
        if not recording.anchored:  # into the local frame once, through the pose at its timestamp
            recording.poses = rig_to_local(recording.poses, self._pose_at(recording.timestamp_us))
            recording.anchored = True
        steps = STEP_US * np.arange(1, HORIZON + 1)
        future = sample_track(recording.timestamps_us, recording.poses, now_us + steps)
        return {
            "recorded_future": local_to_rig(future, current).astype(np.float32),
            "recorded_actions": self._recorded_actions(recording, current, steps),
        }

    @staticmethod
    def _recorded_actions(recording, current: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """The recorded drive's own controls for 6.4 s onwards from its pose nearest the car.

        At the same clock time the recording can be metres from a car that drove otherwise,
        and controls that must first close that gap are no driving; cloning the recording
        from where the car is along it is. The poses are taken in the frame of that recorded
        pose with its own (central-difference) speed, which keeps the inverse dynamics exact.
        """
        times, poses = recording.timestamps_us, recording.poses
        at = times[np.argmin(np.hypot(*(poses[:, :2] - current[:2]).T))]
        around = sample_track(times, poses, np.array([at - STEP_US, at, at + STEP_US]))
        speed = np.hypot(*(around[2, :2] - around[0, :2])) / (2 * STEP_US * 1e-6)
        onwards = local_to_rig(sample_track(times, poses, at + steps), around[1])
        return to_actions(onwards, speed).astype(np.float32)
