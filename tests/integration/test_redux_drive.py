"""`redux drive` against egodriver servers over real gRPC on loopback.

The property that matters: against `redux serve-driver`, minisim over the wire scores
a policy as `redux eval` does in-process (same seeds, same scenes). Poses travel as
float32 in the scene's local frame (the contract's type), so positions differ by
micrometres that the closed loop grows to millimetres; every incident, rate and
count must be identical, and every other number equal to that precision. The
policy's inputs are compared directly too: camera frames (PNG) and the route
arrive bit for bit, the ego history to float32 precision.
"""

from __future__ import annotations

import math
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from redux.actors.evaluation_job import run_evaluation
from redux.cli import app
from redux.config import RunConfig
from redux.policy.loading import make_policy
from redux.proto import common_pb2, egodriver_pb2, egodriver_pb2_grpc
from redux.sim_bridge.alpasim.drive_job import run_drive
from redux.sim_bridge.alpasim.serve import DriverServer
from redux.sim_bridge.alpasim.settings import DriverServerSettings, DriveSettings
from redux.sim_bridge.minisim.session import MinisimBatch

pytestmark = pytest.mark.integration

INCIDENT_COLUMNS = ["collision_front", "collision_rear", "collision_lateral", "collision_any", "collision_at_fault",
                    "offroad", "wrong_lane", "close_encounter", "eval_relevant"]  # fmt: skip
EXACT_SUMMARY = ["rollouts", "collision_rate", "offroad_rate", "close_encounter_rate", "incidents", "incidents_at_fault"]
CLOSE_SUMMARY = ["driving_score", "driving_score_std", "km_driven", "alpasim_score_km", "alpasim_score_km_at_fault"]
POSITION_TOLERANCE_M = 0.01  # float32 local poses (~1e-5 m at 200 m), grown over an 8 s closed loop


@contextmanager
def serve(policy, cfg: RunConfig, terminate=None):
    with DriverServer(policy, DriverServerSettings(port=0), cfg.policy.num_samples, "test", terminate=terminate) as server:
        yield f"127.0.0.1:{server.port}"


def assert_same_scores(evaluated: dict, driven: dict, eval_dir: Path, drive_dir: Path) -> None:
    assert driven["failed_rollouts"] == [] and driven["terminated_rollouts"] == []
    for key in EXACT_SUMMARY:
        assert driven[key] == evaluated[key], key
        assert driven["hard"].get(key) == evaluated["hard"].get(key), f"hard {key}"
    for key in CLOSE_SUMMARY:
        a, b = float(evaluated[key]), float(driven[key])
        assert a == b or math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6), f"{key}: eval {a}, drive {b}"
    table, wire = pd.read_parquet(eval_dir / "metrics.parquet"), pd.read_parquet(drive_dir / "metrics.parquet")
    assert list(wire.columns) == list(table.columns) and len(wire) == len(table)
    for column in table.columns:
        a, b = table[column].to_numpy(), wire[column].to_numpy()
        if column in INCIDENT_COLUMNS or a.dtype.kind not in "f":
            np.testing.assert_array_equal(b, a, err_msg=column)
        else:
            np.testing.assert_array_equal(np.isnan(b), np.isnan(a), err_msg=f"{column}: steps with a value")
            np.testing.assert_allclose(b, a, atol=POSITION_TOLERANCE_M, err_msg=column)


@pytest.mark.parametrize("policy", ["lane-keeper", "constant-velocity", "expert"])
def test_drive_against_serve_driver_scores_like_eval(tmp_path, policy):
    """Sessions go two at a time (sim.sessions_per_actor), so the server batches their drive calls."""
    cfg = RunConfig()
    evaluated = run_evaluation(cfg, policy, "minisim-test:3", tmp_path / "eval")
    with serve(make_policy(policy, cfg), cfg) as address:
        driven = run_drive(cfg, address, "minisim-test:3", tmp_path / "drive", DriveSettings(cameras=[]))
    assert_same_scores(evaluated, driven, tmp_path / "eval", tmp_path / "drive")
    assert (tmp_path / "drive" / "config.yaml").is_file()
    assert driven["driver"]["grpc_api_version"] == "0.54.0"
    assert math.isnan(float(driven["min_ade_6"])), "one greedy sample per call: no open-loop minADE_6 over the wire"


def test_a_served_alpamayo_checkpoint_scores_like_eval(tmp_path, tiny_alpamayo_run):
    cfg = RunConfig()
    cfg.sim.episode_steps = 30
    evaluated = run_evaluation(cfg, str(tiny_alpamayo_run), "minisim-test:3", tmp_path / "eval")
    with serve(make_policy(str(tiny_alpamayo_run), cfg), cfg) as address:
        driven = run_drive(cfg, address, "minisim-test:3", tmp_path / "drive", DriveSettings(cameras=["bev"]))
    assert_same_scores(evaluated, driven, tmp_path / "eval", tmp_path / "drive")


class Recording:
    """A policy that remembers every observation it acted on."""

    def __init__(self, policy):
        self.policy = policy
        self.weight_version = 0
        self.seen = []

    def act(self, observations, num_samples=1, greedy=False):
        self.seen.extend(observations)
        return self.policy.act(observations, num_samples, greedy)


@pytest.mark.parametrize("image_format", ["png", "jpeg"])
def test_the_policy_sees_over_the_wire_what_minisim_sent(tmp_path, monkeypatch, image_format):
    """Every drive call: the server's Observation against the one minisim built for that step."""
    cfg = RunConfig()
    cfg.sim.kind, cfg.sim.suite, cfg.sim.cameras = "minisim", "minisim-test", ["bev", "camera_front_wide_120fov"]
    cfg.sim.episode_steps, cfg.sim.sessions_per_actor = 8, 1
    sent = []  # what minisim handed the runtime client, in order: scene by scene (one session at a time)
    reset, step = MinisimBatch.reset, MinisimBatch.step
    monkeypatch.setattr(MinisimBatch, "reset", lambda self, *a: sent.append(reset(self, *a)) or sent[-1])
    monkeypatch.setattr(MinisimBatch, "step", lambda self, *a, **k: [sent.append(r.observation) or r for r in step(self, *a, **k)])
    served = Recording(make_policy("expert", cfg))  # the expert also reads the recorded future (sent as ground truth)
    with DriverServer(served, DriverServerSettings(port=0), 1, "recording", cameras=tuple(cfg.sim.cameras)) as server:
        settings = DriveSettings(concurrent=1, image_format=image_format)
        run_drive(cfg, f"127.0.0.1:{server.port}", "minisim-test:3", tmp_path, settings)

    steps = cfg.sim.episode_steps
    driven = [obs for scene in range(3) for obs in sent[scene * (steps + 1) : scene * (steps + 1) + steps]]
    assert len(served.seen) == len(driven) == 3 * steps
    for expected, got in zip(driven, served.seen):
        assert got.time_us == expected.time_us
        assert got.cameras.keys() == expected.cameras.keys()
        np.testing.assert_array_equal(got.cameras["bev"], expected.cameras["bev"])  # a PNG of planes: always lossless
        camera = got.cameras["camera_front_wide_120fov"].astype(int) - expected.cameras["camera_front_wide_120fov"]
        assert np.abs(camera).max() == 0 if image_format == "png" else np.abs(camera).mean() < 3.0
        np.testing.assert_array_equal(got.route, expected.route)  # rig frame, float32 on both sides
        np.testing.assert_allclose(got.ego_history, expected.ego_history, atol=1e-4)
        np.testing.assert_allclose(got.labels["recorded_future"], expected.labels["recorded_future"], atol=1e-3)
        assert got.ego_history.dtype == np.float32 and got.route.dtype == np.float32


def test_a_driver_may_end_rollouts(tmp_path):
    cfg = RunConfig()
    with serve(make_policy("lane-keeper", cfg), cfg, terminate=lambda session, out: session.drive_calls >= 5) as address:
        summary = run_drive(cfg, address, "minisim-test:2", tmp_path, DriveSettings(cameras=[]))
    assert summary["terminated_rollouts"] == [0, 1] and summary["rollouts"] == 2
    table = pd.read_parquet(tmp_path / "metrics.parquet")
    # the 5th answer ends the rollout before its plan is driven: 4 closed-loop steps after the hand-over
    assert table.groupby("scene_id").size().tolist() == [cfg.sim.warmup_steps + 5] * 2


class ForeignDriver(egodriver_pb2_grpc.EgodriverServiceServicer):
    """Someone else's driver: straight ahead at the reported speed, a pose every ``dt_s`` for ``horizon_s``."""

    def __init__(self, dt_s: float, horizon_s: float | None):
        self.dt_s, self.horizon_s = dt_s, horizon_s
        self.last: dict[str, tuple] = {}

    def start_session(self, request, context):
        return common_pb2.SessionRequestStatus()

    def close_session(self, request, context):
        return common_pb2.Empty()

    def submit_image_observation(self, request, context):
        return common_pb2.Empty()

    def submit_route(self, request, context):
        return common_pb2.Empty()

    def submit_recording_ground_truth(self, request, context):
        return common_pb2.Empty()

    def submit_egomotion_observation(self, request, context):
        self.last[request.session_uuid] = (request.trajectory.poses[-1].pose, request.dynamic_states[-1].linear_velocity.x)
        return common_pb2.Empty()

    def drive(self, request, context):
        pose, speed = self.last[request.session_uuid]
        q = pose.quat
        yaw = math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))
        response = egodriver_pb2.DriveResponse()
        if self.horizon_s is None:
            return response
        for k in range(round(self.horizon_s / self.dt_s) + 1):
            t = k * self.dt_s
            step = response.trajectory.poses.add(timestamp_us=request.time_now_us + round(t * 1e6))
            step.pose.vec.x = pose.vec.x + speed * t * math.cos(yaw)
            step.pose.vec.y = pose.vec.y + speed * t * math.sin(yaw)
            step.pose.quat.CopyFrom(pose.quat)
        return response


@contextmanager
def foreign_driver(dt_s: float, horizon_s: float | None):
    server = grpc.server(ThreadPoolExecutor(4))
    egodriver_pb2_grpc.add_EgodriverServiceServicer_to_server(ForeignDriver(dt_s, horizon_s), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


def test_any_egodriver_server_can_be_driven(tmp_path):
    """A coarser plan (0.5 s steps) is resampled at minisim's 0.1 s and driven."""
    cfg = RunConfig()
    cfg.sim.episode_steps = 20
    with foreign_driver(dt_s=0.5, horizon_s=6.0) as address:
        summary = run_drive(cfg, address, "minisim-test:2", tmp_path, DriveSettings(cameras=["bev"]))
    assert summary["failed_rollouts"] == [] and summary["rollouts"] == 2
    assert summary["km_driven"] > 0.02  # about 10 m/s for 2 s, twice


@pytest.mark.parametrize("horizon_s, error", [(None, "empty plan"), (1.0, "needs 2 s")])
def test_a_plan_shorter_than_the_controllers_horizon_fails_the_rollout(tmp_path, horizon_s, error):
    cfg = RunConfig()
    cfg.sim.episode_steps = 5
    with foreign_driver(dt_s=0.1, horizon_s=horizon_s) as address:
        summary = run_drive(cfg, address, "minisim-test:2", tmp_path, DriveSettings(cameras=[]))
    assert summary["rollouts"] == 0
    assert [f["scene_id"] for f in summary["failed_rollouts"]] == [0, 1]
    assert all(error in f["error"] for f in summary["failed_rollouts"])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_cli_serves_drives_and_stops_on_ctrl_c(tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "redux", "serve-driver", "--policy", "constant-velocity", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=90)
        result = CliRunner().invoke(app, ["drive", "--driver", f"127.0.0.1:{port}", "--suite", "minisim-test:1",
                                          "--out", str(tmp_path), "--cameras", "none", "--set", "sim.episode_steps=10"])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert (tmp_path / "summary.json").is_file() and (tmp_path / "metrics.parquet").is_file()
        assert '"rollouts": 1' in result.output
        started = time.monotonic()
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, output
    assert "stopped" in output and time.monotonic() - started < 30


def test_drive_says_clearly_when_no_driver_answers(tmp_path):
    with pytest.raises(ConnectionError, match="no egodriver server answers"):
        run_drive(RunConfig(), f"127.0.0.1:{_free_port()}", "minisim-test:1", tmp_path, DriveSettings(connect_timeout_s=1.0))
