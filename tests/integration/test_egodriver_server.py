"""The egodriver server over real gRPC on loopback: every RPC, its error codes, batching, drain, fuzz.

Wire messages are built here by hand (quaternions from yaw, PIL-encoded images), not
with the server's own helpers, so a convention both sides got wrong would still fail.
"""

from __future__ import annotations

import io
import math
import threading
import time
from contextlib import contextmanager

import grpc
import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from redux.policy.interface import PolicyOutput
from redux.policy.reference import LaneKeeper
from redux.proto import common_pb2, egodriver_pb2, egodriver_pb2_grpc, sensorsim_pb2
from redux.sim_bridge.alpasim.serve import DriverServer
from redux.sim_bridge.alpasim.settings import DriverServerSettings
from redux.sim_bridge.minisim.cameras import ALPAMAYO_CAMERAS

pytestmark = pytest.mark.integration

STEP_US = 100_000
MIB = 1024 * 1024
SPEED = 10.0  # m/s of the scripted ego: 1 m per 0.1 s step
START = np.array([100.0, 200.0])
HEADING = 0.3  # rad, in the local frame


class ScriptedPolicy:
    """Plans 1 m further per step straight ahead; sample j is j metres to the left. Remembers what it saw."""

    weight_version = 3

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.fail = False
        self.seen: list = []
        self.batches: list[int] = []

    def act(self, observations, num_samples=1, greedy=False):
        self.batches.append(len(observations))
        self.seen.extend(observations)
        time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("the policy broke")
        b, k = len(observations), num_samples
        poses = np.zeros((b, k, 64, 3), np.float32)
        poses[..., 0] = np.arange(1, 65)
        poses[..., 1] = np.arange(k)[None, :, None]
        return PolicyOutput(
            np.zeros((b, k, 64, 2), np.float32), poses, np.zeros((b, k), np.float32), self.weight_version,
            {"total_ms": 1.0}, reasoning=[f"sample {j}" for _ in range(b) for j in range(k)],
            extras={"decision": np.full((b, k), 3)},
        )  # fmt: skip


@contextmanager
def serving(policy, cameras=(), num_samples=1, terminate=None, **overrides):
    settings = DriverServerSettings(port=0, **{"max_wait_ms": 0.0, **overrides})
    server = DriverServer(policy, settings, num_samples, "scripted", cameras=tuple(cameras), terminate=terminate)
    server.start()
    limit = 64 * MIB
    channel = grpc.insecure_channel(
        server.address, options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
    )
    try:
        yield server, egodriver_pb2_grpc.EgodriverServiceStub(channel)
    finally:
        channel.close()
        server.stop(0)


# -- hand-made wire messages ----------------------------------------------------------------
def pose_at(t_us: int, x: float, y: float, yaw: float, z: float = 0.0) -> common_pb2.PoseAtTime:
    return common_pb2.PoseAtTime(
        pose=common_pb2.Pose(vec=common_pb2.Vec3(x=x, y=y, z=z),
                             quat=common_pb2.Quat(w=math.cos(yaw / 2), z=math.sin(yaw / 2))),
        timestamp_us=t_us,
    )  # fmt: skip


def ego_at(step: int) -> tuple[float, float]:
    """Where the scripted ego is at ``step`` (10 m/s along HEADING from START)."""
    distance = SPEED * step * 0.1
    return START[0] + distance * math.cos(HEADING), START[1] + distance * math.sin(HEADING)


def egomotion(uuid: str, steps) -> egodriver_pb2.RolloutEgoTrajectory:
    poses = [pose_at(k * STEP_US, *ego_at(k), HEADING) for k in steps]
    return egodriver_pb2.RolloutEgoTrajectory(session_uuid=uuid, trajectory=common_pb2.Trajectory(poses=poses))


def catalogue(cameras: dict[str, tuple[int, int]]):
    out = []
    for name, (height, width) in cameras.items():
        camera = sensorsim_pb2.AvailableCamerasReturn.AvailableCamera(logical_id=name)
        camera.intrinsics.logical_id = name
        camera.intrinsics.resolution_h, camera.intrinsics.resolution_w = height, width
        camera.intrinsics.opencv_pinhole_param.focal_length_x = width / 2
        out.append(camera)
    return out


def start(stub, uuid: str, cameras: dict[str, tuple[int, int]] | None = None) -> None:
    request = egodriver_pb2.DriveSessionRequest(session_uuid=uuid, random_seed=7)
    request.rollout_spec.vehicle.available_cameras.extend(catalogue(cameras or {}))
    stub.start_session(request)


def encoded(pixels: np.ndarray, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def image(uuid: str, name: str, step: int, data: bytes) -> egodriver_pb2.RolloutCameraImage:
    return egodriver_pb2.RolloutCameraImage(
        session_uuid=uuid,
        camera_image=egodriver_pb2.RolloutCameraImage.CameraImage(
            frame_start_us=max(step * STEP_US - 30_000, 0), frame_end_us=step * STEP_US, image_bytes=data, logical_id=name
        ),
    )


def drive(stub, uuid: str, step: int) -> egodriver_pb2.DriveResponse:
    now = step * STEP_US
    return stub.drive(egodriver_pb2.DriveRequest(session_uuid=uuid, time_now_us=now, time_query_us=now + STEP_US))


def warmed_up(stub, uuid: str, last_step: int = 17) -> None:
    """A session without cameras, its egomotion from step 0 (dense) to ``last_step``."""
    start(stub, uuid)
    stub.submit_egomotion_observation(egomotion(uuid, range(last_step + 1)))


def yaw_of(pose: common_pb2.Pose) -> float:
    q = pose.quat
    return math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))


def status_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


# -- the contract, one RPC at a time ------------------------------------------------------------
def test_get_version_reports_api_0_54_0_and_the_weights():
    with serving(ScriptedPolicy()) as (_, stub):
        version = stub.get_version(common_pb2.Empty())
    api = version.grpc_api_version
    assert (api.major, api.minor, api.patch) == (0, 54, 0)
    assert "scripted" in version.version_id and "v3" in version.version_id


def test_binds_loopback_by_default():
    assert DriverServerSettings().host == "127.0.0.1"
    with serving(ScriptedPolicy()) as (server, _):
        assert server.address.startswith("127.0.0.1:")


def test_a_full_session_with_four_1080p_jpeg_cameras():
    """Dense egomotion, warm-up, 4 cameras of 1080x1916 JPEG, route, recorded drive, drive, close."""
    policy = ScriptedPolicy()
    cameras = {name: (1080, 1916) for name in ALPAMAYO_CAMERAS}
    rng = np.random.default_rng(0)
    base = np.broadcast_to(np.linspace(0, 200, 1916, dtype=np.uint8)[None, :, None], (1080, 1916, 3))
    with serving(policy, cameras=ALPAMAYO_CAMERAS, num_samples=3) as (server, stub):
        start(stub, "s", cameras)
        stub.submit_egomotion_observation(egomotion("s", range(15)))  # dense: 1.4 s of recorded drive
        early = drive(stub, "s", 14)
        assert not early.trajectory.poses, "before enough history the answer is an empty plan"
        assert msgpack.unpackb(early.debug_info.unstructured_debug_info)["warming_up"] is True

        sent = {}
        for step in (15, 16, 17):
            for c, name in enumerate(ALPAMAYO_CAMERAS):
                pixels = (base + rng.integers(0, 8, size=(1080, 1916, 1), dtype=np.uint8) + 10 * c + step).astype(np.uint8)
                sent[name, step] = pixels
                stub.submit_image_observation(image("s", name, step, encoded(pixels)))
            stub.submit_egomotion_observation(egomotion("s", [step]))
        route = egodriver_pb2.RouteRequest(session_uuid="s")
        route.route.timestamp_us = 17 * STEP_US
        for k in range(5):
            route.route.waypoints.add(x=4.2 * k, y=0.25 * k, z=0.0)
        stub.submit_route(route)
        truth = egodriver_pb2.GroundTruthRequest(session_uuid="s")
        truth.ground_truth.timestamp_us = 17 * STEP_US
        truth.ground_truth.trajectory.poses.extend(pose_at((17 + k) * STEP_US, 1.0 * k, 0.5, 0.0) for k in range(-17, 80))
        stub.submit_recording_ground_truth(truth)

        response = drive(stub, "s", 17)
        stub.close_session(egodriver_pb2.DriveSessionCloseRequest(session_uuid="s"))
        assert server.servicer.sessions == {}

    # the plan: pose 0 now, then 64 poses at 0.1 s, local->rig_est, level, all K samples
    poses = response.trajectory.poses
    assert len(poses) == 65
    assert [p.timestamp_us for p in poses] == [(17 + k) * STEP_US for k in range(65)]
    now = np.array(ego_at(17))
    forward, left = np.array([math.cos(HEADING), math.sin(HEADING)]), np.array([-math.sin(HEADING), math.cos(HEADING)])
    for k in (0, 1, 10, 64):
        np.testing.assert_allclose([poses[k].pose.vec.x, poses[k].pose.vec.y], now + k * forward, atol=1e-3)
        assert yaw_of(poses[k].pose) == pytest.approx(HEADING, abs=1e-6)
    sampled = response.debug_info.sampled_trajectories
    assert len(sampled) == 3 and all(len(t.poses) == 65 for t in sampled)
    p = sampled[2].poses[10].pose.vec
    np.testing.assert_allclose([p.x, p.y], now + 10 * forward + 2 * left, atol=1e-3)
    info = msgpack.unpackb(response.debug_info.unstructured_debug_info)
    assert info["reasoning"] == ["sample 0", "sample 1", "sample 2"]
    assert info["decision_name"] == ["follow lead"] * 3 and info["batch_size"] == 1 and info["latency_ms"] > 0
    assert response.terminate_session is False

    # what the policy saw: the frames (3 sent, the oldest repeated), the history, the route, the recording
    (seen,) = policy.seen
    assert seen.time_us == 17 * STEP_US
    for name in ALPAMAYO_CAMERAS:
        frames = seen.cameras[name]
        assert frames.shape == (4, 3, 1080, 1916) and frames.dtype == np.uint8
        np.testing.assert_array_equal(frames[0], frames[1])
        for j, step in enumerate((15, 16, 17), start=1):
            error = np.abs(frames[j].transpose(1, 2, 0).astype(int) - sent[name, step]).mean()
            assert error < 2.0, f"{name} frame {step} is not the one sent (mean error {error})"
    expected_history = np.stack([np.arange(-15, 1) * 1.0, np.zeros(16), np.zeros(16)], axis=1)
    np.testing.assert_allclose(seen.ego_history, expected_history, atol=1e-3)
    assert seen.route.shape == (20, 3)
    np.testing.assert_array_equal(seen.route[:5, :2], np.float32([[4.2 * k, 0.25 * k] for k in range(5)]))
    assert np.isnan(seen.route[5:]).all()
    future = seen.labels["recorded_future"]
    np.testing.assert_allclose(future[:, :2], np.stack([np.arange(1, 65) * 1.0, np.full(64, 0.5)], axis=1), atol=1e-3)


def test_history_is_built_from_what_there_is_after_the_warm_up():
    policy = ScriptedPolicy()
    with serving(policy) as (_, stub):
        start(stub, "s")
        assert not drive(stub, "s", 0).trajectory.poses  # no egomotion at all yet
        stub.submit_egomotion_observation(egomotion("s", [0, 5, 10, 15]))  # sparse, 1.5 s
        assert len(drive(stub, "s", 15).trajectory.poses) == 65
        # nothing new for a second: the ego is carried on at its last velocity
        response = drive(stub, "s", 25)
    assert len(response.trajectory.poses) == 65
    p = response.trajectory.poses[0].pose.vec
    np.testing.assert_allclose([p.x, p.y], ego_at(25), atol=1e-3)
    expected = np.stack([np.arange(-15, 1) * 1.0, np.zeros(16), np.zeros(16)], axis=1)
    for seen in policy.seen:
        np.testing.assert_allclose(seen.ego_history, expected, atol=1e-3)


def test_egomotion_not_newer_than_the_last_pose_is_ignored():
    policy = ScriptedPolicy()
    with serving(policy) as (_, stub):
        warmed_up(stub, "s", last_step=17)
        stale = egomotion("s", [18])
        # a pose from the past and a repeat of the last one, both far off; then the true next pose
        stale.trajectory.poses.insert(0, pose_at(17 * STEP_US, 900.0, 900.0, 1.0))
        stale.trajectory.poses.insert(0, pose_at(3 * STEP_US, -900.0, 0.0, 2.0))
        stub.submit_egomotion_observation(stale)
        drive(stub, "s", 18)
    expected = np.stack([np.arange(-15, 1) * 1.0, np.zeros(16), np.zeros(16)], axis=1)
    np.testing.assert_allclose(policy.seen[0].ego_history, expected, atol=1e-3)


def test_a_route_from_an_earlier_step_is_carried_into_the_current_rig_frame():
    policy = ScriptedPolicy()
    with serving(policy) as (_, stub):
        warmed_up(stub, "s", last_step=17)
        route = egodriver_pb2.RouteRequest(session_uuid="s")
        route.route.timestamp_us = 15 * STEP_US
        route.route.waypoints.add(x=10.0, y=1.0, z=0.0)
        stub.submit_route(route)
        drive(stub, "s", 17)
    np.testing.assert_allclose(policy.seen[0].route[0], [8.0, 1.0, 0.0], atol=1e-3)  # the ego moved 2 m since


@pytest.mark.parametrize("rpc", ["close_session", "submit_image_observation", "submit_egomotion_observation",
                                 "submit_route", "submit_recording_ground_truth", "drive"])  # fmt: skip
def test_an_unknown_session_is_not_found(rpc):
    requests = {
        "close_session": egodriver_pb2.DriveSessionCloseRequest(session_uuid="nobody"),
        "submit_image_observation": image("nobody", "cam", 1, b"x"),
        "submit_egomotion_observation": egomotion("nobody", [0]),
        "submit_route": egodriver_pb2.RouteRequest(session_uuid="nobody"),
        "submit_recording_ground_truth": egodriver_pb2.GroundTruthRequest(session_uuid="nobody"),
        "drive": egodriver_pb2.DriveRequest(session_uuid="nobody", time_now_us=1),
    }
    with serving(ScriptedPolicy()) as (_, stub):
        warmed_up(stub, "somebody")
        assert status_of(lambda: getattr(stub, rpc)(requests[rpc])) == grpc.StatusCode.NOT_FOUND


def test_a_duplicate_session_already_exists_and_a_closed_one_is_gone():
    with serving(ScriptedPolicy()) as (server, stub):
        start(stub, "s")
        assert status_of(lambda: start(stub, "s")) == grpc.StatusCode.ALREADY_EXISTS
        stub.close_session(egodriver_pb2.DriveSessionCloseRequest(session_uuid="s"))
        close = egodriver_pb2.DriveSessionCloseRequest(session_uuid="s")
        assert status_of(lambda: stub.close_session(close)) == grpc.StatusCode.NOT_FOUND
        start(stub, "s")  # the id is free again
        assert list(server.servicer.sessions) == ["s"]


def _bad_requests():
    """(what, call(stub)) pairs that must each be INVALID_ARGUMENT."""
    def start_with(uuid, cameras):
        return lambda stub: start(stub, uuid, cameras)

    def duplicate_cameras(stub):
        request = egodriver_pb2.DriveSessionRequest(session_uuid="dup")
        request.rollout_spec.vehicle.available_cameras.extend(catalogue({"cam": (8, 8)}) * 2)
        stub.start_session(request)

    def egomotion_with(mutate):
        def call(stub):
            request = egomotion("s", [18, 19])
            mutate(request)
            stub.submit_egomotion_observation(request)
        return call

    def route_with_inf(stub):
        request = egodriver_pb2.RouteRequest(session_uuid="s")
        request.route.waypoints.add(x=math.inf)
        stub.submit_route(request)

    def truth_out_of_order(stub):
        request = egodriver_pb2.GroundTruthRequest(session_uuid="s")
        request.ground_truth.trajectory.poses.extend([pose_at(2, 0, 0, 0), pose_at(1, 0, 0, 0)])
        stub.submit_recording_ground_truth(request)

    gray = np.zeros((8, 8), np.uint8)
    return [
        ("empty session uuid", start_with("", {"cam": (8, 8)})),
        ("catalogue lacks the policy's camera", start_with("other", {"elsewhere": (8, 8)})),
        ("a camera twice in the catalogue", duplicate_cameras),
        ("absurd camera size", start_with("huge", {"cam": (100_000, 8)})),
        ("corrupt image", lambda stub: stub.submit_image_observation(image("s", "cam", 20, b"\xff\xd8 not a jpeg"))),
        ("image of a camera not in the catalogue", lambda stub: stub.submit_image_observation(image("s", "dog", 20, encoded(gray, "PNG")))),
        ("image of the wrong size", lambda stub: stub.submit_image_observation(image("s", "cam", 20, encoded(np.zeros((9, 8), np.uint8), "PNG")))),
        ("image neither JPEG nor PNG", lambda stub: stub.submit_image_observation(image("s", "cam", 20, encoded(gray, "GIF")))),
        ("NaN pose", egomotion_with(lambda r: setattr(r.trajectory.poses[0].pose.vec, "x", math.nan))),
        ("dynamic states not 1:1 with poses", egomotion_with(lambda r: r.dynamic_states.add())),
        ("timestamp past 2^53 us", egomotion_with(lambda r: setattr(r.trajectory.poses[1], "timestamp_us", 2**60))),
        ("infinite route waypoint", route_with_inf),
        ("recorded drive out of time order", truth_out_of_order),
        ("drive time past 2^53 us", lambda stub: stub.drive(egodriver_pb2.DriveRequest(session_uuid="s", time_now_us=2**63))),
    ]  # fmt: skip


def test_bad_requests_are_invalid_arguments_and_change_nothing():
    policy = ScriptedPolicy()
    with serving(policy, cameras=("cam",)) as (server, stub):
        start(stub, "s", {"cam": (8, 8)})
        stub.submit_egomotion_observation(egomotion("s", range(18)))
        stub.submit_image_observation(image("s", "cam", 17, encoded(np.full((8, 8, 3), 50, np.uint8), "PNG")))
        for what, call in _bad_requests():
            assert status_of(lambda: call(stub)) == grpc.StatusCode.INVALID_ARGUMENT, what
        assert list(server.servicer.sessions) == ["s"]
        assert len(drive(stub, "s", 17).trajectory.poses) == 65
        assert stub.get_version(common_pb2.Empty()).grpc_api_version.minor == 54
    np.testing.assert_array_equal(policy.seen[0].cameras["cam"][-1], np.full((3, 8, 8), 50, np.uint8))


def test_a_failing_policy_is_internal_and_the_server_lives_on():
    policy = ScriptedPolicy()
    with serving(policy) as (_, stub):
        warmed_up(stub, "s")
        policy.fail = True
        assert status_of(lambda: drive(stub, "s", 17)) == grpc.StatusCode.INTERNAL
        policy.fail = False
        assert len(drive(stub, "s", 17).trajectory.poses) == 65


def test_frames_above_grpcs_default_4_mib_limit_are_accepted():
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 255, size=(1080, 1916, 3), dtype=np.uint8)
    data = encoded(noise, "PNG")
    assert len(data) > 4 * MIB
    policy = ScriptedPolicy()
    with serving(policy, cameras=("cam",)) as (_, stub):
        start(stub, "s", {"cam": (1080, 1916)})
        stub.submit_egomotion_observation(egomotion("s", range(18)))
        stub.submit_image_observation(image("s", "cam", 17, data))
        drive(stub, "s", 17)
    np.testing.assert_array_equal(policy.seen[0].cameras["cam"][-1], noise.transpose(2, 0, 1))


def test_concurrent_sessions_share_one_policy_call():
    policy = ScriptedPolicy()
    with serving(policy, max_batch=4, max_wait_ms=2000.0) as (_, stub):
        uuids = [f"s{i}" for i in range(4)]
        for uuid in uuids:
            warmed_up(stub, uuid)
        responses = {}
        threads = [threading.Thread(target=lambda u=u: responses.__setitem__(u, drive(stub, u, 17))) for u in uuids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert policy.batches == [4]
    assert sorted(responses) == uuids
    assert all(msgpack.unpackb(r.debug_info.unstructured_debug_info)["batch_size"] == 4 for r in responses.values())


def test_an_episode_end_terminates_the_session():
    with serving(ScriptedPolicy(), terminate=lambda session, output: session.drive_calls >= 2) as (server, stub):
        warmed_up(stub, "hook")
        assert drive(stub, "hook", 17).terminate_session is False
        assert drive(stub, "hook", 17).terminate_session is True
        warmed_up(stub, "asked")
        server.servicer.end_episode("asked")
        assert drive(stub, "asked", 17).terminate_session is True


def test_stopping_drains_calls_in_flight_and_refuses_new_ones():
    policy = ScriptedPolicy(delay_s=1.5)
    with serving(policy) as (server, stub):
        warmed_up(stub, "s")
        answer = {}
        in_flight = threading.Thread(target=lambda: answer.setdefault("response", drive(stub, "s", 17)))
        in_flight.start()
        while not policy.batches:  # the drive call has reached the policy
            time.sleep(0.01)
        server.stop(drain_s=10.0)
        in_flight.join(timeout=10)
        assert len(answer["response"].trajectory.poses) == 65
        assert status_of(lambda: stub.get_version(common_pb2.Empty(), timeout=5)) == grpc.StatusCode.UNAVAILABLE


# -- fuzz -------------------------------------------------------------------------------------
UUIDS = st.sampled_from(["a", "a", "a", "b", "", "c" * 300])  # mostly the session that can plan
FLOATS = st.one_of(st.floats(-1e3, 1e3, width=32), st.floats(allow_nan=True, allow_infinity=True, width=32))
TIMES = st.one_of(st.integers(0, 40).map(lambda k: k * STEP_US), st.integers(0, 2**64 - 1))
_PNG = encoded(np.zeros((4, 4), np.uint8), "PNG")
IMAGES = st.one_of(st.binary(max_size=64), st.just(_PNG), st.just(_PNG[:20]), st.just(encoded(np.zeros((4, 4, 3), np.uint8))))


@st.composite
def pose_messages(draw):
    return common_pb2.PoseAtTime(
        pose=common_pb2.Pose(vec=common_pb2.Vec3(x=draw(FLOATS), y=draw(FLOATS), z=draw(FLOATS)),
                             quat=common_pb2.Quat(w=draw(FLOATS), x=draw(FLOATS), y=draw(FLOATS), z=draw(FLOATS))),
        timestamp_us=draw(TIMES),
    )  # fmt: skip


@st.composite
def rpc_calls(draw):
    """One (rpc name, request) with fields anywhere from sensible to absurd."""
    uuid = draw(UUIDS)
    rpc = draw(st.sampled_from(["start_session", "close_session", "submit_image_observation", "submit_egomotion_observation",
                                "submit_route", "submit_recording_ground_truth", "drive", "drive", "drive"]))  # fmt: skip
    if rpc == "start_session":
        request = egodriver_pb2.DriveSessionRequest(session_uuid=uuid, random_seed=draw(st.integers(0, 2**64 - 1)))
        names = draw(st.lists(st.sampled_from(["cam", "other", ""]), max_size=3))
        sizes = st.tuples(st.integers(0, 10_000), st.integers(0, 10_000))
        request.rollout_spec.vehicle.available_cameras.extend(catalogue({n: draw(sizes) for n in names}))
        return rpc, request
    if rpc == "close_session":
        return rpc, egodriver_pb2.DriveSessionCloseRequest(session_uuid=uuid)
    if rpc == "submit_image_observation":
        return rpc, image(uuid, draw(st.sampled_from(["cam", "other", "nope"])), draw(st.integers(0, 40)), draw(IMAGES))
    if rpc == "submit_egomotion_observation":
        request = egodriver_pb2.RolloutEgoTrajectory(session_uuid=uuid)
        request.trajectory.poses.extend(draw(st.lists(pose_messages(), max_size=6)))
        if draw(st.booleans()):
            request.dynamic_states.extend(common_pb2.DynamicState() for _ in range(draw(st.integers(0, 6))))
        return rpc, request
    if rpc == "submit_route":
        request = egodriver_pb2.RouteRequest(session_uuid=uuid)
        request.route.timestamp_us = draw(TIMES)
        for _ in range(draw(st.integers(0, 25))):
            request.route.waypoints.add(x=draw(FLOATS), y=draw(FLOATS), z=draw(FLOATS))
        return rpc, request
    if rpc == "submit_recording_ground_truth":
        request = egodriver_pb2.GroundTruthRequest(session_uuid=uuid)
        request.ground_truth.timestamp_us = draw(TIMES)
        request.ground_truth.trajectory.poses.extend(draw(st.lists(pose_messages(), max_size=6)))
        return rpc, request
    now = draw(st.one_of(st.integers(0, 60).map(lambda k: k * STEP_US), TIMES))
    return rpc, egodriver_pb2.DriveRequest(session_uuid=uuid, time_now_us=now, time_query_us=draw(TIMES),
                                           renderer_data=draw(st.binary(max_size=16)))  # fmt: skip


@pytest.fixture(scope="module")
def fuzz_target():
    # a real policy behind it: lane-keeper reads the history and the route the fuzzer mangles
    with serving(LaneKeeper(), cameras=("cam",), warmup_history_s=0.2) as served:
        yield served


ANSWERS = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.INVALID_ARGUMENT}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(rpc_calls(), min_size=1, max_size=12))
def test_fuzzed_calls_get_answers_and_leak_no_session(fuzz_target, calls):
    server, stub = fuzz_target
    # a session that can plan, so that the fuzzed inputs reach the policy too
    start(stub, "a", {"cam": (4, 4)})
    stub.submit_egomotion_observation(egomotion("a", range(18)))
    stub.submit_image_observation(image("a", "cam", 17, _PNG))
    open_sessions: set[str] = {"a"}
    try:
        for rpc, request in calls:
            try:
                getattr(stub, rpc)(request, timeout=30)
            except grpc.RpcError as err:
                assert err.code() in ANSWERS, f"{rpc}: {err.code()} {err.details()}"
                continue
            if rpc == "start_session":
                open_sessions.add(request.session_uuid)
            elif rpc == "close_session":
                open_sessions.discard(request.session_uuid)
        assert set(server.servicer.sessions) == open_sessions
    finally:
        for uuid in list(server.servicer.sessions):
            stub.close_session(egodriver_pb2.DriveSessionCloseRequest(session_uuid=uuid))
    assert stub.get_version(common_pb2.Empty()).grpc_api_version.minor == 54


REQUEST_TYPES = {
    "start_session": egodriver_pb2.DriveSessionRequest,
    "close_session": egodriver_pb2.DriveSessionCloseRequest,
    "submit_image_observation": egodriver_pb2.RolloutCameraImage,
    "submit_egomotion_observation": egodriver_pb2.RolloutEgoTrajectory,
    "submit_route": egodriver_pb2.RouteRequest,
    "submit_recording_ground_truth": egodriver_pb2.GroundTruthRequest,
    "drive": egodriver_pb2.DriveRequest,
    "get_version": common_pb2.Empty,
}


def _parses(request_type, payload: bytes) -> bool:
    try:
        request_type.FromString(payload)
    except Exception:  # the protobuf runtime's DecodeError, or worse for truly broken bytes
        return False
    return True


@pytest.fixture(scope="module")
def raw_channel(fuzz_target):
    server, _ = fuzz_target
    with grpc.insecure_channel(server.address) as channel:
        yield channel


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(sorted(REQUEST_TYPES)), payload=st.binary(max_size=256))
def test_random_bytes_on_any_method_leave_the_server_serving(fuzz_target, raw_channel, method, payload):
    server, stub = fuzz_target
    raw = raw_channel.unary_unary(f"/egodriver.EgodriverService/{method}")  # no (de)serializers: bytes as they are
    try:
        raw(payload, timeout=30)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.INTERNAL:  # gRPC's own answer to bytes that are not the request message
            assert not _parses(REQUEST_TYPES[method], payload), f"{method}: {err.details()}"
        else:
            assert err.code() in ANSWERS, f"{method}: {err.code()} {err.details()}"
    for uuid in list(server.servicer.sessions):  # bytes that parse as a valid start_session did start one
        stub.close_session(egodriver_pb2.DriveSessionCloseRequest(session_uuid=uuid))
    assert server.servicer.sessions == {}
    assert stub.get_version(common_pb2.Empty()).grpc_api_version.minor == 54
