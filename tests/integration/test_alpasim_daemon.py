"""The daemon path for actors, over real gRPC on loopback: an actor's generator asks a
RuntimeService (`redux serve-runtime`: minisim) to ``simulate`` rollouts driven by the
egodriver server it runs for its own policy.

The property that matters: the records and the official numbers that come back equal
those of the in-process minisim path for the same policy and scenes (greedy). The
wire carries float32 local poses, so the closed loops differ by up to a few mm:
incident flags, counts and rates must be identical, positions and plans equal to that
precision.
"""

from __future__ import annotations

import math
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import grpc
import numpy as np
import pandas as pd
import pytest

from redux.actors.evaluation_job import run_evaluation
from redux.actors.generators.alpasim_daemon import AlpasimDaemonGenerator
from redux.buffer.codec import decode_record, encode_record
from redux.config import RunConfig
from redux.eval.alpasim import summarize_alpasim, timestep_metrics_from_alpasim
from redux.policy.loading import make_policy
from redux.proto import common_pb2, runtime_pb2, runtime_pb2_grpc
from redux.sim_bridge.alpasim.runtime_server import RuntimeServer, RuntimeServerSettings
from redux.sim_bridge.minisim.observation_renderer import ObservationRenderer
from redux.sim_bridge.minisim.session import MinisimBatch
from redux.policy.reference import ConstantVelocity
from redux.sim_bridge.session import Plan

pytestmark = pytest.mark.integration

SUITE, SCENES = "minisim-test", 4
INCIDENT_COLUMNS = ["collision_front", "collision_rear", "collision_lateral", "collision_any", "offroad", "wrong_lane",
                    "close_encounter", "eval_relevant"]  # fmt: skip
EXACT_SUMMARY = ["rollouts", "collision_rate", "offroad_rate", "close_encounter_rate", "incidents", "incidents_at_fault"]
CLOSE_SUMMARY = ["driving_score", "driving_score_std", "km_driven", "alpasim_score_km", "alpasim_score_km_at_fault"]
POSITION_TOLERANCE_M = 0.01  # float32 local poses, grown over the closed loop
REQUIRED = ("collision_front", "collision_rear", "collision_lateral", "progress", "dist_traveled_m",
            "dist_to_gt_trajectory", "eval_relevant", "offroad", "gt_dist_traveled_m")  # fmt: skip


class Swerve(ConstantVelocity):
    """Constant speed on a left turn: it leaves the road (and meets what is there), so incidents get scored."""

    def _plan(self, observation, speed):
        plan = super()._plan(observation, speed)
        plan[:, 1] = 0.04
        return plan


def _policy(name: str, cfg: RunConfig):
    return Swerve() if name == "swerve" else make_policy(name, cfg)


def _cfg(steps: int = 20) -> RunConfig:
    cfg = RunConfig()
    cfg.sim.kind, cfg.sim.suite, cfg.sim.cameras = "minisim", SUITE, ["bev"]
    cfg.sim.episode_steps = steps
    return cfg


@contextmanager
def runtime(cfg: RunConfig, suite: str = f"{SUITE}:{SCENES}"):
    with RuntimeServer(cfg, suite, RuntimeServerSettings(port=0, image_format="png")) as server:
        yield f"127.0.0.1:{server.port}"


@contextmanager
def generator(cfg: RunConfig, address: str, policy: str = "lane-keeper"):
    """The actor's generator; ``gen.held`` counts the sessions its server held at each drive call."""
    gen = AlpasimDaemonGenerator(cfg, 0, _policy(policy, cfg), runtime_address=address, cameras=("bev",), greedy=True)
    servicer, record = gen.server.servicer, gen.server.servicer.on_drive
    gen.held = []
    servicer.on_drive = lambda *args: gen.held.append(len(servicer.sessions)) or record(*args)
    try:
        yield gen
    finally:
        gen.close()


def in_process(cfg: RunConfig, policy: str, scene_ids: list[int]) -> list[dict[str, np.ndarray]]:
    """The in-process minisim path: what the policy saw and planned at each step of each scene (greedy)."""
    acting = _policy(policy, cfg)
    batch = MinisimBatch(cfg.sim, len(scene_ids), ObservationRenderer(cfg.sim))
    observations = [batch.reset(i, s, cfg.seed) for i, s in enumerate(scene_ids)]
    steps = [{"ego_history": [], "bev": [], "plan_actions": []} for _ in scene_ids]
    for _ in range(cfg.sim.episode_steps):
        out = acting.act(observations, num_samples=cfg.policy.num_samples, greedy=True)
        for i, obs in enumerate(observations):
            steps[i]["ego_history"].append(obs.ego_history)
            steps[i]["bev"].append(obs.cameras["bev"])
            steps[i]["plan_actions"].append(out.actions[i, 0])
        results = batch.step([Plan(out.actions[i, 0], out.poses[i, 0]) for i in range(len(scene_ids))], list(out.poses))
        observations = [r.observation for r in results]
    return [{name: np.stack(values) for name, values in s.items()} for s in steps]


@pytest.mark.parametrize("policy", ["lane-keeper", "constant-velocity", "swerve"])
def test_daemon_rollouts_equal_the_in_process_path(tmp_path, monkeypatch, policy):
    cfg = _cfg(steps=40 if policy == "swerve" else 20)
    scenarios = [f"{SUITE}/{i}" for i in range(SCENES)]
    with runtime(cfg) as address, generator(cfg, address, policy) as gen:
        assert gen.scenario_ids == scenarios  # get_runtime_info lists the suite's scenes
        rollouts = gen.simulate(scenarios, n_concurrent=2)
    assert [r.success for r in rollouts] == [True] * SCENES, [r.error for r in rollouts]
    assert [r.scenario_id for r in rollouts] == scenarios
    assert max(gen.held) == 2  # n_concurrent_per_driver: two sessions at a time, never more

    # what the policy saw and did, drive call by drive call, against the in-process path
    expected = in_process(cfg, policy, list(range(SCENES)))
    for rollout, want in zip(rollouts, expected):
        assert len(rollout.drives) == cfg.sim.episode_steps
        times = [d.now_us for d in rollout.drives]
        assert times == [(cfg.sim.warmup_steps + k) * 100_000 for k in range(cfg.sim.episode_steps)]
        got = {name: np.stack([d.tensors[name] for d in rollout.drives]) for name in want}
        np.testing.assert_allclose(got["ego_history"], want["ego_history"], atol=POSITION_TOLERANCE_M)
        np.testing.assert_allclose(got["plan_actions"], want["plan_actions"], atol=0.05)
        np.testing.assert_array_equal(got["bev"][0], want["bev"][0])  # the hand-over's frames: bit for bit
        differing = (got["bev"] != want["bev"]).mean()  # later frames: drawn from poses a few mm apart
        assert differing < 0.01, f"{differing:.3%} of BEV values differ"

    # per-step metrics against those redux eval writes for the same scenes
    if policy == "swerve":  # redux eval knows it by a reference name; it acts as Swerve
        monkeypatch.setattr("redux.actors.generators.evaluation.make_policy", lambda name, cfg: Swerve())
    evaluated = run_evaluation(cfg, "constant-velocity" if policy == "swerve" else policy, f"{SUITE}:{SCENES}",
                               tmp_path / "eval")  # fmt: skip
    if policy == "swerve":  # the aggregation's at-fault flag and truncation are exercised
        assert evaluated["incidents"] > 0 and evaluated["offroad_rate"] > 0
    table = pd.read_parquet(tmp_path / "eval" / "metrics.parquet")
    for scene_id, rollout in enumerate(rollouts):
        names = {m["name"] for m in rollout.timestep_metrics}
        assert set(REQUIRED) <= names and "collision_at_fault" not in names
        wire = timestep_metrics_from_alpasim(rollout.timestep_metrics)
        ours = table[table.scene_id == scene_id]
        np.testing.assert_array_equal(wire.timestamps_us, ours.time_us.to_numpy())
        for name, values in wire.values.items():
            a = ours[name].to_numpy()
            if name in INCIDENT_COLUMNS:
                np.testing.assert_array_equal(values, a, err_msg=name)
            else:
                np.testing.assert_array_equal(np.isnan(values), np.isnan(a), err_msg=f"{name}: steps with a value")
                np.testing.assert_allclose(values, a, atol=POSITION_TOLERANCE_M, err_msg=name)
        # raw aggregation, as Alpasim's: the warm-up counts (eval_relevant 0 then 1), nothing truncated
        assert rollout.aggregated_metrics["eval_relevant"] == 1.0
        assert rollout.aggregated_metrics["dist_traveled_m"] == pytest.approx(ours.dist_traveled_m.iloc[-1], abs=POSITION_TOLERANCE_M)

    # the official numbers recomputed from timestep_metrics = redux eval's
    official = summarize_alpasim([r.timestep_metrics for r in rollouts])
    for key in EXACT_SUMMARY:
        assert official[key] == evaluated[key], key
    for key in CLOSE_SUMMARY:
        a, b = float(evaluated[key]), float(official[key])
        assert a == b or math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6), f"{key}: eval {a}, daemon {b}"


def test_generate_makes_trainable_records_and_official_numbers():
    cfg = _cfg(steps=15)
    cfg.actors.num = 1  # this actor's sessions take the scenes in order
    with runtime(cfg) as address, generator(cfg, address) as gen:
        records, stats = gen.generate(cfg.actors.rollout_steps)
        second, _ = gen.generate(cfg.actors.rollout_steps)
    size = cfg.sim.sessions_per_actor
    assert len(records) == size and stats.episodes == size and stats.env_steps == size * cfg.sim.episode_steps
    assert [r.scalars["scenario_id"] for r in records + second] == [f"{SUITE}/{i}" for i in range(2 * size)]
    for record in records:
        back = decode_record(encode_record(record))  # what the buffer stores and the learner reads
        assert back.scalars["generator"] == "alpasim" and back.episode == 0
        steps = cfg.sim.episode_steps
        for name, shape in {"ego_history": (steps, 16, 3), "bev": (steps,), "target_actions": (steps, 64, 2),
                            "plan_actions": (steps, 64, 2), "log_prob": (steps,), "reward": (steps,),
                            "done": (steps,)}.items():  # fmt: skip
            assert back.tensors[name].shape[: len(shape)] == shape, name
        assert np.isfinite(back.tensors["target_actions"]).all()  # from the recorded drive the runtime sent
        assert back.tensors["done"].tolist() == [False] * (steps - 1) + [True]
    assert gen.last_summary["rollouts"] == size and gen.last_summary["collision_rate"] == 0.0


def test_session_uuids_are_honoured():
    cfg = _cfg(steps=5)
    names = ["trainer-a", "trainer-b", "trainer-c"]
    with runtime(cfg) as address, generator(cfg, address) as gen:
        rollouts = gen.simulate([f"{SUITE}/1", "2", f"{SUITE}/1"], session_uuids=names, n_concurrent=1)
    assert [r.session_uuid for r in rollouts] == names
    assert set(gen.held) == {1}  # n_concurrent_per_driver = 1: one session at a time
    assert [r.scenario_id for r in rollouts] == [f"{SUITE}/1", "2", f"{SUITE}/1"]
    assert all(r.success and len(r.drives) == cfg.sim.episode_steps for r in rollouts)  # the server drove these sessions
    assert [d.tensors["ego_history"].tolist() for d in rollouts[0].drives] == [
        d.tensors["ego_history"].tolist() for d in rollouts[2].drives
    ]  # same scene, same seed, greedy: the same rollout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _request(port: int, specs: list[dict], n_concurrent: int = 1) -> runtime_pb2.SimulationRequest:
    request = runtime_pb2.SimulationRequest(n_concurrent_per_driver=n_concurrent)
    request.available_drivers.add(ip="127.0.0.1", port=port)
    for spec in specs:
        request.rollout_specs.add(**spec)
    return request


@pytest.mark.parametrize("specs, n_concurrent, message", [
    ([{"scenario_id": "1", "nr_rollouts": 2, "session_uuids": ["only-one"]}], 1, "session_uuids"),
    ([{"scenario_id": "1", "nr_rollouts": 0}], 1, "nr_rollouts"),
    ([{"scenario_id": "1", "nr_rollouts": 1}], 0, "n_concurrent_per_driver"),
    ([{"scenario_id": "1", "nr_rollouts": 1, "session_uuids": ["x"]},
      {"scenario_id": "2", "nr_rollouts": 1, "session_uuids": ["x"]}], 1, "used twice"),
    ([], 1, "rollout_specs"),
])  # fmt: skip
def test_a_bad_request_is_invalid_argument(specs, n_concurrent, message):
    cfg = _cfg(steps=5)
    with runtime(cfg) as address, grpc.insecure_channel(address) as channel:
        stub = runtime_pb2_grpc.RuntimeServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.simulate(_request(_free_port(), specs, n_concurrent), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in err.value.details()


def test_an_unknown_scene_and_a_driver_that_is_down_fail_rollouts_not_the_call():
    cfg = _cfg(steps=5)
    specs = [{"scenario_id": f"{SUITE}/{SCENES}", "nr_rollouts": 1}, {"scenario_id": "minisim-val/0", "nr_rollouts": 1},
             {"scenario_id": "1", "nr_rollouts": 2, "session_uuids": ["down-1", "down-2"]}]  # fmt: skip
    with runtime(cfg) as address, grpc.insecure_channel(address) as channel:
        answer = runtime_pb2_grpc.RuntimeServiceStub(channel).simulate(_request(_free_port(), specs), timeout=60)
    returns = list(answer.rollout_returns)
    assert [r.success for r in returns] == [False] * 4
    assert [r.error_code for r in returns] == [runtime_pb2.ROLLOUT_ERROR_CODE_INVALID_SCENE] * 2 + [
        runtime_pb2.ROLLOUT_ERROR_CODE_UNSPECIFIED] * 2  # fmt: skip
    assert all("no scene" in r.error for r in returns[:2])
    assert [r.rollout_uuid for r in returns[2:]] == ["down-1", "down-2"]
    assert all("UNAVAILABLE" in r.error for r in returns[2:]), [r.error for r in returns[2:]]
    assert all(not r.timestep_metrics for r in returns)


def test_the_cli_serves_the_runtime_and_shut_down_stops_it():
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "redux", "serve-runtime", "--suite", f"{SUITE}:3", "--port", str(port), "--cameras",
         "bev", "--set", "sim.episode_steps=5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=90)
            stub = runtime_pb2_grpc.RuntimeServiceStub(channel)
            info = stub.get_runtime_info(common_pb2.Empty(), timeout=10)
            assert [s.scene_id for s in info.scenes] == [f"{SUITE}/{i}" for i in range(3)]
            assert info.runtime_version.grpc_api_version.minor == 54
            cfg = _cfg(steps=5)
            with generator(cfg, f"127.0.0.1:{port}") as gen:
                records, _ = gen.generate()
            assert len(records) == cfg.sim.sessions_per_actor and records[0].tensors["plan_actions"].shape[0] == 5
            started = time.monotonic()
            stub.shut_down(common_pb2.Empty(), timeout=10)
        output, _ = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, output
    assert "stopped" in output and time.monotonic() - started < 30


def test_ctrl_c_stops_serve_runtime():
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "redux", "serve-runtime", "--suite", f"{SUITE}:2", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=90)
            info = runtime_pb2_grpc.RuntimeServiceStub(channel).get_runtime_info(common_pb2.Empty(), timeout=10)
        assert len(info.scenes) == 2
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=40)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0 and "stopped" in output, output


def test_a_tiny_alpamayo_records_its_model_inputs_as_in_process(tmp_path, tiny_alpamayo_run):
    """The records hold the model's own inputs (policy.model_inputs: frames, ego history, …) as in-process."""
    cfg = _cfg(steps=8)
    scenes = 2
    policy = make_policy(str(tiny_alpamayo_run), cfg)
    with runtime(cfg, f"{SUITE}:{scenes}") as address:
        gen = AlpasimDaemonGenerator(cfg, 0, policy, runtime_address=address, greedy=True)
        try:
            rollouts = gen.simulate([f"{SUITE}/{i}" for i in range(scenes)], n_concurrent=scenes)
        finally:
            gen.close()
    assert all(r.success for r in rollouts), [r.error for r in rollouts]

    batch = MinisimBatch(cfg.sim, scenes, ObservationRenderer(cfg.sim))
    observations = [batch.reset(i, i, cfg.seed) for i in range(scenes)]
    for k in range(cfg.sim.episode_steps):
        inputs = policy.model_inputs(observations)
        out = policy.act(observations, num_samples=cfg.policy.num_samples, greedy=True)
        for i, rollout in enumerate(rollouts):
            got = rollout.drives[k].tensors
            assert set(inputs) <= set(got)
            for name, value in inputs.items():
                if value.dtype.kind == "f":
                    np.testing.assert_allclose(got[name], value[i], atol=POSITION_TOLERANCE_M, err_msg=name)
                else:
                    np.testing.assert_array_equal(got[name], value[i], err_msg=name)
            np.testing.assert_allclose(got["plan_actions"], out.actions[i, 0], atol=0.05)
        observations = [r.observation for r in batch.step([Plan(out.actions[i, 0], out.poses[i, 0]) for i in range(scenes)],
                                                         list(out.poses))]  # fmt: skip
    evaluated = run_evaluation(cfg, str(tiny_alpamayo_run), f"{SUITE}:{scenes}", tmp_path / "eval")
    official = summarize_alpasim([r.timestep_metrics for r in rollouts])
    for key in EXACT_SUMMARY:
        assert official[key] == evaluated[key], key
    for key in CLOSE_SUMMARY:
        a, b = float(evaluated[key]), float(official[key])
        assert a == b or math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6), f"{key}: eval {a}, daemon {b}"
