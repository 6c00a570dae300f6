"""What the egodriver wire costs: per-step overhead beside the policy, and sessions a server sustains.

Overhead: one client plays the Alpasim runtime's step against ``redux serve-driver``'s
server in this process (over loopback gRPC, as in a deployment): per 10 Hz tick the
frames of every camera (1080 x 1916 JPEG at quality 95, submitted concurrently), the
egomotion since the last tick and the route, then ``drive``. The overhead of a tick is
its wall time minus the policy call the server reports in its debug info, so it holds
encoding on the client, transport, decoding and bookkeeping on the server, and the plan's
conversion back. minisim's flat-shaded frames compress far better than a real camera's,
so sensor-like noise is added before encoding (``texture_noise``); the JPEG sizes are
reported with the figures.

Throughput: C clients each run whole sessions back to back (start, dense egomotion,
warm-up, ``drive_steps`` ticks, close) with the BEV raster only; sessions/s and drive
calls/s over ``seconds``, and the mean batch the server formed.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np

from redux.config import PolicyConfig, SimConfig
from redux.proto import common_pb2, egodriver_pb2, egodriver_pb2_grpc
from redux.sim_bridge.alpasim.catalogue import minisim_catalogue
from redux.sim_bridge.alpasim.debug_info import decode_debug_info
from redux.sim_bridge.alpasim.frames import quaternion_of_yaw
from redux.sim_bridge.alpasim.images import encode_frame
from redux.sim_bridge.alpasim.serve import DriverServer
from redux.sim_bridge.alpasim.settings import DriverServerSettings
from redux.sim_bridge.minisim.cameras import ALPAMAYO_CAMERAS
from redux.sim_bridge.minisim.observation_renderer import BEV

STEP_US = 100_000
SPEED_MPS = 10.0
WARMUP_STEPS = 17  # 1.7 s of replay before the first drive, as the runtime does
_LIMIT = 64 * 2**20
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", _LIMIT), ("grpc.max_send_message_length", _LIMIT)]


def _pose_at(step: int) -> common_pb2.PoseAtTime:
    """A straight drive along local x at SPEED_MPS."""
    w, x, y, z = quaternion_of_yaw(np.array([0.0]))[0]
    return common_pb2.PoseAtTime(
        pose=common_pb2.Pose(vec=common_pb2.Vec3(x=SPEED_MPS * step * 0.1, y=0.0, z=0.0),
                             quat=common_pb2.Quat(w=w, x=x, y=y, z=z)),
        timestamp_us=step * STEP_US,
    )  # fmt: skip


class _Client:
    """One runtime-side session driver over a stub."""

    def __init__(self, stub, sim: SimConfig, frames: dict[str, bytes], pool: ThreadPoolExecutor):
        self.stub, self.sim, self.frames, self.pool = stub, sim, frames, pool
        self.session = str(uuid.uuid4())

    def start(self) -> None:
        spec = egodriver_pb2.DriveSessionRequest.RolloutSpec(
            vehicle=egodriver_pb2.DriveSessionRequest.RolloutSpec.VehicleDefinition(
                available_cameras=minisim_catalogue(self.sim)
            )
        )
        self.stub.start_session(egodriver_pb2.DriveSessionRequest(session_uuid=self.session, rollout_spec=spec))
        dense = [_pose_at(s) for s in range(WARMUP_STEPS + 1)]
        self._observe(WARMUP_STEPS, dense)

    def tick(self, step: int) -> tuple[float, float]:
        """One 10 Hz step; returns (wall ms, the policy's own ms as the server reports it)."""
        start = time.perf_counter()
        self._observe(step, [_pose_at(step)])
        response = self.stub.drive(
            egodriver_pb2.DriveRequest(session_uuid=self.session, time_now_us=step * STEP_US,
                                       time_query_us=(step + 1) * STEP_US)
        )  # fmt: skip
        wall_ms = (time.perf_counter() - start) * 1e3
        info = decode_debug_info(response.debug_info.unstructured_debug_info)
        if info.get("warming_up") or len(response.trajectory.poses) < 21:
            raise RuntimeError(f"the driver returned no plan at step {step}: {info}")
        return wall_ms, float(info["policy_ms"]["total_ms"]), int(info.get("batch_size", 1))

    def close(self) -> None:
        self.stub.close_session(egodriver_pb2.DriveSessionCloseRequest(session_uuid=self.session))

    def _observe(self, step: int, poses: list) -> None:
        """Frames, egomotion and route concurrently, as the runtime sends them; returns when all landed."""
        t_us = step * STEP_US
        calls = [
            (self.stub.submit_image_observation, egodriver_pb2.RolloutCameraImage(
                session_uuid=self.session,
                camera_image=egodriver_pb2.RolloutCameraImage.CameraImage(
                    frame_start_us=t_us - 1000, frame_end_us=t_us, image_bytes=data, logical_id=name)))
            for name, data in self.frames.items()
        ] + [
            (self.stub.submit_egomotion_observation, egodriver_pb2.RolloutEgoTrajectory(
                session_uuid=self.session, trajectory=common_pb2.Trajectory(poses=poses),
                dynamic_states=[common_pb2.DynamicState() for _ in poses])),
            (self.stub.submit_route, egodriver_pb2.RouteRequest(
                session_uuid=self.session,
                route=egodriver_pb2.Route(timestamp_us=t_us, waypoints=[
                    common_pb2.Vec3(x=4.2 * (i + 1), y=0.0, z=0.0) for i in range(20)]))),
        ]  # fmt: skip
        for future in [self.pool.submit(method, message) for method, message in calls]:
            future.result()


def _frames(sim: SimConfig, texture_noise: float) -> dict[str, bytes]:
    """One encoded frame per camera of ``sim``, rendered by minisim (plus noise on the RGB ones)."""
    from redux.sim_bridge import make_session

    observation = make_session(sim).reset(0, 3)
    rng = np.random.default_rng(0)
    frames = {}
    for name in sim.cameras:
        frame = observation.cameras[name][-1]
        if frame.shape[0] == 3 and texture_noise > 0:
            noisy = frame.astype(np.float32) + rng.normal(0.0, texture_noise, frame.shape)
            frame = np.clip(noisy, 0, 255).astype(np.uint8)
        frames[name] = encode_frame(frame, "jpeg" if frame.shape[0] == 3 else "png")
    return frames


def _tiny_policy():
    from redux.policy.torch_engine import make_policy_replica

    return make_policy_replica(PolicyConfig(kind="alpamayo", preset="tiny", reasoning="coc"), SimConfig(kind="minisim"))


def _sim(cameras: list[str]) -> SimConfig:
    return SimConfig(kind="minisim", suite="minisim-test", cameras=cameras, camera_width=1916, camera_height=1080)


def measure_overhead(policy, camera_counts: list[int], steps: int, texture_noise: float) -> list[dict]:
    rows = []
    for count in camera_counts:
        sim = _sim([BEV, *ALPAMAYO_CAMERAS[:count]])
        frames = _frames(sim, texture_noise)
        settings = DriverServerSettings(port=0, max_wait_ms=0.0)
        # the server decodes every camera it is sent, as it would for a policy that reads them
        with DriverServer(policy, settings, cameras=tuple(sim.cameras)) as server, grpc.insecure_channel(
            server.address, options=_CHANNEL_OPTIONS
        ) as channel, ThreadPoolExecutor(len(frames) + 2) as pool:
            client = _Client(egodriver_pb2_grpc.EgodriverServiceStub(channel), sim, frames, pool)
            client.start()
            timed = [client.tick(WARMUP_STEPS + 1 + i) for i in range(steps + 3)][3:]  # 3 warm-up ticks
            client.close()
        overhead = [wall - policy_ms for wall, policy_ms, _ in timed]
        policy_ms = statistics.median(p for _, p, _ in timed)
        jpeg_kb = [len(data) / 1e3 for name, data in frames.items() if name != BEV]
        rows.append({
            "cameras": count,
            "jpeg_kb_each": statistics.mean(jpeg_kb),
            "overhead_p50_ms": float(np.percentile(overhead, 50)),
            "overhead_p95_ms": float(np.percentile(overhead, 95)),
            "policy_p50_ms": policy_ms,
            "overhead_per_policy": float(np.percentile(overhead, 50)) / policy_ms,
        })  # fmt: skip
    return rows


def measure_sessions(policy, concurrency: list[int], drive_steps: int, seconds: float) -> list[dict]:
    rows = []
    sim = _sim([BEV])
    frames = _frames(sim, 0.0)
    for clients in concurrency:
        settings = DriverServerSettings(port=0, max_batch=max(clients, 1), max_wait_ms=5.0)
        done, drives, batches = [0], [0], []
        lock = threading.Lock()
        deadline = time.monotonic() + seconds
        with DriverServer(policy, settings) as server, grpc.insecure_channel(
            server.address, options=_CHANNEL_OPTIONS
        ) as channel, ThreadPoolExecutor(4 * clients) as pool:
            stub = egodriver_pb2_grpc.EgodriverServiceStub(channel)

            def run_sessions() -> None:
                while time.monotonic() < deadline:
                    client = _Client(stub, sim, frames, pool)
                    client.start()
                    for i in range(drive_steps):
                        _, _, batch = client.tick(WARMUP_STEPS + 1 + i)
                        with lock:
                            drives[0] += 1
                            batches.append(batch)
                    client.close()
                    with lock:
                        done[0] += 1

            started = time.monotonic()
            threads = [threading.Thread(target=run_sessions) for _ in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
            leaked = len(server.servicer.sessions)
        rows.append({
            "clients": clients, "drive_steps": drive_steps, "sessions_per_s": done[0] / elapsed,
            "drives_per_s": drives[0] / elapsed, "mean_batch": statistics.mean(batches) if batches else 0.0,
            "open_sessions_after": leaked,
        })  # fmt: skip
    return rows


def run_driver_bench(camera_counts: list[int], steps: int, concurrency: list[int], drive_steps: int,
                     seconds: float, texture_noise: float, progress=None) -> dict:  # fmt: skip
    policy = _tiny_policy()
    overhead = measure_overhead(policy, camera_counts, steps, texture_noise)
    if progress is not None:
        progress("overhead")
    sessions = measure_sessions(policy, concurrency, drive_steps, seconds)
    return {"policy": "alpamayo tiny (coc, greedy)", "overhead": overhead, "sessions": sessions}
