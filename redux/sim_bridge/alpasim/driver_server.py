"""``egodriver.EgodriverService`` for any of our policies: sessions in, plans out, batched.

Each RPC runs on a gRPC worker thread. Observation calls update one
:class:`DriverSession`; a ``drive`` call builds that session's Observation and
hands it to a :class:`~redux.policy.request_batcher.RequestBatcher`, so the drive
calls of concurrent sessions that arrive within ``max_wait_ms`` of each other share
one ``policy.act`` (up to ``max_batch`` observations).

Bad requests get a gRPC status and leave the server as it was: NOT_FOUND for an
unknown session, ALREADY_EXISTS for a duplicate one, INVALID_ARGUMENT for what
cannot be read (a corrupt image, NaN poses, a catalogue without a camera the policy
reads), INTERNAL for a failure of our own (logged with its traceback).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable

import grpc
import numpy as np

from redux.policy.interface import PolicyOutput
from redux.policy.request_batcher import RequestBatcher
from redux.proto import common_pb2, egodriver_pb2, egodriver_pb2_grpc
from redux.sim_bridge.alpasim.catalogue import read_catalogue
from redux.sim_bridge.alpasim.debug_info import encode_debug_info, policy_debug_info
from redux.sim_bridge.alpasim.driver_session import DriverSession, SessionLimits
from redux.sim_bridge.alpasim.frames import STEP_US, check_timestamps, planar_poses, rig_to_local, trajectory_message
from redux.sim_bridge.alpasim.settings import DriverServerSettings

log = logging.getLogger(__name__)

GRPC_API_VERSION = (0, 54, 0)  # the Alpasim API this server speaks (specs/egodriver.md)

# (session, the policy's output for its observation) -> end the rollout now (e.g. an RL episode's end)
TerminationHook = Callable[[DriverSession, PolicyOutput], bool]
# (session, the observation the policy acted on, its output for it, now_us) -> None: e.g. an actor keeping
# what each drive call's policy saw and did, to turn into training records; called on the gRPC thread
DriveHook = Callable[[DriverSession, object, PolicyOutput, int], None]


class DriverError(Exception):
    """A request the server refuses, with the status code that says why."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def _rpc(method):
    """Answer a failed call with a status code instead of letting it escape the servicer."""

    @functools.wraps(method)
    def handler(self, request, context: grpc.ServicerContext):
        try:
            return method(self, request)
        except DriverError as err:
            code, message = err.code, str(err)
        except ValueError as err:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(err)
        except Exception as err:  # ours, not the caller's: log it, keep serving
            log.exception("egodriver %s failed", method.__name__)
            code, message = grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}"
        context.abort(code, message)

    return handler


class EgodriverServicer(egodriver_pb2_grpc.EgodriverServiceServicer):
    def __init__(self, policy, cameras: tuple[str, ...], num_samples: int, settings: DriverServerSettings,
                 terminate: TerminationHook | None = None, version_id: str = "alpamayo-redux",
                 on_drive: DriveHook | None = None):  # fmt: skip
        """``cameras``: the logical ids ``policy`` reads; a session's catalogue must have them."""
        self.policy = policy
        self.cameras = tuple(cameras)
        self.num_samples = num_samples
        self.greedy = settings.greedy
        self.limits = SessionLimits(settings.frames_per_camera, round(settings.warmup_history_s * 1e6))
        self.terminate = terminate
        self.on_drive = on_drive
        self.version_id = version_id
        self.batcher = RequestBatcher(self._act, settings.max_batch, settings.max_wait_ms / 1e3)
        self.sessions: dict[str, DriverSession] = {}
        self._lock = threading.Lock()

    def _act(self, observations, num_samples: int, greedy: bool) -> PolicyOutput:
        """The batched policy call; each row learns how many observations shared it (for debug info)."""
        output = self.policy.act(observations, num_samples, greedy)
        output.extras = {**output.extras, "batch_size": np.full(len(observations), len(observations))}
        return output

    def end_episode(self, session_uuid: str) -> None:
        """Ask the runtime to end this rollout: the session's next drive answer carries terminate_session."""
        self._session(session_uuid).end_requested = True

    def _session(self, session_uuid: str) -> DriverSession:
        with self._lock:
            session = self.sessions.get(session_uuid)
        if session is None:
            raise DriverError(grpc.StatusCode.NOT_FOUND, f"no session {session_uuid!r}")
        return session

    # -- the contract --------------------------------------------------------------
    @_rpc
    def start_session(self, request: egodriver_pb2.DriveSessionRequest):
        if not request.session_uuid:
            raise ValueError("session_uuid is empty")
        catalogue = read_catalogue(request.rollout_spec.vehicle.available_cameras)
        session = DriverSession(
            request.session_uuid, request.random_seed, request.debug_info.scene_id, catalogue, self.cameras, self.limits
        )
        with self._lock:
            if request.session_uuid in self.sessions:
                raise DriverError(grpc.StatusCode.ALREADY_EXISTS, f"session {request.session_uuid!r} exists")
            self.sessions[request.session_uuid] = session
        return common_pb2.SessionRequestStatus()

    @_rpc
    def close_session(self, request: egodriver_pb2.DriveSessionCloseRequest):
        with self._lock:
            if self.sessions.pop(request.session_uuid, None) is None:
                raise DriverError(grpc.StatusCode.NOT_FOUND, f"no session {request.session_uuid!r}")
        return common_pb2.Empty()

    @_rpc
    def submit_image_observation(self, request: egodriver_pb2.RolloutCameraImage):
        image = request.camera_image
        self._session(request.session_uuid).add_image(image.logical_id, image.frame_end_us, image.image_bytes)
        return common_pb2.Empty()

    @_rpc
    def submit_egomotion_observation(self, request: egodriver_pb2.RolloutEgoTrajectory):
        session = self._session(request.session_uuid)
        poses = request.trajectory.poses
        if request.dynamic_states and len(request.dynamic_states) != len(poses):
            raise ValueError(f"{len(request.dynamic_states)} dynamic states for {len(poses)} poses")
        session.add_egomotion(*planar_poses(poses))
        return common_pb2.Empty()

    @_rpc
    def submit_route(self, request: egodriver_pb2.RouteRequest):
        session = self._session(request.session_uuid)
        route = request.route
        waypoints = np.array([(w.x, w.y, w.z) for w in route.waypoints], dtype=np.float64).reshape(-1, 3)
        session.set_route(int(check_timestamps([route.timestamp_us])[0]), waypoints)
        return common_pb2.Empty()

    @_rpc
    def submit_recording_ground_truth(self, request: egodriver_pb2.GroundTruthRequest):
        session = self._session(request.session_uuid)
        truth = request.ground_truth
        times, poses = planar_poses(truth.trajectory.poses)
        session.set_recording(int(check_timestamps([truth.timestamp_us])[0]), times, poses[:, [0, 1, 3]])
        return common_pb2.Empty()

    @_rpc
    def drive(self, request: egodriver_pb2.DriveRequest):
        started = time.perf_counter()
        session = self._session(request.session_uuid)
        now_us = int(check_timestamps([request.time_now_us])[0])
        built = session.observation(now_us)
        if built is None:  # warm-up: the runtime replays the recording and accepts an empty plan
            info = encode_debug_info({"warming_up": True})
            return egodriver_pb2.DriveResponse(debug_info=egodriver_pb2.DriveResponse.DebugInfo(unstructured_debug_info=info))
        observation, current = built
        try:
            output = self.batcher.submit([observation], self.num_samples, self.greedy)
        except Exception as err:  # whatever the policy raises is our failure, not a bad request
            log.exception("the policy failed on session %s", request.session_uuid)
            raise DriverError(grpc.StatusCode.INTERNAL, f"the policy failed: {type(err).__name__}: {err}") from err
        if self.on_drive is not None:
            self.on_drive(session, observation, output, now_us)
        terminate = session.end_requested or (self.terminate is not None and self.terminate(session, output))
        latency_ms = (time.perf_counter() - started) * 1e3
        return plan_response(output, current, now_us, policy_debug_info(output, latency_ms), terminate)

    @_rpc
    def get_version(self, request: common_pb2.Empty):
        major, minor, patch = GRPC_API_VERSION
        return common_pb2.VersionId(
            version_id=f"{self.version_id} weights v{self.policy.weight_version}",
            grpc_api_version=common_pb2.VersionId.APIVersion(major=major, minor=minor, patch=patch),
        )


def plan_response(output: PolicyOutput, current: np.ndarray, now_us: int, info: dict, terminate: bool):
    """A DriveResponse of one observation's output: sample 0 is driven, all K go to sampled_trajectories.

    Every trajectory is pose 0 = ``current`` (local x, y, z, yaw) at ``now_us``, then the
    plan's poses at ``now_us + k · 0.1 s``, local→rig_est, level at the current height.
    """
    samples = output.poses[0]  # (K, 64, 3) in the rig frame now
    timestamps = now_us + STEP_US * np.arange(samples.shape[1] + 1)
    trajectories = []
    for plan in samples:
        local = rig_to_local(plan, current[[0, 1, 3]])
        poses = np.concatenate([current[None], np.insert(local, 2, current[2], axis=1)])
        trajectories.append(trajectory_message(timestamps, poses))
    return egodriver_pb2.DriveResponse(
        trajectory=trajectories[0],
        debug_info=egodriver_pb2.DriveResponse.DebugInfo(
            unstructured_debug_info=encode_debug_info(info), sampled_trajectories=trajectories
        ),
        terminate_session=terminate,
    )
