"""minisim plays the Alpasim runtime against any egodriver server.

One session per scene, started with minisim's camera catalogue, then the runtime's
order of calls (specs/egodriver.md):

- the first tick's egomotion call is dense, the recorded drive from the scene's
  start; every later one carries the single pose since the previous tick;
- warm-up: the recorded drive is replayed over the ticks before the hand-over
  (images and egomotion, no ``drive``), so at the first ``drive`` the driver holds
  exactly the frames and poses ``redux eval`` hands a policy (4 frames per camera,
  16 poses and more);
- then at 10 Hz: one image per camera, the egomotion, the route, the recorded drive
  (once, at the hand-over), and — when all of those calls have completed — ``drive``.
  The plan (local→rig_est) is resampled at minisim's 0.1 s steps and tracked by the
  same controller as in ``redux eval``.

The sessions of a batch step together (one MinisimBatch) and make their calls
concurrently, so a batching driver can serve their ``drive`` calls in one go. A
session fails (Alpasim: ``success = false``) on a gRPC error or a plan that is empty
or shorter than 2 s; it ends early when the driver sets ``terminate_session``.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import numpy as np

from redux.config import SimConfig
from redux.policy.action_space import HORIZON, to_actions
from redux.proto import egodriver_pb2, egodriver_pb2_grpc
from redux.sim_bridge.alpasim.catalogue import minisim_catalogue
from redux.sim_bridge.alpasim.debug_info import decode_debug_info
from redux.sim_bridge.alpasim.frames import STEP_US, local_to_rig, planar_poses, sample_track, trajectory_message
from redux.sim_bridge.alpasim.images import ImageFormat, encode_frame
from redux.sim_bridge.minisim.observation_renderer import ObservationRenderer
from redux.sim_bridge.minisim.scene import Scene
from redux.sim_bridge.minisim.session import CAMERA_FRAMES, MinisimBatch, RolloutLog
from redux.sim_bridge.minisim.vehicle_control import world_to_rig
from redux.sim_bridge.session import Observation, Plan

MIN_PLAN_US = 2_000_000  # Alpasim's controller horizon: a shorter plan fails the rollout


class RolloutFailed(Exception):
    """The driver's answer ends this rollout as a failure."""


class DriverRefused(RuntimeError):
    """The driver would not start a session: nothing can be driven with this setup."""


@dataclass
class DrivenRollout:
    scene_id: int
    scene: Scene
    log: RolloutLog  # truncated where the rollout ended
    recorded_future: np.ndarray  # (64, 3) at the hand-over, rig frame
    drive_ms: list[float] = field(default_factory=list)  # round trip of each drive call
    debug: list[dict] = field(default_factory=list)  # the driver's debug info of each drive call
    first_samples: np.ndarray | None = None  # (K, 64, 3) sampled plans of the first drive call, rig frame
    error: str | None = None  # why the rollout failed; None: it succeeded
    terminated: bool = False  # the driver ended it (terminate_session)


@dataclass
class _Session:
    index: int
    uuid: str
    rollout: DrivenRollout
    steps_taken: int = 0  # closed-loop steps driven by the driver's plans
    ended: bool = False  # failed or terminated: its log is cut at steps_taken


@dataclass
class _Answer:
    plan: Plan  # the driven plan, rig frame
    samples: np.ndarray  # (K, 64, 3) the sampled plans, rig frame


class MinisimRuntime:
    def __init__(self, channel: grpc.Channel, sim: SimConfig, seed: int, image_format: ImageFormat = "jpeg",
                 send_recording: bool = True, rpc_timeout_s: float = 120.0):  # fmt: skip
        self.stub = egodriver_pb2_grpc.EgodriverServiceStub(channel)
        self.sim = sim
        self.seed = seed
        self.image_format = image_format
        self.send_recording = send_recording
        self.timeout = rpc_timeout_s
        self.renderer = ObservationRenderer(sim) if sim.cameras else None
        self.catalogue = minisim_catalogue(sim)

    def run(self, scene_ids: list[int], session_uuids: list[str] | None = None) -> list[DrivenRollout]:
        """Drive the scenes as one batch of concurrent sessions (named ``session_uuids``, else fresh ones)."""
        if session_uuids is None:
            session_uuids = [f"minisim-{self.sim.suite}-{scene_id}-{uuid.uuid4().hex[:12]}" for scene_id in scene_ids]
        if len(session_uuids) != len(scene_ids):
            raise ValueError(f"{len(session_uuids)} session uuids for {len(scene_ids)} scenes")
        batch = MinisimBatch(self.sim, len(scene_ids), self.renderer)
        first = [batch.reset(i, scene_id, self.seed) for i, scene_id in enumerate(scene_ids)]
        sessions = [
            _Session(i, session_uuids[i],
                     DrivenRollout(scene_id, batch.scene(i), batch.log(i), first[i].labels["recorded_future"]))
            for i, scene_id in enumerate(scene_ids)
        ]  # fmt: skip
        with ThreadPoolExecutor(len(sessions), thread_name_prefix="minisim-runtime") as pool:
            started = []
            try:
                for session in sessions:
                    self._start(session)
                    started.append(session)
                self._warm_up(pool, sessions, first)
                self._closed_loop(pool, batch, sessions, first)
            finally:
                for session in started:
                    self._close(session)
        for session in sessions:
            if session.ended:
                _truncate(session.rollout.log, session.steps_taken)
        return [s.rollout for s in sessions]

    # -- the phases ------------------------------------------------------------------
    def _start(self, session: _Session) -> None:
        request = egodriver_pb2.DriveSessionRequest(
            session_uuid=session.uuid,
            random_seed=self.seed,
            debug_info=egodriver_pb2.DriveSessionRequest.DebugInfo(scene_id=f"{self.sim.suite}/{session.rollout.scene_id}"),
        )
        request.rollout_spec.vehicle.available_cameras.extend(self.catalogue)
        try:
            self.stub.start_session(request, timeout=self.timeout)
        except grpc.RpcError as err:
            raise DriverRefused(f"start_session refused: {err.code().name}: {err.details()}") from None

    def _close(self, session: _Session) -> None:
        try:
            self.stub.close_session(egodriver_pb2.DriveSessionCloseRequest(session_uuid=session.uuid), timeout=self.timeout)
        except grpc.RpcError:
            pass  # a driver that lost or refused the session has nothing left to close

    def _warm_up(self, pool, sessions: list[_Session], first: list[Observation]) -> None:
        """Replay the recording over the ticks before the hand-over: the frames ``first`` holds, no drive."""
        start = self.sim.warmup_steps
        first_tick = start - CAMERA_FRAMES + 1
        for step in range(first_tick, start):
            def tick(session: _Session, step=step) -> None:
                steps = np.arange(step + 1) if step == first_tick else np.array([step])  # the first call is dense
                frames = {name: f[step - first_tick] for name, f in first[session.index].cameras.items()}
                self._observe(session, step, frames, steps, session.rollout.scene.ego[steps])

            self._each(pool, sessions, tick)

    def _closed_loop(self, pool, batch: MinisimBatch, sessions: list[_Session], observations: list[Observation]) -> None:
        start = self.sim.warmup_steps
        for k in range(self.sim.episode_steps):
            step = start + k

            def tick(session: _Session, step=step, k=k) -> _Answer | None:
                observation = observations[session.index]
                state = session.rollout.log.ego[-1]
                frames = {name: f[-1] for name, f in observation.cameras.items()}
                recording = self._recording(session, state, step) if k == 0 and self.send_recording else None
                self._observe(session, step, frames, np.array([step]), state[None], observation.route, recording)
                return self._drive(session, step, state)

            if all(s.ended for s in sessions):
                return
            answers = self._each(pool, sessions, tick)
            for session, answer in zip(sessions, answers):
                session.steps_taken += answer is not None
            plans = [_standing_plan() if a is None else a.plan for a in answers]
            sampled = [p.poses[None] if a is None else a.samples for p, a in zip(plans, answers)]
            observations = [r.observation for r in batch.step(plans, sampled)]

    # -- the calls ---------------------------------------------------------------------
    def _each(self, pool, sessions: list[_Session], tick) -> list:
        """``tick`` for every live session concurrently; a failing session is ended, the others go on."""

        def guarded(session: _Session):
            if session.ended:
                return None
            try:
                answer = tick(session)
            except grpc.RpcError as err:
                answer, session.rollout.error = None, f"{err.code().name}: {err.details()}"
            except RolloutFailed as err:
                answer, session.rollout.error = None, str(err)
            session.ended = session.rollout.error is not None or session.rollout.terminated
            return answer

        return list(pool.map(guarded, sessions))

    def _observe(self, session: _Session, step: int, frames: dict[str, np.ndarray], steps: np.ndarray,
                 poses: np.ndarray, route: np.ndarray | None = None, recording=None) -> None:  # fmt: skip
        """Images, egomotion, route and recording of one tick, sent concurrently; returns when all are done."""
        now = step * STEP_US
        calls = [
            self.stub.submit_image_observation.future(
                egodriver_pb2.RolloutCameraImage(
                    session_uuid=session.uuid,
                    camera_image=egodriver_pb2.RolloutCameraImage.CameraImage(
                        frame_start_us=now, frame_end_us=now, image_bytes=encode_frame(frame, self.image_format),
                        logical_id=name,
                    ),
                ),
                timeout=self.timeout,
            )
            for name, frame in frames.items()
        ]  # fmt: skip
        calls.append(self.stub.submit_egomotion_observation.future(_egomotion(session.uuid, steps, poses), timeout=self.timeout))
        if route is not None:
            request = egodriver_pb2.RouteRequest(session_uuid=session.uuid)
            request.route.timestamp_us = now
            for x, y, z in np.asarray(route, dtype=np.float64).tolist():
                request.route.waypoints.add(x=x, y=y, z=z)
            calls.append(self.stub.submit_route.future(request, timeout=self.timeout))
        if recording is not None:
            calls.append(self.stub.submit_recording_ground_truth.future(recording, timeout=self.timeout))
        for call in calls:
            call.result()

    @staticmethod
    def _recording(session: _Session, state: np.ndarray, step: int) -> egodriver_pb2.GroundTruthRequest:
        """The whole recorded drive in the rig frame now (what Alpasim sends as ground truth)."""
        rig = world_to_rig(session.rollout.scene.ego[None, :, :3], state[None])[0]
        poses = np.concatenate([rig[:, :2], np.zeros((len(rig), 1)), rig[:, 2:3]], axis=1)
        return egodriver_pb2.GroundTruthRequest(
            session_uuid=session.uuid,
            ground_truth=egodriver_pb2.GroundTruth(
                trajectory=trajectory_message(STEP_US * np.arange(len(rig)), poses), timestamp_us=step * STEP_US
            ),
        )

    def _drive(self, session: _Session, step: int, state: np.ndarray) -> _Answer | None:
        now = step * STEP_US
        started = time.perf_counter()
        response = self.stub.drive(
            egodriver_pb2.DriveRequest(session_uuid=session.uuid, time_now_us=now, time_query_us=now + STEP_US),
            timeout=self.timeout,
        )
        rollout = session.rollout
        rollout.drive_ms.append((time.perf_counter() - started) * 1e3)
        rollout.debug.append(decode_debug_info(response.debug_info.unstructured_debug_info))
        if response.terminate_session:
            rollout.terminated = True
            return None
        poses = plan_in_rig(response.trajectory.poses, now, state)
        samples = []
        for sampled in response.debug_info.sampled_trajectories:
            try:
                samples.append(plan_in_rig(sampled.poses, now, state))
            except RolloutFailed:
                pass  # a sample that cannot be scored is left out of minADE, as Alpasim does
        samples = np.stack(samples) if samples else poses[None]
        if rollout.first_samples is None:
            rollout.first_samples = samples
        return _Answer(Plan(to_actions(poses, float(state[3])), poses), samples)


def plan_in_rig(poses, now_us: int, state: np.ndarray) -> np.ndarray:
    """A wire plan (local→rig_est) as (64, 3) x, y, yaw in the rig frame of ``state``, at now + 0.1 s … 6.4 s.

    Resampled at minisim's steps (exact where the plan has those timestamps), carried
    on at constant velocity past its end. RolloutFailed if it is empty, not in time
    order, or shorter than 2 s.
    """
    try:
        times, local = planar_poses(poses)
    except ValueError as err:
        raise RolloutFailed(f"unreadable plan: {err}") from None
    if not len(times):
        raise RolloutFailed("empty plan after the warm-up")
    if (np.diff(times) <= 0).any():
        raise RolloutFailed("plan timestamps do not increase")
    if times[-1] < now_us + MIN_PLAN_US:
        raise RolloutFailed(f"the plan reaches {(times[-1] - now_us) / 1e6:.2f} s ahead; the controller needs 2 s")
    future = sample_track(times, local[:, [0, 1, 3]], now_us + STEP_US * np.arange(1, HORIZON + 1))
    return local_to_rig(future, state[:3])


def _egomotion(session_uuid: str, steps: np.ndarray, poses: np.ndarray) -> egodriver_pb2.RolloutEgoTrajectory:
    """World states (N, 4) x, y, yaw, speed at ``steps`` as local poses with their rig-frame velocities."""
    level = np.concatenate([poses[:, :2], np.zeros((len(poses), 1)), poses[:, 2:3]], axis=1)
    request = egodriver_pb2.RolloutEgoTrajectory(
        session_uuid=session_uuid, trajectory=trajectory_message(STEP_US * np.asarray(steps), level)
    )
    for speed in poses[:, 3].tolist():
        request.dynamic_states.add().linear_velocity.x = speed
    return request


def _standing_plan() -> Plan:
    """What a session that has ended is stepped with until its batch is done (its log is cut before)."""
    return Plan(np.zeros((HORIZON, 2)), np.zeros((HORIZON, 3)))


def _truncate(log: RolloutLog, steps: int) -> None:
    """Keep the first ``steps`` closed-loop steps of a rollout log."""
    del log.ego[steps + 1 :], log.actors[steps + 1 :]
    del log.plans[steps:], log.plan_steps[steps:], log.samples[steps:]
